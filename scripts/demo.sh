#!/usr/bin/env bash
# Loads a small demo clinic through the HTTP API (never behind its back):
# a tenant, its staff, clients and patients. Run once by `make run`; prints the
# tenant id. Idempotent: every command carries an Idempotency-Key, so a second
# run replays the same answers instead of adding duplicates.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

WRITER="http://127.0.0.1:$WRITER_PORT"
jwt=$(secret jwt_hs256_secret "${VETPMS_JWT_HS256_SECRET:-}")
tenant_file="$VAR_DIR/demo_tenant_id"

token() { VETPMS_JWT_HS256_SECRET=$jwt "$BIN_DIR/vetctl" token --ttl-s 600 "$@"; }

# post TOKEN KEY PATH JSON -> prints the new id
post() {
  local answer
  answer=$(curl -fsS -X POST "$WRITER$3" -H "Authorization: Bearer $1" \
    -H "Idempotency-Key: demo-$2" -H 'Content-Type: application/json' -d "$4") \
    || die "demo: POST $3 failed"
  printf '%s' "$answer" | sed -n 's/.*"id":"\([0-9a-f-]*\)".*/\1/p'
}

if [ -s "$tenant_file" ]; then tenant=$(cat "$tenant_file"); else
  tenant=$(post "$(token --role platform-admin --sub demo)" tenant /v1/tenants \
    '{"name":"Happy Paws Veterinary Clinic","timezone":"Europe/London","currency":"GBP"}')
  echo "$tenant" > "$tenant_file"
fi
admin=$(token --role admin --tenant "$tenant" --sub demo-admin)
vet=$(token --role vet --tenant "$tenant" --sub demo-vet)

post "$admin" staff-1 /v1/staff '{"name":"Dr. Sarah Johnson","role":"veterinarian","email":"sarah@happypaws.example","license_number":"RCVS-1001"}' >/dev/null
post "$admin" staff-2 /v1/staff '{"name":"Dr. Michael Chen","role":"veterinarian","email":"michael@happypaws.example","license_number":"RCVS-1002"}' >/dev/null
post "$admin" staff-3 /v1/staff '{"name":"Emma Wilson","role":"nurse"}' >/dev/null
post "$admin" staff-4 /v1/staff '{"name":"Tom Baker","role":"receptionist"}' >/dev/null

i=0
while IFS='|' read -r first last pet species sex breed chip kg; do
  i=$((i + 1))
  client=$(post "$admin" "client-$i" /v1/clients \
    "{\"first_name\":\"$first\",\"last_name\":\"$last\",\"email\":\"${first,,}.${last,,}@example.org\",\"phone\":\"+44 20 7946 00$i$i\"}")
  post "$vet" "patient-$i" /v1/patients \
    "{\"client_id\":\"$client\",\"name\":\"$pet\",\"species\":\"$species\",\"sex\":\"$sex\",\"breed\":\"$breed\",\"microchip\":\"$chip\",\"weight\":{\"value\":$kg,\"unit\":\"kg\"}}" >/dev/null
done <<'DATA'
Alice|Smith|Bella|canine|female|Labrador|985112000000001|28.4
Bob|Jones|Max|canine|male|Beagle|985112000000002|11.2
Carol|Taylor|Luna|feline|female|Siamese|985112000000003|4.1
David|Brown|Charlie|canine|male|Collie|985112000000004|19.7
Eve|Davies|Milo|feline|male|Maine Coon|985112000000005|6.8
Frank|Evans|Daisy|rabbit|female|Lop|AVID12345X|2.2
DATA
echo "$tenant"
