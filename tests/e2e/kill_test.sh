#!/usr/bin/env bash
# The kill test: under a steady load of registrations and actions over HTTP
# (tests/e2e/load.py: leaks from a hotline, routed to engineering, whose
# head accepts them as they come; a 2-second appointment clock, so that
# deadlines fire all along), each of the five services is SIGKILLed in turn
# and restarted, and PostgreSQL is restarted once.  The client sends a
# request that got no answer again with the same external_ref, as a client
# should.  At the end:
#   - every case the client was told is accepted exists exactly once, with
#     the id it was told, and there is no other;
#   - every case was routed exactly once;
#   - every event on the bus is in the audit chain exactly once, and the
#     chain verifies with its signed checkpoints;
#   - every case's registration was delivered to the webhook, and no
#     delivery recorded as delivered was sent again after that record;
#   - every appointment deadline that ran out fired exactly once (one
#     case.deadline_breached, one violation), none was missed;
#   - nothing was parked.
set -uo pipefail

name=e2e-kill
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
SECONDS_OF_LOAD=${KILL_TEST_SECONDS:-40}
RATE=${KILL_TEST_RATE:-50}

echo "== setup"
e2e_setup
MGR=$(token_for qian.mgr)
HEAD=$(token_for zhou.eng)
for s in intake routing escalation notification audit; do svc_start "$s"; done
N=/v1/sites/SH01/notification
check "help requests: a 2-second appointment clock" expect 200 '"limits"' "$(call PUT "$MGR" /v1/sites/SH01/limits '{"limits":[
 {"clock":"appoint","amount":"2s","basis":"calendar","case_type":"help"}]}')"
check "a webhook channel (up to 1,000 messages a second)" expect 201 '"name":"hook"' "$(call POST "$MGR" $N/channels "{\"name\":\"hook\",\"kind\":\"webhook\",\"url\":\"$hook/hook/ok\",\"secret\":\"$SECRET\",\"rate_per_s\":1000,\"burst\":1000}")"
check "... told of every registration" expect 201 '"audience":"channel"' "$(call POST "$MGR" $N/subscriptions '{"event_type":"case.registered","channel":"hook","audience":"channel"}')"
check "... and every breach" expect 201 '"audience":"channel"' "$(call POST "$MGR" $N/subscriptions '{"event_type":"case.deadline_breached","channel":"hook","audience":"channel"}')"
check "quiet hours off" expect 200 '"quiet_hours":false' "$(call PATCH "$MGR" $N/settings '{"quiet_hours":false}')"

echo "== $SECONDS_OF_LOAD s of load at $RATE cases/s; each service SIGKILLed in turn, PostgreSQL restarted"
python3 "$top/tests/e2e/load.py" "$api" "$KEY" "$HEAD" kill "$SECONDS_OF_LOAD" "$RATE" "$tmp/accepted" >"$tmp/load.out" 2>&1 &
load=$!
step=$(((SECONDS_OF_LOAD - 4) / 6))
for s in routing escalation notification audit intake; do
    sleep "$step"
    before=$(q "SELECT count(*) FROM core.cases")
    svc_kill "$s"
    echo "     SIGKILL $s ($before cases so far)"
    sleep 1
    svc_start "$s"
done
sleep "$step"
echo "     PostgreSQL restarted ($(q "SELECT count(*) FROM core.cases") cases so far)"
check "PostgreSQL stopped under load" "$top/deploy/pg.sh" stop
sleep 1
check "... and started again" "$top/deploy/pg.sh" start
wait "$load"
rc=$?
cat "$tmp/load.out"
check "the load: every request answered as expected (201, or 200 for a repeat)" test "$rc" = 0
check "... the services were really killed under it: requests were repeated" grep -Eq 'retries=[1-9]' "$tmp/load.out"
accepted=$(wc -l <"$tmp/accepted")
check "... $accepted cases accepted" test "$accepted" -ge $((SECONDS_OF_LOAD * RATE * 9 / 10))
for s in intake routing escalation notification audit; do
    check "$s still ready" wait_for 30 curl -fs "http://${svc_admin[$s]}/readyz"
done

echo "== nothing lost, nothing doubled"
q "SELECT external_ref || ' ' || id FROM core.cases WHERE external_ref LIKE 'kill-%' ORDER BY 1" >"$tmp/db"
check "every accepted case exists once, with the id the client was told, and no other" python3 - "$tmp/accepted" "$tmp/db" <<'PY'
import sys
told = {}
for line in open(sys.argv[1]):
    ref, cid, status = line.split()
    assert told.get(ref, cid) == cid, "%s told two ids" % ref
    told[ref] = cid
