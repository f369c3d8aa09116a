#!/usr/bin/env bash
# intake's public API over real HTTP: a private PostgreSQL cluster, the
# demo site, the real shouwen-intake binary, curl.  Every status code the
# API promises, idempotency (also two identical submissions racing), what
# each credential may see, the case.registered event written with the case,
# and a clean stop.
set -uo pipefail

name=intake
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
trap intake_cleanup EXIT

# post AUTH BODY [curl args...]: prints "<status> <body>"
post() {
    local auth=$1 body=$2 out; shift 2
    out=$(mktemp -p "$tmp")
    curl -s -o "$out" -w '%{http_code}' -H "Authorization: Bearer $auth" \
        -H 'Content-Type: application/json' "$@" --data-binary "$body" "$api/v1/cases"
    printf ' '; cat "$out"; rm -f "$out"
}
get() { curl -s -o "$tmp/out" -w '%{http_code}' -H "Authorization: Bearer $1" "$api/v1/cases/$2"; printf ' '; cat "$tmp/out"; }
# expect STATUS TEXT OUTPUT: the status is STATUS and the body contains TEXT
expect() { [ "${3%% *}" = "$1" ] && grep -qF -- "$2" <<<"$3" || { echo "got: $3"; return 1; }; }
field() { python3 -c 'import json,sys; d=json.loads(sys.stdin.read().split(" ",1)[1]); print(d'"$1"')'; }

echo "== setup"
intake_setup
check "demo site loaded again: nothing changes" "$top/deploy/demo.sh"
check "one demo key, two tokens (receptionist, manager)" test "$(q "SELECT (SELECT count(*) FROM core.api_keys) || ' ' || (SELECT string_agg(s.code, ',' ORDER BY s.code) FROM core.staff_tokens t JOIN core.staff s ON s.id = t.staff_id)")" = "1 li.desk,qian.mgr"
# two batches in hand at once, so that the submissions racing below can meet
intake_start SHOUWEN_INTAKE_REG_SESSIONS=2

BODY='{"site":"SH01","channel":"phone","type":"complaint","urgency":"normal","subject":"楼上漏水 water from upstairs","description":"ceiling wet since morning","customer":{"name":"张先生","phone":"13800001234","unit":"3栋","address":"3-2-501"},"first_responder":"li.desk","external_ref":"hotline-0001"}'

echo "== registering"
out=$(post "$KEY" "$BODY")
check "the issue's example body: 201" expect 201 '"status":"registered"' "$out"
id=$(field '["id"]' <<<"$out")
number=$(field '["number"]' <<<"$out")
check "number is SH01-<local day>-0001" test "$number" = "SH01-$(TZ=Asia/Shanghai date +%Y%m%d)-0001"
check "version 1" expect 201 '"version":1' "$out"
check "the case is in the database with its first responder and department" test "$(q "SELECT c.number || ' ' || s.code || ' ' || d.code FROM core.cases c JOIN core.staff s ON s.id = c.first_responder_id JOIN core.departments d ON d.id = c.department_id WHERE c.id = '$id'")" = "$number li.desk front-desk"
check "case.registered in the outbox, same transaction" test "$(q "SELECT count(*) FROM bus.events WHERE case_id = '$id' AND type = 'case.registered'")" = 1
out=$(post "$TOKEN" '{"site":"SH01","channel":"visit","type":"repair","subject":"lift broken"}')
check "a staff token registers; the first responder defaults to its staff member" expect 201 '"number":"SH01-' "$out"
id2=$(field '["id"]' <<<"$out")
check "numbers count up per site and day" test "$(field '["number"]' <<<"$out")" = "SH01-$(TZ=Asia/Shanghai date +%Y%m%d)-0002"

