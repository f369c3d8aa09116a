#!/usr/bin/env bash
# What the web console needs from intake, over real HTTP against the real
# shouwen-intake on a private PostgreSQL with the demo site:
#   - the console's files served from memory at "/" (types, ETag and 304,
#     the security headers, nothing outside the folder, hidden files,
#     symbolic links or unknown kinds never served; a bad folder refuses
#     the start), and the real console folder loads;
#   - passwords (slow hashes only, who may set whose, weak ones refused)
#     and sessions (sign in, who am I, sign out, expiry, other sessions
#     ended by a new password, the same refusal whatever was wrong);
#   - the directory readable by staff (no leader's private phone), the
#     checklists of what customers must bring, the case's clocks;
#   - the live stream: the site's case events as server-sent events, not
#     another site's, refused to external systems, ended cleanly at stop.
set -uo pipefail

name=console-api
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
trap intake_cleanup EXIT
. "$(dirname "${BASH_SOURCE[0]}")/cases.sh"

# jq_ EXPR: a Python expression on the answer's JSON (as j), from stdin "<status> <body>"
jq_() { python3 -c 'import json,sys; j=json.loads(sys.stdin.read().split(" ",1)[1]); print(eval(sys.argv[1]))' "$1"; }
eq() { local want=$1; shift; test "$("$@")" = "$want"; }
# head_ PATH [curl args...]: the status line and headers of GET PATH
head_() { local p=$1; shift; curl -s -D - -o "$tmp/body" "$@" "$api$p" | tr -d '\r'; }
# signin STAFF PASSWORD: "<status> <body>" of POST /v1/session
signin() {
    curl -s -o "$tmp/out" -w '%{http_code}' -H 'Content-Type: application/json' \
        -d "{\"site\":\"SH01\",\"staff\":\"$1\",\"password\":\"$2\"}" "$api/v1/session"
    printf ' '
    cat "$tmp/out"
}
token_of() { sed -n 's/.*"token":"\(swt_[0-9a-f]*\)".*/\1/p' <<<"$1"; }
metric_of() { curl -s "http://$admin/metrics" | awk -v m="$1" '$1 == m {print $2}'; }

echo "== setup"
intake_setup
MGR=$(token_for qian.mgr)
LI=$(token_for li.desk)

echo "== a console folder that cannot be served refuses the start"
port=$(free_ports 2)
env SHOUWEN_INTAKE_HTTP_ADDR="127.0.0.1:$port" SHOUWEN_INTAKE_ADMIN_ADDR="127.0.0.1:$((port + 1))" \
    SHOUWEN_INTAKE_PUB_URL="ipc://$tmp/x.pub" SHOUWEN_INTAKE_REP_ADDR= \
    SHOUWEN_INTAKE_CONSOLE_DIR="$tmp/no-such-folder" "$bin/shouwen-intake" 2>"$tmp/bad1.log"
check "no such folder: exit 1" test $? = 1
check "... the log names the folder" grep -q "could not open the console folder $tmp/no-such-folder" "$tmp/bad1.log"
mkdir -p "$tmp/empty"
env SHOUWEN_INTAKE_HTTP_ADDR="127.0.0.1:$port" SHOUWEN_INTAKE_ADMIN_ADDR="127.0.0.1:$((port + 1))" \
    SHOUWEN_INTAKE_PUB_URL="ipc://$tmp/x.pub" SHOUWEN_INTAKE_REP_ADDR= \
    SHOUWEN_INTAKE_CONSOLE_DIR="$tmp/empty" "$bin/shouwen-intake" 2>"$tmp/bad2.log"
check "a folder without index.html: exit 1" test $? = 1
check "... the log says so" grep -q "has no index.html" "$tmp/bad2.log"

echo "== the console's files"
mkdir -p "$tmp/console/js" "$tmp/console/css"
printf '<!doctype html><title>t</title><script type="module" src="js/app.js"></script>\n' >"$tmp/console/index.html"
printf 'export const x = 1;\n' >"$tmp/console/js/app.js"
printf 'body{}\n' >"$tmp/console/css/c.css"
printf 'secret\n' >"$tmp/console/.hidden.js"
printf 'notes\n' >"$tmp/console/notes.md"
ln -s /etc/passwd "$tmp/console/js/link.js"
intake_start SHOUWEN_INTAKE_CONSOLE_DIR="$tmp/console"
h=$(head_ /)
check "GET /: 200, index.html" grep -q '^HTTP/1.1 200' <<<"$h"
check "... as text/html" grep -qi '^Content-Type: text/html; charset=utf-8' <<<"$h"
check "... the body is index.html" cmp -s "$tmp/body" "$tmp/console/index.html"
check "... a Content-Security-Policy of its own scripts only" \
    grep -q "^Content-Security-Policy: default-src 'self';.*script-src 'self'" <<<"$h"
