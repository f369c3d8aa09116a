#!/usr/bin/env bash
# The local stack behind `make run`, `make stop` and `make status`: the
# private PostgreSQL cluster, the migrations, the demo site, the five
# services and the demo's webhook receiver (deploy/demo/receiver.py, on
# $SHOUWEN_DEMO_RECEIVER_ADDR, default 127.0.0.1:7409; the demo site's
# channel demo-receiver points at it) in the background with their logs
# and pids under $SHOUWEN_RUN_DIR.
#
#   stack.sh start    safe to run twice: what runs is left alone, what is
#                     missing (a killed replica, say) is started
#   stack.sh stop     services first (SIGTERM, then SIGKILL after 5 s), database last
#   stack.sh status
#
# Replicas.  SHOUWEN_REPLICAS=N (`make run REPLICAS=N`, default 1, at most
# 20, and fewer with a long run folder: audit's SHOUWEN_AUDIT_SUB_URLS,
# 4 N ipc:// paths, holds at most 2048 bytes) runs N replicas of every service:
#   - routing, escalation, notification and audit split the bus partitions
#     between their replicas (DESIGN.md section 1); replica r
#     publishes on ipc://$SHOUWEN_RUN_DIR/<service>-<r>.pub (replica 1 on
#     <service>.pub, as with one), and each consumer dials the PUB socket of
#     every replica of every service it listens to (its SUB_URLS, unless
#     SHOUWEN_<SERVICE>_SUB_URLS is set);
#   - the intakes answer behind HAProxy (/usr/sbin/haproxy, Debian's
#     package; configuration deploy/lb/haproxy.cfg.in, written out to
#     $SHOUWEN_RUN_DIR/haproxy.cfg), which takes the public address, checks
#     each intake's /readyz and shares the requests out in turn.  With N = 1
#     there is no HAProxy: the intake has the public address itself.
#   Replica 1's files are <service>.pid and log/<service>.log as with one;
#   replica r's are <service>-<r>.pid and log/<service>-<r>.log; HAProxy's
#   haproxy.pid and log/haproxy.log.  The count a stack was started with is
#   kept in $SHOUWEN_RUN_DIR/stack.layout; to change it, stop, then start.
#
# Ports.  All on 127.0.0.1, from one base B = SHOUWEN_STACK_PORT_BASE
# (default 7400), so that a whole stack moves with one setting; replica r
# >= 2 has the block of 20 ports from B + 20 (r - 1):
#
#     port       replica 1 (block B)                  replica r >= 2 (block B + 20 (r - 1))
#     +0         the public API: intake (N = 1),      -
#                or HAProxy (N > 1)
#     +1 .. +5   admin of intake, routing, escalation, notification, audit
#     +6         intake's own HTTP (N > 1 only)       intake's own HTTP
#     +7         HAProxy's statistics (N > 1 only;    -
#                /metrics for Prometheus)
#     +9         the demo's webhook receiver          -
#     +10        intake's REP socket (tcp://)         intake's REP socket (tcp://)
#
# so make run REPLICAS=2 uses 7400-7407, 7409, 7410 and 7420-7426, 7430.
# The settings of one service (SHOUWEN_INTAKE_HTTP_ADDR for the public
# address, SHOUWEN_<SERVICE>_ADMIN_ADDR, SHOUWEN_<SERVICE>_PUB_URL,
# SHOUWEN_INTAKE_REP_ADDR, SHOUWEN_DEMO_RECEIVER_ADDR), when set, win over
# the layout for replica 1 (and the public address); replicas r >= 2
# always follow the layout (an empty SHOUWEN_INTAKE_REP_ADDR, no REP
# socket, holds for every intake).
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export SHOUWEN_RUN_DIR=${SHOUWEN_RUN_DIR:-$top/.run}
run=$SHOUWEN_RUN_DIR
bin=${SHOUWEN_BIN:-$top/build/bin}
haproxy=${SHOUWEN_HAPROXY:-/usr/sbin/haproxy}
services=(intake routing escalation notification audit)
layout_file=$run/stack.layout
block=20 # ports per replica