echo "== idempotency"
check "same external_ref, same body: 200 with the first case" expect 200 "\"id\":\"$id\"" "$(post "$KEY" "$BODY")"
check "same external_ref, other body: 409" expect 409 'different body' "$(post "$KEY" "${BODY/water from upstairs/something else}")"
check "Idempotency-Key header works as external_ref" expect 201 '"duplicate":false' "$(post "$KEY" '{"site":"SH01","channel":"api","type":"help","subject":"door stuck"}' -H 'Idempotency-Key: idem-1')"
check "... and answers 200 the second time" expect 200 '"duplicate":true' "$(post "$KEY" '{"site":"SH01","channel":"api","type":"help","subject":"door stuck"}' -H 'Idempotency-Key: idem-1')"
race='{"site":"SH01","channel":"api","type":"repair","subject":"race","external_ref":"race-1"}'
for i in $(seq 1 20); do post "$KEY" "$race" >"$tmp/race.$i" & done
wait_jobs() { for j in $(jobs -p); do [ "$j" = "$intake_pid" ] || wait "$j"; done; }
wait_jobs
check "20 identical submissions racing: one case" test "$(q "SELECT count(*) FROM core.cases WHERE external_ref = 'race-1'")" = 1
check "... one 201, 19 answered 200 with it" bash -c "test \"\$(cat '$tmp'/race.* | grep -c '^201 ')/\$(cat '$tmp'/race.* | grep -c '^200 ')\" = 1/19 || { cut -c1-120 '$tmp'/race.*; false; }"
check "... and one event" test "$(q "SELECT count(*) FROM bus.events e JOIN core.cases c ON c.id = e.case_id WHERE c.external_ref = 'race-1'")" = 1
# The same key committed by another transaction after the batch looked it
# up: the batch's INSERT waits for that transaction, fails on the key, and
# the batch answers from the case that won (here 409: another body).
q "BEGIN; INSERT INTO core.cases (id, site_id, number, type, channel, subject, source, external_ref, request_sha256) SELECT gen_random_uuid(), s.id, 'SH01-20000101-9999', 'repair', 'api', 'rival', k.name, 'race-2', decode(repeat('00', 32), 'hex') FROM core.sites s JOIN core.api_keys k ON k.site_id = s.id WHERE s.code = 'SH01'; SELECT pg_sleep(2); COMMIT;" >/dev/null &
rival=$!
rival_waits() { test "$(q "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%rival%pg_sleep%' AND wait_event = 'PgSleep'")" = 1; }
check "(the rival has inserted the key and holds its transaction open)" wait_for 10 rival_waits
out=$(post "$KEY" '{"site":"SH01","channel":"api","type":"repair","subject":"late","external_ref":"race-2"}')
wait "$rival"
check "a rival committing the same key while the batch writes: 409 naming its case" expect 409 'SH01-20000101-9999' "$out"
check "... one case with that key, and no event written for it" test "$(q "SELECT count(*) || '/' || (SELECT count(*) FROM bus.events e JOIN core.cases c ON c.id = e.case_id WHERE c.external_ref = 'race-2') FROM core.cases WHERE external_ref = 'race-2'")" = 1/0
check "... and intake registers the next case as usual" expect 201 '"duplicate":false' "$(post "$KEY" '{"site":"SH01","channel":"api","type":"repair","subject":"after the race","external_ref":"race-3"}')"

echo "== bad input"
check "no credentials: 401" expect 401 'missing credentials' "$(curl -s -w '%{http_code}' -o "$tmp/out" -H 'Content-Type: application/json' -d "$BODY" "$api/v1/cases"; printf ' '; cat "$tmp/out")"
check "unknown key: 401" expect 401 'invalid credentials' "$(post swk_deadbeef_0000000000 "$BODY")"
check "... with WWW-Authenticate: Bearer" bash -c "curl -s -D - -o /dev/null -H 'Authorization: Bearer swk_deadbeef_0000000000' $api/v1/cases | grep -qi '^WWW-Authenticate: Bearer'"
check "... also when no credential came at all" bash -c "curl -s -D - -o /dev/null $api/v1/cases | grep -qi '^WWW-Authenticate: Bearer'"
wrong=${KEY%?}$([ "${KEY: -1}" = 0 ] && echo 1 || echo 0) # the last character changed
check "wrong secret for a real prefix: 401" expect 401 'invalid credentials' "$(post "$wrong" "$BODY")"
check "another site: 403" expect 403 'not ZZ01' "$(post "$KEY" "${BODY/SH01/ZZ01}")"
check "wrong content type: 415" expect 415 'application/json' "$(curl -s -w '%{http_code}' -o "$tmp/out" -H "Authorization: Bearer $KEY" -H 'Content-Type: text/plain' --data-binary "$BODY" "$api/v1/cases"; printf ' '; cat "$tmp/out")"
check "two Content-Types: 400 naming the header" expect 400 'more than one Content-Type header' "$(post "$KEY" "$BODY" -H 'Content-Type: text/plain')"
check "malformed JSON: 400" expect 400 'malformed JSON' "$(post "$KEY" '{"site":')"
check "not an object: 400" expect 400 'expected an object' "$(post "$KEY" '[1,2]')"
check "nested too deep: 400" expect 400 'nested deeper' "$(post "$KEY" "$(printf '%.0s[' $(seq 1 50))")"
check "invalid UTF-8: 400" expect 400 'malformed JSON' "$(post "$KEY" "$(printf '{"site":"SH01","subject":"\xff\xfe"}')")"
head -c 70000 /dev/zero | tr '\0' ' ' >"$tmp/big.json"
check "body over the limit: 413" expect 413 'too large' "$(post "$KEY" @"$tmp/big.json" --data-binary @"$tmp/big.json")"
head -c 3000000 /dev/zero | tr '\0' ' ' >"$tmp/huge.json"
check "a 3 MB body: 413, never read" expect 413 'too large' "$(post "$KEY" @"$tmp/huge.json" --data-binary @"$tmp/huge.json")"
out=$(post "$KEY" '{"site":"SH01","channel":"fax","subject":" ","customer":{"phone":"call me","pet":"cat"},"bogus":1,"required_documents":"id card"}')
check "invalid fields: 422" expect 422 '"error":"invalid fields"' "$out"
for f in channel type subject customer.phone customer.pet bogus required_documents; do
    check "... names $f" expect 422 "\"field\":\"$f\"" "$out"
done
check "subject too long: 422" expect 422 'at most 1000 characters' "$(post "$KEY" "{\"site\":\"SH01\",\"channel\":\"api\",\"type\":\"help\",\"subject\":\"$(printf '长%.0s' $(seq 1 1001))\"}")"
check "unknown first responder: 422 naming it" expect 422 'no active staff member \"nobody\"' "$(post "$KEY" '{"site":"SH01","channel":"api","type":"help","subject":"x","first_responder":"nobody"}')"
check "unknown path: 404" expect 404 'no such resource' "$(curl -s -w '%{http_code}' -o "$tmp/out" "$api/v1/nothing"; printf ' '; cat "$tmp/out")"
check "wrong method: 405" expect 405 'method not allowed' "$(curl -s -X DELETE -w '%{http_code}' -o "$tmp/out" "$api/v1/cases"; printf ' '; cat "$tmp/out")"
check "bad input counted" test "$(curl -s "http://$admin/metrics" | awk '/^shouwen_intake_bad_requests_total/ {print $2}')" -ge 15
check "still serving after all that" expect 201 '"status":"registered"' "$(post "$KEY" '{"site":"SH01","channel":"api","type":"help","subject":"still here"}')"

echo "== reading"
out=$(get "$TOKEN" "$id")
check "GET a case: 200 with its version as ETag" expect 200 "\"number\":\"$number\"" "$out"
check "the receptionist sees the phone" expect 200 '"phone":"13800001234"' "$out"
check "the submitting system sees its own case" expect 200 "\"id\":\"$id\"" "$(get "$KEY" "$id")"
check "a system does not see cases it did not submit: 404" expect 404 'no such case' "$(get "$KEY" "$id2")"
check "unknown case: 404" expect 404 'no such case' "$(get "$TOKEN" 00000000-0000-4000-8000-000000000000)"
check "not a UUID: 404" expect 404 'not a UUID' "$(get "$TOKEN" 12345)"
qa_token="swt_$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
q "INSERT INTO core.staff_tokens (staff_id, token_hash, expires_at) SELECT id, sha256('$qa_token'::bytea), now() + interval '1 day' FROM core.staff WHERE code = 'wei.qa'" >/dev/null
check "QA sees the phone masked" expect 200 '"phone":"138****1234"' "$(get "$qa_token" "$id")"
out=$(post "$TOKEN" '{"site":"SH01","channel":"visit","type":"help","subject":"room and e-mail","customer":{"name":"王女士","room":"1202","email":"wang@example.cn"}}')
rid=$(field '["id"]' <<<"$out")
check "the customer's room and e-mail are kept" expect 200 '"room":"1202","email":"wang@example.cn"' "$(get "$TOKEN" "$rid")"
check "... the e-mail hidden from QA like the phone" expect 200 '"room":"1202","email":"***"' "$(get "$qa_token" "$rid")"
q "UPDATE core.staff_tokens SET revoked_at = now() WHERE token_hash = sha256('$qa_token'::bytea)" >/dev/null
check "a revoked token: 401" expect 401 'invalid credentials' "$(get "$qa_token" "$id")"
check "no customer data in the log" bash -c "! grep -q '13800001234\|张先生' '$tmp/intake.log'"

echo "== the workers' sessions are cut, and their prepared statements with them"
# intake prepares its writes once per session; a new session must prepare
# them again, not assume them
for i in 1 2 3 4 5 6 7 8; do
    post "$KEY" "{\"site\":\"SH01\",\"channel\":\"api\",\"type\":\"help\",\"subject\":\"before the cut $i\"}" >/dev/null
done
check "the workers' sessions are cut" test "$(q "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'intake'")" -ge 1
cut_post() { curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' -d "{\"site\":\"SH01\",\"channel\":\"api\",\"type\":\"help\",\"subject\":\"after the cut\",\"external_ref\":\"cut-$1\"}" "$api/v1/cases"; }
check "... registrations go through again on new sessions (a retry of one the cut refused may find it done: 200)" wait_for 15 bash -c "$(declare -f cut_post); KEY='$KEY' api='$api'; for i in 1 2 3 4 5 6 7 8; do case \$(cut_post \$i) in 200 | 201) ;; *) exit 1 ;; esac; done"
check "... each once" test "$(q "SELECT count(*) FROM core.cases WHERE external_ref LIKE 'cut-%'")" = 8

echo "== the database goes away and comes back"
"$top/deploy/pg.sh" stop >/dev/null
check "database down: 503 with Retry-After, no crash" expect 503 'database unavailable' "$(post "$KEY" '{"site":"SH01","channel":"api","type":"help","subject":"while down","external_ref":"down-1"}')"
"$top/deploy/pg.sh" start >/dev/null
check "back: the same submission goes through" wait_for 15 bash -c "curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer $KEY' -H 'Content-Type: application/json' -d '{\"site\":\"SH01\",\"channel\":\"api\",\"type\":\"help\",\"subject\":\"while down\",\"external_ref\":\"down-1\"}' $api/v1/cases | grep -q 201"

echo "== a database migrated after intake started"
# Regression: a worker learnt the bus's partitions only right after a
# reconnect; started on an unmigrated database it answered 503 for ever.
q "CREATE DATABASE late" >/dev/null
late_url="${SHOUWEN_DATABASE_URL/dbname=* /dbname=late }"
late=$(free_ports 2) # its HTTP port; admin on the next
SHOUWEN_DATABASE_URL=$late_url SHOUWEN_INTAKE_WORKERS=1 SHOUWEN_INTAKE_HTTP_ADDR=127.0.0.1:$late \
    SHOUWEN_INTAKE_ADMIN_ADDR=127.0.0.1:$((late + 1)) SHOUWEN_INTAKE_PUB_URL="ipc://$tmp/late.pub" \
    SHOUWEN_INTAKE_REP_ADDR="ipc://$tmp/late.rep" "$bin/shouwen-intake" 2>"$tmp/late.log" &
late_pid=$!
check "second intake up on an empty database" wait_for 10 curl -s "http://127.0.0.1:$((late + 1))/healthz"
late_post() { curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' -d '{"site":"SH01","channel":"api","type":"help","subject":"late"}' "http://127.0.0.1:$late/v1/cases"; }
check "... no schema yet: 503" test "$(late_post)" = 503
check "... migrated meanwhile" env SHOUWEN_DATABASE_URL="$late_url" "$bin/shouwen-migrate"
check "... then it serves without a restart (401: this database has no keys)" wait_for 10 bash -c "test \"\$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer $KEY' -H 'Content-Type: application/json' -d '{\"site\":\"SH01\",\"channel\":\"api\",\"type\":\"help\",\"subject\":\"late\"}' http://127.0.0.1:$late/v1/cases)\" = 401"
kill -TERM "$late_pid"
wait "$late_pid"

echo "== a batch too large for one round trip"
# 400 registrations held back by a lock on the case-number counter, then
# committed as one batch: their events need more INSERTs than fit in the
# batch's pipeline, so they go in with COPY before the COMMIT.
intake_stop
intake_start SHOUWEN_INTAKE_BATCH_MAX=1000 SHOUWEN_INTAKE_REG_SESSIONS=1
# The lock is held until all 400 requests are in (counted on /metrics),
# then released by cancelling its holder: no timer to lose on a slow host.
q "BEGIN; LOCK TABLE core.case_numbers IN EXCLUSIVE MODE; SELECT 'big', pg_sleep(120); COMMIT;" >/dev/null 2>&1 &
locker=$!
locked() { test "$(q "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%''big'', pg_sleep%' AND wait_event = 'PgSleep'")" = 1; }
check "(the counter is locked)" wait_for 10 locked
requests() { curl -s "http://$admin/metrics" | awk '/^shouwen_intake_requests_total/ {print $2}'; }
r0=$(requests)
for i in $(seq 1 400); do
    curl -s -o /dev/null -w '%{http_code}\n' -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
        -d "{\"site\":\"SH01\",\"channel\":\"api\",\"type\":\"help\",\"subject\":\"big $i\",\"external_ref\":\"big-$i\"}" \
        "$api/v1/cases" >"$tmp/big.$i" &
done
all_arrived() { test "$(($(requests) - r0))" -ge 400; }
check "(400 requests arrived and wait)" wait_for 60 all_arrived
sleep 0.3
q "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE '%''big'', pg_sleep%' AND wait_event = 'PgSleep'" >/dev/null
wait "$locker"
wait_jobs
check "400 held back, then all answered 201" test "$(cat "$tmp"/big.* | grep -c '^201$')" = 400
largest=$(q "SELECT max(n) FROM (SELECT count(*) n FROM bus.events WHERE type = 'case.registered' GROUP BY txid) t")
check "... nearly all of them in one transaction ($largest events)" test "$largest" -ge 330
check "... 400 cases, each with its one event" test "$(q "SELECT count(*) || '/' || count(e.seq) FROM core.cases c LEFT JOIN bus.events e ON e.case_id = c.id WHERE c.external_ref LIKE 'big-%'")" = 400/400

echo "== one batch of every kind of answer"
# Credentials, earlier submissions, first responders and case numbers are
# checked in one statement that decides, as the C code does, which jobs
# will be written, and takes their numbers (handle_register.c).  A batch
# mixing every outcome: each answered as alone, the new cases numbered
# without a gap, and no numbers taken anew (the statement and the code
# agreed).
q "BEGIN; LOCK TABLE core.case_numbers IN EXCLUSIVE MODE; SELECT 'mix', pg_sleep(120); COMMIT;" >/dev/null 2>&1 &
locker=$!
locked() { test "$(q "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%''mix'', pg_sleep%' AND wait_event = 'PgSleep'")" = 1; }
check "(the counter is locked)" wait_for 10 locked
mix() { # NAME AUTH BODY: posts in the background, the answer in $tmp/mix.NAME
    curl -s -o "$tmp/mix.$1.body" -w '%{http_code}' -H "Authorization: Bearer $2" \
        -H 'Content-Type: application/json' --data-binary "$3" "$api/v1/cases" >"$tmp/mix.$1" &
}
r0=$(requests)
mix first "$KEY" '{"site":"SH01","channel":"api","type":"help","subject":"the batch ahead","external_ref":"mix-0"}'
ahead() { test "$(q "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'intake' AND wait_event_type = 'Lock'")" = 1; }
check "(a batch ahead waits for the counter)" wait_for 10 ahead
mix new "$KEY" '{"site":"SH01","channel":"api","type":"help","subject":"mixed new","external_ref":"mix-1"}'
mix twin "$KEY" '{"site":"SH01","channel":"api","type":"help","subject":"mixed new","external_ref":"mix-1"}'
mix noref "$KEY" '{"site":"SH01","channel":"api","type":"help","subject":"mixed, no key"}'
mix staff "$TOKEN" '{"site":"SH01","channel":"visit","type":"repair","subject":"mixed, staff"}'
mix repeat "$KEY" "$BODY"
mix unknown swk_deadbeef_0000000000 '{"site":"SH01","channel":"api","type":"help","subject":"mixed, unknown key"}'
mix site "$KEY" '{"site":"ZZ01","channel":"api","type":"help","subject":"mixed, other site"}'
mix nobody "$KEY" '{"site":"SH01","channel":"api","type":"help","subject":"mixed, no such responder","first_responder":"nobody","external_ref":"mix-2"}'
mixed_in() { test "$(($(requests) - r0))" -ge 9; }
check "(9 requests arrived and wait)" wait_for 30 mixed_in
sleep 0.3
q "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE '%''mix'', pg_sleep%' AND wait_event = 'PgSleep'" >/dev/null
wait "$locker"
wait_jobs
answers=$(for k in first noref staff repeat unknown site nobody; do printf '%s=%s ' $k "$(cat "$tmp/mix.$k")"; done)
# the two with the same key may have arrived in either order
answers+="same key twice=$(printf '%s\n' "$(cat "$tmp/mix.new")" "$(cat "$tmp/mix.twin")" | sort | tr '\n' /)"
check "every answer as if alone ($answers)" test "$answers" = "first=201 noref=201 staff=201 repeat=200 unknown=401 site=403 nobody=422 same key twice=200/201/"
check "... the same key twice: answered with one case" test "$(field '["id"]' <<<"x $(cat "$tmp/mix.twin.body")")" = "$(field '["id"]' <<<"x $(cat "$tmp/mix.new.body")")"
check "... the repeat with the first case" test "$(field '["id"]' <<<"x $(cat "$tmp/mix.repeat.body")")" = "$id"
seqs=$(for k in new noref staff; do field '["number"]' <<<"x $(cat "$tmp/mix.$k.body")" | sed 's/.*-0*//'; done | sort -n | tr '\n' ' ')
first_seq=$(field '["number"]' <<<"x $(cat "$tmp/mix.first.body")" | sed 's/.*-0*//')
set -- $seqs
check "... the three new cases numbered right after the batch ahead, no gap ($first_seq: $seqs)" test "$1 $2 $3" = "$((first_seq + 1)) $((first_seq + 2)) $((first_seq + 3))"
check "... their numbers were not taken anew" bash -c "! grep -q INTAKE-NUMBERS '$tmp/intake.log'"

echo "== stop"
intake_stop
finish
