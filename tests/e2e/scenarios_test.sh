#!/usr/bin/env bash
# The stories of DOMAIN.md end to end, through the public interfaces only
# (HTTP with staff tokens and an API key, nng REQ), with all five real
# services, a real PostgreSQL, a loopback webhook receiver that checks every
# signature and a real SMTP server.  The test site's ladder is scaled to
# seconds for complaints and emergencies (every other clock keeps its
# default and so never runs out here).  Each step is checked where a person
# or an auditor would look: the case (owner, department, status), its
# signed history, its deadlines, the violations, what reached the webhook
# and the mailboxes, the audit chain.  At the end the chain verifies and the
# QA report of the day shows exactly the figures these stories imply.
set -uo pipefail

name=e2e-scenarios
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# where ID: "status owner department escalation-level", read through the API
where() {
    curl -s -H "Authorization: Bearer $MGR" "$api/v1/cases/$1" | python3 -c '
import json, sys
c = json.load(sys.stdin)
print(c["status"], c.get("owner") or "-", c.get("department") or "-", c.get("escalation_level") or "-")'
}
is_at() { test "$(where "$1")" = "$2"; }
field() { where "$2" | cut -d' ' -f"$1"; } # field N ID: that word of where
status_of() { field 1 "$1"; }
satisfaction_of() { q "SELECT coalesce(satisfaction, '-') FROM core.cases WHERE id = '$1'"; }
# both COMMAND...: each argument a command line of this shell; prints their outputs on one line
both() { local c out=(); for c in "$@"; do out+=("$(eval "$c")"); done; echo "${out[*]}"; }
# hist ID: the case's history as the API gives it
hist() { curl -s -H "Authorization: Bearer $MGR" "$api/v1/cases/$1/history"; }
# due ID CLOCK: "running", "met", "breached", "paused" or "none" for that clock of the case
due() {
    q "SELECT coalesce((SELECT CASE WHEN breached_at IS NOT NULL THEN 'breached' WHEN met_at IS NOT NULL THEN 'met' WHEN due_at IS NULL THEN 'paused' ELSE 'running' END FROM escalation.deadlines WHERE case_id = '$1' AND kind = '$2' ORDER BY started_at DESC LIMIT 1), 'none')"
}
# clocks ID CLOCK...: the state of each
clocks() { local id=$1 k out=(); shift; for k in "$@"; do out+=("$(due "$id" "$k")"); done; echo "${out[*]}"; }
running() { q "SELECT count(*) FROM escalation.deadlines WHERE case_id = '$1' AND met_at IS NULL AND breached_at IS NULL"; }
violations() { q "SELECT count(*) || ' ' || coalesce(string_agg(v.kind || ':' || s.code, ','), '-') FROM escalation.violations v LEFT JOIN core.staff s ON s.id = v.staff_id WHERE v.case_id = '$1'"; }
# hook TYPE NUMBER: webhook requests of that event type about that case, signature good
hook() { received /hook/ok "r['sig_ok'] and json.loads(r['body'])['type'] == '$1' and json.loads(r['body'])['data'].get('case_number') == '$2'"; }
# mail_to WHO TEXT: messages to WHO's address whose subject or body holds TEXT
mail_to() { mails | python3 -c "
import json, sys
print(sum(1 for l in sys.stdin if json.loads(l)['to'] == '$1@sh01.example'.replace('.', '-', 1) and ('$2' in json.loads(l)['subject'] or '$2' in json.loads(l)['body'])))"; }
number_of() { q "SELECT number FROM core.cases WHERE id = '$1'"; }
# act_as AUTH ID COMMAND JSON: act, retried while a service's step races it (412)
act_as() {
    local s i
    for i in 1 2 3 4 5; do
        s=$(act "$@")
        [ "$s" = 412 ] || break
        sleep 0.2
    done
    echo "$s"
}
# acted STATUS AUTH ID COMMAND JSON: the command answers STATUS (else says what it answered)
acted() {
    local want=$1 got
    shift
    got=$(act_as "$@")
    [ "$got" = "$want" ] || { echo "$3: $got $(cat "$tmp/act.out")"; return 1; }
}
echo "== setup: the stack"
e2e_setup
DESK=$TOKEN # li.desk, receptionist, first responder at the front desk
MGR=$(token_for qian.mgr)
SUP=$(token_for sun.sup)
ENG=$(token_for zhou.eng)
WU=$(token_for wu.tech)
SEC=$(token_for zheng.sec)
FIN=$(token_for chu.fin)
QA=$(token_for wei.qa)
q "INSERT INTO core.site_penalty_points (site_id, kind, points) SELECT id, 'late_first_contact', 3 FROM core.sites WHERE code = 'SH01'" >/dev/null
svc_start intake
svc_start routing
svc_start escalation
svc_start notification
svc_start audit
N=/v1/sites/SH01/notification

echo "== setup: the site, through the API"
check "complaints' ladder in seconds: first contact 3 s, supervisor 15 s, manager 60 s; emergencies acknowledged in 5 s" \
    expect 200 '"limits"' "$(call PUT "$MGR" /v1/sites/SH01/limits '{"limits":[
 {"clock":"first_contact","amount":"3s","basis":"calendar","case_type":"complaint"},
 {"clock":"supervisor","amount":"15s","basis":"calendar","case_type":"complaint"},
 {"clock":"manager","amount":"60s","basis":"calendar","case_type":"complaint"},
 {"clock":"emergency_ack","amount":"5s","basis":"calendar"}]}')"
