#!/usr/bin/env python3
"""A steady load of registrations and actions for the kill test
(tests/e2e/kill_test.sh), through intake's public HTTP API, as a well-made
client would send it while services and the database are killed under it.

    load.py API KEY HEAD_TOKEN PREFIX SECONDS RATE OUT

API is intake's base URL (http://127.0.0.1:PORT); KEY an API key of a
hotline (role system); HEAD_TOKEN the head of engineering's bearer token.

Registrations: RATE leaks per second for SECONDS, each with its own
external_ref PREFIX-<n>, spread over 4 keep-alive connections.  A request
that gets no answer (connection refused or cut, timeout) or a 503 is sent
again with the same external_ref until it is answered: idempotency makes
that safe, and it is how the test finds out whether anything accepted was
lost or doubled.  Every 201 or 200 is written to OUT as "ref id status".
Any other answer is an error, written to OUT as "ref - status body".

Actions: one more connection, as the head of engineering, accepts the
transferred cases of the department every 300 ms (appointing wu.tech) with
If-Match; 412 and 409 (someone moved first) are expected, counted.

Prints one line of figures at the end; exit status 1 when any request got
an answer other than those expected.
"""
import http.client
import json
import sys
import threading
import time
import urllib.parse

api, key, head, prefix = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
seconds, rate, out_path = float(sys.argv[5]), float(sys.argv[6]), sys.argv[7]
url = urllib.parse.urlsplit(api)
lock = threading.Lock()
out = open(out_path, "w")
stats = {"accepted": 0, "repeated_200": 0, "retries": 0, "errors": 0, "actions_ok": 0,
         "actions_conflict": 0, "actions_retried": 0, "action_errors": 0}
start = time.monotonic()
stop = threading.Event()


def bump(k, n=1):
    with lock:
        stats[k] += n


def request(conn, method, path, body, headers):
    """One request on a keep-alive connection; returns (conn, status, body) or (None, None, err)."""
    try:
        if conn is None:
            conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
        conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        data = r.read()
        if r.getheader("Connection", "").lower() == "close":
            conn.close()
            conn = None
        return conn, r.status, data
    except (OSError, http.client.HTTPException) as e:
        if conn is not None:
            conn.close()
        return None, None, str(e)


def registrations(me, n_threads):
    conn = None
    i = 0
    per = rate / n_threads
    while True:
        due = start + i / per
        if due - start >= seconds:
            break
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        ref = "%s-%d-%d" % (prefix, me, i)
        body = json.dumps({"site": "SH01", "channel": "hotline", "type": "help", "urgency": "normal",
                           "subject": "厨房漏水 " + ref, "customer": {"name": "测试", "phone": "13800001234"},
                           "external_ref": ref}).encode()
        give_up = time.monotonic() + 120
        while True:
            conn, status, data = request(conn, "POST", "/v1/cases", body,
                                         {"Authorization": "Bearer " + key,
                                          "Content-Type": "application/json"})
            if status in (201, 200):
                cid = json.loads(data)["id"]
                with lock:
                    out.write("%s %s %d\n" % (ref, cid, status))
                    stats["accepted"] += 1
                    if status == 200:
                        stats["repeated_200"] += 1
                break
            if (status is None or status == 503) and time.monotonic() < give_up:
                bump("retries")
                time.sleep(0.2)
                continue
            with lock:
                out.write("%s - %s %s\n" % (ref, status, (data if isinstance(data, str) else data.decode("utf-8", "replace"))[:200].replace("\n", " ")))
                stats["errors"] += 1
            break
        i += 1


def actions():
    conn = None
    auth = {"Authorization": "Bearer " + head}
    while not stop.is_set():
        time.sleep(0.3)
        conn, status, data = request(conn, "GET", "/v1/cases?department=engineering&status=transferred&limit=20",
                                     None, auth)
        if status != 200:
            bump("actions_retried")
            continue
        for c in json.loads(data).get("cases", []):
            conn, status, data = request(conn, "POST", "/v1/cases/%s/actions/accept" % c["id"],
                                         b'{"handler":"wu.tech"}',
                                         dict(auth, **{"Content-Type": "application/json",
                                                       "If-Match": '"%d"' % c["version"]}))
            if status == 200:
                bump("actions_ok")
            elif status in (409, 412):
                bump("actions_conflict")
            elif status is None or status == 503:
                bump("actions_retried")
            else:
                bump("action_errors")
                with lock:
                    out.write("accept %s - %s %s\n" % (c["id"], status, data[:200]))


n = 4
threads = [threading.Thread(target=registrations, args=(k, n)) for k in range(n)]
act = threading.Thread(target=actions)
for t in threads:
    t.start()
act.start()
for t in threads:
    t.join()
stop.set()
act.join()
out.close()
print(" ".join("%s=%d" % kv for kv in stats.items()), "seconds=%.1f" % (time.monotonic() - start))
sys.exit(1 if stats["errors"] or stats["action_errors"] else 0)
