#!/usr/bin/env bash
# make bench-audit: the audit chain's appends per second, and the QA report
# at a million cases.
#
# Appends: a synthetic history (tests/bench/audit_gen, BENCH_AUDIT_CASES
# cases, about seven events each) is written to the outbox while
# shouwen-audit is down; the real service is then started and timed from
# ready to the last event chained (each: read from the bus, hashed into its
# site's chain, inserted, head moved, roll-ups kept, cursor moved).
# Baseline, same command, same database: PostgreSQL alone inserting the
# same number of rows of the log's shape (with a SHA-256 each) in one
# statement, the floor under the service.  Afterwards the chain is verified.
# Also printed: audit's and its database sessions' CPU an append, from
# ready to the last event chained (read by make bench-budget).
#
# Reports: 1,000,000 cases in one month (BENCH_REPORT_CASES) written
# straight into the roll-up (audit.case_facts) across the demo site's 7
# departments, with 100,000 violations; the month's report of one
# department (about 143,000 cases), of the whole site, and of one person,
# each asked 7 times over HTTP from the real shouwen-intake: the median.
# Baseline: a bare count(*) of that department's month in psql.
set -euo pipefail
name=audit
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
gen=${SHOUWEN_TEST_BIN:-$top/build/tests}/audit_gen
ncases=${BENCH_AUDIT_CASES:-40000}
nreport=${BENCH_REPORT_CASES:-1000000}
q() { bench_psql "$1"; }
aadmin=127.0.0.1:$(free_port)
iport=$(free_port)
iadmin=127.0.0.1:$(free_port)

# ---- appends -------------------------------------------------------------------------------------
t0=$(date +%s.%N)
"$gen" "$ncases" 7 "$tmp/plan" 20 >/dev/null
events=$(q "SELECT count(*) FROM bus.events")
echo "history: $ncases cases, $events events written in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}') s"
SHOUWEN_AUDIT_ADMIN_ADDR=$aadmin SHOUWEN_AUDIT_PUB_URL="ipc://$tmp/audit.pub" \
    SHOUWEN_AUDIT_SUB_URLS="ipc://$tmp/nothing.pub" SHOUWEN_AUDIT_KEY="bench-key-0123456789abcdef0123456789" \
    SHOUWEN_LOG_LEVEL=warn "$bin/shouwen-audit" 2>"$tmp/audit.log" &
apid=$!
pids+=("$apid")
for _ in $(seq 1 300); do curl -fs "http://$aadmin/readyz" >/dev/null 2>&1 && break; sleep 0.02; done
at0=$(proc_ticks "$apid")
as0=$(session_ticks audit)
start=$(date +%s.%N)
appended() { curl -s "http://$aadmin/metrics" | awk '$1 ~ /^shouwen_audit_appended_total/ {s += $2} END {print s + 0}'; }
for _ in $(seq 1 6000); do [ "$(appended)" -ge "$events" ] && break; sleep 0.05; done
end=$(date +%s.%N)
got=$(q "SELECT count(*) FROM audit.log")
[ "$got" = "$events" ] || { echo "FAIL: $got of $events events chained"; exit 1; }
secs=$(awk -v a="$start" -v b="$end" 'BEGIN {printf "%.2f", b - a}')
aps=$(awk -v n="$events" -v s="$secs" 'BEGIN {printf "%.0f", n / s}')
echo "audit: $events events chained in $secs s: $aps appends/s"
cpu_line audit append "$events" "$at0" "$as0" "$(proc_ticks "$apid")" "$(session_ticks audit)"
q "CREATE TABLE public.bench_log (LIKE audit.log)" >/dev/null
b0=$(date +%s.%N)
q "INSERT INTO public.bench_log SELECT s.id, i, gen_random_uuid(), 'case.registered', gen_random_uuid(), 'li.desk', now(), now(), sha256(i::text::bytea), sha256((i - 1)::text::bytea), sha256(i::text::bytea || s.id::text::bytea) FROM core.sites s, generate_series(1, $events) AS i WHERE s.code = 'SH01'" >/dev/null
b1=$(date +%s.%N)
bsecs=$(awk -v a="$b0" -v b="$b1" 'BEGIN {printf "%.2f", b - a}')
echo "baseline: PostgreSQL alone, one INSERT of $events rows of the log's shape: $bsecs s ($(awk -v n="$events" -v s="$bsecs" 'BEGIN {printf "%.0f", n / s}') rows/s)"
SHOUWEN_AUDIT_KEY="bench-key-0123456789abcdef0123456789" "$bin/shouwen-audit" verify SH01 | sed 's/^/verify: /'

