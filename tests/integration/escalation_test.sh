#!/usr/bin/env bash
# The escalation service, real: a private PostgreSQL, the demo site with
# limits of seconds (a test site's ladder, scaled), the real shouwen-intake,
# shouwen-routing and shouwen-escalation, cases registered and handled over
# HTTP.  A handoff not made in time, a handler not appointed, a customer
# not contacted, the 2-day and 1-week steps, a callback overdue: each is
# breached once, recorded as a violation against whoever held the case,
# announced by case.deadline_breached, and the ladder's steps hand the case
# to the supervisor and then the manager, signed by the service.  An
# emergency climbs rung by rung until someone acknowledges it.  A wait
# pauses the clocks and resuming keeps the time used.  A SIGKILL between a
# deadline and its firing neither loses nor doubles the breach.  Reviews
# are asked for once a day; a calendar without next year's holidays is
# flagged; an event about an unknown case is parked.
set -uo pipefail

name=escalation
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
tbin=${SHOUWEN_TEST_BIN:-$top/build/tests}
routing_pid=""
esc_pid=""
cleanup() {
    [ -z "$routing_pid" ] || kill -KILL "$routing_pid" 2>/dev/null
    [ -z "$esc_pid" ] || kill -KILL "$esc_pid" 2>/dev/null
    intake_cleanup
}
trap cleanup EXIT

. "$(dirname "${BASH_SOURCE[0]}")/cases.sh"
where() { q "SELECT c.status || ' ' || coalesce(o.code, '-') || ' ' || coalesce(d.code, '-') || ' ' || c.escalation_level FROM core.cases c LEFT JOIN core.staff o ON o.id = c.owner_id LEFT JOIN core.departments d ON d.id = c.department_id WHERE c.id = '$1'"; }
is_at() { test "$(where "$1")" = "$2"; }
# violations ID KIND: "count staff department" of the case's violations of that kind
violations() { q "SELECT count(*) || ' ' || coalesce(max(s.code), '-') || ' ' || coalesce(max(d.code), '-') FROM escalation.violations v LEFT JOIN core.staff s ON s.id = v.staff_id LEFT JOIN core.departments d ON d.id = v.department_id WHERE v.case_id = '$1' AND v.kind = '$2'"; }
has_violation() { test "$(violations "$1" "$2")" = "$3"; }
breached() { test "$(q "SELECT count(*) FROM escalation.deadlines WHERE case_id = '$1' AND kind = '$2' AND breached_at IS NOT NULL")" = 1; }
events_of() { q "SELECT count(*) FROM bus.events WHERE case_id = '$1' AND type = '$2'"; }
due_of() { q "SELECT coalesce((extract(epoch FROM due_at) * 1000)::bigint::text, 'paused') FROM escalation.deadlines WHERE case_id = '$1' AND kind = '$2' AND met_at IS NULL AND breached_at IS NULL"; }
# eq WANT command...: the command prints WANT (evaluated anew on each try of wait_for)
eq() { local want=$1; shift; test "$("$@")" = "$want"; }
ne() { local want=$1; shift; test "$("$@")" != "$want"; }

routing_start() {
    env SHOUWEN_ROUTING_ADMIN_ADDR="$radmin" SHOUWEN_ROUTING_PUB_URL="ipc://$tmp/routing.pub" \
        SHOUWEN_ROUTING_SUB_URLS="ipc://$tmp/intake.pub" "$bin/shouwen-routing" 2>>"$tmp/routing.log" &
    routing_pid=$!
    check "routing ready" wait_for 10 curl -fs "http://$radmin/readyz"
}
esc_start() {
    env SHOUWEN_ESCALATION_ADMIN_ADDR="$eadmin" SHOUWEN_ESCALATION_PUB_URL="ipc://$tmp/escalation.pub" \
        SHOUWEN_ESCALATION_SUB_URLS="ipc://$tmp/intake.pub,ipc://$tmp/routing.pub,ipc://$tmp/escalation.pub" \
        SHOUWEN_ESCALATION_REVIEW_HOUR=0 SHOUWEN_ESCALATION_REVIEW_WEEKDAY="$(TZ=Asia/Shanghai date +%u)" \
        SHOUWEN_ESCALATION_HORIZON=5s "$bin/shouwen-escalation" 2>>"$tmp/escalation.log" &
    esc_pid=$!
    check "escalation ready" wait_for 10 curl -fs "http://$eadmin/readyz"
}
metric() { curl -s "http://$eadmin/metrics" | awk -v m="$1" '$1 == m {s += $2} END {print s + 0}'; }