die2() { echo "stack.sh: $*" >&2; exit 2; }

# The layout: from stack.layout while a stack started with one may still
# run (stop and status must find what start started), else the settings.
replicas=${SHOUWEN_REPLICAS:-1}
base=${SHOUWEN_STACK_PORT_BASE:-7400}
if ! [[ $replicas =~ ^[0-9]{1,2}$ ]] || [ "$replicas" -lt 1 ] || [ "$replicas" -gt 20 ]; then
    die2 "SHOUWEN_REPLICAS: invalid value \"$replicas\": expected an integer from 1 to 20"
fi
if ! [[ $base =~ ^[0-9]{1,5}$ ]] || [ "$base" -lt 1 ] || [ $((base + block * (replicas - 1) + 10)) -gt 65535 ]; then
    die2 "SHOUWEN_STACK_PORT_BASE: invalid value \"$base\": expected a port such that base + $((block * (replicas - 1) + 10)) <= 65535"
fi
rec_replicas="" rec_base=""
if [ -f "$layout_file" ]; then
    rec_replicas=$(sed -n 's/^replicas=\([0-9]*\)$/\1/p' "$layout_file")
    rec_base=$(sed -n 's/^base=\([0-9]*\)$/\1/p' "$layout_file")
fi
if [ "${1:-}" != start ] && [ -n "$rec_replicas" ] && [ -n "$rec_base" ]; then
    replicas=$rec_replicas
    base=$rec_base
fi

receiver_addr=${SHOUWEN_DEMO_RECEIVER_ADDR:-127.0.0.1:$((base + 9))}
if ! [[ $receiver_addr =~ ^[A-Za-z0-9.-]+:[0-9]{1,5}$ ]]; then
    echo "stack.sh: SHOUWEN_DEMO_RECEIVER_ADDR: invalid value \"$receiver_addr\": expected host:port" >&2
    exit 2
fi
public_addr=${SHOUWEN_INTAKE_HTTP_ADDR:-127.0.0.1:$base}
stats_addr=127.0.0.1:$((base + 7))

# offset of a service's admin port in its block
offset() {
    case $1 in
    intake) echo 1 ;; routing) echo 2 ;; escalation) echo 3 ;; notification) echo 4 ;; audit) echo 5 ;;
    esac
}
# first port of replica r's block
block_of() { echo $((base + (block * ($1 - 1)))); }
# the name of replica r of a service: its pid file, log file and status row
rname() { if [ "$2" -eq 1 ]; then echo "$1"; else echo "$1-$2"; fi; }
# NAME -> "service replica" (routing-2 -> routing 2; routing -> routing 1)
split_name() {
    if [[ $1 =~ ^(.*)-([0-9]+)$ ]]; then echo "${BASH_REMATCH[1]} ${BASH_REMATCH[2]}"; else echo "$1 1"; fi
}

