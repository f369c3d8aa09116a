#!/usr/bin/env bash
# make bench-routing, end to end: cases registered over HTTP at a fixed
# 1,000 per second (BENCH_RATE) for 10 s (BENCH_SECONDS) by
# tests/bench/http_load, with the real shouwen-intake and shouwen-routing
# on a private cluster with the demo site and its rules.  Every case is a
# leak reported by the hotline, which the rules transfer to engineering.
# The latency of each case is from its registration (the intake
# transaction's time, core.cases.created_at) to routing's signed handoff
# (core.handoffs.at), read in SQL once every case is routed; p50/p99/max.
# Then the headroom: how fast routing drains a backlog of 10,000 on its
# own, and the CPU per case (and, with BENCH_ESCALATION=1, as make
# bench-budget runs it, escalation's CPU a case, draining them all alone
# afterwards).  Asserts nothing about time; fails only if a case is not
# routed, or routed twice (or, with BENCH_ESCALATION=1, not timed).
set -euo pipefail
name=routing
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
rate=${BENCH_RATE:-1000}
secs=${BENCH_SECONDS:-10}
q() { bench_psql "$1"; }
port=$(free_port)
radmin=127.0.0.1:$(free_port)
iadmin=127.0.0.1:$(free_port)
SHOUWEN_INTAKE_HTTP_ADDR=127.0.0.1:$port SHOUWEN_INTAKE_ADMIN_ADDR=$iadmin \
    SHOUWEN_INTAKE_PUB_URL="ipc://$tmp/intake.pub" SHOUWEN_INTAKE_REP_ADDR="ipc://$tmp/intake.rep" \
    "$bin/shouwen-intake" 2>"$tmp/intake.log" &
pids+=($!)
SHOUWEN_ROUTING_ADMIN_ADDR=$radmin SHOUWEN_ROUTING_PUB_URL="ipc://$tmp/routing.pub" \
    SHOUWEN_ROUTING_SUB_URLS="ipc://$tmp/intake.pub" SHOUWEN_LOG_LEVEL=warn \
    "$bin/shouwen-routing" 2>"$tmp/routing.log" &
rpid=$!
pids+=($rpid)
for a in "$iadmin" "$radmin"; do
    for _ in $(seq 1 100); do curl -fs "http://$a/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
done
# warm up: a second at the rate, not counted
warm=$("$load" -u "http://127.0.0.1:$port/v1/cases" -k "$SHOUWEN_DEMO_API_KEY" -c 16 -d 1 -r "$rate" -p warm- -s SH01)
line=$("$load" -u "http://127.0.0.1:$port/v1/cases" -k "$SHOUWEN_DEMO_API_KEY" -c 16 -d "$secs" -r "$rate" -p run- -s SH01)
echo "registrations: $line"
ok=$(sed -n 's/.* ok=\([0-9]*\) .*/\1/p' <<<"$line")
# wait for routing to decide them all, asking its /metrics (cheap: polling
# the database would take CPU from the routing it measures), then read the
# figures once in SQL
decided() { curl -s "http://$radmin/metrics" | awk '/^shouwen_routing_decisions_total/ {s += $2} END {print s + 0}'; }
want=$(($(sed -n 's/.* ok=\([0-9]*\) .*/\1/p' <<<"$warm") + ok))
for _ in $(seq 1 300); do
    [ "$(decided)" -ge "$want" ] && break
    sleep 0.2
done
sleep 0.5 # the last decision's commit
twice=$(q "SELECT count(*) FROM (SELECT h.case_id FROM core.handoffs h JOIN core.cases c ON c.id = h.case_id WHERE c.external_ref LIKE 'run-%' AND h.by_system = 'routing' GROUP BY h.case_id HAVING count(*) > 1) x")
figures=$(q "SELECT count(*) || ' ' || round((percentile_cont(0.5) WITHIN GROUP (ORDER BY ms))::numeric, 2) || ' ' || round((percentile_cont(0.99) WITHIN GROUP (ORDER BY ms))::numeric, 2) || ' ' || round(max(ms)::numeric, 2) FROM (SELECT extract(epoch FROM h.at - c.created_at) * 1000 AS ms FROM core.cases c JOIN core.handoffs h ON h.case_id = c.id AND h.by_system = 'routing' WHERE c.external_ref LIKE 'run-%') x")
read -r routed p50 p99 max <<<"$figures"
echo "routed: $routed of $ok registered (routed twice: $twice); registered to routed: p50 $p50 ms, p99 $p99 ms, max $max ms at $rate cases/s"
echo "routing /metrics: $(curl -s "http://$radmin/metrics" | grep -E '^shouwen_routing_(decisions|refused|skipped)' | tr '\n' ' ')"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
[ "$routed" = "$ok" ] && [ "$twice" = 0 ] || { echo "routing lost or doubled cases" >&2; exit 1; }

