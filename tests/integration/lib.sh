# lib.sh - what every integration test script shares.  Source it after
# setting `name` (the temp folder's prefix); it sets top, bin, tmp (a
# private folder, world-traversable so the unprivileged PostgreSQL owner
# can reach it), the run and migration settings, and the check helpers.
# Each script defines its own cleanup (or uses intake_cleanup, below) and
# ends with `finish`.
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

# --- the intake scripts' shared setup -------------------------------------
# A script that tests the real shouwen-intake does, after sourcing lib.sh:
#
#   trap intake_cleanup EXIT   # or its own cleanup that ends by calling it
#   intake_setup               # cluster, migrations, demo site; KEY, TOKEN
#   intake_start [VAR=value...]  # the service; port, api, admin, intake_pid
#
# and ends with `finish`.

# q SQL: run SQL on the private cluster; prints the bare values (no header,
# no alignment), fails on the first error
q() { "$top/deploy/pg.sh" psql -qtAX -v ON_ERROR_STOP=1 -c "$1"; }

# plans_logged on|off: auto_explain logs every plan of the sessions that
# connect while it is on (a service's kept plans, made at its start)
plans_logged() {
    if [ "$1" = on ]; then
        q "ALTER ROLE CURRENT_USER SET session_preload_libraries = 'auto_explain'" >/dev/null
        q "ALTER ROLE CURRENT_USER SET auto_explain.log_min_duration = 0" >/dev/null
    else
        q "ALTER ROLE CURRENT_USER RESET session_preload_libraries" >/dev/null
        q "ALTER ROLE CURRENT_USER RESET auto_explain.log_min_duration" >/dev/null
    fi
}
# plans_of APP: the plans logged by the sessions whose application_name
# matches APP (an awk regular expression; log_line_prefix '%m [%p] %q%a ')
plans_of() { awk -v app="$1" '/^[0-9][0-9][0-9][0-9]-/ {r = ($5 ~ app)} r' "$SHOUWEN_RUN_DIR/pg/postgresql.log"; }

# free_ports N: prints a port P such that P .. P+N-1 on 127.0.0.1 can all
# be bound right now (chosen at random in 27000-31999, so that scripts
# running at the same time rarely meet); fails if none was found.
free_ports() {
    python3 - "${1:-1}" <<'PY'
import random, socket, sys
n = int(sys.argv[1])
for _ in range(200):
    base = random.randrange(27000, 32000 - n)
    socks = []
    try:
        for p in range(base, base + n):
            s = socket.socket()
            socks.append(s)
            s.bind(("127.0.0.1", p))
    except OSError:
        continue
    finally:
        for s in socks:
            s.close()
    print(base)
    sys.exit(0)
sys.exit("no %d free ports in a row" % n)
PY
}

# intake_cleanup: the default EXIT trap of an intake script: kills the
# service if it still runs, stops the private cluster, removes $tmp (kept
# with KEEP_TMP=1).  A script with more to undo defines its own cleanup
# that does that and then calls this.
intake_cleanup() {
    [ -z "${intake_pid:-}" ] || kill -KILL "$intake_pid" 2>/dev/null
    "$top/deploy/pg.sh" stop >/dev/null 2>&1
    [ -n "${KEEP_TMP:-}" ] || rm -rf "$tmp"
}

# intake_setup: the checks "private cluster", "migrations" and "demo site
# loaded" (deploy/pg.sh start, shouwen-migrate, deploy/demo.sh); exports
# SHOUWEN_DATABASE_URL, sources the demo credentials (SHOUWEN_DEMO_API_KEY,
# SHOUWEN_DEMO_TOKEN, SHOUWEN_DEMO_MANAGER_TOKEN) and sets KEY (the demo
# API key, role system) and TOKEN (li.desk's bearer token, a receptionist).
intake_setup() {
    check "private cluster" "$top/deploy/pg.sh" start
    export SHOUWEN_DATABASE_URL
    SHOUWEN_DATABASE_URL=$("$top/deploy/pg.sh" url)
    check "migrations" "$bin/shouwen-migrate"
    check "demo site loaded" "$top/deploy/demo.sh"
    . "$SHOUWEN_RUN_DIR/demo-credentials"
    KEY=$SHOUWEN_DEMO_API_KEY
    TOKEN=$SHOUWEN_DEMO_TOKEN
}

# intake_ready: the service answers /readyz on its admin port within 10 s.
# A script may redefine it (after sourcing lib.sh) to ask for more.
intake_ready() { wait_for 10 curl -fs "http://$admin/readyz"; }

# intake_start [VAR=value...]: starts the real shouwen-intake in the
# background, its stderr in $tmp/intake.log, with HTTP on 127.0.0.1:$port,
# admin on 127.0.0.1:$((port + 1)), PUB on ipc://$tmp/intake.pub and REP on
# ipc://$tmp/intake.rep; each VAR=value given is added to (or overrides)
# that environment.  $port is a free pair from free_ports unless the script
# set it already (to keep more ports next to it, say).  Sets port, api
# (http://127.0.0.1:$port), admin (127.0.0.1:$((port + 1))) and intake_pid,
# then the check "intake ready" (intake_ready); returns 1 if that failed.
intake_start() {
    local failed=$fail
    port=${port:-$(free_ports 2)}
    api=http://127.0.0.1:$port
    admin=127.0.0.1:$((port + 1))
    env SHOUWEN_INTAKE_HTTP_ADDR="127.0.0.1:$port" SHOUWEN_INTAKE_ADMIN_ADDR="$admin" \
        SHOUWEN_INTAKE_PUB_URL="ipc://$tmp/intake.pub" SHOUWEN_INTAKE_REP_ADDR="ipc://$tmp/intake.rep" \
        "$@" "$bin/shouwen-intake" 2>"$tmp/intake.log" &
    intake_pid=$!
    check "intake ready" intake_ready
    [ "$fail" = "$failed" ]
}

# intake_stop: SIGTERM to the service started by intake_start, wait for it
# to end, then the check "SIGTERM: exit 0".
intake_stop() {
    local rc
    kill -TERM "$intake_pid"
    wait "$intake_pid"
    rc=$?
    intake_pid=""
    check "SIGTERM: exit 0" test "$rc" = 0
}
