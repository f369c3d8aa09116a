#!/usr/bin/env bash
# The private PostgreSQL cluster: created, started and stopped under
# $SHOUWEN_RUN_DIR/pg (default: the repo's .run/pg), listening on a unix
# socket in that folder and on no network port unless SHOUWEN_PG_LISTEN
# names addresses (e.g. 127.0.0.1).  Uses the machine's PostgreSQL binaries.
# PostgreSQL refuses to run as root: as root, the server runs as an
# unprivileged user (SHOUWEN_PG_USER, default postgres, created if absent).
# SHOUWEN_PG_SHARED_BUFFERS (e.g. 512MB) sets the server's shared_buffers
# at start; unset, PostgreSQL's own default (128MB).
#
#   pg.sh init     create the cluster and the shouwen database (no-op if there)
#   pg.sh start    init if needed, then start (no-op if running)
#   pg.sh stop     fast shutdown (no-op if not running)
#   pg.sh status   running or not
#   pg.sh url      print the SHOUWEN_DATABASE_URL for this cluster
#   pg.sh psql     psql on the shouwen database
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
run=${SHOUWEN_RUN_DIR:-$top/.run}
pgdir=$run/pg
port=${SHOUWEN_PG_PORT:-5432}
listen=${SHOUWEN_PG_LISTEN:-}
dbname=shouwen
dbuser=shouwen

die() { echo "pg: $*" >&2; exit 1; }

bindir() {
    local d
    d=$(pg_config --bindir 2>/dev/null || true)
    if [ -n "$d" ] && [ -x "$d/initdb" ]; then echo "$d"; return; fi
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    [ -n "$d" ] && [ -x "$d/initdb" ] || die "no PostgreSQL server binaries found (pg_config --bindir, /usr/lib/postgresql/*/bin): run deploy/bootstrap.sh"
    echo "$d"
}
BIN=$(bindir)

pguser=""
if [ "$(id -u)" -eq 0 ]; then
    pguser=${SHOUWEN_PG_USER:-postgres}
    if ! id "$pguser" >/dev/null 2>&1; then
        useradd --system --no-create-home --shell /usr/sbin/nologin "$pguser"
    fi
fi

# Run a server-side command as the cluster's owner.
as_owner() {
    # from /, which the owner can always enter: the caller's folder may be closed to it
    if [ -n "$pguser" ]; then (cd / && runuser -u "$pguser" -- "$@"); else "$@"; fi
}

# The real folder of the cluster.  As root, the unprivileged owner must be
# able to reach it; when the repo sits where it cannot (say under /root),
# the cluster lives in /var/tmp and .run/pg is a link to it.
real_pgdir() {
    mkdir -p "$run"
    if [ -L "$pgdir" ]; then readlink -f "$pgdir"; return; fi
    if [ -n "$pguser" ] && ! runuser -u "$pguser" -- test -x "$run" 2>/dev/null; then
        local alt
        alt=/var/tmp/shouwen-pg-$(printf '%s' "$pgdir" | sha256sum | cut -c1-12)
        if [ -e "$pgdir" ] && ! rmdir "$pgdir" 2>/dev/null; then
            die "$pgdir holds a cluster that $pguser cannot reach from here; run as its owner, or move it away"
        fi
        mkdir -p "$alt"
        ln -sfn "$alt" "$pgdir"
        echo "$alt"
        return
    fi
    mkdir -p "$pgdir"
    echo "$pgdir"
}

REAL=$(real_pgdir)
DATA=$REAL/data
LOG=$REAL/postgresql.log
[ -z "$pguser" ] || chown "$pguser" "$REAL"
chmod 700 "$REAL"

url() { echo "host=$pgdir port=$port dbname=$dbname user=$dbuser"; }

running() { [ -f "$DATA/PG_VERSION" ] && as_owner "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; }

cmd_init() {
    if [ -f "$DATA/PG_VERSION" ]; then return 0; fi
    echo "pg: creating cluster in $DATA"
    as_owner "$BIN/initdb" -D "$DATA" -U "$dbuser" -E UTF8 --no-locale \
        --auth-local=trust --auth-host=scram-sha-256 >"$REAL/initdb.log" 2>&1 ||
        { cat "$REAL/initdb.log" >&2; die "initdb failed (log above)"; }
    cat >>"$DATA/postgresql.conf" <<CONF

# shouwen private cluster
unix_socket_directories = '$REAL'
unix_socket_permissions = 0777
port = $port
listen_addresses = ''
max_connections = 200
log_line_prefix = '%m [%p] %q%a '
CONF
}

cmd_start() {
    cmd_init
    if running; then
        echo "pg: already running ($(url))"
        return 0
    fi
    local opts="-c listen_addresses='$listen' -c port=$port"
    [ -z "${SHOUWEN_PG_SHARED_BUFFERS:-}" ] || opts="$opts -c shared_buffers=$SHOUWEN_PG_SHARED_BUFFERS"
    as_owner "$BIN/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 -o "$opts" start >/dev/null ||
        { tail -n 20 "$LOG" >&2; die "could not start PostgreSQL (log: $LOG)"; }
    if ! "$BIN/psql" -h "$REAL" -p "$port" -U "$dbuser" -d postgres -qtAc \
        "SELECT 1 FROM pg_database WHERE datname = '$dbname'" | grep -q 1; then
        "$BIN/createdb" -h "$REAL" -p "$port" -U "$dbuser" "$dbname"
    fi
    echo "pg: running, socket in $pgdir${listen:+, listening on $listen:$port} ($(url))"
}

cmd_stop() {
    if ! running; then
        echo "pg: not running"
        return 0
    fi
    as_owner "$BIN/pg_ctl" -D "$DATA" -m fast -w -t 60 stop >/dev/null
    echo "pg: stopped"
}

case "${1:-}" in
init) cmd_init ;;
start) cmd_start ;;
stop) cmd_stop ;;
status) if running; then echo "pg: running ($(url))"; else echo "pg: not running"; exit 3; fi ;;
url) url ;;
psql) shift; exec "$BIN/psql" -h "$REAL" -p "$port" -U "$dbuser" -d "$dbname" "$@" ;;
*) echo "usage: $0 init|start|stop|status|url|psql [args]" >&2; exit 2 ;;
esac
