#!/usr/bin/env bash
# The workflow over HTTP: POST /v1/cases/{id}/actions/{command} against the
# real shouwen-intake and a private PostgreSQL cluster, with the demo
# site's people.  A complaint's whole life (transfer, accept, first
# contact, progress, wait and resume, resolve, an unsatisfied callback that
# reopens it, a satisfied one that closes it), a return and what it
# forbids, a lead department, a manager's unresolvable close, a leader's
# call-back; If-Match (428, 412, a race of two), the rules' 403/409/422,
# and that each change leaves its signed handoff, notes and events in the
# same transaction, and a refused one leaves nothing.
set -uo pipefail

name=intake-action
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
trap intake_cleanup EXIT

# token CODE: a fresh bearer token for that staff member of SH01
token() {
    local t
    t="swt_$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    q "INSERT INTO core.staff_tokens (staff_id, token_hash, expires_at) SELECT st.id, sha256('$t'::bytea), now() + interval '1 day' FROM core.staff st JOIN core.sites s ON s.id = st.site_id WHERE s.code = 'SH01' AND st.code = '$1'" >/dev/null
    echo "$t"
}
# act AUTH ID COMMAND VERSION BODY [curl args]: prints "<status> <body>"
act() {
    local auth=$1 id=$2 cmd=$3 ver=$4 body=$5; shift 5
    local hdr=() out
    [ -z "$ver" ] || hdr=(-H "If-Match: \"$ver\"")
    out=$(mktemp -p "$tmp") # its own file: two may run at once
    curl -s -o "$out" -w '%{http_code}' -H "Authorization: Bearer $auth" \
        -H 'Content-Type: application/json' "${hdr[@]}" "$@" --data-binary "$body" \
        "$api/v1/cases/$id/actions/$cmd"
    printf ' '
    cat "$out"
    rm -f "$out"
}
register() { # register AUTH SUBJECT TYPE: prints the new case's id
    curl -s -H "Authorization: Bearer $1" -H 'Content-Type: application/json' \
        --data-binary "{\"site\":\"SH01\",\"channel\":\"visit\",\"type\":\"$3\",\"subject\":\"$2\",\"customer\":{\"name\":\"刘女士\",\"phone\":\"13800005678\",\"address\":\"5-1-302\"}}" \
        "$api/v1/cases" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'
}
expect() { [ "${3%% *}" = "$1" ] && grep -qF -- "$2" <<<"$3" || { echo "got: $3"; return 1; }; }
state() { q "SELECT c.status || ' ' || coalesce(o.code, '-') || ' ' || coalesce(d.code, '-') || ' ' || c.version FROM core.cases c LEFT JOIN core.staff o ON o.id = c.owner_id LEFT JOIN core.departments d ON d.id = c.department_id WHERE c.id = '$1'"; }
events() { q "SELECT string_agg(type, ',' ORDER BY seq) FROM bus.events WHERE case_id = '$1'"; }

echo "== setup"
intake_setup
DESK=$TOKEN              # li.desk, receptionist at the front desk
HEAD=$(token zhou.eng)   # head of engineering
TECH=$(token wu.tech)    # handler in engineering
MGR=$(token qian.mgr)
SUP=$(token sun.sup)
SECHEAD=$(token zheng.sec)
intake_start

