#!/usr/bin/env bash
# make bench-bus: the durable bus against a pgbench baseline on the same
# private cluster, in one run.  Durable commits (synchronous_commit=on,
# the default).  Prints figures; asserts nothing about time.
#
#   baseline     pgbench, one single-row INSERT per transaction, 2 clients, 10 s
#   throughput   one producer (1000 events per transaction) and one consumer
#                group (one replica, 500 per transaction), ~300-byte
#                envelopes: events per second from the first commit to the
#                last event handled and committed
#   latency      the producer at a fixed 2,000 events/s (two per transaction:
#                one per transaction tops out near 1,500/s with its three round trips),
#                publishing on ipc://: end-to-end latency from the event's
#                creation (before the producer's INSERT) to the commit of the
#                consumer's transaction that handled it; p50 and p99
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bin=${SHOUWEN_BIN:-$top/build/bin}
drv=${SHOUWEN_TEST_BIN:-$top/build/tests}/bus_driver
N=${BENCH_EVENTS:-300000}
tmp=$(mktemp -d /tmp/shouwen-bench.XXXXXX)
chmod 755 "$tmp"
export SHOUWEN_RUN_DIR=$tmp/run SHOUWEN_MIGRATIONS_DIR=$top/deploy/migrations
cons=""
cleanup() {
    [ -z "$cons" ] || kill -KILL "$cons" 2>/dev/null || true
    "$top/deploy/pg.sh" stop >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT
"$top/deploy/pg.sh" start >/dev/null
export SHOUWEN_DATABASE_URL=$("$top/deploy/pg.sh" url)
"$bin/shouwen-migrate" >/dev/null
psql_() { "$top/deploy/pg.sh" psql -qtAX -v ON_ERROR_STOP=1 -c "$1"; }
pgdir=$(readlink -f "$SHOUWEN_RUN_DIR/pg")
pgbench=$(dirname "$(command -v initdb 2>/dev/null || echo /usr/lib/postgresql/15/bin/initdb)")/pgbench
[ -x "$pgbench" ] || pgbench=$(ls /usr/lib/postgresql/*/bin/pgbench | sort -V | tail -n 1)
echo "synchronous_commit = $(psql_ 'SHOW synchronous_commit'), fsync = $(psql_ 'SHOW fsync')"

psql_ "CREATE TABLE bench_insert (id bigserial PRIMARY KEY, payload bytea NOT NULL)"
echo "INSERT INTO bench_insert (payload) VALUES (decode(repeat('ab', 300), 'hex'));" >"$tmp/insert.sql"
baseline=$("$pgbench" -h "$pgdir" -U shouwen -n -c 2 -j 2 -T 10 -f "$tmp/insert.sql" shouwen |
    awk '/^tps/ {print int($3)}')
echo "baseline: pgbench single-row insert, 2 clients: $baseline tps"

start_consumer() {
    env SHOUWEN_BUSTEST_ADMIN_ADDR=127.0.0.1:27999 BUSTEST_NAME="$1" BUSTEST_EFFECTS=0 \
        BUSTEST_SUB_URLS="ipc://$tmp/p.pub" BUSTEST_LATENCY_FILE="$2" "$drv" consume 2>"$tmp/consumer.log" &
    cons=$!
    for _ in $(seq 1 100); do curl -fs http://127.0.0.1:27999/readyz >/dev/null 2>&1 && break; sleep 0.1; done
    for _ in $(seq 1 100); do
        [ "$(curl -s http://127.0.0.1:27999/metrics | awk '/^shouwen_bus_partitions_owned/ {print $2}')" = 16 ] && break
        sleep 0.1
    done
}
handled() { curl -s http://127.0.0.1:27999/metrics | awk '/^bustest_latency_us_count/ {print $2}'; }
stop_consumer() { kill -TERM "$cons"; wait "$cons" || true; cons=""; }

start_consumer throughput "$tmp/thr.lat"
t0=$(date +%s.%N)
BUSTEST_COUNT=$N BUSTEST_BATCH=1000 BUSTEST_PUB_URL="ipc://$tmp/p.pub" "$drv" produce
while [ "$(handled)" -lt "$N" ]; do sleep 0.05; done
t1=$(date +%s.%N)
stop_consumer
# from the first event written (not from the producer's start, which waits for subscribers)
t0=$(psql_ "SELECT extract(epoch FROM min(created_at)) FROM bus.events")
eps=$(echo "$N / ($t1 - $t0)" | bc)
echo "throughput: $N events from the first write to the last handled and committed in $(echo "scale=3; ($t1 - $t0) / 1" | bc) s: $eps events/s"

psql_ "TRUNCATE bus.events, bus.cursors" >/dev/null
start_consumer latency "$tmp/lat.lat"
BUSTEST_COUNT=20000 BUSTEST_BATCH=2 BUSTEST_RATE=2000 BUSTEST_PUB_URL="ipc://$tmp/p.pub" "$drv" produce
while [ "$(handled)" -lt 20000 ]; do sleep 0.05; done
stop_consumer
sort -n "$tmp/lat.lat" >"$tmp/lat.sorted"
n=$(wc -l <"$tmp/lat.sorted")
# skip the first second (subscribers dialing), as a steady-state figure
tail -n +2001 "$tmp/lat.lat" | sort -n >"$tmp/lat.steady"
m=$(wc -l <"$tmp/lat.steady")
p50=$(awk -v n="$m" 'NR == int(n * 0.50) + 1 {printf "%.2f", $1 / 1000}' "$tmp/lat.steady")
p99=$(awk -v n="$m" 'NR == int(n * 0.99) + 1 {printf "%.2f", $1 / 1000}' "$tmp/lat.steady")
p99all=$(awk -v n="$n" 'NR == int(n * 0.99) + 1 {printf "%.2f", $1 / 1000}' "$tmp/lat.sorted")
echo "latency at 2000 events/s ($m events after the first second): p50 $p50 ms, p99 $p99 ms (p99 over all $n: $p99all ms)"
ratio=$(echo "scale=2; $eps / $baseline" | bc)
echo "RESULT bench-bus events_per_s=$eps baseline_tps=$baseline ratio=$ratio p99_ms_at_2000=$p99"
