#!/usr/bin/env bash
# The routing service, real: a private PostgreSQL, the demo site and its
# rules, the real shouwen-intake and shouwen-routing (routing dials
# intake's PUB socket for the doorbell), cases registered over HTTP.  Each
# kind of case lands where DOMAIN.md says: in the first responder's own
# scope it stays (and the history says why); an operator's out-of-scope
# request goes to their direct supervisor; otherwise the rules transfer it,
# signed by the service on behalf of the first responder (a lead with
# assisting departments for a multi-department rule; QA copied on
# complaints); nothing matching goes to the customer-relations supervisor.
# A return goes to the next department that has not returned it, or to the
# supervisor; a loop is caught and flagged.  An event about an unknown case
# is parked with its reason.  Then routing is SIGKILLed in the middle of a
# stream of registrations and restarted: every case is routed, once.
set -uo pipefail

name=routing
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
tbin=${SHOUWEN_TEST_BIN:-$top/build/tests}
routing_pid=""
cleanup() {
    [ -z "$routing_pid" ] || kill -KILL "$routing_pid" 2>/dev/null
    intake_cleanup
}
trap cleanup EXIT

. "$(dirname "${BASH_SOURCE[0]}")/cases.sh"
# where ID: "status owner department" of the case
where() { q "SELECT c.status || ' ' || coalesce(o.code, '-') || ' ' || coalesce(d.code, '-') FROM core.cases c LEFT JOIN core.staff o ON o.id = c.owner_id LEFT JOIN core.departments d ON d.id = c.department_id WHERE c.id = '$1'"; }
is_at() { test "$(where "$1")" = "$2"; }
routed() { # routed ID N: the case has N routing steps (handoffs signed by routing, or its notes)
    test "$(q "SELECT (SELECT count(*) FROM core.handoffs WHERE case_id = '$1' AND by_system = 'routing') + (SELECT count(*) FROM core.case_notes WHERE case_id = '$1' AND by_staff_id IS NULL AND text LIKE 'routing: %')")" -ge "$2"
}
why() { q "SELECT coalesce(string_agg(reason, ' | ' ORDER BY at, id), '') FROM core.handoffs WHERE case_id = '$1' AND by_system = 'routing'"; }
notes() { q "SELECT coalesce(string_agg(text, ' | ' ORDER BY id), '') FROM core.case_notes WHERE case_id = '$1' AND by_staff_id IS NULL"; }

routing_start() {
    env SHOUWEN_ROUTING_ADMIN_ADDR="$radmin" SHOUWEN_ROUTING_PUB_URL="ipc://$tmp/routing.pub" \
        SHOUWEN_ROUTING_SUB_URLS="ipc://$tmp/intake.pub" "$bin/shouwen-routing" 2>>"$tmp/routing.log" &
    routing_pid=$!
    check "routing ready" wait_for 10 curl -fs "http://$radmin/readyz"
}

echo "== setup"
intake_setup
ENG=$(token_for zhou.eng)
SEC=$(token_for zheng.sec)
intake_start
radmin=127.0.0.1:$(free_ports 1)
# Routing's transactions are keyed (DB_BEGIN_KEYED): the plans it prepares
# and keeps, made now on a database without a case, must probe by key.
# auto_explain logs the plans of the sessions that connect from here on,
# routing's among them (section "routing's kept plans" reads them).
plans_logged on
routing_start
metric() { curl -s "http://$radmin/metrics" | awk -v m="$1" '$1 == m {s += $2} END {print s + 0}'; }

echo "== new cases"
own=$(register "$TOKEN" '{"site":"SH01","channel":"visit","type":"complaint","subject":"前台态度不好 漏水没人管"}')
check "a complaint at the front desk (its scope): stays with li.desk" wait_for 10 routed "$own" 1
check "... registered, with li.desk at front-desk" is_at "$own" "registered li.desk front-desk"
check "... the history says why" contains 'covers complaint requests' "$(notes "$own")"

