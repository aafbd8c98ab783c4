-- POST /v1/appointments for one vet ($BENCH_VET) in 15-minute slots that never
-- overlap: slot k starts $BENCH_SLOT_BASE (epoch s) + k * 15 min. The vet's
-- pre-filled bookings hold every third slot (0, 3, ..., 3*(N-1)), leaving
-- $BENCH_GAPS = 2N free slots between them. Request m (thread t of T takes
-- m = $BENCH_SLOT_OFFSET + t + i*T) books gap g = (m * 7919) % GAPS, slot
-- 3*(g // 2) + 1 + g % 2: a permutation that spreads the inserts over the
-- vet's whole interval set; once m passes the gaps, slot 3N + m. Patients come
-- from $BENCH_IDS (booked by nothing else, so only the vet's set can
-- conflict). Answers are counted by status.
local common = dofile("bench/lua/common.lua")
local patients, vet, base, offset, nthreads, gaps, i = nil, nil, 0, 0, 1, 0, 0

setup = common.setup
done = common.done
response = common.count_status

function init(args)
   patients = common.lines(os.getenv("BENCH_IDS"))
   vet = os.getenv("BENCH_VET")
   base = tonumber(os.getenv("BENCH_SLOT_BASE"))
   offset = tonumber(os.getenv("BENCH_SLOT_OFFSET") or "0")
   nthreads = tonumber(os.getenv("BENCH_THREADS") or "1")
   gaps = tonumber(os.getenv("BENCH_GAPS") or "0")
   math.randomseed(thread_no * 7919 + os.time())
end

function request()
   local m = offset + thread_no + i * nthreads
   i = i + 1
   local k
   if m < gaps then
      local g = (m * 7919) % gaps
      k = 3 * math.floor(g / 2) + 1 + g % 2
   else
      k = 3 * gaps / 2 + m
   end
   local start = base + k * 900
   local body = string.format(
      '{"patient_id":"%s","vet_id":"%s","start":"%s","end":"%s","type":"consultation",' ..
      '"reason":"bench"}',
      patients[math.random(#patients)], vet, os.date("!%Y-%m-%dT%H:%M:%SZ", start),
      os.date("!%Y-%m-%dT%H:%M:%SZ", start + 900))
   return wrk.format("POST", "/v1/appointments", common.headers(true), body)
end
