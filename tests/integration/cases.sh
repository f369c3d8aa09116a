# cases.sh - helpers of the scripts that drive cases and settings through
# the public API as people would (routing_test.sh, escalation_test.sh,
# routing_rules_test.sh, calendar_api_test.sh, notification_test.sh and
# tests/e2e).  Source it after
# lib.sh; it needs q, tmp and (when called) api.

hex() { head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }
# token_for STAFF: a bearer token made in SQL, valid for a day
token_for() {
    local t="swt_$(hex 24)"
    q "INSERT INTO core.staff_tokens (staff_id, token_hash, expires_at) SELECT id, sha256('$t'::bytea), now() + interval '1 day' FROM core.staff WHERE code = '$1'" >/dev/null
    echo "$t"
}
# register AUTH JSON: prints the new case's id
register() {
    curl -s -H "Authorization: Bearer $1" -H 'Content-Type: application/json' -d "$2" "$api/v1/cases" |
        sed -n 's/.*"id":"\([^"]*\)".*/\1/p'
}
# act AUTH ID COMMAND JSON: the command at the case's current version; prints the status
act() {
    local v
    v=$(q "SELECT version FROM core.cases WHERE id = '$2'")
    curl -s -o "$tmp/act.out" -w '%{http_code}' -H "Authorization: Bearer $1" -H "If-Match: \"$v\"" \
        -H 'Content-Type: application/json' -d "$4" "$api/v1/cases/$2/actions/$3"
}
# contains TEXT IN: TEXT is part of IN (says what was there when not)
contains() { grep -qF -- "$1" <<<"$2" || { echo "\"$1\" is not in: $2"; return 1; }; }
# demo_holidays_missing: the year whose public holidays the demo calendar
# should hold by now but deploy/data lacks (this year; from November on,
# next year too), or 0: what the holiday flag must say of the demo site
demo_holidays_missing() {
    local y m years
    y=$(TZ=Asia/Shanghai date +%Y)
    m=$((10#$(TZ=Asia/Shanghai date +%m)))
    years=$(grep -hv '^#' "$top"/deploy/data/cn-holidays-*.txt | awk '$2 == "holiday" {print substr($1, 1, 4)}' | sort -u)
    if ! grep -qx "$y" <<<"$years"; then
        echo "$y"
    elif [ "$m" -ge 11 ] && ! grep -qx "$((y + 1))" <<<"$years"; then
        echo $((y + 1))
    else
        echo 0
    fi
}
# call METHOD AUTH PATH [BODY [CONTENT-TYPE]]: prints "<status> <body>"
call() {
    local method=$1 auth=$2 path=$3
    if [ $# -ge 4 ]; then
        curl -s -o "$tmp/out" -w '%{http_code}' -X "$method" -H "Authorization: Bearer $auth" \
            -H "Content-Type: ${5:-application/json}" --data-binary "$4" "$api$path"
    else
        curl -s -o "$tmp/out" -w '%{http_code}' -X "$method" -H "Authorization: Bearer $auth" "$api$path"
    fi
    printf ' '
    cat "$tmp/out"
}
# expect STATUS TEXT ANSWER: the answer of call has that status and holds TEXT
expect() { [ "${3%% *}" = "$1" ] && grep -qF -- "$2" <<<"$3" || { echo "got: $3"; return 1; }; }
# received PATH [COND]: how many requests to PATH the loopback receiver
# (tests/notify/receiver.py) logged in $tmp/received.log; COND, a Python
# expression over the request r, narrows them
received() {
    python3 - "$tmp/received.log" "$1" "${2:-True}" <<'PY'
import json, sys
log, path, cond = sys.argv[1], sys.argv[2], sys.argv[3]
n = 0
try:
    for line in open(log):
        r = json.loads(line)
        if r["path"] == path and eval(cond):
            n += 1
except FileNotFoundError:
    pass
print(n)
PY
}
