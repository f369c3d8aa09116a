#!/usr/bin/env python3
"""ops_check.py BIN_DIR [--k8s DIR] [--systemd DIR] [--no-verify]

Checks the deployment files against what the binaries in BIN_DIR actually
read (no cluster and no systemd needed): the Kubernetes manifests
(deploy/k8s) and the systemd units (deploy/systemd), both by default; with
--k8s or --systemd, only the folders given.

Each binary describes its settings in `shouwen-NAME --help` (name, form,
default; "(none: required)" for a setting without a default) and checks a
set of values with `shouwen-NAME --check-config` (exit 1 naming the bad
one). From those:

Kubernetes (deploy/k8s):
  - every file parses as YAML (multi-document); kustomization.yaml lists
    every manifest in the folder, but those marked
    "ops_check: not in kustomization" (which it must not list), and every
    file it lists exists; no object is defined twice;
  - every service binary has a Deployment, the migrator a Job; each runs a
    shouwen binary that is in BIN_DIR, from the shouwen image;
  - the environment each container gets (env, envFrom ConfigMaps and
    Secrets, placeholders included): every ConfigMap, Secret and key it
    names exists; every SHOUWEN_* key is a setting that binary reads; every
    setting it must have is set (no default, or a default that only makes
    sense on the build machine: its run folder, 127.0.0.1, a build path);
    `--check-config` accepts exactly that environment;
  - readinessProbe GET /readyz and livenessProbe GET /healthz on the port of
    SHOUWEN_<NAME>_ADMIN_ADDR, which listens on all addresses;
  - resources.requests (cpu, memory) and limits.memory; securityContext:
    runAsNonRoot, readOnlyRootFilesystem, no privilege escalation,
    capabilities drop ALL, seccomp RuntimeDefault; SHOUWEN_RUN_DIR on an
    emptyDir;
  - each Deployment has a PodDisruptionBudget selecting it, which still
    lets a pod be evicted; its PUB port is behind a Service; every
    tcp://HOST:PORT in a SUB_URLS names a Service with that port leading to
    the PUB port of the Deployment behind it, and every producer the
    binary dials by default is dialed.
systemd (deploy/systemd):
  - a unit shouwen-NAME.service per service binary and shouwen-migrate;
    templates shouwen-NAME@.service; every ExecStart runs its own binary,
    which is in BIN_DIR; the sysusers.d file makes the user shouwen;
  - the hardening options (NoNewPrivileges, ProtectSystem=strict, ...),
    User=shouwen without DynamicUser, RuntimeDirectory=shouwen with
    SHOUWEN_RUN_DIR=/run/shouwen, Restart=on-failure and Requires= and
    After= shouwen-migrate.service;
  - every EnvironmentFile=/etc/shouwen/X has its example env/X (for a
    template, one per example instance env/NAME@I.env), its SHOUWEN_* keys
    are read by the binary, what must be set is set, `--check-config`
    accepts the unit's environment; no two units listen on the same
    address; every ipc:// doorbell a consumer dials is published by a unit;
  - `systemd-analyze verify` accepts the units (ExecStart pointed at
    BIN_DIR), when systemd-analyze is installed and --no-verify is not given.

Exit 0 with a summary line per folder when all holds, 1 with one line per
problem ("FILE: what is wrong") otherwise, 2 on bad usage.
"""
import base64
import glob
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

from concurrent.futures import ThreadPoolExecutor

import yaml

# libyaml's parser when present (ten times faster than the pure Python one)
Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
EXCLUDE_MARK = "ops_check: not in kustomization"
HARDENING = {  # option: the value it must have (None: must be present, empty)
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes",
    "ProtectClock": "yes",
    "ProtectHostname": "yes",
    "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
    "RestrictNamespaces": "yes",
    "RestrictRealtime": "yes",
    "RestrictSUIDSGID": "yes",
    "LockPersonality": "yes",
    "MemoryDenyWriteExecute": "yes",
    "CapabilityBoundingSet": "",
    "SystemCallArchitectures": "native",
    "User": "shouwen",
    "RuntimeDirectory": "shouwen",
}


# --- the binaries -------------------------------------------------------------

