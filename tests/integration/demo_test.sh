#!/usr/bin/env bash
# The demo `make run` leaves, as README.md walks through it: deploy/stack.sh
# start (on ports and a run folder of its own) brings up the database, the
# demo site, the five services and the demo's webhook receiver
# (deploy/demo/receiver.py); a case registered with the README's request
# reaches the receiver as a signed webhook, and so does routing's transfer
# of the README's leak, each one line in .run/log/receiver.log with its
# signature checked by the receiver's own code; a request signed wrongly is
# answered 401 and garbage does not stop it; started again (and again after
# a stop, when the demo configuration is loaded anew) the stack keeps one
# channel with the same subscriptions and secret; stop stops the receiver.
set -uo pipefail

name=demo
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cleanup() {
    "$top/deploy/stack.sh" stop >/dev/null 2>&1
    "$top/deploy/pg.sh" stop >/dev/null 2>&1
    [ -n "${KEEP_TMP:-}" ] || rm -rf "$tmp"
}
trap cleanup EXIT

# every port of the stack away from make run's defaults (7400-7410)
ports=$(free_ports 8)
export SHOUWEN_BIN=$bin
export SHOUWEN_INTAKE_HTTP_ADDR=127.0.0.1:$ports
export SHOUWEN_INTAKE_REP_ADDR=tcp://127.0.0.1:$((ports + 6))
export SHOUWEN_DEMO_RECEIVER_ADDR=127.0.0.1:$((ports + 7))
i=0
for s in intake routing escalation notification audit; do
    i=$((i + 1))
    export "SHOUWEN_${s^^}_ADMIN_ADDR=127.0.0.1:$((ports + i))"
done
api=http://$SHOUWEN_INTAKE_HTTP_ADDR/v1
hook=http://$SHOUWEN_DEMO_RECEIVER_ADDR/webhook
rlog=$SHOUWEN_RUN_DIR/log/receiver.log
secret_file=$SHOUWEN_RUN_DIR/demo-receiver.secret
id_of() { sed -n 's/.*"id":"\([^"]*\)".*/\1/p'; }
number_of() { sed -n 's/.*"number":"\([^"]*\)".*/\1/p'; }
logged() { grep -qE -- "$1" "$rlog"; }        # logged ERE: the receiver's log has such a line
http_code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
config() { # the demo channel, its subscriptions and secret, as one line
    q "SELECT count(*) || ' ' || (SELECT count(*) FROM notification.subscriptions b JOIN notification.channels c ON c.id = b.channel_id WHERE c.name = 'demo-receiver') || ' ' || md5(string_agg(secret, '')) FROM notification.channels"
}

echo "== make run's stack, with the demo receiver"
check "stack start brings everything up" "$top/deploy/stack.sh" start
check "the receiver answers" curl -fs "http://$SHOUWEN_DEMO_RECEIVER_ADDR/healthz"
check "status shows it" bash -c "'$top/deploy/stack.sh' status | grep -qE '^receiver +[0-9]+ +http://$SHOUWEN_DEMO_RECEIVER_ADDR'"
check "the channel's secret is kept in the run folder, mode 600" test "$(stat -c %a "$secret_file")" = 600
check "one webhook channel to the receiver, subscribed to registrations and transfers" test \
    "$(q "SELECT c.kind || ' ' || c.url || ' ' || count(*) FILTER (WHERE b.event_type IN ('case.registered', 'case.transferred', 'case.escalated', 'case.deadline_breached')) FROM notification.channels c JOIN notification.subscriptions b ON b.channel_id = c.id GROUP BY c.id")" = "webhook $hook 5"
check "the demo site's quiet hours are off" test "$(q "SELECT quiet_hours FROM notification.site_settings")" = f
. "$SHOUWEN_RUN_DIR/demo-credentials"

echo "== the README's walkthrough, steps 1, 6 and 7"
out=$(curl -s -H "Authorization: Bearer $SHOUWEN_DEMO_API_KEY" -H 'Content-Type: application/json' \
    -d '{"site":"SH01","channel":"phone","type":"complaint","urgency":"normal",
       "subject":"楼上漏水","description":"water through the bathroom ceiling",
       "customer":{"name":"张先生","phone":"13800001234","unit":"3栋","address":"3-2-501"},
       "first_responder":"li.desk","external_ref":"hotline-0001"}' "$api/cases")
id=$(id_of <<<"$out")
number=$(number_of <<<"$out")
check "step 1: the complaint is registered" test -n "$id" -a -n "$number"
check "... the receiver logged its registration, signature ok" \
    wait_for 10 logged "signature ok +msg_[0-9a-f]+ +case\.registered +$number +.*楼上漏水"
