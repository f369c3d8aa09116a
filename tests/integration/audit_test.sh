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
# qis SQL OP N: the query's value compares so with N (for wait_for: evaluated on each try)
qis() { test "$(q "$1")" "$2" "$3"; }
# jv ANSWER EXPR: EXPR (Python, over d: the JSON body of a `call` answer)
jv() { python3 -c 'import json, sys; d = json.loads(sys.argv[1].split(" ", 1)[1]); print(eval(sys.argv[2]))' "$1" "$2"; }
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
caught_up() { test "$(q "SELECT count(*) FROM bus.events e WHERE NOT EXISTS (SELECT 1 FROM bus.dead_letters d WHERE d.consumer = 'audit' AND d.event_id = e.event_id)")" = "$(q "SELECT count(*) FROM audit.log")"; }
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
check "a checkpoint is signed within a second" wait_for 5 qis "SELECT count(*) FROM audit.checkpoints" -ge 1
check "verify checks the signatures with the key" contains "signatures verify" "$(verify_cli)"
out=$(SHOUWEN_AUDIT_KEY=too-short "$bin/shouwen-audit" --check-config 2>&1)
check "--check-config refuses a key under 32 characters, naming it" \
    contains "SHOUWEN_AUDIT_KEY must hold at least 32 characters (it has 9)" "$out"
MGR=$SHOUWEN_DEMO_MANAGER_TOKEN
r=$(call POST "$MGR" /v1/sites/SH01/audit/verify '{}')
check "API: POST /v1/sites/SH01/audit/verify: ok" expect 200 '"ok":true' "$r"
check "API: audit.verified published and audited" wait_for 10 qis "SELECT count(*) FROM audit.log WHERE event_type = 'audit.verified'" = 1

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

# ---- 4. SIGKILL mid-stream ------------------------------------------------------------------------
# The synthetic history of the reports below (tests/bench/audit_gen: 2,500
# cases over the 20 days before today) is written while audit is killed
# twice in the middle of chaining it.
kill -KILL "$audit_pid"; wait "$audit_pid" 2>/dev/null
audit_pid=""
base=$(q "SELECT count(*) FROM audit.log")
check "the history written while audit is down" "$tbin/audit_gen" 2500 42 "$tmp/plan" 20
total=$(q "SELECT count(*) FROM bus.events")
# small batches, so that a kill lands in the middle
audit_start SHOUWEN_AUDIT_BATCH_MAX=50
wait_for 30 qis "SELECT count(*) FROM audit.log" -ge $((base + 2000))
kill -KILL "$audit_pid"; wait "$audit_pid" 2>/dev/null
done1=$(q "SELECT count(*) FROM audit.log")
check "SIGKILL in the middle of the stream ($done1 of $total chained)" test "$done1" -lt "$total"
audit_start SHOUWEN_AUDIT_BATCH_MAX=50
wait_for 30 qis "SELECT count(*) FROM audit.log" -ge $((done1 + 2000))
kill -KILL "$audit_pid"; wait "$audit_pid" 2>/dev/null
done2=$(q "SELECT count(*) FROM audit.log")
check "SIGKILL again ($done2 of $total)" test "$done2" -lt "$total"
audit_start
check "every event chained after the kills" wait_for 60 caught_up
check "each exactly once" eq 0 q "SELECT count(*) FROM (SELECT event_id FROM audit.log GROUP BY event_id HAVING count(*) > 1) d"
check "no event of the bus left out" eq 0 q "SELECT count(*) FROM bus.events e WHERE NOT EXISTS (SELECT 1 FROM audit.log l WHERE l.event_id = e.event_id)"
n=$(q "SELECT count(*) FROM audit.log")
check "the chain verifies after the kills ($n entries)" contains "chain verified: $n entries" "$(verify_cli)"
check "Python agrees" eq "ok $n" chain_py

