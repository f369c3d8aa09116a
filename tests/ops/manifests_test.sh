#!/usr/bin/env bash
# manifests_test.sh - the Kubernetes manifests (deploy/k8s) and the systemd
# units (deploy/systemd) against the binaries in $SHOUWEN_BIN, with
# deploy/ops_check.py: the real files must pass, and each kind of mistake,
# made on purpose in a copy, must be reported, naming the file. No cluster,
# no systemd, no database, no ports: it runs in seconds.
set -uo pipefail
name=manifests
. "$(dirname "${BASH_SOURCE[0]}")/../integration/lib.sh"
cleanup() {
    local j
    for j in $(jobs -p); do kill "$j" 2>/dev/null; done
    wait 2>/dev/null
    [ -n "${KEEP_TMP:-}" ] || rm -rf "$tmp"
}
trap cleanup EXIT
checker=$top/deploy/ops_check.py

for b in intake routing escalation notification audit migrate; do
    [ -x "$bin/shouwen-$b" ] || { echo "FAIL $bin/shouwen-$b is missing (make all)"; exit 1; }
done

# --- the real files --------------------------------------------------------
python3 "$checker" "$bin" >"$tmp/real.out" 2>&1
rc=$?
if [ $rc -eq 0 ]; then ok "deploy/k8s and deploy/systemd pass ops_check.py"; else
    bad "deploy/k8s and deploy/systemd pass ops_check.py" "exit $rc: $(head -n 20 "$tmp/real.out")"; fi
sed 's/^/     /' "$tmp/real.out"
if command -v systemd-analyze >/dev/null; then
    check "systemd-analyze verify ran on the units" grep -q "systemd-analyze verify: [0-9]* units" "$tmp/real.out"
else
    echo "     (systemd-analyze is not installed here: the units were not run through systemd-analyze verify)"
fi
if command -v kubectl >/dev/null && timeout 30 kubectl kustomize "$top/deploy/k8s" >"$tmp/rendered.yaml" 2>"$tmp/kubectl.err"; then
    ok "kubectl kustomize renders deploy/k8s ($(grep -c '^kind:' "$tmp/rendered.yaml") objects)"
elif command -v kubectl >/dev/null; then
    bad "kubectl kustomize renders deploy/k8s" "$(tail -n 5 "$tmp/kubectl.err")"
else
    echo "     (kubectl is not installed here: kustomize's own rendering was not tried)"
fi

# --- broken copies ---------------------------------------------------------
# Edits are Python, run in the copy's folder (k8s/ and systemd/ in it):
#   sub(FILE, OLD, NEW)       replace text that must be there
#   drop(FILE, KIND, NAME)    remove a YAML document
#   rm(FILE)
cat >"$tmp/edit.py" <<'PY'
import os, sys
os.chdir(sys.argv[1])
def sub(f, old, new):
    s = open(f).read()
    if old not in s:
        sys.exit(f"{f}: no {old!r} to replace")
    open(f, "w").write(s.replace(old, new, 1))
def drop(f, kind, name):
    docs = open(f).read().split("\n---\n")
    keep = [d for d in docs if not (f"kind: {kind}\n" in d and f"  name: {name}\n" in d)]
    if len(keep) != len(docs) - 1:
        sys.exit(f"{f}: no single {kind} {name}")
    open(f, "w").write("\n---\n".join(keep))
def rm(f):
    os.remove(f)
exec(sys.argv[2])
PY