check "... no sniffing" grep -q '^X-Content-Type-Options: nosniff' <<<"$h"
check "... no framing" grep -q '^X-Frame-Options: DENY' <<<"$h"
check "... no referrer" grep -q '^Referrer-Policy: no-referrer' <<<"$h"
check "... revalidated each time (no-cache)" grep -q '^Cache-Control: no-cache' <<<"$h"
check "... with a strong ETag" grep -q '^ETag: "[0-9a-f]\{16\}"' <<<"$h"
etag=$(sed -n 's/^ETag: //p' <<<"$h")
h=$(head_ / -H "If-None-Match: $etag")
check "If-None-Match with the ETag: 304" grep -q '^HTTP/1.1 304' <<<"$h"
h=$(head_ /js/app.js)
check "a module: text/javascript" grep -qi '^Content-Type: text/javascript' <<<"$h"
check "... its bytes" cmp -s "$tmp/body" "$tmp/console/js/app.js"
check "a stylesheet: text/css" grep -qi '^Content-Type: text/css' <<<"$(head_ /css/c.css)"
for p in /.hidden.js /notes.md /js/link.js /js/nothing.js /../etc/passwd /js/%2e%2e/index.html /js; do
    check "GET $p: 404" grep -q '^HTTP/1.1 404' <<<"$(head_ "$p" --path-as-is)"
done
check "HEAD /: 200 without a body" \
    bash -c "curl -sI '$api/' | grep -q '^HTTP/1.1 200' && test -z \"\$(curl -s -X HEAD --max-time 2 '$api/' 2>/dev/null)\""
check "POST /: 405" eq 405 curl -s -o /dev/null -w '%{http_code}' -d x "$api/"
check "the API still answers under /v1 (401 without credentials)" \
    eq 401 curl -s -o /dev/null -w '%{http_code}' "$api/v1/cases"
intake_stop
unset port

echo "== the real console folder loads"
intake_start
check "GET / of services/intake/console: 200 text/html" \
    bash -c "curl -s -D - -o /dev/null '$api/' | grep -qi '^Content-Type: text/html'"
check "... the log counts its files" grep -q 'INTAKE-CONSOLE.*web console: [0-9]* files' "$tmp/intake.log"

echo "== passwords"
PW='correct horse 42'
r=$(call PUT "$MGR" /v1/sites/SH01/staff/li.desk/password "{\"password\":\"$PW\"}")
check "the manager sets li.desk's password: 200" expect 200 '"password_set":true' "$r"
check "... only a yescrypt hash is kept" \
    eq 't' q "SELECT password_hash LIKE '\$y\$%' AND strpos(password_hash, 'horse') = 0 FROM core.staff WHERE code = 'li.desk'"
r=$(call PUT "$MGR" /v1/sites/SH01/staff/li.desk/password '{"password":"short"}')
check "a password of 5 characters: 422 naming it" expect 422 '"field":"password","message":"is too short' "$r"
r=$(call PUT "$MGR" /v1/sites/SH01/staff/li.desk/password '{"password":"          "}')
check "a password of spaces: 422" expect 422 '"field":"password","message":"must be 1 to 512 characters, not blank"' "$r"
r=$(call PUT "$MGR" /v1/sites/SH01/staff/li.desk/password '{"password":"long enough 1","hint":"x"}')
check "an unknown member: 422 naming it" expect 422 '"field":"hint"' "$r"
r=$(call PUT "$LI" /v1/sites/SH01/staff/zhou.eng/password '{"password":"another one 1"}')
check "a receptionist setting someone else's: 403" expect 403 'set by its owner, by a manager' "$r"
r=$(call PUT "$MGR" /v1/sites/SH01/staff/nobody/password '{"password":"another one 1"}')
check "no such staff member: 404" expect 404 'no such staff member: nobody' "$r"
r=$(call PUT "$KEY" /v1/sites/SH01/staff/li.desk/password '{"password":"another one 1"}')
check "an API key of role system: 403" expect 403 'forbidden' "$r"