water=$(register "$TOKEN" '{"site":"SH01","channel":"visit","type":"help","subject":"厨房漏水","customer":{"address":"3-2-501"}}')
check "help outside the front desk's scope, about a leak: transferred to engineering" wait_for 10 is_at "$water" "transferred zhou.eng engineering"
check "... signed by routing on behalf of li.desk" test "$(q "SELECT h.by_system || ' ' || o.code || ' ' || h.kind FROM core.handoffs h JOIN core.staff o ON o.id = h.on_behalf_of_id WHERE h.case_id = '$water'")" = "routing li.desk transfer"
check "... the reason names the rule" contains 'rule "water and pipes" (priority 10) matched' "$(why "$water")"
check "... the natural first responder is still li.desk" test "$(q "SELECT s.code FROM core.cases c JOIN core.staff s ON s.id = c.first_responder_id WHERE c.id = '$water'")" = li.desk
check "... case.transferred is in the outbox" test "$(q "SELECT count(*) FROM bus.events WHERE case_id = '$water' AND type = 'case.transferred'")" = 1

guard=$(register "$(token_for wang.guard)" '{"site":"SH01","channel":"visit","type":"repair","subject":"电梯坏了"}')
check "a guard's repair request (outside security's scope): to his supervisor zheng.sec" wait_for 10 is_at "$guard" "assigned zheng.sec security"
check "... the reason says so" contains 'direct supervisor zheng.sec' "$(why "$guard")"

emerg=$(register "$KEY" '{"site":"SH01","channel":"hotline","type":"help","urgency":"emergency","subject":"有人被困电梯"}')
check "an emergency from the hotline: security leads" wait_for 10 is_at "$emerg" "transferred zheng.sec security"
check "... engineering assists" test "$(q "SELECT string_agg(d.code || ':' || cd.role, ',' ORDER BY cd.role) FROM core.case_departments cd JOIN core.departments d ON d.id = cd.department_id WHERE cd.case_id = '$emerg'")" = "engineering:assisting,security:lead"
check "... case.lead_designated is in the outbox (all are told)" test "$(q "SELECT count(*) FROM bus.events WHERE case_id = '$emerg' AND type = 'case.lead_designated'")" = 1

compl=$(register "$KEY" '{"site":"SH01","channel":"hotline","type":"complaint","subject":"物业费收费不合理"}')
check "a complaint about fees from the hotline: to finance" wait_for 10 is_at "$compl" "transferred chu.fin finance"
check "... its transfer tells QA (copied_to_qa)" bash -c "'$top/deploy/pg.sh' psql -qtAX -c \"SELECT encode(payload, 'hex') FROM bus.events WHERE case_id = '$compl' AND type = 'case.transferred'\" | grep -q ."

none=$(register "$KEY" '{"site":"SH01","channel":"hotline","type":"consultation","subject":"请问怎么去地铁站"}')
check "nothing matches: to the customer-relations supervisor sun.sup" wait_for 10 is_at "$none" "assigned sun.sup front-desk"
check "... the reason says no rule matched" contains 'no rule of the site' "$(why "$none")"

echo "== routing's kept plans probe by key, though made on an empty database"
plans_logged off
plans_of '^routing$' >"$tmp/routing-plans.log"
probes=$(grep -c 'Scan on cases_pkey\|Scan using cases_pkey' "$tmp/routing-plans.log")
check "routing's plans were logged: $probes probes of core.cases by its key" test "$probes" -gt 6
scans=$(grep -c 'Seq Scan on \(cases\|handoffs\|events\|case_notes\)\b\|Hash Join\|Merge Join' "$tmp/routing-plans.log")
check "no sequential scan of cases, handoffs or events, no hash or merge join ($scans)" test "$scans" = 0
# each case probed by its id, not every case found matched against every
# given one (a join filter on the id: quadratic in the batch's size)
filtered=$(grep -c 'Join Filter: .*\bc\.id = ' "$tmp/routing-plans.log" || true)
check "no case matched against the batch by a join filter on its id ($filtered)" test "$filtered" = 0
# a routing without auto_explain for the rest
kill -TERM "$routing_pid"
wait "$routing_pid" 2>/dev/null
routing_start

echo "== returns and loops"
both=$(register "$KEY" '{"site":"SH01","channel":"hotline","type":"help","subject":"楼上漏水 还有噪音"}')
check "a leak and noise: engineering first (priority 10)" wait_for 10 is_at "$both" "transferred zhou.eng engineering"
check "engineering returns it with a reason" test "$(act "$ENG" "$both" return '{"reason":"噪音不归工程部"}')" = 200
check "... routed to the next match that has not returned it: security" wait_for 10 is_at "$both" "transferred zheng.sec security"
check "... never back to engineering" contains 'not returned it: transferred to security' "$(why "$both")"
check "security forwards it to engineering" test "$(act "$SEC" "$both" forward '{"to_department":"finance","reason":"其实是收费问题"}')" = 200
FIN=$(token_for chu.fin)
check "finance returns it" test "$(act "$FIN" "$both" return '{"reason":"不是收费问题"}')" = 200
check "... the next match is security, where it has been: a loop, to the supervisor" wait_for 10 is_at "$both" "assigned sun.sup front-desk"
check "... flagged for QA" contains 'flagged for QA' "$(notes "$both")"
check "... counted" test "$(metric shouwen_routing_loops_total)" = 1