# broken ID WHAT EXPECTED-LINE-REGEX PYTHON-EDIT [BIN_DIR]: the checker runs
# in the background (four at a time); verdicts are read at the end
ids=()
broken() {
    local id=$1 d=$tmp/case-$1
    mkdir -p "$d"
    cp -r "$top/deploy/k8s" "$top/deploy/systemd" "$d/"
    printf '%s' "$2" >"$d/what"
    printf '%s' "$3" >"$d/want"
    ids+=("$id")
    if ! python3 "$tmp/edit.py" "$d" "$4" >"$d/out" 2>&1; then
        echo 99 >"$d/rc"
        return
    fi
    while [ "$(jobs -rp | wc -l)" -ge 4 ]; do wait -n; done
    # only the folder the case is about; systemd-analyze only where it is the point
    local folders=(--k8s k8s)
    case $id in
    sd-verify) folders=(--systemd systemd) ;;
    sd-*) folders=(--systemd systemd --no-verify) ;;
    required-*) folders=(--k8s k8s --systemd systemd --no-verify) ;;
    esac
    ( cd "$d" && python3 "$checker" "${5:-$bin}" "${folders[@]}" >out 2>&1; echo $? >rc ) &
}

# Kubernetes
broken unknown-setting "k8s: a setting the binary does not read" \
    '^k8s/routing.yaml: Deployment routing: sets SHOUWEN_ROUTING_BOGUS \(from ConfigMap shouwen-routing\), which shouwen-routing does not read$' \
    'sub("k8s/routing.yaml", "  SHOUWEN_ROUTING_BATCH_MAX:", "  SHOUWEN_ROUTING_BOGUS: \"1\"\n  SHOUWEN_ROUTING_BATCH_MAX:")'
broken shared-setting "k8s: a setting only audit reads, in the ConfigMap every Deployment takes" \
    '^k8s/intake.yaml: Deployment intake: sets SHOUWEN_AUDIT_CHECKPOINT_INTERVAL \(from ConfigMap shouwen-common\), which shouwen-intake does not read$' \
    'sub("k8s/common.yaml", "  SHOUWEN_LOG_LEVEL: info", "  SHOUWEN_LOG_LEVEL: info\n  SHOUWEN_AUDIT_CHECKPOINT_INTERVAL: 60s")'
broken no-readiness "k8s: a Deployment without readinessProbe" \
    '^k8s/escalation.yaml: Deployment escalation: no readinessProbe \(GET /readyz on the admin port 7403\)$' \
    'sub("k8s/escalation.yaml", "          readinessProbe:\n            httpGet: {path: /readyz, port: admin}\n            periodSeconds: 5\n            timeoutSeconds: 3\n            failureThreshold: 2\n", "")'
broken probe-port "k8s: a livenessProbe on another port than the admin port" \
    '^k8s/routing.yaml: Deployment routing: livenessProbe must GET /healthz on port 7402 \(SHOUWEN_ROUTING_ADMIN_ADDR\), is /healthz on 7400$' \
    'sub("k8s/routing.yaml", "httpGet: {path: /healthz, port: admin}", "httpGet: {path: /healthz, port: 7400}")'
broken admin-loopback "k8s: the admin port on 127.0.0.1 (the probes cannot reach it)" \
    '^k8s/audit.yaml: Deployment audit: SHOUWEN_AUDIT_ADMIN_ADDR=127.0.0.1:7405 does not listen on all addresses' \
    'sub("k8s/audit.yaml", "SHOUWEN_AUDIT_ADMIN_ADDR: 0.0.0.0:7405", "SHOUWEN_AUDIT_ADMIN_ADDR: 127.0.0.1:7405")'
broken no-pdb "k8s: a Deployment without a PodDisruptionBudget" \
    '^k8s/notification.yaml: Deployment notification: no PodDisruptionBudget selects its pods$' \
    'drop("k8s/notification.yaml", "PodDisruptionBudget", "notification")'
broken pdb-blocks "k8s: a PodDisruptionBudget that lets no pod go" \
    '^k8s/audit.yaml: PodDisruptionBudget audit: minAvailable 2 leaves no pod of Deployment audit evictable$' \
    'sub("k8s/audit.yaml", "  minAvailable: 1", "  minAvailable: 2")'
broken missing-sub-urls "k8s: a setting that must be set is missing (SUB_URLS: the default is the pod's own ipc://)" \
    '^k8s/routing.yaml: Deployment routing: SHOUWEN_ROUTING_SUB_URLS must be set for shouwen-routing: its default \(ipc://\{run\}/intake.pub\)' \
    'sub("k8s/routing.yaml", "  SHOUWEN_ROUTING_SUB_URLS: tcp://intake-pub:7501\n", "")'
