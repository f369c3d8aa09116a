#!/usr/bin/env bash
# A site's working-day calendar and time limits over the public API
# (/v1/sites/{code}/calendar..., /v1/sites/{code}/limits), served by the
# real shouwen-intake on a private PostgreSQL with the demo site: the
# shared mainland-China calendar read back, copied on the first change so
# that no other site's calendar moves, dated days set and removed, .ics
# files imported (as text/calendar and as JSON), the holiday flag, limits
# saved whole with DOMAIN.md's defaults shown beside them, and every
# refusal (unknown time zone, overlapping hours, a week without a working
# day, an .ics file that cannot be read, a zero or negative limit) naming
# the field, the line and the reason, and saving nothing.
set -uo pipefail

name=calendar-api
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
trap intake_cleanup EXIT
. "$(dirname "${BASH_SOURCE[0]}")/cases.sh"

# jq_ EXPR: a Python expression on the answer's JSON (as j), from stdin "<status> <body>"
jq_() { python3 -c 'import json,sys; j=json.loads(sys.stdin.read().split(" ",1)[1]); print(eval(sys.argv[1]))' "$1"; }
# eq WANT command...: the command prints WANT
eq() { local want=$1; shift; test "$("$@")" = "$want"; }

echo "== setup"
intake_setup
MGR=$(token_for qian.mgr)
intake_start
C=/v1/sites/SH01/calendar
L=/v1/sites/SH01/limits
year=$(TZ=Asia/Shanghai date +%Y)
ndata=$(grep -hv '^#' "$top"/deploy/data/cn-holidays-*.txt | awk 'NF >= 2' | wc -l)
shared() { q "SELECT count(*) FROM escalation.calendars WHERE site_id IS NULL"; }
shared_days() { q "SELECT count(*) FROM escalation.calendar_days d JOIN escalation.calendars c ON c.id = d.calendar_id WHERE c.site_id IS NULL"; }

echo "== the demo's calendar"
out=$(call GET "$MGR" $C)
check "GET: 200, the shared mainland China calendar" expect 200 '"source":"shared","name":"mainland China"' "$out"
check "... its zone, hours and rest days" expect 200 '"time_zone":"Asia/Shanghai","hours":"09:00-12:00,13:30-18:00","rest_days":[6,7],"working_day_minutes":450' "$out"
check "... all $ndata dated days of deploy/data" test "$(jq_ 'j["days"]' <<<"$out")" = "$ndata"
want=$(demo_holidays_missing)
[ "$want" != 0 ] || want=None
check "... holidays missing: $want (the year deploy/data lacks, if it should hold it by now)" test "$(jq_ 'j["holidays_missing"] and j["holidays_missing"]["year"]' <<<"$out")" = "$want"
out=$(call GET "$MGR" "$C/days?year=2026")
check "GET days?year=2026: National Day a holiday, named, from deploy/data" expect 200 '{"date":"2026-10-01","kind":"holiday","name":"National Day (国庆节)","source":"deploy/data"}' "$out"
check "... and the make-up Saturday a workday" expect 200 '"date":"2026-10-10","kind":"workday"' "$out"
check "... only that year" test "$(jq_ 'sorted(set(d["date"][:4] for d in j["days"]))' <<<"$out")" = "['2026']"
check "GET days?year=20x6: 400" expect 400 '?year=YYYY' "$(call GET "$MGR" "$C/days?year=20x6")"

echo "== who may"
check "a receptionist: 403" expect 403 'forbidden' "$(call GET "$TOKEN" $C)"
check "a system key may not change it: 403" expect 403 'forbidden' "$(call PATCH "$KEY" $C '{"hours":"09:00-17:00"}')"
check "another site: 404" expect 404 'no such site' "$(call GET "$MGR" /v1/sites/ZZ01/calendar)"
check "DELETE the calendar: 405 saying what is allowed" expect 405 'PATCH changes it' "$(call DELETE "$MGR" $C)"

