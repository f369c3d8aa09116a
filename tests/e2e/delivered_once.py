#!/usr/bin/env python3
"""delivered_once.py DELIVERED RECEIVED_LOG: no delivery recorded as
delivered was sent again after its record, and each reached the receiver
with a good signature.

DELIVERED has one line per delivery recorded as delivered: its message id
and the epoch seconds of its record (notification.deliveries.delivered_at).
RECEIVED_LOG is tests/notify/receiver.py's log; only requests to /hook/ok
count.  An attempt's webhook-timestamp is when the sender made it (whole
seconds): one made after the delivery was recorded is a second send of a
sent message.  (The time the receiver read it is no guide: a request whose
sender timed out may still be read later.)  Used by tests/e2e/kill_test.sh
and tests/ops/failover_test.sh; exits 1 naming the first few at fault.
"""
import json
import sys

recorded = {}
for line in open(sys.argv[1]):
    mid, at = line.split()
    recorded[mid] = float(at)
hits = {}
for line in open(sys.argv[2]):
    r = json.loads(line)
    if r["path"] == "/hook/ok":
        hits.setdefault(r["id"], []).append((int(r["ts"] or 0), r["status"], r["sig_ok"]))
late = [m for m, at in recorded.items() for ts, s, ok in hits.get(m, []) if ts > int(at)]
unseen = [m for m in recorded if not any(s == 200 and ok for t, s, ok in hits.get(m, []))]
twice = sum(1 for m in recorded if len(hits.get(m, [])) > 1)
if late:
    sys.exit("sent again after being recorded: %s" % late[:5])
if unseen:
    sys.exit("recorded as delivered, never received with a good signature: %s" % unseen[:5])
print(len(recorded), "deliveries;", twice, "received twice before their record (a kill between send and record)")