broken missing-db "k8s: no SHOUWEN_DATABASE_URL" \
    '^k8s/intake.yaml: Deployment intake: SHOUWEN_DATABASE_URL must be set for shouwen-intake' \
    'sub("k8s/intake.yaml", "            - name: SHOUWEN_DATABASE_URL\n              valueFrom: {secretKeyRef: {name: shouwen-secrets, key: SHOUWEN_DATABASE_URL}}\n", "")'
broken bad-value "k8s: a value the binary refuses (--check-config)" \
    '^k8s/intake.yaml: Deployment intake: shouwen-intake --check-config refuses its settings: .*SHOUWEN_INTAKE_WORKERS' \
    'sub("k8s/intake.yaml", "SHOUWEN_INTAKE_WORKERS: \"4\"", "SHOUWEN_INTAKE_WORKERS: \"0\"")'
broken bad-secret "k8s: a value from the Secret the binary refuses" \
    '^k8s/audit.yaml: Deployment audit: shouwen-audit --check-config refuses its settings: .*SHOUWEN_DATABASE_URL' \
    'sub("k8s/secret.yaml", "SHOUWEN_DATABASE_URL: \"postgresql://", "SHOUWEN_DATABASE_URL: \"\"\n  X: \"")'
broken unquoted "k8s: a ConfigMap value that is not a string" \
    '^k8s/intake.yaml: ConfigMap shouwen-intake: data.SHOUWEN_INTAKE_WORKERS is not a string' \
    'sub("k8s/intake.yaml", "SHOUWEN_INTAKE_WORKERS: \"4\"", "SHOUWEN_INTAKE_WORKERS: 4")'
broken no-configmap "k8s: envFrom a ConfigMap that does not exist" \
    '^k8s/audit.yaml: Deployment audit: envFrom names ConfigMap shouwen-comon, which does not exist$' \
    'sub("k8s/audit.yaml", "configMapRef: {name: shouwen-common}", "configMapRef: {name: shouwen-comon}")'
broken no-secret-key "k8s: a secretKeyRef to a key the Secret lacks" \
    '^k8s/audit.yaml: Deployment audit: SHOUWEN_AUDIT_KEY comes from key SHOUWEN_AUDIT_KEYS of Secret shouwen-secrets, which has no such key$' \
    'sub("k8s/audit.yaml", "key: SHOUWEN_AUDIT_KEY}", "key: SHOUWEN_AUDIT_KEYS}")'
broken sub-no-service "k8s: a SUB_URLS naming a Service that does not exist" \
    '^k8s/routing.yaml: Deployment routing: SHOUWEN_ROUTING_SUB_URLS dials tcp://intake-bus:7501, but there is no Service intake-bus in namespace shouwen$' \
    'sub("k8s/routing.yaml", "tcp://intake-pub:7501", "tcp://intake-bus:7501")'
broken sub-wrong-port "k8s: a SUB_URLS with a port the Service does not have" \
    '^k8s/notification.yaml: Deployment notification: SHOUWEN_NOTIFICATION_SUB_URLS dials tcp://routing-pub:7503, but Service routing-pub has no port 7503' \
    'sub("k8s/notification.yaml", "tcp://routing-pub:7502", "tcp://routing-pub:7503")'
broken sub-missed "k8s: a consumer that does not dial a producer it dials by default" \
    '^k8s/escalation.yaml: Deployment escalation: SHOUWEN_ESCALATION_SUB_URLS does not dial routing.s PUB Service' \
    'sub("k8s/escalation.yaml", "tcp://routing-pub:7502,", "")'
broken no-pub-service "k8s: a PUB port no Service leads to" \
    '^k8s/routing.yaml: Deployment routing: no Service leads to its PUB port 7502$' \
    'drop("k8s/routing.yaml", "Service", "routing-pub")'
