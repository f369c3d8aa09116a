#!/usr/bin/env python3
"""metrics_check.py [--dashboard FILE] [--alerts FILE] [--prometheus FILE]
                    [--runbook-root DIR] [--metrics SCRAPE...]

Keeps the observability files in deploy/observability/ true to what the
services really export.  SCRAPE files are the Prometheus text of running
services' /metrics (curl http://ADMIN/metrics > intake.prom).  It checks:
  - the Grafana dashboard parses as JSON, has a ${DS_PROMETHEUS} datasource
    variable, and every panel (rows aside) has targets, each with an expr;
  - alerts.yml parses and every rule has alert, expr, for (a Prometheus
    duration), labels.severity (critical, warning or info) and
    annotations.summary and .description; alert names are unique;
  - every PromQL expression (panels, template variables, alert rules) has
    balanced (), {} and [] outside its strings;
  - with --metrics: every metric name an expression uses (an identifier
    starting with shouwen_; NAME_bucket/_sum/_count of a histogram count as
    NAME) is exported by at least one scraped service; every label name in a
    selector, a `by (...)` clause or an `on (...)`/`ignoring (...)` list is
    carried by a metric it applies to (job and instance, which Prometheus
    adds, always are), when that metric has samples in the scrape; a
    counter or histogram is only read through rate/irate/increase/resets,
    and a gauge never is;
  - with --prometheus: the scrape config parses, names its rule files and
    they exist, and every scrape job has targets;
  - with --runbook-root DIR: every runbook_url (PATH#anchor, PATH relative
    to DIR, the repository) names a Markdown file that exists and has that
    heading (GitHub's anchors: lower case, punctuation dropped, spaces to
    dashes).
Exit 0 with a summary line, 1 with one line per problem, 2 on usage.
Needs python3 and python3-yaml only.
"""
import argparse
import json
import os
import re
import sys

import yaml

TARGET_LABELS = {"job", "instance"}  # added by Prometheus at scrape time
RATE_FUNCS = {"rate", "irate", "increase", "resets"}
AGGREGATIONS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count",
                "count_values", "bottomk", "topk", "quantile"}
LABEL_MAKERS = {"label_replace", "label_join", "count_values"}
DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")
SEVERITIES = {"critical", "warning", "info"}


# ---- what the services export ----------------------------------------------------------------

class Exported:
    """The metric families of a set of scrapes: kind, labels, which file."""

    def __init__(self):
        self.kind = {}       # family -> counter | gauge | histogram | ...
        self.labels = {}     # family -> set of label names seen on its samples
        self.samples = {}    # sample name -> family
        self.files = {}      # family -> set of scrape files
        self.nfiles = 0

    def load(self, path):
        self.nfiles += 1
        sample = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+\S+")
        label = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"(?:[^"\\]|\\.)*"')
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.rstrip("\n")
                if line.startswith("# TYPE "):
                    parts = line.split()
                    if len(parts) >= 4:
                        self.kind[parts[2]] = parts[3]
                        self.files.setdefault(parts[2], set()).add(path)
                    continue
                if not line or line.startswith("#"):
                    continue
                m = sample.match(line)
                if not m:
                    continue
                name = m.group(1)
                fam = self.family(name) or name
                self.samples[name] = fam
                self.files.setdefault(fam, set()).add(path)
                names = self.labels.setdefault(fam, set())
                names.update(x.group(1) for x in label.finditer(m.group(3) or ""))

    def family(self, name):
        """The family a name belongs to, or None when no scrape exports it."""
        if name in self.kind:
            return name
        if name in self.samples:
            return self.samples[name]
        for suffix in ("_bucket", "_sum", "_count"):
            base = name[: -len(suffix)]
            if name.endswith(suffix) and self.kind.get(base) in ("histogram", "summary"):
                return base
        return None

    def labels_of(self, name):
        """Label names of a name's samples (plus job, instance), or None when it has none."""
        fam = self.family(name)
        if fam is None or fam not in self.labels:
            return None
        names = set(self.labels[fam])
        if name.endswith("_bucket") and self.kind.get(fam) == "histogram":
            names.add("le")
        elif self.kind.get(fam) == "histogram":
            names.discard("le")  # _sum and _count carry no le
        return names | TARGET_LABELS


# ---- PromQL, as far as these checks need it ----------------------------------------------------

TOKEN = re.compile(r"""
    (?P<ws>\s+|\#[^\n]*)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<var>\$\{[^}]*\}|\$[a-zA-Z_][a-zA-Z0-9_]*)
  | (?P<number>[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?(?:ms|s|m|h|d|w|y)?)
  | (?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
  | (?P<op>=~|!~|!=|==|<=|>=|[-+*/%^<>=,(){}\[\]:@])
  | (?P<other>.)
""", re.X)


