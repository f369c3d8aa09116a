#!/usr/bin/env bash
# tls_test.sh - a remote site's intake joins the central bus and database
# over TLS with certificates from `make certs` (deploy/certs.sh), on
# loopback:
#   - PostgreSQL takes TCP connections only with TLS and a client
#     certificate from the CA (pg_hba.conf method cert);
#   - the remote intake publishes on tls+tcp:// and answers SubmitCase on
#     tls+tcp://; the central routing dials its bus over tls+tcp:// and
#     gets the doorbell (its fast-path counter moves);
#   - a peer without a certificate, or with one from another CA, gets no
#     connection: no doorbell, no SubmitCase reply, no database session;
#   - a service given a tls+tcp:// address without its files, or a key
#     that is not its certificate's, refuses to start and names the setting.
set -uo pipefail
name=tls
. "$(dirname "${BASH_SOURCE[0]}")/../integration/lib.sh"
. "$(dirname "${BASH_SOURCE[0]}")/../integration/cases.sh"
tbin=${SHOUWEN_TEST_BIN:-$top/build/tests}

routing_pid=""
sub_pids=()
cleanup() {
    local p
    for p in "${intake_pid:-}" "$routing_pid" "${sub_pids[@]}"; do
        [ -z "$p" ] || { kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null; }
    done
    intake_pid=""
    intake_cleanup
}
trap cleanup EXIT

ports=$(free_ports 8)
pgport=$ports
pubport=$((ports + 2))
repport=$((ports + 3))
radmin=127.0.0.1:$((ports + 4))
port=$((ports + 5)) # intake HTTP; admin is port + 1
certs=$tmp/certs

echo "== 1. make certs: a development CA, the installation's certificates and a rogue one"
check "deploy/certs.sh makes the CA and certificates" "$top/deploy/certs.sh" "$certs"
check "server and client certificates chain to the CA" \
    openssl verify -CAfile "$certs/ca.crt" "$certs/server.crt" "$certs/client.crt"
check "the rogue certificate does not" bash -c "! openssl verify -CAfile '$certs/ca.crt' '$certs/rogue.crt'"
check "keys are readable by their owner only" test "$(stat -c %a "$certs/server.key")" = 600
before=$(sha256sum "$certs/ca.crt")
"$top/deploy/certs.sh" "$certs" >/dev/null
check "a second run keeps the CA" test "$(sha256sum "$certs/ca.crt")" = "$before"

echo "== 2. PostgreSQL over TCP only with TLS and a client certificate"
export SHOUWEN_PG_LISTEN=127.0.0.1 SHOUWEN_PG_PORT=$pgport
intake_setup
pgdata=$(q "SHOW data_directory")
owner=$(stat -c %U "$pgdata")
for f in server.crt server.key ca.crt; do
    install -m 600 -o "$owner" "$certs/$f" "$pgdata/tls-$f"
done
hba=$(q "SHOW hba_file")
{
    echo "hostssl shouwen shouwen 127.0.0.1/32 cert"
    echo "host all all 127.0.0.1/32 reject"
    echo "host all all ::1/128 reject"
    cat "$hba"
} >"$tmp/hba" && install -m 600 -o "$owner" "$tmp/hba" "$hba"
q "ALTER SYSTEM SET ssl = on" >/dev/null
q "ALTER SYSTEM SET ssl_cert_file = 'tls-server.crt'" >/dev/null
q "ALTER SYSTEM SET ssl_key_file = 'tls-server.key'" >/dev/null
q "ALTER SYSTEM SET ssl_ca_file = 'tls-ca.crt'" >/dev/null
check "TLS turned on (reload)" q "SELECT pg_reload_conf()"
sleep 0.5
tcp="host=127.0.0.1 port=$pgport dbname=shouwen user=shouwen"
good="$tcp sslmode=verify-full sslrootcert=$certs/ca.crt sslcert=$certs/client.crt sslkey=$certs/client.key"
psql_try() { psql -qtAX -c 'SELECT 1' "$1" 2>&1; }
check "with the client certificate: a session" test "$(psql_try "$good")" = 1
out=$(psql_try "$tcp sslmode=disable")
check "without TLS: refused" contains "rejects connection for host \"127.0.0.1\", user \"shouwen\", database \"shouwen\", no encryption" "$out"
out=$(psql_try "$tcp sslmode=verify-full sslrootcert=$certs/ca.crt sslcert=$tmp/none.crt sslkey=$tmp/none.key")
check "TLS without a client certificate: refused" contains "connection requires a valid client certificate" "$out"
out=$(psql_try "$tcp sslmode=require sslcert=$certs/rogue.crt sslkey=$certs/rogue.key")
check "a client certificate from another CA: refused" contains "unknown ca" "$out"