broken not-listed "k8s: a manifest kustomization.yaml does not list" \
    '^k8s/kustomization.yaml: does not list audit.yaml' \
    'sub("k8s/kustomization.yaml", "  - audit.yaml\n", "")'
broken listed-excluded "k8s: kustomization.yaml lists the file marked as not in it" \
    '^k8s/kustomization.yaml: lists postgres-cnpg.yaml, which is marked' \
    'sub("k8s/kustomization.yaml", "  - audit.yaml\n", "  - audit.yaml\n  - postgres-cnpg.yaml\n")'
broken no-requests "k8s: no cpu request" \
    '^k8s/audit.yaml: Deployment audit: resources.requests.cpu is not set$' \
    'sub("k8s/audit.yaml", "requests: {cpu: 200m, memory: 64Mi}", "requests: {memory: 64Mi}")'
broken writable-root "k8s: a writable root file system" \
    '^k8s/routing.yaml: Deployment routing: securityContext.readOnlyRootFilesystem must be true$' \
    'sub("k8s/routing.yaml", "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false")'
broken no-binary "k8s: a command that is not a shouwen binary" \
    '^k8s/routing.yaml: Deployment routing: runs shouwen-router, which is not a shouwen binary' \
    'sub("k8s/routing.yaml", "command: [\"shouwen-routing\"]", "command: [\"shouwen-router\"]")'
broken bad-yaml "k8s: a file that is not YAML" \
    '^k8s/notification.yaml: does not parse' \
    'sub("k8s/notification.yaml", "  SHOUWEN_NOTIFICATION_CONCURRENCY: \"256\"", "  SHOUWEN_NOTIFICATION_CONCURRENCY: [256")'

# systemd
broken sd-no-hardening "systemd: a hardening option missing" \
    '^systemd/shouwen-audit.service: no ProtectSystem= \(hardening: ProtectSystem=strict\)$' \
    'sub("systemd/shouwen-audit.service", "ProtectSystem=strict\n", "")'
broken sd-weak-hardening "systemd: a hardening option weakened" \
    '^systemd/shouwen-routing@.service: NoNewPrivileges=no, must be NoNewPrivileges=yes$' \
    'sub("systemd/shouwen-routing@.service", "NoNewPrivileges=yes", "NoNewPrivileges=no")'
broken sd-unknown-setting "systemd: an env file setting the binary does not read" \
    '^systemd/env/routing.env: sets SHOUWEN_ROUTING_BOGUS, which shouwen-routing \(shouwen-routing.service\) does not read$' \
    'sub("systemd/env/routing.env", "SHOUWEN_ROUTING_BATCH_MAX=1000", "SHOUWEN_ROUTING_BOGUS=1")'
broken sd-bad-value "systemd: a value the binary refuses (--check-config)" \
    '^systemd/shouwen-escalation.service: shouwen-escalation.service: shouwen-escalation --check-config refuses its settings: .*SHOUWEN_LOG_LEVEL' \
    'sub("systemd/env/shouwen.env", "SHOUWEN_LOG_LEVEL=info", "SHOUWEN_LOG_LEVEL=loud")'
broken sd-missing-db "systemd: no SHOUWEN_DATABASE_URL" \
    '^systemd/shouwen-routing.service: shouwen-routing.service: SHOUWEN_DATABASE_URL must be set for shouwen-routing' \
    'sub("systemd/env/shouwen.env", "SHOUWEN_DATABASE_URL=postgresql://shouwen_app@/shouwen?host=/var/run/postgresql\n", "")'
broken sd-no-env-example "systemd: an EnvironmentFile without its example" \
    '^systemd/shouwen-migrate.service: EnvironmentFile=/etc/shouwen/migrate.env has no example env/migrate.env$' \
    'rm("systemd/env/migrate.env")'
broken sd-template-alone "systemd: a template without an example instance" \
    '^systemd/shouwen-audit@.service: a template without an example instance' \
    'rm("systemd/env/audit@2.env")'
