# Shared by the benchmarks of tests/bench: sourced after `name` is set.
# A private cluster in its own temporary folder, migrated, with the demo
# site and its credentials; every process put in `pids` is killed and the
# cluster stopped on exit (KEEP_TMP=1 keeps the folder).
#   bench_psql SQL     one value, unaligned
#   free_port          a free TCP port on 127.0.0.1
#   proc_ticks PID...  CPU (utime + stime) of the processes, in clock ticks
#   session_ticks APP  CPU of service APP's database sessions, in clock ticks
#   cpu_line SVC UNIT N T0 S0 T1 S1
#                      prints the `cpu:` line that make bench-budget reads
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bin=${SHOUWEN_BIN:-$top/build/bin}
load=${SHOUWEN_TEST_BIN:-$top/build/tests}/http_load
tmp=$(mktemp -d "/tmp/shouwen-bench-$name.XXXXXX")
chmod 755 "$tmp"
export SHOUWEN_RUN_DIR=$tmp/run SHOUWEN_MIGRATIONS_DIR=$top/deploy/migrations
pids=()
bench_cleanup() {
    local p
    # reaped quietly: bash would report each as "Killed" with its command line
    for p in "${pids[@]}"; do { kill -KILL "$p" && wait "$p"; } 2>/dev/null || true; done
    "$top/deploy/pg.sh" stop >/dev/null 2>&1 || true
    [ -n "${KEEP_TMP:-}" ] || rm -rf "$tmp"
}
trap bench_cleanup EXIT
"$top/deploy/pg.sh" start >/dev/null
export SHOUWEN_DATABASE_URL
SHOUWEN_DATABASE_URL=$("$top/deploy/pg.sh" url)
"$bin/shouwen-migrate" >/dev/null
"$top/deploy/demo.sh" >/dev/null
. "$SHOUWEN_RUN_DIR/demo-credentials"
bench_psql() { "$top/deploy/pg.sh" psql -qtAX -v ON_ERROR_STOP=1 -c "$1"; }
# CPU, from /proc: a process that is gone counts 0
proc_ticks() {
    local t=0 p
    for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done
    echo "$t"
}
# the service's sessions, by application_name: APP itself and its own
# threads' (shouwen-APP-*, such as notification's sender)
session_ticks() {
    # shellcheck disable=SC2046 # one pid a word
    proc_ticks $(bench_psql "SELECT pid FROM pg_stat_activity WHERE application_name = '$1' OR application_name LIKE 'shouwen-$1-%'")
}
# cpu_line SERVICE UNIT N T0 S0 T1 S1: the CPU the service (ticks T0 to T1)
# and its database sessions (S0 to S1) spent on N units of work, in µs a
# unit; make bench-budget reads these lines (tests/bench/budget.sh)
cpu_line() {
    awk -v s="$1" -v u="$2" -v n="$3" -v t="$(($6 - $4))" -v b="$(($7 - $5))" -v hz="$(getconf CLK_TCK)" 'BEGIN {
        us = u; if (!sub(/y$/, "ies", us)) us = us "s"
        if (n + 0 <= 0) { printf "no cpu figure for %s: no %s done\n", s, us; exit }
        printf "cpu: %s %.1f us %s %s, its database sessions %.1f us (%d %s)\n", s, t / hz / n * 1e6,
            u ~ /^[aeiou]/ ? "an" : "a", u, b / hz / n * 1e6, n, us }'
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# a shared machine: what else was running is part of the figures
echo "load average at the start: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores)"