def tokens(expr):
    out = []
    for m in TOKEN.finditer(expr):
        kind = m.lastgroup
        if kind == "ws":
            continue
        out.append((kind, m.group(), m.start()))
    return out


def balance(toks):
    """Problems with (), {} and [] outside strings, or []."""
    pairs = {")": "(", "}": "{", "]": "["}
    stack = []
    for kind, text, pos in toks:
        if kind == "other" and text in "\"'`":
            return [f"unterminated string at column {pos + 1}"]
        if kind != "op":
            continue
        if text in "({[":
            stack.append((text, pos))
        elif text in ")}]":
            if not stack or stack[-1][0] != pairs[text]:
                return [f"unbalanced: '{text}' at column {pos + 1} closes nothing open"]
            stack.pop()
    return [f"unbalanced: '{t}' at column {p + 1} never closed" for t, p in stack]


def group_end(toks, i):
    """Index of the token closing the bracket that opens at toks[i]."""
    depth = 0
    for j in range(i, len(toks)):
        if toks[j][0] == "op" and toks[j][1] in "({[":
            depth += 1
        elif toks[j][0] == "op" and toks[j][1] in ")}]":
            depth -= 1
            if depth == 0:
                return j
    return len(toks) - 1


def label_list(toks, i):
    """The label names of a ( ... ) list opening at toks[i]."""
    end = group_end(toks, i)
    return [t[1] for t in toks[i + 1:end] if t[0] == "ident"], end


class Expr:
    """One PromQL expression: its metric names and where label names are used."""

    def __init__(self, text):
        self.text = text
        self.toks = tokens(text)
        self.problems = balance(self.toks)
        self.metrics = []      # (name, index of its token)
        self.selectors = []    # (metric, [label names]) of name{...}
        self.by = []           # ([label names], [metric names of the aggregated body], label maker inside?)
        self.on = []           # [label names] of on(...)/ignoring(...)/group_left(...)
        toks = self.toks
        label_positions = set()
        i = 0
        while i < len(toks):
            kind, text, _ = toks[i]
            nxt = toks[i + 1] if i + 1 < len(toks) else (None, None, None)
            if kind == "op" and text == "{":
                end = group_end(toks, i)
                names = [toks[j][1] for j in range(i + 1, end)
                         if toks[j][0] == "ident" and j + 1 < end and toks[j + 1][1] in ("=", "!=", "=~", "!~")]
                label_positions.update(range(i, end + 1))
                prev = toks[i - 1] if i > 0 else (None, None, None)
                if prev[0] == "ident":
                    self.selectors.append((prev[1], names))
                i = end + 1
                continue
            if kind == "ident" and text in ("by", "without") and nxt[1] == "(":
                names, end = label_list(toks, i + 1)
                label_positions.update(range(i, end + 1))
                if text == "by":
                    self.by.append((names, self._agg_body(i, end)))
                i = end + 1
                continue
            if kind == "ident" and text in ("on", "ignoring", "group_left", "group_right") and nxt[1] == "(":
                names, end = label_list(toks, i + 1)
                label_positions.update(range(i, end + 1))
                self.on.append(names)
                i = end + 1
                continue
            i += 1
        for i, (kind, text, _) in enumerate(toks):
            if kind == "ident" and i not in label_positions and text.startswith("shouwen_"):
                self.metrics.append((text, i))

    def _agg_body(self, by_at, list_end):
        """Metric names and label makers of the aggregation a by (...) at by_at belongs to."""
        toks = self.toks
        if list_end + 1 < len(toks) and toks[list_end + 1][1] == "(" and by_at > 0 and toks[by_at - 1][1] in AGGREGATIONS:
            lo, hi = list_end + 1, group_end(toks, list_end + 1)   # sum by (x) (body)
        elif by_at > 0 and toks[by_at - 1][1] == ")":
            hi = by_at - 1                                          # sum (body) by (x)
            depth, lo = 0, hi
            while lo >= 0:
                if toks[lo][1] in ")}]":
                    depth += 1
                elif toks[lo][1] in "({[":
                    depth -= 1
                    if depth == 0:
                        break
                lo -= 1
        else:
            return [], True
        body = toks[lo:hi + 1]
        names = [t[1] for t in body if t[0] == "ident" and t[1].startswith("shouwen_")]
        maker = any(t[0] == "ident" and t[1] in LABEL_MAKERS for t in body)
        return names, maker

    def functions_around(self, index):
        """Names of the function calls whose parentheses enclose token `index`."""
        out, stack = [], []
        for j, (kind, text, _) in enumerate(self.toks[:index]):
            if kind == "op" and text in "({[":
                fn = self.toks[j - 1][1] if text == "(" and j > 0 and self.toks[j - 1][0] == "ident" else None
                stack.append(fn)
            elif kind == "op" and text in ")}]":
                if stack:
                    stack.pop()
        return [f for f in stack if f]


