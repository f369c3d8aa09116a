#!/usr/bin/env bash
# The directory administration API of intake (/v1/sites/...) over real
# HTTP: a private PostgreSQL cluster, the demo site, the real
# shouwen-intake binary, curl.  Who may do what (admin key, manager token,
# everyone else 403), other sites 404, every 422 naming its fields, 409 for
# duplicates, 404 and 405, cycles refused, a staff token and an API key
# issued once, working as credentials, revoked (then 401), their secrets
# never stored nor logged, a leader's contact details never answered, and
# the service still serving after all that.
set -uo pipefail

name=intake-admin
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
trap intake_cleanup EXIT

hex() { head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }
# call METHOD AUTH PATH [BODY]: prints "<status> <body>"; every answer is also kept in all-answers
call() {
    local method=$1 auth=$2 path=$3 out
    out=$(mktemp -p "$tmp")
    if [ $# -ge 4 ]; then
        curl -s -o "$out" -w '%{http_code}' -X "$method" -H "Authorization: Bearer $auth" \
            -H 'Content-Type: application/json' --data-binary "$4" "$api$path"
    else
        curl -s -o "$out" -w '%{http_code}' -X "$method" -H "Authorization: Bearer $auth" "$api$path"
    fi
    printf ' '
    cat "$out"
    { cat "$out"; echo; } >>"$tmp/all-answers"
    rm -f "$out"
}
# expect STATUS TEXT OUTPUT: the status is STATUS and the body contains TEXT
expect() { [ "${3%% *}" = "$1" ] && grep -qF -- "$2" <<<"$3" || { echo "got: $3"; return 1; }; }
# lacks TEXT OUTPUT: the output does not contain TEXT
lacks() { ! grep -qF -- "$1" <<<"$2" || { echo "found \"$1\" in: $2"; return 1; }; }
# shows STATUS TEXT OUTPUT ABSENT...: as expect, and none of ABSENT is in the output
shows() {
    local status=$1 text=$2 out=$3 a
    shift 3
    expect "$status" "$text" "$out" || return 1
    for a in "$@"; do lacks "$a" "$out" || return 1; done
}
field() { python3 -c 'import json,sys; d=json.loads(sys.stdin.read().split(" ",1)[1]); print(d'"$1"')'; }

echo "== setup"
intake_setup
SYSKEY=$KEY  # role system
DESK=$TOKEN  # li.desk, a receptionist
aprefix=$(hex 4)
ADMIN="swk_${aprefix}_$(hex 20)"
q "INSERT INTO core.api_keys (site_id, name, prefix, key_hash, role) SELECT id, 'test-admin', '$aprefix', sha256('$ADMIN'::bytea), 'admin' FROM core.sites WHERE code = 'SH01'" >/dev/null
MGR="swt_$(hex 24)"
q "INSERT INTO core.staff_tokens (staff_id, token_hash, expires_at) SELECT id, sha256('$MGR'::bytea), now() + interval '1 day' FROM core.staff WHERE code = 'qian.mgr'" >/dev/null
check "an admin key and a manager token made in SQL" test "$(q "SELECT (SELECT count(*) FROM core.api_keys WHERE role = 'admin') || ' ' || (SELECT count(*) FROM core.staff_tokens)")" = "1 3"
intake_start
if [ "$fail" -gt 0 ]; then
    tail -n 5 "$tmp/intake.log"
    finish
    exit 1
fi
S=/v1/sites/SH01

echo "== who may"
check "a receptionist's token: 403 saying who may" expect 403 "manager's staff token" "$(call POST "$DESK" $S/staff '{"code":"x.y","name":"x","role":"staff"}')"
check "... but she reads the staff list (the console appoints and forwards from it)" expect 200 '"code":"wu.tech"' "$(call GET "$DESK" "$S/staff?limit=500")"
check "... also for issuing herself a token" expect 403 'forbidden' "$(call POST "$DESK" $S/staff/li.desk/tokens '{}')"
check "a system key: 403 for the directory" expect 403 'role admin' "$(call GET "$SYSKEY" $S/departments)"
check "a system key cannot create a site: 403" expect 403 'sites are created only with an API key of role admin' "$(call POST "$SYSKEY" /v1/sites '{"code":"SYS1","name":"x"}')"
check "a manager cannot touch API keys: 403" expect 403 'only with an API key of role admin' "$(call GET "$MGR" $S/api-keys)"
check "a manager cannot change the site: 403" expect 403 'only with an API key of role admin' "$(call PATCH "$MGR" $S '{"name":"x"}')"
check "a manager cannot create a site: 403" expect 403 'sites are created only' "$(call POST "$MGR" /v1/sites '{"code":"MGR1","name":"x"}')"
check "no credentials: 401" expect 401 'missing credentials' "$(curl -s -w '%{http_code}' -o "$tmp/out" "$api$S/staff"; printf ' '; cat "$tmp/out")"
check "a manager reads the staff list" expect 200 '"code":"li.desk"' "$(call GET "$MGR" $S/staff)"

echo "== sites"
out=$(call GET "$ADMIN" /v1/sites)
check "GET /v1/sites: the admin's own site" expect 200 '"code":"SH01"' "$out"
check "... and only it" test "$(field '["sites"].__len__()' <<<"$out")" = 1
check "another site's code: 404" expect 404 'no such site: ZZ01' "$(call GET "$ADMIN" /v1/sites/ZZ01/staff)"
check "a manager asking for another site: 404 too" expect 404 'no such site' "$(call GET "$MGR" /v1/sites/ZZ01)"
check "PATCH the site's name" expect 200 '"name":"示范小区 renamed"' "$(call PATCH "$ADMIN" $S '{"name":"示范小区 renamed"}')"
check "... written" test "$(q "SELECT name FROM core.sites WHERE code = 'SH01'")" = "示范小区 renamed"
out=$(call PATCH "$ADMIN" $S '{"time_zone":"Mars/Olympus","code":"SH02","bogus":true,"active":"no"}')
check "PATCH a site with bad fields: 422" expect 422 '"field":"time_zone"' "$out"
for f in code bogus active; do check "... names $f" expect 422 "\"field\":\"$f\"" "$out"; done
check "... nothing changed" test "$(q "SELECT time_zone FROM core.sites WHERE code = 'SH01'")" = Asia/Shanghai
out=$(call POST "$ADMIN" /v1/sites '{"code":"BJ01","name":"北京 Beijing","time_zone":"Asia/Shanghai"}')
check "POST /v1/sites: 201 with a first admin key" expect 201 '"admin_key":{' "$out"
BJKEY=$(field '["admin_key"]["key"]' <<<"$out")
check "... of the form swk_<8 hex>_<40 hex>" grep -qE '^swk_[0-9a-f]{8}_[0-9a-f]{40}$' <<<"$BJKEY"
check "... which administers the new site" expect 200 '"code":"BJ01"' "$(call GET "$BJKEY" /v1/sites/BJ01)"
check "... while SH01's admin key does not see it: 404" expect 404 'no such site: BJ01' "$(call GET "$ADMIN" /v1/sites/BJ01)"
check "... nor does the new key see SH01" expect 404 'no such site' "$(call GET "$BJKEY" $S/staff)"
check "a site code taken: 409" expect 409 'site BJ01 already exists' "$(call POST "$ADMIN" /v1/sites '{"code":"BJ01","name":"again"}')"
out=$(call POST "$ADMIN" /v1/sites '{"code":"bj-2","name":" ","time_zone":"Nowhere/Town"}')
for f in code name time_zone; do check "POST a bad site: 422 names $f" expect 422 "\"field\":\"$f\"" "$out"; done

echo "== departments"
out=$(call POST "$MGR" $S/departments '{"code":"garden","name":"绿化部 Gardening","parent":"management","scopes":["help",{"type":"repair","category":"trees"}]}')
check "a manager adds a department: 201" expect 201 '"code":"garden"' "$out"
check "... with its parent" expect 201 '"parent":"management"' "$out"
check "... and its scopes" expect 201 '"scopes":["help",{"type":"repair","category":"trees"}]' "$out"
check "... written to core.department_scopes" test "$(q "SELECT string_agg(sc.case_type || '/' || coalesce(sc.category, '-'), ',' ORDER BY sc.case_type) FROM core.department_scopes sc JOIN core.departments d ON d.id = sc.department_id WHERE d.code = 'garden'")" = "help/-,repair/trees"
check "GET it back" expect 200 '"name":"绿化部 Gardening"' "$(call GET "$ADMIN" $S/departments/garden)"
out=$(call GET "$ADMIN" "$S/departments?limit=3")
check "a page of 3 departments with a next code" test "$(field '["departments"].__len__()' <<<"$out") $(field '["next"]' <<<"$out")" = "3 finance"
check "... and the next page starts after it" expect 200 '"code":"front-desk"' "$(call GET "$ADMIN" "$S/departments?limit=1&after=finance")"
check "the whole list has the new one" expect 200 '"code":"garden"' "$(call GET "$ADMIN" $S/departments)"
check "a bad limit: 400" expect 400 'limit' "$(call GET "$ADMIN" "$S/departments?limit=0")"
check "an unknown query parameter: 400" expect 400 'unknown query parameter' "$(call GET "$ADMIN" "$S/departments?sort=name")"
out=$(call PATCH "$MGR" $S/departments/garden '{"name":"园林部 Landscaping","scopes":["suggestion"],"is_front_desk":true}')
check "PATCH a department" expect 200 '"name":"园林部 Landscaping"' "$out"
check "... scopes replaced whole" test "$(q "SELECT string_agg(sc.case_type, ',') FROM core.department_scopes sc JOIN core.departments d ON d.id = sc.department_id WHERE d.code = 'garden'")" = suggestion
check "... flag set" test "$(q "SELECT is_front_desk FROM core.departments WHERE code = 'garden'")" = t
check "a department code taken: 409" expect 409 'department garden already exists' "$(call POST "$MGR" $S/departments '{"code":"garden","name":"again"}')"
out=$(call POST "$MGR" $S/departments '{"code":"bad code","name":"","parent":"nowhere","is_qa":"yes","scopes":["nope",{"type":"repair","colour":"red"}],"bogus":1}')
check "a bad department: 422" expect 422 '"error":"invalid fields"' "$out"
for f in code name parent is_qa 'scopes[0]' 'scopes[1].colour' bogus; do
    check "... names $f" expect 422 "\"field\":\"$f\"" "$out"
done
check "an unknown parent: 422 naming it" expect 422 'no department \"nowhere\" at this site' "$(call POST "$MGR" $S/departments '{"code":"pond","name":"Pond","parent":"nowhere"}')"
check "... and nothing was written" test "$(q "SELECT count(*) FROM core.departments WHERE code = 'pond'")" = 0
check "a parent cycle: 422" expect 422 'would make a cycle' "$(call PATCH "$MGR" $S/departments/management '{"parent":"garden"}')"
check "its own parent: 422" expect 422 'its own parent' "$(call PATCH "$MGR" $S/departments/garden '{"parent":"garden"}')"
check "the code cannot change: 422" expect 422 'cannot be changed' "$(call PATCH "$MGR" $S/departments/garden '{"code":"park"}')"
check "an unknown department: 404" expect 404 'no such department: nope' "$(call GET "$MGR" $S/departments/nope)"
check "DELETE a department: 405" expect 405 'method not allowed' "$(call DELETE "$MGR" $S/departments/garden)"
string201=$(printf 'x%.0s' $(seq 1 201))
check "a name over 200 characters: 422" expect 422 'at most 200 characters' "$(call POST "$MGR" $S/departments "{\"code\":\"long\",\"name\":\"$string201\"}")"

echo "== staff"
out=$(call POST "$MGR" $S/staff '{"code":"he.garden","name":"何师傅 He (gardener)","role":"handler","department":"garden","supervisor":"qian.mgr","phone":"13900000099","wechat":"he_garden"}')
check "a manager adds a staff member: 201" expect 201 '"code":"he.garden"' "$out"
check "... in their department, under their supervisor" expect 201 '"department":"garden","supervisor":"qian.mgr"' "$out"
check "... and the manager sees the phone" expect 201 '"phone":"13900000099"' "$out"
out=$(call POST "$ADMIN" $S/staff '{"code":"ma.deputy","name":"马副总 Ma (deputy GM)","role":"leader","department":"management","supervisor":"zhao.gm","phone":"13911112222","email":"ma@example.cn","wechat":"ma_private"}')
check "a leader added: contact private by default" expect 201 '"contact_private":true' "$out"
check "... and the answer has no phone, email or wechat" shows 201 '"code":"ma.deputy"' "$out" 13911112222 ma@example ma_private '"phone"'
check "... which are stored all the same" test "$(q "SELECT phone FROM core.staff WHERE code = 'ma.deputy'")" = 13911112222
out=$(call GET "$ADMIN" "$S/staff?limit=500")
check "the staff list shows others' phones to the admin" expect 200 '"phone":"13900000002"' "$out"
check "... but not the general manager's" lacks 13900000001 "$out"
check "... nor the deputy's" lacks 13911112222 "$out"
check "GET the general manager: contact_private, no phone member" shows 200 '"contact_private":true' "$(call GET "$MGR" $S/staff/zhao.gm)" '"phone"' 13900000001
check "PATCH the deputy's phone: still not answered" shows 200 '"on_duty":false' "$(call PATCH "$ADMIN" $S/staff/ma.deputy '{"phone":"13911119999","on_duty":false}')" 13911119999 '"phone"'
check "... though changed" test "$(q "SELECT phone || ' ' || on_duty FROM core.staff WHERE code = 'ma.deputy'")" = "13911119999 false"
check "a leader's contact may not be made public: 422" expect 422 '"field":"contact_private"' "$(call POST "$ADMIN" $S/staff '{"code":"open.leader","name":"Open","role":"leader","contact_private":false}')"
check "PATCH contact_private false on the general manager: still private" shows 200 '"contact_private":true' "$(call PATCH "$MGR" $S/staff/zhao.gm '{"contact_private":false}')" 13900000001 '"phone"'
check "... and in the table" test "$(q "SELECT contact_private FROM core.staff WHERE code = 'zhao.gm'")" = t
check "the table itself refuses a public leader" bash -c "'$top/deploy/pg.sh' psql -qtAX -v ON_ERROR_STOP=1 -c \"UPDATE core.staff SET contact_private = false WHERE code = 'zhao.gm'\" 2>&1 | grep -q staff_leader_contact_private"
out=$(call POST "$MGR" $S/staff '{"code":"x y","name":"","role":"boss","department":"nowhere","supervisor":"nobody","phone":"call me","email":"nope","on_duty":1,"salary":9}')
check "a bad staff member: 422" expect 422 '"error":"invalid fields"' "$out"
for f in code name role department supervisor phone email on_duty salary; do
    check "... names $f" expect 422 "\"field\":\"$f\"" "$out"
done
check "an unknown supervisor: 422 naming it" expect 422 'no active staff member \"nobody\" at this site' "$(call POST "$MGR" $S/staff '{"code":"new.one","name":"New","role":"staff","supervisor":"nobody"}')"
check "... and nothing was written" test "$(q "SELECT count(*) FROM core.staff WHERE code = 'new.one'")" = 0
check "a staff code taken: 409" expect 409 'staff member li.desk already exists' "$(call POST "$MGR" $S/staff '{"code":"li.desk","name":"Li again","role":"receptionist"}')"
check "a supervisor cycle: 422" expect 422 'would make a cycle' "$(call PATCH "$MGR" $S/staff/qian.mgr '{"supervisor":"li.desk"}')"
check "their own supervisor: 422" expect 422 'their own supervisor' "$(call PATCH "$MGR" $S/staff/li.desk '{"supervisor":"li.desk"}')"
check "... qian.mgr still reports to zhao.gm" test "$(q "SELECT b.code FROM core.staff s JOIN core.staff b ON b.id = s.supervisor_id WHERE s.code = 'qian.mgr'")" = zhao.gm
check "PATCH null clears the department" expect 200 '"department":null' "$(call PATCH "$MGR" $S/staff/wang.guard '{"department":null}')"
check "an unknown staff member: 404" expect 404 'no such staff member: nobody' "$(call GET "$MGR" $S/staff/nobody)"
check "a %-encoded code is decoded" expect 200 '"code":"li.desk"' "$(call GET "$MGR" $S/staff/li%2Edesk)"
check "an unknown collection: 404" expect 404 'no such resource' "$(call GET "$ADMIN" $S/things)"
check "DELETE the staff list: 405" expect 405 'method not allowed' "$(call DELETE "$MGR" $S/staff)"
check "PUT a site: 405" expect 405 'method not allowed' "$(call PUT "$ADMIN" $S '{}')"
check "malformed JSON: 400" expect 400 'malformed JSON' "$(call POST "$MGR" $S/staff '{"code":')"
check "not an object: 400" expect 400 'expected an object' "$(call POST "$MGR" $S/staff '["he.garden"]')"

echo "== staff tokens"
check "a manager may not mint a leader's token: 403" expect 403 'admin issues tokens to managers and leaders' "$(call POST "$MGR" $S/staff/zhao.gm/tokens '{}')"
check "... nor another manager's (their own included)" expect 403 'admin issues tokens' "$(call POST "$MGR" $S/staff/qian.mgr/tokens '{}')"
check "an admin key may" expect 201 '"token":"swt_' "$(call POST "$ADMIN" $S/staff/zhao.gm/tokens '{}')"
check "a token for an unknown staff member: 404" expect 404 'no such staff member' "$(call POST "$MGR" $S/staff/nobody/tokens '{}')"
check "expires_in_days out of range: 422" expect 422 '"field":"expires_in_days"' "$(call POST "$MGR" $S/staff/he.garden/tokens '{"expires_in_days":0}')"
out=$(call POST "$MGR" $S/staff/he.garden/tokens '{"expires_in_days":7}')
check "a manager issues a token: 201" expect 201 '"token":"swt_' "$out"
TOK=$(field '["token"]' <<<"$out")
tok_id=$(field '["id"]' <<<"$out")
check "... swt_ and 48 hex digits" grep -qE '^swt_[0-9a-f]{48}$' <<<"$TOK"
check "... expiring in 7 days" test "$(q "SELECT round(extract(epoch FROM expires_at - created_at) / 86400) FROM core.staff_tokens WHERE id = '$tok_id'")" = 7
check "... only its SHA-256 stored" test "$(q "SELECT encode(token_hash, 'hex') FROM core.staff_tokens WHERE id = '$tok_id'")" = "$(printf '%s' "$TOK" | sha256sum | cut -d' ' -f1)"
out=$(call POST "$MGR" $S/staff/he.garden/tokens)
check "a token with no body: 201, 30 days" expect 201 '"token":"swt_' "$out"
check "... 30 days" test "$(q "SELECT round(extract(epoch FROM expires_at - created_at) / 86400) FROM core.staff_tokens WHERE id = '$(field '["id"]' <<<"$out")'")" = 30
out=$(call GET "$MGR" $S/staff/he.garden/tokens)
check "the token list names it" expect 200 "\"id\":\"$tok_id\"" "$out"
check "... without any secret" lacks swt_ "$out"
out=$(call POST "$TOK" /v1/cases '{"site":"SH01","channel":"visit","type":"repair","subject":"fallen tree by block 3"}')
check "the new token registers a case" expect 201 '"status":"registered"' "$out"
case_id=$(field '["id"]' <<<"$out")
check "... with he.garden as its first responder" test "$(q "SELECT s.code FROM core.cases c JOIN core.staff s ON s.id = c.first_responder_id WHERE c.id = '$case_id'")" = he.garden
check "... and reads it back" expect 200 "\"id\":\"$case_id\"" "$(call GET "$TOK" /v1/cases/$case_id)"
check "revoke it: 200 with revoked_at" expect 200 '"revoked_at":"20' "$(call DELETE "$MGR" $S/staff/he.garden/tokens/$tok_id)"
check "... then it is refused: 401" expect 401 'invalid credentials' "$(call GET "$TOK" /v1/cases/$case_id)"
check "revoking an unknown token: 404" expect 404 'no such token' "$(call DELETE "$MGR" $S/staff/he.garden/tokens/00000000-0000-4000-8000-000000000000)"
check "another staff member's token id: 404" expect 404 'no such token' "$(call DELETE "$MGR" $S/staff/li.desk/tokens/$tok_id)"
check "a token id that is not a UUID: 404" expect 404 'no such token' "$(call DELETE "$MGR" $S/staff/he.garden/tokens/12345)"
check "an inactive staff member gets no token: 409" expect 409 'not active' "$(call POST "$MGR" $S/staff '{"code":"gone","name":"Gone","role":"staff","active":false}' >/dev/null; call POST "$MGR" $S/staff/gone/tokens '{}')"
out=$(call POST "$MGR" $S/staff/he.garden/tokens '{}')
TOK2=$(field '["token"]' <<<"$out")
check "a token stops working when its staff member is made inactive" expect 401 'invalid credentials' "$(call PATCH "$MGR" $S/staff/he.garden '{"active":false}' >/dev/null; call GET "$TOK2" /v1/cases/$case_id)"

echo "== API keys"
check "a bad key: 422" expect 422 '"field":"role"' "$(call POST "$ADMIN" $S/api-keys '{"name":"crm","role":"root","expires_in_days":400}')"
check "... names expires_in_days too" expect 422 '"field":"expires_in_days"' "$(call POST "$ADMIN" $S/api-keys '{"name":"crm","role":"root","expires_in_days":400}')"
check "a key named like staff's own submissions: 422" expect 422 '"field":"name"' "$(call POST "$ADMIN" $S/api-keys '{"name":"staff:li.desk","role":"system"}')"
out=$(call POST "$ADMIN" $S/api-keys '{"name":"crm","role":"system","expires_in_days":90}')
check "the admin makes an API key: 201" expect 201 '"key":"swk_' "$out"
KEY=$(field '["key"]' <<<"$out")
key_id=$(field '["id"]' <<<"$out")
kprefix=$(field '["prefix"]' <<<"$out")
check "... swk_<8 hex>_<40 hex> with its prefix" grep -qE "^swk_${kprefix}_[0-9a-f]{40}\$" <<<"$KEY"
check "... stored as prefix and SHA-256" test "$(q "SELECT prefix || ' ' || encode(key_hash, 'hex') FROM core.api_keys WHERE id = '$key_id'")" = "$kprefix $(printf '%s' "$KEY" | sha256sum | cut -d' ' -f1)"
out=$(call GET "$ADMIN" $S/api-keys)
check "the key list names it" expect 200 '"name":"crm"' "$out"
check "... without any secret" lacks "${KEY##*_}" "$out"
check "a key name taken: 409" expect 409 'already exists' "$(call POST "$ADMIN" $S/api-keys '{"name":"crm","role":"reader"}')"
out=$(call POST "$KEY" /v1/cases '{"site":"SH01","channel":"api","type":"help","subject":"from the crm","external_ref":"crm-1"}')
check "the new key registers a case" expect 201 '"status":"registered"' "$out"
check "... under its name as the source" test "$(q "SELECT source FROM core.cases WHERE external_ref = 'crm-1'")" = crm
check "revoke it: 200" expect 200 '"revoked_at":"20' "$(call DELETE "$ADMIN" $S/api-keys/$key_id)"
check "... then it is refused: 401" expect 401 'invalid credentials' "$(call POST "$KEY" /v1/cases '{"site":"SH01","channel":"api","type":"help","subject":"after revoke"}')"
check "revoking an unknown key: 404" expect 404 'no such API key' "$(call DELETE "$ADMIN" $S/api-keys/00000000-0000-4000-8000-000000000000)"
check "another site's key: 404" expect 404 'no such API key' "$(call DELETE "$ADMIN" $S/api-keys/$(q "SELECT k.id FROM core.api_keys k JOIN core.sites s ON s.id = k.site_id WHERE s.code = 'BJ01'"))"
check "GET one key: 405" expect 405 'revokes a key' "$(call GET "$ADMIN" $S/api-keys/$key_id)"

echo "== secrets and privacy"
q "SELECT k::text FROM core.api_keys k" >"$tmp/dump"
q "SELECT t::text FROM core.staff_tokens t" >>"$tmp/dump"
q "SELECT e::text FROM bus.events e" >>"$tmp/dump"
check "the dump has rows" test "$(wc -l <"$tmp/dump")" -ge 6
for s in "$TOK" "$TOK2" "$KEY" "$BJKEY"; do
    check "secret ${s:0:8}... not in the database" bash -c "! grep -qF -e '${s#sw?_}' -e '${s##*_}' '$tmp/dump'"
    check "secret ${s:0:8}... not in the log" bash -c "! grep -qF -e '${s##*_}' '$tmp/intake.log'"
done
check "the leader's phones never answered (in $(wc -l <"$tmp/all-answers") answers)" bash -c "grep -q '\"code\":\"zhao.gm\"' '$tmp/all-answers' && grep -q '\"code\":\"ma.deputy\"' '$tmp/all-answers' && ! grep -qE '13900000001|13911112222|13911119999|ma@example|ma_private' '$tmp/all-answers'"
check "credential changes logged" test "$(grep -cE 'ADMIN-(TOKEN|KEY)-(ISSUED|REVOKED|CREATED)' "$tmp/intake.log")" -ge 5
check "still serving after all that" expect 201 '"status":"registered"' "$(call POST "$SYSKEY" /v1/cases '{"site":"SH01","channel":"api","type":"help","subject":"still here"}')"
check "... and the directory too" expect 200 '"code":"garden"' "$(call GET "$ADMIN" $S/departments/garden)"

echo "== stop"
intake_stop
finish
