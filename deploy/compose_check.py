#!/usr/bin/env python3
"""compose_check.py COMPOSE_FILE BIN_DIR

No Docker engine runs on the development machines, so docker-compose.yml
is kept correct by construction and checked here:
  - it parses as YAML (merge keys resolved) and has the shape compose expects;
  - every folder under services/ is a compose service, built from
    deploy/Dockerfile, running its own binary, with a health check on
    /readyz at the port its SHOUWEN_<NAME>_ADMIN_ADDR gives;
  - every SHOUWEN_* variable it sets is a setting the binary it runs
    reads (from the binary's own --help), and the binary accepts the values
    (`shouwen-NAME --check-config` with exactly the compose environment);
  - the migrator runs before the services, after PostgreSQL is healthy.
Exit 0 when all holds, 1 with one line per problem otherwise.
"""
import os
import re
import subprocess
import sys

import yaml


def interpolate(value):
    """A value as compose gives it when the variables it names are unset:
    ${NAME:-default} and ${NAME-default} become the default, ${NAME} and
    $NAME nothing, $$ a dollar sign."""
    value = value.replace("$$", "\0")
    value = re.sub(r"\$\{[A-Za-z_][A-Za-z0-9_]*:?-([^}]*)\}", r"\1", value)
    value = re.sub(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}|\$[A-Za-z_][A-Za-z0-9_]*", "", value)
    return value.replace("\0", "$")


def settings_of(binary):
    out = subprocess.run([binary, "--help"], capture_output=True, text=True, check=True).stdout
    return set(re.findall(r"^  (SHOUWEN_[A-Z0-9_]+)$", out, re.M))


def main():
    if len(sys.argv) != 3:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        return 2
    path, bindir = sys.argv[1], sys.argv[2]
    top = os.path.dirname(os.path.abspath(path))
    problems = []
    with open(path) as f:
        doc = yaml.safe_load(f)
    svcs = doc.get("services") if isinstance(doc, dict) else None
    if not isinstance(svcs, dict):
        print(f"{path}: no services mapping")
        return 1
    wanted = sorted(d for d in os.listdir(os.path.join(top, "services"))
                    if os.path.isdir(os.path.join(top, "services", d)))
    for name in ["postgres", "migrate"] + wanted:
        if name not in svcs:
            problems.append(f"service {name} is missing")

    mig = svcs.get("migrate", {})
    if mig.get("depends_on", {}).get("postgres", {}).get("condition") != "service_healthy":
        problems.append("migrate must wait for postgres to be healthy")
    if mig.get("command") != ["shouwen-migrate"]:
        problems.append("migrate must run shouwen-migrate")

    mig_known = settings_of(os.path.join(bindir, "shouwen-migrate"))
    for k in (mig.get("environment") or {}):
        if k.startswith("SHOUWEN_") and k not in mig_known:
            problems.append(f"migrate: sets {k}, which shouwen-migrate does not read")

    # What the Dockerfile copies into the image must exist in the repo.
    with open(os.path.join(top, "deploy", "Dockerfile")) as f:
        for line in f:
            m = re.match(r"COPY\s+(?!--from)(\S+)\s", line)
            if m and not os.path.exists(os.path.join(top, m.group(1))):
                problems.append(f"deploy/Dockerfile copies {m.group(1)}, which does not exist")

    for name in wanted:
        s = svcs.get(name)
        if not isinstance(s, dict):
            continue
        binary = f"shouwen-{name}"
        build = s.get("build", {})
        if build.get("dockerfile") != "deploy/Dockerfile":
            problems.append(f"{name}: not built from deploy/Dockerfile")
        if s.get("command") != [binary]:
            problems.append(f"{name}: command must be [{binary}], is {s.get('command')}")
        dep = s.get("depends_on", {}).get("migrate", {}).get("condition")
        if dep != "service_completed_successfully":
            problems.append(f"{name}: must start after migrate completed successfully")
        env = {k: interpolate(str(v)) for k, v in (s.get("environment") or {}).items()}
        admin = env.get(f"SHOUWEN_{name.upper()}_ADMIN_ADDR", "")
        port = admin.rsplit(":", 1)[-1] if admin else None
        test = " ".join(s.get("healthcheck", {}).get("test", []))
        if not port or f":{port}/readyz" not in test:
            problems.append(f"{name}: healthcheck must call /readyz on the admin port ({admin or 'unset'})")
        if "tcp://" not in env.get(f"SHOUWEN_{name.upper()}_PUB_URL", ""):
            problems.append(f"{name}: must publish over tcp:// in compose")
        exe = os.path.join(bindir, binary)
        known = settings_of(exe)
        for k in env:
            # Every service is given every PUB_URL: the consumers of the
            # bus (next to come) dial the others' endpoints.
            if k.startswith("SHOUWEN_") and k not in known and not k.endswith("_PUB_URL"):
                problems.append(f"{name}: sets {k}, which {binary} does not read")
        run_env = {"PATH": os.environ.get("PATH", "")}
        run_env.update(env)
        r = subprocess.run([exe, "--check-config"], env=run_env, capture_output=True, text=True)
        if r.returncode != 0:
            problems.append(f"{name}: refuses the compose settings: {r.stderr.strip()}")

    for p in problems:
        print(f"{path}: {p}")
    if not problems:
        print(f"{path}: ok ({len(svcs)} services; {', '.join(wanted)} checked against their binaries)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