class Binary:
    """What `NAME --help` says: the settings (name -> default, None when
    required), and whether it has --check-config."""

    def __init__(self, bindir, name):
        self.name = name
        self.path = os.path.join(bindir, name)
        self.exists = os.access(self.path, os.X_OK)
        self.settings = {}
        self.check_config = False
        if not self.exists:
            return
        r = subprocess.run([self.path, "--help"], capture_output=True, text=True, timeout=30)
        self.check_config = "--check-config" in r.stdout
        current = None
        for line in r.stdout.splitlines():
            m = re.match(r"^  (SHOUWEN_[A-Z0-9_]+)$", line)
            if m:
                current = m.group(1)
                self.settings[current] = None
                continue
            m = re.match(r"^      default: ?(.*)$", line)
            if m and current is not None:
                d = m.group(1)
                self.settings[current] = None if d == "(none: required)" else d
                current = None

    @property
    def service(self):
        """intake for shouwen-intake (a service has an admin port)."""
        n = self.name[len("shouwen-"):]
        return n if f"SHOUWEN_{n.upper()}_ADMIN_ADDR" in self.settings else None

    def setting(self, suffix):
        s = self.service
        return f"SHOUWEN_{s.upper()}_{suffix}" if s else None

    def default_producers(self):
        """The services whose PUB sockets it dials by default (ipc://{run}/X.pub)."""
        d = self.settings.get(self.setting("SUB_URLS") or "", None) or ""
        return re.findall(r"\{run\}/([a-z]+)\.pub", d)

    def run_check(self, env):
        """None if --check-config accepts env, else why not."""
        full = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        full.update(env)
        r = subprocess.run([self.path, "--check-config"], env=full, capture_output=True,
                           text=True, timeout=30)
        if r.returncode == 0:
            return None
        why = r.stderr.strip() or r.stdout.strip()
        for line in why.splitlines():  # the JSON log line's message
            try:
                why = json.loads(line).get("msg", why)
                break
            except (ValueError, AttributeError):
                continue
        return why


class Binaries:
    def __init__(self, bindir):
        self.bindir = bindir
        self.cache = {}
        self.checks = []  # (problems list, problem prefix, binary, env): run at the end

    def get(self, name):
        if name not in self.cache:
            self.cache[name] = Binary(self.bindir, name)
        return self.cache[name]

    def check_later(self, problems, prefix, b, env):
        """Runs `b --check-config` with env in run_checks(); a refusal becomes a
        problem "PREFIX: ..." appended to problems."""
        self.checks.append((problems, prefix, b, env))

    def run_checks(self):
        """The --check-config runs asked for, several at once (each binary
        takes tens of milliseconds to start; the answers keep their order)."""
        with ThreadPoolExecutor(max_workers=8) as pool:
            whys = list(pool.map(lambda c: c[2].run_check(c[3]), self.checks))
        for (problems, prefix, b, env), why in zip(self.checks, whys):
            if why:
                problems.append(f"{prefix}: {b.name} --check-config refuses its settings: {why}")
        self.checks = []

    def services(self):
        """Every service binary in BIN_DIR (the ones with --check-config and an admin port)."""
        out = []
        paths = sorted(glob.glob(os.path.join(self.bindir, "shouwen-*")))
        with ThreadPoolExecutor(max_workers=8) as pool:  # their --help, all at once
            list(pool.map(lambda p: self.get(os.path.basename(p)), paths))
        for p in paths:
            b = self.get(os.path.basename(p))
            if b.exists and b.check_config and b.service:
                out.append(b)
        return out


def must_set(name, default, target):
    """Why a deployment must set this setting itself, or None."""
    if default is None:
        return "it has no default"
    if name == "SHOUWEN_DATABASE_URL" and "{run}" in default:
        return f"its default ({default}) is the development cluster in the run folder"
    if default.startswith("/"):
        return f"its default ({default}) is a path fixed when the binary was built"
    if target == "k8s":
        if "{run}" in default:
            return f"its default ({default}) is in the pod's own run folder: no other pod reaches it"
        if re.search(r"\b(127\.0\.0\.1|localhost)\b", default):
            return f"its default ({default}) serves the pod only"
    return None


def split_url(url):
    """(scheme, host, port) of tcp://host:port; (scheme, path, None) otherwise."""
    m = re.match(r"^([a-z+]+)://(.*)$", url.strip())
    if not m:
        return None, url, None
    scheme, rest = m.groups()
    if scheme in ("tcp", "tls+tcp", "tcp4", "tcp6"):
        h = re.match(r"^\[?([^\]]*)\]?:(\d+)$", rest)
        if h:
            return scheme, h.group(1), int(h.group(2))
        return scheme, rest, None
    return scheme, rest, None


def host_port(addr):
    m = re.match(r"^\[?([^\]]*)\]?:(\d+)$", addr or "")
    return (m.group(1), int(m.group(2))) if m else (None, None)


# --- Kubernetes ---------------------------------------------------------------

