#!/usr/bin/env bash
# Loads a small demo clinic through the HTTP API (never behind its back):
# a tenant, its staff, clients and patients, then a week of the two vets'
# availability and 15 appointments in it, and five past visits (medical
# records with vitals, SOAP, diagnoses, treatments, prescriptions, signatures), and a
# small formulary with batches and a few dispenses. Run by `make run`; prints the tenant
# id. Safe to re-run on the same stack: every command carries an
# Idempotency-Key, so a second run replays the same answers instead of adding
# duplicates. Scheduling keys name the clinic date they are for, so a re-run on
# a later day replays the dates already loaded and adds the new ones.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

WRITER="http://127.0.0.1:$WRITER_PORT"
jwt=$(secret jwt_hs256_secret "${VETPMS_JWT_HS256_SECRET:-}")
tenant_file="$VAR_DIR/demo_tenant_id"
# the tenant's timezone: clinic hours are local (a test may pick another, so
# that "now" falls inside the clinic's day)
TZNAME="${VETPMS_DEMO_TIMEZONE:-Europe/London}"

token() { VETPMS_JWT_HS256_SECRET=$jwt "$BIN_DIR/vetctl" token --ttl-s 600 "$@"; }

# post TOKEN KEY PATH JSON -> prints the new id
post() {
  local answer
  answer=$(curl -fsS -X POST "$WRITER$3" -H "Authorization: Bearer $1" \
    -H "Idempotency-Key: demo-$2" -H 'Content-Type: application/json' -d "$4") \
    || die "demo: POST $3 failed"
  printf '%s' "$answer" | sed -n 's/.*"id":"\([0-9a-f-]*\)".*/\1/p'
}

# post_soft TOKEN KEY PATH JSON: like post, but a refusal (say a slot someone
# booked by hand since the last run) is logged and skipped; returns 1 then.
post_soft() {
  local answer code
  answer=$(curl -sS -o - -w '\n%{http_code}' -X POST "$WRITER$3" -H "Authorization: Bearer $1" \
    -H "Idempotency-Key: demo-$2" -H 'Content-Type: application/json' -d "$4") \
    || die "demo: POST $3 failed"
  code=${answer##*$'\n'}
  case $code in
    2??) return 0 ;;
    *) log "demo: $2 skipped: HTTP $code ${answer%$'\n'*}"; return 1 ;;
  esac
}

# utc DATE HH:MM -> that local clinic time (tenant timezone) as a UTC instant
utc() { date -u -d "TZ=\"$TZNAME\" $1 $2" +%Y-%m-%dT%H:%M:%SZ; }
# utc_plus DATE HH:MM MINUTES -> the instant MINUTES after that local time
utc_plus() { date -u -d "@$(( $(date -u -d "TZ=\"$TZNAME\" $1 $2" +%s) + $3 * 60 ))" +%Y-%m-%dT%H:%M:%SZ; }

if [ -s "$tenant_file" ]; then tenant=$(cat "$tenant_file"); else
  tenant=$(post "$(token --role platform-admin --sub demo)" tenant /v1/tenants \
    "{\"name\":\"Happy Paws Veterinary Clinic\",\"timezone\":\"$TZNAME\",\"currency\":\"GBP\"}")
  echo "$tenant" > "$tenant_file"
fi
admin=$(token --role admin --tenant "$tenant" --sub demo-admin)
vet=$(token --role vet --tenant "$tenant" --sub demo-vet)

vets=()
vets[1]=$(post "$admin" staff-1 /v1/staff '{"name":"Dr. Sarah Johnson","role":"veterinarian","email":"sarah@happypaws.example","license_number":"RCVS-1001"}')
vets[2]=$(post "$admin" staff-2 /v1/staff '{"name":"Dr. Michael Chen","role":"veterinarian","email":"michael@happypaws.example","license_number":"RCVS-1002"}')
nurse_id=$(post "$admin" staff-3 /v1/staff '{"name":"Emma Wilson","role":"nurse"}')
post "$admin" staff-4 /v1/staff '{"name":"Tom Baker","role":"receptionist"}' >/dev/null