echo "== sessions"
r=$(signin li.desk "$PW")
check "sign in: 201 with a token" expect 201 '"token":"swt_' "$r"
check "... li.desk, receptionist, of SH01 (Asia/Shanghai)" \
    eq 'li.desk receptionist SH01 Asia/Shanghai' jq_ '" ".join([j["staff"]["code"], j["staff"]["role"], j["site"]["code"], j["site"]["time_zone"]])' <<<"$r"
S1=$(token_of "$r")
check "... kept as a session token expiring in 12 h" \
    eq t q "SELECT session AND expires_at BETWEEN now() + interval '11 hours 58 minutes' AND now() + interval '12 hours' FROM core.staff_tokens WHERE token_hash = sha256('$S1'::bytea)"
r=$(call GET "$S1" /v1/session)
check "GET /v1/session: who it is" expect 200 '"staff":{"code":"li.desk"' "$r"
check "... without the token" bash -c '! grep -q "\"token\"" <<<"$1"' _ "$r"
check "... the session works on the API" expect 200 '"cases":' "$(call GET "$S1" '/v1/cases?limit=1')"
for what in "li.desk|wrong password 1" "nobody|$PW" "feng.clean|$PW"; do
    r=$(signin "${what%%|*}" "${what#*|}")
    check "sign in as ${what%%|*} with a wrong or no password: the same 401" \
        expect 401 '"error":"wrong site, staff code or password"' "$r"
done
r=$(curl -s -w ' %{http_code}' -H 'Content-Type: application/json' -d '{"site":"SH01","staff":"li.desk","pass":"x"}' "$api/v1/session")
check "a malformed sign-in: 422 naming the members" \
    bash -c 'grep -q "\"field\":\"pass\"" <<<"$1" && grep -q "\"field\":\"password\"" <<<"$1" && grep -q " 422$" <<<"$1"' _ "$r"
check "sign in without a body: 415" eq 415 curl -s -o /dev/null -w '%{http_code}' -X POST "$api/v1/session"
check "the refusals are counted" test "$(metric_of shouwen_intake_signins_refused_total)" -ge 3
check "... and logged with the staff code" grep -qF 'sign-in refused for staff \"nobody\" of site \"SH01\"' "$tmp/intake.log"
check "... never the password" bash -c '! grep -q horse "$1"' _ "$tmp/intake.log"
check "PUT /v1/session: 405" expect 405 'POST /v1/session signs in' "$(call PUT "$S1" /v1/session '{}')"
check "GET /v1/session with an API key: 403" expect 403 'a session is a staff member' "$(call GET "$KEY" /v1/session)"
. "$SHOUWEN_RUN_DIR/demo-credentials"
r=$(signin zhou.eng "$SHOUWEN_DEMO_PASSWORD")
check "the demo password (bcrypt, set by demo.sh with pgcrypto) signs zhou.eng in" expect 201 '"role":"department_head"' "$r"
check "... he reads the staff of the site (the directory is open to staff)" \
    expect 200 '"code":"wu.tech"' "$(call GET "$(token_of "$r")" '/v1/sites/SH01/staff?limit=500')"
check "... but not the leader's private phone" bash -c '! grep -q 13900000001 "$1"' _ "$tmp/out"
check "... nor may he add staff" expect 403 forbidden "$(call POST "$(token_of "$r")" /v1/sites/SH01/staff '{"code":"x","name":"x","role":"staff"}')"
check "... and reads the departments" expect 200 '"code":"engineering"' "$(call GET "$(token_of "$r")" /v1/sites/SH01/departments)"