echo "== a complaint's life"
id=$(register "$DESK" "楼上漏水 water from upstairs" complaint)
check "registered by the receptionist, who owns it" test "$(state "$id")" = "registered li.desk front-desk 1"
check "no If-Match: 428" expect 428 'If-Match is required' "$(act "$DESK" "$id" transfer "" '{"to_department":"engineering","reason":"a leak"}')"
check "malformed If-Match: 400" expect 400 'If-Match' "$(act "$DESK" "$id" transfer "v1" '{"to_department":"engineering","reason":"a leak"}')"
check "transfer without a reason: 422 naming it" expect 422 '"field":"reason"' "$(act "$DESK" "$id" transfer 1 '{"to_department":"engineering"}')"
check "transfer to an unknown department: 422" expect 422 '"field":"to_department"' "$(act "$DESK" "$id" transfer 1 '{"to_department":"nowhere","reason":"x"}')"
check "an unknown member: 422 naming it" expect 422 '"field":"colour"' "$(act "$DESK" "$id" transfer 1 '{"to_department":"engineering","reason":"x","colour":"red"}')"
check "a member of the wrong kind: 422" expect 422 '"field":"reason"' "$(act "$DESK" "$id" transfer 1 '{"to_department":"engineering","reason":7}')"
check "... none of that changed the case" test "$(state "$id")" = "registered li.desk front-desk 1"
out=$(act "$DESK" "$id" transfer 1 '{"to_department":"engineering","reason":"漏水 a leak: engineering fixes pipes","slip_number":"ZB-001"}' -D "$tmp/headers")
check "transfer: 200, the case as it now is" expect 200 '"status":"transferred"' "$out"
check "... version 2 in the body and the ETag" bash -c "grep -q '\"version\":2' <<<'$out' && grep -qi '^ETag: \"2\"' '$tmp/headers'"
check "... the department head owns it" test "$(state "$id")" = "transferred zhou.eng engineering 2"
check "... the handoff is signed and timed: who, from, to, when, why" test "$(q "SELECT h.kind || '|' || fs.code || '|' || fd.code || '|' || td.code || '|' || b.code || '|' || (h.at > now() - interval '1 minute') || '|' || h.reason FROM core.handoffs h JOIN core.staff fs ON fs.id = h.from_staff_id JOIN core.departments fd ON fd.id = h.from_department_id JOIN core.departments td ON td.id = h.to_department_id JOIN core.staff b ON b.id = h.by_staff_id WHERE h.case_id = '$id'")" = "transfer|li.desk|front-desk|engineering|li.desk|true|漏水 a leak: engineering fixes pipes"
check "... the handoff names its event, which is in the outbox" test "$(q "SELECT count(*) FROM core.handoffs h JOIN bus.events e ON e.event_id = h.event_id WHERE h.case_id = '$id' AND e.type = 'case.transferred'")" = 1
check "... counted as a transfer" test "$(q "SELECT transfer_count FROM core.cases WHERE id = '$id'")" = 1
check "the same change again on the old version: 412" expect 412 'version 2, not 1' "$(act "$DESK" "$id" transfer 1 '{"to_department":"security","reason":"x"}')"
check "a handler may not accept for the head: 403" expect 403 '' "$(act "$TECH" "$id" accept 2 '{"handler":"wu.tech"}')"
check "the head appoints a handler outside the department: 403" expect 403 '' "$(act "$HEAD" "$id" accept 2 '{"handler":"wang.guard"}')"
out=$(act "$HEAD" "$id" accept 2 '{"handler":"wu.tech","note":"吴师傅 go"}')
check "the head accepts and appoints the handler" expect 200 '"owner":"wu.tech"' "$out"
check "... accepted, version 3" test "$(state "$id")" = "accepted wu.tech engineering 3"
check "... an accept handoff signed by the head" test "$(q "SELECT b.code || '>' || ts.code FROM core.handoffs h JOIN core.staff b ON b.id = h.by_staff_id JOIN core.staff ts ON ts.id = h.to_staff_id WHERE h.case_id = '$id' AND h.kind = 'accept'")" = "zhou.eng>wu.tech"
check "first contact in the future: 422" expect 422 '"field":"contacted_at"' "$(act "$TECH" "$id" first_contact 3 "{\"note\":\"x\",\"contacted_at\":$(( ($(date +%s) + 86400) * 1000000 ))}")"
check "a time out of any range: 422, not a 503" expect 422 '"field":"expected_completion_at"' "$(act "$TECH" "$id" progress 3 '{"note":"x","expected_completion_at":9000000000000000000}')"
check "a reason over 10,000 characters: 422, not a 503" expect 422 'at most 10000 characters' "$(act "$TECH" "$id" first_contact 3 "{\"note\":\"$(head -c 10001 /dev/zero | tr '\0' x)\"}")"
check "an unknown member with a long name: the 422 is still UTF-8" bash -c "act() { :; }; curl -s -H 'Authorization: Bearer $TECH' -H 'Content-Type: application/json' -H 'If-Match: 3' --data-binary '{\"$(printf 'a%.0s' $(seq 1 62))中\":1}' $api/v1/cases/$id/actions/first_contact | python3 -c 'import sys; sys.stdin.buffer.read().decode(\"utf-8\")'"
check "on behalf of nobody: 422" expect 422 '"field":"on_behalf_of"' "$(act "$TECH" "$id" first_contact 3 '{"note":"x","on_behalf_of":"ghost.nobody"}')"
check "first contact" expect 200 '"status":"in_progress"' "$(act "$TECH" "$id" first_contact 3 '{"note":"called Ms Liu, coming at 3pm"}')"
check "... its time is kept" test "$(q "SELECT first_contact_at IS NOT NULL FROM core.cases WHERE id = '$id'")" = t
check "progress with a bad date: 422" expect 422 '"field":"expected_completion_at"' "$(act "$TECH" "$id" progress 4 '{"note":"parts ordered","expected_completion_at":"2026-02-30"}')"
check "progress with an expected date (local to the site)" expect 200 '"version":5' "$(act "$TECH" "$id" progress 4 '{"note":"parts ordered","expected_completion_at":"2026-12-01"}')"
check "... the note and the date are kept" test "$(q "SELECT n.expected_date || ' ' || to_char(c.expected_completion AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM-DD HH24:MI') FROM core.case_notes n JOIN core.cases c ON c.id = n.case_id WHERE n.case_id = '$id' AND n.kind = 'progress'")" = "2026-12-01 2026-12-01 00:00"
check "wait with an unknown party: 422 listing the choices" expect 422 'customer, third_party' "$(act "$TECH" "$id" wait 5 '{"waiting_on":"neighbour","reason":"x"}')"
check "wait for a third party (the clocks pause)" expect 200 '"status":"waiting"' "$(act "$TECH" "$id" wait 5 '{"waiting_on":"third_party","reason":"the pipe supplier"}')"
check "... what it waits on and since when are kept" test "$(q "SELECT waiting_on || ' ' || status_before_waiting || ' ' || (waiting_since IS NOT NULL) || ' ' || waiting_reason FROM core.cases WHERE id = '$id'")" = "third_party in_progress true the pipe supplier"
sleep 0.2
check "resume: back to in progress" expect 200 '"status":"in_progress"' "$(act "$TECH" "$id" resume 6 '{"note":"parts arrived"}')"
check "... the pause is added up, the waiting state and its reason cleared" test "$(q "SELECT (paused_total > interval '0') || ' ' || coalesce(waiting_on, '-') || ' ' || (waiting_since IS NULL) || ' ' || coalesce(waiting_reason, '-') FROM core.cases WHERE id = '$id'")" = "true - true -"
check "resolve without a result: 422" expect 422 '"field":"result"' "$(act "$TECH" "$id" resolve 7 '{}')"
check "resolve" expect 200 '"status":"resolved"' "$(act "$TECH" "$id" resolve 7 '{"result":"pipe replaced, ceiling dried"}')"
check "... the result is on the case" test "$(q "SELECT result FROM core.cases WHERE id = '$id'")" = "pipe replaced, ceiling dried"
check "the handler may not do the callback: 403 (the first responder does)" expect 403 '' "$(act "$TECH" "$id" callback 8 '{"satisfaction":"satisfied"}')"
out=$(act "$DESK" "$id" callback 8 '{"satisfaction":"unsatisfied","note":"still drips"}')
check "an unsatisfied callback reopens the case" expect 200 '"status":"in_progress"' "$out"
check "... the old result no longer stands" test "$(q "SELECT coalesce(result, '-') FROM core.cases WHERE id = '$id'")" = "-"
check "... and says so with two events" test "$(q "SELECT string_agg(type, ',' ORDER BY seq) FROM bus.events WHERE case_id = '$id' AND type IN ('case.callback', 'case.reopened')")" = "case.callback,case.reopened"
check "resolve again" expect 200 '"status":"resolved"' "$(act "$TECH" "$id" resolve 9 '{"result":"joint resealed"}')"
check "a satisfied callback closes it" expect 200 '"status":"closed"' "$(act "$DESK" "$id" callback 10 '{"satisfaction":"satisfied","note":"all dry"}')"
check "... satisfaction recorded on the case and its note" test "$(q "SELECT c.satisfaction || ' ' || count(n.*) FROM core.cases c JOIN core.case_notes n ON n.case_id = c.id AND n.kind = 'callback' WHERE c.id = '$id' GROUP BY c.satisfaction")" = "satisfied 2"
check "a closed case cannot be resolved: 409 with the rule's reason" expect 409 'closed' "$(act "$TECH" "$id" resolve 11 '{"result":"again"}')"
check "... and the refusal changed nothing" test "$(state "$id")" = "closed wu.tech engineering 11"
check "every step one event, in order" test "$(events "$id")" = "case.registered,case.transferred,case.accepted,case.first_contact,case.progress,case.waiting,case.resumed,case.resolved,case.callback,case.reopened,case.resolved,case.callback"
check "every event carries the case's version after it" test "$(q "SELECT count(*) FROM bus.events WHERE case_id = '$id'")" = 12

echo "== a return, and what it forbids"
id=$(register "$DESK" "门禁卡坏了 access card broken" help)
check "transfer to security" expect 200 '"owner":"zheng.sec"' "$(act "$DESK" "$id" transfer 1 '{"to_department":"security","reason":"access cards"}')"
check "return without a reason: 422 (there is no refuse)" expect 422 '"field":"reason"' "$(act "$SECHEAD" "$id" return 2 '{"reason":"  "}')"
check "security returns it with a written reason" expect 200 '"owner":"li.desk"' "$(act "$SECHEAD" "$id" return 2 '{"reason":"cards are issued by the front desk"}')"
check "... back with the first responder, security remembered" test "$(q "SELECT status || ' ' || array_to_string(returned_by, ',') FROM core.cases WHERE id = '$id'")" = "assigned security"
check "... a return handoff with its reason" test "$(q "SELECT count(*) FROM core.handoffs WHERE case_id = '$id' AND kind = 'return' AND reason = 'cards are issued by the front desk'")" = 1
check "the receptionist may not send it back to security: 403" expect 403 'returned' "$(act "$DESK" "$id" transfer 3 '{"to_department":"security","reason":"please"}')"
check "forward is for a department that holds it: 409" expect 409 '' "$(act "$DESK" "$id" forward 3 '{"to_department":"finance","reason":"x"}')"
check "an API key may not act: 403" expect 403 'API key' "$(act "$KEY" "$id" resolve 3 '{"result":"x"}')"
check "unknown command: 404" expect 404 'no such command' "$(act "$DESK" "$id" refuse 3 '{}')"
check "register is not an action: 404" expect 404 'no such command' "$(act "$DESK" "$id" register 3 '{}')"
check "GET on an action: 405" expect 405 'method not allowed' "$(curl -s -o "$tmp/out" -w '%{http_code}' -H "Authorization: Bearer $DESK" "$api/v1/cases/$id/actions/resolve"; printf ' '; cat "$tmp/out")"
check "an unknown case: 404" expect 404 'no such case' "$(act "$DESK" 00000000-0000-4000-8000-000000000000 resolve 1 '{"result":"x"}')"
check "malformed JSON: 400" expect 400 'malformed JSON' "$(act "$DESK" "$id" resolve 3 '{"result":')"
check "no body at all, for a command that needs a field: 422" expect 422 '"field":"result"' "$(curl -s -o "$tmp/out" -w '%{http_code}' -X POST -H "Authorization: Bearer $DESK" -H 'If-Match: 3' "$api/v1/cases/$id/actions/resolve"; printf ' '; cat "$tmp/out")"
check "the receptionist resolves it herself" expect 200 '"status":"resolved"' "$(act "$DESK" "$id" resolve 3 '{"result":"new card issued"}')"

echo "== two people, one version"
id=$(register "$DESK" "停车位被占 parking space taken" complaint)
act "$DESK" "$id" transfer 1 '{"to_department":"security","reason":"parking"}' >"$tmp/r1" &
r1=$!
act "$DESK" "$id" transfer 1 '{"to_department":"engineering","reason":"parking"}' >"$tmp/r2" &
r2=$!
wait "$r1" "$r2"
check "two changes on the same version: one 200, one 412" test "$(cut -c1-3 "$tmp/r1" "$tmp/r2" | sort | tr '\n' ' ')" = "200 412 "
check "... one transfer recorded" test "$(q "SELECT count(*) FROM core.handoffs WHERE case_id = '$id'")/$(q "SELECT transfer_count FROM core.cases WHERE id = '$id'")" = "1/1"

echo "== a lead department, a manager's close, a leader's call-back"
id=$(register "$DESK" "小区停电 power cut in building 5" complaint)
check "a receptionist may not designate a lead: 403" expect 403 '' "$(act "$DESK" "$id" designate_lead 1 '{"lead_department":"engineering","assisting_departments":["security"],"reason":"x"}')"
check "the supervisor designates engineering with security and cleaning assisting" expect 200 '"department":"engineering"' "$(act "$SUP" "$id" designate_lead 1 '{"lead_department":"engineering","assisting_departments":["security","cleaning"],"reason":"power cut: engineering leads"}')"
check "... one lead, two assisting" test "$(q "SELECT string_agg(d.code || ':' || cd.role, ',' ORDER BY cd.role, d.code) FROM core.case_departments cd JOIN core.departments d ON d.id = cd.department_id WHERE cd.case_id = '$id'")" = "cleaning:assisting,security:assisting,engineering:lead"
check "an assisting department that does not exist: 422" expect 422 'department' "$(act "$SUP" "$id" designate_lead 2 '{"lead_department":"engineering","assisting_departments":["nowhere"],"reason":"x"}')"
out=$(act "$DESK" "$id" request_leader_callback 2 '{"leader":"zhao.gm","reason":"the owner asks for the general manager","callback_phone":"13800005678"}')
check "a leader's call-back is requested" expect 200 '"version":3' "$out"
check "... the leader's number is not in the answer" bash -c "! grep -q 13900000001 <<<'$out'"
check "... with where and when the customer wants the call" test "$(q "SELECT callback_phone FROM core.leader_callbacks WHERE case_id = '$id'")" = 13800005678
check "a call-back number that is not a phone number: 422" expect 422 '"field":"callback_phone"' "$(act "$DESK" "$id" request_leader_callback 3 '{"leader":"zhao.gm","reason":"x","callback_phone":"call me maybe"}')"
check "a call-back from someone who is not a leader: 422" expect 422 '"field":"leader"' "$(act "$DESK" "$id" request_leader_callback 3 '{"leader":"wu.tech","reason":"x"}')"
check "... the request reaches the leader" test "$(q "SELECT count(*) FROM core.leader_callbacks l JOIN core.staff s ON s.id = l.leader_id WHERE l.case_id = '$id' AND s.code = 'zhao.gm' AND l.done_at IS NULL")" = 1
check "the receptionist may not close it as unresolvable: 403" expect 403 '' "$(act "$DESK" "$id" close_unresolvable 3 '{"reason":"x"}')"
check "the manager must give a reason: 422" expect 422 '"field":"reason"' "$(act "$MGR" "$id" close_unresolvable 3 '{}')"
check "the manager closes it as unresolvable with a reason" expect 200 '"status":"closed_unresolvable"' "$(act "$MGR" "$id" close_unresolvable 3 '{"reason":"the grid operator is responsible; owner informed"}')"
check "... the reason is kept" test "$(q "SELECT unresolvable_reason FROM core.cases WHERE id = '$id'")" = "the grid operator is responsible; owner informed"

echo "== on the spot, and referred out"
id=$(register "$DESK" "物业费怎么交 how to pay the fee" consultation)
check "resolved on the spot: closed" expect 200 '"status":"closed"' "$(act "$DESK" "$id" resolve_on_spot 1 '{"result":"explained the payment app"}')"
check "... counted as on the spot" test "$(q "SELECT resolved_on_spot FROM core.cases WHERE id = '$id'")" = t
id=$(register "$DESK" "户口迁移 household registration" consultation)
check "refer out without guidance: 422" expect 422 '"field":"guidance"' "$(act "$DESK" "$id" refer_out 1 '{"referred_to":"police station"}')"
check "referred out with guidance" expect 200 '"status":"referred_out"' "$(act "$DESK" "$id" refer_out 1 '{"referred_to":"派出所 police station","guidance":"bring your ID and the property deed"}')"

echo "== hostile requests"
check "a key prefix with a quote: 401, not a 503 for its whole batch" expect 401 'invalid credentials' "$(act 'swk_ab"cd_0123456789' "$id" resolve 1 '{}')"
printf 'GET /v1/cases HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: 60\r\n\r\nGET /v1/nothing HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n' "$DESK" >"$tmp/smuggle"
check "a GET with a body: 400 and the connection closed, the body never read as a request" bash -c "out=\$(timeout 5 curl -s --max-time 3 telnet://127.0.0.1:$port <'$tmp/smuggle'); grep -q '^HTTP/1.1 400' <<<\"\$out\" && test \$(grep -c '^HTTP/1.1' <<<\"\$out\") = 1"
q "INSERT INTO core.departments (site_id, code, name) SELECT id, 'NULL', 'a department coded NULL' FROM core.sites WHERE code = 'SH01'" >/dev/null
NULLHEAD=$(q "INSERT INTO core.staff (site_id, code, name, role, department_id) SELECT s.id, 'null.head', 'Head of NULL', 'department_head', d.id FROM core.sites s JOIN core.departments d ON d.site_id = s.id AND d.code = 'NULL' WHERE s.code = 'SH01'" >/dev/null; token null.head)
id=$(register "$DESK" "名字叫NULL的部门 a department named NULL" help)
act "$DESK" "$id" transfer 1 '{"to_department":"NULL","reason":"try"}' >/dev/null
check "a department coded NULL returns a case" expect 200 '"status":"assigned"' "$(act "$NULLHEAD" "$id" return 2 '{"reason":"not ours"}')"
check "... and is remembered as such" expect 403 'returned' "$(act "$DESK" "$id" transfer 3 '{"to_department":"NULL","reason":"again"}')"

echo "== after all that"
check "refusals counted" test "$(curl -s "http://$admin/metrics" | awk '/^shouwen_intake_bad_requests_total/ {print $2}')" -ge 20
check "no customer data in the log" bash -c "! grep -q '13800005678\|刘女士\|Failing row' '$tmp/intake.log'"
# Regression: a stop waited for the request whose body was still arriving,
# but when that request then ended without a job (its client went away) the
# workers were never woken again: shouwen-intake hung in SIGTERM for ever.
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf 'POST /v1/cases HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"site":' >&3
sleep 0.3
kill -TERM "$intake_pid"
sleep 0.5
check "SIGTERM with a request body still arriving: waits for it" kill -0 "$intake_pid"
exec 3>&- 3<&-
check "... the client goes away: the service stops at once" wait_for 10 bash -c "! kill -0 $intake_pid"
wait "$intake_pid"
rc=$?
intake_pid=""
check "... exit 0" test "$rc" = 0
finish
