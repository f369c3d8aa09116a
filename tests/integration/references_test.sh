#!/usr/bin/env bash
# Integration test of the references of the case tables (migration 0023):
# without foreign keys on core.cases, core.handoffs, escalation.deadlines,
# notification.deliveries, audit.log and audit.case_facts, statement
# triggers refuse what a key refused, with the same SQLSTATE (23503).
# A real private cluster, migrated, with the demo site and a second site.
set -uo pipefail

name=refs
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
trap intake_cleanup EXIT

intake_setup

# sql SQL...: each SQL on the cluster, errors verbose (with their SQLSTATE)
sql() {
    local a=(-c '\set VERBOSITY verbose')
    for s in "$@"; do a+=(-c "$s"); done
    "$top/deploy/pg.sh" psql -qtAX -v ON_ERROR_STOP=1 "${a[@]}" 2>&1
}
# refused PATTERN SQL...: fails with 23503 and a message matching PATTERN
refused() {
    local pat=$1 out
    shift
    if out=$(sql "$@"); then echo "accepted: $out"; return 1; fi
    grep -q 'ERROR:  23503' <<<"$out" || { echo "not 23503: $out"; return 1; }
    grep -q -- "$pat" <<<"$out" || { echo "message lacks \"$pat\": $out"; return 1; }
}
accepted() { sql "$@" >/dev/null || { sql "$@"; return 1; }; }

# The demo site's ids, and a second site with a staff member and a department.
S=$(q "SELECT id FROM core.sites WHERE code = 'SH01'")
DESK=$(q "SELECT id FROM core.staff WHERE code = 'li.desk'")
ENG=$(q "SELECT id FROM core.departments WHERE site_id = '$S' AND code = 'engineering'")
q "INSERT INTO core.sites (code, name) VALUES ('ZZ02', 'other')" >/dev/null
Z=$(q "SELECT id FROM core.sites WHERE code = 'ZZ02'")
q "INSERT INTO core.departments (site_id, code, name) VALUES ('$Z', 'ops', 'ops')" >/dev/null
ZOPS=$(q "SELECT id FROM core.departments WHERE site_id = '$Z'")
q "INSERT INTO core.staff (site_id, code, name, role, department_id) VALUES ('$Z', 'z.desk', 'z', 'receptionist', '$ZOPS')" >/dev/null
ZDESK=$(q "SELECT id FROM core.staff WHERE site_id = '$Z'")
NOBODY=00000000-0000-4000-8000-000000000001
hook() { q "INSERT INTO notification.channels (site_id, name, kind, url) VALUES ('$1', 'refs-hook', 'webhook', 'http://127.0.0.1:9/') RETURNING id"; }
HOOK=$(hook "$S")
ZHOOK=$(hook "$Z")

# new_case NUMBER FIRST_RESPONDER DEPARTMENT: an INSERT of a case of SH01
new_case() {
    echo "INSERT INTO core.cases (site_id, number, type, channel, subject, first_responder_id, department_id) VALUES ('$S', 'SH01-20261125-$1', 'repair', 'phone', 'x', $2, $3)"
}

echo "== a case's references"
check "a case of its own site's staff and department is accepted" \
    accepted "$(new_case 0001 "'$DESK'" "'$ENG'")"
C=$(q "SELECT id FROM core.cases WHERE number = 'SH01-20261125-0001'")
check "a first responder of another site is refused, naming the column" \
    refused "core.cases violates its reference first_responder_id: core.staff $ZDESK of site $S" \
    "$(new_case 0002 "'$ZDESK'" NULL)"
check "a department that does not exist is refused" \
    refused "reference department_id: core.departments $NOBODY" "$(new_case 0003 NULL "'$NOBODY'")"
check "a site that does not exist is refused" \
    refused "reference site_id: core.sites $NOBODY" \
    "INSERT INTO core.cases (site_id, number, type, channel, subject) VALUES ('$NOBODY', 'ZZ09-20261125-0001', 'repair', 'phone', 'x')"
