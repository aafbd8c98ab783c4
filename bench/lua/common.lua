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

-- A script that sets `response = common.count_status` counts its answers per
-- status code (and keeps the first non-2xx body); done() reports them.
statuses = {}
first_error = ""

function M.count_status(status, headers, body)
   statuses[status] = (statuses[status] or 0) + 1
   if (status < 200 or status > 299) and first_error == "" then
      first_error = status .. " " .. (body or "")
   end
end

function M.done(summary, latency, requests)
   local e = summary.errors
   local counts, sample = {}, ""
   for _, thread in ipairs(threads) do
      for status, n in pairs(thread:get("statuses") or {}) do
         counts[status] = (counts[status] or 0) + n
      end
      if sample == "" then sample = thread:get("first_error") or "" end
   end
   local parts = {}
   for status, n in pairs(counts) do parts[#parts + 1] = string.format('"%d":%d', status, n) end
   sample = sample:sub(1, 300):gsub('[%c"\\]', " ")
   io.write(string.format(
      'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"p50_us":%d,"p90_us":%d,' ..
      '"p99_us":%d,"max_us":%d,"errors_connect":%d,"errors_read":%d,"errors_write":%d,' ..
      '"errors_status":%d,"errors_timeout":%d,"status":{%s},"first_error":"%s"}\n',
      summary.requests, summary.duration, summary.bytes, latency:percentile(50),
      latency:percentile(90), latency:percentile(99), latency.max, e.connect, e.read,
      e.write, e.status, e.timeout, table.concat(parts, ","), sample))
end

return M
