#!/usr/bin/env bash
# make bench-escalation: the clock at a million open cases.
#
# A private cluster with the demo site and 1,000,000 open cases
# (BENCH_CASES), each holding two pending deadlines (its handoff and the
# supervisor's step: 2,000,000 rows), written in SQL.  Of the handoffs,
# 2,000 fall due one every 10 ms from 10 s after the start, and 100,000
# (BENCH_BURST) all at once 40 s after it; the rest are hours away.  The
# real shouwen-escalation is then started and measured:
#
#   ready       from its start to /readyz answering 200 (its timer has read
#               the deadlines due within the horizon)
#   memory      resident set after it is ready, and its peak
#   firing      how late the 2,000 spread deadlines fired (breached_at -
#               due_at, from the database): p50, p99, max
#   throughput  the 100,000 that fall due at once: breaches per second from
#               their due time to the last breach (each: deadline marked,
#               violation recorded, case.deadline_breached written)
#
# Baseline, in the same command on the same database: the same work done
# by PostgreSQL alone, as one statement marking 100,000 other deadlines
# breached and inserting their violations: the floor under what the
# service can reach.  Fails only if a deadline is not fired, or fired twice.
set -euo pipefail
name=escalation
# A million open cases do not fit PostgreSQL's default 128MB of shared
# buffers; a site that holds them gives it more: 512MB, as the project's
# own Kubernetes example (deploy/k8s/postgres-cnpg.yaml).  The baseline
# runs on the same cluster.  BENCH_SHARED_BUFFERS= (empty) for the default.
export SHOUWEN_PG_SHARED_BUFFERS=${BENCH_SHARED_BUFFERS-512MB}
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
echo "PostgreSQL shared_buffers = $(bench_psql 'SHOW shared_buffers')"
cases=${BENCH_CASES:-1000000}
burst=${BENCH_BURST:-100000}
spread=2000
q() { bench_psql "$1"; }
eadmin=127.0.0.1:$(free_port)

# One partition: every deadline's part is then 0 (the bench writes them in SQL).
q "UPDATE bus.settings SET partitions = 1" >/dev/null
t0=$(date +%s.%N)
q "INSERT INTO core.cases (site_id, number, first_responder_id, owner_id, department_id, status, type, channel, subject, created_at, updated_at) SELECT s.id, 'SH01-20261201-' || lpad(i::text, 8, '0'), st.id, st.id, st.department_id, 'registered', 'complaint', 'phone', 'bench ' || i, now(), now() FROM core.sites s JOIN core.staff st ON st.site_id = s.id AND st.code = 'li.desk', generate_series(1, $cases) AS i WHERE s.code = 'SH01'" >/dev/null
q "INSERT INTO escalation.deadlines (site_id, case_id, kind, due_at, part, episode, started_at, limit_us, basis) SELECT c.site_id, c.id, k.kind, now() + CASE k.kind WHEN 'handoff' THEN interval '3 hours' ELSE interval '2 days' END, 0, CASE k.kind WHEN 'handoff' THEN 'R:li.desk' ELSE 'open:0' END, now(), 3600000000, 'calendar' FROM core.cases c, (VALUES ('handoff'), ('supervisor')) AS k(kind) WHERE c.number LIKE 'SH01-20261201-%'" >/dev/null
q "ANALYZE escalation.deadlines" >/dev/null
q "ANALYZE core.cases" >/dev/null
t1=$(date +%s.%N)
echo "setup: $cases open cases, $((cases * 2)) pending deadlines written in $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f", b - a}') s"
# the deadlines to fire, relative to now
q "UPDATE escalation.deadlines d SET due_at = now() + interval '10 s' + (c.n - 1) * interval '10 ms' FROM (SELECT id, row_number() OVER (ORDER BY number) AS n FROM core.cases WHERE number LIKE 'SH01-20261201-%' ORDER BY number LIMIT $spread) c WHERE d.case_id = c.id AND d.kind = 'handoff'" >/dev/null
q "UPDATE escalation.deadlines d SET due_at = date_trunc('second', now()) + interval '40 s' FROM (SELECT id FROM core.cases WHERE number LIKE 'SH01-20261201-%' ORDER BY number OFFSET $spread LIMIT $burst) c WHERE d.case_id = c.id AND d.kind = 'handoff'" >/dev/null

start=$(date +%s.%N)
SHOUWEN_ESCALATION_ADMIN_ADDR=$eadmin SHOUWEN_ESCALATION_PUB_URL="ipc://$tmp/escalation.pub" \
    SHOUWEN_ESCALATION_SUB_URLS="ipc://$tmp/escalation.pub" SHOUWEN_LOG_LEVEL=warn \
    "$bin/shouwen-escalation" 2>"$tmp/escalation.log" &
