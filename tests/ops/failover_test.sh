#!/usr/bin/env bash
# The replica failover test (issue 11, item 1): `make run REPLICAS=2`'s
# stack (deploy/stack.sh itself, with SHOUWEN_REPLICAS=2, in a private run
# folder and on free ports: SHOUWEN_STACK_PORT_BASE) runs two replicas of
# every service, the intakes behind HAProxy.
#   - every consumer group's partitions are split: each replica owns some,
#     together all P (bus.settings.partitions), as their /metrics say;
#   - a steady load of registrations (FAILOVER_TEST_RATE a second, default
#     40: leaks, routed to engineering, whose head never accepts them, so
#     that every case's 2-second appointment deadline fires) goes through
#     HAProxy's address and both intakes serve it; a request that gets no
#     answer, or 502/503/504 from HAProxy, is sent again with the same
#     external_ref, as a client should;
#   - replica 1 of routing, escalation, notification and audit and intake 1
#     are SIGKILLed at once: each surviving consumer replica owns all P
#     partitions within 5 s (the time is measured and printed), HAProxy
#     marks the dead intake DOWN and every request sent after that succeeds
#     at the first try;
#   - when all is quiet, nothing was lost or doubled: every case answered
#     2xx exists once with the id it was told and no other; each was routed
#     exactly once; each registration was delivered to a webhook once and
#     never sent again after its delivery was recorded; each 2-second
#     appointment deadline fired exactly once; every bus event is in the
#     audit chain exactly once and the chain verifies with its signed
#     checkpoints; nothing was parked;
#   - stack.sh start starts only the killed replicas again, and the
#     partitions are split again; stack.sh stop stops everything.
# About 30 s.  Needs /usr/sbin/haproxy (deploy/bootstrap.sh).
set -uo pipefail

name=ops-failover
. "$(dirname "${BASH_SOURCE[0]}")/../integration/lib.sh"
. "$top/tests/integration/cases.sh"

