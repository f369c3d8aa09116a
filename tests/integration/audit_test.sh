#!/usr/bin/env bash
# The audit service, real: a private PostgreSQL, the demo site, the real
# shouwen-intake and shouwen-audit (connected as a login role that holds
# only shouwen_service, the services' role).  Every event is chained once
# per site; the chain is recomputed independently here (Python's hashlib
# over the documented canonical bytes); the services' role cannot change or
# remove audit rows, and the triggers refuse even the owner; rows changed
# or removed by a superuser (triggers bypassed) are caught by `shouwen-audit
# verify` and by the API, which name the first broken entry; a chain
# rewritten with every hash recomputed is caught by the signed checkpoints;
# SIGKILL mid-stream leaves every event audited exactly once; a malformed
# event and one of an unknown site are parked with the reason; the QA
# reports over a synthetic data set (tests/bench/audit_gen) show exactly
# the figures computed here from the generator's own plan; bad report
# queries get clear 4xx answers.
set -uo pipefail

name=audit
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
audit_pid=""
load_pid=""
cleanup() {
    for p in "$audit_pid" "$load_pid"; do
        [ -z "$p" ] || kill -KILL "$p" 2>/dev/null
    done
    intake_cleanup
}
trap cleanup EXIT
. "$(dirname "${BASH_SOURCE[0]}")/cases.sh"

tbin=${SHOUWEN_TEST_BIN:-$top/build/tests}
aadmin=127.0.0.1:$(free_ports 1)
AKEY="audit-key-$(hex 24)"
eq() { local want=$1; shift; test "$("$@")" = "$want"; }
metric() { curl -s "http://$aadmin/metrics" | awk -v m="$1" '$1 == m || index($1, m "{") == 1 {s += $2} END {print s + 0}'; }
site_id() { q "SELECT id FROM core.sites WHERE code = 'SH01'"; }
# as the superuser with the triggers bypassed (what an intruder with superuser rights can do)
su_q() { q "SET session_replication_role = replica; $1"; }

audit_start() {
    env SHOUWEN_DATABASE_URL="$AUDIT_URL" SHOUWEN_AUDIT_ADMIN_ADDR="$aadmin" \
        SHOUWEN_AUDIT_PUB_URL="ipc://$tmp/audit.pub" SHOUWEN_AUDIT_SUB_URLS="ipc://$tmp/intake.pub" \
        SHOUWEN_AUDIT_KEY="$AKEY" SHOUWEN_AUDIT_CHECKPOINT_INTERVAL=300ms "$@" \
        "$bin/shouwen-audit" 2>>"$tmp/audit.log" &
    audit_pid=$!
    check "audit ready" wait_for 10 curl -fs "http://$aadmin/readyz"
}
# every committed event is in the log
caught_up() { test "$(q "SELECT count(*) FROM bus.events")" = "$(q "SELECT count(*) FROM audit.log")"; }
verify_cli() { SHOUWEN_DATABASE_URL="$AUDIT_URL" SHOUWEN_AUDIT_KEY="${VKEY-$AKEY}" "$bin/shouwen-audit" verify SH01; }

# chain_py: recompute SH01's chain from the rows, by the canonical bytes of
# common/auditlog.h, in Python; prints "ok N" or "bad SEQ"
chain_py() {
    q "SELECT seq, site_id, event_id, event_type, coalesce(case_id::text, ''), actor, (extract(epoch FROM event_time) * 1000000)::bigint, (extract(epoch FROM recorded_at) * 1000000)::bigint, encode(payload_sha256, 'hex'), encode(prev_hash, 'hex'), encode(hash, 'hex') FROM audit.log WHERE site_id = '$(site_id)' ORDER BY seq" |
        python3 -c '
import hashlib, sys
prev = bytes(32); n = 0
for line in sys.stdin:
    f = line.rstrip("\n").split("|")
    seq, site, ev, typ, case, actor, et, rt, pd, ph, h = f
    canon = "shouwen-audit/1\n" + "\n".join([site, seq, ev, typ, case, actor, et, rt, pd]) + "\n"
    mine = hashlib.sha256(prev + canon.encode()).digest()
    if int(seq) != n + 1 or bytes.fromhex(ph) != prev or mine.hex() != h:
        print("bad", seq); sys.exit(0)
    prev = mine; n += 1
print("ok", n)'
}

intake_setup
q "DO \$\$BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'shouwen_audit_t') THEN CREATE ROLE shouwen_audit_t LOGIN IN ROLE shouwen_service; END IF; END\$\$" >/dev/null
AUDIT_URL="${SHOUWEN_DATABASE_URL/user=shouwen/user=shouwen_audit_t}"
intake_start
audit_start

