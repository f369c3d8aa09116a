# Shared by the benchmarks of tests/bench: sourced after `name` is set.
# A private cluster in its own temporary folder, migrated, with the demo
# site and its credentials; every process put in `pids` is killed and the
# cluster stopped on exit (KEEP_TMP=1 keeps the folder).
#   bench_psql SQL     one value, unaligned
#   free_port          a free TCP port on 127.0.0.1
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
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# a shared machine: what else was running is part of the figures
echo "load average at the start: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores)"
