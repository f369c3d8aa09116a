#!/usr/bin/env bash
# A site's routing rules over the public API (GET and PUT
# /v1/sites/{code}/routing/rules, served by the real shouwen-intake on a
# private PostgreSQL): the demo's rules read back in order, a new set
# saved whole, every refusal naming its field and saving nothing (unknown
# department, a rule that matches on nothing, two rules with one priority,
# bad hours, unknown fields), who may, and the database's own guard on
# the order.
set -uo pipefail

name=routing-rules
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
trap intake_cleanup EXIT

. "$(dirname "${BASH_SOURCE[0]}")/cases.sh"
names() { python3 -c 'import json,sys; print(",".join(r["name"] for r in json.loads(sys.stdin.read().split(" ",1)[1])["rules"]))'; }

echo "== setup"
intake_setup
MGR="swt_$(hex 24)"
q "INSERT INTO core.staff_tokens (staff_id, token_hash, expires_at) SELECT id, sha256('$MGR'::bytea), now() + interval '1 day' FROM core.staff WHERE code = 'qian.mgr'" >/dev/null
intake_start
R=/v1/sites/SH01/routing/rules

echo "== the demo's rules"
out=$(call GET "$MGR" $R)
check "GET: 200 with the demo's six rules" expect 200 '"site":"SH01"' "$out"
check "... in priority order" test "$(names <<<"$out")" = "emergencies: security leads, engineering assists,water and pipes,noise and disturbance,fees and invoices,rubbish and cleaning,repairs"
check "... with keywords, sets and assisting departments" expect 200 '"keywords":["漏水","水管","渗水","water leak"]' "$out"
check "... the emergency rule's assisting department" expect 200 '"assisting_departments":["engineering"]' "$out"

echo "== who may"
check "a receptionist: 403" expect 403 'forbidden' "$(call GET "$TOKEN" $R)"
check "a system key: 403" expect 403 'forbidden' "$(call PUT "$KEY" $R '{"rules":[]}')"
check "DELETE: 405 saying what is allowed" expect 405 'PUT replaces them all' "$(call DELETE "$MGR" $R)"
check "another site: 404" expect 404 'no such site' "$(call GET "$MGR" /v1/sites/ZZ01/routing/rules)"

echo "== a new set, saved whole"
set1='{"rules":[
 {"name":"night water","priority":5,"keywords":["漏水"],"hours":{"from":"22:00","to":"06:00"},"department":"security"},
 {"name":"building 9","priority":15,"location":"9-","department":"cleaning"},
 {"name":"water","priority":10,"types":["repair","help"],"channels":["phone","visit"],"urgencies":["normal","urgent"],"keywords":["漏水","水管"],"department":"engineering","assisting_departments":["security","front-desk"]}
]}'
out=$(call PUT "$MGR" $R "$set1")
check "PUT: 200 with the set" expect 200 '"name":"building 9"' "$out"
check "... ordered by priority, not by the order sent" test "$(names <<<"$out")" = "night water,water,building 9"
check "... hours as sent" expect 200 '"hours":{"from":"22:00","to":"06:00"}' "$out"
check "... sets as sent" expect 200 '"types":["help","repair"],"channels":["visit","phone"],"urgencies":["normal","urgent"]' "$out"
check "... assisting departments in the order given" expect 200 '"assisting_departments":["security","front-desk"]' "$out"
check "... the old rules are gone" test "$(q "SELECT count(*) FROM routing.rules r JOIN core.sites s ON s.id = r.site_id WHERE s.code = 'SH01'")" = 3
check "GET shows the same" test "$(call GET "$MGR" $R | names)" = "night water,water,building 9"

echo "== refusals name the field and save nothing"
before=$(call GET "$MGR" $R)
check "an unknown department: 422" expect 422 '"field":"rules[0].department"' "$(call PUT "$MGR" $R '{"rules":[{"name":"x","priority":1,"keywords":["a"],"department":"nowhere"}]}')"
check "... saying which" expect 422 'no active department \"nowhere\"' "$(call PUT "$MGR" $R '{"rules":[{"name":"x","priority":1,"keywords":["a"],"department":"nowhere"}]}')"
check "an unknown assisting department: 422" expect 422 '"field":"rules[0].assisting_departments"' "$(call PUT "$MGR" $R '{"rules":[{"priority":1,"keywords":["a"],"department":"finance","assisting_departments":["gone"]}]}')"
check "a rule that matches on nothing: 422" expect 422 '"field":"rules[1].match"' "$(call PUT "$MGR" $R '{"rules":[{"priority":1,"keywords":["a"],"department":"finance"},{"priority":2,"department":"finance"}]}')"
check "two rules with one priority: 422" expect 422 'both have priority 7' "$(call PUT "$MGR" $R '{"rules":[{"name":"a","priority":7,"keywords":["a"],"department":"finance"},{"name":"b","priority":7,"keywords":["b"],"department":"cleaning"}]}')"
check "hours that are not HH:MM: 422" expect 422 '"field":"rules[0].hours"' "$(call PUT "$MGR" $R '{"rules":[{"priority":1,"hours":{"from":"25:00","to":"06:00"},"department":"finance"}]}')"
check "hours that start where they end: 422" expect 422 'must differ' "$(call PUT "$MGR" $R '{"rules":[{"priority":1,"hours":{"from":"08:00","to":"08:00"},"department":"finance"}]}')"
check "an unknown type: 422 naming the element" expect 422 '"field":"rules[0].types[1]"' "$(call PUT "$MGR" $R '{"rules":[{"priority":1,"types":["repair","plumbing"],"department":"finance"}]}')"
check "an unknown field: 422" expect 422 '"field":"rules[0].colour"' "$(call PUT "$MGR" $R '{"rules":[{"priority":1,"keywords":["a"],"department":"finance","colour":"red"}]}')"
check "a blank keyword: 422" expect 422 '"field":"rules[0].keywords[0]"' "$(call PUT "$MGR" $R '{"rules":[{"priority":1,"keywords":["  "],"department":"finance"}]}')"
check "no priority: 422" expect 422 '"field":"rules[0].priority"' "$(call PUT "$MGR" $R '{"rules":[{"keywords":["a"],"department":"finance"}]}')"
check "not {\"rules\": [...]}: 400" expect 400 'the whole ordered set' "$(call PUT "$MGR" $R '{"rule":{}}')"
check "not JSON: 400" expect 400 '' "$(call PUT "$MGR" $R 'rules')"
check "after all that, the set is unchanged" test "$(call GET "$MGR" $R)" = "$before"

echo "== the database guards the order too"
check "two active rules with one priority refused by the database" bash -c "! '$top/deploy/pg.sh' psql -qtAX -v ON_ERROR_STOP=1 -c \"INSERT INTO routing.rules (site_id, priority, keywords, target_department_id) SELECT s.id, 5, '{x}', d.id FROM core.sites s JOIN core.departments d ON d.site_id = s.id AND d.code = 'finance' WHERE s.code = 'SH01'\" 2>/dev/null"

echo "== an empty set"
check "PUT [] clears them: every case goes to the supervisor" expect 200 '"rules":[]' "$(call PUT "$MGR" $R '{"rules":[]}')"
check "the service still answers" wait_for 5 curl -fs "$admin/healthz"

echo "== stop"
intake_stop
finish