channel() { # NAME KIND URL SECRET [SETTINGS-JSON]
    local sec=null
    [ -z "$4" ] || sec="\"$4\""
    expect 201 "\"name\":\"$1\"" "$(call POST "$MGR" $N/channels "{\"name\":\"$1\",\"kind\":\"$2\",\"url\":\"$3\",\"secret\":$sec,\"settings\":${5:-{\}}}")"
}
subscribe() { expect 201 "\"audience\":\"$3\"" "$(call POST "$MGR" $N/subscriptions "{\"event_type\":\"$1\",\"channel\":\"$2\",\"audience\":\"$3\"}")"; }
check "a webhook channel to the loopback receiver" channel hook webhook "$hook/hook/ok" "$SECRET"
check "a mail channel to the SMTP server" channel mail email "smtp://127.0.0.1:$sport" "" '{"from":"desk@sh01.example"}'
check "quiet hours off (mail at any hour of the test)" expect 200 '"quiet_hours":false' "$(call PATCH "$MGR" $N/settings '{"quiet_hours":false}')"
for e in case.registered case.transferred case.returned case.lead_designated case.escalated \
    case.deadline_breached emergency.alerted case.resolved case.callback case.closed_unresolvable \
    case.leader_callback_requested; do
    check "webhook subscribed to $e" subscribe "$e" hook channel
done
check "mail: transfers to the receiving head" subscribe case.transferred mail receiving_head
check "mail: complaint transfers to QA" subscribe case.transferred mail qa
check "mail: a lead designated to every department's head" subscribe case.lead_designated mail receiving_head
check "mail: a breach to whoever held the case" subscribe case.deadline_breached mail owner
check "mail: an escalation to whoever now holds the case" subscribe case.escalated mail owner
check "mail: emergency alerts up the ladder" subscribe emergency.alerted mail ladder
check "mail: a leader's call-back request to that leader" subscribe case.leader_callback_requested mail leader

echo "== 1. a phone complaint at the front desk"
c1=$(register "$DESK" '{"site":"SH01","channel":"phone","type":"complaint","urgency":"normal","subject":"楼上漏水三天没人管","description":"water through the bathroom ceiling","customer":{"name":"张先生","phone":"13800001234","unit":"3栋","address":"3-2-501"}}')
n1=$(number_of "$c1")
check "li.desk registers it: she is its first responder and holds it" wait_for 10 is_at "$c1" "registered li.desk front-desk none"
check "... its handoff clock runs" wait_for 10 eq running due "$c1" handoff
check "... the webhook hears of it" wait_for 10 eq 1 hook case.registered "$n1"
check "li.desk transfers it to engineering" acted 200 "$DESK" "$c1" transfer '{"to_department":"engineering","reason":"漏水: engineering fixes pipes","slip_number":"ZB-0001"}'
check "... the head of engineering holds it" wait_for 10 is_at "$c1" "transferred zhou.eng engineering none"
check "zhou.eng appoints wu.tech at once" acted 200 "$ENG" "$c1" accept '{"handler":"wu.tech"}'
check "... wu.tech holds it" wait_for 10 is_at "$c1" "accepted wu.tech engineering none"
check "... the handoffs are signed and timed in the history: by whom, to whom, when, why" python3 - "$(hist "$c1")" <<'PY'
import json, sys
h = json.loads(sys.argv[1])["handoffs"]
assert [x["kind"] for x in h] == ["transfer", "accept"], h
t, a = h
assert t["by"] == "li.desk" and t["from_staff"] == "li.desk" and t["to_department"] == "engineering", t
assert t["reason"].startswith("漏水") and t["at"] and t["event_id"], t
assert a["by"] == "zhou.eng" and a["to_staff"] == "wu.tech" and a["at"] >= t["at"], a
PY
check "... the handoff and appointment clocks met, the first-contact clock runs" wait_for 10 eq "met met running" clocks "$c1" handoff appoint first_contact
check "... the webhook hears of the transfer" wait_for 10 eq 1 hook case.transferred "$n1"
check "... the head of engineering gets a mail" wait_for 10 eq 1 mail_to zhou.eng "$n1"
check "... QA gets a copy of the complaint's transfer" wait_for 10 eq 1 mail_to wei.qa "$n1"
check "... no first contact in 3 s: breached" wait_for 10 eq breached due "$c1" first_contact
check "... a late_first_contact violation against wu.tech, once" wait_for 10 eq "1 late_first_contact:wu.tech" violations "$c1"
check "... the breach reaches the webhook and wu.tech's mailbox" wait_for 10 eq "1 1" both "hook case.deadline_breached $n1" "mail_to wu.tech $n1"
check "wu.tech calls the customer, late" acted 200 "$WU" "$c1" first_contact '{"note":"已联系张先生, 下午上门"}'
check "... in progress" wait_for 10 eq in_progress status_of "$c1"
check "open 15 s: the supervisor takes it over" wait_for 20 eq "sun.sup supervisor" both "field 2 $c1" "field 4 $c1"
check "... signed by the escalation service in the history" python3 - "$(hist "$c1")" <<'PY'
import json, sys
h = json.loads(sys.argv[1])
e = [x for x in h["handoffs"] if x["kind"] == "escalate"]
assert len(e) == 1 and e[0].get("by_system") == "escalation" and e[0]["to_staff"] == "sun.sup", h["handoffs"]
PY
check "... sun.sup is told" wait_for 10 ge 1 mail_to sun.sup "$n1"
check "sun.sup resolves it" acted 200 "$SUP" "$c1" resolve '{"result":"楼上住户水管已修好"}'
check "... resolved; the callback clock runs" wait_for 10 eq "resolved running" both "status_of $c1" "clocks $c1 callback"
check "li.desk calls the customer back: satisfied, closed" acted 200 "$DESK" "$c1" callback '{"satisfaction":"satisfied","note":"张先生满意"}'
check "... closed, satisfaction recorded, the callback clock met" wait_for 10 eq "closed satisfied met" both "status_of $c1" "satisfaction_of $c1" "clocks $c1 callback"
check "... still one violation, one supervisor step" test "$(violations "$c1") $(q "SELECT count(*) FROM bus.events WHERE case_id = '$c1' AND type = 'case.escalated'")" = "1 late_first_contact:wu.tech 1"

echo "== 2. a consultation answered on the spot"
c2=$(register "$DESK" '{"site":"SH01","channel":"visit","type":"consultation","subject":"物业费怎么交","customer":{"name":"王女士","phone":"13800002222","address":"1-1-101"}}')
check "li.desk answers it on the spot" acted 200 "$DESK" "$c2" resolve_on_spot '{"result":"已告知缴费方式"}'
check "... closed at once, with no clock left running" wait_for 10 eq "closed 0" both "status_of $c2" "running $c2"

echo "== 3. a transfer returned and re-routed, then a loop caught"
c3=$(register "$KEY" '{"site":"SH01","channel":"hotline","type":"help","subject":"楼上漏水 还有噪音","external_ref":"hotline-e2e-3"}')
n3=$(number_of "$c3")
check "a leak and noise from the hotline: routed to engineering (the first rule)" wait_for 10 is_at "$c3" "transferred zhou.eng engineering none"
check "... routing's handoff names the rule" contains 'rule \"water and pipes\"' "$(hist "$c3")"
check "engineering returns it with a written reason" acted 200 "$ENG" "$c3" return '{"reason":"噪音不归工程部"}'
check "... re-routed to the next match that has not returned it: security" wait_for 10 is_at "$c3" "transferred zheng.sec security none"
check "... the webhook heard the return" wait_for 10 eq 1 hook case.returned "$n3"
check "security forwards it to finance" acted 200 "$SEC" "$c3" forward '{"to_department":"finance","reason":"其实是收费问题"}'
check "finance returns it" acted 200 "$FIN" "$c3" return '{"reason":"不是收费问题"}'
check "... it would go back to security: a loop, the supervisor takes it" wait_for 10 is_at "$c3" "assigned sun.sup front-desk none"
check "... flagged for QA in the history" contains 'flagged for QA' "$(hist "$c3")"

echo "== 4. a multi-department case with a lead department"
c4=$(register "$DESK" '{"site":"SH01","channel":"visit","type":"help","subject":"5号楼停电","customer":{"name":"刘女士","phone":"13800005678","address":"5-1-302"}}')
n4=$(number_of "$c4")
check "outside the front desk's scope, no rule matches: the supervisor" wait_for 10 is_at "$c4" "assigned sun.sup front-desk none"
check "sun.sup designates engineering to lead, security and cleaning to assist" acted 200 "$SUP" "$c4" designate_lead '{"lead_department":"engineering","assisting_departments":["security","cleaning"],"reason":"停电: 工程部主办"}'
check "... engineering holds it" wait_for 10 eq "engineering" field 3 "$c4"
check "... every department's head is told: engineering, security, cleaning" wait_for 10 eq "1 1 1" both "mail_to zhou.eng $n4" "mail_to zheng.sec $n4" "mail_to feng.clean $n4"

echo "== 5. an emergency climbs the ladder until acknowledged"
c5=$(register "$KEY" '{"site":"SH01","channel":"device","type":"emergency","urgency":"emergency","subject":"3号楼烟感报警","external_ref":"smoke-e2e-5"}')
n5=$(number_of "$c5")
check "a smoke alarm from a device: security leads" wait_for 10 is_at "$c5" "transferred zheng.sec security none"
check "... alerted at once: the webhook and someone's mailbox" wait_for 10 eq 1 hook emergency.alerted "$n5"
check "... not acknowledged in 5 s: up to the supervisor" wait_for 10 eq supervisor field 4 "$c5"
check "... sun.sup alerted by mail" wait_for 10 ge 1 mail_to sun.sup "$n5"
check "... then the manager" wait_for 10 eq manager field 4 "$c5"
check "... qian.mgr alerted by mail" wait_for 10 ge 1 mail_to qian.mgr "$n5"
check "zheng.sec acknowledges" acted 200 "$SEC" "$c5" acknowledge_emergency "{\"alert_id\":\"$c5\"}"
alerts=$(hook emergency.alerted "$n5")
sleep 6
check "... the alert stops climbing ($alerts alerts)" test "$(field 4 "$c5") $(hook emergency.alerted "$n5")" = "manager $alerts"

echo "== 6. an external system over HTTP, a site over nng REQ"
body='{"site":"SH01","channel":"api","type":"consultation","subject":"请问怎么去地铁站","customer":{"name":"赵先生","phone":"13800006666"},"external_ref":"app-e2e-6"}'
out=$(call POST "$KEY" /v1/cases "$body")
check "the app submits with its API key: 201" expect 201 '"number":"SH01-' "$out"
c6=$(sed -n 's/.*"id":"\([^"]*\)".*/\1/p' <<<"$out")
check "... the same external_ref again: 200, the same case" expect 200 "\"id\":\"$c6\"" "$(call POST "$KEY" /v1/cases "$body")"
check "... the same external_ref with another body: 409" expect 409 '' "$(call POST "$KEY" /v1/cases "${body/地铁站/火车站}")"
check "... one case, one registration event" test "$(q "SELECT count(*) FROM core.cases WHERE external_ref = 'app-e2e-6'") $(q "SELECT count(*) FROM bus.events WHERE case_id = '$c6' AND type = 'case.registered'")" = "1 1"
out=$("$tbin/rep_client" --url "ipc://$tmp/intake.rep" --timeout 10000 --key "$KEY" --site SH01 --channel device \
    --type repair --subject "2号楼电梯异响" --external-ref "site-e2e-7")
check "a site submits over nng REQ: a case number back" contains '"number":"SH01-' "$out"
c7=$(sed -n 's/.*"case_id":"\([^"]*\)".*/\1/p' <<<"$out")
check "... the same again: the same case, a duplicate" contains "\"case_id\":\"$c7\"" "$("$tbin/rep_client" --url "ipc://$tmp/intake.rep" --timeout 10000 --key "$KEY" --site SH01 --channel device --type repair --subject "2号楼电梯异响" --external-ref "site-e2e-7")"
check "... routed like any other: a repair to engineering" wait_for 10 is_at "$c7" "transferred zhou.eng engineering none"

echo "== 7. the manager closes a case as unresolvable"
c8=$(register "$KEY" '{"site":"SH01","channel":"hotline","type":"help","subject":"要求开发商赔偿房屋质量问题","external_ref":"hotline-e2e-8"}')
n8=$(number_of "$c8")
check "no rule matches: the supervisor" wait_for 10 is_at "$c8" "assigned sun.sup front-desk none"
check "the supervisor may not close it as unresolvable: 403" acted 403 "$SUP" "$c8" close_unresolvable '{"reason":"x"}'
check "the manager closes it, with the reason" acted 200 "$MGR" "$c8" close_unresolvable '{"reason":"属开发商保修责任，已告知业主投诉渠道"}'
check "... closed as unresolvable" wait_for 10 eq "closed_unresolvable" status_of "$c8"
check "... the webhook hears of it" wait_for 10 eq 1 hook case.closed_unresolvable "$n8"

echo "== 8. a customer asks for a leader"
c9=$(register "$DESK" '{"site":"SH01","channel":"phone","type":"help","subject":"要求总经理回电","customer":{"name":"孙先生","phone":"13800009999","address":"6-2-201"}}')
n9=$(number_of "$c9")
check "li.desk asks the general manager to call back" acted 200 "$DESK" "$c9" request_leader_callback '{"leader":"zhao.gm","reason":"业主要求总经理回电","callback_phone":"13800009999"}'
check "... the request reaches zhao.gm (his own mailbox)" wait_for 10 eq 1 mail_to zhao.gm "$n9"
check "... and the webhook, naming the customer's number to call" wait_for 10 eq 1 hook case.leader_callback_requested "$n9"
# leaked_mails: mails that hold the leader's number, or his address other than as their recipient
leaked_mails() {
    mails | python3 -c "
import json, sys
print(sum(1 for l in sys.stdin if '$leader_phone' in l or '$leader_mail' in json.loads(l)['body'] or ('$leader_mail' in l and json.loads(l)['to'] != '$leader_mail')))"
}
leader_phone=$(q "SELECT phone FROM core.staff WHERE code = 'zhao.gm'")
leader_mail=$(q "SELECT email FROM core.staff WHERE code = 'zhao.gm'")
answers=$(for c in "$c1" "$c3" "$c4" "$c9"; do hist "$c"; curl -s -H "Authorization: Bearer $MGR" "$api/v1/cases/$c"; done
    curl -s -H "Authorization: Bearer $MGR" "$api/v1/cases?limit=200"
    curl -s -H "Authorization: Bearer $MGR" "$api/v1/sites/SH01/staff"
    curl -s -H "Authorization: Bearer $MGR" "$api/v1/sites/SH01/staff/zhao.gm"
    curl -s -H "Authorization: Bearer $MGR" "$api/v1/sites/SH01/reports/reception-log")
check "the leader's number and address appear in no API answer (history, case, list, directory, reception log)" \
    bash -c "! grep -qF -e '$leader_phone' -e '$leader_mail' <<<\"\$1\"" _ "$answers"
check "... nor in any webhook body" bash -c "! grep -qF -e '$leader_phone' -e '$leader_mail' '$tmp/received.log'"
check "... nor in any mail but the one addressed to him, whose text holds neither" eq 0 leaked_mails
check "... nor in any service's log" bash -c "! grep -qF -e '$leader_phone' -e '$leader_mail' '$tmp'/*.log"

echo "== the audit chain and the QA report"
n_cases=0
for c in "$c1" "$c2" "$c3" "$c4" "$c5" "$c6" "$c7" "$c8" "$c9"; do [ -z "$c" ] || n_cases=$((n_cases + 1)); done
check "nine cases registered by the stories, and no other ($n_cases)" test "$n_cases $(q "SELECT count(*) FROM core.cases")" = "9 9"
events=$(q "SELECT count(*) FROM bus.events")
check "every event on the bus chained once ($events)" wait_for 30 eq "$events $events" q "SELECT count(*) || ' ' || count(DISTINCT event_id) FROM audit.log"
check "... the roll-up has every case ($n_cases)" wait_for 10 eq "$n_cases" q "SELECT count(*) FROM audit.case_facts"
check "shouwen-audit verify: the chain and its signed checkpoints verify" wait_for 10 bash -c \
    "SHOUWEN_DATABASE_URL='$AUDIT_URL' SHOUWEN_AUDIT_KEY='$AKEY' '$bin/shouwen-audit' verify SH01 | grep -q 'chain verified'"
check "... and through the API" expect 200 '"ok":true' "$(call POST "$QA" /v1/sites/SH01/audit/verify)"
day=$(TZ=Asia/Shanghai date +%F)
report=$(call GET "$QA" "/v1/sites/SH01/reports/qa?from=$day&to=$day")
check "the QA report of the day: 200" expect 200 '"site" : "SH01"' "$report"
echo "$report" >"$tmp/report.json"
# what the stories imply, case by case:
#   1 complaint  transferred once, answered late (first contact breached), resolved by the
#                supervisor after one rung, called back satisfied
#   2 consultation resolved on the spot
#   3 help       engineering, returned, security, forwarded to finance, returned, loop:
#                3 transfers, 2 returns, still open with the supervisor
#   4 help       assigned to the supervisor, lead designated; open
#   5 emergency  transferred to security, alerted up two rungs; open
#   6 consultation from the app, assigned to the supervisor; open
#   7 repair     from a site over nng, transferred to engineering; open
#   8 help       assigned to the supervisor, closed as unresolvable by the manager
#   9 help       a leader's call-back asked for; open
check "... exactly the figures the stories imply" python3 - "$tmp/report.json" "$n_cases" <<'PY'
import json, sys
r = json.loads(open(sys.argv[1]).read().split(" ", 1)[1])
n = int(sys.argv[2])
want = {
    "cases": 9,
    "by_type": {"complaint": 1, "consultation": 2, "emergency": 1, "help": 4, "repair": 1},
    "outcomes": {"resolved": 2, "unresolvable": 1, "referred_out": 0, "open": 6},
    "first_contact_resolution": {"cases": 1, "rate": round(1 / 9, 4)},
    "satisfaction": {"satisfied": 1, "basically_satisfied": 0, "unsatisfied": 0, "unreachable": 0},
    "escalations": {"supervisor": 2, "manager": 1, "leader": 0},
    "by_channel": {"api": 1, "device": 2, "hotline": 2, "phone": 2, "visit": 2},
    "handoff_within_limit": {"handoffs": 8, "in_time": 8, "rate": 1},
    "resolution_within_limit": {"resolved_in_time": 2, "rate": 1},
    "violations": {"count": 1, "points": 3, "by_kind": {"late_first_contact": 1}},
    "violations_by_person": [{"staff": "wu.tech", "department": "engineering", "count": 1, "points": 3}],
    "conflict_escalations": {},
}
bad = []
assert n == 9, "the test registered %d cases, not 9" % n
for k, v in want.items():
    if r.get(k) != v:
        bad.append("%s: want %s, got %s" % (k, v, r.get(k)))
t = r["transfers"]
for k, v in {"total": 6, "none": 5, "one": 3, "two": 0, "three_or_more": 1, "returns": 2, "bounced_cases": 1}.items():
    if t.get(k) != v:
        bad.append("transfers.%s: want %s, got %s" % (k, v, t.get(k)))
# answered: on the spot (2), first contact none, resolved (1, but late), referred none
a = r["answer_within_limit"]
if a["answered_in_time"] != 1:
    bad.append("answer_within_limit: want 1 in time (the case answered on the spot), got %s" % a)
rate = r["hotline_rates"]
if rate["response_rate"] != round(2 / 9, 4) or rate["resolution_rate"] != round(2 / 9, 4) or rate["satisfaction_rate"] != 1:
    bad.append("hotline_rates: %s" % rate)
c = r["callback_within_limit"]
if (c["callbacks_due"], c["in_time"]) != (1, 1):
    bad.append("callback_within_limit: %s" % c)
print("\n".join(bad) or "all figures as implied")
sys.exit(1 if bad else 0)
PY

echo "== stop"
for s in audit notification escalation routing intake; do svc_stop "$s"; done
finish
