#!/usr/bin/env python3
"""The demo's webhook receiver: what `make run` points the demo site's
webhook channel at, so that a newcomer sees notifications arrive.

    receiver.py --secret-file FILE [--addr 127.0.0.1:7409]

An HTTP server (Python's standard library only) that takes each POST as a
webhook, checks its Standard Webhooks signature (webhook-id,
webhook-timestamp, webhook-signature: HMAC-SHA256 with the channel's
whsec_ secret, read from FILE on every request, the timestamp within 5
minutes) and prints one line per request to stdout, which deploy/stack.sh
appends to .run/log/receiver.log:

    2026-11-24 10:15:02 +0800  signature ok  msg_5f0c...  case.transferred  SH01-20261124-0001  for zhou.eng,wei.qa  <the message text>

It answers 200, or 401 when the signature does not check (the line says
why).  Whatever arrives (no headers, a body that is not JSON, a lying
Content-Length) is logged and answered, never fatal.  GET /healthz
answers 200 (stack.sh waits for it).  The address defaults to
SHOUWEN_DEMO_RECEIVER_ADDR, else 127.0.0.1:7409.
"""
import argparse
import base64
import binascii
import hashlib
import hmac
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 1 << 20   # notification's webhooks are a few kilobytes
TOLERANCE = 5 * 60   # Standard Webhooks: refuse timestamps further off than this
TEXT_MAX = 600       # characters of the message shown on the line

out_lock = threading.Lock()


def say(line):
    with out_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def complain(msg):
    with out_lock:
        sys.stderr.write("receiver: " + msg + "\n")
        sys.stderr.flush()


def one_line(s, limit):
    s = " ".join(str(s).split())
    return s if len(s) <= limit else s[:limit - 1] + "…"


def read_key(path):
    """The HMAC key of a whsec_<base64> secret; raises ValueError saying what is wrong."""
    try:
        with open(path, encoding="ascii") as f:
            secret = f.read().strip()
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"could not read the secret file {path}: {e}") from None
    if not secret.startswith("whsec_"):
        raise ValueError(f"{path}: the secret must be whsec_<base64>")
    try:
        return base64.b64decode(secret[len("whsec_"):], validate=True)
    except binascii.Error:
        raise ValueError(f"{path}: the secret after whsec_ is not base64") from None


def check_signature(key_file, headers, body):
    """None when the request is signed with the secret, else the reason it is not."""
    mid, ts, sig = (headers.get(h) for h in ("webhook-id", "webhook-timestamp", "webhook-signature"))
    missing = [h for h, v in (("webhook-id", mid), ("webhook-timestamp", ts),
                              ("webhook-signature", sig)) if not v]
    if missing:
        return "no " + ", ".join(missing) + " header"
    try:
        t = int(ts)
    except ValueError:
        return "webhook-timestamp is not a number"
    if abs(time.time() - t) > TOLERANCE:
        return f"webhook-timestamp {t} is more than {TOLERANCE} s away from now"
    try:
        key = read_key(key_file)
    except ValueError as e:
        return str(e)
    want = base64.b64encode(hmac.new(key, f"{mid}.{ts}.".encode() + body, hashlib.sha256).digest())
    for s in sig.split():
        version, _, value = s.partition(",")
        if version == "v1" and hmac.compare_digest(value.encode(), want):
            return None
    return "no v1 signature matches the secret"


def describe(body):
    """(event type, case number, recipients, text) of a notification's webhook body."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return "-", "-", "", f"(not JSON: {len(body)} bytes)"
    if not isinstance(doc, dict):
        return "-", "-", "", "(JSON, but not an object)"
    data = doc.get("data") if isinstance(doc.get("data"), dict) else {}
    staff = [r.get("staff") for r in data.get("recipients") or [] if isinstance(r, dict)]
    return (str(doc.get("type") or "-"), str(data.get("case_number") or "-"),
            ",".join(str(s) for s in staff if s), str(data.get("text") or data.get("title") or ""))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as notification's libcurl expects
    timeout = 30                   # a silent client does not hold a thread for ever
    server_version = "shouwen-demo-receiver"
    key_file = ""

    def log_message(self, *args):
        pass

    def answer(self, status, text=""):
        body = (text + "\n").encode() if text else b""
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/healthz":
            self.answer(200, "ok")
        else:
            self.answer(200, "shouwen's demo webhook receiver: POST webhooks here; "
                             "each one is a line in .run/log/receiver.log")

    def do_POST(self):
        now = time.strftime("%Y-%m-%d %H:%M:%S %z")
        mid = one_line(self.headers.get("webhook-id") or "-", 80)
        length = self.headers.get("Content-Length")
        try:
            n = int(length) if length is not None else -1
        except ValueError:
            n = -1
        if n < 0 or n > MAX_BODY:
            self.close_connection = True  # the body's end is unknown: this connection is done
            reason = "no Content-Length" if length is None else f"Content-Length {one_line(length, 40)}"
            say(f"{now}  refused       {mid}  {reason} (at most {MAX_BODY} bytes)")
            self.answer(411 if length is None else 413, "a body of known length, at most 1 MiB")
            return
        body = self.rfile.read(n)
        if len(body) < n:
            self.close_connection = True
            say(f"{now}  refused       {mid}  the body ended after {len(body)} of {n} bytes")
            return
        bad = check_signature(self.key_file, self.headers, body)
        etype, number, staff, text = describe(body)
        sig = "signature ok " if bad is None else f"signature BAD ({bad})"
        line = f"{now}  {sig}  {mid}  {one_line(etype, 60)}  {one_line(number, 40)}"
        if staff:
            line += "  for " + one_line(staff, 200)
        say(line + "  " + one_line(text, TEXT_MAX))
        self.answer(200 if bad is None else 401, "" if bad is None else bad)

    def do_PUT(self):
        self.answer(405, "POST only")

    do_DELETE = do_PATCH = do_PUT


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        complain(f"request from {client_address[0]}: {sys.exc_info()[1]!r}")


def main():
    p = argparse.ArgumentParser(description="shouwen's demo webhook receiver")
    p.add_argument("--addr", default=os.environ.get("SHOUWEN_DEMO_RECEIVER_ADDR") or "127.0.0.1:7409",
                   help="host:port to listen on (default: $SHOUWEN_DEMO_RECEIVER_ADDR or 127.0.0.1:7409)")
    p.add_argument("--secret-file", required=True, help="the channel's whsec_ secret")
    a = p.parse_args()
    host, _, port = a.addr.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        complain(f"could not parse --addr {a.addr!r}: expected host:port")
        return 2
    try:
        read_key(a.secret_file)
    except ValueError as e:
        complain(str(e))
        return 1
    Handler.key_file = a.secret_file
    try:
        srv = Server((host, int(port)), Handler)
    except OSError as e:
        complain(f"could not listen on {a.addr}: {e.strerror or e}")
        return 1
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    complain(f"listening on http://{a.addr}/ (pid {os.getpid()})")
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
