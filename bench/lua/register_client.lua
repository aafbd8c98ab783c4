-- POST /v1/clients (RegisterClient) with a unique name per request and every
-- personal field set (first/last name, email, phone, address): the bench's
-- seal scenario sends the same script to a writer that seals and to one that
-- does not (bench/run.py scenario_seal).
local common = dofile("bench/lua/common.lua")
local n = 0
local first = {"Jane", "John", "Maria", "Ahmed", "Li", "Olga", "Pierre", "Aisha"}
local last = {"Smith", "Garcia", "Muller", "Rossi", "Nowak", "Dubois", "Jensen", "Silva"}

setup = common.setup
done = common.done
response = common.count_status

function init(args)
   math.randomseed(thread_no * 7919 + os.time())
end

function request()
   n = n + 1
   local body = string.format(
      '{"first_name":"%s","last_name":"%s %d-%d","email":"c%d-%d@bench.example",' ..
      '"phone":"+44 20 7946 %04d","address":"%d High Street, London"}',
      first[math.random(#first)], last[math.random(#last)], thread_no, n, thread_no, n,
      math.random(0, 9999), math.random(1, 300))
   return wrk.format("POST", "/v1/clients", common.headers(true), body)
end