i=0
patients=()
clients=()
while IFS='|' read -r first last pet species sex breed chip kg; do
  i=$((i + 1))
  client=$(post "$admin" "client-$i" /v1/clients \
    "{\"first_name\":\"$first\",\"last_name\":\"$last\",\"email\":\"${first,,}.${last,,}@example.org\",\"phone\":\"+44 20 7946 00$i$i\"}")
  clients[i]=$client
  patients[i]=$(post "$vet" "patient-$i" /v1/patients \
    "{\"client_id\":\"$client\",\"name\":\"$pet\",\"species\":\"$species\",\"sex\":\"$sex\",\"breed\":\"$breed\",\"microchip\":\"$chip\",\"weight\":{\"value\":$kg,\"unit\":\"kg\"}}")
done <<'DATA'
Alice|Smith|Bella|canine|female|Labrador|985112000000001|28.4
Bob|Jones|Max|canine|male|Beagle|985112000000002|11.2
Carol|Taylor|Luna|feline|female|Siamese|985112000000003|4.1
David|Brown|Charlie|canine|male|Collie|985112000000004|19.7
Eve|Davies|Milo|feline|male|Maine Coon|985112000000005|6.8
Frank|Evans|Daisy|rabbit|female|Lop|AVID12345X|2.2
DATA

# --- a week of scheduling: today and the next 7 clinic dates ------------------
# Opening hours per ISO weekday (1 = Monday), local time, per vet: both vets
# 09:00-17:00 on weekdays, Dr. Chen also 09:00-13:00 on Saturdays.
hours() { # VET WEEKDAY -> "HH:MM HH:MM" or nothing
  case "$1:$2" in
    [12]:[1-5]) echo "09:00 17:00" ;;
    2:6) echo "09:00 13:00" ;;
  esac
}
# The week's appointments by weekday, booked from tomorrow on (start must be in
# the future): weekday|vet|local start|minutes|type|patient|reason. Seven
# consecutive dates hold each weekday once, so every run books all 15.
APPOINTMENTS='1|1|09:00|30|consultation|1|Limping on the left hind leg
1|2|10:30|15|vaccination|3|Annual booster
1|1|14:00|90|surgery|4|Lump removal
2|2|09:30|30|follow_up|2|Ear infection recheck
2|1|11:00|20|vaccination|5|Second kitten vaccination
2|1|15:30|60|dental|1|Scale and polish
3|1|10:00|30|consultation|6|Not eating since Sunday
3|2|13:00|120|surgery|4|Neutering
4|1|09:00|15|vaccination|2|Rabies vaccination for travel
4|2|11:30|30|consultation|3|Weight loss
4|1|16:00|30|grooming|5|Matted coat
5|2|09:00|45|dental|6|Overgrown incisors
5|1|12:00|30|follow_up|4|Post-operative check
5|2|14:30|30|consultation|1|Itchy skin
6|2|10:00|30|consultation|2|Vomiting since yesterday'

# VETPMS_DEMO_TODAY (YYYY-MM-DD) pretends the clinic's date is another one (tests).
today=${VETPMS_DEMO_TODAY:-$(TZ=$TZNAME date +%F)}
noon=$(date -u -d "$today 12:00" +%s)  # noon UTC + n days is always on date today + n
date_plus() { date -u -d "@$((noon + $1 * 86400))" +%F; }
blocks=0 booked=0 skipped=0
for d in 0 1 2 3 4 5 6 7; do
  day=$(date_plus "$d")
  wd=$(date -u -d "$day 12:00" +%u)
  for v in 1 2; do
    read -r open close <<< "$(hours "$v" "$wd")"
    [ -n "$open" ] || continue
    if post_soft "$admin" "availability-$v-$day" "/v1/staff/${vets[v]}/availability" \
      "{\"blocks\":[{\"start\":\"$(utc "$day" "$open")\",\"end\":\"$(utc "$day" "$close")\"}]}"; then
      blocks=$((blocks + 1)); else skipped=$((skipped + 1)); fi
  done
  [ "$d" -gt 0 ] || continue
  n=0
  while IFS='|' read -r awd av at amin atype ap areason; do
    [ "$awd" = "$wd" ] || continue
    n=$((n + 1))
    if post_soft "$admin" "appointment-$day-$n" /v1/appointments \
      "{\"patient_id\":\"${patients[ap]}\",\"vet_id\":\"${vets[av]}\",\"start\":\"$(utc "$day" "$at")\",\"end\":\"$(utc_plus "$day" "$at" "$amin")\",\"type\":\"$atype\",\"reason\":\"$areason\"}"; then
      booked=$((booked + 1)); else skipped=$((skipped + 1)); fi
  done <<< "$APPOINTMENTS"
