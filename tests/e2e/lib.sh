# tests/e2e/lib.sh - the whole stack for the end-to-end tests: sourced after
# `name` is set.  It brings in the integration tests' helpers
# (tests/integration/lib.sh: check, wait_for, q, free_ports, intake_*;
# cases.sh: token_for, register, act, call, expect, contains, received) and adds:
#
#   e2e_setup            private cluster, migrations, demo site, staff e-mail
#                        addresses; the loopback webhook receiver
#                        (tests/notify/receiver.py, its log in $tmp/received.log)
#                        and a real SMTP server (aiosmtpd, Maildir $tmp/mail)
#   svc_start NAME [VAR=value...]   one of the five services, wired to the
#                        others over ipc:// in $tmp, admin on 127.0.0.1
#   svc_stop NAME        SIGTERM, waits; the check "NAME: SIGTERM, exit 0"
#   svc_kill NAME        SIGKILL, waits
#   mails                the messages in the Maildir, one JSON line each
#
# Every service runs as the database's owner except audit, which connects
# as a login role holding only shouwen_service (it may append to the audit
# chain, never change it), as in production.
. "$(dirname "${BASH_SOURCE[0]}")/../integration/lib.sh"
. "$(dirname "${BASH_SOURCE[0]}")/../integration/cases.sh"
tbin=${SHOUWEN_TEST_BIN:-$top/build/tests}

declare -A svc_pid=() svc_admin=()
recv_pid=""
smtp_pid=""
e2e_cleanup() {
    local s
    for s in "${!svc_pid[@]}"; do kill -KILL "${svc_pid[$s]}" 2>/dev/null; done
    for s in "$recv_pid" "$smtp_pid"; do
        [ -z "$s" ] || { kill -KILL "$s" 2>/dev/null; wait "$s" 2>/dev/null; }
    done
    intake_cleanup
}
trap e2e_cleanup EXIT

SECRET="whsec_$(head -c 24 /dev/urandom | base64)"
AKEY="e2e-audit-key-$(hex 24)"

e2e_setup() {
    local ports
    intake_setup
    q "UPDATE core.staff SET email = replace(code, '.', '-') || '@sh01.example' WHERE email IS NULL" >/dev/null
    q "DO \$\$BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'shouwen_audit_e2e') THEN CREATE ROLE shouwen_audit_e2e LOGIN IN ROLE shouwen_service; END IF; END\$\$" >/dev/null
    AUDIT_URL=$(sed 's/user=[^ ]*/user=shouwen_audit_e2e/' <<<"$SHOUWEN_DATABASE_URL")
    ports=$(free_ports 8)
    port=$ports # intake: HTTP and admin
    rport=$((ports + 2))
    sport=$((ports + 3))
    svc_admin=([routing]=127.0.0.1:$((ports + 4)) [escalation]=127.0.0.1:$((ports + 5))
        [notification]=127.0.0.1:$((ports + 6)) [audit]=127.0.0.1:$((ports + 7)))
    hook=http://127.0.0.1:$rport
    /usr/bin/python3 "$top/tests/notify/receiver.py" "$rport" "$tmp/received.log" "$SECRET" 2>"$tmp/receiver.log" &
    recv_pid=$!
    /usr/bin/python3 -m aiosmtpd -n -l "127.0.0.1:$sport" -c aiosmtpd.handlers.Mailbox "$tmp/mail" 2>"$tmp/smtp.log" &
    smtp_pid=$!
    check "webhook receiver and SMTP server up" wait_for 10 python3 -c "
import socket
for p in ($rport, $sport): socket.create_connection(('127.0.0.1', p), 1).close()"
}

# the SUB side of each consumer: every PUB socket whose events it needs
svc_subs() {
    local p=ipc://$tmp
    case $1 in
    routing) echo "$p/intake.pub" ;;
    escalation | notification) echo "$p/intake.pub,$p/routing.pub,$p/escalation.pub" ;;
    audit) echo "$p/intake.pub,$p/routing.pub,$p/escalation.pub,$p/notification.pub" ;;
    esac
}

svc_start() {
    local s=$1 u=${1^^}
    shift
    if [ "$s" = intake ]; then
        intake_start "$@"
        svc_pid[intake]=$intake_pid
        svc_admin[intake]=$admin
        return
    fi
    local extra=()
    case $s in
    escalation) extra=(SHOUWEN_ESCALATION_HORIZON=5s) ;;
    notification) extra=(SHOUWEN_NOTIFICATION_RETRY_BASE=300ms SHOUWEN_NOTIFICATION_RETRY_CAP=3s) ;;
    audit) extra=(SHOUWEN_DATABASE_URL="$AUDIT_URL" SHOUWEN_AUDIT_KEY="$AKEY" SHOUWEN_AUDIT_CHECKPOINT_INTERVAL=1s) ;;
    esac
    env "SHOUWEN_${u}_ADMIN_ADDR=${svc_admin[$s]}" "SHOUWEN_${u}_PUB_URL=ipc://$tmp/$s.pub" \
        "SHOUWEN_${u}_SUB_URLS=$(svc_subs "$s")" "${extra[@]}" "$@" \
        "$bin/shouwen-$s" 2>>"$tmp/$s.log" &
    svc_pid[$s]=$!
    check "$s ready" wait_for 15 curl -fs "http://${svc_admin[$s]}/readyz"
}

svc_stop() {
    local rc
    kill -TERM "${svc_pid[$1]}"
    wait "${svc_pid[$1]}"
    rc=$?
    unset "svc_pid[$1]"
    [ "$1" != intake ] || intake_pid=""
    check "$1: SIGTERM, exit 0" test "$rc" = 0
}

svc_kill() {
    kill -KILL "${svc_pid[$1]}" 2>/dev/null
    wait "${svc_pid[$1]}" 2>/dev/null
    unset "svc_pid[$1]"
    [ "$1" != intake ] || intake_pid=""
}

# metric SERVICE NAME: the sum of that metric's series on the service's /metrics
metric() {
    curl -s "http://${svc_admin[$1]}/metrics" |
        awk -v m="$2" '$1 == m || index($1, m "{") == 1 {s += $2} END {print s + 0}'
}

mails() {
    python3 - "$tmp/mail" <<'PY'
import email.header, json, mailbox, os, sys
if not os.path.isdir(sys.argv[1]):
    sys.exit(0)
for m in mailbox.Maildir(sys.argv[1], create=False):
    subject = str(email.header.make_header(email.header.decode_header(m["Subject"] or "")))
    body = m.get_payload(decode=True)
    if body is None and m.is_multipart():
        body = b"".join(p.get_payload(decode=True) or b"" for p in m.walk() if not p.is_multipart())
    print(json.dumps({"to": m["To"], "subject": subject, "body": (body or b"").decode("utf-8", "replace")}, ensure_ascii=False))
PY
}

# eq WANT command...: the command prints WANT (evaluated anew on each try of wait_for)
eq() { local want=$1; shift; test "$("$@")" = "$want"; }
ge() { local want=$1; shift; test "$("$@")" -ge "$want"; }