broken sd-same-port "systemd: two units on one admin port" \
    '^systemd/shouwen-routing@.service: shouwen-routing@2.service: SHOUWEN_ROUTING_ADMIN_ADDR=127.0.0.1:7402 is also where shouwen-routing.service' \
    'sub("systemd/env/routing@2.env", "127.0.0.1:7422", "127.0.0.1:7402")'
broken sd-wrong-binary "systemd: a unit running another service's binary" \
    '^systemd/shouwen-audit.service: ExecStart runs /usr/local/bin/shouwen-routing, not shouwen-audit$' \
    'sub("systemd/shouwen-audit.service", "ExecStart=/usr/local/bin/shouwen-audit", "ExecStart=/usr/local/bin/shouwen-routing")'
broken sd-no-migrate-first "systemd: a service that does not require the migrations" \
    '^systemd/shouwen-intake.service: no Requires=shouwen-migrate.service' \
    'sub("systemd/shouwen-intake.service", "Requires=shouwen-migrate.service\n", "")'
broken sd-ipc-nobody "systemd: a doorbell no unit publishes" \
    '^systemd/shouwen-routing.service: shouwen-routing.service: SHOUWEN_ROUTING_SUB_URLS dials ipc:///run/shouwen/intake-3.pub, which no unit publishes on$' \
    'sub("systemd/env/routing.env", "SHOUWEN_ROUTING_SUB_URLS=ipc:///run/shouwen/intake.pub", "SHOUWEN_ROUTING_SUB_URLS=ipc:///run/shouwen/intake.pub,ipc:///run/shouwen/intake-3.pub")'
broken sd-no-user "systemd: the sysusers.d file does not make the user" \
    '^systemd/shouwen.conf: does not make the user shouwen' \
    'sub("systemd/shouwen.conf", "u shouwen ", "u shouwen2 ")'
if command -v systemd-analyze >/dev/null; then
    broken sd-verify "systemd: what only systemd-analyze verify sees (a bad RestartSec=)" \
        '^systemd: systemd-analyze verify: .*shouwen-notification.service.*soon' \
        'sub("systemd/shouwen-notification.service", "RestartSec=2s", "RestartSec=soon")'
fi

# A setting without a default: a binary that has one (its --help says
# "default: (none: required)"), given neither in k8s nor in systemd.
mkdir -p "$tmp/fakebin"
for b in "$bin"/shouwen-*; do ln -s "$b" "$tmp/fakebin/"; done
rm "$tmp/fakebin/shouwen-audit"
cat >"$tmp/fakebin/shouwen-audit" <<EOF
#!/bin/sh
[ "\$1" = --help ] || exec "$bin/shouwen-audit" "\$@"
"$bin/shouwen-audit" --help | awk '/^  \{run\} in a default/ {
    print "  SHOUWEN_AUDIT_EXTRA"; print "      a setting without a default (manifests_test)"
    print "      form: a string of 1 to 10 bytes"; print "      default: (none: required)" } { print }'
EOF
chmod +x "$tmp/fakebin/shouwen-audit"
broken required-k8s "k8s: a setting the binary requires (no default) is not set" \
    '^k8s/audit.yaml: Deployment audit: SHOUWEN_AUDIT_EXTRA must be set for shouwen-audit: it has no default$' \
    'pass' "$tmp/fakebin"
broken required-systemd "systemd: a setting the binary requires (no default) is not set" \
    '^systemd/shouwen-audit@.service: shouwen-audit@2.service: SHOUWEN_AUDIT_EXTRA must be set for shouwen-audit: it has no default$' \
    'pass' "$tmp/fakebin"

wait
for id in "${ids[@]}"; do
    d=$tmp/case-$id
    what=$(cat "$d/what")
    rc=$(cat "$d/rc" 2>/dev/null || echo none)
    if [ "$rc" = 1 ] && grep -Eq -- "$(cat "$d/want")" "$d/out" &&
        ! grep -Evq '^(k8s|systemd)[/:]' "$d/out"; then
        ok "reported: $what"
    else
        bad "reported: $what" "exit $rc, expected a line matching: $(cat "$d/want")
     got: $(head -n 8 "$d/out")"
    fi
done
finish