db = {}
for line in open(sys.argv[2]):
    ref, cid = line.split()
    assert ref not in db, "%s twice in the database" % ref
    db[ref] = cid
missing = [r for r in told if db.get(r) != told[r]]
extra = [r for r in db if r not in told]
assert not missing and not extra, "missing or changed %s, never answered %s" % (missing[:5], extra[:5])
print(len(db), "cases")
PY
all_routed() { q "SELECT count(*) FROM core.cases WHERE external_ref LIKE 'kill-%' AND status = 'registered'"; }
check "every case routed" wait_for 60 eq 0 all_routed
check "... each by exactly one handoff signed by routing" eq 0 q "SELECT count(*) FROM (SELECT c.id FROM core.cases c LEFT JOIN core.handoffs h ON h.case_id = c.id AND h.by_system = 'routing' WHERE c.external_ref LIKE 'kill-%' GROUP BY c.id HAVING count(h.*) <> 1) x"
check "... some were accepted by the head as they came" ge 1 q "SELECT count(*) FROM core.cases WHERE external_ref LIKE 'kill-%' AND status = 'accepted'"

undelivered() { q "SELECT count(*) FROM core.cases c WHERE c.external_ref LIKE 'kill-%' AND NOT EXISTS (SELECT 1 FROM notification.deliveries d WHERE d.case_id = c.id AND d.event_type = 'case.registered' AND d.status = 'delivered')"; }
check "every case's registration delivered to the webhook" wait_for 90 eq 0 undelivered
check "... one delivery per case, none dead" eq "0 0" q "SELECT (SELECT count(*) FROM (SELECT case_id FROM notification.deliveries WHERE event_type = 'case.registered' GROUP BY case_id HAVING count(*) > 1) x) || ' ' || (SELECT count(*) FROM notification.deliveries WHERE status = 'dead')"
pending() { q "SELECT count(*) FROM notification.deliveries WHERE status = 'pending'"; }
check "... nothing left pending" wait_for 60 eq 0 pending
q "SELECT message_id || ' ' || extract(epoch FROM delivered_at) FROM notification.deliveries WHERE status = 'delivered'" >"$tmp/delivered"
check "no delivery recorded as delivered was sent again after the record; each reached the receiver" \
    python3 "$top/tests/e2e/delivered_once.py" "$tmp/delivered" "$tmp/received.log"

overdue() { q "SELECT count(*) FROM escalation.deadlines WHERE met_at IS NULL AND breached_at IS NULL AND due_at < now() - interval '2 s'"; }
check "every deadline that ran out has fired (none missed across the kills)" wait_for 60 eq 0 overdue
breaches=$(q "SELECT count(*) FROM escalation.deadlines WHERE breached_at IS NOT NULL")
check "... some did ($breaches)" test "$breaches" -ge 1
check "... each once: one case.deadline_breached per breached deadline" eq "$breaches" q "SELECT count(*) FROM bus.events WHERE type = 'case.deadline_breached'"
check "... one violation each" eq "$breaches" q "SELECT count(*) FROM escalation.violations"
check "... no case breached twice" eq 0 q "SELECT count(*) FROM (SELECT case_id FROM bus.events WHERE type = 'case.deadline_breached' GROUP BY case_id HAVING count(*) > 1) x"
unaudited() { q "SELECT count(*) FROM bus.events e WHERE NOT EXISTS (SELECT 1 FROM audit.log a WHERE a.event_id = e.event_id)"; }
check "every event on the bus audited" wait_for 90 eq 0 unaudited
check "... exactly once, and nothing in the chain that is not on the bus" eq "0 0" q "SELECT (SELECT count(*) FROM (SELECT event_id FROM audit.log GROUP BY event_id HAVING count(*) > 1) x) || ' ' || (SELECT count(*) FROM audit.log a WHERE NOT EXISTS (SELECT 1 FROM bus.events e WHERE e.event_id = a.event_id))"
check "... the chain has no gap or duplicate" eq "t" q "SELECT count(*) = max(seq) AND count(*) = count(DISTINCT seq) FROM audit.log WHERE site_id = (SELECT id FROM core.sites WHERE code = 'SH01')"
check "shouwen-audit verify: the chain and its signed checkpoints verify" bash -c \
    "SHOUWEN_DATABASE_URL='$AUDIT_URL' SHOUWEN_AUDIT_KEY='$AKEY' '$bin/shouwen-audit' verify SH01 | grep 'chain verified'"

check "nothing parked" eq 0 q "SELECT count(*) FROM bus.dead_letters"

echo "== stop"
for s in audit notification escalation routing intake; do svc_stop "$s"; done
finish
