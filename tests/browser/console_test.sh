#!/usr/bin/env bash
# The web console in a real browser: Debian's Chromium, headless, driven by
# playwright-core (tests/browser/console.test.mjs) against all five real
# services and a private PostgreSQL, started here as the end-to-end tests
# start them (tests/e2e/lib.sh).  Every demo person of the story gets a
# password of this run (PUT /v1/sites/SH01/staff/{staff}/password with the
# manager's token); the browser signs in with it like a person would.
#
# The story (issue 10): li.desk registers a phone complaint and sends it to
# engineering, zhou.eng sees it in the queue and appoints wu.tech, who makes
# first contact and resolves it on a phone-sized screen, li.desk records the
# callback, wei.qa's charts count it.  Also: a wrong password, the English
# switch, a stale action (412), a leader's call-back request, the live stream
# refused and let through again (conn-status), the supervisor's reception
# log against the API's, the manager's page, and on every
# page no raw JSON, no "undefined", never the leader's private number.
# A screenshot of every step goes to build/browser/ (BROWSER_SHOTS).
set -uo pipefail

name=browser-console
. "$(dirname "${BASH_SOURCE[0]}")/../e2e/lib.sh"

shots=${BROWSER_SHOTS:-$top/build/browser}
mkdir -p "$shots"
rm -f "$shots"/*.png "$shots"/*.csv

echo "== setup: the stack"
e2e_setup
MGR=$(token_for qian.mgr)
DESK=$(token_for li.desk)
QA=$(token_for wei.qa)
svc_start intake
svc_start routing
svc_start escalation
svc_start notification
svc_start audit
check "complaints' first contact due in 2 s (the handler's clock runs out: shown late, a violation)" \
    expect 200 '"limits"' "$(call PUT "$MGR" /v1/sites/SH01/limits '{"limits":[
 {"clock":"first_contact","amount":"2s","basis":"calendar","case_type":"complaint"}]}')"

echo "== setup: passwords of this run"
people=(li.desk zhou.eng wu.tech wei.qa sun.sup) # the manager signs in with the demo password
declare -A pw=()
for p in "${people[@]}"; do pw[$p]="pw-$(hex 8)"; done
for p in "${people[@]}"; do
    check "$p's password set through the API (the manager's token)" \
        expect 200 '"password_set":true' "$(call PUT "$MGR" "/v1/sites/SH01/staff/$p/password" "{\"password\":\"${pw[$p]}\"}")"
done
passwords=$(for p in "${people[@]}"; do printf '%s=%s\n' "$p" "${pw[$p]}"; done
    echo "qian.mgr=$SHOUWEN_DEMO_PASSWORD")

echo "== the console in Chromium"
if [ "$fail" -gt 0 ]; then
    bad "the console in Chromium" "not run: the setup above failed (logs: KEEP_TMP=1, then $tmp/*.log)"
elif [ ! -d "$top/tests/browser/node_modules/playwright-core" ]; then
    bad "playwright-core installed in tests/browser/node_modules" "run: make test-browser (npm ci in tests/browser)"
elif [ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]; then
    bad "Chromium at ${CHROMIUM:-/usr/bin/chromium}" "run: make bootstrap"
else
    # the node script prints the same ok/FAIL lines; they are counted here.
    # Chromium's profile and downloads go to $tmp/browser (removed with $tmp).
    mkdir -p "$tmp/browser"
    while IFS= read -r line; do
        echo "$line"
        case $line in
        "ok   "*) pass=$((pass + 1)) ;;
        "FAIL "*) fail=$((fail + 1)) ;;
        esac
    done < <(CONSOLE_URL=$api SITE=SH01 SHOTS="$shots" PASSWORDS="$passwords" \
        MGR_TOKEN=$MGR DESK_TOKEN=$DESK QA_TOKEN=$QA LEADER_PHONE=$(q "SELECT phone FROM core.staff WHERE code = 'zhao.gm'") \
        CHROMIUM=${CHROMIUM:-/usr/bin/chromium} TMPDIR=$tmp/browser \
        node "$top/tests/browser/console.test.mjs" 2>&1 ||
        { rc=$?; [ "$rc" = 1 ] || echo "FAIL console.test.mjs ended with status $rc"; })
fi
echo "     screenshots: $shots"
finish
