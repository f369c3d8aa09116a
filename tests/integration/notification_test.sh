#!/usr/bin/env bash
# The notification service, real: a private PostgreSQL, the demo site, the
# real shouwen-intake, shouwen-routing and shouwen-notification, a loopback
# HTTP receiver (tests/notify/receiver.py: a webhook endpoint that checks
# Standard Webhooks signatures with Python's own hmac, an SMS gateway, the
# WeCom, DingTalk, Feishu and Slack robots with their signatures) and a real
# SMTP server (Debian's aiosmtpd, writing a Maildir).  A case registered
# over HTTP and transferred by routing reaches the receiving department's
# head on every channel; failures are retried with backoff (503 three
# times, 429 with Retry-After, a hung server cut by the timeout), a final
# 4xx is a dead letter at once, max_attempts bounds the rest; every attempt
# is recorded; rate limits, the daily SMS cap and the host allow-list hold;
# SIGKILL in the middle of a burst and a replay of every event send nothing
# twice that was recorded as sent.
set -uo pipefail

name=notification
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
routing_pid=""
ntf_pid=""
recv_pid=""
smtp_pid=""
tls_pid=""
smtps_pid=""
cleanup() {
    for p in "$routing_pid" "$ntf_pid" "$recv_pid" "$smtp_pid" "$tls_pid" "$smtps_pid"; do
        [ -z "$p" ] || kill -KILL "$p" 2>/dev/null
    done
    intake_cleanup
}
trap cleanup EXIT
. "$(dirname "${BASH_SOURCE[0]}")/cases.sh"

SECRET="whsec_$(head -c 24 /dev/urandom | base64)"
ports=$(free_ports 5)
rport=$ports
sport=$((ports + 1))
radmin=127.0.0.1:$((ports + 2))
nadmin=127.0.0.1:$((ports + 3))
hook=http://127.0.0.1:$rport
eq() { local want=$1; shift; test "$("$@")" = "$want"; }
ge() { local want=$1; shift; test "$("$@")" -ge "$want"; }
dl() { q "SELECT $1 FROM notification.deliveries d JOIN notification.channels c ON c.id = d.channel_id WHERE ${2:-true}"; }
metric() { curl -s "http://$nadmin/metrics" | awk -v m="$1" '$1 == m || index($1, m "{") == 1 {s += $2} END {print s + 0}'; }

routing_start() {
    env SHOUWEN_ROUTING_ADMIN_ADDR="$radmin" SHOUWEN_ROUTING_PUB_URL="ipc://$tmp/routing.pub" \
        SHOUWEN_ROUTING_SUB_URLS="ipc://$tmp/intake.pub" "$bin/shouwen-routing" 2>>"$tmp/routing.log" &
    routing_pid=$!
    check "routing ready" wait_for 10 curl -fs "http://$radmin/readyz"
}
ntf_start() {
    env SHOUWEN_NOTIFICATION_ADMIN_ADDR="$nadmin" SHOUWEN_NOTIFICATION_PUB_URL="ipc://$tmp/notification.pub" \
        SHOUWEN_NOTIFICATION_SUB_URLS="ipc://$tmp/intake.pub,ipc://$tmp/routing.pub" \
        SHOUWEN_NOTIFICATION_RETRY_BASE=300ms SHOUWEN_NOTIFICATION_RETRY_CAP=5s "$@" \
        "$bin/shouwen-notification" 2>>"$tmp/notification.log" &
    ntf_pid=$!
    check "notification ready" wait_for 10 curl -fs "http://$nadmin/readyz"
}
ntf_stop() {
    kill -TERM "$ntf_pid"
    wait "$ntf_pid"
    check "notification: SIGTERM, exit 0" test $? = 0
    ntf_pid=""
}

echo "== setup"
intake_setup
/usr/bin/python3 "$top/tests/notify/receiver.py" "$rport" "$tmp/received.log" "$SECRET" 2>"$tmp/receiver.log" &
recv_pid=$!
/usr/bin/python3 -m aiosmtpd -n -l "127.0.0.1:$sport" -c aiosmtpd.handlers.Mailbox "$tmp/mail" 2>"$tmp/smtp.log" &
smtp_pid=$!
check "receiver and SMTP server up" wait_for 10 python3 -c "
import socket
for p in ($rport, $sport): socket.create_connection(('127.0.0.1', p), 1).close()"