echo "== refusals name the field and the reason, and save nothing"
check "an unknown time zone: 422" expect 422 '"field":"time_zone"' "$(call PATCH "$MGR" $C '{"time_zone":"Mars/Olympus"}')"
check "... saying why" expect 422 'not a time zone of the IANA database: unknown time zone' "$(call PATCH "$MGR" $C '{"time_zone":"Mars/Olympus"}')"
check "a malformed zone name: 422" expect 422 '"field":"time_zone"' "$(call PATCH "$MGR" $C '{"time_zone":"../../etc/passwd"}')"
check "overlapping hours: 422 naming the two periods" expect 422 '11:00-18:00 overlaps 09:00-12:00' "$(call PATCH "$MGR" $C '{"hours":"09:00-12:00,11:00-18:00"}')"
check "a period that ends before it starts: 422" expect 422 'ends before it starts' "$(call PATCH "$MGR" $C '{"hours":"18:00-09:00"}')"
check "hours that do not parse: 422" expect 422 'is not a period of the form HH:MM-HH:MM' "$(call PATCH "$MGR" $C '{"hours":"9am-6pm"}')"
check "every weekday a rest day: 422" expect 422 'at least one must be worked' "$(call PATCH "$MGR" $C '{"rest_days":[1,2,3,4,5,6,7]}')"
check "a weekday 8: 422" expect 422 '"field":"rest_days"' "$(call PATCH "$MGR" $C '{"rest_days":[6,8]}')"
check "an unknown member: 422" expect 422 '"field":"lunch"' "$(call PATCH "$MGR" $C '{"lunch":"12:00-13:00"}')"
check "not JSON: 400" expect 400 '' "$(call PATCH "$MGR" $C 'hours')"
check "... the site still uses the shared calendar" expect 200 '"source":"shared"' "$(call GET "$MGR" $C)"
check "... and has none of its own" test "$(q "SELECT count(*) FROM escalation.calendars c JOIN core.sites s ON s.id = c.site_id WHERE s.code = 'SH01'")" = 0

echo "== the first change: the site gets its own copy, the shared one stays"
before=$(shared_days)
out=$(call PATCH "$MGR" $C '{"hours":"13:00-17:30 , 08:30-12:00"}')
check "PATCH hours: 200, the site's own calendar now" expect 200 '"source":"own","name":"mainland China"' "$out"
check "... the hours sorted and written back plainly" expect 200 '"hours":"08:30-12:00,13:00-17:30","rest_days":[6,7],"working_day_minutes":480' "$out"
check "... with the shared calendar's days copied" test "$(jq_ 'j["days"]' <<<"$out")" = "$ndata"
check "... the shared calendar unchanged" test "$(q "SELECT hours FROM escalation.calendars WHERE site_id IS NULL"),$(shared_days)" = "09:00-12:00,13:30-18:00,$before"
check "... the site points at its own" test "$(q "SELECT c.site_id = s.id FROM core.sites s JOIN escalation.calendars c ON c.id = s.calendar_id WHERE s.code = 'SH01'")" = t
out=$(call PATCH "$MGR" $C '{"time_zone":"America/New_York","rest_days":[7],"name":"SH01 daily"}')
check "PATCH zone, rest days, name: 200" expect 200 '"source":"own","name":"SH01 daily","time_zone":"America/New_York","hours":"08:30-12:00,13:00-17:30","rest_days":[7]' "$out"
check "... still one calendar of its own" test "$(q "SELECT count(*) FROM escalation.calendars c JOIN core.sites s ON s.id = c.site_id WHERE s.code = 'SH01'")" = 1
check "the settings stamp moved (escalation reloads)" test "$(q "SELECT stamp > 1 FROM escalation.settings_stamp")" = t
call PATCH "$MGR" $C '{"time_zone":"Asia/Shanghai","rest_days":[6,7]}' >/dev/null

