#!/usr/bin/env python3
"""A loopback receiver for notification's tests: a real HTTP/1.1 server
(keep-alive) that plays a webhook endpoint, an SMS gateway and the chat
robots, checks every signature with its own code (Python's hmac, not
shouwen's), and can be told by the URL path to fail.

    receiver.py PORT LOG SECRET

SECRET is the webhook secret (whsec_<base64>) and the robots' signing
secret.  Each request is appended to LOG as one JSON line:
{"path", "id", "sig_ok", "n" (the how-many-th request with this id and
path), "status" (what was answered), "body", "time" (when it was read
here), "ts" (its webhook-timestamp: when the sender made that attempt)}.

Paths:
  /hook/ok          200
  /hook/burst       200 (another endpoint, for the kill test)
  /hook/fail3       503 for the first 3 requests of each webhook-id, then 200
  /hook/429         429 with Retry-After: 2 for the first request of an id, then 200
  /hook/hang        first request of an id: no answer for 30 s; then 200
  /hook/400         always 400 (a final answer: no retry)
  /sms              200 when the auth header is right, else 401
  /wecom            {"errcode":0}
  /dingtalk         {"errcode":0} when timestamp and sign check, else errcode 310000
  /feishu           {"code":0} when timestamp and sign check, else code 19021
  /slack            "ok"
"""
import base64
import hashlib
import hmac
import json
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

port, log_path, secret = int(sys.argv[1]), sys.argv[2], sys.argv[3]
key = base64.b64decode(secret[len("whsec_"):]) if secret.startswith("whsec_") else secret.encode()
lock = threading.Lock()
seen = {}


def webhook_ok(headers, body):
    mid, ts, sig = headers.get("webhook-id"), headers.get("webhook-timestamp"), headers.get("webhook-signature")
    if not (mid and ts and sig):
        return False
    if abs(time.time() - int(ts)) > 300:
        return False
    want = base64.b64encode(hmac.new(key, f"{mid}.{ts}.".encode() + body, hashlib.sha256).digest()).decode()
    return any(s.startswith("v1,") and hmac.compare_digest(s[3:], want) for s in sig.split(" "))


def robot_sign(ts, for_dingtalk):
    s = secret.encode()
    if for_dingtalk:
        return base64.b64encode(hmac.new(s, f"{ts}\n{secret}".encode(), hashlib.sha256).digest()).decode()
    return base64.b64encode(hmac.new(f"{ts}\n{secret}".encode(), b"", hashlib.sha256).digest()).decode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n)
        url = urllib.parse.urlsplit(self.path)
        path, query = url.path, urllib.parse.parse_qs(url.query)
        mid = self.headers.get("webhook-id") or ""
        with lock:
            k = (path, mid)
            seen[k] = seen.get(k, 0) + 1
            count = seen[k]
        sig_ok = None
        status, out, extra = 200, b"", []
        if path.startswith("/hook/"):
            sig_ok = webhook_ok(self.headers, body)
            mode = path[len("/hook/"):]
            if not sig_ok:
                status = 401
            elif mode == "fail3" and count <= 3:
                status = 503
            elif mode == "429" and count == 1:
                status, extra = 429, [("Retry-After", "2")]
            elif mode == "400":
                status = 400
            elif mode == "hang" and count == 1:
                time.sleep(30)
        elif path == "/sms":
            sig_ok = self.headers.get("Authorization") == "Bearer " + secret
            status = 200 if sig_ok else 401
            out = b'{"ok":true}'
        elif path == "/wecom":
            out = b'{"errcode":0,"errmsg":"ok"}'
            sig_ok = True
        elif path == "/dingtalk":
            ts = (query.get("timestamp") or [""])[0]
            sign = (query.get("sign") or [""])[0]
            sig_ok = bool(ts) and hmac.compare_digest(sign, robot_sign(ts, True))
            out = b'{"errcode":0,"errmsg":"ok"}' if sig_ok else b'{"errcode":310000,"errmsg":"sign not match"}'
        elif path == "/feishu":
            j = json.loads(body or b"{}")
            sig_ok = "timestamp" in j and hmac.compare_digest(j.get("sign", ""), robot_sign(j["timestamp"], False))
            out = b'{"code":0,"msg":"success"}' if sig_ok else b'{"code":19021,"msg":"sign match fail"}'
        elif path == "/slack":
            out, sig_ok = b"ok", True
        else:
            status = 404
        rec = {"path": path, "id": mid, "sig_ok": sig_ok, "n": count, "status": status,
               "body": body.decode("utf-8", "replace"), "time": time.time(),
               "auth": self.headers.get("Authorization"), "ts": self.headers.get("webhook-timestamp")}
        with lock, open(log_path, "a") as f:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        self.answer(status, out, extra)


ThreadingHTTPServer.daemon_threads = True
# a burst of hundreds of connections at once (a sender catching up) is taken at
# once, not left in a short backlog where the sender's timeout expires first
ThreadingHTTPServer.request_queue_size = 1024
ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