done
last=$(date_plus 7)

# --- past visits: medical records ---------------------------------------------
# Dated back from the day of the first run, kept in var/ so a re-run replays the
# same commands (same keys, same bodies) on any later day.
visits_file="$VAR_DIR/demo_visits_date"
[ -s "$visits_file" ] || echo "$today" > "$visits_file"
anchor=$(date -u -d "$(cat "$visits_file") 12:00" +%s)
ago() { date -u -d "@$((anchor - $1 * 86400))" +%F; }        # DAYS -> local date
ago_at() { utc "$(ago "$1")" "$2"; }                           # DAYS HH:MM -> UTC
nurse=$(token --role nurse --tenant "$tenant" --sub demo-nurse)
rec() { post "$1" "visit-$2" "/v1/medical-records$3" "$4"; }   # TOKEN KEY PATH JSON

# Bella, 30 days ago: a sprained knee, signed, with a later addendum.
r=$(rec "$vet" 1-open "" "{\"patient_id\":\"${patients[1]}\",\"record_type\":\"consultation\",\"chief_complaint\":\"Limping on the left hind leg\",\"visit_date\":\"$(ago 30)\"}")
rec "$nurse" 1-vitals "/$r/vitals" "{\"temperature_c\":38.6,\"pulse_bpm\":92,\"respiration_rpm\":24,\"weight\":{\"value\":28.1,\"unit\":\"kg\"},\"body_condition_score\":5,\"pain_score\":3,\"recorded_at\":\"$(ago_at 30 09:10)\"}" >/dev/null
rec "$vet" 1-soap "/$r/soap" '{"subjective":"Lame on the left hind since a run in the park two days ago.","objective":"Grade 2/5 lameness, mild stifle effusion, no drawer sign.","assessment":"Soft tissue strain of the left stifle.","plan":"Rest, NSAID for 7 days, recheck if not improving."}' >/dev/null
rec "$vet" 1-dx "/$r/diagnoses" '{"name":"Stifle strain","code":"VeNom 12345","primary":true}' >/dev/null
rec "$vet" 1-rx "/$r/prescriptions" '{"medication":"Meloxicam 1.5 mg/ml oral suspension","dosage":"0.1 mg/kg","frequency":"once daily with food","route":"oral","duration_days":7,"quantity":20,"refills":0}' >/dev/null
rec "$vet" 1-sign "/$r/sign" '{}' >/dev/null
rec "$vet" 1-addendum "/$r/addenda" '{"text":"Owner called on day 5: walking normally, NSAID stopped."}' >/dev/null

# Max, 350 days ago: a rabies vaccination due again in a fortnight (reminders).
r=$(rec "$vet" 2-open "" "{\"patient_id\":\"${patients[2]}\",\"record_type\":\"vaccination\",\"visit_date\":\"$(ago 350)\"}")
rec "$vet" 2-vx "/$r/treatments" "{\"name\":\"Rabies\",\"treatment_type\":\"vaccination\",\"performed_at\":\"$(ago_at 350 10:00)\",\"next_due_on\":\"$(ago -15)\"}" >/dev/null
rec "$vet" 2-soap "/$r/soap" '{"assessment":"Healthy, fit to vaccinate."}' >/dev/null
rec "$vet" 2-sign "/$r/sign" '{}' >/dev/null