echo "== dated days"
out=$(call PUT "$MGR" "$C/days/$((year + 1))-12-31" '{"kind":"holiday","name":"年终盘点 stocktaking"}')
check "PUT a day: 200" expect 200 "{\"date\":\"$((year + 1))-12-31\",\"kind\":\"holiday\",\"name\":\"年终盘点 stocktaking\",\"source\":\"api\"}" "$out"
check "a holiday this year too: 200" expect 200 '"kind":"holiday"' "$(call PUT "$MGR" "$C/days/$year-12-30" '{"kind":"holiday","name":"盘点"}')"
check "... holidays this year and next: not flagged" test "$(call GET "$MGR" $C | jq_ 'j["holidays_missing"]')" = None
check "PUT it again as a workday: 200, replaced" expect 200 '"kind":"workday","name":null' "$(call PUT "$MGR" "$C/days/$((year + 1))-12-31" '{"kind":"workday"}')"
check "... one entry for the day" test "$(call GET "$MGR" "$C/days?year=$((year + 1))" | jq_ 'len(j["days"])')" = 1
check "a day that is not a date: 404" expect 404 'YYYY-MM-DD' "$(call PUT "$MGR" "$C/days/2026-02-30" '{"kind":"holiday"}')"
check "a kind that is neither: 422" expect 422 '"field":"kind"' "$(call PUT "$MGR" "$C/days/2026-12-30" '{"kind":"half-day"}')"
check "no kind: 422" expect 422 'is required' "$(call PUT "$MGR" "$C/days/2026-12-30" '{"name":"x"}')"
check "DELETE it: 200, the entry removed" expect 200 '"kind":"workday"' "$(call DELETE "$MGR" "$C/days/$((year + 1))-12-31")"
check "DELETE it again: 404" expect 404 "no entry for $((year + 1))-12-31" "$(call DELETE "$MGR" "$C/days/$((year + 1))-12-31")"

echo "== iCalendar import"
ics=$(printf '%s\r\n' BEGIN:VCALENDAR VERSION:2.0 PRODID:-//test//cn//ZH \
    BEGIN:VEVENT "DTSTART;VALUE=DATE:20271001" "DTEND;VALUE=DATE:20271004" "SUMMARY:国庆节 National Day" END:VEVENT \
    BEGIN:VEVENT "DTSTART;VALUE=DATE:20270925" "SUMMARY:国庆节补班" END:VEVENT \
    BEGIN:VEVENT "DTSTART;VALUE=DATE:20270101" "SUMMARY:元旦" END:VEVENT \
    END:VCALENDAR)
