#!/usr/bin/env bash
# Loads the demo site SH01 (deploy/demo/sh01.sql) and makes its
# credentials: an API key for a demo external system ("demo-hotline"), a
# bearer token for the receptionist li.desk and one for the manager
# qian.mgr (who issues tokens to the other staff through the directory
# API), and one console password for every demo staff member.  Each is
# made once per installation, shown here and kept in
# $SHOUWEN_RUN_DIR/demo-credentials (mode 600); the database keeps only
# their SHA-256 (the password: its bcrypt hash).
#
#   demo.sh                  load (safe to repeat) and print the credentials
#   demo.sh --receiver URL   also the webhook channel "demo-receiver" to URL
#                            (deploy/demo/receiver.sql; `make run` passes its
#                            local receiver), signed with a whsec_ secret
#                            kept in $SHOUWEN_RUN_DIR/demo-receiver.secret
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
run=${SHOUWEN_RUN_DIR:-$top/.run}
creds=$run/demo-credentials
psql_() { "$top/deploy/pg.sh" psql -qtAX -v ON_ERROR_STOP=1 "$@"; }

receiver=
case "${1:-}" in
"") ;;
--receiver)
    receiver=${2:?demo.sh: --receiver needs a URL}
    if ! [[ $receiver =~ ^https?://[^[:space:]\'\\]+$ ]]; then
        echo "demo.sh: could not use receiver URL \"$receiver\": expected http://host:port/path" >&2
        exit 2
    fi
    ;;
*) echo "usage: $0 [--receiver URL]" >&2; exit 2 ;;
esac

psql_ -f "$top/deploy/demo/sh01.sql" >/dev/null

# The working-day calendar of mainland China (09:00-12:00, 13:30-18:00,
# Monday to Friday) with the public holidays and make-up working days of
# deploy/data/cn-holidays-*.txt ("date kind name" lines, # comments), for
# SH01 unless the site already has a calendar.  Entries already there are
# left as they are.
days=$(grep -hv '^#' "$top"/deploy/data/cn-holidays-*.txt | awk 'NF >= 2 {
    name = $3; for (i = 4; i <= NF; i++) name = name " " $i
    gsub(/\x27/, "\x27\x27", name)
    printf "%s(date \x27%s\x27, \x27%s\x27, \x27%s\x27)", sep, $1, $2, name; sep = ", " }')
psql_ -c "BEGIN" \
    -c "INSERT INTO escalation.calendars (site_id, name, time_zone, hours, weekend_days) SELECT NULL, 'mainland China', 'Asia/Shanghai', '09:00-12:00,13:30-18:00', '{6,7}' WHERE NOT EXISTS (SELECT 1 FROM escalation.calendars WHERE site_id IS NULL AND name = 'mainland China')" \
    -c "INSERT INTO escalation.calendar_days (calendar_id, day, kind, name, source) SELECT c.id, d.day, d.kind, d.name, 'deploy/data' FROM escalation.calendars c, (VALUES $days) AS d(day, kind, name) WHERE c.site_id IS NULL AND c.name = 'mainland China' ON CONFLICT (calendar_id, day) DO NOTHING" \
    -c "UPDATE core.sites SET calendar_id = (SELECT id FROM escalation.calendars WHERE site_id IS NULL AND name = 'mainland China') WHERE code = 'SH01' AND calendar_id IS NULL" \
    -c "COMMIT" >/dev/null
if [ ! -s "$creds" ] || ! grep -q '^SHOUWEN_DEMO_MANAGER_TOKEN=' "$creds" ||
    [ "$(psql_ -c "SELECT count(*) FROM core.api_keys k JOIN core.sites s ON s.id = k.site_id WHERE s.code = 'SH01' AND k.name = 'demo-hotline'")" = 0 ]; then
    prefix=$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')
    secret=$(head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n')
    key="swk_${prefix}_${secret}"
    token="swt_$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    mtoken="swt_$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    keyhash=$(printf '%s' "$key" | sha256sum | cut -d' ' -f1)
    tokhash=$(printf '%s' "$token" | sha256sum | cut -d' ' -f1)
    mtokhash=$(printf '%s' "$mtoken" | sha256sum | cut -d' ' -f1)
    psql_ -c "BEGIN" \
        -c "DELETE FROM core.api_keys WHERE name = 'demo-hotline' AND site_id = (SELECT id FROM core.sites WHERE code = 'SH01')" \
        -c "INSERT INTO core.api_keys (site_id, name, prefix, key_hash, role) SELECT id, 'demo-hotline', '$prefix', decode('$keyhash', 'hex'), 'system' FROM core.sites WHERE code = 'SH01'" \
        -c "INSERT INTO core.staff_tokens (staff_id, token_hash, expires_at) SELECT st.id, decode('$tokhash', 'hex'), now() + interval '365 days' FROM core.staff st JOIN core.sites s ON s.id = st.site_id WHERE s.code = 'SH01' AND st.code = 'li.desk'" \
        -c "INSERT INTO core.staff_tokens (staff_id, token_hash, expires_at) SELECT st.id, decode('$mtokhash', 'hex'), now() + interval '365 days' FROM core.staff st JOIN core.sites s ON s.id = st.site_id WHERE s.code = 'SH01' AND st.code = 'qian.mgr'" \
        -c "COMMIT" >/dev/null
    umask 077
    printf 'SHOUWEN_DEMO_API_KEY=%s\nSHOUWEN_DEMO_TOKEN=%s\nSHOUWEN_DEMO_MANAGER_TOKEN=%s\n' \
        "$key" "$token" "$mtoken" >"$creds"
fi
# One console password for every demo staff member (sign in at the intake
# address, e.g. http://127.0.0.1:7400/, as li.desk, zhou.eng, wei.qa...),
# made once per installation; the database keeps only its bcrypt hash
# (pgcrypto), which the intake checks with crypt(3).  The password goes in
# on stdin, not on a command line.
if ! grep -qE '^SHOUWEN_DEMO_PASSWORD=.{12,}$' "$creds"; then
    password="demo-$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    printf "%s\n" "CREATE EXTENSION IF NOT EXISTS pgcrypto;" \
        "UPDATE core.staff st SET password_hash = crypt('$password', gen_salt('bf', 10)), password_set_at = now() FROM core.sites s WHERE s.id = st.site_id AND s.code = 'SH01';" |
        psql_ >/dev/null
    (umask 077 && sed -i '/^SHOUWEN_DEMO_PASSWORD=/d' "$creds" &&
        printf 'SHOUWEN_DEMO_PASSWORD=%s\n' "$password" >>"$creds")
fi
echo "demo site SH01 loaded; its credentials ($creds):"
sed 's/^/  /' "$creds"

if [ -n "$receiver" ]; then
    secret_file=$run/demo-receiver.secret
    if ! grep -qE '^whsec_[A-Za-z0-9+/]+=*$' "$secret_file" 2>/dev/null; then
        rm -f "$secret_file"
        (umask 077 && printf 'whsec_%s\n' "$(head -c 32 /dev/urandom | base64 -w0)" >"$secret_file")
    fi
    chmod 600 "$secret_file"
    # the secret goes in on stdin, not on a command line
    { printf "\\set secret '%s'\n" "$(cat "$secret_file")"; cat "$top/deploy/demo/receiver.sql"; } |
        psql_ -v url="$receiver" >/dev/null
    echo "demo site SH01 notifies the webhook channel demo-receiver: $receiver (secret: $secret_file)"
fi
