#!/usr/bin/env bash
# make bench-budget: what one case of make bench costs when each service
# does its part alone, with its largest batches, and the rate that cost
# allows.
#
# make bench runs the five services together on one machine.  Here each is
# measured alone, by its own benchmark, on a private cluster, with the
# backlog or closed loop that gives it its largest batches.  Each prints
# the CPU that the service and its database sessions spent on each unit of
# work (the `cpu:` lines, tests/bench/lib.sh: cpu_line):
#
#   intake        make bench-intake's closed-loop run     per case registered
#   routing       make bench-routing's drain              per case routed
#   escalation    the same cluster's cases afterwards,    per case timed
#                 drained by escalation alone
#                 (routing_bench.sh, BENCH_ESCALATION=1)
#   notification  make bench-notify's 30,000 events       per webhook delivered
#   audit         make bench-audit's appends              per event chained
#
# One case of make bench is one registration, one routing, the deadlines of
# its registration and transfer, one delivery and three events chained
# (case.registered, case.transferred, notification.delivered).  The sum of
# those costs is a lower bound on a case's CPU there, and CPU cores x
# 1,000,000 / the sum an upper bound on cases/s end to end.  The bound is
# generous: it leaves out PostgreSQL's own processes (WAL writer,
# checkpointer, autovacuum), the kernel's work not charged to these
# processes, the load generator and the webhook receiver, and every cost of
# running the services side by side (smaller batches, contention for the
# cores).  Audit's events are audit_gen's mix, not make bench's three;
# make bench-notify's events name cases that are not in core.cases, so its
# look-up of them finds nothing and its messages are shorter.
#
# BENCH_TARGET (5,000, issue 9's) is printed beside it with the CPU a case
# that it allows.  The four benchmarks' full outputs are kept in
# build/budget/.  Prints figures; asserts nothing about time.
set -uo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
out=$top/build/budget
target=${BENCH_TARGET:-5000}
mkdir -p "$out"
cores=$(nproc)
echo "load average at the start: $(cut -d' ' -f1-3 /proc/loadavg) ($cores cores)"

# measure NAME VAR=value...: tests/bench/NAME_bench.sh, its output kept
measure() {
    local name=$1
    shift
    echo "== make bench-$name ($*)"
    if ! env "$@" bash "$top/tests/bench/${name}_bench.sh" >"$out/$name.out" 2>&1; then
        tail -n 20 "$out/$name.out" >&2
        echo "FAIL: make bench-$name failed (output: $out/$name.out)" >&2
        exit 1
    fi
    grep -E '^(cpu|RESULT):? ' "$out/$name.out" | sed 's/^/    /'
}
measure intake BENCH_SECONDS=10
measure routing BENCH_SECONDS=5 BENCH_ESCALATION=1
measure notify BENCH_LATENCY_SECONDS=2
measure audit BENCH_REPORT_CASES=10000

# the cpu: lines -> service, its µs a unit with its sessions, the unit
cat "$out"/{intake,routing,notify,audit}.out | awk -v cores="$cores" -v target="$target" '
/^cpu: / {
    svc = $2; own = $3; unit = $6; sub(/,$/, "", unit); db = $10
    per[svc] = own + db; u[svc] = unit; o[svc] = own; d[svc] = db
}
END {
    n["intake"] = 1; n["routing"] = 1; n["escalation"] = 1; n["notification"] = 1; n["audit"] = 3
    split("intake routing escalation notification audit", order, " ")
    printf "one case of make bench, each service alone (its own code + its database sessions):\n"
    for (i = 1; i <= 5; i++) {
        s = order[i]
        if (!(s in per)) { printf "FAIL: no cpu: line from %s\n", s; bad = 1; continue }
        c = n[s] * per[s]; sum += c
        printf "    %-13s %d %s%s x (%6.1f + %6.1f us) = %6.1f us\n", s, n[s], u[s], (n[s] > 1 ? "s" : ""), o[s], d[s], c
    }
    if (bad) exit 1
    ceil = cores * 1e6 / sum
    printf "    sum: %.1f us a case, at least (left out: PostgreSQL'\''s own processes, the kernel'\''s\n", sum
    printf "    work not charged to these, the load generator and receiver, the cost of sharing the machine)\n"
    printf "upper bound on %d cores: %.0f cases/s end to end\n", cores, ceil
    printf "target %d cases/s: allows %.0f us a case on %d cores, %.2f of the sum above\n", target, cores * 1e6 / target, cores, cores * 1e6 / target / sum
    printf "RESULT bench-budget us_per_case=%.0f ceiling_cases_per_s=%.0f target_cases_per_s=%d\n", sum, ceil, target
}'