echo "== 3. bad settings refuse the start, naming the setting"
tls_env=(SHOUWEN_TLS_CERT="$certs/server.crt" SHOUWEN_TLS_KEY="$certs/server.key" SHOUWEN_TLS_CA="$certs/ca.crt")
out=$(SHOUWEN_INTAKE_PUB_URL="tls+tcp://127.0.0.1:$pubport" "$bin/shouwen-intake" --check-config 2>&1)
check "a tls+tcp:// address without the files: exit 1, names the setting" \
    bash -c "! SHOUWEN_INTAKE_PUB_URL=tls+tcp://127.0.0.1:$pubport '$bin/shouwen-intake' --check-config >/dev/null 2>&1"
check "... and says what is missing" contains "SHOUWEN_INTAKE_PUB_URL names a tls+tcp:// address, but SHOUWEN_TLS_CERT" "$out"
out=$(SHOUWEN_ROUTING_SUB_URLS="ipc://$tmp/x,tls+tcp://localhost:$pubport" "$bin/shouwen-routing" --check-config 2>&1)
check "a tls+tcp:// address in a SUB_URLS list without the files: refused" contains "SHOUWEN_ROUTING_SUB_URLS names a tls+tcp://" "$out"
out=$(env "${tls_env[@]}" SHOUWEN_TLS_KEY="$certs/client.key" "$bin/shouwen-intake" --check-config 2>&1)
check "a key that is not the certificate's: refused" contains "client.key\\\" is not the key of SHOUWEN_TLS_CERT" "$out"
out=$(env "${tls_env[@]}" SHOUWEN_TLS_CA="$tmp/nowhere.crt" "$bin/shouwen-intake" --check-config 2>&1)
check "a missing CA file: refused" contains "SHOUWEN_TLS_CA: cannot read" "$out"
out=$(env "${tls_env[@]}" SHOUWEN_TLS_CA="$top/README.md" "$bin/shouwen-intake" --check-config 2>&1)
check "a CA file that is not PEM: refused" contains "is not PEM" "$out"
out=$(env SHOUWEN_TLS_CERT="$certs/server.crt" "$bin/shouwen-intake" --check-config 2>&1)
check "half the settings: refused" contains "SHOUWEN_TLS_KEY is empty" "$out"
check "all three good files: accepted" env "${tls_env[@]}" "$bin/shouwen-intake" --check-config

echo "== 4. the remote site's intake: database, bus and SubmitCase over TLS"
intake_start "${tls_env[@]}" SHOUWEN_DATABASE_URL="$good" \
    SHOUWEN_INTAKE_PUB_URL="tls+tcp://127.0.0.1:$pubport" SHOUWEN_INTAKE_REP_ADDR="tls+tcp://127.0.0.1:$repport"
check "intake's database session is TLS with the client certificate" test "$(q "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name LIKE 'intake%' AND s.ssl AND s.client_dn LIKE '%CN=shouwen%'")" -ge 1
check "no intake session without TLS" test "$(q "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name LIKE 'intake%' AND NOT s.ssl")" = 0

# the central routing, on the central database's socket, dials the remote bus by the name in the certificate
env "${tls_env[@]}" SHOUWEN_TLS_SERVER_NAME=shouwen SHOUWEN_ROUTING_ADMIN_ADDR="$radmin" \
    SHOUWEN_ROUTING_PUB_URL="ipc://$tmp/routing.pub" \
    SHOUWEN_ROUTING_SUB_URLS="tls+tcp://127.0.0.1:$pubport" "$bin/shouwen-routing" 2>"$tmp/routing.log" &
routing_pid=$!
check "central routing ready" wait_for 15 curl -fs "http://$radmin/readyz"
check "routing owns the partitions" wait_for 10 bash -c "curl -s http://$radmin/metrics | grep -q '^shouwen_bus_partitions_owned.* 16$'"

