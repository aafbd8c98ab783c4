-- POST /v1/patients with a unique name per request; owners picked from the
-- clients listed in $BENCH_IDS (one id a line).
local common = dofile("bench/lua/common.lua")
local clients, n = nil, 0
local species = {"canine", "feline", "rabbit", "avian"}
local names = {"Bella", "Max", "Luna", "Charlie", "Lucy", "Cooper", "Daisy", "Milo"}

setup = common.setup
done = common.done

function init(args)
   clients = common.lines(os.getenv("BENCH_IDS"))
   math.randomseed(thread_no * 7919 + os.time())
end

function request()
   n = n + 1
   local body = string.format(
      '{"client_id":"%s","name":"%s %d-%d","species":"%s","sex":"female",' ..
      '"breed":"Mixed","weight":{"value":%d.5,"unit":"kg"}}',
      clients[math.random(#clients)], names[math.random(#names)], thread_no, n,
      species[math.random(#species)], math.random(1, 40))
   return wrk.format("POST", "/v1/patients", common.headers(true), body)
end