def check_expr(where, text, exported, problems, used):
    e = Expr(text)
    for p in e.problems:
        problems.append(f"{where}: {p}: {text.strip()}")
    if exported is None:
        for name, _ in e.metrics:
            used.add(name)
        return
    for name, at in e.metrics:
        used.add(name)
        fam = exported.family(name)
        if fam is None:
            problems.append(f"{where}: metric {name} is exported by no scraped service")
            continue
        kind = exported.kind.get(fam)
        rated = bool(RATE_FUNCS.intersection(e.functions_around(at)))
        if kind in ("counter", "histogram", "summary") and not rated and not (kind == "summary" and name == fam):
            problems.append(f"{where}: {name} is a {kind}: read it through rate() or increase()")
        if kind == "gauge" and rated:
            problems.append(f"{where}: {name} is a gauge: rate()/increase() of it means nothing")
    for name, labels in e.selectors:
        have = exported.labels_of(name) if name.startswith("shouwen_") else None
        for label in labels:
            if have is not None and label not in have and label != "__name__":
                problems.append(f"{where}: {name} has no label '{label}' (it has: {', '.join(sorted(have))})")
    for labels, (names, maker) in e.by:
        if maker or not names:
            continue
        sets = [exported.labels_of(n) for n in names]
        if any(s is None for s in sets):
            continue
        have = set().union(*sets)
        for label in labels:
            if label not in have:
                problems.append(f"{where}: by ({label}): no label '{label}' on {', '.join(sorted(set(names)))}")
    for labels in e.on:
        sets = [exported.labels_of(n) for n, _ in e.metrics]
        if not sets or any(s is None for s in sets):
            continue
        have = set().union(*sets)
        for label in labels:
            if label not in have:
                problems.append(f"{where}: on/ignoring ({label}): no metric of the expression carries '{label}'")


# ---- the files ---------------------------------------------------------------------------------

def all_panels(panels):
    for p in panels or []:
        yield p
        if p.get("type") == "row":
            yield from all_panels(p.get("panels"))


def check_dashboard(path, exported, problems, used):
    try:
        with open(path, encoding="utf-8") as f:
            dash = json.load(f)
    except (OSError, ValueError) as e:
        problems.append(f"{path}: does not parse as JSON: {e}")
        return 0, 0
    if not isinstance(dash, dict) or not isinstance(dash.get("panels"), list) or not dash["panels"]:
        problems.append(f"{path}: no panels")
        return 0, 0
    variables = (dash.get("templating") or {}).get("list") or []
    if not any(v.get("name") == "DS_PROMETHEUS" and v.get("type") == "datasource"
               and v.get("query") == "prometheus" for v in variables):
        problems.append(f"{path}: no datasource variable DS_PROMETHEUS of type prometheus")
    for v in variables:
        if v.get("type") != "query":
            continue
        q = v.get("query")
        q = q.get("query") if isinstance(q, dict) else q
        m = re.match(r"^\s*label_values\((.*),\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)\s*$", q or "")
        check_expr(f"{path}: variable '{v.get('name')}'", m.group(1) if m else (q or ""), exported, problems, used)
    npanels = nqueries = 0
    ids = set()
    for p in all_panels(dash["panels"]):
        title = p.get("title") or "(untitled)"
        if p.get("id") in ids:
            problems.append(f"{path}: panel '{title}': id {p.get('id')} used twice")
        ids.add(p.get("id"))
        if "gridPos" not in p:
            problems.append(f"{path}: panel '{title}': no gridPos")
        if p.get("type") == "row":
            continue
        npanels += 1
        ds = p.get("datasource") or {}
        if ds.get("uid") != "${DS_PROMETHEUS}":
            problems.append(f"{path}: panel '{title}': datasource is not ${{DS_PROMETHEUS}}")
        targets = p.get("targets")
        if not targets:
            problems.append(f"{path}: panel '{title}': no targets")
            continue
        for t in targets:
            ref = t.get("refId", "?")
            if not (t.get("expr") or "").strip():
                problems.append(f"{path}: panel '{title}' target {ref}: no expr")
                continue
            nqueries += 1
            check_expr(f"{path}: panel '{title}' target {ref}", t["expr"], exported, problems, used)
    return npanels, nqueries


def anchors_of(markdown_path):
    out = set()
    with open(markdown_path, encoding="utf-8") as f:
        fenced = False
        for line in f:
            if line.startswith("```"):
                fenced = not fenced
            m = None if fenced else re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
            if m:
                a = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
                out.add(a)
    return out