out=$(call POST "$MGR" "$C/import?source=cn-2027.ics" "$ics" text/calendar)
check "POST import (text/calendar): 200, 5 days" expect 200 '"imported":5,"holidays":4,"workdays":1,"from":"2027-01-01","to":"2027-10-03","source":"ics:cn-2027.ics"' "$out"
check "... kept with their names and source" test "$(q "SELECT string_agg(day || ' ' || kind || ' ' || source, ',' ORDER BY day) FROM escalation.calendar_days d JOIN escalation.calendars c ON c.id = d.calendar_id JOIN core.sites s ON s.id = c.site_id WHERE s.code = 'SH01' AND day >= '2027-01-01'")" = "2027-01-01 holiday ics:cn-2027.ics,2027-09-25 workday ics:cn-2027.ics,2027-10-01 holiday ics:cn-2027.ics,2027-10-02 holiday ics:cn-2027.ics,2027-10-03 holiday ics:cn-2027.ics"
check "... the 补班 named" test "$(q "SELECT name FROM escalation.calendar_days WHERE day = '2027-09-25'")" = "国庆节补班"
body=$(python3 -c 'import json,sys; print(json.dumps({"ics": sys.argv[1].replace("20270101", "20280101")}))' "$ics")
check "POST import as JSON {\"ics\": ...}: 200" expect 200 '"imported":5,"holidays":4,"workdays":1,"from":"2027-09-25","to":"2028-01-01","source":"ics"' "$(call POST "$MGR" "$C/import" "$body")"
count() { q "SELECT count(*) FROM escalation.calendar_days d JOIN escalation.calendars c ON c.id = d.calendar_id JOIN core.sites s ON s.id = c.site_id WHERE s.code = 'SH01'"; }
n0=$(count)
check "... the same days again are replaced, not doubled ($n0 entries)" test "$n0" = $((ndata + 7))
notcal=$(printf '%s\r\n' BEGIN:VEVENT "DTSTART;VALUE=DATE:20271001" END:VEVENT)
check "a file that is not iCalendar: 422 with the line" expect 422 '"field":"ics","message":"line 1: an iCalendar file starts with BEGIN:VCALENDAR"' "$(call POST "$MGR" "$C/import" "$notcal" text/calendar)"
timed=$(printf '%s\r\n' BEGIN:VCALENDAR BEGIN:VEVENT "SUMMARY:x" "DTSTART:20271001T090000Z" END:VEVENT END:VCALENDAR)
check "an event with a time: 422 naming line 4" expect 422 '"message":"line 4: ' "$(call POST "$MGR" "$C/import" "$timed" text/calendar)"
rrule=$(printf '%s\r\n' BEGIN:VCALENDAR BEGIN:VEVENT "DTSTART;VALUE=DATE:20271001" "RRULE:FREQ=YEARLY" END:VEVENT END:VCALENDAR)
check "a repeating event: 422, line 4, the reason" expect 422 'line 4: repeating events (RRULE, RDATE) are not read' "$(call POST "$MGR" "$C/import" "$rrule" text/calendar)"
open=$(printf '%s\r\n' BEGIN:VCALENDAR BEGIN:VEVENT "DTSTART;VALUE=DATE:20271001")
check "a file cut short: 422" expect 422 'the file ends inside a component' "$(call POST "$MGR" "$C/import" "$open" text/calendar)"
check "no events: 422" expect 422 'holds no events' "$(call POST "$MGR" "$C/import" "$(printf '%s\r\n' BEGIN:VCALENDAR END:VCALENDAR)" text/calendar)"
check "not UTF-8: 400" expect 400 'not valid UTF-8' "$(call POST "$MGR" "$C/import" "$(printf 'BEGIN:VCALENDAR\r\nSUMMARY:\xff\r\n')" text/calendar)"
check "a bad ?source=: 400" expect 400 '?source=' "$(call POST "$MGR" "$C/import?source=a/b" "$ics" text/calendar)"
check "text/calendar anywhere else: 415" expect 415 'text/calendar is taken only by POST' "$(call PATCH "$MGR" $C "$ics" text/calendar)"
check "... nothing of the refused files saved" test "$(count)" = "$n0"

echo "== the holiday flag"
q "DELETE FROM escalation.calendar_days d USING escalation.calendars c, core.sites s WHERE c.id = d.calendar_id AND s.id = c.site_id AND s.code = 'SH01' AND d.kind = 'holiday'" >/dev/null
out=$(call GET "$MGR" $C)
check "a calendar without holidays: flagged for this year" test "$(jq_ 'j["holidays_missing"]["year"]' <<<"$out")" = "$year"
check "... saying what it means" expect 200 "no public holidays are entered for $year: until they are, the clocks count only the weekly rest days" "$out"
q "UPDATE escalation.calendars c SET time_zone = 'Mars/Olympus' FROM core.sites s WHERE s.calendar_id = c.id AND s.code = 'SH01'" >/dev/null
check "a calendar broken behind the API's back: GET says what is wrong" expect 200 '"problem":"unknown time zone \"Mars/Olympus\"' "$(call GET "$MGR" $C)"
check "... and PATCH puts it right" expect 200 '"time_zone":"Asia/Shanghai"' "$(call PATCH "$MGR" $C '{"time_zone":"Asia/Shanghai"}')"