echo "== a new password ends the other sessions"
S2=$(token_of "$(signin li.desk "$PW")")
r=$(call PUT "$S1" /v1/sites/SH01/staff/li.desk/password '{"password":"new secret 77"}')
check "li.desk changes her own without the current one: 422" expect 422 '"field":"current","message":"is required' "$r"
r=$(call PUT "$S1" /v1/sites/SH01/staff/li.desk/password '{"password":"new secret 77","current":"not it"}')
check "... with a wrong current one: 422" expect 422 'is not your current password' "$r"
r=$(call PUT "$S1" /v1/sites/SH01/staff/li.desk/password "{\"password\":\"new secret 77\",\"current\":\"$PW\"}")
check "... with the current one: 200" expect 200 '"password_set":true' "$r"
check "her own session goes on" expect 200 '"li.desk"' "$(call GET "$S1" /v1/session)"
check "her other session has ended: 401" expect 401 'invalid credentials' "$(call GET "$S2" /v1/session)"
check "an administrator's token of hers is left alone" expect 200 '"cases":' "$(call GET "$LI" '/v1/cases?limit=1')"
check "the old password no longer signs in" expect 401 'wrong site' "$(signin li.desk "$PW")"
check "the new one does" expect 201 '"token"' "$(signin li.desk 'new secret 77')"

echo "== expiry and signing out"
S3=$(token_of "$(signin li.desk 'new secret 77')")
q "UPDATE core.staff_tokens SET expires_at = now() - interval '1 second', created_at = now() - interval '1 day' WHERE token_hash = sha256('$S3'::bytea)" >/dev/null
check "an expired session: 401" expect 401 'invalid credentials' "$(call GET "$S3" '/v1/cases?limit=1')"
check "sign out: 200" expect 200 '"signed_out":true' "$(call DELETE "$S1" /v1/session)"
check "... the token no longer works: 401" expect 401 'invalid credentials' "$(call GET "$S1" /v1/session)"

echo "== checklists (一次性告知)"
r=$(call GET "$LI" /v1/sites/SH01/checklists)
check "the demo site's lists, readable by a receptionist" expect 200 '"business":["业主身份证原件' "$r"
check "... a type without a list is absent" bash -c '! grep -q "\"consultation\"" <<<"$1"' _ "$r"
check "a receptionist may not change them: 403" expect 403 forbidden "$(call PUT "$LI" /v1/sites/SH01/checklists/help '{"items":["x"]}')"
r=$(call PUT "$MGR" /v1/sites/SH01/checklists/help '{"items":["身份证 ID card","门禁卡 access card"]}')
check "the manager sets help's: 200, read back in order" expect 200 '"items":["身份证 ID card","门禁卡 access card"]' "$r"
check "... and it is listed" expect 200 '"help":["身份证 ID card","门禁卡 access card"]' "$(call GET "$LI" /v1/sites/SH01/checklists)"
check "an unknown type: 404 naming the types" expect 404 'no such request type: \"gift\"' "$(call PUT "$MGR" /v1/sites/SH01/checklists/gift '{"items":["x"]}')"
check "no items: 422" expect 422 '"field":"items","message":"must hold 1-100 items' "$(call PUT "$MGR" /v1/sites/SH01/checklists/help '{"items":[]}')"
check "a blank item: 422" expect 422 'item 1 must be a string' "$(call PUT "$MGR" /v1/sites/SH01/checklists/help '{"items":["a"," "]}')"
check "... nothing changed" expect 200 '"help":["身份证 ID card","门禁卡 access card"]' "$(call GET "$LI" /v1/sites/SH01/checklists)"
check "DELETE: 200" expect 200 '"removed":"help"' "$(call DELETE "$MGR" /v1/sites/SH01/checklists/help)"
check "DELETE again: 404" expect 404 'no checklist for \"help\"' "$(call DELETE "$MGR" /v1/sites/SH01/checklists/help)"

echo "== the case's clocks"
id=$(register "$LI" '{"site":"SH01","channel":"phone","type":"repair","urgency":"normal","subject":"门锁坏了","customer":{"name":"王女士","phone":"13800002222"}}')
check "registered" test -n "$id"
check "no clock yet: an empty list" expect 200 '"clocks":[]' "$(call GET "$LI" "/v1/cases/$id")"
check "... no lead department, none assisting" expect 200 '"lead_department":null,"assisting_departments":[]' "$(call GET "$LI" "/v1/cases/$id")"
q "INSERT INTO core.case_departments (site_id, case_id, department_id, role) SELECT c.site_id, c.id, d.id, CASE d.code WHEN 'engineering' THEN 'lead' ELSE 'assisting' END FROM core.cases c JOIN core.departments d ON d.site_id = c.site_id AND d.code IN ('engineering', 'security', 'cleaning') WHERE c.id = '$id'" >/dev/null
check "a designated lead and the assisting departments, by code" \
    expect 200 '"lead_department":"engineering","assisting_departments":["cleaning","security"]' "$(call GET "$LI" "/v1/cases/$id")"
