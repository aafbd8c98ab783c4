-- GET $BENCH_PATH like get_path.lua, but each connection waits a random
-- delay (uniform, mean $BENCH_DELAY_MS ms) before each request: an open-ish
-- load below the maximum (wrk2 is not available). wrk times a request from
-- its write, so the delay is not in the latencies; the rate reached is what
-- run.py reports.
local common = dofile("bench/lua/common.lua")
local path = os.getenv("BENCH_PATH") or "/healthz"
local mean = tonumber(os.getenv("BENCH_DELAY_MS") or "0")

setup = common.setup
done = common.done
response = common.count_status

function init(args)
   math.randomseed(thread_no * 7919 + os.time())
end

function delay()
   return math.floor(mean * 2 * math.random())
end

function request()
   return wrk.format("GET", path, common.headers(false))
end