echo "== setup"
intake_setup
q "INSERT INTO core.site_penalty_points (site_id, kind, points) SELECT id, 'late_handoff', 2 FROM core.sites WHERE code = 'SH01'" >/dev/null
ENG=$(token_for zhou.eng)
WU=$(token_for wu.tech)
SEC=$(token_for zheng.sec)
MGR=$(token_for qian.mgr)
intake_start
# api METHOD PATH [BODY [CONTENT-TYPE]]: the manager calls the public API; prints the status
api() {
    curl -s -o "$tmp/api.out" -w '%{http_code}' -X "$1" -H "Authorization: Bearer $MGR" \
        ${3+-H "Content-Type: ${4:-application/json}" --data-binary "$3"} "$api$2"
}
# the test site's ladder, in seconds, every clock on calendar time; suggestions
# climb slowly: a policy for the request type overrides the site's steps
check "the test site's limits, through the API" test "$(api PUT /v1/sites/SH01/limits '{"limits":[
 {"clock":"handoff","amount":"3s","basis":"calendar"}, {"clock":"appoint","amount":"3s"},
 {"clock":"first_contact","amount":"3s","basis":"calendar"}, {"clock":"resolve","amount":"1h"},
 {"clock":"supervisor","amount":"8s"}, {"clock":"manager","amount":"16s"},
 {"clock":"callback","amount":"3s"}, {"clock":"emergency_ack","amount":"3s"},
 {"clock":"supervisor","amount":"1h","case_type":"suggestion"},
 {"clock":"manager","amount":"2h","case_type":"suggestion"}]}')" = 200
radmin=127.0.0.1:$(free_ports 1)
eadmin=127.0.0.1:$(free_ports 1)
routing_start
esc_start

echo "== late handoff"
own=$(register "$TOKEN" '{"site":"SH01","channel":"visit","type":"complaint","subject":"前台态度不好"}')
check "a complaint the front desk keeps: its handoff clock runs" wait_for 10 ne "" due_of "$own" handoff
check "... not handed on in 3 s: breached" wait_for 10 breached "$own" handoff
check "... a late_handoff violation against li.desk of the front desk" has_violation "$own" late_handoff "1 li.desk front-desk"
check "... with the site's 2 penalty points" test "$(q "SELECT points FROM escalation.violations WHERE case_id = '$own'")" = 2
check "... case.deadline_breached on the bus, once" test "$(events_of "$own" case.deadline_breached)" = 1

echo "== appointment and first contact"
leak=$(register "$TOKEN" '{"site":"SH01","channel":"visit","type":"help","subject":"厨房漏水"}')
check "a leak routed to engineering" wait_for 10 is_at "$leak" "transferred zhou.eng engineering none"
check "... no handler appointed in 3 s: late_appointment against zhou.eng" wait_for 10 has_violation "$leak" late_appointment "1 zhou.eng engineering"
check "zhou.eng appoints wu.tech" test "$(act "$ENG" "$leak" accept '{"handler":"wu.tech"}')" = 200
check "... the customer not contacted in 3 s: late_first_contact against wu.tech" wait_for 10 has_violation "$leak" late_first_contact "1 wu.tech engineering"
check "... the appointment clock is met, not breached twice" test "$(violations "$leak" late_appointment)" = "1 zhou.eng engineering"

echo "== the ladder: the 2-day and 1-week steps (8 s and 16 s here)"
check "open 8 s: the supervisor takes it over" wait_for 15 is_at "$leak" "accepted sun.sup front-desk supervisor"
check "... signed by the service" test "$(q "SELECT count(*) FROM core.handoffs WHERE case_id = '$leak' AND kind = 'escalate' AND by_system = 'escalation'")" -ge 1
check "... case.escalated names the supervisor step" test "$(q "SELECT count(*) FROM bus.events WHERE case_id = '$leak' AND type = 'case.escalated'")" = 1
check "open 16 s: the manager takes it over" wait_for 15 is_at "$leak" "accepted qian.mgr management manager"
check "... each step once" test "$(events_of "$leak" case.escalated)" = 2