# Luna, 20 days ago: the yearly booster, signed.
r=$(rec "$vet" 3-open "" "{\"patient_id\":\"${patients[3]}\",\"record_type\":\"vaccination\",\"visit_date\":\"$(ago 20)\"}")
rec "$nurse" 3-vitals "/$r/vitals" "{\"temperature_c\":38.4,\"weight\":{\"value\":4.0,\"unit\":\"kg\"},\"recorded_at\":\"$(ago_at 20 11:00)\"}" >/dev/null
rec "$vet" 3-vx "/$r/treatments" "{\"name\":\"Feline RCP booster\",\"treatment_type\":\"vaccination\",\"performed_at\":\"$(ago_at 20 11:05)\",\"next_due_on\":\"$(ago -345)\"}" >/dev/null
rec "$vet" 3-dx "/$r/diagnoses" '{"name":"Healthy","primary":true}' >/dev/null
rec "$vet" 3-sign "/$r/sign" '{}' >/dev/null

# Milo, 10 days ago: a dental with extractions, signed.
r=$(rec "$vet" 5-open "" "{\"patient_id\":\"${patients[5]}\",\"record_type\":\"dental\",\"chief_complaint\":\"Bad breath, dropping food\",\"visit_date\":\"$(ago 10)\"}")
rec "$vet" 5-tx "/$r/treatments" "{\"name\":\"Scale, polish and two extractions\",\"treatment_type\":\"dental\",\"performed_at\":\"$(ago_at 10 10:30)\"}" >/dev/null
rec "$vet" 5-dx "/$r/diagnoses" '{"name":"Periodontal disease","code":"PD3","status":"confirmed","primary":true}' >/dev/null
rec "$vet" 5-rx "/$r/prescriptions" '{"medication":"Clindamycin 25 mg capsules","dosage":"1 capsule","frequency":"twice daily","route":"oral","duration_days":10,"quantity":20,"refills":0}' >/dev/null
rec "$vet" 5-sign "/$r/sign" '{}' >/dev/null

# Charlie, 3 days ago: a post-operative check still open (not signed).
r=$(rec "$nurse" 4-open "" "{\"patient_id\":\"${patients[4]}\",\"record_type\":\"follow_up\",\"chief_complaint\":\"Post-operative check\",\"visit_date\":\"$(ago 3)\"}")
rec "$nurse" 4-vitals "/$r/vitals" "{\"temperature_c\":38.9,\"pulse_bpm\":100,\"recorded_at\":\"$(ago_at 3 15:00)\"}" >/dev/null
rec "$nurse" 4-soap "/$r/soap" '{"subjective":"Eating well, licking the wound at night.","objective":"Wound clean and dry, sutures intact."}' >/dev/null