# ---- 1. every event, once, chained ----------------------------------------------------------
SUP=$(token_for sun.sup)
for i in $(seq 1 12); do
    register "$TOKEN" "{\"site\":\"SH01\",\"channel\":\"phone\",\"type\":\"consultation\",\"subject\":\"审计 $i\",\"customer\":{\"name\":\"王先生\",\"phone\":\"1380000$((1000 + i))\",\"address\":\"3-2-50$i\"}}" >/dev/null
done
id=$(register "$TOKEN" '{"site":"SH01","channel":"visit","type":"consultation","subject":"停车费","customer":{"name":"张女士","phone":"13800002222","address":"1-1-101"}}')
check "a case resolved on the spot" eq 200 act "$TOKEN" "$id" resolve_on_spot '{"result":"当场答复"}'
check "the log holds every event of the bus" wait_for 15 caught_up
check "each event once" eq 0 q "SELECT count(*) FROM (SELECT event_id FROM audit.log GROUP BY event_id HAVING count(*) > 1) d"
n=$(q "SELECT count(*) FROM audit.log")
check "one chain, seq 1..$n without gaps" eq "$n" q "SELECT max(seq) FROM audit.log WHERE site_id = '$(site_id)' HAVING min(seq) = 1 AND count(*) = max(seq)"
check "each entry names its actor and carries the server time (签名签时)" eq 0 q "SELECT count(*) FROM audit.log WHERE event_type = 'case.registered' AND (actor <> 'li.desk' OR abs(extract(epoch FROM event_time - recorded_at)) > 60)"
check "the head is the last entry" eq "$n" q "SELECT last_seq FROM audit.chain_heads h JOIN audit.log l ON l.site_id = h.site_id AND l.seq = h.last_seq AND l.hash = h.last_hash"
check "recomputed independently (Python, the documented bytes): ok" eq "ok $n" chain_py
check "metrics: appended = $n" eq "$n" metric shouwen_audit_appended_total
out=$(verify_cli)
check "shouwen-audit verify: exit 0, all entries" contains "chain verified: $n entries" "$out"
check "a checkpoint is signed within a second" wait_for 5 test "$(q "SELECT count(*) FROM audit.checkpoints")" -ge 1
check "verify checks the signatures with the key" contains "signatures verify" "$(verify_cli)"
MGR=$SHOUWEN_DEMO_MANAGER_TOKEN
r=$(call POST "$MGR" /v1/sites/SH01/audit/verify '{}')
check "API: POST /v1/sites/SH01/audit/verify: ok" expect 200 '"ok":true' "$r"
check "API: audit.verified published and audited" wait_for 10 test "$(q "SELECT count(*) FROM audit.log WHERE event_type = 'audit.verified'")" = 1

# ---- 2. append-only ----------------------------------------------------------------------------
aq() { psql "$AUDIT_URL" -qtAX -v ON_ERROR_STOP=1 -c "$1" 2>&1; }
check "the services' role: UPDATE refused" contains "permission denied" "$(aq "UPDATE audit.log SET actor = 'x' WHERE seq = 1")"
check "the services' role: DELETE refused" contains "permission denied" "$(aq "DELETE FROM audit.log WHERE seq = 1")"
check "the services' role: TRUNCATE refused" contains "permission denied" "$(aq "TRUNCATE audit.log")"
check "the services' role: checkpoints cannot be changed" contains "permission denied" "$(aq "DELETE FROM audit.checkpoints")"
check "the services' role may read" eq "$n" aq "SELECT count(*) FROM audit.log WHERE seq <= $n"
check "even the owner: UPDATE refused by the trigger" contains "append-only" "$(q "UPDATE audit.log SET actor = 'x' WHERE seq = 1" 2>&1)"
check "even the owner: DELETE refused by the trigger" contains "append-only" "$(q "DELETE FROM audit.log WHERE seq = 1" 2>&1)"
check "even the owner: TRUNCATE refused by the trigger" contains "append-only" "$(q "TRUNCATE audit.log" 2>&1)"

