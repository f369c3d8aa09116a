#!/usr/bin/env bash
# The observability files against the real thing: all five services run
# (tests/e2e/lib.sh: a private cluster, free ports, ipc:// in a private
# folder), a few cases go through them so that every counter exists, each
# admin /metrics is scraped into a file, and deploy/metrics_check.py must
# find every metric name and label the Grafana dashboard and the alert rules
# use in those scrapes (deploy/observability/).  Then broken copies of
# alerts.yml and of the dashboard (a metric nobody exports, a rule without
# `for`, unbalanced parentheses, a label the metric lacks) must each be
# reported, so the check is known to bite.
set -uo pipefail

name=ops-observability
. "$(dirname "${BASH_SOURCE[0]}")/../e2e/lib.sh"
obs=$top/deploy/observability
checker=$top/deploy/metrics_check.py
py=/usr/bin/python3 # Debian's, with python3-yaml

echo "== the five services, a few cases through them"
e2e_setup
svc_start intake
check "the sign-in counters show before any sign-in" \
    eval 'curl -s "http://${svc_admin[intake]}/metrics" | grep -q "^shouwen_intake_signins_refused_total 0$"'
# routing with two consumer threads: their partitions add up in the one series
svc_start routing SHOUWEN_ROUTING_CONSUMERS=2
for s in escalation notification audit; do svc_start "$s"; done
P=$(q "SELECT partitions FROM bus.settings")
for i in 1 2 3; do
    check "case $i registered" test -n "$(register "$TOKEN" "{\"site\":\"SH01\",\"channel\":\"phone\",\"type\":\"complaint\",\"urgency\":\"normal\",\"subject\":\"metrics $i\",\"description\":\"so the counters move\",\"customer\":{\"name\":\"x\",\"phone\":\"1380000100$i\"}}")"
done
check "a refused console sign-in (registers the sign-in counters)" \
    test "$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' \
        -d '{"site":"SH01","staff":"li.desk","password":"not-the-password"}' "$api/v1/session")" = 401
for s in routing escalation notification audit; do
    check "$s owns all $P partitions" wait_for 15 eq "$P" metric "$s" shouwen_bus_partitions_owned
done
check "routing decided the 3 cases" wait_for 15 ge 3 metric routing shouwen_routing_decisions_total
check "audit chained their events" wait_for 15 ge 3 metric audit shouwen_audit_appended_total

echo "== scraped /metrics against deploy/observability"
mkdir -p "$tmp/scrape"
scrapes=()
for s in intake routing escalation notification audit; do
    check "$s: /metrics scraped" curl -fsS -o "$tmp/scrape/$s.prom" "http://${svc_admin[$s]}/metrics"
    scrapes+=("$tmp/scrape/$s.prom")
done
runbook=()
if [ -f "$top/deploy/README.md" ]; then
    runbook=(--runbook-root "$top")
else
    echo "     (deploy/README.md not written yet: runbook links not checked)"
fi
# checked COMMAND...: runs it with its output in $tmp/checker.out (shown below the check)
checked() { "$@" >"$tmp/checker.out" 2>&1; }
check "metrics_check: the dashboard, alerts.yml and prometheus.yml use only what the services export" \
    checked "$py" "$checker" --dashboard "$obs/grafana-dashboard.json" --alerts "$obs/alerts.yml" \
    --prometheus "$obs/prometheus.yml" "${runbook[@]}" --metrics "${scrapes[@]}"
sed 's/^/     /' "$tmp/checker.out"
if command -v promtool >/dev/null; then
    check "promtool check rules alerts.yml" promtool check rules "$obs/alerts.yml"
    check "promtool check config prometheus.yml" promtool check config "$obs/prometheus.yml"
fi

echo "== broken copies are reported"
"$py" - "$obs/alerts.yml" "$tmp/broken-alerts.yml" <<'PY'
import sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
rules = {r["alert"]: r for g in doc["groups"] for r in g["rules"]}
rules["ShouwenBusLagHigh"]["expr"] = "max by (consumer) (shouwen_bus_lagg) > 1000"
del rules["ShouwenParkedEvents"]["for"]
rules["ShouwenDeadLetters"]["expr"] = "sum by (job) (increase(shouwen_notification_dead_total[15m]) > 0"
rules["ShouwenDatabaseDown"]["expr"] = 'shouwen_db_up{consumer="routing"} == 0'
yaml.safe_dump(doc, open(sys.argv[2], "w"), allow_unicode=True, sort_keys=False)
PY
"$py" - "$obs/grafana-dashboard.json" "$tmp/broken-dashboard.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
panels = [p for p in d["panels"] if p.get("type") != "row"]
panels[0]["targets"][0]["expr"] = "sum by (partition) (rate(shouwen_intake_requests_total[5m]))"
panels[1]["targets"] = []
json.dump(d, open(sys.argv[2], "w"))
PY
"$py" "$checker" --dashboard "$tmp/broken-dashboard.json" --alerts "$tmp/broken-alerts.yml" \
    --metrics "${scrapes[@]}" >"$tmp/broken.out" 2>&1
rc=$?
check "metrics_check exits 1 on the broken copies" test "$rc" = 1
reported() { grep -F -- "$1" "$tmp/broken.out" | grep -qF -- "$2" || { cat "$tmp/broken.out"; return 1; }; }
check "... an unknown metric, named with its alert" reported "alert ShouwenBusLagHigh" "metric shouwen_bus_lagg is exported by no scraped service"
check "... a rule without 'for'" reported "alert ShouwenParkedEvents" "no 'for'"
check "... unbalanced parentheses" reported "alert ShouwenDeadLetters" "unbalanced: '(' at column"
check "... a label the metric does not carry" reported "alert ShouwenDatabaseDown" "shouwen_db_up has no label 'consumer'"
check "... a by () label no metric of the aggregation carries, named with its panel" \
    reported "panel '" "by (partition): no label 'partition' on shouwen_intake_requests_total"
check "... a panel without targets" reported "panel '" "no targets"

finish