leak=$(register "$KEY" '{"site":"SH01","channel":"hotline","type":"help","subject":"卫生间渗水"}')
check "a leak: to engineering" wait_for 10 is_at "$leak" "transferred zhou.eng engineering"
check "engineering returns it" test "$(act "$ENG" "$leak" return '{"reason":"是楼上住户的问题"}')" = 200
check "... no other department matches: the supervisor" wait_for 10 is_at "$leak" "assigned sun.sup front-desk"
check "... the reason says it was returned" contains 'returned by 1 department' "$(why "$leak")"

echo "== two events of one case in one batch: the later one waits for the earlier"
kill -TERM "$routing_pid"
wait "$routing_pid" 2>/dev/null
SUP=$(token_for sun.sup)
late=$(register "$KEY" '{"site":"SH01","channel":"hotline","type":"help","subject":"阳台漏水"}')
check "with routing stopped, the supervisor transfers a leak by hand" test "$(act "$SUP" "$late" transfer '{"to_department":"engineering","reason":"漏水归工程部"}')" = 200
check "... and engineering returns it" test "$(act "$ENG" "$late" return '{"reason":"是物业公共管道"}')" = 200
skipped=$(q "SELECT count(*) FROM bus.events WHERE case_id = '$late' AND type IN ('case.registered', 'case.returned')")
check "... two events for routing wait on the bus" test "$skipped" = 2
routing_start
check "routing back: the registration is past, the return is routed: to the supervisor" wait_for 10 is_at "$late" "assigned sun.sup front-desk"
check "... by one step of routing's" test "$(q "SELECT count(*) FROM core.handoffs WHERE case_id = '$late' AND by_system = 'routing'")" = 1
check "... the registration counted as moved on" test "$(metric shouwen_routing_skipped_total)" = 1

echo "== absences: the roster kept by routing, changed through the API"
MGR=$(token_for qian.mgr)
A=/v1/sites/SH01/routing/absences
check "an unknown staff member: 422" expect 422 '"field":"staff"' "$(call POST "$MGR" "$A" '{"staff":"nobody"}')"
check "a deputy who is the absent person: 422" expect 422 'cannot be the absent person' "$(call POST "$MGR" "$A" '{"staff":"zhou.eng","deputy":"zhou.eng"}')"
check "an unknown deputy: 422" expect 422 '"field":"deputy"' "$(call POST "$MGR" "$A" '{"staff":"zhou.eng","deputy":"ghost"}')"
check "until before from: 422" expect 422 'must be after from' "$(call POST "$MGR" "$A" '{"staff":"zhou.eng","from":"2026-12-02T09:00:00+08:00","until":"2026-12-01T09:00:00+08:00"}')"
check "not a time: 422" expect 422 '"field":"until"' "$(call POST "$MGR" "$A" '{"staff":"zhou.eng","until":"next week"}')"
check "an unknown field: 422" expect 422 '"field":"colour"' "$(call POST "$MGR" "$A" '{"staff":"zhou.eng","colour":"red"}')"
check "a receptionist may not: 403" expect 403 'forbidden' "$(call GET "$TOKEN" "$A")"
out=$(call POST "$MGR" "$A" '{"staff":"zhou.eng","deputy":"wu.tech","reason":"年假 annual leave"}')
check "the head of engineering is off duty from now, wu.tech his deputy: 201" expect 201 '"deputy":"wu.tech"' "$out"
absence=$(sed -n 's/.*"id":"\([0-9]*\)".*/\1/p' <<<"$out")
check "... listed" expect 200 '"staff":"zhou.eng"' "$(call GET "$MGR" "$A")"
away=$(register "$KEY" '{"site":"SH01","channel":"hotline","type":"help","subject":"阳台漏水"}')
check "a leak while he is away: transferred to engineering, wu.tech holds it" wait_for 10 is_at "$away" "transferred wu.tech engineering"
check "... the reason says who stood in" contains 'zhou.eng is off duty: wu.tech stands in' "$(why "$away")"
check "wu.tech, standing in, appoints himself the handler" test "$(act "$(token_for wu.tech)" "$away" accept '{"handler":"wu.tech"}')" = 200
check "ending the absence: 200" expect 200 '"until":"' "$(call DELETE "$MGR" "$A/$absence")"
check "... ending it again: 404" expect 404 'no such absence' "$(call DELETE "$MGR" "$A/$absence")"
check "... no longer listed" expect 200 '"absences":[]' "$(call GET "$MGR" "$A")"
back=$(register "$KEY" '{"site":"SH01","channel":"hotline","type":"help","subject":"水管爆了"}')
check "back on duty: the next leak goes to zhou.eng again" wait_for 10 is_at "$back" "transferred zhou.eng engineering"
check "the supervisor is off duty without a deputy" expect 201 '"deputy":null' "$(call POST "$MGR" "$A" '{"staff":"sun.sup","until":"2099-01-01T00:00"}')"
nosup=$(register "$KEY" '{"site":"SH01","channel":"hotline","type":"consultation","subject":"请问附近有没有药店"}')
check "... a case for the supervisor goes to her supervisor, the manager" wait_for 10 is_at "$nosup" "assigned qian.mgr management"
check "... saying so" contains 'sun.sup is off duty: qian.mgr stands in' "$(why "$nosup")"