class K8s:
    def __init__(self, folder, bins):
        self.dir = folder.rstrip("/")
        self.bins = bins
        self.problems = []
        self.objects = []  # (file, doc)
        self.ns = None

    def bad(self, f, msg):
        self.problems.append(f"{self.dir}/{f}: {msg}")

    # - loading -
    def load(self):
        files = sorted(os.path.basename(p) for p in glob.glob(os.path.join(self.dir, "*.y*ml")))
        kfile = next((f for f in ("kustomization.yaml", "kustomization.yml", "Kustomization")
                      if os.path.exists(os.path.join(self.dir, f))), None)
        if kfile is None:
            self.problems.append(f"{self.dir}: no kustomization.yaml")
            listed = [f for f in files]
        else:
            try:
                with open(os.path.join(self.dir, kfile)) as fh:
                    k = yaml.load(fh, Loader=Loader) or {}
            except yaml.YAMLError as e:
                self.bad(kfile, f"does not parse: {str(e).splitlines()[0]}")
                k = {}
            listed = [str(r) for r in (k.get("resources") or [])]
            self.ns = k.get("namespace")
            for r in listed:
                if not os.path.exists(os.path.join(self.dir, r)):
                    self.bad(kfile, f"lists {r}, which does not exist")
            for f in files:
                if f == kfile:
                    continue
                with open(os.path.join(self.dir, f)) as fh:
                    excluded = EXCLUDE_MARK in fh.read()
                if excluded and f in listed:
                    self.bad(kfile, f"lists {f}, which is marked \"{EXCLUDE_MARK}\"")
                elif not excluded and f not in listed:
                    self.bad(kfile, f"does not list {f} (list it, or mark the file "
                                    f"\"# {EXCLUDE_MARK}\")")
        for f in files:
            if f == kfile:
                continue
            try:
                with open(os.path.join(self.dir, f)) as fh:
                    docs = [d for d in yaml.load_all(fh, Loader=Loader) if d is not None]
            except yaml.YAMLError as e:
                self.bad(f, f"does not parse: {' '.join(str(e).split())}")
                continue
            for d in docs:
                if not isinstance(d, dict) or "kind" not in d or "metadata" not in d:
                    self.bad(f, "a document without kind or metadata")
                    continue
                if f in listed:
                    self.objects.append((f, d))
        seen = {}
        for f, d in self.objects:
            key = (d["kind"], self.namespace(d), d["metadata"].get("name"))
            if key in seen:
                self.bad(f, f"{d['kind']} {key[2]} is also defined in {seen[key]}")
            seen[key] = f
            if d["kind"] == "Namespace" and self.ns and d["metadata"].get("name") != self.ns:
                self.bad(f, f"Namespace {d['metadata'].get('name')} is not the kustomization's "
                            f"namespace {self.ns}")

    def namespace(self, d):
        if d.get("kind") == "Namespace":
            return None
        return self.ns or d["metadata"].get("namespace") or "default"

    def find(self, kind, ns, name):
        for f, d in self.objects:
            if d["kind"] == kind and self.namespace(d) == ns and d["metadata"].get("name") == name:
                return f, d
        return None, None

    def config_data(self, kind, ns, name):
        """The keys and values of a ConfigMap or Secret, or None if it does not exist."""
        f, d = self.find(kind, ns, name)
        if d is None:
            return None
        out = {}
        if kind == "ConfigMap":
            for k, v in (d.get("data") or {}).items():
                if not isinstance(v, str):
                    self.bad(f, f"ConfigMap {name}: data.{k} is not a string ({v!r}): quote it")
                out[k] = str(v)
        else:
            for k, v in (d.get("data") or {}).items():
                try:
                    out[k] = base64.b64decode(str(v)).decode()
                except (ValueError, UnicodeDecodeError):
                    self.bad(f, f"Secret {name}: data.{k} is not base64")
            for k, v in (d.get("stringData") or {}).items():
                out[k] = str(v)
        return out

    # - pods -
    @staticmethod
    def pod_spec(d):
        t = (d.get("spec") or {}).get("template") or {}
        if d["kind"] == "CronJob":
            t = ((d.get("spec") or {}).get("jobTemplate") or {}).get("spec", {}).get("template", {})
        return (t.get("metadata") or {}).get("labels") or {}, t.get("spec") or {}

    @staticmethod
    def selects(selector, labels):
        """A Service's selector (a plain map) or a label selector
        (matchLabels; matchExpressions are not read) matches labels."""
        if not selector:
            return False
        if "matchLabels" in selector or "matchExpressions" in selector:
            selector = selector.get("matchLabels") or {}
        return bool(selector) and all(labels.get(k) == v for k, v in selector.items())

    def environment(self, f, what, ns, c):
        """The container's environment (name -> value) and where each came from."""
        env, origin = {}, {}
        for ef in c.get("envFrom") or []:
            prefix = ef.get("prefix", "")
            for kind, ref in (("ConfigMap", ef.get("configMapRef")), ("Secret", ef.get("secretRef"))):
                if not ref:
                    continue
                data = self.config_data(kind, ns, ref.get("name"))
                if data is None:
                    if not ref.get("optional"):
                        self.bad(f, f"{what}: envFrom names {kind} {ref.get('name')}, which does not exist")
                    continue
                for k, v in data.items():
                    env[prefix + k] = v
                    origin[prefix + k] = f"{kind} {ref.get('name')}"
        for e in c.get("env") or []:
            n = e.get("name")
            if "value" in e:
                env[n] = str(e["value"])
                origin[n] = "env"
                continue
            vf = e.get("valueFrom") or {}
            for kind, key in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
                ref = vf.get(key)
                if not ref:
                    continue
                data = self.config_data(kind, ns, ref.get("name"))
                if data is None:
                    if not ref.get("optional"):
                        self.bad(f, f"{what}: {n} comes from {kind} {ref.get('name')}, which does not exist")
                elif ref.get("key") not in data:
                    if not ref.get("optional"):
                        self.bad(f, f"{what}: {n} comes from key {ref.get('key')} of {kind} "
                                    f"{ref.get('name')}, which has no such key")
                else:
                    env[n] = data[ref.get("key")]
                    origin[n] = f"{kind} {ref.get('name')}"
            if not any(vf.get(k) for k in ("configMapKeyRef", "secretKeyRef")) and n not in env:
                env[n] = ""  # fieldRef and the like: set, value known only in the cluster
                origin[n] = "env"
        return env, origin

    def port_of(self, c, port):
        """A probe's or Service's port (number or a container port's name) as a number."""
        if isinstance(port, int):
            return port
        for p in c.get("ports") or []:
            if p.get("name") == port:
                return p.get("containerPort")
        if isinstance(port, str) and port.isdigit():
            return int(port)
        return None

    def check_security(self, f, what, pod, c):
        psc = pod.get("securityContext") or {}
        csc = c.get("securityContext") or {}

        def eff(key):
            return csc.get(key, psc.get(key))
        if eff("runAsNonRoot") is not True:
            self.bad(f, f"{what}: securityContext.runAsNonRoot must be true")
        if eff("runAsUser") == 0:
            self.bad(f, f"{what}: securityContext.runAsUser is 0 (root)")
        if csc.get("readOnlyRootFilesystem") is not True:
            self.bad(f, f"{what}: securityContext.readOnlyRootFilesystem must be true")
        if csc.get("allowPrivilegeEscalation") is not False:
            self.bad(f, f"{what}: securityContext.allowPrivilegeEscalation must be false")
        if "ALL" not in ((csc.get("capabilities") or {}).get("drop") or []):
            self.bad(f, f"{what}: securityContext.capabilities.drop must hold ALL")
        if ((eff("seccompProfile") or {}).get("type")) != "RuntimeDefault":
            self.bad(f, f"{what}: securityContext.seccompProfile.type must be RuntimeDefault")

    def check_workloads(self):
        want = {b.name for b in self.bins.services()}
        have = set()
        self.deployments = []  # (file, doc, labels, container, binary, env)
        migrate_job = False
        for f, d in self.objects:
            if d["kind"] not in ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"):
                continue
            ns = self.namespace(d)
            labels, pod = self.pod_spec(d)
            name = d["metadata"].get("name")
            volumes = {v.get("name"): v for v in pod.get("volumes") or []}
            for c in pod.get("containers") or []:
                what = f"{d['kind']} {name}"
                if len(pod.get("containers")) > 1:
                    what += f" container {c.get('name')}"
                cmd = c.get("command") or []
                if not cmd:
                    self.bad(f, f"{what}: no command (the image's default would run shouwen-intake)")
                    continue
                b = self.bins.get(os.path.basename(str(cmd[0])))
                if not b.name.startswith("shouwen-") or not b.exists:
                    self.bad(f, f"{what}: runs {cmd[0]}, which is not a shouwen binary in "
                                f"{self.bins.bindir}")
                    continue
                image = str(c.get("image", ""))
                if image.split("@")[0].rsplit("/", 1)[-1].split(":")[0] != "shouwen":
                    self.bad(f, f"{what}: image {image or '(none)'} is not the shouwen image "
                                f"(deploy/Dockerfile; kustomization.yaml's images: renames it)")
                if b.name == "shouwen-migrate" and d["kind"] == "Job":
                    migrate_job = True
                have.add(b.name)
                env, origin = self.environment(f, what, ns, c)
                for k in sorted(env):
                    if k.startswith("SHOUWEN_") and k not in b.settings:
                        self.bad(f, f"{what}: sets {k} (from {origin[k]}), which {b.name} does not read")
                for k, default in b.settings.items():
                    why = must_set(k, default, "k8s")
                    if why and k not in env:
                        self.bad(f, f"{what}: {k} must be set for {b.name}: {why}")
                known = {k: v for k, v in env.items() if not k.startswith("SHOUWEN_") or k in b.settings}
                if b.check_config:
                    self.bins.check_later(self.problems, f"{self.dir}/{f}: {what}", b, known)
                self.check_security(f, what, pod, c)
                res = c.get("resources") or {}
                for r in ("cpu", "memory"):
                    if not (res.get("requests") or {}).get(r):
                        self.bad(f, f"{what}: resources.requests.{r} is not set")
                if not (res.get("limits") or {}).get("memory"):
                    self.bad(f, f"{what}: resources.limits.memory is not set")
                run_dir = env.get("SHOUWEN_RUN_DIR")
                if run_dir:
                    mount = next((m for m in c.get("volumeMounts") or []
                                  if m.get("mountPath", "").rstrip("/") == run_dir.rstrip("/")), None)
                    if mount is None or "emptyDir" not in (volumes.get(mount.get("name")) or {}):
                        self.bad(f, f"{what}: SHOUWEN_RUN_DIR={run_dir} is not an emptyDir volume "
                                    f"(the root file system is read-only)")
                if b.service and d["kind"] != "Job":
                    self.check_service_pod(f, what, d, c, b, env)
                    self.deployments.append((f, d, labels, c, b, env))
        for n in sorted(want - have):
            self.problems.append(f"{self.dir}: no Deployment runs {n}")
        if not migrate_job:
            self.problems.append(f"{self.dir}: no Job runs shouwen-migrate")

    def check_service_pod(self, f, what, d, c, b, env):
        admin_key = b.setting("ADMIN_ADDR")
        admin = env.get(admin_key, b.settings.get(admin_key) or "")
        host, port = host_port(admin)
        if host not in ("0.0.0.0", "::", ""):
            self.bad(f, f"{what}: {admin_key}={admin} does not listen on all addresses: "
                        f"the kubelet's probes cannot reach it")
        for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
            p = c.get(probe)
            if not p:
                self.bad(f, f"{what}: no {probe} (GET {path} on the admin port {port})")
                continue
            get = p.get("httpGet") or {}
            if get.get("path") != path or self.port_of(c, get.get("port")) != port:
                self.bad(f, f"{what}: {probe} must GET {path} on port {port} ({admin_key}), "
                            f"is {get.get('path')} on {get.get('port')}")
        pub_key = b.setting("PUB_URL")
        scheme, h, p = split_url(env.get(pub_key, b.settings.get(pub_key) or ""))
        if scheme not in ("tcp", "tls+tcp") or p is None or h not in ("0.0.0.0", "::", ""):
            self.bad(f, f"{what}: {pub_key} must listen on tcp:// or tls+tcp:// on 0.0.0.0 "
                        f"(other pods dial it), is {env.get(pub_key, 'unset')}")
        replicas = (d.get("spec") or {}).get("replicas", 1)
        if d["kind"] == "Deployment" and replicas < 2:
            self.bad(f, f"{what}: {replicas} replica(s): the PodDisruptionBudget would block every "
                        f"eviction and a node's loss stops the service")

    def pub_port(self, env, b):
        k = b.setting("PUB_URL")
        return split_url(env.get(k, b.settings.get(k) or ""))[2]

    def check_pdbs(self):
        for f, d, labels, c, b, env in self.deployments:
            ns = self.namespace(d)
            pdbs = [(pf, p) for pf, p in self.objects
                    if p["kind"] == "PodDisruptionBudget" and self.namespace(p) == ns
                    and self.selects((p.get("spec") or {}).get("selector"), labels)]
            what = f"{d['kind']} {d['metadata'].get('name')}"
            if not pdbs:
                self.bad(f, f"{what}: no PodDisruptionBudget selects its pods")
            for pf, p in pdbs:
                spec = p.get("spec") or {}
                ma = spec.get("minAvailable")
                if ma is None and spec.get("maxUnavailable") is None:
                    self.bad(pf, f"PodDisruptionBudget {p['metadata'].get('name')}: neither "
                                 f"minAvailable nor maxUnavailable")
                if isinstance(ma, int) and ma >= (d.get("spec") or {}).get("replicas", 1):
                    self.bad(pf, f"PodDisruptionBudget {p['metadata'].get('name')}: minAvailable {ma} "
                                 f"leaves no pod of {what} evictable")

    def services_to(self, ns, name):
        """The Service NAME in ns: [(service port, [(deployment entry, target port)])]."""
        sf, s = self.find("Service", ns, name)
        if s is None:
            return None
        out = []
        for sp in (s.get("spec") or {}).get("ports") or []:
            targets = []
            for entry in self.deployments:
                f, d, labels, c, b, env = entry
                if self.namespace(d) == ns and self.selects((s.get("spec") or {}).get("selector"), labels):
                    targets.append((entry, self.port_of(c, sp.get("targetPort", sp.get("port")))))
            out.append((sp.get("port"), targets))
        return out

    def check_bus(self):
        for f, d, labels, c, b, env in self.deployments:
            ns = self.namespace(d)
            what = f"{d['kind']} {d['metadata'].get('name')}"
            pub = self.pub_port(env, b)
            exposed = False
            for sf, s in self.objects:
                if s["kind"] != "Service" or self.namespace(s) != ns:
                    continue
                if not self.selects((s.get("spec") or {}).get("selector"), labels):
                    continue
                for sp in (s.get("spec") or {}).get("ports") or []:
                    if self.port_of(c, sp.get("targetPort", sp.get("port"))) == pub:
                        exposed = True
            if pub and not exposed:
                self.bad(f, f"{what}: no Service leads to its PUB port {pub}")
            sub_key = b.setting("SUB_URLS")
            if not sub_key:
                continue
            reached = set()
            for url in [u for u in env.get(sub_key, "").split(",") if u.strip()]:
                scheme, host, port = split_url(url)
                if scheme not in ("tcp", "tls+tcp") or port is None:
                    self.bad(f, f"{what}: {sub_key} dials {url.strip()}, which no other pod can serve "
                                f"(tcp://SERVICE:PORT)")
                    continue
                parts = host.split(".")
                sns = parts[1] if len(parts) > 1 else ns
                svc = self.services_to(sns, parts[0])
                if svc is None:
                    self.bad(f, f"{what}: {sub_key} dials {url.strip()}, but there is no Service "
                                f"{parts[0]} in namespace {sns}")
                    continue
                match = [t for p, t in svc if p == port]
                if not match:
                    self.bad(f, f"{what}: {sub_key} dials {url.strip()}, but Service {parts[0]} has "
                                f"no port {port} (it has {', '.join(str(p) for p, _ in svc)})")
                    continue
                for entry, target in match[0]:
                    tb, tenv, td = entry[4], entry[5], entry[1]
                    if target != self.pub_port(tenv, tb):
                        self.bad(f, f"{what}: {sub_key} dials {url.strip()}, which leads to port "
                                    f"{target} of {td['kind']} {td['metadata'].get('name')}, whose "
                                    f"PUB port is {self.pub_port(tenv, tb)}")
                    else:
                        reached.add(tb.service)
                if not match[0]:
                    self.bad(f, f"{what}: {sub_key} dials {url.strip()}, but Service {parts[0]} "
                                f"selects no shouwen Deployment")
            for producer in b.default_producers():
                if producer not in reached:
                    self.bad(f, f"{what}: {sub_key} does not dial {producer}'s PUB Service "
                                f"({b.name} dials it by default: its doorbells would be missed)")

    def run(self):
        self.load()
        self.check_workloads()
        self.check_pdbs()
        self.check_bus()
        self.bins.run_checks()
        if not self.problems:
            kinds = {}
            for _, d in self.objects:
                kinds[d["kind"]] = kinds.get(d["kind"], 0) + 1
            files = len({f for f, _ in self.objects})
            return (f"{self.dir}: ok ({len(self.objects)} objects in {files} files: "
                    + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
                    + f"; {len(self.deployments)} Deployments checked against their binaries)")
        return None