def check_alerts(path, exported, runbook_root, problems, used):
    try:
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as e:
        problems.append(f"{path}: does not parse as YAML: {e}")
        return 0
    groups = doc.get("groups") if isinstance(doc, dict) else None
    if not isinstance(groups, list) or not groups:
        problems.append(f"{path}: no groups")
        return 0
    names = set()
    n = 0
    for g in groups:
        gname = g.get("name") if isinstance(g, dict) else None
        if not gname or not isinstance(g.get("rules"), list) or not g["rules"]:
            problems.append(f"{path}: group {gname or '(unnamed)'}: needs a name and rules")
            continue
        for i, r in enumerate(g["rules"]):
            if not isinstance(r, dict):
                problems.append(f"{path}: group {gname} rule {i + 1}: not a mapping")
                continue
            if "record" in r:
                continue
            alert = r.get("alert")
            where = f"{path}: alert {alert or '(rule %d of group %s)' % (i + 1, gname)}"
            n += 1
            if not alert:
                problems.append(f"{where}: no 'alert' name")
            elif alert in names:
                problems.append(f"{where}: alert name used twice")
            names.add(alert)
            if not isinstance(r.get("expr"), str) or not r["expr"].strip():
                problems.append(f"{where}: no 'expr'")
            else:
                check_expr(where, r["expr"], exported, problems, used)
            if "for" not in r:
                problems.append(f"{where}: no 'for'")
            elif not DURATION.match(str(r["for"])):
                problems.append(f"{where}: 'for: {r['for']}' is not a duration")
            sev = (r.get("labels") or {}).get("severity")
            if not sev:
                problems.append(f"{where}: no labels.severity")
            elif sev not in SEVERITIES:
                problems.append(f"{where}: labels.severity '{sev}' is not one of {', '.join(sorted(SEVERITIES))}")
            ann = r.get("annotations") or {}
            for key in ("summary", "description"):
                if not str(ann.get(key) or "").strip():
                    problems.append(f"{where}: no annotations.{key}")
            url = str(ann.get("runbook_url") or "")
            if runbook_root and url and not re.match(r"^[a-z]+://", url):
                doc, _, anchor = url.partition("#")
                doc = os.path.join(runbook_root, doc)
                if not os.path.isfile(doc):
                    problems.append(f"{where}: runbook_url {url}: no file {doc}")
                elif anchor and anchor not in anchors_of(doc):
                    problems.append(f"{where}: runbook_url {url}: no heading for '#{anchor}' in {doc}")
    return n


def check_prometheus(path, problems):
    try:
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as e:
        problems.append(f"{path}: does not parse as YAML: {e}")
        return
    if not isinstance(doc, dict):
        problems.append(f"{path}: not a mapping")
        return
    rules = doc.get("rule_files") or []
    if not rules:
        problems.append(f"{path}: no rule_files")
    for r in rules:
        if not os.path.exists(os.path.join(os.path.dirname(path), r)):
            problems.append(f"{path}: rule file {r} does not exist next to it")
    jobs = doc.get("scrape_configs") or []
    if not jobs:
        problems.append(f"{path}: no scrape_configs")
    for j in jobs:
        targets = [t for sc in j.get("static_configs") or [] for t in sc.get("targets") or []]
        if not j.get("job_name") or not (targets or any(k.endswith("_sd_configs") for k in j)):
            problems.append(f"{path}: scrape job {j.get('job_name') or '(unnamed)'}: needs job_name and targets")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[1].split("\n")[0])
    ap.add_argument("--dashboard", default=os.path.join(here, "observability", "grafana-dashboard.json"))
    ap.add_argument("--alerts", default=os.path.join(here, "observability", "alerts.yml"))
    ap.add_argument("--prometheus", help="an example Prometheus configuration to check too")
    ap.add_argument("--runbook-root", help="check the alerts' runbook_url links against the files under DIR")
    ap.add_argument("--metrics", nargs="+", default=[], metavar="SCRAPE",
                    help="Prometheus text scraped from the services' /metrics")
    args = ap.parse_args()

    exported = None
    problems = []
    if args.metrics:
        exported = Exported()
        for m in args.metrics:
            try:
                exported.load(m)
            except OSError as e:
                problems.append(f"{m}: cannot read: {e}")
    used = set()
    npanels, nqueries = check_dashboard(args.dashboard, exported, problems, used)
    nalerts = check_alerts(args.alerts, exported, args.runbook_root, problems, used)
    if args.prometheus:
        check_prometheus(args.prometheus, problems)
    for p in problems:
        print(p)
    if problems:
        print(f"metrics_check: {len(problems)} problem(s)")
        return 1
    known = f"all exported by the {exported.nfiles} scrape(s)" if exported else "not checked (no --metrics)"
    print(f"metrics_check: ok: {npanels} panels with {nqueries} queries, {nalerts} alert rules, "
          f"{len(used)} metric names used: {known}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