# The admin address of replica r (default 1) of a service: replica 1's
# setting if exported, else the layout's.
admin_addr() {
    local r=${2:-1} var="SHOUWEN_${1^^}_ADMIN_ADDR"
    local port=$(($(block_of "$r") + $(offset "$1")))
    if [ "$r" -eq 1 ]; then echo "${!var:-127.0.0.1:$port}"; else echo "127.0.0.1:$port"; fi
}
pub_url() {
    local r=$2 var="SHOUWEN_${1^^}_PUB_URL"
    if [ "$r" -eq 1 ]; then echo "${!var:-ipc://$run/$1.pub}"; else echo "ipc://$run/$1-$r.pub"; fi
}
# intake's own HTTP address (N > 1; with one intake, the public address)
intake_http_addr() {
    if [ "$replicas" -eq 1 ]; then echo "$public_addr"; else echo "127.0.0.1:$(($(block_of "$1") + 6))"; fi
}
intake_rep_addr() {
    if [ "${SHOUWEN_INTAKE_REP_ADDR+set}" = set ] && [ -z "$SHOUWEN_INTAKE_REP_ADDR" ]; then
        echo ""
    elif [ "$1" -eq 1 ]; then
        echo "${SHOUWEN_INTAKE_REP_ADDR:-tcp://127.0.0.1:$((base + 10))}"
    else
        echo "tcp://127.0.0.1:$(($(block_of "$1") + 10))"
    fi
}
# The PUB sockets a consumer dials (its default SUB_URLS, with every replica)
sub_urls() {
    local from s r urls=()
    case $1 in
    routing) from=(intake) ;;
    escalation | notification) from=(intake routing escalation) ;;
    audit) from=(intake routing escalation notification) ;;
    esac
    for s in "${from[@]}"; do
        for r in $(seq 1 "$replicas"); do urls+=("$(pub_url "$s" "$r")"); done
    done
    (IFS=,; echo "${urls[*]}")
}
# The environment of replica r of a service: its addresses
svc_env() {
    local s=$1 r=$2 u=${1^^} var
    echo "SHOUWEN_${u}_ADMIN_ADDR=$(admin_addr "$s" "$r")"
    echo "SHOUWEN_${u}_PUB_URL=$(pub_url "$s" "$r")"
    if [ "$s" = intake ]; then
        echo "SHOUWEN_INTAKE_HTTP_ADDR=$(intake_http_addr "$r")"
        echo "SHOUWEN_INTAKE_REP_ADDR=$(intake_rep_addr "$r")"
    else
        var="SHOUWEN_${u}_SUB_URLS"
        echo "$var=${!var:-$(sub_urls "$s")}"
    fi
}

# every replica name to look after: 1..N of each service, and any other
# whose pid file is there (a stack started with more)
names_of() {
    local s=$1 r f n
    for r in $(seq 1 "$replicas"); do rname "$s" "$r"; done
    for f in "$run/$s"-*.pid; do
        [ -e "$f" ] || continue
        n=$(basename "$f" .pid)
        [[ ${n#"$s"-} =~ ^[0-9]+$ ]] || continue
        [ "${n#"$s"-}" -le "$replicas" ] || echo "$n"
    done | sort -t- -k2,2n -u
}

# pid of a running service replica (or of the receiver, or HAProxy), or nothing
alive() {
    local f=$run/$1.pid pid what
    case $1 in
    receiver) what=deploy/demo/receiver.py ;;
    haproxy) what=$run/haproxy.cfg ;;
    *) what=shouwen-$(split_name "$1" | cut -d' ' -f1) ;;
    esac
    [ -f "$f" ] || return 1
    pid=$(cat "$f")
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null &&
        tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$what" || return 1
    echo "$pid"
}

# HAProxy's view of the intakes: "server status" lines (UP, DOWN, ...)
lb_servers() {
    curl -fsS --max-time 2 "http://$stats_addr/;csv" 2>/dev/null |
        awk -F, '$1 == "intake" && $2 != "BACKEND" && $2 != "FRONTEND" {print $2, $18}'
}

# ready NAME: waits up to 30 s (a loaded machine starts slowly) for its
# /readyz (the receiver: /healthz; HAProxy: every intake UP behind it); on
# failure says so with its last log lines
ready() {
    local url s r
    read -r s r <<<"$(split_name "$1")"
    case $s in
    receiver) url=http://$receiver_addr/healthz ;;
    haproxy) url="" ;;
    *) url=http://$(admin_addr "$s" "$r")/readyz ;;
    esac
    for _ in $(seq 1 300); do
        if ! alive "$1" >/dev/null; then break; fi
        if [ -n "$url" ]; then
            if curl -fsS -o /dev/null "$url" 2>/dev/null; then return 0; fi
        elif [ "$(lb_servers | awk '$2 == "UP"' | wc -l)" -eq "$replicas" ]; then
            return 0
        fi
        sleep 0.1
    done
    echo "$1: did not become ready; last log lines ($run/log/$1.log):" >&2
    tail -n 5 "$run/log/$1.log" >&2
    return 1
}