# --- systemd ------------------------------------------------------------------

def parse_unit(path):
    """[(section, key, value)] of a unit file (continuation lines joined)."""
    out, section, buf = [], None, ""
    with open(path) as fh:
        for raw in fh:
            line = raw.rstrip("\n")
            if buf:
                line = buf + line.lstrip()
                buf = ""
            s = line.strip()
            if not s or s[0] in "#;":
                continue
            if s.endswith("\\"):
                buf = s[:-1] + " "
                continue
            if s.startswith("[") and s.endswith("]"):
                section = s[1:-1]
                continue
            if "=" in s:
                k, v = s.split("=", 1)
                out.append((section, k.strip(), v.strip()))
    return out


def parse_env_file(path):
    """KEY=VALUE lines as systemd reads them (comments, optional quotes)."""
    env = {}
    with open(path) as fh:
        for n, raw in enumerate(fh, 1):
            s = raw.strip()
            if not s or s[0] in "#;":
                continue
            if "=" not in s:
                raise ValueError(f"line {n}: not KEY=VALUE")
            k, v = s.split("=", 1)
            v = v.strip()
            if len(v) >= 2 and v[0] == v[-1] and v[0] in "\"'":
                v = v[1:-1]
            env[k.strip()] = v
    return env


class Systemd:
    def __init__(self, folder, bins, verify):
        self.dir = folder.rstrip("/")
        self.bins = bins
        self.verify = verify
        self.problems = []
        self.verified = "not run (--no-verify)"
        self.instances = []  # (unit file, instance or None, binary, env)

    def bad(self, f, msg):
        self.problems.append(f"{self.dir}/{f}: {msg}")

    def run(self):
        units = sorted(os.path.basename(p) for p in glob.glob(os.path.join(self.dir, "*.service")))
        envdir = os.path.join(self.dir, "env")
        envs_used = set()
        sysusers = os.path.join(self.dir, "shouwen.conf")
        if not os.path.exists(sysusers):
            self.problems.append(f"{self.dir}: no shouwen.conf (sysusers.d) making the user shouwen")
        else:
            with open(sysusers) as fh:
                if not re.search(r"^u\s+shouwen\s", fh.read(), re.M):
                    self.bad("shouwen.conf", "does not make the user shouwen (u shouwen ...)")
        want = [b.name for b in self.bins.services()] + ["shouwen-migrate"]
        for n in want:
            if f"{n}.service" not in units:
                self.problems.append(f"{self.dir}: no unit {n}.service")
        for u in units:
            m = re.match(r"^shouwen-([a-z]+)(@?)\.service$", u)
            if not m:
                self.bad(u, "not named shouwen-NAME.service or shouwen-NAME@.service")
                continue
            name, template = m.group(1), m.group(2) == "@"
            entries = parse_unit(os.path.join(self.dir, u))

            def values(key, section="Service"):
                return [v for s, k, v in entries if s == section and k == key]

            def last(key, section="Service"):
                v = values(key, section)
                return v[-1] if v else None
            execs = values("ExecStart")
            if len(execs) != 1:
                self.bad(u, f"{len(execs)} ExecStart= lines (one expected)")
                continue
            exe = shlex.split(execs[0].lstrip("-@:+!"))[0]
            b = self.bins.get(os.path.basename(exe))
            if b.name != f"shouwen-{name}":
                self.bad(u, f"ExecStart runs {exe}, not shouwen-{name}")
                continue
            if not b.exists:
                self.bad(u, f"ExecStart runs {exe}: {b.name} is not in {self.bins.bindir}")
                continue
            for k, want_v in HARDENING.items():
                v = last(k)
                if v is None:
                    self.bad(u, f"no {k}= (hardening: {k}={want_v})")
                elif v != want_v:
                    self.bad(u, f"{k}={v}, must be {k}={want_v}")
            if not any("@system-service" in v.split() for v in values("SystemCallFilter")):
                self.bad(u, "no SystemCallFilter=@system-service")
            if (last("DynamicUser") or "no") not in ("no", "false", "0"):
                self.bad(u, "DynamicUser= must be no (the dedicated user shouwen owns the files)")
            if name == "migrate":
                if last("Type") != "oneshot":
                    self.bad(u, "Type= must be oneshot")
            else:
                if last("Restart") != "on-failure":
                    self.bad(u, f"Restart={last('Restart')}, must be on-failure")
                for k in ("Requires", "After"):
                    if not any("shouwen-migrate.service" in v.split() for v in values(k, "Unit")):
                        self.bad(u, f"no {k}=shouwen-migrate.service (the schema first)")
            for t in " ".join(values("WantedBy", "Install")).split():
                if t.startswith("shouwen") and not os.path.exists(os.path.join(self.dir, t)):
                    self.bad(u, f"WantedBy={t}, which is not in {self.dir}")
            efiles = values("EnvironmentFile")
            own = f"/etc/shouwen/{name}.env"
            for need in ("/etc/shouwen/shouwen.env", own):
                if need not in [e.lstrip("-") for e in efiles]:
                    self.bad(u, f"no EnvironmentFile={need}")
            insts = [None]
            if template:
                insts = sorted(os.path.basename(p)[len(name) + 1:-4]
                               for p in glob.glob(os.path.join(envdir, f"{name}@*.env")))
                if not insts:
                    self.bad(u, f"a template without an example instance (env/{name}@I.env)")
                if not any("%i" in e for e in efiles):
                    self.bad(u, "a template whose replicas read no file of their own "
                                "(EnvironmentFile=/etc/shouwen/NAME@%i.env): they would share ports")
            for inst in insts:
                env = {}
                for e in values("Environment"):
                    for a in shlex.split(e):
                        if "=" in a:
                            k, v = a.split("=", 1)
                            env[k] = v
                for e in efiles:
                    optional = e.startswith("-")
                    path = e.lstrip("-")
                    if inst is not None:
                        path = path.replace("%i", inst)
                    if not path.startswith("/etc/shouwen/"):
                        self.bad(u, f"EnvironmentFile={path} is not under /etc/shouwen/")
                        continue
                    example = os.path.join(envdir, path[len("/etc/shouwen/"):])
                    rel = os.path.relpath(example, self.dir)
                    if not os.path.exists(example):
                        if not optional:
                            self.bad(u, f"EnvironmentFile={path} has no example {rel}")
                        continue
                    envs_used.add(os.path.basename(example))
                    try:
                        fenv = parse_env_file(example)
                    except ValueError as err:
                        self.bad(rel, str(err))
                        continue
                    for k in sorted(fenv):
                        if k.startswith("SHOUWEN_") and k not in b.settings:
                            self.bad(rel, f"sets {k}, which {b.name} ({u}) does not read")
                    env.update(fenv)
                unit = u.replace("@.", f"@{inst}.") if inst is not None else u
                for k, default in b.settings.items():
                    why = must_set(k, default, "systemd")
                    if why and k not in env:
                        self.bad(u, f"{unit}: {k} must be set for {b.name}: {why}")
                rd = last("RuntimeDirectory")
                if rd and env.get("SHOUWEN_RUN_DIR", "").rstrip("/") != f"/run/{rd}":
                    self.bad(u, f"{unit}: SHOUWEN_RUN_DIR={env.get('SHOUWEN_RUN_DIR')}, not the "
                                f"RuntimeDirectory /run/{rd}")
                known = {k: v for k, v in env.items() if not k.startswith("SHOUWEN_") or k in b.settings}
                if b.check_config:
                    self.bins.check_later(self.problems, f"{self.dir}/{u}: {unit}", b, known)
                self.instances.append((u, unit, b, env))
        for p in sorted(glob.glob(os.path.join(envdir, "*.env"))):
            if os.path.basename(p) not in envs_used:
                self.bad(os.path.relpath(p, self.dir), "no unit reads it")
        self.check_listeners()
        self.bins.run_checks()
        if self.verify:
            self.run_verify(units)
        if not self.problems:
            templates = sum(1 for u in units if "@." in u)
            return (f"{self.dir}: ok ({len(units)} units, {templates} of them templates; "
                    f"{len(self.instances)} units and example instances checked against their "
                    f"binaries; systemd-analyze verify: {self.verified})")
        return None

    def check_listeners(self):
        """No two units listen on one address; every ipc:// doorbell is published here."""
        seen, pubs = {}, {}
        for u, unit, b, env in self.instances:
            if not b.service:
                continue
            for suffix in ("ADMIN_ADDR", "HTTP_ADDR", "REP_ADDR", "PUB_URL"):
                k = b.setting(suffix)
                if k not in b.settings:
                    continue
                v = env.get(k, b.settings[k] or "")
                if not v:
                    continue
                scheme, h, p = split_url(v)
                if scheme is None:
                    h, p = host_port(v)
                key = f"port {p}" if p is not None else v
                if key in seen:
                    self.bad(u, f"{unit}: {k}={v} is also where {seen[key]} listens")
                seen[key] = f"{unit} ({k})"
                if suffix == "PUB_URL":
                    pubs.setdefault(b.service, []).append(v)
        every_pub = {v for vs in pubs.values() for v in vs}
        for u, unit, b, env in self.instances:
            k = b.service and b.setting("SUB_URLS")
            if not k or k not in b.settings:
                continue
            urls = [x.strip() for x in env.get(k, "").split(",") if x.strip()]
            for x in urls:
                if x.startswith("ipc://") and x not in every_pub:
                    self.bad(u, f"{unit}: {k} dials {x}, which no unit publishes on")
            for producer in b.default_producers():
                if not any(x in pubs.get(producer, []) or not x.startswith("ipc://") for x in urls):
                    self.bad(u, f"{unit}: {k} does not dial {producer}'s PUB address "
                                f"({b.name} dials it by default: its doorbells would be missed)")

    def run_verify(self, units):
        sa = shutil.which("systemd-analyze")
        if sa is None:
            self.verified = "skipped (systemd-analyze is not installed)"
            return
        with tempfile.TemporaryDirectory(prefix="ops_check.") as tmp:
            names = []
            for f in os.listdir(self.dir):
                if f.endswith((".service", ".target")):
                    with open(os.path.join(self.dir, f)) as fh:
                        text = fh.read()
                    text = re.sub(r"^(ExecStart=[-@:+!]*)\S*/(shouwen-[a-z]+)",
                                  lambda m: m.group(1) + os.path.join(
                                      os.path.abspath(self.bins.bindir), m.group(2)),
                                  text, flags=re.M)
                    with open(os.path.join(tmp, f), "w") as fh:
                        fh.write(text)
                    names.append(f)
            for u, unit, b, env in self.instances:
                if unit != u and unit not in names:
                    names.append(unit)  # an instance: systemd-analyze finds its template beside it
            r = subprocess.run([sa, "verify", "--man=no"] + [os.path.join(tmp, n) for n in sorted(names)],
                               capture_output=True, text=True, timeout=60, cwd=tmp)
            lines = [ln for ln in (r.stdout + r.stderr).splitlines() if ln.strip()]
            for ln in lines:
                self.problems.append(f"{self.dir}: systemd-analyze verify: {ln.replace(tmp + '/', '')}")
            if r.returncode != 0 and not lines:
                self.problems.append(f"{self.dir}: systemd-analyze verify failed (exit {r.returncode})")
            self.verified = f"{len(names)} units and instances accepted"