# --- a small formulary: items, batches (one close to expiry), dispenses -----------
# Expiry dates count from the same anchor as the visits, so a re-run replays the
# same bodies. The controlled opioid's dispense is witnessed by the nurse (her
# staff id); the actor is the vet's token, someone else.
inv() { post "$1" "stock-$2" "/v1/inventory/items$3" "$4"; }   # TOKEN KEY PATH JSON
ahead() { ago "-$1"; }                                          # DAYS -> a later date
vaccine=$(inv "$admin" item-1 "" '{"code":"VAC-RCP","name":"Feline RCP vaccine","category":"vaccine","unit":"dose","reorder_point":5,"reorder_quantity":20,"sale_price_cents":3500,"tax_rate_bp":2000}')
antibiotic=$(inv "$admin" item-2 "" '{"code":"AMOX-250","name":"Amoxicillin 250 mg tablets","category":"medication","unit":"tablet","requires_prescription":true,"reorder_point":50,"reorder_quantity":200,"sale_price_cents":45,"tax_rate_bp":2000}')
opioid=$(inv "$admin" item-3 "" '{"code":"BUP-03","name":"Buprenorphine 0.3 mg/ml injection","category":"medication","unit":"ml","controlled":true,"reorder_point":2.5,"reorder_quantity":10,"sale_price_cents":900,"tax_rate_bp":2000}')
food=$(inv "$admin" item-4 "" '{"code":"FOOD-RC-2","name":"Renal care dry food 2 kg","category":"food","unit":"bag","reorder_point":3,"reorder_quantity":12,"sale_price_cents":2899,"tax_rate_bp":0}')
inv "$admin" rcv-1 "/$vaccine/receipts" "{\"batch_number\":\"RCP-2311\",\"lot_number\":\"L2311\",\"quantity\":12,\"expiry_date\":\"$(ahead 20)\",\"unit_cost_cents\":1400,\"supplier_invoice\":\"SUP-7781\"}" >/dev/null
inv "$admin" rcv-2 "/$vaccine/receipts" "{\"batch_number\":\"RCP-2402\",\"lot_number\":\"L2402\",\"quantity\":24,\"expiry_date\":\"$(ahead 300)\",\"unit_cost_cents\":1400,\"supplier_invoice\":\"SUP-7781\"}" >/dev/null
inv "$admin" rcv-3 "/$antibiotic/receipts" "{\"batch_number\":\"AMX-88\",\"lot_number\":\"A88\",\"quantity\":500,\"expiry_date\":\"$(ahead 540)\",\"unit_cost_cents\":9}" >/dev/null
inv "$admin" rcv-4 "/$opioid/receipts" "{\"batch_number\":\"BUP-19\",\"lot_number\":\"B19\",\"quantity\":10,\"expiry_date\":\"$(ahead 200)\",\"unit_cost_cents\":310}" >/dev/null
inv "$admin" rcv-5 "/$food/receipts" '{"batch_number":"RC-A","quantity":6,"unit_cost_cents":1600}' >/dev/null
inv "$admin" rcv-6 "/$food/receipts" "{\"batch_number\":\"RC-B\",\"quantity\":8,\"expiry_date\":\"$(ahead 120)\",\"unit_cost_cents\":1600}" >/dev/null
inv "$nurse" dsp-1 "/$vaccine/dispenses" "{\"quantity\":1,\"patient_id\":\"${patients[3]}\"}" >/dev/null
inv "$vet" dsp-2 "/$opioid/dispenses" "{\"quantity\":0.4,\"patient_id\":\"${patients[4]}\",\"witness_id\":\"$nurse_id\"}" >/dev/null
inv "$nurse" dsp-3 "/$food/dispenses" '{"quantity":2}' >/dev/null
inv "$admin" adj-1 "/$food/adjustments" '{"batch_number":"RC-A","reason":"count","counted_quantity":3}' >/dev/null

