-- GET $BENCH_PATH (a search or a list page) with the bearer token.
local common = dofile("bench/lua/common.lua")
local path = os.getenv("BENCH_PATH") or "/healthz"

setup = common.setup
done = common.done

function request()
   return wrk.format("GET", path, common.headers(false))
end
