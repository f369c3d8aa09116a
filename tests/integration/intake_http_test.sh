#!/usr/bin/env bash
# intake's HTTP/1.1 server (services/intake/httpd.c) on a real socket, byte
# by byte where it matters (tests/integration/http_raw.py): keep-alive and
# pipelining, a head in pieces, HTTP/1.0, bad heads (400, 431, 505), two
# Content-Lengths, "Expect: 100-continue", a body over the limit answered
# (not reset), HEAD, a slow reader of a large answer, a client gone in the
# middle of its body, idle and stalled connections closed, the connection
# limit, and the service answering normally after all of it.
set -uo pipefail

name=intake-http
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
trap intake_cleanup EXIT

raw() { python3 "$top/tests/integration/http_raw.py" "$port" "$@"; }
# has TEXT STRING: STRING contains TEXT (fixed), else prints STRING
has() { grep -qF -- "$1" <<<"$2" || { echo "got: $2"; return 1; }; }
# has2 TEXT1 TEXT2 STRING: STRING contains both
has2() { has "$1" "$3" && has "$2" "$3"; }
count() { grep -o -- "$1" <<<"$2" | wc -l; }
metric_of() { curl -s "http://$admin/metrics" | awk -v m="$1" '$1 == m {print $2}'; }

echo "== setup"
intake_setup
mkdir -p "$tmp/console"
printf '<!doctype html><title>c</title>\n' >"$tmp/console/index.html"
head -c 1100000 /dev/urandom | base64 -w 0 >"$tmp/console/big.js"
intake_start SHOUWEN_INTAKE_CONSOLE_DIR="$tmp/console"
get='GET /v1/nothing HTTP/1.1\r\nHost: x\r\n\r\n'

echo "== keep-alive and pipelining"
out=$(raw "$get$get$get")
check "three requests in one write: three answers, in order" test "$(count 'HTTP/1.1 404 Not Found' "$out")" = 3
check "... and the connection stays open" has '<OPEN>' "$out"
out=$(raw --gap 0.3 'GET /v1/noth' 'ing HTTP/1.1\r\nHo' 'st: x\r\n\r\n')
check "a head in three pieces, 0.3 s apart: answered" has 'HTTP/1.1 404' "$out"
out=$(raw --shut "$get")
check "the client shuts its side after the request: still answered" has 'HTTP/1.1 404' "$out"
check "... then the connection ends" has '<EOF>' "$out"
out=$(raw --shut "$get$get")
check "two requests, then the client shuts its side: both answered" test "$(count 'HTTP/1.1 404' "$out")" = 2
check "... then the connection ends" has '<EOF>' "$out"
out=$(raw 'GET /v1/nothing HTTP/1.0\r\n\r\n')
check "HTTP/1.0: answered, Connection: close" has 'Connection: close' "$out"
check "... and closed" has '<EOF>' "$out"
out=$(raw '\r\n\r\nGET /v1/nothing HTTP/1.1\r\n\r\n')
check "empty lines before a request are skipped" has 'HTTP/1.1 404' "$out"

echo "== bad heads: answered, then the connection ends"
out=$(raw 'GARBAGE\r\n\r\n')
check "no request line: 400" has 'HTTP/1.1 400' "$out"
check "... malformed request, in JSON" has '{"error":"malformed request' "$out"
check "... closed" has '<EOF>' "$out"
check "a space before the colon: 400" has 'HTTP/1.1 400' "$(raw 'GET /v1/x HTTP/1.1\r\nHost : x\r\n\r\n')"
check "a folded header line: 400" has 'HTTP/1.1 400' "$(raw 'GET /v1/x HTTP/1.1\r\nA: b\r\n c\r\n\r\n')"
check "a NUL in the head: 400" has 'HTTP/1.1 400' "$(raw 'GET /v1/x HTTP/1.1\r\nA: \x00\r\n\r\n')"
check "HTTP/2.0: 505" has 'HTTP/1.1 505' "$(raw 'GET /v1/x HTTP/2.0\r\n\r\n')"
out=$(raw 'GET /v1/x HTTP/1.1\r\nX-Big: ' '@70000:a' '\r\n\r\n')
check "a head over 64 KB: 431" has 'HTTP/1.1 431' "$out"
check "... closed" has '<EOF>' "$out"
out=$(raw 'POST /v1/cases HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\nContent-Length: 40\r\n\r\n{}')
check "two Content-Lengths: 400 naming the header" has 'more than one Content-Length header' "$out"
check "... closed (the body could be framed two ways)" has '<EOF>' "$out"

