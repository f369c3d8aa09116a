#!/usr/bin/env bash
# make bench-notify: webhook deliveries per second, and event-to-delivered
# latency at 500 events/s.
#
# A private cluster with the demo site; one webhook channel (Standard
# Webhooks signatures, rate limit out of the way) subscribed to
# case.registered; the real shouwen-notification; a loopback receiver
# (tests/bench/http_sink.c, keep-alive, answers 201 and notes each
# webhook-id's arrival); events written by the bus's own producer
# (tests/bus/bus_driver.c: outbox and doorbell, as intake writes them).
#
#   throughput  BENCH_DELIVERIES (30,000) events written as fast as the
#               producer can: deliveries recorded as delivered per second,
#               from the first event written to the last delivery recorded
#               (each: the delivery made in the consumer's transaction,
#               signed, sent, its attempt and state recorded, and
#               notification.delivered written); and notification's and
#               its database sessions' CPU a delivery (read by make
#               bench-budget)
#   latency     500 events/s for BENCH_LATENCY_SECONDS (20): from the
#               event's row in bus.events to its arrival at the receiver;
#               p50, p99, max
#
# Baseline, in the same command: the same receiver loaded by a plain
# keep-alive HTTP client (tests/bench/http_load.c, 64 connections): the
# ceiling of HTTP on loopback here, with no database and no signing.
set -euo pipefail
name=notify
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
tbin=${SHOUWEN_TEST_BIN:-$top/build/tests}
n=${BENCH_DELIVERIES:-30000}
lat_secs=${BENCH_LATENCY_SECONDS:-20}
q() { bench_psql "$1"; }
echo "synchronous_commit = $(q 'SHOW synchronous_commit'), fsync = $(q 'SHOW fsync')"

sport=$(free_port)
"$tbin/http_sink" "$sport" "$tmp/sink.txt" &
sink=$!
pids+=("$sink")
for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$sport") 2>/dev/null && break; sleep 0.1; done

line=$("$load" -u "http://127.0.0.1:$sport/v1/cases" -k x -c 64 -d 5 2>"$tmp/baseline.err") || true
[ -n "$line" ] || { cat "$tmp/baseline.err" >&2; echo "http_load failed" >&2; exit 1; }
echo "baseline (http_load, 64 keep-alive connections, same receiver): $line"

secret="whsec_$(head -c 24 /dev/urandom | base64)"
q "INSERT INTO notification.channels (site_id, name, kind, url, secret, rate_per_s, burst) SELECT id, 'bench', 'webhook', 'http://127.0.0.1:$sport/hook', '$secret', 100000, 100000 FROM core.sites WHERE code = 'SH01'; INSERT INTO notification.subscriptions (site_id, event_type, channel_id, audience) SELECT site_id, 'case.registered', id, 'channel' FROM notification.channels WHERE name = 'bench'" >/dev/null

admin=127.0.0.1:$(free_port)
SHOUWEN_NOTIFICATION_ADMIN_ADDR=$admin SHOUWEN_NOTIFICATION_PUB_URL="ipc://$tmp/notification.pub" \
    SHOUWEN_NOTIFICATION_SUB_URLS="ipc://$tmp/driver.pub" "$bin/shouwen-notification" 2>"$tmp/notification.log" &
ntf=$!
pids+=("$ntf")
for _ in $(seq 1 100); do curl -fs "http://$admin/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fs "http://$admin/readyz" >/dev/null || { tail -n 5 "$tmp/notification.log" >&2; exit 1; }
echo "notification: concurrency ${SHOUWEN_NOTIFICATION_CONCURRENCY:-256 (default)}, batch max ${SHOUWEN_NOTIFICATION_BATCH_MAX:-500 (default)}"

delivered() { q "SELECT count(*) FROM notification.deliveries WHERE status = 'delivered'"; }
now_ms() { date +%s%3N; }
# wait_delivered N SECONDS: until N deliveries are recorded delivered
wait_delivered() {
    local end=$(($(now_ms) + $2 * 1000))
    while [ "$(delivered)" -lt "$1" ]; do
        [ "$(now_ms)" -lt "$end" ] || { echo "only $(delivered) of $1 delivered after $2 s" >&2; exit 1; }
        sleep 0.05
    done
}

# warm-up: connections, plans, caches
BUSTEST_COUNT=500 BUSTEST_BATCH=100 BUSTEST_CASES=500 BUSTEST_PUB_URL="ipc://$tmp/driver.pub" \
    "$tbin/bus_driver" produce >/dev/null 2>"$tmp/produce.err"
wait_delivered 500 60
base=$(delivered)

nt0=$(proc_ticks "$ntf")
ns0=$(session_ticks notification)
t0=$(now_ms)
BUSTEST_COUNT=$n BUSTEST_BATCH=500 BUSTEST_CASES=$n BUSTEST_PUB_URL="ipc://$tmp/driver.pub" \
    "$tbin/bus_driver" produce >/dev/null 2>>"$tmp/produce.err"
t_written=$(now_ms)
wait_delivered $((base + n)) 600
t1=$(now_ms)
rate=$((n * 1000 / (t1 - t0)))
echo "throughput: $n events written in $((t_written - t0)) ms; $n deliveries recorded delivered in $((t1 - t0)) ms: $rate deliveries/s"
cpu_line notification delivery "$n" "$nt0" "$ns0" "$(proc_ticks "$ntf")" "$(session_ticks notification)"
first_lat=$(q "SELECT max(id) FROM notification.deliveries")

m=$((500 * lat_secs))
BUSTEST_COUNT=$m BUSTEST_BATCH=1 BUSTEST_RATE=500 BUSTEST_CASES=$m BUSTEST_PUB_URL="ipc://$tmp/driver.pub" \
    "$tbin/bus_driver" produce >/dev/null 2>>"$tmp/produce.err"
wait_delivered $((base + n + m)) 120
kill -TERM "$sink"
wait "$sink" || true
q "CREATE TABLE public.bench_sink (id text, at bigint)" >/dev/null
"$top/deploy/pg.sh" psql -qtAX -v ON_ERROR_STOP=1 -c "\\copy public.bench_sink FROM '$tmp/sink.txt' WITH (DELIMITER ' ')" >/dev/null
figures=$(q "WITH a AS (SELECT d.id, (min(s.at) - (extract(epoch FROM e.created_at) * 1000000)::bigint) / 1000.0 AS ms FROM notification.deliveries d JOIN public.bench_sink s ON s.id = d.message_id JOIN bus.events e ON e.event_id = d.event_id WHERE d.id > $first_lat GROUP BY d.id, e.created_at) SELECT count(*) || ' ' || round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 1) || ' ' || round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 1) || ' ' || round(max(ms)::numeric, 1) FROM a")
read -r cnt p50 p99 mx <<<"$figures"
dups=$(q "SELECT count(*) - count(DISTINCT id) FROM public.bench_sink WHERE id <> '-'")
echo "latency at 500 events/s for $lat_secs s: $cnt deliveries, event written to received: p50 ${p50} ms, p99 ${p99} ms, max ${mx} ms"
echo "requests received twice (same webhook-id): $dups"
echo "$(curl -s "http://$admin/metrics" | grep -E '^shouwen_notification_(delivered|retries|dead)_total')" | sed 's/^/    /'
[ "$cnt" = "$m" ] || { echo "only $cnt of $m latency deliveries matched at the receiver" >&2; exit 1; }
echo "RESULT bench-notify deliveries_per_s=$rate p99_ms_at_500=$p99"
