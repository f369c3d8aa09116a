#!/usr/bin/env bash
# The local stack behind `make run`, `make stop` and `make status`: the
# private PostgreSQL cluster, the migrations, the demo site, the five
# services and the demo's webhook receiver (deploy/demo/receiver.py, on
# $SHOUWEN_DEMO_RECEIVER_ADDR, default 127.0.0.1:7409; the demo site's
# channel demo-receiver points at it) in the background with their logs
# and pids under $SHOUWEN_RUN_DIR.
#
#   stack.sh start    safe to run twice: what runs is left alone
#   stack.sh stop     services first (SIGTERM, then SIGKILL after 5 s), database last
#   stack.sh status
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export SHOUWEN_RUN_DIR=${SHOUWEN_RUN_DIR:-$top/.run}
run=$SHOUWEN_RUN_DIR
bin=${SHOUWEN_BIN:-$top/build/bin}
services=(intake routing escalation notification audit)
receiver_addr=${SHOUWEN_DEMO_RECEIVER_ADDR:-127.0.0.1:7409}
if ! [[ $receiver_addr =~ ^[A-Za-z0-9.-]+:[0-9]{1,5}$ ]]; then
    echo "stack.sh: SHOUWEN_DEMO_RECEIVER_ADDR: invalid value \"$receiver_addr\": expected host:port" >&2
    exit 2
fi

# The admin address of a service: its setting if exported, else the default.
admin_addr() {
    local var="SHOUWEN_${1^^}_ADMIN_ADDR"
    local def
    case $1 in
    intake) def=127.0.0.1:7401 ;; routing) def=127.0.0.1:7402 ;;
    escalation) def=127.0.0.1:7403 ;; notification) def=127.0.0.1:7404 ;;
    audit) def=127.0.0.1:7405 ;;
    esac
    echo "${!var:-$def}"
}

# pid of a running service (or of the receiver), or nothing
alive() {
    local f=$run/$1.pid pid what=shouwen-$1
    [ "$1" != receiver ] || what=deploy/demo/receiver.py
    [ -f "$f" ] || return 1
    pid=$(cat "$f")
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null &&
        tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$what" || return 1
    echo "$pid"
}

# ready NAME: waits up to 30 s (a loaded machine starts slowly) for its
# /readyz (the receiver: /healthz); on failure says so with its last log lines
ready() {
    local url=http://$receiver_addr/healthz
    [ "$1" = receiver ] || url=http://$(admin_addr "$1")/readyz
    for _ in $(seq 1 300); do
        if ! alive "$1" >/dev/null; then break; fi
        if curl -fsS -o /dev/null "$url" 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "$1: did not become ready; last log lines ($run/log/$1.log):" >&2
    tail -n 5 "$run/log/$1.log" >&2
    return 1
}

start() {
    mkdir -p "$run/log"
    local running=() s
    for s in "${services[@]}" receiver; do
        if alive "$s" >/dev/null; then running+=("$s"); fi
    done
    if [ ${#running[@]} -eq $((${#services[@]} + 1)) ]; then
        echo "shouwen is already running; nothing changed (make stop, then make run, to restart)"
        status
        return 0
    fi
    "$top/deploy/pg.sh" start
    export SHOUWEN_DATABASE_URL=${SHOUWEN_DATABASE_URL:-$("$top/deploy/pg.sh" url)}
    "$bin/shouwen-migrate"
    "$top/deploy/demo.sh" --receiver "http://$receiver_addr/webhook"
    # the audit checkpoints' secret: made once per run folder, kept beside it (never in the database)
    if [ -z "${SHOUWEN_AUDIT_KEY:-}" ]; then
        [ -s "$run/audit.key" ] || (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$run/audit.key")
        SHOUWEN_AUDIT_KEY=$(cat "$run/audit.key")
        export SHOUWEN_AUDIT_KEY
    fi
    # the receiver first, so that notification's first messages find it
    if alive receiver >/dev/null; then
        echo "receiver: already running (pid $(alive receiver))"
    else
        command -v python3 >/dev/null || { echo "stack.sh: python3 not found (deploy/bootstrap.sh installs it)" >&2; return 1; }
        nohup python3 -u "$top/deploy/demo/receiver.py" --addr "$receiver_addr" \
            --secret-file "$run/demo-receiver.secret" >>"$run/log/receiver.log" 2>&1 </dev/null &
        echo $! >"$run/receiver.pid"
    fi
    for s in "${services[@]}"; do
        if alive "$s" >/dev/null; then
            echo "$s: already running (pid $(alive "$s"))"
            continue
        fi
        nohup "$bin/shouwen-$s" >>"$run/log/$s.log" 2>&1 </dev/null &
        echo $! >"$run/$s.pid"
    done
    local failed=0
    for s in receiver "${services[@]}"; do
        ready "$s" || failed=1
    done
    status
    return $failed
}

status() {
    local s pid
    "$top/deploy/pg.sh" status || true
    printf '%-13s %-8s %-28s %s\n' service pid admin log
    for s in "${services[@]}"; do
        pid=$(alive "$s" || echo "-")
        printf '%-13s %-8s %-28s %s\n' "$s" "$pid" "http://$(admin_addr "$s")" "$run/log/$s.log"
    done
    pid=$(alive receiver || echo "-")
    printf '%-13s %-8s %-28s %s\n' receiver "$pid" "http://$receiver_addr" "$run/log/receiver.log"
    echo "database: $("$top/deploy/pg.sh" url)   (psql: deploy/pg.sh psql)"
    echo "public API: http://${SHOUWEN_INTAKE_HTTP_ADDR:-127.0.0.1:7400}/v1/   (demo credentials: $run/demo-credentials)"
}

stop() {
    local s pid
    for s in "${services[@]}" receiver; do
        if pid=$(alive "$s"); then
            kill -TERM "$pid" 2>/dev/null || true # it may have just exited
            # alive, not kill -0: an exited process stays a zombie until
            # whoever adopted it reaps it, seconds later on some machines
            for _ in $(seq 1 50); do
                alive "$s" >/dev/null || break
                sleep 0.1
            done
            if alive "$s" >/dev/null; then
                echo "$s: did not stop in 5 s, killing" >&2
                kill -KILL "$pid" 2>/dev/null || true
            fi
            echo "$s: stopped"
        fi
        rm -f "$run/$s.pid"
    done
    "$top/deploy/pg.sh" stop
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status) status ;;
*) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