echo "== a wait pauses the clocks; resuming keeps the time used"
wt=$(register "$KEY" '{"site":"SH01","channel":"hotline","type":"repair","subject":"门锁坏了"}')
check "a repair routed to engineering" wait_for 10 is_at "$wt" "transferred zhou.eng engineering none"
check "zhou.eng appoints wu.tech at once" test "$(act "$ENG" "$wt" accept '{"handler":"wu.tech"}')" = 200
check "wu.tech waits for the customer" test "$(act "$WU" "$wt" wait '{"waiting_on":"customer","reason":"业主出差"}')" = 200
check "... the first-contact clock is paused" wait_for 10 eq paused due_of "$wt" first_contact
sleep 4
check "... and does not run out while paused" test "$(violations "$wt" late_first_contact)" = "0 - -"
check "wu.tech resumes" test "$(act "$WU" "$wt" resume '{"note":"业主回来了"}')" = 200
check "... the clock runs again" wait_for 10 ne paused due_of "$wt" first_contact
paused() { q "SELECT max(at) FILTER (WHERE kind = 'resumed') - max(at) FILTER (WHERE kind = 'waiting') FROM escalation.marks WHERE case_id = '$wt'"; }
exact() { q "SELECT d.due_at = d.started_at + interval '3 s' + (SELECT max(at) FILTER (WHERE kind = 'resumed') - max(at) FILTER (WHERE kind = 'waiting') FROM escalation.marks m WHERE m.case_id = d.case_id) FROM escalation.deadlines d WHERE d.case_id = '$wt' AND d.kind = 'first_contact'"; }
check "... due at its start + 3 s + the pause ($(paused)), to the microsecond" test "$(exact)" = t
check "... and then runs out" wait_for 10 has_violation "$wt" late_first_contact "1 wu.tech engineering"

echo "== callback overdue"
cb=$(register "$TOKEN" '{"site":"SH01","channel":"visit","type":"consultation","subject":"物业费怎么交"}')
check "a consultation kept by the front desk" wait_for 10 ne "" due_of "$cb" handoff
check "li.desk resolves it" test "$(act "$TOKEN" "$cb" resolve '{"result":"已告知缴费方式"}')" = 200
check "... no callback in 3 s: no_callback against li.desk" wait_for 10 has_violation "$cb" no_callback "1 li.desk front-desk"

echo "== an emergency climbs until acknowledged"
em=$(register "$KEY" '{"site":"SH01","channel":"device","type":"emergency","urgency":"emergency","subject":"3号楼烟感报警"}')
check "an emergency routed to security" wait_for 10 is_at "$em" "transferred zheng.sec security none"
emno=$(q "SELECT number FROM core.cases WHERE id = '$em'")
check "... alerted at once, before any rung: who holds it, or the supervisors while nobody does" wait_for 10 grep -Eq "case $emno: emergency alert to (zheng.sec|sun.sup)" "$tmp/escalation.log"
check "... once" test "$(grep -c "case $emno: emergency alert to" "$tmp/escalation.log")" = 1
check "... not acknowledged in 3 s: up to the supervisor" wait_for 10 eq supervisor q "SELECT escalation_level FROM core.cases WHERE id = '$em'"
check "... emergency.alerted names who is on that rung (the first alert and this one)" test "$(events_of "$em" emergency.alerted)" -ge 2
check "... then the manager" wait_for 10 eq manager q "SELECT escalation_level FROM core.cases WHERE id = '$em'"
check "zheng.sec acknowledges" test "$(act "$SEC" "$em" acknowledge_emergency "{\"alert_id\":\"$em\"}")" = 200
sleep 4
check "... the alert stops climbing" test "$(q "SELECT escalation_level FROM core.cases WHERE id = '$em'")" = manager

echo "== SIGKILL between a deadline and its firing"
kill -KILL "$esc_pid"
wait "$esc_pid" 2>/dev/null
esc_pid=""
k=$(register "$TOKEN" '{"site":"SH01","channel":"visit","type":"suggestion","subject":"建议增加电梯"}')
check "a case registered while escalation is down" test -n "$k"
sleep 4
check "... its handoff deadline passed while no one watched" test "$(violations "$k" late_handoff)" = "0 - -"
esc_start
check "... restarted: the clock is computed and the breach fires" wait_for 15 has_violation "$k" late_handoff "1 li.desk front-desk"
before=$(q "SELECT count(*) FROM escalation.violations")
check "... its steps follow the suggestion policy: the supervisor after 1 hour" test "$(q "SELECT limit_us FROM escalation.deadlines WHERE case_id = '$k' AND kind = 'supervisor'")" = 3600000000
kill -KILL "$esc_pid"
wait "$esc_pid" 2>/dev/null
esc_pid=""
esc_start
sleep 3
check "... restarted again: nothing fires twice" test "$(q "SELECT count(*) FROM escalation.violations")" = "$before"
check "... nor announced twice" test "$(events_of "$k" case.deadline_breached)" = 1

echo "== a burst: more deadlines due at once than a batch, fired by several sessions"
kill -KILL "$esc_pid"
wait "$esc_pid" 2>/dev/null
esc_pid=""
burst=()
for i in $(seq 1 12); do
    burst+=("$(register "$TOKEN" '{"site":"SH01","channel":"visit","type":"suggestion","subject":"建议 '"$i"'"}')")