q "INSERT INTO escalation.deadlines (site_id, case_id, kind, due_at, started_at) SELECT site_id, id, 'handoff', now() + interval '1 hour', now() FROM core.cases WHERE id = '$id';
   INSERT INTO escalation.deadlines (site_id, case_id, kind, due_at, started_at) SELECT site_id, id, 'resolve', NULL, now() + interval '1 second' FROM core.cases WHERE id = '$id';
   INSERT INTO escalation.deadlines (site_id, case_id, kind, due_at, met_at, started_at) SELECT site_id, id, 'first_contact', now(), now(), now() + interval '2 seconds' FROM core.cases WHERE id = '$id'" >/dev/null
r=$(call GET "$LI" "/v1/cases/$id")
check "three clocks: running, paused, met, in the order they started" \
    eq 'handoff:running resolve:paused first_contact:met' jq_ '" ".join(c["kind"] + ":" + c["state"] for c in j["clocks"])' <<<"$r"
check "... a running clock's due time in UTC, a paused one's null" \
    eq 'True True' jq_ 'str(j["clocks"][0]["due_at"].endswith("Z")) + " " + str(j["clocks"][1]["due_at"] is None)' <<<"$r"

echo "== the live stream"
curl -sN -H "Authorization: Bearer $LI" "$api/v1/stream" >"$tmp/sse.out" 2>/dev/null &
sse=$!
check "a staff token opens it: the hello" wait_for 5 grep -q '^event: hello' "$tmp/sse.out"
check "... as text/event-stream" \
    bash -c "curl -s -D - -o /dev/null --max-time 1 -H 'Authorization: Bearer $LI' '$api/v1/stream' | tr -d '\r' | grep -qi '^Content-Type: text/event-stream'"
check "... counted as a client" wait_for 5 eval 'test "$(metric_of shouwen_intake_stream_clients)" -ge 1'
id=$(register "$LI" '{"site":"SH01","channel":"visit","type":"consultation","urgency":"normal","subject":"停车"}')
check "a case registered at the site arrives as an event" \
    wait_for 5 grep -q "^data: {\"type\":\"case.registered\",\"case\":\"$id\",\"at\":\"" "$tmp/sse.out"
other=$(q "SELECT gen_random_uuid()")
q "INSERT INTO bus.events (event_id, type, site, case_id, partition, payload) VALUES (gen_random_uuid(), 'case.registered', 'ZZ99', '$other', 0, '\x00')" >/dev/null
id2=$(register "$LI" '{"site":"SH01","channel":"visit","type":"consultation","urgency":"normal","subject":"快递"}')
check "... and the next one" wait_for 5 grep -q "\"case\":\"$id2\"" "$tmp/sse.out"
check "another site's event does not" bash -c "! grep -q '$other' '$tmp/sse.out'"
check "an API key of role system: 403" expect 403 'the live stream is for staff' "$(call GET "$KEY" /v1/stream)"
check "no credentials: 401" eq 401 curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$api/v1/stream"
intake_stop
check "the stream ends when intake stops" wait_for 5 bash -c "! kill -0 $sse 2>/dev/null"

echo "== a full house is refused, not queued"
intake_start SHOUWEN_INTAKE_STREAM_MAX=1
curl -sN -H "Authorization: Bearer $LI" "$api/v1/stream" >"$tmp/sse1.out" 2>/dev/null &
sse=$!
check "the first stream opens" wait_for 5 grep -q '^event: hello' "$tmp/sse1.out"
check "a second one: 503" eq 503 curl -s -o /dev/null -w '%{http_code}' --max-time 2 -H "Authorization: Bearer $LI" "$api/v1/stream"
kill "$sse" 2>/dev/null
wait "$sse" 2>/dev/null
check "when the first hangs up, a new one opens at once" \
    wait_for 3 bash -c "curl -s -o /dev/null -w '%{http_code}' --max-time 1 -H 'Authorization: Bearer $LI' '$api/v1/stream' | grep -q 200"
intake_stop

finish