leak=$(curl -s -H "Authorization: Bearer $SHOUWEN_DEMO_API_KEY" -H 'Content-Type: application/json' \
    -d '{"site":"SH01","channel":"hotline","type":"help","subject":"厨房水管漏水","external_ref":"hotline-0002"}' \
    "$api/cases" | number_of)
check "step 6: the leak is registered" test -n "$leak"
check "... routed to engineering, and the receiver logged the transfer for its head" \
    wait_for 10 logged "signature ok +msg_[0-9a-f]+ +case\.transferred +$leak +for zhou\.eng +.*water and pipes"
delivered() { # delivered WANT: "first-attempt deliveries/all" of the case events is WANT
    test "$(q "SELECT count(*) FILTER (WHERE status = 'delivered' AND attempts = 1) || '/' || count(*) FROM notification.deliveries WHERE event_type LIKE 'case.%'")" = "$1"
}
check "... every delivery recorded delivered at the first attempt" wait_for 5 delivered 3/3
check "no line says BAD" bash -c "! grep -q 'signature BAD' '$rlog'"

echo "== the receiver checks signatures and survives garbage"
ts=$(date +%s)
check "a wrong signature: 401" test "$(http_code -H 'webhook-id: msg_x' -H "webhook-timestamp: $ts" \
    -H 'webhook-signature: v1,AAAA' -d '{"type":"case.registered"}' "$hook")" = 401
check "... logged as BAD, with the reason" logged "signature BAD \(no v1 signature matches the secret\) +msg_x"
check "no headers, not JSON: 401" test "$(http_code -d 'not json' "$hook")" = 401
check "... logged" logged "signature BAD \(no webhook-id, webhook-timestamp, webhook-signature header\) .*\(not JSON: 8 bytes\)"
check "a Content-Length beyond 1 MiB: 413" test "$(http_code -X POST -H 'Content-Length: 9999999999' "$hook")" = 413
check "no Content-Length: 411" test "$(http_code -H 'Transfer-Encoding: chunked' -d x "$hook")" = 411
# right signature (Python's hmac, as Standard Webhooks defines it), a body that is not JSON
check "a signed body that is not JSON: 200, logged as such" python3 - "$hook" "$secret_file" <<'PY'
import base64, hashlib, hmac, sys, time, urllib.request
url, path = sys.argv[1], sys.argv[2]
key = base64.b64decode(open(path).read().strip()[len("whsec_"):])
ts, body = str(int(time.time())), b"[1, 2"
sig = base64.b64encode(hmac.new(key, b"msg_y." + ts.encode() + b"." + body, hashlib.sha256).digest()).decode()
req = urllib.request.Request(url, body, {"webhook-id": "msg_y", "webhook-timestamp": ts,
                                        "webhook-signature": "v1,bad v1," + sig})
assert urllib.request.urlopen(req, timeout=5).status == 200
PY
check "... (the line)" logged "signature ok +msg_y +- +- +\(not JSON: 5 bytes\)"
check "the receiver still answers" curl -fs "http://$SHOUWEN_DEMO_RECEIVER_ADDR/healthz"

echo "== started twice, and again after a stop: one channel"
before=$(config)
pids=$(cat "$SHOUWEN_RUN_DIR"/*.pid | tr '\n' ' ')
out=$("$top/deploy/stack.sh" start 2>&1)
check "second start says so" grep -q 'already running; nothing changed' <<<"$out"
check "... and changed nothing, the receiver included" test "$pids" = "$(cat "$SHOUWEN_RUN_DIR"/*.pid | tr '\n' ' ')"
check "stack stop" "$top/deploy/stack.sh" stop
check "the receiver no longer answers" bash -c "! curl -fs 'http://$SHOUWEN_DEMO_RECEIVER_ADDR/healthz'"
check "... its pid file is gone" test ! -e "$SHOUWEN_RUN_DIR/receiver.pid"
check "stack start again (the demo configuration loaded anew)" "$top/deploy/stack.sh" start
check "one channel, the same subscriptions and secret" test "$(config)" = "$before"
out=$(curl -s -H "Authorization: Bearer $SHOUWEN_DEMO_API_KEY" -H 'Content-Type: application/json' \
    -d '{"site":"SH01","channel":"hotline","type":"help","subject":"3栋楼道噪音"}' "$api/cases")
n3=$(number_of <<<"$out")
check "a case registered after the restart reaches the restarted receiver, signature ok" \
    wait_for 10 logged "signature ok +msg_[0-9a-f]+ +case\.transferred +$n3 +for zheng\.sec"

finish