# the HAProxy configuration: deploy/lb/haproxy.cfg.in with this stack's addresses
lb_config() {
    local r servers="" user="" admin
    for r in $(seq 1 "$replicas"); do
        admin=$(admin_addr intake "$r")
        servers+="    server intake-$r $(intake_http_addr "$r") check addr ${admin%:*} port ${admin##*:}"$'\n'
    done
    # as root, HAProxy drops to its own unprivileged user once its sockets are bound
    if [ "$(id -u)" -eq 0 ]; then
        if id haproxy >/dev/null 2>&1; then user=$'    user haproxy\n    group haproxy'; else user=$'    user nobody\n    group nogroup'; fi
    fi
    awk -v pub="$public_addr" -v stats="$stats_addr" -v servers="${servers%$'\n'}" -v user="$user" '
        $0 == "@SERVERS@" { print servers; next }
        $0 == "@USER@" { if (user != "") print user; next }
        { gsub(/@PUBLIC@/, pub); gsub(/@STATS@/, stats); print }' "$top/deploy/lb/haproxy.cfg.in"
}

# every process start looks after, in start order
wanted() {
    local s r
    echo receiver
    for s in "${services[@]}"; do
        for r in $(seq 1 "$replicas"); do rname "$s" "$r"; done
    done
    [ "$replicas" -eq 1 ] || echo haproxy
}