echo "== bodies"
body='{"site":'
head="POST /v1/cases HTTP/1.1\r\nAuthorization: Bearer $KEY\r\nContent-Type: application/json\r\nContent-Length: ${#body}\r\n"
out=$(raw --first 0.5 "${head}Expect: 100-continue\r\n\r\n" "$body")
check "Expect: 100-continue: 100 Continue before the body is sent" has 'HTTP/1.1 100 Continue' "${out%%<--->*}"
check "... then the answer (malformed JSON: 400)" has 'malformed JSON' "${out#*<--->}"
check "... on a connection kept open" has '<OPEN>' "$out"
out=$(raw "${head}\r\n" "$body" --gap 0.5)
check "a body 0.5 s after its head: read, answered" has 'malformed JSON' "$out"
# in one write: the server has the unread body in hand when it closes, and
# a plain close() would reset the connection, maybe before the 413 is read
out=$(raw --join 'POST /v1/cases HTTP/1.1\r\nAuthorization: Bearer x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n' '@100000:x')
check "a body over the limit, sent with its head: 413 reaches the client" has 'HTTP/1.1 413' "$out"
check "... and the connection ends with a close, not a reset" has '<EOF>' "$out"
out=$(raw 'GET /v1/cases HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello')
check "a body on a GET: 400, closed" has2 'HTTP/1.1 400' '<EOF>' "$out"
out=$(raw --wait 1 'HEAD /v1/nothing HTTP/1.1\r\n\r\n')
cl=$(raw --wait 0.3 "$get" | grep -o 'Content-Length: [0-9]*' | head -n 1)
check "HEAD: the status and the length the body would have" has2 'HTTP/1.1 404' "${cl:-no length}" "$out"
check "... not the body" test "$(count 'no such resource' "$out")" = 0
before=$(metric_of shouwen_intake_requests_total)
raw --wait 0.2 "${head/Content-Length: ${#body}/Content-Length: 5000}\r\n" '{"site":"SH01",' --shut >/dev/null
check "a client gone in the middle of its body: the service still answers" \
    has 'HTTP/1.1 404' "$(raw "$get")"
check "... the request was counted, never answered to anyone" test "$(metric_of shouwen_intake_requests_total)" -gt "$before"

echo "== a large answer to a slow reader"
out=$(raw --slow --wait 5 --body-md5 'GET /big.js HTTP/1.1\r\n\r\n')
check "1.5 MB read 4 KB at a time: every byte, in order" \
    test "$out" = "HTTP/1.1 200 OK $(stat -c %s "$tmp/console/big.js") $(md5sum <"$tmp/console/big.js" | cut -d' ' -f1)
<OPEN>"

echo "== the API itself, on the same server"
code=$(curl -s -o "$tmp/reg.out" -w '%{http_code}' -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
    --data-binary '{"site":"SH01","channel":"phone","type":"complaint","subject":"HTTP test","customer":{"name":"Wang","phone":"13800001234"},"external_ref":"http-test-1"}' "$api/v1/cases")
check "a registration: 201" test "$code" = 201
intake_stop

echo "== idle and stalled connections, the connection limit"
intake_start SHOUWEN_INTAKE_HTTP_IDLE=1s
check "a connection that sends nothing is closed after the idle time" has '<EOF>' "$(raw --wait 4 '')"
check "... so is one that stops in the middle of its head" has '<EOF>' "$(raw --wait 4 'GET /v1/noth')"
out=$(raw --wait 4 "$get")
check "... and a kept-alive one after its answer" has2 'HTTP/1.1 404' '<EOF>' "$out"
out=$(raw --wait 4 "${head}\r\n" '{"si')
check "a body that stops arriving: the request ends (400), the connection too" \
    has2 'body did not arrive' '<EOF>' "$out"
intake_stop
intake_start SHOUWEN_INTAKE_HTTP_MAX_CONNS=3
# three connections held open (each answered once) until $tmp/release exists
python3 - "$port" "$tmp" <<'EOF' &
import os, socket, sys, time
held = [socket.create_connection(("127.0.0.1", int(sys.argv[1]))) for _ in range(3)]
for s in held:
    s.sendall(b"GET /v1/nothing HTTP/1.1\r\n\r\n")
    s.recv(4096)
open(sys.argv[2] + "/held", "w").close()
for _ in range(100):
    if os.path.exists(sys.argv[2] + "/release"):
        break
    time.sleep(0.05)
EOF
holder=$!
check "three connections open" wait_for 10 test -e "$tmp/held"
out=$(raw --wait 1 "$get")
check "a fourth connection over a limit of 3: 503, closed" has2 'too many connections' '<EOF>' "$out"
# A request already in the socket when the 503 goes: closed at once, its unread bytes turned
# the close into a reset, which can overtake the answer (seen once in CI). The close lingers as
# any other now. The window is short: 200 connections, each sending at once, none reset.
over() {
    python3 - "$port" <<'PY'
import socket, sys
bad = 0
for _ in range(200):
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
    s.sendall(b"GET /v1/nothing HTTP/1.1\r\nHost: x\r\n\r\n")
    s.settimeout(5)
    got = b""
    try:
        while True:
            b = s.recv(4096)
            if not b:
                break
            got += b
    except OSError:
        got += b"<RESET>"
    if b"too many connections" not in got or b"<RESET>" in got:
        bad += 1
    s.close()
print(bad)
PY
}
bad=$(over)
check "... 200 more that sent a request at once: each answered 503, none reset" test "$bad" = 0
touch "$tmp/release"
wait "$holder"
check "once they are gone, a new one is served" wait_for 5 bash -c "python3 '$top/tests/integration/http_raw.py' $port '$get' --wait 0.3 | grep -q 'HTTP/1.1 404'"
check "the open connections are a gauge on /metrics" test -n "$(metric_of shouwen_intake_http_connections)"
intake_stop

finish