# listeners on the remote bus: one with the installation's client certificate, two without a valid one
nsub() { # nsub NAME nngcat-options...: a subscriber printing what it gets to $tmp/NAME.out
    local n=$1
    shift
    nngcat --sub0 --dial "tls+tcp://localhost:$pubport" --subscribe "case." --quoted "$@" >"$tmp/$n.out" 2>"$tmp/$n.err" &
    sub_pids+=($!)
}
nsub good --cacert "$certs/ca.crt" --cert "$certs/client.crt" --key "$certs/client.key"
nsub rogue --cacert "$certs/ca.crt" --cert "$certs/rogue.crt" --key "$certs/rogue.key"
nsub nocert --cacert "$certs/ca.crt"
nsub distrust --cacert "$certs/rogue-ca.crt" --cert "$certs/client.crt" --key "$certs/client.key"
sleep 1

fast0=$(curl -s "http://$radmin/metrics" | awk '$1 == "shouwen_bus_fastpath_received_total" || index($1, "shouwen_bus_fastpath_received_total{") == 1 {s += $2} END {print s + 0}')
cid=$(register "$KEY" '{"site":"SH01","channel":"phone","type":"repair","urgency":"normal","subject":"远程站点 TLS","description":"经 tls+tcp:// 登记","customer":{"name":"王","phone":"13800001234","unit":"3-2-501"},"external_ref":"tls-'"$RANDOM"'"}')
check "a case registered at the remote intake" test -n "$cid"
check "central routing routed it" wait_for 10 eval 'test "$(q "SELECT count(*) FROM core.handoffs WHERE case_id = '"'$cid'"'")" -ge 1'
check "... woken by the doorbell over tls+tcp:// (fast path)" wait_for 5 eval 'test "$(curl -s "http://'"$radmin"'/metrics" | awk '"'"'$1 == "shouwen_bus_fastpath_received_total" || index($1, "shouwen_bus_fastpath_received_total{") == 1 {s += $2} END {print s + 0}'"'"')" -gt '"$fast0"
check "a subscriber with a valid client certificate got the doorbell" wait_for 5 grep -q "case.registered" "$tmp/good.out"
for n in rogue nocert distrust; do
    what="with a certificate from another CA"
    [ $n != nocert ] || what="without a certificate"
    [ $n != distrust ] || what="that does not trust the server's CA"
    check "a subscriber $what got nothing" test ! -s "$tmp/$n.out"
    check "... its handshake failed" grep -qE "Cryptographic error|Connection shutdown" "$tmp/$n.err"
done
# the subscribers refused by intake itself: rogue and nocert (distrust refused intake)
check "intake counts the peers it refused (shouwen_tls_refused_total >= 2)" wait_for 5 eval \
    'test "$(curl -s "http://$admin/metrics" | awk '"'"'$1 == "shouwen_tls_refused_total" {print $2}'"'"')" -ge 2'

out=$(env "${tls_env[@]}" SHOUWEN_TLS_SERVER_NAME=shouwen "$tbin/rep_client" --url "tls+tcp://127.0.0.1:$repport" --timeout 3000 --key "$KEY" \
    --site SH01 --channel web --type consultation --subject "TLS 提交" --description "REQ over TLS" \
    --name 李 --phone 13800001234 --unit 1-1-101 --external-ref "tls-rep-$RANDOM")
check "SubmitCase over tls+tcp:// with the client certificate: a case number" contains '"number":"SH01-' "$out"
out=$(env SHOUWEN_TLS_CERT="$certs/rogue.crt" SHOUWEN_TLS_KEY="$certs/rogue.key" SHOUWEN_TLS_CA="$certs/ca.crt" SHOUWEN_TLS_SERVER_NAME=shouwen \
    "$tbin/rep_client" --url "tls+tcp://127.0.0.1:$repport" --timeout 2000 --key "$KEY" --site SH01 --subject x --description y --external-ref "tls-rogue-$RANDOM")
check "SubmitCase with a certificate from another CA: no connection ($out)" contains '"transport_error"' "$out"
out=$(env "${tls_env[@]}" SHOUWEN_TLS_SERVER_NAME=not-shouwen \
    "$tbin/rep_client" --url "tls+tcp://127.0.0.1:$repport" --timeout 2000 --key "$KEY" --site SH01 --subject x --description y --external-ref "tls-name-$RANDOM")
check "a server whose certificate does not carry the name dialed: refused ($out)" contains '"transport_error"' "$out"
check "nothing was registered by the refused peers" test "$(q "SELECT count(*) FROM core.cases WHERE external_ref LIKE 'tls-rogue-%' OR external_ref LIKE 'tls-name-%'")" = 0
check "intake still serves" curl -fs "http://$admin/readyz"

finish