# ---- reports at a million cases --------------------------------------------------------------------
t0=$(date +%s.%N)
q "INSERT INTO audit.case_facts (case_id, site_id, reg_day, registered_at, case_type, channel, urgency, first_responder, department, on_spot, outcome, resolve_s, handed_off, responded, transfers, returns, late_handoff, late_answer, late_resolve, late_callback, called_back, satisfaction, esc_supervisor) SELECT gen_random_uuid(), s.id, d, d + interval '12 hours', (ARRAY['consultation','complaint','repair','help'])[1 + i % 4], (ARRAY['phone','visit','web','hotline'])[1 + (i / 4) % 4], 'normal', (ARRAY['li.desk','wang.guard','chen.cleaner','wu.tech'])[1 + i % 4], (ARRAY['front-desk','engineering','security','cleaning','finance','qa','management'])[1 + i % 7], i % 4 = 0, CASE WHEN i % 10 < 7 THEN 'resolved' WHEN i % 10 = 7 THEN 'unresolvable' ELSE 'open' END, CASE WHEN i % 10 < 7 THEN (i::bigint * 7919) % 400000 END, i % 4 <> 0, i % 10 <> 9, i % 3, (i % 17 = 0)::int, i % 11 = 0, i % 13 = 0, i % 9 = 0, i % 19 = 0, i % 10 < 6, CASE WHEN i % 10 < 6 THEN (ARRAY['satisfied','basically_satisfied','unsatisfied','unreachable'])[1 + i % 4] END, (i % 23 = 0)::int FROM core.sites s, generate_series(1, $nreport) AS i, LATERAL (SELECT date '2026-10-01' + (i % 31) AS d) x WHERE s.code = 'SH01'" >/dev/null
q "INSERT INTO audit.violations (event_id, site_id, day, occurred_at, case_id, kind, staff, department, points) SELECT gen_random_uuid(), s.id, date '2026-10-01' + (i % 31), date '2026-10-01' + (i % 31) + interval '15 hours', NULL, (ARRAY['late_handoff','late_resolution','no_callback','conflict_escalation'])[1 + i % 4], (ARRAY['li.desk','wang.guard','chen.cleaner','wu.tech'])[1 + i % 4], (ARRAY['front-desk','engineering','security','cleaning','finance','qa','management'])[1 + i % 7], 1 + i % 5 FROM core.sites s, generate_series(1, $((nreport / 10))) AS i WHERE s.code = 'SH01'" >/dev/null
q "ANALYZE audit.case_facts" >/dev/null
q "ANALYZE audit.violations" >/dev/null
echo "roll-up: $(q "SELECT count(*) FROM audit.case_facts WHERE reg_day BETWEEN '2026-10-01' AND '2026-10-31'") cases in 2026-10, written in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.0f", b - a}') s"
SHOUWEN_INTAKE_HTTP_ADDR=127.0.0.1:$iport SHOUWEN_INTAKE_ADMIN_ADDR=$iadmin \
    SHOUWEN_INTAKE_PUB_URL="ipc://$tmp/intake.pub" SHOUWEN_INTAKE_REP_ADDR="ipc://$tmp/intake.rep" \
    SHOUWEN_LOG_LEVEL=warn "$bin/shouwen-intake" 2>"$tmp/intake.log" &
pids+=($!)
for _ in $(seq 1 300); do curl -fs "http://$iadmin/readyz" >/dev/null 2>&1 && break; sleep 0.02; done
# median_ms QUERY: the median of 7 answers' total times, in ms (the first answer is checked)
median_ms() {
    local code
    code=$(curl -s -o "$tmp/report.json" -w '%{http_code}' -H "Authorization: Bearer $SHOUWEN_DEMO_MANAGER_TOKEN" "http://127.0.0.1:$iport/v1/sites/SH01/reports/qa?$1")
    [ "$code" = 200 ] || { echo "FAIL: $1 answered $code: $(cat "$tmp/report.json")" >&2; exit 1; }
    for _ in 1 2 3 4 5 6 7; do
        curl -s -o /dev/null -w '%{time_total}\n' -H "Authorization: Bearer $SHOUWEN_DEMO_MANAGER_TOKEN" "http://127.0.0.1:$iport/v1/sites/SH01/reports/qa?$1"
    done | sort -n | sed -n 4p | awk '{printf "%.0f", $1 * 1000}'
}
dept_ms=$(median_ms "month=2026-10&department=engineering")
dept_cases=$(python3 -c "import json; print(json.load(open('$tmp/report.json'))['cases'])")
site_ms=$(median_ms "month=2026-10")
staff_ms=$(median_ms "month=2026-10&staff=wang.guard")
base_ms=$("$top/deploy/pg.sh" psql -qtAX -c '\timing on' -c "SELECT count(*) FROM audit.case_facts WHERE site_id = (SELECT id FROM core.sites WHERE code = 'SH01') AND department = 'engineering' AND reg_day BETWEEN '2026-10-01' AND '2026-10-31'" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | awk '{printf "%.0f", $1}')
echo "report, one department's month ($dept_cases cases): $dept_ms ms (median of 7, over HTTP)"
echo "report, the whole site's month ($nreport cases): $site_ms ms"
echo "report, one first responder's month: $staff_ms ms"
echo "baseline: a bare count(*) of that department's month in psql: $base_ms ms"
echo "RESULT bench-audit appends_per_s=$aps report_ms_1m=$dept_ms"