epid=$!
pids+=($epid)
for _ in $(seq 1 600); do curl -fs "http://$eadmin/readyz" >/dev/null 2>&1 && break; sleep 0.02; done
ready=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN {printf "%.2f", b - a}')
rss() { awk -v k="$1" '$1 == k":" {printf "%.0f", $2 / 1024}' "/proc/$epid/status"; }
rss_ready=$(rss VmRSS)
echo "ready: ${ready} s after the start (resident: ${rss_ready} MB)"

fired() { curl -s "http://$eadmin/metrics" | awk '/^shouwen_escalation_breaches_total/ {s += $2} END {print s + 0}'; }
want=$((spread + burst))
for _ in $(seq 1 1200); do
    [ "$(fired)" -ge "$want" ] && break
    sleep 0.1
done
sleep 0.5
rss_peak=$(rss VmHWM)
echo "memory: resident ${rss_ready} MB when ready, peak ${rss_peak} MB"
figures=$(q "SELECT count(*) || ' ' || round((percentile_cont(0.5) WITHIN GROUP (ORDER BY ms))::numeric, 1) || ' ' || round((percentile_cont(0.99) WITHIN GROUP (ORDER BY ms))::numeric, 1) || ' ' || round(max(ms)::numeric, 1) FROM (SELECT extract(epoch FROM d.breached_at - d.due_at) * 1000 AS ms FROM escalation.deadlines d JOIN (SELECT id FROM core.cases WHERE number LIKE 'SH01-20261201-%' ORDER BY number LIMIT $spread) c ON c.id = d.case_id WHERE d.kind = 'handoff') x")
read -r nspread p50 p99 max <<<"$figures"
echo "firing: $nspread deadlines due 10 ms apart fired late by p50 $p50 ms, p99 $p99 ms, max $max ms"
burstfig=$(q "SELECT count(*) FILTER (WHERE d.breached_at IS NOT NULL) || ' ' || round(extract(epoch FROM max(d.breached_at) - min(d.due_at))::numeric, 2) FROM escalation.deadlines d JOIN (SELECT id FROM core.cases WHERE number LIKE 'SH01-20261201-%' ORDER BY number OFFSET $spread LIMIT $burst) c ON c.id = d.case_id WHERE d.kind = 'handoff'")
read -r nburst bsecs <<<"$burstfig"
bps=$(awk -v n="$nburst" -v s="$bsecs" 'BEGIN {printf "%.0f", (s > 0 ? n / s : 0)}')
echo "throughput: $nburst deadlines due at once, all breached $bsecs s after their due time: $bps breaches/s"
violations=$(q "SELECT count(*) FROM escalation.violations")
events=$(q "SELECT count(*) FROM bus.events WHERE type = 'case.deadline_breached'")
twice=$(q "SELECT count(*) FROM (SELECT deadline_id FROM escalation.violations GROUP BY deadline_id HAVING count(*) > 1) x")
echo "checks: $violations violations and $events case.deadline_breached events for $want deadlines (recorded twice: $twice)"
echo "escalation /metrics: $(curl -s "http://$eadmin/metrics" | grep -E '^shouwen_escalation_(fire_batches|fire_failures|timer_deadlines)' | tr '\n' ' ')"

# Baseline: PostgreSQL alone doing the same rows' work in one statement.
[ -z "${BENCH_PROBE:-}" ] || "$top/deploy/pg.sh" psql -qtAX -f "$BENCH_PROBE"
kill -TERM "$epid"
wait "$epid" 2>/dev/null || true
b0=$(date +%s.%N)
base=$(q "WITH pick AS (SELECT id FROM core.cases WHERE number LIKE 'SH01-20261201-%' ORDER BY number OFFSET $((spread + burst)) LIMIT $burst), hit AS (UPDATE escalation.deadlines d SET breached_at = clock_timestamp() FROM pick WHERE d.case_id = pick.id AND d.kind = 'handoff' AND d.met_at IS NULL AND d.breached_at IS NULL RETURNING d.id, d.site_id, d.case_id, d.due_at), v AS (INSERT INTO escalation.violations (site_id, case_id, kind, staff_id, department_id, occurred_at, points, detail, event_id, deadline_id) SELECT h.site_id, h.case_id, 'late_handoff', c.owner_id, c.department_id, h.due_at, 0, 'baseline', gen_random_uuid(), h.id FROM hit h JOIN core.cases c ON c.id = h.case_id RETURNING 1) SELECT count(*) FROM v")
b1=$(date +%s.%N)
baseline=$(awk -v n="$base" -v a="$b0" -v b="$b1" 'BEGIN {printf "%.0f", n / (b - a)}')
echo "baseline: PostgreSQL alone marks $base deadlines breached and records their violations in one statement at $baseline rows/s (the service also writes an event per breach and does it in batches)"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
[ "$violations" = "$want" ] && [ "$events" = "$want" ] && [ "$twice" = 0 ] ||
    { echo "escalation lost or doubled breaches" >&2; exit 1; }
echo "RESULT bench-escalation ready_s=$ready rss_mb=$rss_peak fire_p99_ms=$p99 breaches_per_s=$bps"
