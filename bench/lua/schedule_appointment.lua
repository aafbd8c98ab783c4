-- POST /v1/appointments for one vet ($BENCH_VET) in slots that never overlap:
-- slot k starts $BENCH_SLOT_BASE (epoch s) + k * 15 min; thread t of T takes
-- k = $BENCH_SLOT_OFFSET + t + i*T. Patients come from $BENCH_IDS.
local common = dofile("bench/lua/common.lua")
local patients, vet, base, offset, nthreads, i = nil, nil, 0, 0, 1, 0

setup = common.setup
done = common.done

function init(args)
   patients = common.lines(os.getenv("BENCH_IDS"))
   vet = os.getenv("BENCH_VET")
   base = tonumber(os.getenv("BENCH_SLOT_BASE"))
   offset = tonumber(os.getenv("BENCH_SLOT_OFFSET") or "0")
   nthreads = tonumber(os.getenv("BENCH_THREADS") or "1")
   math.randomseed(thread_no * 7919 + os.time())
end

function request()
   local k = offset + thread_no + i * nthreads
   i = i + 1
   local start = base + k * 900
   local body = string.format(
      '{"patient_id":"%s","vet_id":"%s","start":"%s","end":"%s","type":"consultation",' ..
      '"reason":"bench"}',
      patients[math.random(#patients)], vet, os.date("!%Y-%m-%dT%H:%M:%SZ", start),
      os.date("!%Y-%m-%dT%H:%M:%SZ", start + 900))
   return wrk.format("POST", "/v1/appointments", common.headers(true), body)
end