start() {
    mkdir -p "$run/log"
    local n s r name missing=0 total=0 failed=0 env_
    # a stack started with another count or base still runs: say so, change nothing
    if [ -n "$rec_replicas" ] && { [ "$rec_replicas" != "$replicas" ] || [ "$rec_base" != "$base" ]; }; then
        for n in "$run"/*.pid; do
            [ -e "$n" ] || continue
            n=$(basename "$n" .pid)
            if alive "$n" >/dev/null; then
                echo "stack.sh: a stack with $rec_replicas replica(s) on port base $rec_base runs in $run" \
                    "($n, pid $(alive "$n")); stop it first (make stop) to start $replicas on port base $base" >&2
                return 1
            fi
        done
    fi
    for name in $(wanted); do
        total=$((total + 1))
        alive "$name" >/dev/null || missing=$((missing + 1))
    done
    if [ "$missing" -eq 0 ]; then
        echo "shouwen is already running; nothing changed (make stop, then make run, to restart)"
        status
        return 0
    fi
    # every consumer dials every replica of what it listens to: the list must fit its setting
    for s in routing escalation notification audit; do
        name="SHOUWEN_${s^^}_SUB_URLS"
        n=${!name:-$(sub_urls "$s")}
        if [ ${#n} -gt 2048 ]; then
            echo "stack.sh: $s would dial ${#n} bytes of PUB URLs (SHOUWEN_${s^^}_SUB_URLS holds at most 2048):" \
                "fewer replicas, or a shorter SHOUWEN_RUN_DIR" >&2
            return 1
        fi
    done
    if [ "$replicas" -gt 1 ] && ! [ -x "$haproxy" ]; then
        echo "stack.sh: $haproxy not found: REPLICAS > 1 puts the intakes behind HAProxy (deploy/bootstrap.sh installs it)" >&2
        return 1
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
    printf 'replicas=%s\nbase=%s\n' "$replicas" "$base" >"$layout_file"
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
        for r in $(seq 1 "$replicas"); do
            name=$(rname "$s" "$r")
            if alive "$name" >/dev/null; then
                echo "$name: already running (pid $(alive "$name"))"
                continue
            fi
            mapfile -t env_ < <(svc_env "$s" "$r")
            env "${env_[@]}" nohup "$bin/shouwen-$s" >>"$run/log/$name.log" 2>&1 </dev/null &
            echo $! >"$run/$name.pid"
        done
    done
    if [ "$replicas" -gt 1 ]; then
        if alive haproxy >/dev/null; then
            echo "haproxy: already running (pid $(alive haproxy))"
        else
            lb_config >"$run/haproxy.cfg"
            "$haproxy" -c -q -f "$run/haproxy.cfg" >>"$run/log/haproxy.log" 2>&1 ||
                { echo "stack.sh: HAProxy refused $run/haproxy.cfg:" >&2; tail -n 5 "$run/log/haproxy.log" >&2; return 1; }
            nohup "$haproxy" -db -f "$run/haproxy.cfg" >>"$run/log/haproxy.log" 2>&1 </dev/null &
            echo $! >"$run/haproxy.pid"
        fi
    fi
    for name in $(wanted); do
        ready "$name" || failed=1
    done
    status
    return $failed
}

status() {
    local s r pid name names=() w=13
    "$top/deploy/pg.sh" status || true
    for s in "${services[@]}"; do
        for name in $(names_of "$s"); do
            names+=("$name")
            [ ${#name} -lt $w ] || w=$((${#name} + 1))
        done
    done
    printf "%-${w}s %-8s %-28s %s\n" service pid admin log
    for name in "${names[@]}"; do
        read -r s r <<<"$(split_name "$name")"
        pid=$(alive "$name" || echo "-")
        printf "%-${w}s %-8s %-28s %s\n" "$name" "$pid" "http://$(admin_addr "$s" "$r")" "$run/log/$name.log"
    done
    pid=$(alive receiver || echo "-")
    printf "%-${w}s %-8s %-28s %s\n" receiver "$pid" "http://$receiver_addr" "$run/log/receiver.log"
    if [ "$replicas" -gt 1 ] || [ -e "$run/haproxy.pid" ]; then
        pid=$(alive haproxy || echo "-")
        printf "%-${w}s %-8s %-28s %s\n" haproxy "$pid" "http://$stats_addr" "$run/log/haproxy.log"
        if [ "$pid" != - ]; then
            lb_servers | while read -r name s; do echo "  behind haproxy: $name $s"; done
        fi
    fi
    echo "database: $("$top/deploy/pg.sh" url)   (psql: deploy/pg.sh psql)"
    if [ "$replicas" -gt 1 ]; then
        echo "public API: http://$public_addr/v1/   (HAProxy over $replicas intakes; demo credentials: $run/demo-credentials)"
    else
        echo "public API: http://$public_addr/v1/   (demo credentials: $run/demo-credentials)"
    fi
}

# stop_all NAME...: SIGTERM to each running one, then waits for each (SIGKILL after 5 s)
stop_all() {
    local name pid
    declare -A pids=()
    for name in "$@"; do
        if pid=$(alive "$name"); then
            kill -TERM "$pid" 2>/dev/null || true # it may have just exited
            pids[$name]=$pid
        fi
    done
    for name in "$@"; do
        if [ -n "${pids[$name]:-}" ]; then
            # alive, not kill -0: an exited process stays a zombie until
            # whoever adopted it reaps it, seconds later on some machines
            for _ in $(seq 1 50); do
                alive "$name" >/dev/null || break
                sleep 0.1
            done
            if alive "$name" >/dev/null; then
                echo "$name: did not stop in 5 s, killing" >&2
                kill -KILL "${pids[$name]}" 2>/dev/null || true
            fi
            echo "$name: stopped"
        fi
        rm -f "$run/$name.pid"
    done
}

stop() {
    local s
    # HAProxy first: no new requests for intakes about to stop
    stop_all haproxy
    for s in "${services[@]}"; do
        # shellcheck disable=SC2046
        stop_all $(names_of "$s")
    done
    stop_all receiver
    rm -f "$layout_file"
    "$top/deploy/pg.sh" stop
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status) status ;;
*) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