check "one bad row of many: the whole statement is refused" \
    refused "first_responder_id" \
    "INSERT INTO core.cases (site_id, number, type, channel, subject, first_responder_id) VALUES ('$S', 'SH01-20261125-0004', 'repair', 'phone', 'x', '$DESK'), ('$S', 'SH01-20261125-0005', 'repair', 'phone', 'x', '$ZDESK')"
check "  ... and none of its rows is there" \
    test "$(q "SELECT count(*) FROM core.cases WHERE number IN ('SH01-20261125-0004', 'SH01-20261125-0005')")" = 0
check "an update giving the case an owner of another site is refused" \
    refused "reference owner_id: core.staff $ZDESK" "UPDATE core.cases SET owner_id = '$ZDESK' WHERE id = '$C'"
check "an update giving it a department of its site is accepted" \
    accepted "UPDATE core.cases SET owner_id = '$DESK', department_id = '$ENG' WHERE id = '$C'"

echo "== handoffs and deadlines"
handoff() { echo "INSERT INTO core.handoffs (site_id, case_id, kind, to_department_id, by_staff_id, at) VALUES ('$S', $1, 'transfer', $2, '$DESK', now())"; }
check "a handoff of the case to a department of its site is accepted" accepted "$(handoff "'$C'" "'$ENG'")"
check "a handoff of a case that does not exist is refused" \
    refused "core.handoffs violates its reference case_id: core.cases $NOBODY" "$(handoff "'$NOBODY'" "'$ENG'")"
check "a handoff to a department of another site is refused" \
    refused "reference to_department_id: core.departments $ZOPS" "$(handoff "'$C'" "'$ZOPS'")"
check "a handoff by staff of another site is refused" \
    refused "reference on_behalf_of_id: core.staff $ZDESK" \
    "INSERT INTO core.handoffs (site_id, case_id, kind, by_staff_id, on_behalf_of_id, at) VALUES ('$S', '$C', 'transfer', '$DESK', '$ZDESK', now())"
check "a deadline of the case is accepted" \
    accepted "INSERT INTO escalation.deadlines (site_id, case_id, kind, due_at) VALUES ('$S', '$C', 'handoff', now())"
check "a deadline of a case of another site is refused" \
    refused "escalation.deadlines violates its reference case_id: core.cases $C of site $Z" \
    "INSERT INTO escalation.deadlines (site_id, case_id, kind, due_at) VALUES ('$Z', '$C', 'resolve', now())"
check "a deadline moved to another case is refused" \
    refused "the case of a deadline never changes" \
    "UPDATE escalation.deadlines SET case_id = '$NOBODY' WHERE case_id = '$C'"
check "a deadline's clock still moves" \
    accepted "UPDATE escalation.deadlines SET met_at = now() WHERE case_id = '$C'"

echo "== the tables that name only a site"
check "a delivery of a site that does not exist is refused" \
    refused "notification.deliveries violates its reference site_id" \
    "INSERT INTO notification.deliveries (site_id, partition, event_id, event_type, channel_id, recipient, message_id, body) VALUES ('$NOBODY', 0, gen_random_uuid(), 'case.registered', '$HOOK', 'x', 'm1', 'b')"
check "an audit entry of a site that does not exist is refused" \
    refused "audit.log violates its reference site_id" \
    "INSERT INTO audit.log (site_id, seq, event_id, event_type, actor, event_time, recorded_at, payload_sha256, prev_hash, hash) VALUES ('$NOBODY', 1, gen_random_uuid(), 'case.registered', 'x', now(), now(), sha256(''), sha256(''), sha256(''))"
check "a case's roll-up of a site that does not exist is refused" \
    refused "audit.case_facts violates its reference site_id" \
    "INSERT INTO audit.case_facts (case_id, site_id, reg_day, registered_at, case_type, channel, urgency, first_responder, department) VALUES ('$C', '$NOBODY', current_date, now(), 'repair', 'phone', 'normal', 'li.desk', 'engineering')"

echo "== what is referred to stays"
check "a case is never deleted" refused "cases are never deleted" "DELETE FROM core.cases WHERE id = '$C'"
check "core.cases is never truncated" refused "cases are never deleted" "TRUNCATE core.cases CASCADE"
check "a case never changes its id" refused "never changes its id or its site" \
    "UPDATE core.cases SET id = gen_random_uuid() WHERE id = '$C'"