stack() { "$top/deploy/stack.sh" "$@"; }
run=$SHOUWEN_RUN_DIR
load_pid=""
recv_pid=""
cleanup() {
    local f p
    [ -z "$load_pid" ] || kill -KILL "$load_pid" 2>/dev/null
    [ -z "$recv_pid" ] || kill -KILL "$recv_pid" 2>/dev/null
    stack stop >/dev/null 2>&1
    # whatever stack.sh could not stop (its pid files name them)
    for f in "$run"/*.pid; do
        [ -e "$f" ] || continue
        p=$(cat "$f")
        tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -qE 'shouwen-|haproxy|receiver\.py' && kill -KILL "$p"
    done
    "$top/deploy/pg.sh" stop >/dev/null 2>&1
    [ -n "${KEEP_TMP:-}" ] || rm -rf "$tmp"
}
trap cleanup EXIT

# the stack's own layout, not settings the caller may have exported
while read -r v; do unset "$v"; done < <(compgen -e | grep -E '^SHOUWEN_([A-Z]+_(ADMIN_ADDR|PUB_URL|SUB_URLS|HTTP_ADDR|REP_ADDR)|DEMO_RECEIVER_ADDR|DATABASE_URL|AUDIT_KEY)$')
base=$(free_ports 32) # the stack: base .. base+30 (stack.sh's header); the test's webhook receiver: base+31
export SHOUWEN_BIN=$bin SHOUWEN_REPLICAS=2 SHOUWEN_STACK_PORT_BASE=$base
# as tests/e2e/kill_test.sh: deadlines held in memory 5 s ahead, quick retries, frequent checkpoints
export SHOUWEN_ESCALATION_HORIZON=5s SHOUWEN_NOTIFICATION_RETRY_BASE=300ms SHOUWEN_NOTIFICATION_RETRY_CAP=3s \
    SHOUWEN_AUDIT_CHECKPOINT_INTERVAL=1s
api=http://127.0.0.1:$base
stats=http://127.0.0.1:$((base + 7))
consumers=(routing escalation notification audit)
admin() { # admin SERVICE REPLICA: its admin address (stack.sh's layout)
    local off
    case $1 in intake) off=1 ;; routing) off=2 ;; escalation) off=3 ;; notification) off=4 ;; audit) off=5 ;; esac
    echo "127.0.0.1:$((base + 20 * ($2 - 1) + off))"
}
rname() { if [ "$2" -eq 1 ]; then echo "$1"; else echo "$1-$2"; fi; }
pid_of() { cat "$run/$(rname "$1" "$2").pid"; }
# owned SERVICE REPLICA: "group partitions" for each consumer group on its /metrics
owned() {
    curl -s --max-time 2 "http://$(admin "$1" "$2")/metrics" |
        awk '/^shouwen_bus_partitions_owned\{/ { if (match($1, /consumer="[^"]*"/)) { g = substr($1, RSTART + 10, RLENGTH - 11); s[g] += $2 } }
             END { for (g in s) print g, s[g] }' | sort
}
owned_by() { owned "$1" "$2" | awk -v g="$3" '$1 == g {print $2}'; }
# split SERVICE: each of its groups has P partitions, shared by both replicas, each owning some
split() {
    local g a b groups
    groups=$(owned "$1" 1 | cut -d' ' -f1)
    [ -n "$groups" ] || { echo "$1: no shouwen_bus_partitions_owned on replica 1"; return 1; }
    for g in $groups; do
        a=$(owned_by "$1" 1 "$g")
        b=$(owned_by "$1" 2 "$g")
        echo "$1 group $g: replica 1 owns ${a:-none}, replica 2 ${b:-none} of $P"
        [ -n "$a" ] && [ -n "$b" ] && [ "$a" -gt 0 ] && [ "$b" -gt 0 ] && [ $((a + b)) -eq "$P" ] || return 1
    done
}
metric() { # metric SERVICE REPLICA NAME: the sum of that metric's series
    curl -s --max-time 2 "http://$(admin "$1" "$2")/metrics" |
        awk -v m="$3" '$1 == m || index($1, m "{") == 1 {s += $2} END {print s + 0}'
}
lb_status() { curl -s --max-time 2 "$stats/;csv" | awk -F, -v s="$1" '$1 == "intake" && $2 == s {print $18}'; }
now() { echo "$EPOCHREALTIME"; }
lines() { wc -l <"$1"; }
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.1f", b - a}'; }
eq() { local want=$1; shift; test "$("$@")" = "$want"; }
ge() { local want=$1; shift; test "$("$@")" -ge "$want"; }

echo "== make run REPLICAS=2's stack, on ports from $base, in $run"
check "stack.sh start: two replicas of every service, HAProxy in front" stack start
if [ "$fail" -ne 0 ]; then
    tail -n 20 "$tmp/check.out"
    finish
    exit 1
fi
stack status >"$tmp/status.out" 2>&1
check "status lists every replica and HAProxy, running" bash -c "
    for n in intake intake-2 routing routing-2 escalation escalation-2 notification notification-2 audit audit-2 receiver haproxy; do
        grep -qE \"^\$n +[0-9]+ \" '$tmp/status.out' || { echo \"\$n missing\"; cat '$tmp/status.out'; exit 1; }
    done"
check "HAProxy has the public address (127.0.0.1:$base), nothing is on make run's 7400" bash -c \
    "grep -qx '    bind 127.0.0.1:$base' '$run/haproxy.cfg' && ! grep -q ':74[01][0-9]\b' '$run/haproxy.cfg'"
. "$run/demo-credentials"
KEY=$SHOUWEN_DEMO_API_KEY
MGR=$SHOUWEN_DEMO_MANAGER_TOKEN
export SHOUWEN_DATABASE_URL
SHOUWEN_DATABASE_URL=$("$top/deploy/pg.sh" url)
P=$(q "SELECT partitions FROM bus.settings")
check "bus.settings.partitions is known ($P)" test "$P" -ge 2
check "both intakes UP behind HAProxy" bash -c "test \"\$(curl -s '$stats/;csv' | awk -F, '\$1 == \"intake\" && \$2 ~ /^intake-/ {print \$2, \$18}' | tr '\n' ' ')\" = 'intake-1 UP intake-2 UP '"
for s in "${consumers[@]}"; do
    check "$s: the partitions are split between the replicas" wait_for 15 split "$s"
    split "$s" | sed 's/^/     /'
done

# the test's own webhook channel (tests/notify/receiver.py), told of every registration
SECRET="whsec_$(head -c 24 /dev/urandom | base64)"
hook=http://127.0.0.1:$((base + 31))
/usr/bin/python3 "$top/tests/notify/receiver.py" "$((base + 31))" "$tmp/received.log" "$SECRET" 2>"$tmp/receiver.log" &
recv_pid=$!
check "webhook receiver up" wait_for 10 python3 -c "import socket; socket.create_connection(('127.0.0.1', $((base + 31))), 1).close()"
N=/v1/sites/SH01/notification
check "help requests: a 2-second appointment clock" expect 200 '"limits"' "$(call PUT "$MGR" /v1/sites/SH01/limits '{"limits":[
 {"clock":"appoint","amount":"2s","basis":"calendar","case_type":"help"}]}')"
check "a webhook channel (up to 1,000 messages a second)" expect 201 '"name":"hook"' "$(call POST "$MGR" $N/channels "{\"name\":\"hook\",\"kind\":\"webhook\",\"url\":\"$hook/hook/ok\",\"secret\":\"$SECRET\",\"rate_per_s\":1000,\"burst\":1000}")"
check "... told of every registration" expect 201 '"audience":"channel"' "$(call POST "$MGR" $N/subscriptions '{"event_type":"case.registered","channel":"hook","audience":"channel"}')"

# The load: RATE registrations a second over 4 keep-alive connections to
# HAProxy until $tmp/stop exists.  Writes "ref id number status answered_at" for
# each 2xx to $tmp/accepted, "at ref status" for each failed attempt to
# $tmp/failed (then sends it again, same external_ref), anything else to
# $tmp/errors; prints its figures, exit 1 on errors.
cat >"$tmp/load.py" <<'PY'
import http.client, json, os, sys, threading, time
host, port, key, prefix, rate, d = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], float(sys.argv[5]), sys.argv[6]
lock = threading.Lock()
acc, failed, errors = (open(os.path.join(d, f), "w", buffering=1) for f in ("accepted", "failed", "errors"))
stats = {"accepted": 0, "repeated_200": 0, "retries": 0, "errors": 0}
start = time.monotonic()
def worker(me, n):
    conn, i, per = None, 0, rate / n
    while not os.path.exists(os.path.join(d, "stop")):
        delay = start + i / per - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        ref = "%s-%d-%d" % (prefix, me, i)
        body = json.dumps({"site": "SH01", "channel": "hotline", "type": "help", "urgency": "normal",
                           "subject": "厨房漏水 " + ref, "customer": {"name": "测试", "phone": "13800001234"},
                           "external_ref": ref}).encode()
        give_up = time.monotonic() + 60
        while True:
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(host, port, timeout=10)
                conn.request("POST", "/v1/cases", body=body,
                             headers={"Authorization": "Bearer " + key, "Content-Type": "application/json"})
                r = conn.getresponse()
                status, data = r.status, r.read()
                if r.getheader("Connection", "").lower() == "close":
                    conn.close(); conn = None
            except (OSError, http.client.HTTPException) as e:
                if conn is not None:
                    conn.close()
                conn, status, data = None, None, str(e).encode()
            if status in (200, 201):
                with lock:
                    c = json.loads(data)
                    acc.write("%s %s %s %d %.3f\n" % (ref, c["id"], c["number"], status, time.time()))
                    stats["accepted"] += 1
                    stats["repeated_200"] += status == 200
                break
            with lock:
                failed.write("%.3f %s %s\n" % (time.time(), ref, status))
            if status in (None, 502, 503, 504) and time.monotonic() < give_up:
                with lock:
                    stats["retries"] += 1
                time.sleep(0.1)
                continue
            with lock:
                errors.write("%s %s %s\n" % (ref, status, data[:200].decode("utf-8", "replace").replace("\n", " ")))
                stats["errors"] += 1
            break
        i += 1
n = 4
threads = [threading.Thread(target=worker, args=(k, n)) for k in range(n)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(" ".join("%s=%d" % kv for kv in stats.items()), "seconds=%.1f" % (time.monotonic() - start))
sys.exit(1 if stats["errors"] else 0)
PY
RATE=${FAILOVER_TEST_RATE:-40}
prefix=fo-$(hex 4)
echo "== a steady load through HAProxy ($RATE cases/s)"
python3 "$tmp/load.py" 127.0.0.1 "$base" "$KEY" "$prefix" "$RATE" "$tmp" >"$tmp/load.out" 2>&1 &
load_pid=$!
check "cases are being accepted through HAProxy" wait_for 10 ge 20 lines "$tmp/accepted"
sleep 3
for r in 1 2; do
    check "intake $r has served requests ($(metric intake "$r" shouwen_intake_requests_total))" ge 1 metric intake "$r" shouwen_intake_requests_total
done
for s in "${consumers[@]}"; do
    check "$s: still split under load" split "$s"
done

echo "== SIGKILL replica 1 of routing, escalation, notification, audit, and intake 1"
before=$(wc -l <"$tmp/accepted")
served2=$(metric intake 2 shouwen_intake_requests_total)
victims=()
for s in intake "${consumers[@]}"; do victims+=("$(pid_of "$s" 1)"); done
t0=$(now)
kill -KILL "${victims[@]}"
echo "     killed pids ${victims[*]} ($before cases accepted so far)"
declare -A took=()
while :; do
    for s in "${consumers[@]}"; do
        [ -z "${took[$s]:-}" ] || continue
        o=$(owned "$s" 2 | awk -v p="$P" '$2 != p {bad = 1} END {print (NR > 0 && !bad) ? "all" : "no"}')
        [ "$o" != all ] || took[$s]=$(since "$t0")
    done
    if [ -z "${took[lb]:-}" ] && [ "$(lb_status intake-1)" = DOWN ]; then took[lb]=$(since "$t0"); down_at=$EPOCHREALTIME; fi
    [ ${#took[@]} -lt 5 ] || break
    [ "$(since "$t0" | cut -d. -f1)" -lt 10 ] || break
    sleep 0.05
done
for s in "${consumers[@]}"; do
    if [ -n "${took[$s]:-}" ]; then
        check "$s: survivor owns $P/$P partitions ${took[$s]} s after SIGKILL (at most 5 s)" \
            awk -v t="${took[$s]}" 'BEGIN {exit !(t <= 5)}'
    else
        bad "$s: survivor owns $P/$P partitions within 5 s of SIGKILL" "after 10 s: $(owned "$s" 2 | tr '\n' ' ')"
    fi
done
if [ -n "${took[lb]:-}" ]; then
    check "HAProxy marked intake 1 DOWN ${took[lb]} s after SIGKILL (at most 5 s)" awk -v t="${took[lb]}" 'BEGIN {exit !(t <= 5)}'
else
    bad "HAProxy marked intake 1 DOWN within 5 s" "after 10 s: $(lb_status intake-1)"
    down_at=$EPOCHREALTIME
fi
sleep 4
check "requests keep succeeding through HAProxy after the kill" ge $((before + RATE * 3)) lines "$tmp/accepted"
check "... answered by intake 2 ($(($(metric intake 2 shouwen_intake_requests_total) - served2)) requests since the kill)" \
    ge $((served2 + RATE * 3)) metric intake 2 shouwen_intake_requests_total
check "... every request sent after intake 1 was marked DOWN succeeded at the first try" \
    awk -v t="$down_at" '$1 > t {print; n++} END {exit n > 0}' "$tmp/failed"
echo "     failed attempts, each sent again with the same external_ref: $(wc -l <"$tmp/failed")" \
    "$(awk '{n[$3]++} END {for (s in n) printf "%s%s x%d", sep, (s == "None" ? "no answer" : s), n[s]; sep = ", "}' "$tmp/failed")"

echo "== the load stops; waiting for quiet"
sleep 2
touch "$tmp/stop"
wait "$load_pid"
rc=$?
load_pid=""
echo "     $(cat "$tmp/load.out")"
check "the load: every request answered 201 in the end (or 200 for a repeat)" test "$rc" = 0
[ ! -s "$tmp/errors" ] || head -n 5 "$tmp/errors" | sed 's/^/     /'
accepted=$(wc -l <"$tmp/accepted")
# The load ran for about 11 s (448 cases here at 40/s), and catches up when
# it falls behind; a bound of 10 s of it left a slow machine 12% to spare.
check "... $accepted cases accepted (at least 8 s of the load)" test "$accepted" -ge $((RATE * 8))

echo "== nothing lost, nothing doubled"
q "SELECT external_ref || ' ' || id || ' ' || number FROM core.cases WHERE external_ref LIKE '$prefix-%' ORDER BY 1" >"$tmp/db"
check "every case answered 2xx exists once, with the id and number the client was told, and no other" python3 - "$tmp/accepted" "$tmp/db" <<'PY'
import sys
told = {}
for line in open(sys.argv[1]):
    ref, cid, number, status, at = line.split()
    assert told.get(ref, (cid, number)) == (cid, number), "%s told two cases" % ref
    told[ref] = (cid, number)
db = {}
for line in open(sys.argv[2]):
    ref, cid, number = line.split()
    assert ref not in db, "%s twice in the database" % ref
    db[ref] = (cid, number)
missing = [r for r in told if db.get(r) != told[r]]
extra = [r for r in db if r not in told]
assert not missing and not extra, "missing or changed %s, never answered %s" % (missing[:5], extra[:5])
print(len(db), "cases")
PY
like="external_ref LIKE '$prefix-%'"
all_routed() { q "SELECT count(*) FROM core.cases WHERE $like AND status = 'registered'"; }
check "every case routed" wait_for 60 eq 0 all_routed
check "... each by exactly one handoff signed by routing" eq 0 q "SELECT count(*) FROM (SELECT c.id FROM core.cases c LEFT JOIN core.handoffs h ON h.case_id = c.id AND h.by_system = 'routing' WHERE c.$like GROUP BY c.id HAVING count(h.*) <> 1) x"

hookdel="notification.deliveries d JOIN notification.channels ch ON ch.id = d.channel_id AND ch.name = 'hook'"
undelivered() { q "SELECT count(*) FROM core.cases c WHERE c.$like AND NOT EXISTS (SELECT 1 FROM $hookdel WHERE d.case_id = c.id AND d.event_type = 'case.registered' AND d.status = 'delivered')"; }
check "every case's registration delivered to the webhook" wait_for 60 eq 0 undelivered
check "... one delivery per case, none dead" eq "0 0" q "SELECT (SELECT count(*) FROM (SELECT d.case_id FROM $hookdel WHERE d.event_type = 'case.registered' GROUP BY d.case_id HAVING count(*) > 1) x) || ' ' || (SELECT count(*) FROM $hookdel WHERE d.status = 'dead')"
pending() { q "SELECT count(*) FROM $hookdel WHERE d.status = 'pending'"; }
check "... nothing left pending" wait_for 30 eq 0 pending
q "SELECT d.message_id || ' ' || extract(epoch FROM d.delivered_at) FROM $hookdel WHERE d.status = 'delivered'" >"$tmp/delivered"
check "no delivery recorded as delivered was sent again after the record; each reached the receiver" \
    python3 "$top/tests/e2e/delivered_once.py" "$tmp/delivered" "$tmp/received.log"

overdue() { q "SELECT count(*) FROM escalation.deadlines WHERE met_at IS NULL AND breached_at IS NULL AND due_at < now() - interval '2 s'"; }
check "every deadline that ran out has fired (none missed across the kill)" wait_for 60 eq 0 overdue
# one statement, one snapshot: deadlines due in the last 2 s may still be firing
read -r breaches events violations <<<"$(q "SELECT (SELECT count(*) FROM escalation.deadlines WHERE breached_at IS NOT NULL) || ' ' || (SELECT count(*) FROM bus.events WHERE type = 'case.deadline_breached') || ' ' || (SELECT count(*) FROM escalation.violations)")"
check "... some did ($breaches)" test "$breaches" -ge 1
check "... each once: one case.deadline_breached per breached deadline ($events)" test "$events" = "$breaches"
check "... one violation each ($violations)" test "$violations" = "$breaches"
check "... no case breached twice" eq 0 q "SELECT count(*) FROM (SELECT case_id FROM bus.events WHERE type = 'case.deadline_breached' GROUP BY case_id HAVING count(*) > 1) x"

unaudited() { q "SELECT count(*) FROM bus.events e WHERE NOT EXISTS (SELECT 1 FROM audit.log a WHERE a.event_id = e.event_id)"; }
check "every event on the bus audited" wait_for 60 eq 0 unaudited
check "... exactly once, and nothing in the chain that is not on the bus" eq "0 0" q "SELECT (SELECT count(*) FROM (SELECT event_id FROM audit.log GROUP BY event_id HAVING count(*) > 1) x) || ' ' || (SELECT count(*) FROM audit.log a WHERE NOT EXISTS (SELECT 1 FROM bus.events e WHERE e.event_id = a.event_id))"
check "... the chain has no gap or duplicate" eq "t" q "SELECT count(*) = max(seq) AND count(*) = count(DISTINCT seq) FROM audit.log WHERE site_id = (SELECT id FROM core.sites WHERE code = 'SH01')"
check "shouwen-audit verify: the chain and its signed checkpoints verify" bash -c \
    "SHOUWEN_AUDIT_KEY=\$(cat '$run/audit.key') '$bin/shouwen-audit' verify SH01 | grep 'chain verified'"
check "nothing parked" eq 0 q "SELECT count(*) FROM bus.dead_letters"

echo "== stack.sh start again: only the killed replicas"
survivors=""
for s in intake "${consumers[@]}"; do survivors+="$(pid_of "$s" 2) "; done
survivors+="$(cat "$run/haproxy.pid") $(cat "$run/receiver.pid")"
stack start >"$tmp/restart.out" 2>&1
check "stack.sh start again succeeds" test $? = 0
check "... the others were left alone" test "$survivors" = "$(for s in intake "${consumers[@]}"; do printf '%s ' "$(pid_of "$s" 2)"; done; echo "$(cat "$run/haproxy.pid") $(cat "$run/receiver.pid")")"
check "... it says so of each of them" test "$(grep -cE '^(receiver|haproxy|[a-z]+-2): already running' "$tmp/restart.out")" = 7
for s in intake "${consumers[@]}"; do
    check "... $s (replica 1) started again" bash -c "! grep -q '^$s: already running' '$tmp/restart.out' && kill -0 \$(cat '$run/$s.pid') && ! grep -qw \$(cat '$run/$s.pid') <<<'${victims[*]}'"
done
for s in "${consumers[@]}"; do
    check "$s: the partitions are split again" wait_for 15 split "$s"
    split "$s" | sed 's/^/     /'
done
check "intake 1 UP again behind HAProxy" wait_for 10 eq UP lb_status intake-1
served1=$(metric intake 1 shouwen_intake_requests_total)
for i in 1 2 3 4 5 6; do
    register "$KEY" "{\"site\":\"SH01\",\"channel\":\"hotline\",\"type\":\"help\",\"subject\":\"after $i\",\"external_ref\":\"$prefix-after-$i\"}" >>"$tmp/after"
done
check "six more cases through HAProxy" test "$(grep -c . "$tmp/after")" = 6
check "... intake 1 serves again" ge $((served1 + 1)) metric intake 1 shouwen_intake_requests_total

echo "== stack.sh stop"
check "stack.sh stop" stack stop
check "every replica and HAProxy stopped, no pid file left" bash -c "! ls '$run'/*.pid 2>/dev/null | grep -q ."
check "nothing answers on the stack's ports any more" python3 -c "
import socket
for p in list(range($base, $base + 11)) + list(range($base + 20, $base + 31)):
    s = socket.socket()
    try:
        s.connect(('127.0.0.1', p))
    except OSError:
        continue
    raise SystemExit('port %d still answers' % p)"
finish