echo "== time limits"
out=$(call GET "$MGR" $L)
check "GET: 200, none of the site's own" expect 200 '"site":"SH01","limits":[]' "$out"
check "... DOMAIN.md's defaults beside them" expect 200 '"defaults":[{"clock":"handoff","amount":"1h","basis":"calendar"},{"clock":"appoint","amount":"1h","basis":"calendar"},{"clock":"first_contact","amount":"1d","basis":"working"},{"clock":"resolve","amount":"7d","basis":"calendar"},{"clock":"supervisor","amount":"2d","basis":"calendar"},{"clock":"manager","amount":"7d","basis":"calendar"},{"clock":"callback","amount":"2d","basis":"calendar"},{"clock":"emergency_ack","amount":"5m","basis":"calendar"}]' "$out"
set1='{"limits":[
 {"clock":"handoff","amount":"45m"},
 {"clock":"first_contact","amount":"4h","basis":"working","case_type":"complaint"},
 {"clock":"emergency_ack","amount":"2m30s","urgency":"emergency"},
 {"clock":"supervisor","amount":"1d12h","basis":"calendar","case_type":"repair","urgency":"urgent"}
]}'
out=$(call PUT "$MGR" $L "$set1")
check "PUT: 200 with the set" expect 200 '{"clock":"handoff","case_type":null,"urgency":null,"amount":"45m","basis":"calendar"},{"clock":"first_contact","case_type":"complaint","urgency":null,"amount":"4h","basis":"working"},{"clock":"supervisor","case_type":"repair","urgency":"urgent","amount":"1d12h","basis":"calendar"},{"clock":"emergency_ack","case_type":null,"urgency":"emergency","amount":"2m30s","basis":"calendar"}' "$out"
check "... stored as escalation reads it" test "$(q "SELECT string_agg(clock || ' ' || amount::text || ' ' || basis, ',' ORDER BY clock) FROM escalation.limits l JOIN core.sites s ON s.id = l.site_id WHERE s.code = 'SH01'")" = "emergency_ack 00:02:30 calendar,first_contact 04:00:00 working,handoff 00:45:00 calendar,supervisor 1 day 12:00:00 calendar"
refused() { expect 422 "$1" "$(call PUT "$MGR" $L "$2")"; }
check "a zero limit: 422" refused '"field":"limits[0].amount","message":"must be more than zero' '{"limits":[{"clock":"handoff","amount":"0h"}]}'
check "a negative limit: 422" refused 'a limit cannot be negative' '{"limits":[{"clock":"handoff","amount":"-1h"}]}'
check "a number, not a duration: 422" refused 'not a number' '{"limits":[{"clock":"handoff","amount":3600}]}'
check "parts out of order: 422" refused 'in that order' '{"limits":[{"clock":"handoff","amount":"30m1h"}]}'
check "more than 366 days: 422" refused 'at most 366 days' '{"limits":[{"clock":"resolve","amount":"367d"}]}'
check "an unknown clock: 422" refused '"field":"limits[0].clock"' '{"limits":[{"clock":"lunch","amount":"1h"}]}'
check "an unknown basis: 422" refused '"field":"limits[0].basis"' '{"limits":[{"clock":"handoff","amount":"1h","basis":"weekly"}]}'
check "an unknown type: 422" refused '"field":"limits[0].case_type"' '{"limits":[{"clock":"handoff","amount":"1h","case_type":"plumbing"}]}'
check "the same clock twice: 422" refused 'the same clock, case_type and urgency as limits[0]' '{"limits":[{"clock":"handoff","amount":"1h"},{"clock":"handoff","amount":"2h","basis":"working"}]}'
check "an unknown member: 422" refused '"field":"limits[0].hours"' '{"limits":[{"clock":"handoff","amount":"1h","hours":1}]}'
check "not {\"limits\": [...]}: 400" expect 400 "the site's whole set" "$(call PUT "$MGR" $L '{"limit":[]}')"
check "... nothing of them saved" test "$(q "SELECT count(*) FROM escalation.limits")" = 4
check "a receptionist may not read them: 403" expect 403 'forbidden' "$(call GET "$TOKEN" $L)"
check "PUT {\"limits\": []}: the defaults again" expect 200 '"limits":[],' "$(call PUT "$MGR" $L '{"limits":[]}')"
check "... none left" test "$(q "SELECT count(*) FROM escalation.limits")" = 0

echo "== stop"
intake_stop
finish
