-- Shared by the wrk scripts of make bench: the bearer token from the
-- environment, per-thread numbering (unique bodies across threads), and one
-- JSON line of results that bench/run.py reads (latencies in microseconds).
local M = {}
local threads = {}

M.token = os.getenv("BENCH_TOKEN") or ""

function M.setup(thread)
   thread:set("thread_no", #threads)
   table.insert(threads, thread)
end

function M.headers(json)
   local h = {["Authorization"] = "Bearer " .. M.token}
   if json then h["Content-Type"] = "application/json" end
   return h
end

-- Lines of a file (ids), read once per thread.
function M.lines(path)
   local out = {}
   for line in io.lines(path) do
      if #line > 0 then out[#out + 1] = line end
   end
   return out
end

function M.done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"p50_us":%d,"p90_us":%d,' ..
      '"p99_us":%d,"max_us":%d,"errors_connect":%d,"errors_read":%d,"errors_write":%d,' ..
      '"errors_status":%d,"errors_timeout":%d}\n',
      summary.requests, summary.duration, summary.bytes, latency:percentile(50),
      latency:percentile(90), latency:percentile(99), latency.max, e.connect, e.read,
      e.write, e.status, e.timeout))
end

return M
