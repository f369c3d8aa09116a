#!/usr/bin/env bash
# make bench-routing, end to end: cases registered over HTTP at a fixed
# 1,000 per second (BENCH_RATE) for 10 s (BENCH_SECONDS) by
# tests/bench/http_load, with the real shouwen-intake and shouwen-routing
# on a private cluster with the demo site and its rules.  Every case is a
# leak reported by the hotline, which the rules transfer to engineering.
# The latency of each case is from its registration (the intake
# transaction's time, core.cases.created_at) to routing's signed handoff
# (core.handoffs.at), read in SQL once every case is routed; p50/p99/max.
# Asserts nothing about time; fails only if a case is not routed, or
# routed twice.
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bin=${SHOUWEN_BIN:-$top/build/bin}
load=${SHOUWEN_TEST_BIN:-$top/build/tests}/http_load
rate=${BENCH_RATE:-1000}
secs=${BENCH_SECONDS:-10}
tmp=$(mktemp -d /tmp/shouwen-bench-routing.XXXXXX)
chmod 755 "$tmp"
export SHOUWEN_RUN_DIR=$tmp/run SHOUWEN_MIGRATIONS_DIR=$top/deploy/migrations
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    "$top/deploy/pg.sh" stop >/dev/null 2>&1 || true
    [ -n "${KEEP_TMP:-}" ] || rm -rf "$tmp"
}
trap cleanup EXIT
"$top/deploy/pg.sh" start >/dev/null
export SHOUWEN_DATABASE_URL=$("$top/deploy/pg.sh" url)
"$bin/shouwen-migrate" >/dev/null
"$top/deploy/demo.sh" >/dev/null
. "$SHOUWEN_RUN_DIR/demo-credentials"
q() { "$top/deploy/pg.sh" psql -qtAX -v ON_ERROR_STOP=1 -c "$1"; }
echo "load average at the start: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores)"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
radmin=127.0.0.1:$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
iadmin=127.0.0.1:$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
SHOUWEN_INTAKE_HTTP_ADDR=127.0.0.1:$port SHOUWEN_INTAKE_ADMIN_ADDR=$iadmin \
    SHOUWEN_INTAKE_PUB_URL="ipc://$tmp/intake.pub" SHOUWEN_INTAKE_REP_ADDR="ipc://$tmp/intake.rep" \
    "$bin/shouwen-intake" 2>"$tmp/intake.log" &
pids+=($!)
SHOUWEN_ROUTING_ADMIN_ADDR=$radmin SHOUWEN_ROUTING_PUB_URL="ipc://$tmp/routing.pub" \
    SHOUWEN_ROUTING_SUB_URLS="ipc://$tmp/intake.pub" SHOUWEN_LOG_LEVEL=warn \
    "$bin/shouwen-routing" 2>"$tmp/routing.log" &
pids+=($!)
for a in "$iadmin" "$radmin"; do
    for _ in $(seq 1 100); do curl -fs "http://$a/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
done
# warm up: a second at the rate, not counted
"$load" -u "http://127.0.0.1:$port/v1/cases" -k "$SHOUWEN_DEMO_API_KEY" -c 16 -d 1 -r "$rate" -p warm- -s SH01 >/dev/null
line=$("$load" -u "http://127.0.0.1:$port/v1/cases" -k "$SHOUWEN_DEMO_API_KEY" -c 16 -d "$secs" -r "$rate" -p run- -s SH01)
echo "registrations: $line"
ok=$(sed -n 's/.* ok=\([0-9]*\) .*/\1/p' <<<"$line")
for _ in $(seq 1 600); do
    [ "$(q "SELECT count(*) FROM core.cases WHERE external_ref LIKE 'run-%' AND status = 'registered'")" = 0 ] && break
    sleep 0.1
done
twice=$(q "SELECT count(*) FROM (SELECT h.case_id FROM core.handoffs h JOIN core.cases c ON c.id = h.case_id WHERE c.external_ref LIKE 'run-%' AND h.by_system = 'routing' GROUP BY h.case_id HAVING count(*) > 1) x")
figures=$(q "SELECT count(*) || ' ' || round((percentile_cont(0.5) WITHIN GROUP (ORDER BY ms))::numeric, 2) || ' ' || round((percentile_cont(0.99) WITHIN GROUP (ORDER BY ms))::numeric, 2) || ' ' || round(max(ms)::numeric, 2) FROM (SELECT extract(epoch FROM h.at - c.created_at) * 1000 AS ms FROM core.cases c JOIN core.handoffs h ON h.case_id = c.id AND h.by_system = 'routing' WHERE c.external_ref LIKE 'run-%') x")
read -r routed p50 p99 max <<<"$figures"
echo "routed: $routed of $ok registered (routed twice: $twice); registered to routed: p50 $p50 ms, p99 $p99 ms, max $max ms at $rate cases/s"
echo "routing /metrics: $(curl -s "http://$radmin/metrics" | grep -E '^shouwen_routing_(decisions|refused|skipped)' | tr '\n' ' ')"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
[ "$routed" = "$ok" ] && [ "$twice" = 0 ] || { echo "routing lost or doubled cases" >&2; exit 1; }
echo "p99_ms_at_rate=$p99"