# --- billing: invoices in every status --------------------------------------------
# Issued in date order (issued_on back-dated from the same anchor: an issue date
# is never before the previous invoice's, so numbers stay chronological), paid,
# part-paid, refunded, voided, one overdue and one still a draft. The vaccine and
# food lines name their items: issuing dispenses them FEFO. Loaded once per
# tenant (var/demo_billing_done): a re-run after the idempotency window would
# otherwise bill the same visits again.
billing_done="$VAR_DIR/demo_billing_done"
if [ ! -e "$billing_done" ]; then
reception=$(token --role reception --tenant "$tenant" --sub demo-reception)
bill() { post "$1" "bill-$2" "/v1/invoices$3" "$4"; }          # TOKEN KEY PATH JSON
line() { bill "$reception" "$1" "/$2/lines" "$3" >/dev/null; }  # KEY INVOICE JSON
issue() { bill "$reception" "$1" "/$2/issue" "{\"issued_on\":\"$(ago "$3")\",\"due_in_days\":$4}" >/dev/null; }
pay() { bill "$reception" "$1" "/$2/payments" "{\"amount_cents\":$3,\"method\":\"$4\",\"received_on\":\"$(ago "$5")\"}" >/dev/null; }
# Daisy, 45 days ago: nail clip and a check-up, paid by card, then 20.00 refunded.
# The payment's id is the demo's choice, kept in var/ so a re-run replays it.
payment_file="$VAR_DIR/demo_payment_id"
[ -s "$payment_file" ] || cat /proc/sys/kernel/random/uuid > "$payment_file"
payment=$(cat "$payment_file")
inv1=$(bill "$reception" 1 "" "{\"client_id\":\"${clients[6]}\"}")
line 1-l1 "$inv1" '{"description":"Nail clip","quantity":1,"unit_price_cents":1500,"tax_rate_bp":2000}'
line 1-l2 "$inv1" '{"description":"Health check","quantity":1,"unit_price_cents":3500,"tax_rate_bp":2000}'
issue 1-issue "$inv1" 45 14
bill "$reception" 1-pay "/$inv1/payments" "{\"payment_id\":\"$payment\",\"amount_cents\":6000,\"method\":\"card\",\"received_on\":\"$(ago 44)\"}" >/dev/null
bill "$admin" 1-refund "/$inv1/payments/$payment/refund" '{"amount_cents":2000,"reason":"Goodwill: the check-up was cut short"}' >/dev/null
# Bella, 30 days ago: the knee consultation and meloxicam, paid in full.
inv2=$(bill "$reception" 2 "" "{\"client_id\":\"${clients[1]}\"}")
line 2-l1 "$inv2" '{"description":"Consultation","quantity":1,"unit_price_cents":4500,"tax_rate_bp":2000}'
line 2-l2 "$inv2" '{"description":"Meloxicam 1.5 mg/ml oral suspension, ml","quantity":20,"unit_price_cents":38,"tax_rate_bp":2000}'
issue 2-issue "$inv2" 30 30
pay 2-pay "$inv2" 6312 card 28
# Luna, 20 days ago: the booster (the vaccine from stock), due in 14 days: overdue.
inv3=$(bill "$reception" 3 "" "{\"client_id\":\"${clients[3]}\"}")
line 3-l1 "$inv3" '{"description":"Vaccination consultation","quantity":1,"unit_price_cents":2500,"tax_rate_bp":2000}'
line 3-l2 "$inv3" "{\"description\":\"Feline RCP vaccine\",\"quantity\":1,\"item_id\":\"$vaccine\"}"
issue 3-issue "$inv3" 20 14
# Max, 15 days ago: issued twice by mistake; the duplicate is voided.
inv4=$(bill "$reception" 4 "" "{\"client_id\":\"${clients[2]}\"}")
line 4-l1 "$inv4" '{"description":"Consultation","quantity":1,"unit_price_cents":4500,"tax_rate_bp":2000}'
issue 4-issue "$inv4" 15 30
bill "$admin" 4-void "/$inv4/void" '{"reason":"Issued twice: the visit was billed on the vaccination invoice"}' >/dev/null
# Milo, 10 days ago: the dental with a 10 % discount and a bag of renal food, part paid.
inv5=$(bill "$reception" 5 "" "{\"client_id\":\"${clients[5]}\"}")
line 5-l1 "$inv5" '{"description":"Dental: scale, polish, two extractions","quantity":1,"unit_price_cents":32000,"discount_bp":1000,"tax_rate_bp":2000}'
line 5-l2 "$inv5" "{\"description\":\"Renal care dry food 2 kg\",\"quantity\":1,\"item_id\":\"$food\"}"
issue 5-issue "$inv5" 10 30
pay 5-pay "$inv5" 10000 cash 9
# Alice, today: two bags of food, issued, not yet due; Charlie's follow-up, a draft.
inv6=$(bill "$reception" 6 "" "{\"client_id\":\"${clients[1]}\"}")
line 6-l1 "$inv6" "{\"description\":\"Renal care dry food 2 kg\",\"quantity\":2,\"item_id\":\"$food\"}"
issue 6-issue "$inv6" 0 30
inv7=$(bill "$reception" 7 "" "{\"client_id\":\"${clients[4]}\"}")
line 7-l1 "$inv7" '{"description":"Post-operative check","quantity":1,"unit_price_cents":0}'
echo "$tenant" > "$billing_done"
fi

log "demo: tenant $tenant: 4 staff, 6 clients and patients, $blocks availability blocks $today..$last ($TZNAME), $booked appointments$([ "$skipped" = 0 ] || echo ", $skipped skipped"), 5 past visits (4 signed, 1 addendum, 2 vaccinations), 4 stock items (6 receipts, 3 dispenses, 1 count), 7 invoices (paid, refunded, overdue, void, part-paid, issued, draft)"
echo "$tenant"