# ---- 3. tampering, caught and located ------------------------------------------------------------
sid=$(site_id)
orig=$(q "SELECT actor FROM audit.log WHERE site_id = '$sid' AND seq = 5")
su_q "UPDATE audit.log SET actor = 'mallory' WHERE site_id = '$sid' AND seq = 5" >/dev/null
out=$(verify_cli); rc=$?
check "a row changed by a superuser: verify exits 1" test "$rc" = 1
check "... and names entry 5" contains "BROKEN at entry 5:" "$out"
r=$(call POST "$MGR" /v1/sites/SH01/audit/verify '{}')
check "API: the same verdict, first_bad_seq 5" expect 200 '"first_bad_seq":5' "$r"
check "Python agrees: bad 5" eq "bad 5" chain_py
wait_for 10 caught_up
su_q "UPDATE audit.log SET actor = '$orig' WHERE site_id = '$sid' AND seq = 5" >/dev/null
check "put back: verifies again" contains "chain verified" "$(verify_cli)"
q "CREATE TABLE public.saved AS SELECT * FROM audit.log WHERE site_id = '$sid' AND seq = 7" >/dev/null
su_q "DELETE FROM audit.log WHERE site_id = '$sid' AND seq = 7" >/dev/null
out=$(verify_cli)
check "a row deleted by a superuser: named (entry 7 missing)" contains "BROKEN at entry 7: entry 7 is missing" "$out"
su_q "INSERT INTO audit.log SELECT * FROM public.saved" >/dev/null
check "put back: verifies again" contains "chain verified" "$(verify_cli)"
last=$(q "SELECT last_seq FROM audit.chain_heads WHERE site_id = '$sid'")
q "TRUNCATE public.saved; INSERT INTO public.saved SELECT * FROM audit.log WHERE site_id = '$sid' AND seq = $last" >/dev/null
su_q "DELETE FROM audit.log WHERE site_id = '$sid' AND seq = $last" >/dev/null
check "the last row deleted: named" contains "BROKEN at entry $last:" "$(verify_cli)"
su_q "INSERT INTO audit.log SELECT * FROM public.saved" >/dev/null
check "put back: verifies again" contains "chain verified" "$(verify_cli)"
check "a wrong key: the checkpoints' signatures do not verify" contains "BROKEN" "$(VKEY="another-key-of-at-least-32-characters!" verify_cli)"
# A rewrite that recomputes every hash from entry 3 on (what a careful
# intruder does): the links hold, the signed checkpoint does not.  (audit
# is stopped meanwhile, so that the rows put back are the whole chain.)
kill -TERM "$audit_pid"; wait "$audit_pid"
check "audit: SIGTERM, exit 0" test $? = 0
audit_pid=""
n=$(q "SELECT count(*) FROM audit.log")
q "TRUNCATE public.saved; INSERT INTO public.saved SELECT * FROM audit.log WHERE site_id = '$sid'" >/dev/null
q "SELECT seq, site_id, event_id, event_type, coalesce(case_id::text, ''), actor, (extract(epoch FROM event_time) * 1000000)::bigint, (extract(epoch FROM recorded_at) * 1000000)::bigint, encode(payload_sha256, 'hex'), encode(prev_hash, 'hex') FROM audit.log WHERE site_id = '$sid' ORDER BY seq" |
    python3 -c '
import hashlib, sys
prev = None
for line in sys.stdin:
    seq, site, ev, typ, case, actor, et, rt, pd, ph = line.rstrip("\n").split("|")
    if prev is None: prev = bytes.fromhex(ph)
    if seq == "3": actor = "mallory"
    canon = "shouwen-audit/1\n" + "\n".join([site, seq, ev, typ, case, actor, et, rt, pd]) + "\n"
    h = hashlib.sha256(prev + canon.encode()).digest()
    if int(seq) >= 3:
        print("UPDATE audit.log SET actor = %s, prev_hash = %s, hash = %s WHERE site_id = %s AND seq = %s;" % (
            "'"'"'" + actor + "'"'"'", "'"'"'\\x" + prev.hex() + "'"'"'", "'"'"'\\x" + h.hex() + "'"'"'", "'"'"'" + site + "'"'"'", seq))
        last = (seq, h.hex())
    prev = h
print("UPDATE audit.chain_heads SET last_hash = %s WHERE site_id = %s;" % ("'"'"'\\x" + last[1] + "'"'"'", "'"'"'" + site + "'"'"'"))
' >"$tmp/rewrite.sql"
su_q "$(cat "$tmp/rewrite.sql")" >/dev/null
check "rewritten with every hash recomputed: the links hold (Python: ok)" eq "ok $n" chain_py
out=$(verify_cli)
check "... but the signed checkpoint catches it" contains "does not match its checkpoint" "$out"
r=$(call POST "$MGR" /v1/sites/SH01/audit/verify '{}')
check "API: the same" expect 200 '"ok":false' "$r"
su_q "DELETE FROM audit.log WHERE site_id = '$sid'; INSERT INTO audit.log SELECT * FROM public.saved; UPDATE audit.chain_heads h SET last_hash = s.hash FROM public.saved s WHERE s.site_id = h.site_id AND s.seq = h.last_seq" >/dev/null
check "put back: verifies again" contains "chain verified" "$(verify_cli)"
audit_start
check "restarted: the verifications' events are chained too" wait_for 15 caught_up
check "... and the chain verifies" contains "chain verified" "$(verify_cli)"

finish