def main(argv):
    args = argv[1:]
    if not args or args[0].startswith("-"):
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        return 2
    bindir = args.pop(0)
    here = os.path.dirname(os.path.abspath(__file__))
    k8s_dir = systemd_dir = None
    verify = True
    while args:
        a = args.pop(0)
        if a == "--k8s" and args:
            k8s_dir = args.pop(0)
        elif a == "--systemd" and args:
            systemd_dir = args.pop(0)
        elif a == "--no-verify":
            verify = False
        else:
            print(__doc__.strip().splitlines()[0], file=sys.stderr)
            return 2
    if k8s_dir is None and systemd_dir is None:
        k8s_dir, systemd_dir = os.path.join(here, "k8s"), os.path.join(here, "systemd")
    if not os.path.isdir(bindir):
        print(f"{bindir}: no such folder of binaries", file=sys.stderr)
        return 2
    bins = Binaries(bindir)
    if not bins.services():
        print(f"{bindir}: no shouwen service binaries (build them first)", file=sys.stderr)
        return 2
    problems, summary = [], []
    for cls, folder, extra in ((K8s, k8s_dir, ()), (Systemd, systemd_dir, (verify,))):
        if folder is None:
            continue
        if not os.path.isdir(folder):
            problems.append(f"{folder}: no such folder")
            continue
        rel = os.path.relpath(folder)
        c = cls(folder if rel.startswith("..") else rel, bins, *extra)
        s = c.run()
        problems += c.problems
        if s:
            summary.append(s)
    for p in dict.fromkeys(problems):  # once each (a shared file is read by several units)
        print(p)
    if problems:
        return 1
    for s in summary:
        print(s)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