echo "== bad events"
check "a case.registered about a case that does not exist is put on the bus" env BUSTEST_COUNT=1 BUSTEST_CASES=1 BUSTEST_PUB_URL= "$tbin/bus_driver" produce
parked() { test "$(q "SELECT count(*) FROM bus.dead_letters WHERE consumer = 'routing' AND last_error LIKE '%unknown case%'")" = 1; }
check "... retried, then parked with the reason" wait_for 90 parked
check "... and routing goes on: a new case is routed" wait_for 10 is_at "$(register "$KEY" '{"site":"SH01","channel":"hotline","type":"help","subject":"垃圾没人清扫"}')" "transferred feng.clean cleaning"

echo "== routing SIGKILLed in the middle of 10,000 registrations, and restarted"
"$tbin/http_load" -u "$api/v1/cases" -k "$KEY" -c 16 -d 4 -r 2500 -p kill- -s SH01 >"$tmp/load.out" 2>&1 &
load=$!
sleep 1.5
kill -KILL "$routing_pid"
wait "$routing_pid" 2>/dev/null
tbin=${SHOUWEN_TEST_BIN:-$top/build/tests}
routing_pid=""
check "routing killed while cases were coming in" test "$(q "SELECT count(*) FROM core.cases WHERE external_ref LIKE 'kill-%'")" -gt 0
sleep 1
routing_start
wait "$load"
check "the load went through" grep -q ' errors=0 ' "$tmp/load.out"
sent=$(sed -n 's/.* ok=\([0-9]*\) .*/\1/p' "$tmp/load.out")
check "... 10,000 cases registered" test "${sent:-0}" -ge 9900
unrouted() { q "SELECT count(*) FROM core.cases WHERE external_ref LIKE 'kill-%' AND status = 'registered'"; }
all_routed() { test "$(unrouted)" = 0; }
check "every one of them routed" wait_for 180 all_routed
check "... each by exactly one transfer signed by routing" test "$(q "SELECT count(*) FROM (SELECT c.id FROM core.cases c LEFT JOIN core.handoffs h ON h.case_id = c.id AND h.by_system = 'routing' WHERE c.external_ref LIKE 'kill-%' GROUP BY c.id HAVING count(h.id) <> 1) x")" = 0
check "... all with engineering" test "$(q "SELECT count(*) FROM core.cases c JOIN core.departments d ON d.id = c.department_id WHERE c.external_ref LIKE 'kill-%' AND d.code = 'engineering' AND c.status = 'transferred'")" = "$sent"
check "... one case.transferred each" test "$(q "SELECT count(*) FROM bus.events e JOIN core.cases c ON c.id = e.case_id WHERE c.external_ref LIKE 'kill-%' AND e.type = 'case.transferred'")" = "$sent"

echo "== stop"
kill -TERM "$routing_pid"
wait "$routing_pid"
rc=$?
tbin=${SHOUWEN_TEST_BIN:-$top/build/tests}
routing_pid=""
check "routing: SIGTERM, exit 0" test "$rc" = 0
intake_stop
finish