intake_start
MGR=$(token_for qian.mgr)
N=/v1/sites/SH01/notification

echo "== the API: channels, subscriptions, templates, settings; bad ones refused"
channel() { # NAME KIND URL SECRET [SETTINGS-JSON [MORE-MEMBERS]]: adds it through the API
    local sec=null
    [ -z "$4" ] || sec="\"$4\""
    expect 201 "\"name\":\"$1\"" "$(call POST "$MGR" $N/channels "{\"name\":\"$1\",\"kind\":\"$2\",\"url\":\"$3\",\"secret\":$sec,\"settings\":${5:-{\}}${6:+,$6}}")"
}
subscribe() { # EVENT CHANNEL AUDIENCE
    expect 201 "\"audience\":\"$3\"" "$(call POST "$MGR" $N/subscriptions "{\"event_type\":\"$1\",\"channel\":\"$2\",\"audience\":\"$3\"}")"
}
check "webhook channel" channel hook webhook "$hook/hook/ok" "$SECRET"
check "email channel (SMTP relay)" channel mail email "smtp://127.0.0.1:$sport" "" '{"from":"desk@sh01.example"}'
check "SMS gateway" channel sms sms "$hook/sms" "Bearer $SECRET" '{"auth_header":"Authorization"}'
check "WeCom robot" channel wecom wecom "$hook/wecom?key=k1" ""
check "DingTalk robot" channel dingtalk dingtalk "$hook/dingtalk?access_token=t1" "$SECRET"
check "Feishu bot" channel feishu feishu "$hook/feishu" "$SECRET"
check "Slack-compatible webhook, in English" channel slack slack "$hook/slack" "" "" '"locale":"en"'
check "webhook failing 3 times" channel fail3 webhook "$hook/hook/fail3" "$SECRET"
check "webhook with max_attempts 2" channel too-many webhook "$hook/hook/fail3" "$SECRET" "" '"max_attempts":2'
check "webhook answering 429" channel busy webhook "$hook/hook/429" "$SECRET"
check "webhook that hangs, timeout 1 s" channel hang webhook "$hook/hook/hang" "$SECRET" "" '"timeout_ms":1000'
check "webhook answering 400" channel refuse webhook "$hook/hook/400" "$SECRET"
check "webhook for the kill test" channel burst webhook "$hook/hook/burst" "$SECRET"
check "a channel shows no secret and hides its URL's query values" expect 200 '"url":"'"$hook"'/wecom?key=***","has_secret":false' "$(call GET "$MGR" $N/channels/wecom)"
check "... nor a webhook's" expect 200 '"has_secret":true' "$(call GET "$MGR" $N/channels/hook)"
out=$(call GET "$MGR" $N/channels/hook)
check "... (its secret is nowhere in the answer)" test "${out/$SECRET/}" = "$out"
check "refused: a webhook without a Standard Webhooks secret" expect 422 '"field":"secret"' "$(call POST "$MGR" $N/channels '{"name":"x","kind":"webhook","url":"http://127.0.0.1:1/x","secret":"hunter2"}')"
check "refused: an email channel with an http URL and no sender" expect 422 'smtp://host:port' "$(call POST "$MGR" $N/channels '{"name":"x","kind":"email","url":"http://mail.example.org"}')"
check "refused: an unknown kind, a bad name, an unknown member" expect 422 '"field":"kind"' "$(call POST "$MGR" $N/channels '{"name":"Bad Name","kind":"fax","url":"http://x","colour":1}')"
check "refused: an SMS body without {{phone}}" expect 422 'settings.body' "$(call POST "$MGR" $N/channels '{"name":"x","kind":"sms","url":"http://127.0.0.1:1/s","settings":{"body":"{{text}}"}}')"
check "refused: the same name twice" expect 409 'exists already' "$(call POST "$MGR" $N/channels '{"name":"hook","kind":"slack","url":"http://127.0.0.1:1/s"}')"
check "refused: a receptionist changing channels" expect 403 '' "$(call POST "$TOKEN" $N/channels '{"name":"y","kind":"slack","url":"http://127.0.0.1:1/s"}')"
check "refused: a subscription to an unknown event, channel and audience" expect 422 '"field":"event_type"' "$(call POST "$MGR" $N/subscriptions '{"event_type":"case.teleported","channel":"nope","audience":"everyone"}')"
check "refused: telling customers of an event that is not theirs" expect 422 'customers hear of' "$(call POST "$MGR" $N/subscriptions '{"event_type":"case.transferred","channel":"sms","audience":"customer"}')"
check "refused: a template naming an unknown variable" expect 422 'unknown variable {{case_no}}' "$(call PUT "$MGR" $N/templates '{"event_type":"case.transferred","channel_kind":"sms","body":"案件 {{case_no}}"}')"
check "refused: a template that does not parse" expect 422 "'{{' without '}}'" "$(call PUT "$MGR" $N/templates '{"event_type":"case.transferred","body":"案件 {{case_number"}')"
check "a site's own SMS wording, checked and saved" expect 200 '"channel_kind":"sms"' "$(call PUT "$MGR" $N/templates '{"event_type":"case.transferred","channel_kind":"sms","body":"【首问】{{case_number}} 转至{{department}}，请指派。客户 {{customer_phone}}"}')"
check "settings: quiet hours off for this test" expect 200 '"quiet_hours":false' "$(call PATCH "$MGR" $N/settings '{"quiet_hours":false}')"
check "settings: a negative cap refused" expect 422 'sms_daily_cap' "$(call PATCH "$MGR" $N/settings '{"sms_daily_cap":-1}')"
q "UPDATE core.staff SET email = 'zhou@sh01.example' WHERE code = 'zhou.eng'" >/dev/null
for c in hook mail sms wecom dingtalk feishu slack; do check "subscribe $c to transfers" subscribe case.transferred "$c" receiving_head; done
check "subscribe hook itself to transfers" subscribe case.transferred hook channel
for c in fail3 too-many busy hang refuse burst; do check "subscribe $c to registrations" subscribe case.registered "$c" channel; done
check "subscriptions listed" expect 200 '"channel":"burst"' "$(call GET "$MGR" $N/subscriptions)"

routing_start
# Notification's look-up of a batch's cases is planned once and kept: made
# now, on a database of a few cases, it must still probe core.cases by its
# key.  auto_explain logs the plans of the sessions that connect from here
# on (section "notification's kept plans" reads them).
plans_logged on
# analyzed as a new site's table is: on a table the planner knows to be
# small, a sequential scan is the cheaper plan, unless the guards forbid it
q "ANALYZE core.cases" >/dev/null
ntf_start

echo "== a transfer reaches the receiving department's head on every channel"
case1=$(register "$TOKEN" '{"site":"SH01","channel":"phone","type":"repair","urgency":"normal","subject":"3号楼电梯异响","customer":{"name":"张三","phone":"13800001234","address":"3-2-501"}}')
check "a case registered" test -n "$case1"
number=$(q "SELECT number FROM core.cases WHERE id = '$case1'")
check "routing transferred it to engineering" wait_for 10 eq 1 q "SELECT count(*) FROM bus.events WHERE case_id = '$case1' AND type = 'case.transferred'"
check "webhook: one request, signature verified by the receiver" wait_for 10 eq 1 received /hook/ok "r['sig_ok'] and '$number' in r['body']"
body=$(python3 -c "
import json,sys
for l in open('$tmp/received.log'):
    r=json.loads(l)
    if r['path']=='/hook/ok': print(r['body'])" | head -1)
check "webhook: Standard Webhooks payload (type, timestamp, data) naming the head" python3 -c "
import json,sys
b = json.loads(sys.argv[1])
assert b['type'] == 'case.transferred' and b['timestamp'].endswith('Z'), b
d = b['data']
assert d['case_number'] == '$number' and d['recipients'][0]['staff'] == 'zhou.eng', d
assert '转办' in d['title'] and '3号楼电梯异响' in d['text'], d
assert '138****1234' in d['text'] and '13800001234' not in d['text'], 'a group channel sees the phone masked: ' + d['text']
" "$body"
check "email: a real message in the SMTP server's Maildir, UTF-8 subject" wait_for 10 python3 - "$tmp/mail" "$number" <<'PY'
import mailbox, sys, email.header
msgs = list(mailbox.Maildir(sys.argv[1], create=False))
assert len(msgs) == 1, len(msgs)
m = msgs[0]
subject = str(email.header.make_header(email.header.decode_header(m["Subject"])))
assert m["To"] == "zhou@sh01.example" and subject == "转办 " + sys.argv[2], (m["To"], subject)
text = m.get_payload(decode=True).decode("utf-8")
assert "3号楼电梯异响" in text and "13800001234" in text, text  # the head works the case: full number
PY
check "SMS: the gateway got the head's number and the site's own wording, with its auth header" wait_for 10 eq 1 received /sms "r['sig_ok'] and '13900000005' in r['body'] and '【首问】$number' in r['body']"
check "WeCom robot" wait_for 10 eq 1 received /wecom "'@' in r['body'] and '$number' in r['body']"
check "DingTalk robot: signed URL checked by the receiver" wait_for 10 eq 1 received /dingtalk "r['sig_ok']"
check "Feishu robot: signature checked by the receiver" wait_for 10 eq 1 received /feishu "r['sig_ok']"
check "Slack-compatible webhook, in English" wait_for 10 eq 1 received /slack "'Transfer' in r['body'] or 'transferred' in r['body']"
check "every delivery of the transfer recorded delivered, one attempt each" wait_for 10 eq "7 7 7" dl "count(*) FILTER (WHERE d.status = 'delivered') || ' ' || sum(d.attempts) || ' ' || (SELECT count(*) FROM notification.attempts a WHERE a.delivery_id IN (SELECT id FROM notification.deliveries WHERE event_type = 'case.transferred'))" "d.event_type = 'case.transferred'"
check "... and announced: one notification.delivered per delivery" wait_for 5 eq t q "SELECT count(*) >= 7 AND count(*) = (SELECT count(*) FROM notification.deliveries WHERE case_id = '$case1' AND status = 'delivered') FROM bus.events WHERE type = 'notification.delivered' AND case_id = '$case1'"

echo "== notification's kept plans probe core.cases by its key, though made on a few cases"
plans_logged off
# notification's sessions: its consumer's and its sender's (shouwen-notification-sender)
plans_of notification >"$tmp/ntf-plans.log"
# off_key TABLE: how many of the plans' scans of TABLE (read from stdin) are not a
# probe of its primary key by the id (a sequential scan, another index filtered
# on the id, the key's index read whole: each reads every row for every batch)
off_key() {
    awk -v t="$1" 'p != "" {if (p !~ "Index Scan using " t "_pkey on " t || $0 !~ /Index Cond: \(id = /) bad++; p = ""}
        $0 ~ "Scan.* on " t "( |$)" {p = $0} END {print bad + (p != "") + 0}'
}
probes=$(grep -c 'Index Scan using cases_pkey on cases' "$tmp/ntf-plans.log")
check "notification's plans were logged: $probes probes of core.cases by its key" test "$probes" -gt 0
scans=$(off_key cases <"$tmp/ntf-plans.log")
check "... and core.cases was read no other way ($scans)" test "$scans" = 0
# the sender's record of its results: each delivery updated by its key, not
# the batch joined to every pending one
updates=$(grep -c 'Update on deliveries' "$tmp/ntf-plans.log")
check "the sender's updates were logged ($updates)" test "$updates" -gt 0
scans=$(grep -A4 'Update on deliveries' "$tmp/ntf-plans.log" | off_key deliveries)
check "... each found its deliveries by their key (other scans: $scans)" test "$scans" = 0

echo "== retries, backoff, Retry-After, timeouts, dead letters"
# attempts CHANNEL COLUMNS: the attempts of case1's delivery over CHANNEL, in order
attempts() { q "SELECT string_agg($2, ',' ORDER BY a.attempt) FROM notification.attempts a JOIN notification.deliveries d ON d.id = a.delivery_id JOIN notification.channels c ON c.id = d.channel_id WHERE c.name = '$1' AND d.case_id = '$case1'"; }
one() { dl "$1" "c.name = '$2' AND d.case_id = '$case1'"; }
check "503 three times, then delivered" wait_for 15 eq delivered one d.status fail3
mid=$(one d.message_id fail3)
check "... 4 requests, all with the same webhook-id" eq 4 received /hook/fail3 "r['id'] == '$mid'"
check "... 4 attempts recorded (3 retry with 503, then delivered)" eq "retry:503,retry:503,retry:503,delivered:200" attempts fail3 "a.outcome || ':' || a.response_code"
gaps=$(attempts fail3 "(extract(epoch FROM a.started_at) * 1000)::bigint::text")
check "... with growing waits between them (backoff and jitter: base 300 ms)" python3 -c "
t=[int(x) for x in '$gaps'.split(',')]
g=[b - a for a, b in zip(t, t[1:])]
assert len(g) == 3 and 150 <= g[0] <= 400 and 300 <= g[1] <= 700 and 600 <= g[2] <= 1300, g"
check "max_attempts 2: dead after the second 503" wait_for 15 eq "dead 2" one "d.status || ' ' || d.attempts" too-many
check "... the error says why" eq 1 dl "count(*)" "c.name = 'too-many' AND d.case_id = '$case1' AND d.last_error LIKE '%attempt 2 of 2: giving up%'"
check "429 with Retry-After: 2: the retry waits at least 2 s" wait_for 15 eq delivered one d.status busy
check "... (measured between the receiver's two requests)" python3 -c "
import json
t=[json.loads(l)['time'] for l in open('$tmp/received.log') if json.loads(l)['path']=='/hook/429']
assert len(t) == 2 and t[1] - t[0] >= 1.9, t"
check "a hung server: cut at the channel's 1 s timeout, then delivered" wait_for 15 eq delivered one d.status hang
check "... the first attempt recorded as a timeout" eq "retry timed-out 1s,delivered " attempts hang "a.outcome || ' ' || CASE WHEN a.error LIKE '%timed out%' THEN 'timed-out ' || round(a.latency_ms / 1000.0) || 's' ELSE '' END"
check "400: a final answer, dead at once, no retry" wait_for 10 eq "dead 1" one "d.status || ' ' || d.attempts" refuse
check "... the receiver saw it once" eq 1 received /hook/400 "r['id'] == '$(one d.message_id refuse)'"
check "... announced by notification.failed naming the error" wait_for 5 eq 2 q "SELECT count(*) FROM bus.events WHERE type = 'notification.failed' AND case_id = '$case1'"
check "dead letters counted in /metrics" eq 2 metric shouwen_notification_dead_total
did=$(one d.id fail3)
check "the API lists a case's deliveries" expect 200 '"channel":"fail3"' "$(call GET "$MGR" "$N/deliveries?case=$case1&status=delivered")"
check "... and one delivery with every attempt" expect 200 '"outcome":"retry","response_code":503' "$(call GET "$MGR" "$N/deliveries/$did")"
check "... a bad filter refused" expect 422 '"field":"status"' "$(call GET "$MGR" "$N/deliveries?status=lost")"

echo "== rate limit, daily SMS cap, allow-list"
check "rate limit 2/s, burst 1, through the API" expect 200 '"rate_per_s":2,"burst":1' "$(call PATCH "$MGR" $N/channels/hook '{"rate_per_s":2,"burst":1}')"
check "daily SMS cap 2, through the API" expect 200 '"sms_daily_cap":2' "$(call PATCH "$MGR" $N/settings '{"sms_daily_cap":2}')"
for i in 1 2 3 4 5; do
    register "$TOKEN" "{\"site\":\"SH01\",\"channel\":\"phone\",\"type\":\"repair\",\"urgency\":\"normal\",\"subject\":\"漏水 $i\",\"customer\":{\"name\":\"李四\",\"phone\":\"1380000000$i\"}}" >/dev/null
done
check "5 more transfers: 6 webhook requests in all" wait_for 20 eq 6 received /hook/ok
check "... at most 2 a second after the burst of 1 (token bucket)" python3 -c "
import json
t=sorted(json.loads(l)['time'] for l in open('$tmp/received.log') if json.loads(l)['path']=='/hook/ok')[1:]
assert t[-1] - t[0] >= 1.8, t"
check "... rate-limited sends counted" ge 1 metric shouwen_notification_rate_limited_total
check "daily SMS cap 2: the first 2 SMS of the day sent, the rest dead with the reason" wait_for 10 eq "2 4" dl "count(*) FILTER (WHERE d.status = 'delivered') || ' ' || count(*) FILTER (WHERE d.status = 'dead' AND d.last_error LIKE '%daily SMS cap (2)%')" "c.name = 'sms'"
check "... the gateway saw 2" eq 2 received /sms
ntf_stop
ntf_start SHOUWEN_NOTIFICATION_ALLOW_HOSTS=hooks.example.org
case2=$(register "$TOKEN" '{"site":"SH01","channel":"phone","type":"repair","urgency":"normal","subject":"allow-list"}')
check "allow-list: a host not on it gets nothing; the delivery is dead with the reason" wait_for 10 eq 1 dl "count(*)" "d.case_id = '$case2' AND c.name = 'hook' AND d.status = 'dead' AND d.last_error LIKE '%ALLOW_HOSTS%'"
check "... the receiver saw nothing of it" eq 6 received /hook/ok
ntf_stop

echo "== SIGKILL in the middle of a burst, then a replay of every event"
ntf_start
before=$(received /hook/burst)
burst() { # FROM TO: registrations, 10 at a time
    local i jobs=()
    for i in $(seq "$1" "$2"); do
        register "$TOKEN" "{\"site\":\"SH01\",\"channel\":\"web\",\"type\":\"consultation\",\"urgency\":\"normal\",\"subject\":\"burst $i\"}" >/dev/null &
        jobs+=($!)
        if [ ${#jobs[@]} = 10 ]; then wait "${jobs[@]}"; jobs=(); fi
    done
    [ ${#jobs[@]} = 0 ] || wait "${jobs[@]}"
}
burst 1 60
kill -KILL "$ntf_pid"
wait "$ntf_pid" 2>/dev/null
ntf_pid=""
burst 61 150
ntf_start
check "every registration delivered once in the record" wait_for 30 eq $((before + 150)) dl "count(*)" "c.name = 'burst' AND d.status = 'delivered'"
check "... none pending, none dead (but the one the allow-list stopped)" eq "$case2" dl "string_agg(d.case_id::text, ',')" "c.name = 'burst' AND d.status <> 'delivered'"
check "... one delivered attempt each" eq 0 q "SELECT count(*) FROM (SELECT delivery_id FROM notification.attempts WHERE outcome = 'delivered' GROUP BY delivery_id HAVING count(*) > 1) x"
# one snapshot: another channel's delivery (the hung one's retry) may be recorded between two queries
check "... one notification.delivered each" eq t q "SELECT (SELECT count(*) FROM notification.deliveries WHERE status = 'delivered') = (SELECT count(*) FROM bus.events WHERE type = 'notification.delivered')"
check "... the receiver got every webhook-id (a resend after the kill has the same id)" eq $((before + 150)) python3 -c "
import json
print(len({json.loads(l)['id'] for l in open('$tmp/received.log') if json.loads(l)['path']=='/hook/burst'}))"
got=$(received /hook/burst)
ntf_stop
q "DELETE FROM bus.cursors WHERE consumer = 'notification'" >/dev/null
made=$(dl "count(*)")
ntf_start
wanted=$(q "SELECT count(*) FROM bus.events WHERE type LIKE 'case.%' OR type LIKE 'emergency.%' OR type LIKE 'review.%' OR type LIKE 'violation.%'")
check "replay: every event read again from the start ($wanted)" wait_for 30 ge "$wanted" metric shouwen_bus_recovered_total
sleep 1
check "... no new delivery made" eq "$made" dl "count(*)"
check "... nothing sent again" eq "$got" received /hook/burst

echo "== quiet hours: people wait for the next working period; machines and emergencies do not"
# the site works one hour a day, twelve hours from now (site time)
h=$(((10#$(TZ=Asia/Shanghai date +%H) + 12) % 24))
hours=$(printf '%02d:00-%02d:59' "$h" "$h")
check "the site's hours: $hours only" expect 200 "\"hours\":\"$hours\"" "$(call PATCH "$MGR" /v1/sites/SH01/calendar "{\"hours\":\"$hours\"}")"
check "quiet hours on" expect 200 '"quiet_hours":true' "$(call PATCH "$MGR" $N/settings '{"quiet_hours":true}')"
q "UPDATE core.staff SET email = replace(code, '.', '-') || '@sh01.example' WHERE email IS NULL" >/dev/null
mails=$(ls "$tmp/mail/new" | wc -l)
quiet=$(register "$TOKEN" '{"site":"SH01","channel":"phone","type":"repair","urgency":"normal","subject":"quiet hours"}')
loud=$(register "$TOKEN" '{"site":"SH01","channel":"phone","type":"repair","urgency":"emergency","subject":"burst pipe, emergency"}')
# held CASE CHANNEL [EVENT]: "status held later-than-an-hour" of the case's delivery over CHANNEL
held() { dl "d.status || ' ' || d.held || ' ' || (d.next_attempt_at > now() + interval '1 hour')" "d.case_id = '$1' AND c.name = '$2' AND d.event_type = '${3:-case.transferred}'"; }
check "the head's mail about a normal transfer is held for the working period" wait_for 10 eq "pending true true" held "$quiet" mail
check "... and counted" ge 1 metric shouwen_notification_held_total
check "a webhook that is itself the recipient (a machine) is not held" wait_for 10 eq "delivered false false" held "$quiet" burst case.registered
check "an emergency's mail goes at once" wait_for 10 eq "delivered false false" held "$loud" mail
sent=$(dl "count(*)" "d.case_id = '$loud' AND c.name = 'mail' AND d.status = 'delivered'")
check "... at the SMTP server: the emergency's mails, and not the held one" eq $((mails + sent)) bash -c "ls '$tmp/mail/new' | wc -l"

echo "== customers who consented get a receipt; others get nothing"
check "customer notices on, a cap for the day" expect 200 '"customer_notices":true' "$(call PATCH "$MGR" $N/settings '{"customer_notices":true,"sms_daily_cap":100}')"
check "receipts by SMS" subscribe case.registered sms customer
check "receipts by mail" subscribe case.registered mail customer
check "consent without a phone or an e-mail address is refused" expect 422 'customer.consent' "$(call POST "$TOKEN" /v1/cases '{"site":"SH01","channel":"phone","type":"consultation","subject":"x","customer":{"name":"王五","consent":true}}')"
check "the site's own receipt wording for customers' SMS" expect 200 '"audience":"customer"' "$(call PUT "$MGR" $N/templates '{"event_type":"case.registered","channel_kind":"sms","audience":"customer","body":"【首问】{{customer_name}}，您的诉求编号 {{case_number}}"}')"
check "refused: customer wording for an event customers do not hear of" expect 422 'customers hear of' "$(call PUT "$MGR" $N/templates '{"event_type":"case.transferred","audience":"customer","body":"x"}')"
mails=$(ls "$tmp/mail/new" | wc -l)
yes=$(register "$TOKEN" '{"site":"SH01","channel":"phone","type":"consultation","urgency":"normal","subject":"停车卡办理","customer":{"name":"王五","phone":"13700001111","email":"wang@example.org","consent":true}}')
no=$(register "$TOKEN" '{"site":"SH01","channel":"phone","type":"consultation","urgency":"normal","subject":"停车卡办理 2","customer":{"name":"赵六","phone":"13700002222"}}')
check "the case keeps the consent" expect 200 '"consent":true' "$(call GET "$MGR" "/v1/cases/$yes")"
ynum=$(q "SELECT number FROM core.cases WHERE id = '$yes'")
check "an SMS receipt with the case number, to the customer's own number, at once (quiet hours are for staff)" wait_for 10 eq 1 received /sms "'13700001111' in r['body'] and '【首问】王五，您的诉求编号 $ynum' in r['body']"
check "a mail receipt to the customer's address" wait_for 10 eq $((mails + 1)) bash -c "ls '$tmp/mail/new' | wc -l"
check "... addressed to them, in the built-in wording (no template for mail)" bash -c "grep -l '^To: wang@example.org' '$tmp'/mail/new/* >/dev/null"
check "no consent: nothing to the customer" eq 0 dl "count(*)" "d.case_id = '$no' AND d.recipient = 'customer'"
check "... and nothing at the gateway for their number" eq 0 received /sms "'13700002222' in r['body']"

echo "== mail over STARTTLS and over SMTPS, the server's certificate checked"
tport=$(free_ports 2)
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost -keyout "$tmp/smtp.key" -out "$tmp/smtp.crt" 2>/dev/null
/usr/bin/python3 -m aiosmtpd -n -l "localhost:$tport" --tlscert "$tmp/smtp.crt" --tlskey "$tmp/smtp.key" \
    -c aiosmtpd.handlers.Mailbox "$tmp/mail-starttls" 2>"$tmp/smtp-starttls.log" &
tls_pid=$!
/usr/bin/python3 -m aiosmtpd -n -l "localhost:$((tport + 1))" --smtpscert "$tmp/smtp.crt" --smtpskey "$tmp/smtp.key" \
    -c aiosmtpd.handlers.Mailbox "$tmp/mail-smtps" 2>"$tmp/smtp-smtps.log" &
smtps_pid=$!
check "STARTTLS and SMTPS servers up" wait_for 10 python3 -c "
import socket
for p in ($tport, $tport + 1): socket.create_connection(('localhost', p), 1).close()"
check "a STARTTLS channel (the server insists on it)" channel mail-starttls email "smtp://localhost:$tport" "" "{\"from\":\"desk@sh01.example\",\"starttls\":true,\"ca_file\":\"$tmp/smtp.crt\"}"
check "an SMTPS channel" channel mail-smtps email "smtps://localhost:$((tport + 1))" "" "{\"from\":\"desk@sh01.example\",\"ca_file\":\"$tmp/smtp.crt\"}"
check "an SMTPS channel that does not trust the server's certificate" channel mail-untrusted email "smtps://localhost:$((tport + 1))" "" '{"from":"desk@sh01.example"}'
check "quiet hours off again" expect 200 '"quiet_hours":false' "$(call PATCH "$MGR" $N/settings '{"quiet_hours":false}')"
for c in mail-starttls mail-smtps mail-untrusted; do check "the first responder hears of registrations over $c" subscribe case.registered "$c" first_responder; done
tcase=$(register "$TOKEN" '{"site":"SH01","channel":"phone","type":"consultation","urgency":"normal","subject":"加密邮件 TLS mail"}')
tnum=$(q "SELECT number FROM core.cases WHERE id = '$tcase'")
for d in starttls smtps; do
    check "a mail arrived over $d" wait_for 15 python3 - "$tmp/mail-$d" "$tnum" <<'PY'
import mailbox, sys, email.header
msgs = list(mailbox.Maildir(sys.argv[1], create=False))
assert len(msgs) == 1, len(msgs)
subject = str(email.header.make_header(email.header.decode_header(msgs[0]["Subject"])))
assert msgs[0]["To"] == "li-desk@sh01.example" and sys.argv[2] in subject, (msgs[0]["To"], subject)
PY
done
check "... both recorded delivered" wait_for 10 eq 2 dl "count(*)" "d.case_id = '$tcase' AND c.name IN ('mail-starttls', 'mail-smtps') AND d.status = 'delivered'"
check "the untrusted certificate: nothing sent, the attempt says why" wait_for 10 eq 1 dl "count(*)" "d.case_id = '$tcase' AND c.name = 'mail-untrusted' AND d.status <> 'delivered' AND d.attempts >= 1 AND d.last_error ILIKE '%certificate%'"
kill -KILL "$tls_pid" "$smtps_pid" 2>/dev/null
ntf_stop
finish
