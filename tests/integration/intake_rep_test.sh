#!/usr/bin/env bash
# intake's REP socket (SubmitCase over nng REQ/REP) for real: a private
# PostgreSQL cluster, the demo site, the real shouwen-intake binary and a
# real client (tests/intake/rep_client.c, nng REQ + protobuf-c) and nngcat.
# The same validation and idempotency as POST /v1/cases (also across the
# two), every error code the REP socket answers, garbage and oversized
# messages, 50 clients at once, settings, and a stop with requests in
# flight.
set -uo pipefail

name=intake-rep
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
tbin=${SHOUWEN_TEST_BIN:-$top/build/tests}
port=$(free_ports 3) # intake_start's pair, then the REP socket
rep=tcp://127.0.0.1:$((port + 2))
other_pid=""

cleanup() {
    [ -z "$other_pid" ] || kill -KILL "$other_pid" 2>/dev/null
    intake_cleanup
}
trap cleanup EXIT

# submit ARGS...: one SubmitCase through the real client; prints its one JSON line
submit() { "$tbin/rep_client" --url "$rep" --timeout 10000 "$@"; }
# jcheck JSON PYTHON-EXPR: the expression holds for d = the parsed JSON
jcheck() {
    python3 -c 'import json,sys; d=json.loads(sys.argv[1]); sys.exit(0 if eval(sys.argv[2]) else 1)' \
        "$1" "$2" 2>/dev/null || { echo "got: $1"; return 1; }
}
jget() { python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(eval(sys.argv[2]))' "$1" "$2"; }
# err CODE FIELD TEXT JSON: an Error with this code and field, its message containing TEXT
err() { jcheck "$4" "d['error']['code']=='$1' and d['error']['field']=='$2' and '''$3''' in d['error']['message']"; }
# has REGEX TEXT: TEXT matches REGEX
has() { grep -qE -- "$1" <<<"$2" || { echo "got: $2"; return 1; }; }
metric() { curl -s "http://$admin/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
# raw BYTES-FILE: send a file with nngcat, decode the reply with rep_client
raw() { nngcat --req --dial "$rep" --recv-timeout 5 --raw --file "$1" | "$tbin/rep_client" --decode; }

echo "== setup"
intake_setup
check "the REP client is built" test -x "$tbin/rep_client"
intake_start SHOUWEN_INTAKE_REP_ADDR="$rep"
check "it says where SubmitCase is served" grep -qF "\"SubmitCase on $rep\"" "$tmp/intake.log"

echo "== registering"
today=$(TZ=Asia/Shanghai date +%Y%m%d)
CASE=(--key "$KEY" --site SH01 --channel phone --type complaint --urgency normal
    --subject "楼上漏水 water from upstairs" --description "ceiling wet since morning"
    --name 张先生 --phone 13800001234 --unit 3栋 --address 3-2-501 --doc "id card"
    --first-responder li.desk --external-ref rep-0001 --source desk-7 --received-at 1)
out=$(submit "${CASE[@]}")
check "a valid SubmitCase registers a case" jcheck "$out" \
    "d['status']=='registered' and d['version']==1 and d['duplicate'] is False and len(d['case_id'])==36"
id=$(jget "$out" "d['case_id']")
number=$(jget "$out" "d['number']")
check "its number is SH01-<local day>-NNNN" bash -c "[[ '$number' =~ ^SH01-$today-[0-9]{4}\$ ]]"
check "the case is in the database as sent, its source the key's name" test \
    "$(q "SELECT c.number || '|' || c.channel || '|' || c.type || '|' || c.urgency || '|' || c.subject || '|' || c.customer_phone || '|' || c.source || '|' || c.external_ref || '|' || s.code || '|' || array_to_string(c.required_documents, ',') FROM core.cases c JOIN core.staff s ON s.id = c.first_responder_id WHERE c.id = '$id'")" \
    = "$number|phone|complaint|normal|楼上漏水 water from upstairs|13800001234|demo-hotline|rep-0001|li.desk|id card"
check "case.registered in bus.events, same transaction" test \
    "$(q "SELECT count(*) FROM bus.events WHERE case_id = '$id' AND type = 'case.registered'")" = 1
out=$(curl -s -w ' %{http_code}' -H "Authorization: Bearer $KEY" "$api/v1/cases/$id" | tr -d '\n')
check "the same case over HTTP: GET /v1/cases/{id}" has "\"number\":\"$number\".* 200\$" "$out"
out=$(submit --key "$KEY" --site SH01 --channel device --type emergency --subject "smoke alarm 3-2")
check "a minimal one (no external_ref) registers too" jcheck "$out" "d['status']=='registered' and d['case_id']!='$id'"

echo "== idempotency"
out=$(submit "${CASE[@]}")
check "same external_ref, same content: duplicate, the first case" jcheck "$out" \
    "d['duplicate'] is True and d['case_id']=='$id' and d['number']=='$number' and d['version']==1"
out=$(submit "${CASE[@]}" --source another-desk --received-at 99)
check "... source and received_at are not content (the source is the key's)" jcheck "$out" \
    "d['duplicate'] is True and d['case_id']=='$id'"
check "... still one case" test "$(q "SELECT count(*) FROM core.cases WHERE external_ref = 'rep-0001'")" = 1
out=$(submit "${CASE[@]}" --subject "something else")
check "same external_ref, other content: CONFLICT" err CONFLICT "" "different body" "$out"
out=$(submit --key "$KEY" --site SH01 --channel api --type help --subject "door stuck" --external-ref rep-x)
xid=$(jget "$out" "d.get('case_id','')")
check "registered over REP ..." jcheck "$out" "d['duplicate'] is False and len(d['case_id'])==36"
out=$(curl -s -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
    -d '{"external_ref":"rep-x","subject":"door stuck","type":"help","channel":"api","site":"SH01"}' \
    -w ' %{http_code}' "$api/v1/cases" | tr -d '\n')
check "... the same submission over HTTP: 200, the same case" has "\"id\":\"$xid\".*\"duplicate\":true.* 200\$" "$out"
for i in $(seq 1 20); do
    submit --key "$KEY" --site SH01 --channel api --type repair --subject race --external-ref rep-race >"$tmp/race.$i" &
done
wait_jobs() { for j in $(jobs -p); do [ "$j" = "$intake_pid" ] || wait "$j"; done; }
wait_jobs
check "20 identical submissions racing: one case" test \
    "$(q "SELECT count(*) FROM core.cases WHERE external_ref = 'rep-race'")" = 1
check "... one new, 19 duplicates of it" test \
    "$(cat "$tmp"/race.* | grep -c '"duplicate":false')/$(cat "$tmp"/race.* | grep -c '"duplicate":true')/$(cat "$tmp"/race.* | grep -o '"case_id":"[^"]*"' | sort -u | wc -l)" = 1/19/1

echo "== credentials"
out=$(submit --site SH01 --channel api --type help --subject x)
check "no api_key: UNAUTHENTICATED" err UNAUTHENTICATED api_key "missing credentials" "$out"
last=${KEY: -1}
[ "$last" = 0 ] && wrong=${KEY%?}1 || wrong=${KEY%?}0
out=$(submit --key "$wrong" --site SH01 --channel api --type help --subject x)
check "wrong secret for a real prefix: UNAUTHENTICATED" err UNAUTHENTICATED "" "invalid credentials" "$out"
out=$(submit --key not-a-key --site SH01 --channel api --type help --subject x)
check "malformed key: UNAUTHENTICATED" err UNAUTHENTICATED api_key "invalid credentials" "$out"
out=$(submit --key "$KEY" --site ZZ01 --channel api --type help --subject x)
check "another site: PERMISSION_DENIED" err PERMISSION_DENIED "" "not ZZ01" "$out"

echo "== fields (reg_parse, as for HTTP)"
out=$(submit --key "$KEY" --site SH01 --channel api --type help)
check "missing subject: MISSING_FIELD subject" err MISSING_FIELD subject "is required" "$out"
out=$(submit --key "$KEY" --site SH01 --channel api --type help --subject x --phone "call me")
check "bad phone: INVALID_ARGUMENT customer.phone" err INVALID_ARGUMENT customer.phone "phone number" "$out"
out=$(submit --key "$KEY" --site SH01 --type help --subject x)
check "channel unspecified: MISSING_FIELD channel" err MISSING_FIELD channel "is required" "$out"
out=$(submit --key "$KEY" --site SH01 --channel 99 --type help --subject x)
check "unknown channel number: OUT_OF_RANGE channel" err OUT_OF_RANGE channel "must be one of" "$out"
out=$(submit --key "$KEY" --site SH01 --channel api --type help --subject "$(printf '长%.0s' $(seq 1 1001))")
check "subject too long: OUT_OF_RANGE subject" err OUT_OF_RANGE subject "at most 1000 characters" "$out"
out=$(submit --key "$KEY" --site SH01 --channel api --type help --subject x --doc "")
check "an empty document: INVALID_ARGUMENT required_documents" err INVALID_ARGUMENT required_documents "1-500" "$out"
out=$(submit --key "$KEY" --site sh01 --channel api --type help --subject x --phone "call me")
check "several bad fields: the first is named (site)" err INVALID_ARGUMENT site "site code" "$out"
out=$(submit --key "$KEY" --site SH01 --channel api --type help --subject x --first-responder nobody)
check "unknown first responder (found by the worker): INVALID_ARGUMENT first_responder" \
    err INVALID_ARGUMENT first_responder 'no active staff member "nobody"' "$out"

echo "== bad messages"
out=$(submit --key "$KEY" --site SH01 --channel api --type help --subject big --description-bytes 70000)
check "over the body limit (65536): TOO_LARGE" err TOO_LARGE "" "the limit is 65536" "$out"
out=$(submit --timeout 2000 --key "$KEY" --site SH01 --channel api --type help --subject huge --description-bytes 300000)
check "far over it (300 kB): never read, no answer" jcheck "$out" "'transport_error' in d"
printf 'garbage bytes, certainly not a protobuf \xff\xff\xff\xff' >"$tmp/garbage"
out=$(raw "$tmp/garbage")
check "garbage bytes (nngcat): INVALID_ARGUMENT malformed SubmitCase" err INVALID_ARGUMENT "" "malformed SubmitCase" "$out"
head -c 40 "$top/tests/fuzz/corpus/fuzz_submit_case/valid_full.bin" >"$tmp/truncated"
out=$(raw "$tmp/truncated")
check "a truncated SubmitCase: INVALID_ARGUMENT" err INVALID_ARGUMENT "" "malformed SubmitCase" "$out"
printf '\x1a\x04SH\xff\xfe\x42\x01x\x20\x0b\x28\x03\x0a\x05swk_x' >"$tmp/badutf8"
out=$(raw "$tmp/badutf8")
check "a key too short to be one: UNAUTHENTICATED before the fields" err UNAUTHENTICATED api_key "invalid credentials" "$out"
printf '\x0a%b%s\x1a\x04SH\xff\xfe\x42\x01x\x20\x0b\x28\x03' "\\x$(printf %x ${#KEY})" "$KEY" >"$tmp/badutf8"
out=$(raw "$tmp/badutf8")
check "invalid UTF-8 in site: INVALID_ARGUMENT site" err INVALID_ARGUMENT site "UTF-8" "$out"
: >"$tmp/empty"
out=$(raw "$tmp/empty")
check "an empty message (an empty SubmitCase): UNAUTHENTICATED" err UNAUTHENTICATED api_key "missing" "$out"
out=$(submit --key "$KEY" --site SH01 --channel api --type help --subject "still here")
check "still serving after all that" jcheck "$out" "d['status']=='registered'"
check "bad requests counted, each once (19 so far)" test "$(metric shouwen_intake_bad_requests_total)" = 19
check "no customer data in the log" bash -c "! grep -q '13800001234\|张先生' '$tmp/intake.log'"

echo "== 50 clients at once"
for i in $(seq 1 50); do
    submit --key "$KEY" --site SH01 --channel device --type repair --subject "load $i" --external-ref "conc-$i" >"$tmp/conc.$i" &
done
wait_jobs
check "all 50 answered with a new case" test "$(cat "$tmp"/conc.* | grep -c '"duplicate":false')" = 50
check "50 cases, 50 numbers" test \
    "$(q "SELECT count(*) || '/' || count(DISTINCT number) FROM core.cases WHERE external_ref LIKE 'conc-%'")" = 50/50
check "50 case.registered events" test \
    "$(q "SELECT count(*) FROM bus.events e JOIN core.cases c ON c.id = e.case_id WHERE c.external_ref LIKE 'conc-%'")" = 50

echo "== settings"
o=$(free_ports 2) # another intake: HTTP, then admin
out=$(SHOUWEN_INTAKE_HTTP_ADDR=127.0.0.1:$o SHOUWEN_INTAKE_ADMIN_ADDR=127.0.0.1:$((o + 1)) \
    SHOUWEN_INTAKE_PUB_URL="ipc://$tmp/other.pub" SHOUWEN_INTAKE_REP_ADDR=nowhere \
    timeout 20 "$bin/shouwen-intake" 2>&1)
rc=$?
check "a malformed REP address: exit 1, names SHOUWEN_INTAKE_REP_ADDR" test "$rc/$(grep -c 'SHOUWEN_INTAKE_REP_ADDR: invalid value' <<<"$out")" = 1/1
out=$(SHOUWEN_INTAKE_HTTP_ADDR=127.0.0.1:$o SHOUWEN_INTAKE_ADMIN_ADDR=127.0.0.1:$((o + 1)) \
    SHOUWEN_INTAKE_PUB_URL="ipc://$tmp/other.pub" SHOUWEN_INTAKE_REP_ADDR="$rep" \
    timeout 20 "$bin/shouwen-intake" 2>&1)
rc=$?
check "a REP address in use: exit 1, says so" test "$rc/$(grep -c 'could not listen for SubmitCase' <<<"$out")" = 1/1
SHOUWEN_INTAKE_HTTP_ADDR=127.0.0.1:$o SHOUWEN_INTAKE_ADMIN_ADDR=127.0.0.1:$((o + 1)) \
    SHOUWEN_INTAKE_PUB_URL="ipc://$tmp/other.pub" SHOUWEN_INTAKE_REP_ADDR= \
    "$bin/shouwen-intake" 2>"$tmp/other.log" &
other_pid=$!
check "an empty REP address: starts without one" wait_for 10 curl -fs "http://127.0.0.1:$((o + 1))/readyz"
check "... and says nothing of SubmitCase" bash -c "! grep -q INTAKE-REP '$tmp/other.log'"
kill -TERM "$other_pid"
wait "$other_pid"
rc=$?
other_pid=""
check "... stops cleanly" test "$rc" = 0

echo "== stop with requests in flight"
# The case-number counter is locked, so the workers hold their batches
# (and the REP contexts their requests) when SIGTERM comes: the stop must
# wait for them, answer every one, and only then close the socket.  The
# lock is released by cancelling its holder once the stop has been seen to
# wait, not by a timer: a slow host could lose a race with one.
q "BEGIN; LOCK TABLE core.case_numbers IN EXCLUSIVE MODE; SELECT 'stop', pg_sleep(120); COMMIT;" >/dev/null 2>&1 &
locker=$!
locked() { test "$(q "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%''stop'', pg_sleep%' AND wait_event = 'PgSleep'")" = 1; }
check "(the counter is locked)" wait_for 10 locked
for i in $(seq 1 30); do
    submit --timeout 20000 --key "$KEY" --site SH01 --channel api --type help --subject "stop $i" --external-ref "stop-$i" >"$tmp/stop.$i" &
done
lock_waiters() {
    test "$(q "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'intake' AND wait_event_type = 'Lock'")" -ge 1
}
check "the workers wait on the lock" wait_for 10 lock_waiters
sleep 1
check "... with no answer given yet" test "$(cat "$tmp"/stop.* | wc -c)" = 0
kill -TERM "$intake_pid"
sleep 1
check "SIGTERM: still running while the jobs in hand wait" kill -0 "$intake_pid"
q "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE '%''stop'', pg_sleep%' AND wait_event = 'PgSleep'" >/dev/null
wait "$intake_pid"
rc=$?
intake_pid=""
wait "$locker"
wait_jobs
check "... then exit 0" test "$rc" = 0
check "every request in hand answered with its case" test \
    "$(cat "$tmp"/stop.* | grep -c '"status":"registered"')" = 30
check "... and the 30 cases are in the database" test \
    "$(q "SELECT count(*) FROM core.cases WHERE external_ref LIKE 'stop-%'")" = 30
check "no crash, no sanitizer report in the log" bash -c "! grep -qiE 'sanitizer|segmentation|abort' '$tmp/intake.log'"
finish