check "a staff member a case refers to is not deleted" \
    refused "is still referred to by core.cases" "DELETE FROM core.staff WHERE id = '$DESK'"
check "a department a case refers to is not deleted" \
    refused "is still referred to by core.cases" "DELETE FROM core.departments WHERE id = '$ENG'"
check "a site its cases refer to is not deleted" \
    refused "is still referred to by core.cases" "DELETE FROM core.sites WHERE id = '$S'"
check "a staff member only a handoff refers to is not deleted" \
    refused "is still referred to by core.handoffs" \
    "INSERT INTO core.staff (site_id, code, name, role, department_id) VALUES ('$S', 'gone.soon', 'g', 'handler', '$ENG')" \
    "INSERT INTO core.handoffs (site_id, case_id, kind, to_staff_id, by_staff_id, at) SELECT '$S', '$C', 'transfer', id, '$DESK', now() FROM core.staff WHERE code = 'gone.soon'" \
    "DELETE FROM core.staff WHERE code = 'gone.soon'"
check "a site of a delivery is not deleted" \
    refused "is still referred to by notification.deliveries" \
    "INSERT INTO notification.deliveries (site_id, partition, event_id, event_type, channel_id, recipient, message_id, body) VALUES ('$Z', 0, gen_random_uuid(), 'case.registered', '$ZHOOK', 'x', 'zz-1', 'b')" \
    "DELETE FROM core.sites WHERE id = '$Z'"
check "a staff member nothing refers to is deleted" accepted \
    "INSERT INTO core.staff (site_id, code, name, role, department_id) VALUES ('$S', 'typo.desk', 't', 'receptionist', '$ENG')" \
    "DELETE FROM core.staff WHERE code = 'typo.desk'"
check "  ... and is gone" test "$(q "SELECT count(*) FROM core.staff WHERE code = 'typo.desk'")" = 0
check "core.staff is never truncated" refused "delete them one by one" "TRUNCATE core.staff CASCADE"
check "a staff member never moves to another site" refused "never changes its id or its site" \
    "UPDATE core.staff SET site_id = '$Z' WHERE id = '$DESK'"

echo "== a delete and a write at the same time"
q "INSERT INTO core.staff (site_id, code, name, role, department_id) VALUES ('$S', 'race.one', 'r', 'receptionist', '$ENG'), ('$S', 'race.two', 'r', 'receptionist', '$ENG')" >/dev/null
# A case naming race.one is written in a transaction still open when the
# delete of race.one comes: the delete waits for it, then is refused.
sql "BEGIN" "$(new_case 0010 "(SELECT id FROM core.staff WHERE code = 'race.one')" NULL)" \
    "SELECT pg_sleep(2)" "COMMIT" >"$tmp/race1.out" &
w=$!
sleep 0.7
check "the delete of a staff member a case being written names waits, then is refused" \
    refused "is still referred to by core.cases" "DELETE FROM core.staff WHERE code = 'race.one'"
wait $w
check "  ... and the case is there with its first responder" \
    test "$(q "SELECT count(*) FROM core.cases c JOIN core.staff s ON s.id = c.first_responder_id WHERE c.number = 'SH01-20261125-0010' AND s.code = 'race.one'")" = 1
# The delete of race.two comes first, in a transaction still open when a
# case naming it is written: the write waits for it, then is refused.
V=$(q "SELECT id FROM core.staff WHERE code = 'race.two'")
sql "BEGIN" "DELETE FROM core.staff WHERE id = '$V'" "SELECT pg_sleep(2)" "COMMIT" >"$tmp/race2.out" &
w=$!
sleep 0.7
check "a case naming a staff member being deleted waits, then is refused" \
    refused "reference first_responder_id: core.staff $V" "$(new_case 0011 "'$V'" NULL)"
wait $w
check "  ... the staff member is gone and no case names them" \
    test "$(q "SELECT (SELECT count(*) FROM core.staff WHERE id = '$V') + (SELECT count(*) FROM core.cases WHERE first_responder_id = '$V')")" = 0

finish