# ---- 5. bad events --------------------------------------------------------------------------------
# an envelope that is not protobuf, and a well-formed one naming a site that does not exist
q "INSERT INTO bus.events (event_id, type, site, partition, payload) VALUES ('00000000-0000-4000-8000-0000000000b1', 'case.registered', 'SH01', 0, '\xdeadbeef')" >/dev/null
env=$(python3 -c '
def s(f, v): v = v.encode(); return bytes([f << 3 | 2, len(v)]) + v
print((s(1, "00000000-0000-4000-8000-0000000000b2") + s(2, "case.progress") + s(3, "NOPE99")).hex())')
q "INSERT INTO bus.events (event_id, type, site, partition, payload) VALUES ('00000000-0000-4000-8000-0000000000b2', 'case.progress', 'NOPE99', 0, '\x$env')" >/dev/null
check "a malformed event is parked with the reason" wait_for 30 qis "SELECT count(*) FROM bus.dead_letters WHERE consumer = 'audit' AND event_id = '00000000-0000-4000-8000-0000000000b1' AND last_error LIKE 'undecodable envelope%'" = 1
check "an event of an unknown site is parked, naming it" wait_for 30 qis "SELECT count(*) FROM bus.dead_letters WHERE consumer = 'audit' AND event_id = '00000000-0000-4000-8000-0000000000b2' AND last_error LIKE '%unknown site \"NOPE99\"%'" = 1
check "neither is in the log" eq 0 q "SELECT count(*) FROM audit.log WHERE event_id IN ('00000000-0000-4000-8000-0000000000b1', '00000000-0000-4000-8000-0000000000b2')"
register "$TOKEN" '{"site":"SH01","channel":"phone","type":"consultation","subject":"after the bad ones"}' >/dev/null
check "the partition moved on: a later event is chained" wait_for 15 caught_up
n=$(q "SELECT count(*) FROM audit.log")
check "and the chain is whole" contains "chain verified: $n entries" "$(verify_cli)"

# ---- 6. the QA reports over the synthetic history ----------------------------------------------------
from=$(TZ=Asia/Shanghai date -d '20 days ago' +%F)
to=$(TZ=Asia/Shanghai date -d 'yesterday' +%F)
QA=$(token_for wei.qa)
# expected PLAN FROM TO DEPT STAFF REPORT-JSON: compares the report with the
# figures computed here from the generator's plan; prints the differences
cat >"$tmp/expect.py" <<'PY'
import json, math, sys
from collections import Counter, defaultdict
from decimal import Decimal, ROUND_HALF_UP
plan, d0, d1, dept, staff, report = sys.argv[1:7]
r = json.loads(open(report).read(), parse_float=Decimal)
C, V = [], []
for line in open(plan):
    f = line.rstrip("\n").split("|")
    if f[0] == "C" and d0 <= f[2] <= d1 and (not dept or f[4] == dept) and (not staff or f[3] == staff):
        C.append(dict(zip("tag id day fr dept type channel on_spot outcome resolve_s handed responded transfers returns late_h late_a late_r late_cb called sat esc_sup esc_mgr".split(), f)))
    if f[0] == "V" and d0 <= f[1] <= d1 and (not dept or f[3] == dept) and (not staff or f[2] == staff):
        V.append(dict(zip("tag day staff dept kind points".split(), f)))
b = lambda c, k: c[k] == "1"
def rate(x, n):
    return None if n == 0 else (Decimal(x) / Decimal(n)).quantize(Decimal("0.0001"), ROUND_HALF_UP)
def pct(xs, p):
    xs = sorted(xs)
    return None if not xs else xs[math.ceil(p * len(xs)) - 1]
n = len(C)
res = [c for c in C if c["outcome"] == "resolved"]
sat = Counter(c["sat"] for c in C)
handoffs = [c for c in C if b(c, "handed") or b(c, "late_h")]
cbs = [c for c in C if b(c, "called") or b(c, "late_cb")]
tr = [int(c["transfers"]) for c in C]
persons = defaultdict(lambda: [0, 0])
for v in V:
    persons[(v["staff"], v["dept"])][0] += 1
    persons[(v["staff"], v["dept"])][1] += int(v["points"])
want = {
    "cases": n,
    "by_type": dict(Counter(c["type"] for c in C)),
    "by_channel": dict(Counter(c["channel"] for c in C)),
    "outcomes": {k: sum(c["outcome"] == k for c in C) for k in ("resolved", "unresolvable", "referred_out", "open")},
    "first_contact_resolution": {"cases": sum(b(c, "on_spot") for c in C), "rate": rate(sum(b(c, "on_spot") for c in C), n)},
    "handoff_within_limit": {"handoffs": len(handoffs), "in_time": sum(b(c, "handed") and not b(c, "late_h") for c in C), "rate": rate(sum(b(c, "handed") and not b(c, "late_h") for c in C), len(handoffs))},
    "answer_within_limit": {"answered_in_time": sum(b(c, "responded") and not b(c, "late_a") for c in C), "rate": rate(sum(b(c, "responded") and not b(c, "late_a") for c in C), n)},
    "resolution_within_limit": {"resolved_in_time": sum(not b(c, "late_r") for c in res), "rate": rate(sum(not b(c, "late_r") for c in res), len(res))},
    "resolution_time_s": {"p50": pct([int(c["resolve_s"]) for c in res], 0.5), "p90": pct([int(c["resolve_s"]) for c in res], 0.9)},
    "callback_within_limit": {"callbacks_due": len(cbs), "in_time": sum(b(c, "called") and not b(c, "late_cb") for c in C), "rate": rate(sum(b(c, "called") and not b(c, "late_cb") for c in C), len(cbs))},
    "satisfaction": {k: sat[k] for k in ("satisfied", "basically_satisfied", "unsatisfied", "unreachable")},
    "hotline_rates": {"response_rate": rate(sum(b(c, "responded") for c in C), n), "resolution_rate": rate(len(res), n),
                      "satisfaction_rate": rate(sat["satisfied"] + sat["basically_satisfied"], sat["satisfied"] + sat["basically_satisfied"] + sat["unsatisfied"])},
    "unresolvable_rate": rate(sum(c["outcome"] == "unresolvable" for c in C), n),
    "escalations": {"supervisor": sum(int(c["esc_sup"]) for c in C), "manager": sum(int(c["esc_mgr"]) for c in C), "leader": 0},
    "transfers": {"total": sum(tr), "per_case": rate(sum(tr), n), "none": tr.count(0), "one": tr.count(1), "two": tr.count(2),
                  "three_or_more": sum(t >= 3 for t in tr), "most": max(tr, default=0),
                  "bounced_cases": sum(int(c["transfers"]) >= 2 or int(c["returns"]) > 0 for c in C),
                  "returns": sum(int(c["returns"]) for c in C), "reopened": 0},
    "conflict_escalations": dict(Counter(v["dept"] for v in V if v["kind"] == "conflict_escalation")),
    "violations": {"count": len(V), "points": sum(int(v["points"]) for v in V), "by_kind": dict(Counter(v["kind"] for v in V))},
    "violations_by_person": sorted([{"staff": s, "department": d, "count": c, "points": p} for (s, d), (c, p) in persons.items()],
                                   key=lambda x: (-x["points"], -x["count"], x["staff"], x["department"])),
}
bad = [k for k in want if r.get(k) != want[k]]
for k in bad:
    print(k, "want", want[k], "got", r.get(k))
if n == 0: print("no cases in the period: nothing was checked")
sys.exit(1 if bad or n == 0 else 0)
PY
report_ok() { # report_ok QUERY DEPT STAFF
    curl -s -H "Authorization: Bearer $QA" "$api/v1/sites/SH01/reports/qa?$1" >"$tmp/report.json" &&
        python3 "$tmp/expect.py" "$tmp/plan" "$from" "$to" "$2" "$3" "$tmp/report.json"
}
check "QA report of the site over the period: every figure as computed here" report_ok "from=$from&to=$to" "" ""
check "... of the engineering department" report_ok "from=$from&to=$to&department=engineering" engineering ""
check "... of one first responder (wang.guard)" report_ok "from=$from&to=$to&staff=wang.guard" "" wang.guard
check "... of a department and a person" report_ok "from=$from&to=$to&department=security&staff=li.desk" security li.desk
csv=$(curl -s -D "$tmp/h" -H "Authorization: Bearer $QA" "$api/v1/sites/SH01/reports/qa?from=$from&to=$to&format=csv")
check "CSV: text/csv" grep -qi '^content-type: text/csv' "$tmp/h"
cases=$(awk -F'|' -v a="$from" -v b="$to" '$1 == "C" && $3 >= a && $3 <= b' "$tmp/plan" | wc -l)
check "CSV: the case count ($cases)" contains "summary,cases,$cases" "$csv"
check "CSV: the three rates" contains "hotline_rates,response_rate," "$csv"
check "CSV: violations per person" contains "violations_by_person,li.desk/points," "$csv"
m=$(TZ=Asia/Shanghai date +%Y-%m)
check "month=$m: the period is that month" eq "$m-01" jv "$(call GET "$QA" "/v1/sites/SH01/reports/qa?month=$m")" 'd["from"]'
check "no period: this month" eq "$m-01" jv "$(call GET "$QA" "/v1/sites/SH01/reports/qa")" 'd["from"]'

# bad queries
check "an unknown site: 404" expect 404 'no such site' "$(call GET "$QA" "/v1/sites/XX99/reports/qa")"
check "an unknown department: 404 naming it" expect 404 'no such department in site SH01: \"plumbing\"' "$(call GET "$QA" "/v1/sites/SH01/reports/qa?department=plumbing")"
check "an unknown staff member: 404 naming them" expect 404 'no such staff member in site SH01: \"nobody\"' "$(call GET "$QA" "/v1/sites/SH01/reports/qa?staff=nobody")"
check "month 2026-13: 422 naming month" expect 422 '"field":"month"' "$(call GET "$QA" "/v1/sites/SH01/reports/qa?month=2026-13")"
check "from without to: 422" expect 422 '"field":"to"' "$(call GET "$QA" "/v1/sites/SH01/reports/qa?from=2026-11-01")"
check "to before from: 422" expect 422 'must not be before from' "$(call GET "$QA" "/v1/sites/SH01/reports/qa?from=2026-11-10&to=2026-11-01")"
check "2026-02-30: 422" expect 422 '"field":"from"' "$(call GET "$QA" "/v1/sites/SH01/reports/qa?from=2026-02-30&to=2026-03-01")"
check "a period over a year: 422" expect 422 'at most 366 days' "$(call GET "$QA" "/v1/sites/SH01/reports/qa?from=2025-01-01&to=2026-06-30")"
check "an unknown parameter: 422 naming it" expect 422 'unknown parameter \"dept\"' "$(call GET "$QA" "/v1/sites/SH01/reports/qa?dept=x")"
check "format=xml: 422" expect 422 '"field":"format"' "$(call GET "$QA" "/v1/sites/SH01/reports/qa?format=xml")"
check "a receptionist may not read reports: 403" expect 403 'forbidden' "$(call GET "$TOKEN" "/v1/sites/SH01/reports/qa")"
check "bad queries are counted" test "$(curl -s "http://$admin/metrics" | awk '$1 ~ /^shouwen_intake_bad_requests_total/ {s += $2} END {print s + 0}')" -ge 10

# the reception log and the Monday review
r=$(call GET "$SUP" "/v1/sites/SH01/reports/reception-log")
today_cases=$(q "SELECT count(*) FROM core.cases WHERE (created_at AT TIME ZONE 'Asia/Shanghai')::date = (now() AT TIME ZONE 'Asia/Shanghai')::date")
check "reception log of today: one row per case registered today ($today_cases)" eq "$today_cases" python3 -c "import json, sys; print(len(json.loads(sys.argv[1].split(' ', 1)[1])['rows']))" "$r"
check "... with customer, contact, room, matter, handling and result" eq "张女士 13800002222 1-1-101 停车费 | resolved on the spot by li.desk | 当场答复" \
    jv "$r" '" ".join([x for x in d["rows"] if x["matter"] == "停车费"][0][k] for k in ("customer", "contact", "room", "matter")) + " | " + [x for x in d["rows"] if x["matter"] == "停车费"][0]["handling"] + " | " + [x for x in d["rows"] if x["matter"] == "停车费"][0]["result"]'
check "... and a case still with the front desk says where it is" eq "with front-desk, owner li.desk, 0 transfer(s)" jv "$r" '[x for x in d["rows"] if x["matter"] == "审计 1"][0]["handling"]'
csv=$(curl -s -H "Authorization: Bearer $SUP" "$api/v1/sites/SH01/reports/reception-log?format=csv")
check "reception log as CSV: a header and a line per case" eq "$((today_cases + 1))" bash -c "printf '%s' \"\$1\" | grep -c \$'\\r\$'" _ "$csv"
check "reception log of a bad date: 422" expect 422 '"field":"date"' "$(call GET "$SUP" "/v1/sites/SH01/reports/reception-log?date=yesterday")"
r=$(call GET "$MGR" "/v1/sites/SH01/reports/weekly-review?week=$to")
monday=$(python3 -c "import datetime as d; t = d.date.fromisoformat('$to'); print(t - d.timedelta(days=t.weekday()))")
check "the Monday review: the week from Monday" eq "$monday" jv "$r" 'd["week_from"]'
check "... with that week's report" eq "$monday SH01" jv "$r" 'd["report"]["from"] + " " + d["report"]["site"]'
check "... and the cases of that week still open" eq True jv "$r" 'isinstance(d["still_open"], list)'
lastmon=$(TZ=Asia/Shanghai python3 -c "import datetime as d; t = d.date.today(); print(t - d.timedelta(days=t.weekday() + 7))")
check "the Monday review defaults to last week ($lastmon)" eq "$lastmon" jv "$(call GET "$MGR" "/v1/sites/SH01/reports/weekly-review")" 'd["week_from"]'

finish
