#!/usr/bin/env bash
# GET /v1/cases (the reception log: filters, keyset pagination) and GET
# /v1/cases/{id}/history over real HTTP: a private PostgreSQL cluster, the
# demo site, the real shouwen-intake binary, curl.  Cases are registered
# over HTTP; the states the actions would reach (transfers, owners, due
# times, notes) are written in SQL.  Filters are checked against the set of
# cases the database holds for the same condition, or against a set the
# fixtures name; each check can fail.
set -uo pipefail

name=intake-list
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
trap intake_cleanup EXIT

# post AUTH BODY: register, print the new case's id
post() {
    curl -s -H "Authorization: Bearer $1" -H 'Content-Type: application/json' \
        --data-binary "$2" "$api/v1/cases" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'
}
# lst AUTH QUERY: GET /v1/cases?QUERY (QUERY already encoded), prints "<status> <body>"
lst() { curl -s -o "$tmp/out" -w '%{http_code}' -H "Authorization: Bearer $1" "$api/v1/cases?$2"; printf ' '; cat "$tmp/out"; }
hist() { curl -s -o "$tmp/out" -w '%{http_code}' -H "Authorization: Bearer $1" "$api/v1/cases/$2/history"; printf ' '; cat "$tmp/out"; }
# expect STATUS TEXT OUTPUT: the status is STATUS and the body contains TEXT
expect() { [ "${3%% *}" = "$1" ] && grep -qF -- "$2" <<<"$3" || { echo "got: ${3:0:600}"; return 1; }; }
# same WHAT EXPECTED GOT
same() { [ "$2" = "$3" ] || { echo "$1: expected [$(tr '\n' ' ' <<<"$2")]"; echo "got [$(tr '\n' ' ' <<<"$3")]"; return 1; }; }
enc() { python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"; }

# walk AUTH QUERY [LIMIT]: every page of the listing; prints the ids in the
# order given, fails on an answer other than 200, a duplicate, or an order
# that is not newest first.
cat >"$tmp/walk.py" <<'EOF'
import json, sys, urllib.request
api, auth, query, limit = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
seen, after, pages, last = [], None, 0, None
while True:
    qs = "&".join(x for x in (query, "limit=" + limit, "after=" + after if after else "") if x)
    req = urllib.request.Request(api + "/v1/cases?" + qs, headers={"Authorization": "Bearer " + auth})
    try:
        body = json.load(urllib.request.urlopen(req))
    except urllib.error.HTTPError as e:
        sys.exit("page %d: HTTP %d %s" % (pages + 1, e.code, e.read()[:300]))
    pages += 1
    if len(body["cases"]) > int(limit):
        sys.exit("page %d: %d cases, limit %s" % (pages, len(body["cases"]), limit))
    for c in body["cases"]:
        key = (c["created_at"], c["id"])
        if last is not None and key >= last:
            sys.exit("not newest first: %s after %s" % (key, last))
        last = key
        if c["id"] in seen:
            sys.exit("duplicate %s on page %d" % (c["id"], pages))
        seen.append(c["id"])
    after = body["next"]
    if after is None:
        break
    if not body["cases"]:
        sys.exit("an empty page with a next cursor")
    if pages > 1000:
        sys.exit("no end")
print("\n".join(seen))
print("pages=%d" % pages, file=sys.stderr)
EOF
walk() { python3 "$tmp/walk.py" "$api" "$1" "$2" "${3:-200}" 2>"$tmp/walk.err"; }
# ids WHERE: the ids of the demo site's cases matching WHERE (alias c), newest first
ids() { q "SELECT c.id FROM core.cases c JOIN core.sites s ON s.id = c.site_id WHERE s.code = 'SH01' AND ($1) ORDER BY c.created_at DESC, c.id DESC"; }
sorted() { sort <<<"$1"; }
# matches AUTH QUERY WHERE: the listing (every page) is exactly the cases of WHERE, in order
matches() {
    local got want
    got=$(walk "$1" "$2" "${4:-200}") || { cat "$tmp/walk.err"; return 1; }
    want=$(ids "$3")
    [ -n "$want" ] || { echo "the fixture matches no case: the check would prove nothing"; return 1; }
    same "$2" "$want" "$got"
}
# only AUTH QUERY ID...: the listing is exactly these cases (any order)
only() {
    local auth=$1 query=$2 got; shift 2
    got=$(walk "$auth" "$query") || { cat "$tmp/walk.err"; return 1; }
    same "$query" "$(printf '%s\n' "$@" | sort)" "$(sorted "$got")"
}

echo "== setup"
intake_setup
intake_start

# more credentials, made as deploy/demo.sh makes li.desk's: QA (wei.qa),
# a second external system, a reader key
mktoken() { # mktoken STAFF_CODE: a fresh bearer token for that staff member
    local t="swt_$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    q "INSERT INTO core.staff_tokens (staff_id, token_hash, expires_at) SELECT st.id, sha256('$t'::bytea), now() + interval '1 day' FROM core.staff st JOIN core.sites s ON s.id = st.site_id WHERE s.code = 'SH01' AND st.code = '$1'" >/dev/null
    echo "$t"
}
mkkey() { # mkkey NAME ROLE: a fresh API key
    local prefix secret k
    prefix=$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')
    secret=$(head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n')
    k="swk_${prefix}_${secret}"
    q "INSERT INTO core.api_keys (site_id, name, prefix, key_hash, role) SELECT id, '$1', '$prefix', sha256('$k'::bytea), '$2' FROM core.sites WHERE code = 'SH01'" >/dev/null
    echo "$k"
}
QA=$(mktoken wei.qa)
WU=$(mktoken wu.tech)
KEY2=$(mkkey other-system system)
READER=$(mkkey report-reader reader)

echo "== fixtures"
# A: a complaint by the hotline (system key) with the customer's details
A=$(post "$KEY" '{"site":"SH01","channel":"hotline","type":"complaint","subject":"楼上漏水 water from upstairs","description":"ceiling wet since morning","customer":{"name":"张先生","phone":"13800001234","unit":"3栋","address":"3-2-501"},"first_responder":"li.desk","external_ref":"list-a"}')
# B: a repair registered by li.desk, then transferred to engineering and accepted by wu.tech
B=$(post "$TOKEN" '{"site":"SH01","channel":"visit","type":"repair","subject":"Lift BROKEN in building 5","customer":{"name":"Ms Wang","phone":"13911112222"}}')
# C: urgent repair in progress with wu.tech, resolution overdue
C=$(post "$TOKEN" '{"site":"SH01","channel":"phone","type":"repair","urgency":"urgent","subject":"no hot water","customer":{"name":"李女士","unit":"7栋"}}')
# D: closed, its old deadlines passed: not overdue
D=$(post "$TOKEN" '{"site":"SH01","channel":"phone","type":"consultation","subject":"parking fee question"}')
# E: resolved late but the callback is not due yet: not overdue
E=$(post "$TOKEN" '{"site":"SH01","channel":"phone","type":"help","subject":"rent up 500 yuan"}')
# F: resolved, callback overdue
F=$(post "$TOKEN" '{"site":"SH01","channel":"web","type":"suggestion","subject":"rent up 50% is too much"}')
# G: waiting; its deadline passed while it waited (the clock was paused): not overdue
G=$(post "$KEY" '{"site":"SH01","channel":"api","type":"help","subject":"waiting for the customer","external_ref":"list-g"}')
# H: waiting; its deadline had passed before it began to wait: overdue
H=$(post "$KEY" '{"site":"SH01","channel":"api","type":"help","subject":"waiting, already late","external_ref":"list-h"}')
# I: registered, handoff overdue (1 hour), emergency urgency
I=$(post "$TOKEN" '{"site":"SH01","channel":"phone","type":"emergency","urgency":"emergency","subject":"water main burst 水管爆裂"}')
check "nine cases registered over HTTP" test "$(printf '%s\n' "$A" "$B" "$C" "$D" "$E" "$F" "$G" "$H" "$I" | grep -c '^[0-9a-f-]\{36\}$')" = 9
# clock CASE KIND DUE [met|breached]: one of the case's clocks as the escalation service keeps it
clock() {
    local met=NULL breached=NULL
    [ "${4:-}" != met ] || met="now() - interval '1 minute'"
    [ "${4:-}" != breached ] || breached="now() - interval '2 days'"
    q "INSERT INTO escalation.deadlines (site_id, case_id, kind, due_at, met_at, breached_at) SELECT site_id, id, '$2', $3, $met, $breached FROM core.cases WHERE id = '$1'" >/dev/null
}
sql_fixtures() {
    q "UPDATE core.cases SET status = 'accepted', owner_id = (SELECT id FROM core.staff WHERE code = 'wu.tech'), department_id = (SELECT id FROM core.departments WHERE code = 'engineering'), version = 3 WHERE id = '$B'"
    q "UPDATE core.cases SET status = 'in_progress', owner_id = (SELECT id FROM core.staff WHERE code = 'wu.tech'), department_id = (SELECT id FROM core.departments WHERE code = 'engineering') WHERE id = '$C'"
    clock "$C" resolve "now() - interval '1 hour'"
    clock "$C" answer "now() + interval '1 day'"
    q "UPDATE core.cases SET status = 'closed', closed_at = now() WHERE id = '$D'"
    clock "$D" resolve "now() - interval '3 days'"
    clock "$D" handoff "now() - interval '4 days'"
    q "UPDATE core.cases SET status = 'resolved', resolved_at = now() WHERE id = '$E'"
    clock "$E" resolve "now() - interval '1 day'" met
    clock "$E" callback "now() + interval '2 days'"
    q "UPDATE core.cases SET status = 'resolved', resolved_at = now() - interval '3 days' WHERE id = '$F'"
    clock "$F" resolve "now() + interval '1 day'"
    clock "$F" callback "now() - interval '1 day'"
    q "UPDATE core.cases SET status = 'waiting', waiting_since = now() - interval '2 days', status_before_waiting = 'in_progress', waiting_on = 'customer' WHERE id = '$G'"
    clock "$G" resolve NULL
    q "UPDATE core.cases SET status = 'waiting', waiting_since = now() - interval '1 day', status_before_waiting = 'assigned', waiting_on = 'third_party' WHERE id = '$H'"
    clock "$H" resolve NULL breached
    q "UPDATE core.cases SET escalation_level = 'manager' WHERE id = '$I'"
    clock "$I" handoff "now() - interval '5 minutes'"
    clock "$I" resolve "now() + interval '6 days'"
    # B's handoffs, written out of time order: the history sorts them; B's notes
    q "INSERT INTO core.handoffs (site_id, case_id, kind, from_staff_id, from_department_id, to_staff_id, to_department_id, by_staff_id, on_behalf_of_id, at, reason)
       SELECT c.site_id, c.id, 'accept', zh.id, zh.department_id, wu.id, wu.department_id, li.id, zh.id, '2030-01-02 03:04:05.123456+00', '周主管 appoints 吴师傅'
       FROM core.cases c, core.staff zh, core.staff wu, core.staff li WHERE c.id = '$B' AND zh.code = 'zhou.eng' AND wu.code = 'wu.tech' AND li.code = 'li.desk'"
    q "INSERT INTO core.handoffs (site_id, case_id, kind, from_staff_id, from_department_id, to_department_id, to_staff_id, by_staff_id, at, reason, event_id)
       SELECT c.site_id, c.id, 'transfer', li.id, li.department_id, zh.department_id, zh.id, li.id, '2030-01-02 03:00:00.000001+00', '转工程部: needs a technician', '11111111-2222-4333-8444-555555555555'
       FROM core.cases c, core.staff zh, core.staff li WHERE c.id = '$B' AND zh.code = 'zhou.eng' AND li.code = 'li.desk'"
    q "INSERT INTO core.handoffs (site_id, case_id, kind, to_department_id, by_system, at, reason)
       SELECT c.site_id, c.id, 'escalate', d.id, 'escalation', '2030-01-03 00:00:00+00', 'open 2 days'
       FROM core.cases c, core.departments d WHERE c.id = '$B' AND d.code = 'front-desk'"
    q "INSERT INTO core.case_notes (site_id, case_id, kind, by_staff_id, at, text, expected_date)
       SELECT c.site_id, c.id, 'progress', wu.id, '2030-01-02 05:00:00+00', '师傅明天上门 part ordered', '2030-01-05'
       FROM core.cases c, core.staff wu WHERE c.id = '$B' AND wu.code = 'wu.tech'"
    q "INSERT INTO core.case_notes (site_id, case_id, kind, by_staff_id, at, text)
       SELECT c.site_id, c.id, 'first_contact', wu.id, '2030-01-02 04:00:00+00', 'called Ms Wang'
       FROM core.cases c, core.staff wu WHERE c.id = '$B' AND wu.code = 'wu.tech'"
    # an event whose payload is not an Envelope, in B's partition (copied from its registration)
    q "INSERT INTO bus.events (event_id, type, site, case_id, partition, payload)
       SELECT '99999999-8888-4777-8666-555555555555', 'case.progress', site, case_id, partition, '\\xffffffff'::bytea FROM bus.events WHERE case_id = '$B' AND type = 'case.registered'"
    # another site, with one case: never listed for SH01
    q "INSERT INTO core.sites (code, name) VALUES ('ZZ01', 'elsewhere')"
    q "INSERT INTO core.cases (site_id, number, type, channel, subject, source) SELECT id, 'ZZ01-20300101-0001', 'help', 'api', '楼上漏水 elsewhere', 'demo-hotline' FROM core.sites WHERE code = 'ZZ01'"
}
check "states set in SQL" sql_fixtures
Z=$(q "SELECT c.id FROM core.cases c JOIN core.sites s ON s.id = c.site_id WHERE s.code = 'ZZ01'")

# 120 more: 60 by the hotline, 60 by li.desk, 10 at a time
bulk() {
    local i
    for i in $(seq 1 120); do
        if [ $((i % 2)) = 0 ]; then
            post "$KEY" "{\"site\":\"SH01\",\"channel\":\"api\",\"type\":\"consultation\",\"subject\":\"bulk $i\",\"external_ref\":\"bulk-$i\"}" >/dev/null &
        else
            post "$TOKEN" "{\"site\":\"SH01\",\"channel\":\"visit\",\"type\":\"consultation\",\"subject\":\"bulk $i\"}" >/dev/null &
        fi
        [ $((i % 10)) != 0 ] || wait_jobs
    done
    wait_jobs
}
wait_jobs() { for j in $(jobs -p); do [ "$j" = "$intake_pid" ] || wait "$j"; done; }
bulk
check "120 more registered" test "$(q "SELECT count(*) FROM core.cases WHERE subject LIKE 'bulk %'")" = 120
# 40 of them share one created_at: the id alone orders them
q "UPDATE core.cases SET created_at = '2020-01-01 00:00:00+00' WHERE subject LIKE 'bulk %' AND id IN (SELECT id FROM core.cases WHERE subject LIKE 'bulk %' ORDER BY id LIMIT 40)" >/dev/null
total=$(ids "true" | wc -l)
check "129 cases in SH01" test "$total" = 129

echo "== the listing"
out=$(lst "$TOKEN" "")
check "GET /v1/cases: 200 with cases and next" expect 200 '"next":"' "$out"
check "... 50 by default" test "$(python3 -c 'import json,sys; print(len(json.loads(sys.stdin.read().split(" ",1)[1])["cases"]))' <<<"$out")" = 50
out=$(lst "$TOKEN" "limit=200&text=$(enc 'Lift BROKEN')")
check "an item carries its fields" expect 200 "{\"id\":\"$B\",\"number\":\"SH01-" "$out"
for f in '"status":"accepted"' '"type":"repair"' '"channel":"visit"' '"urgency":"normal"' '"subject":"Lift BROKEN in building 5"' \
    '"department":"engineering"' '"owner":"wu.tech"' '"first_responder":"li.desk"' '"escalation_level":"none"' '"version":3' \
    '"created_at":"20' '"handoff_due":null' '"callback_due":null' '"customer":{"name":"Ms Wang","phone":"13911112222"}' '"next":null'; do
    check "... $f" expect 200 "$f" "$out"
done

echo "== pagination"
check "limit=50 walks every case exactly once, newest first" matches "$TOKEN" "" "true" 50
check "... over 3 pages" grep -qx 'pages=3' "$tmp/walk.err"
check "limit=7 across 40 cases with the same created_at" matches "$TOKEN" "" "true" 7
check "limit=1: one case and a cursor" expect 200 '"next":"' "$(lst "$TOKEN" "limit=1")"
check "... exactly one" test "$(lst "$TOKEN" "limit=1" | grep -o '"id":' | wc -l)" = 1
next=$(lst "$TOKEN" "limit=50" | python3 -c 'import json,sys; print(json.loads(sys.stdin.read().split(" ",1)[1])["next"])')
page2=$(lst "$TOKEN" "limit=50&after=$next")
late=$(post "$TOKEN" '{"site":"SH01","channel":"visit","type":"help","subject":"registered while paging"}')
check "a case registered meanwhile does not shift the next page" same "page 2" "$page2" "$(lst "$TOKEN" "limit=50&after=$next")"
check "... and is first on a fresh first page" expect 200 "{\"cases\":[{\"id\":\"$late\"" "$(lst "$TOKEN" "limit=1")"
check "the last page has next null" expect 200 '"next":null' "$(lst "$TOKEN" "limit=200")"
check "malformed cursor: 400" expect 400 'malformed cursor' "$(lst "$TOKEN" "after=zzz")"
check "cursor of 47 hex digits: 400" expect 400 'malformed cursor' "$(lst "$TOKEN" "after=${next:0:47}")"
check "cursor with a non-hex digit: 400" expect 400 'malformed cursor' "$(lst "$TOKEN" "after=${next:0:47}g")"
check "cursor past year 9999: 400" expect 400 'malformed cursor' "$(lst "$TOKEN" "after=ffffffffffffffff${next:16}")"
check "a well-formed cursor of no case (year 2100) pages by position: 200" expect 200 '"cases":[{' "$(lst "$TOKEN" "after=$(printf %016x 4102444800000000)ffffffffffffffffffffffffffffffff&limit=1")"
check "... a cursor before everything: empty, next null" expect 200 '{"cases":[],"next":null}' "$(lst "$TOKEN" "after=000000000000000000000000000000000000000000000000")"

echo "== filters"
open="c.status NOT IN ('closed', 'closed_unresolvable', 'referred_out')"
check "status=accepted" only "$TOKEN" "status=accepted" "$B"
check "status=waiting,resolved" only "$TOKEN" "status=waiting,resolved" "$E" "$F" "$G" "$H"
check "status=registered matches the database" matches "$TOKEN" "status=registered" "c.status = 'registered'" 50
check "status=registered,in_progress,closed matches the database" matches "$TOKEN" "status=registered%2Cin_progress%2Cclosed" "c.status IN ('registered', 'in_progress', 'closed')"
check "department=engineering" only "$TOKEN" "department=engineering" "$B" "$C"
check "department=front-desk matches the database" matches "$TOKEN" "department=front-desk" "c.department_id = (SELECT id FROM core.departments WHERE code = 'front-desk')" 40
check "department of no case: empty" expect 200 '{"cases":[],"next":null}' "$(lst "$TOKEN" "department=finance")"
check "owner=wu.tech" only "$TOKEN" "owner=wu.tech" "$B" "$C"
check "owner=me for wu.tech" only "$WU" "owner=me" "$B" "$C"
check "owner=me for li.desk matches the database" matches "$TOKEN" "owner=me" "c.owner_id = (SELECT id FROM core.staff WHERE code = 'li.desk')" 50
check "first_responder=li.desk matches the database" matches "$TOKEN" "first_responder=li.desk" "c.first_responder_id = (SELECT id FROM core.staff WHERE code = 'li.desk')" 50
check "first_responder=me for wu.tech: none" expect 200 '{"cases":[],"next":null}' "$(lst "$WU" "first_responder=me")"
check "type=repair" only "$TOKEN" "type=repair" "$B" "$C"
check "type=help,emergency" only "$TOKEN" "type=help,emergency" "$E" "$G" "$H" "$I" "$late"
check "urgency=urgent" only "$TOKEN" "urgency=urgent" "$C"
check "urgency=urgent,emergency" only "$TOKEN" "urgency=urgent,emergency" "$C" "$I"
check "escalation_level=supervisor,manager,leader matches the database" matches "$TOKEN" "escalation_level=supervisor,manager,leader" "c.escalation_level IN ('supervisor', 'manager', 'leader')"
check "escalation_level=manager,leader" only "$TOKEN" "escalation_level=manager,leader" "$I"
check "escalation_level=none matches the database" matches "$TOKEN" "escalation_level=none" "c.escalation_level = 'none'" 50
check "overdue=true: passed deadlines of open cases only" only "$TOKEN" "overdue=true" "$C" "$F" "$H" "$I"
check "overdue=false: all the others" matches "$TOKEN" "overdue=false" "c.id NOT IN ('$C', '$F', '$H', '$I')" 50
check "department + status + urgency" only "$TOKEN" "department=engineering&status=in_progress&urgency=urgent" "$C"
check "department + status that excludes" expect 200 '{"cases":[],"next":null}' "$(lst "$TOKEN" "department=engineering&status=registered")"
check "owner + type + overdue" only "$TOKEN" "owner=wu.tech&type=repair&overdue=true" "$C"
check "first_responder + a status list" matches "$TOKEN" "first_responder=li.desk&status=resolved,waiting,accepted" "c.status IN ('resolved', 'waiting', 'accepted') AND c.first_responder_id = (SELECT id FROM core.staff WHERE code = 'li.desk')"

echo "== text search"
check "Chinese in the subject (漏水)" only "$TOKEN" "text=$(enc 漏水)" "$A"
check "Chinese in the customer's name (张先生)" only "$TOKEN" "text=$(enc 张先生)" "$A"
check "Chinese in the unit (7栋)" only "$TOKEN" "text=$(enc 7栋)" "$C"
check "the address" only "$TOKEN" "text=$(enc 3-2-501)" "$A"
check "the description" only "$TOKEN" "text=ceiling+wet" "$A"
check "the case number" only "$TOKEN" "text=$(q "SELECT number FROM core.cases WHERE id = '$I'")" "$I"
check "case-insensitive (lift broken)" only "$TOKEN" "text=lift%20broken" "$B"
check "% is a character, not a wildcard (50%)" only "$TOKEN" "text=$(enc 50%)" "$F"
check "_ is a character, not a wildcard" expect 200 '{"cases":[],"next":null}' "$(lst "$TOKEN" "text=$(enc 'rent_up')")"
check "text + status" only "$TOKEN" "text=rent&status=resolved" "$E" "$F"
check "text + type (bulk repair: none)" expect 200 '{"cases":[],"next":null}' "$(lst "$TOKEN" "text=bulk&type=repair")"
check "an empty text filters nothing" matches "$TOKEN" "text=" "true"

echo "== who sees what"
check "a system key sees exactly the cases it submitted" matches "$KEY" "" "c.source = 'demo-hotline'" 50
check "... and its filters stay within them" only "$KEY" "status=waiting" "$G" "$H"
check "... not li.desk's (text=Lift)" expect 200 '{"cases":[],"next":null}' "$(lst "$KEY" "text=Lift")"
check "another system key sees none of them" expect 200 '{"cases":[],"next":null}' "$(lst "$KEY2" "")"
check "a reader key sees the whole site" matches "$READER" "" "true"
not_in() { ! grep -qF -- "$1" <<<"$2" || { echo "found $1"; return 1; }; }
all=$(walk "$TOKEN" "")
check "staff never see another site's case" not_in "$Z" "$all"
check "... nor by text" expect 200 '{"cases":[],"next":null}' "$(lst "$TOKEN" "text=elsewhere")"
out=$(lst "$TOKEN" "text=$(enc 张先生)")
check "the receptionist sees the phone" expect 200 '"phone":"13800001234"' "$out"
out=$(lst "$QA" "text=$(enc 张先生)")
check "QA sees the phone masked" expect 200 '"customer":{"name":"张先生","phone":"138****1234"}' "$out"
out=$(lst "$QA" "limit=200")
check "... in every item" expect 200 '"phone":"139****2222"' "$out"
check "... no phone shown whole" not_in '"phone":"1380' "$out"
check "the submitting system sees its customer's phone" expect 200 '"phone":"13800001234"' "$(lst "$KEY" "text=$(enc 张先生)")"

echo "== bad input"
check "unknown parameter: 400 naming it" expect 400 'unknown query parameter \"colour\"' "$(lst "$TOKEN" "status=closed&colour=red")"
check "unknown parameter, %-encoded name: 400 decoded" expect 400 'unknown query parameter \"sta tus\"' "$(lst "$TOKEN" "sta%20tus=closed")"
check "a parameter twice: 400" expect 400 'given twice' "$(lst "$TOKEN" "status=closed&status=waiting")"
check "malformed %-escape: 400" expect 400 'malformed query string' "$(lst "$TOKEN" "text=%zz")"
check "truncated %-escape: 400" expect 400 'malformed query string' "$(lst "$TOKEN" "text=ab%4")"
check "%00: 400" expect 400 'malformed query string' "$(lst "$TOKEN" "text=a%00b")"
check "not UTF-8: 400" expect 400 'not UTF-8' "$(lst "$TOKEN" "text=%E6%BC")"
out=$(lst "$TOKEN" "status=bogus&limit=0&overdue=maybe&type=repair,x&urgency=high&escalation_level=boss")
check "invalid values: 422" expect 422 '"error":"invalid fields"' "$out"
for f in status limit overdue type urgency escalation_level; do
    check "... names $f" expect 422 "{\"field\":\"$f\"" "$out"
done
check "limit=201: 422" expect 422 '"field":"limit"' "$(lst "$TOKEN" "limit=201")"
check "limit=abc: 422" expect 422 '"field":"limit"' "$(lst "$TOKEN" "limit=abc")"
check "limit=200: 200" expect 200 '"cases":[' "$(lst "$TOKEN" "limit=200")"
check "status with an empty item: 422" expect 422 '"field":"status"' "$(lst "$TOKEN" "status=closed,")"
check "unknown department: 422" expect 422 '{"field":"department","message":"no department \"plumbing\" in site SH01"}' "$(lst "$TOKEN" "department=plumbing")"
check "another site's department code is unknown here" expect 422 '"field":"department"' "$(q "INSERT INTO core.departments (site_id, code, name) SELECT id, 'zz-only', 'x' FROM core.sites WHERE code = 'ZZ01'"; lst "$TOKEN" "department=zz-only")"
check "not a code: 422" expect 422 '"field":"department"' "$(lst "$TOKEN" "department=$(enc '前台')")"
check "unknown owner: 422" expect 422 '{"field":"owner","message":"no staff member \"nobody\" in site SH01"}' "$(lst "$TOKEN" "owner=nobody")"
check "unknown first_responder: 422" expect 422 '"field":"first_responder"' "$(lst "$TOKEN" "first_responder=nobody")"
check "owner=me with an API key: 422" expect 422 '"field":"owner"' "$(lst "$KEY" "owner=me")"
check "text over 200 characters: 422" expect 422 '"field":"text"' "$(lst "$TOKEN" "text=$(enc "$(printf '漏%.0s' $(seq 1 201))")")"
check "text of 200 Chinese characters: 200" expect 200 '"cases":[]' "$(lst "$TOKEN" "text=$(enc "$(printf '漏%.0s' $(seq 1 200))")")"
check "no credentials: 401" expect 401 'missing credentials' "$(curl -s -o "$tmp/out" -w '%{http_code}' "$api/v1/cases"; printf ' '; cat "$tmp/out")"

echo "== history"
out=$(hist "$TOKEN" "$B")
check "GET history: 200 with the case" expect 200 "{\"case\":{\"id\":\"$B\",\"number\":\"SH01-" "$out"
check "... its version" expect 200 '"version":3}' "$out"
# the history's read of bus.events goes by the case (0018), not through the whole partition
plan=$(q "SET enable_seqscan = off; EXPLAIN (COSTS OFF) SELECT payload FROM bus.events WHERE partition = 3 AND case_id = '$B'::uuid ORDER BY created_at, seq")
check "the history reads the case's events through events_case_idx" eval 'grep -q "Index.*events_case_idx" <<<"$plan"'
hjson() { python3 -c 'import json,sys; d=json.loads(sys.stdin.read().split(" ",1)[1]); print('"$1"')' <<<"$out"; }
check "three handoffs in time order" same "kinds" "transfer accept escalate" "$(hjson '" ".join(h["kind"] for h in d["handoffs"])')"
check "the transfer: signed by li.desk, timed, from and to, why, its event" same "transfer" \
    '{"kind":"transfer","from_staff":"li.desk","from_department":"front-desk","to_staff":"zhou.eng","to_department":"engineering","by":"li.desk","by_system":null,"on_behalf_of":null,"at":"2030-01-02T03:00:00.000001Z","reason":"转工程部: needs a technician","event_id":"11111111-2222-4333-8444-555555555555"}' \
    "$(hjson 'json.dumps(d["handoffs"][0], ensure_ascii=False, separators=(",", ":"))')"
check "the acceptance: li.desk on behalf of zhou.eng, to wu.tech" same "accept" \
    "li.desk zhou.eng wu.tech engineering 2030-01-02T03:04:05.123456Z" \
    "$(hjson '" ".join(str(d["handoffs"][1][k]) for k in ("by", "on_behalf_of", "to_staff", "to_department", "at"))')"
check "the escalation: signed by a service" same "escalate" "None escalation front-desk" \
    "$(hjson '" ".join(str(d["handoffs"][2][k]) for k in ("by", "by_system", "to_department"))')"
check "two notes in time order" same "notes" "first_contact progress" "$(hjson '" ".join(n["kind"] for n in d["notes"])')"
check "the progress note: by, at, text, expected date" same "note" \
    '{"kind":"progress","by":"wu.tech","at":"2030-01-02T05:00:00.000000Z","text":"师傅明天上门 part ordered","expected_date":"2030-01-05","satisfaction":null,"event_id":null}' \
    "$(hjson 'json.dumps(d["notes"][1], ensure_ascii=False, separators=(",", ":"))')"
check "events: the registration, then the undecodable one" same "events" "case.registered case.progress" "$(hjson '" ".join(e["type"] for e in d["events"])')"
check "the registration's envelope: by li.desk, version 1, its time" same "registered" \
    "li.desk None None 1 True" \
    "$(hjson '" ".join(str(x) for x in (d["events"][0]["by"], d["events"][0]["by_system"], d["events"][0]["on_behalf_of"], d["events"][0]["case_version"], d["events"][0]["time"].endswith("Z") and len(d["events"][0]["time"]) == 27))')"
check "... its outbox row: event id, seq, created_at" same "registered row" \
    "$(q "SELECT event_id || ' ' || seq FROM bus.events WHERE case_id = '$B' AND type = 'case.registered'") True" \
    "$(hjson 'd["events"][0]["event_id"] + " " + str(d["events"][0]["seq"]) + " " + str(d["events"][0]["created_at"].startswith("20"))')"
check "an undecodable payload is shown, not fatal" same "undecodable" \
    '{"event_id":"99999999-8888-4777-8666-555555555555","type":"case.progress","seq":'"$(q "SELECT seq FROM bus.events WHERE event_id = '99999999-8888-4777-8666-555555555555'")"',"created_at":"'"$(q "SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') FROM bus.events WHERE event_id = '99999999-8888-4777-8666-555555555555'")"'","error":"undecodable payload"}' \
    "$(hjson 'json.dumps(d["events"][1], ensure_ascii=False, separators=(",", ":"))')"
out=$(hist "$KEY" "$A")
check "the submitting system reads its case's history" expect 200 "{\"case\":{\"id\":\"$A\"" "$out"
check "... empty handoffs and notes" expect 200 '"handoffs":[],"notes":[],"events":[{' "$out"
check "... its registration signed by the system" same "by_system" "None demo-hotline 1" \
    "$(hjson '" ".join(str(x) for x in (d["events"][0]["by"], d["events"][0]["by_system"], d["events"][0]["case_version"]))')"
check "QA reads a history" expect 200 '"handoffs":[{' "$(hist "$QA" "$B")"
check "a reader key reads any case's history" expect 200 '"handoffs":[{' "$(hist "$READER" "$B")"
check "a system key, another's case: 404" expect 404 "no such case: $B" "$(hist "$KEY" "$B")"
check "another system key, the hotline's case: 404" expect 404 'no such case' "$(hist "$KEY2" "$A")"
check "unknown case: 404" expect 404 'no such case' "$(hist "$TOKEN" 00000000-0000-4000-8000-000000000000)"
check "another site's case: 404" expect 404 'no such case' "$(hist "$TOKEN" "$Z")"
check "... even for a reader key" expect 404 'no such case' "$(hist "$READER" "$Z")"
check "not a UUID: 404" expect 404 'not a UUID' "$(hist "$TOKEN" 12345)"
check "POST history: 405" expect 405 'method not allowed' "$(curl -s -X POST -o "$tmp/out" -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "$api/v1/cases/$B/history"; printf ' '; cat "$tmp/out")"

echo "== the end"
check "no customer data in the log" bash -c "! grep -q '13800001234\|张先生\|13911112222' '$tmp/intake.log'"
intake_stop
finish
