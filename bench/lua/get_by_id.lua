-- GET $BENCH_PATH_PREFIX<id> with ids picked at random from $BENCH_IDS.
local common = dofile("bench/lua/common.lua")
local ids, prefix = nil, nil

setup = common.setup
done = common.done

function init(args)
   ids = common.lines(os.getenv("BENCH_IDS"))
   prefix = os.getenv("BENCH_PATH_PREFIX") or "/v1/patients/"
   math.randomseed(thread_no * 7919 + os.time())
end

function request()
   return wrk.format("GET", prefix .. ids[math.random(#ids)], common.headers(false))
end