# Headroom: routing stopped, 10,000 more cases registered, routing started
# again and timed while it drains them alone; the CPU it and its database
# sessions used, per case (from /proc).
kill -TERM "$rpid"
wait "$rpid" 2>/dev/null || true
dline=$("$load" -u "http://127.0.0.1:$port/v1/cases" -k "$SHOUWEN_DEMO_API_KEY" -c 16 -d 5 -r 2000 -p drain- -s SH01)
dok=$(sed -n 's/.* ok=\([0-9]*\) .*/\1/p' <<<"$dline")
# alone SERVICE DONE WANT VAR=value...: SERVICE started alone with the
# settings given, timed from its start until the command DONE prints WANT
# or more (at most 60 s); sets took (seconds), cpu and scpu (the ticks of
# the service and of its database sessions, all of its life)
alone() {
    local s=$1 done=$2 want=$3 t0 p
    shift 3
    t0=$(date +%s.%N)
    env "SHOUWEN_${s^^}_PUB_URL=ipc://$tmp/$s.pub" SHOUWEN_LOG_LEVEL=warn "$@" \
        "$bin/shouwen-$s" 2>>"$tmp/$s.log" &
    p=$!
    pids+=("$p")
    for _ in $(seq 1 1200); do
        [ "$($done)" -ge "$want" ] && break
        sleep 0.05
    done
    took=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.2f", b - a}')
    cpu=$(proc_ticks "$p")
    scpu=$(session_ticks "$s")
}
alone routing decided "$dok" SHOUWEN_ROUTING_ADMIN_ADDR="$radmin" SHOUWEN_ROUTING_SUB_URLS="ipc://$tmp/intake.pub"
drained=$(q "SELECT count(*) FROM core.cases c WHERE c.external_ref LIKE 'drain-%' AND EXISTS (SELECT 1 FROM core.handoffs h WHERE h.case_id = c.id AND h.by_system = 'routing')")
awk -v n="$drained" -v d="$took" 'BEGIN {
    printf "drain: %d cases routed in %.2f s by routing alone: %.0f cases/s\n", n, d, n / d }'
cpu_line routing case "$drained" 0 0 "$cpu" "$scpu"
[ "$drained" = "$dok" ] || { echo "routing did not drain the backlog ($drained of $dok)" >&2; exit 1; }

# BENCH_ESCALATION=1 (make bench-budget): then escalation, started only now,
# alone, drains every case above, its registration and its transfer (for
# these cases: the handoff clock and the ladder's steps started, the
# handoff met, the engineering head's appoint clock started), timed to the
# last case's appoint deadline; the CPU it and its database sessions spent.
if [ -n "${BENCH_ESCALATION:-}" ]; then
    ecases=$(q "SELECT count(DISTINCT case_id) FROM core.handoffs WHERE by_system = 'routing'")
    timed() { q "SELECT count(*) FROM escalation.deadlines WHERE kind = 'appoint'"; }
    alone escalation timed "$ecases" SHOUWEN_ESCALATION_ADMIN_ADDR="127.0.0.1:$(free_port)" \
        SHOUWEN_ESCALATION_SUB_URLS="ipc://$tmp/nothing.pub"
    etimed=$(timed)
    echo "escalation: $etimed cases given their deadlines in $took s by escalation alone, from its start"
    cpu_line escalation case "$etimed" 0 0 "$cpu" "$scpu"
    [ "$etimed" = "$ecases" ] || { echo "escalation did not time every case ($etimed of $ecases)" >&2; exit 1; }
fi
echo "p99_ms_at_rate=$p99"