done
check "12 cases registered while escalation is down" test "$(printf '%s\n' "${burst[@]}" | grep -c .)" = 12
sleep 4
export SHOUWEN_ESCALATION_FIRE_BATCH_MAX=1 SHOUWEN_ESCALATION_FIRE_SESSIONS=3
esc_start
unset SHOUWEN_ESCALATION_FIRE_BATCH_MAX SHOUWEN_ESCALATION_FIRE_SESSIONS
all_breached() {
    local c
    for c in "${burst[@]}"; do has_violation "$c" late_handoff "1 li.desk front-desk" || return 1; done
}
check "... restarted with batches of 1 on 3 sessions: every handoff breached once" wait_for 20 all_breached
once=0
for c in "${burst[@]}"; do [ "$(events_of "$c" case.deadline_breached)" = 1 ] && once=$((once + 1)); done
check "... each announced once" test "$once" = 12
check "... the firing sessions beside the timer's were used" test "$(q "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'shouwen-escalation-fire-%'")" -ge 1
check "... and no batch failed" test "$(metric shouwen_escalation_fire_failures_total)" = 0
kill -KILL "$esc_pid"
wait "$esc_pid" 2>/dev/null
esc_pid=""
esc_start

echo "== reviews and calendars"
check "the daily review is asked for once" wait_for 15 eq 2 q "SELECT count(*) FROM bus.events WHERE type = 'review.requested'"
check "... daily and (today being the weekly day) weekly" test "$(q "SELECT string_agg(kind, ',' ORDER BY kind) FROM escalation.reviews")" = "daily,weekly"
want=$(demo_holidays_missing)
check "the demo calendar: flagged for the year deploy/data lacks, if it should hold it by now ($want)" wait_for 15 eq "$want" metric 'shouwen_escalation_holidays_missing{site="SH01"}'
q "WITH c AS (INSERT INTO escalation.calendars (site_id, name, time_zone) SELECT id, 'no holidays', 'Asia/Shanghai' FROM core.sites WHERE code = 'SH01' RETURNING id, site_id) UPDATE core.sites s SET calendar_id = c.id FROM c WHERE s.id = c.site_id" >/dev/null
year=$(TZ=Asia/Shanghai date +%Y)
check "a calendar without holidays: flagged for this year" wait_for 15 eq "$year" metric 'shouwen_escalation_holidays_missing{site="SH01"}'
check "... and said in the log" wait_for 5 grep -q "its calendar holds no public holidays for $(TZ=Asia/Shanghai date +%Y)" "$tmp/escalation.log"

q "UPDATE escalation.calendars SET time_zone = 'Mars/Olympus' WHERE name = 'no holidays'" >/dev/null
bad=$(register "$TOKEN" '{"site":"SH01","channel":"visit","type":"complaint","subject":"日历坏了也要计时"}')
check "a calendar broken behind the API's back: the site's clocks still run" wait_for 10 ne "" due_of "$bad" handoff
check "... on the default calendar, said in the log" wait_for 5 grep -q 'its calendar cannot be used (unknown time zone \\"Mars/Olympus\\"' "$tmp/escalation.log"
check "... the API says so too" test "$(api GET /v1/sites/SH01/calendar)" = 200
check "... naming the problem" grep -qF '"problem":"unknown time zone \"Mars/Olympus\"' "$tmp/api.out"
check "the API puts the zone right" test "$(api PATCH /v1/sites/SH01/calendar '{"time_zone":"Asia/Shanghai"}')" = 200
ics=$(printf '%s\r\n' BEGIN:VCALENDAR BEGIN:VEVENT "DTSTART;VALUE=DATE:${year}1001" "DURATION:P3D" "SUMMARY:国庆节" END:VEVENT \
    BEGIN:VEVENT "DTSTART;VALUE=DATE:$((year + 1))0101" "SUMMARY:元旦" END:VEVENT END:VCALENDAR)
check "this year's and next year's holidays imported as .ics through the API" test "$(api POST /v1/sites/SH01/calendar/import "$ics" text/calendar)" = 200
check "... escalation no longer flags the site" wait_for 15 eq 0 metric 'shouwen_escalation_holidays_missing{site="SH01"}'

echo "== bad events"
check "a case.registered about a case that does not exist is put on the bus" env BUSTEST_COUNT=1 BUSTEST_CASES=1 BUSTEST_PUB_URL= "$tbin/bus_driver" produce
parked() { test "$(q "SELECT count(*) FROM bus.dead_letters WHERE consumer = 'escalation' AND last_error LIKE '%unknown case%'")" = 1; }
check "... retried, then parked with the reason" wait_for 90 parked
check "... and escalation goes on" test "$(curl -s -o /dev/null -w '%{http_code}' "http://$eadmin/readyz")" = 200

echo "== SIGTERM"
kill -TERM "$esc_pid"
wait "$esc_pid"
rc=$?
esc_pid=""
check "escalation: SIGTERM, exit 0" test "$rc" = 0
finish
