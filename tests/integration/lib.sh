# lib.sh - what every integration test script shares.  Source it after
# setting `name` (the temp folder's prefix); it sets top, bin, tmp (a
# private folder, world-traversable so the unprivileged PostgreSQL owner
# can reach it), the run and migration settings, and the check helpers.
# Each script defines its own cleanup and ends with `finish`.
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bin=${SHOUWEN_BIN:-$top/build/bin}
tmp=$(mktemp -d "/tmp/shouwen-$name.XXXXXX")
chmod 755 "$tmp"
export SHOUWEN_RUN_DIR=$tmp/run
export SHOUWEN_MIGRATIONS_DIR=$top/deploy/migrations
pass=0
fail=0
pids=()

ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; [ -z "${2:-}" ] || echo "     $2"; }
check() { # check "what" command...   (runs in this shell: `wait` needs that)
    local what=$1; shift
    if "$@" >"$tmp/check.out" 2>&1; then ok "$what"; else bad "$what" "$(tail -n 5 "$tmp/check.out")"; fi
}

# wait_for SECONDS command...: retry until it succeeds
wait_for() {
    local n=$(($1 * 10)); shift
    while [ $n -gt 0 ]; do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
        n=$((n - 1))
    done
    return 1
}

# finish: the closing line the CI reads, and the exit code
finish() {
    echo "$pass passed, $fail failed"
    [ "$fail" -eq 0 ]
}
