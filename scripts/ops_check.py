#!/usr/bin/env python3
"""Checks behind scripts/ops-check.sh (issue 5): consistency of deploy/ with the code and
with itself (static), and the live queries against a real Prometheus and Alertmanager.

Standard library only, plus PyYAML (ops-check.sh puts yamllint's copy on PYTHONPATH).

  ops_check.py static --root DIR
  ops_check.py serve-env --root DIR --help-file FILE
  ops_check.py am-topic --alertmanager URL --alerts FILE
  ops_check.py cut-stream --events FILE --truth FILE
  ops_check.py k8s-kafka-options --root DIR --pod NAME
  ops_check.py sync-rules --root DIR          rewrite deploy/k8s/prometheusrule.yaml from rules.yml
  ops_check.py am-test-config --in FILE --out FILE
  ops_check.py live --root DIR --prometheus URL --alertmanager URL --expect-events N [--followguard-pid PID]
"""

import argparse
import json
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

FAILURES = []


def fail(msg):
    FAILURES.append(msg)
    print(f"  FAIL {msg}", file=sys.stderr)


_MARK = [0]


def ok(msg):
    """Reports a passed section, unless it recorded failures since the previous ok()."""
    if len(FAILURES) == _MARK[0]:
        print(f"  ok   {msg}", file=sys.stderr)
    _MARK[0] = len(FAILURES)


def _yaml():
    # Imported lazily: `sync-rules` needs no PyYAML.
    import yaml

    return yaml


def load_yaml(path):
    with open(path, encoding="utf-8") as f:
        return _yaml().safe_load(f)


def load_yaml_all(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in _yaml().safe_load_all(f) if d is not None]


# ------------------------------------------------------------------ queries in deploy/

# Dashboard variables as Grafana substitutes them when "All" is selected (allValue ".+")
# and a typical rate interval.
GRAFANA_VARS = [
    ("$__rate_interval", "1m"),
    ("$__interval", "15s"),
    ("$__range", "5m"),
    ("$job", ".+"),
    ("$instance", ".+"),
]


def grafana_expr(expr):
    for var, value in GRAFANA_VARS:
        expr = expr.replace(var, value)
    return expr


def dashboard_panels(dash):
    """Every non-row panel, including panels nested in collapsed rows."""
    out = []
    for p in dash.get("panels", []):
        if p.get("type") == "row":
            out.extend(p.get("panels", []))
        else:
            out.append(p)
    return out


def dashboard_queries(root):
    dash = json.load(open(os.path.join(root, "deploy/grafana/dashboards/followguard.json"), encoding="utf-8"))
    out = []
    for p in dashboard_panels(dash):
        for t in p.get("targets", []):
            out.append((f"panel '{p.get('title')}' {t.get('refId')}", grafana_expr(t.get("expr", ""))))
    return out


def rules(root):
    doc = load_yaml(os.path.join(root, "deploy/prometheus/rules.yml"))
    out = []
    for g in doc["groups"]:
        for r in g["rules"]:
            out.append(r)
    return out


# Series names a query reads: followguard's own metrics, the standard process collector's
# process_* (issue #23), `up`, and the recording rules' outputs (level:metric:operations).
SELECTOR_RE = re.compile(
    r"(?<![A-Za-z0-9_:\"'])(followguard_[A-Za-z0-9_]*|process_[a-z_]+|up|[a-z_]+:followguard_[A-Za-z0-9_:]*)"
    r"\s*(\{[^}]*\})?"
)


def selectors(expr):
    return [(m.group(1), m.group(1) + (m.group(2) or "")) for m in SELECTOR_RE.finditer(expr)]


def metric_names_in_deploy(root):
    names = set()
    for _, expr in dashboard_queries(root):
        names.update(n for n, _ in selectors(expr))
    for r in rules(root):
        names.update(n for n, _ in selectors(r["expr"]))
    return names


# ------------------------------------------------------------------ static checks


def rust_sources(root):
    """The library and binary sources of every workspace crate (crates/*/src)."""
    crates = os.path.join(root, "crates")
    for crate in sorted(os.listdir(crates)):
        for d, _, files in os.walk(os.path.join(crates, crate, "src")):
            for f in files:
                if f.endswith(".rs"):
                    with open(os.path.join(d, f), encoding="utf-8") as fh:
                        yield fh.read()


def heading_anchors(markdown):
    """GitHub-style anchors of the markdown headings."""
    anchors = set()
    for line in markdown.splitlines():
        m = re.match(r"^#{1,6}\s+(.*)$", line)
        if m:
            slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
            anchors.add(slug)
    return anchors


def prometheusrule_text(root):
    rules_text = open(os.path.join(root, "deploy/prometheus/rules.yml"), encoding="utf-8").read()
    body = rules_text[rules_text.index("groups:"):]
    indented = "".join(("  " + line if line.strip() else line) for line in body.splitlines(True))
    return (
        "# GENERATED from deploy/prometheus/rules.yml by `python3 scripts/ops_check.py sync-rules`;\n"
        "# edit rules.yml (and its unit tests) instead. scripts/ops-check.sh fails on drift.\n"
        "apiVersion: monitoring.coreos.com/v1\n"
        "kind: PrometheusRule\n"
        "metadata:\n"
        "  name: followguard\n"
        "  labels:\n"
        "    app.kubernetes.io/name: followguard\n"
        "    # The Prometheus Operator's ruleSelector must match this (kube-prometheus-stack: release).\n"
        "    role: alert-rules\n"
        "spec:\n" + indented
    )


def duration_seconds(s):
    m = re.fullmatch(r"(\d+)(ms|s|m|h)?", str(s).strip())
    if not m:
        return None
    n = int(m.group(1))
    return n * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[m.group(2)]


# Issue #23: where docs/runbook.md is published; rules' runbook_url links are absolute
# under it (as is serve's --runbook-url default, crates/followguard/src/config.rs).
RUNBOOK_BASE = "https://runbooks.example.com/followguard/runbook"
# The standard series of the prometheus crate's process collector (feature `process`).
PROCESS_COLLECTOR = {
    "process_cpu_seconds_total", "process_open_fds", "process_max_fds",
    "process_virtual_memory_bytes", "process_resident_memory_bytes",
    "process_start_time_seconds", "process_threads",
}


def check_static(root):
    src = "\n".join(rust_sources(root))
    defined_metrics = set(re.findall(r'"(followguard_[a-z0-9_]+)"', src))
    env_names = set(re.findall(r'env\s*=\s*"(FOLLOWGUARD_[A-Z0-9_]+)"', src))

    # Dashboard structure.
    dpath = os.path.join(root, "deploy/grafana/dashboards/followguard.json")
    dash = json.load(open(dpath, encoding="utf-8"))
    if dash.get("uid") != "followguard-overview":
        fail("dashboard uid must stay 'followguard-overview' (links and provisioning rely on it)")
    variables = {v["name"]: v for v in dash.get("templating", {}).get("list", [])}
    if variables.get("datasource", {}).get("type") != "datasource":
        fail("dashboard needs a `datasource` variable of type datasource")
    ids = set()
    panels = dashboard_panels(dash)
    for p in panels:
        if p.get("id") in ids:
            fail(f"dashboard panel id {p.get('id')} is duplicated")
        ids.add(p.get("id"))
        ds = (p.get("datasource") or {}).get("uid")
        if ds != "${datasource}":
            fail(f"panel '{p.get('title')}' does not use the $datasource variable")
        if not p.get("targets"):
            fail(f"panel '{p.get('title')}' has no query")
        for t in p.get("targets", []):
            if (t.get("datasource") or {}).get("uid") != "${datasource}":
                fail(f"panel '{p.get('title')}' target {t.get('refId')} does not use $datasource")
    rows = [p["title"] for p in dash.get("panels", []) if p.get("type") == "row"]
    for want in ("Throughput", "Latency", "Kafka", "Detection", "Process"):
        if not any(want.lower() in r.lower() for r in rows):
            fail(f"dashboard has no '{want}' row")
    ok(f"dashboard: {len(panels)} panels in rows {rows}")

    # Metric names: every followguard_* series deploy/ reads is registered in crates/*/src.
    for name in sorted(metric_names_in_deploy(root)):
        if ":" in name or name == "up":
            continue
        if name in PROCESS_COLLECTOR:
            continue  # the prometheus crate's process collector (metrics.rs registers it)
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        if name not in defined_metrics and base not in defined_metrics:
            fail(f"deploy/ reads {name}, which crates/*/src does not define (renamed or removed?)")
    ok("metric names in deploy/ checked against crates/*/src")

    # Rules: labels, annotations, runbook sections, unit tests.
    runbook = open(os.path.join(root, "docs/runbook.md"), encoding="utf-8").read()
    anchors = heading_anchors(runbook)
    tests = load_yaml(os.path.join(root, "deploy/prometheus/rules_test.yml"))
    fired, quiet = set(), set()
    for t in tests["tests"]:
        for a in t.get("alert_rule_test", []) or []:
            (fired if a.get("exp_alerts") else quiet).add(a["alertname"])
    recorded = set()
    for t in tests["tests"]:
        for e in t.get("promql_expr_test", []) or []:
            recorded.add(e["expr"].strip())
    n_alerts = 0
    for r in rules(root):
        if "record" in r:
            if r["record"] not in recorded:
                fail(f"recording rule {r['record']} has no promql_expr_test")
            continue
        n_alerts += 1
        name = r["alert"]
        if not r.get("for"):
            fail(f"alert {name} has no `for:` duration")
        if r.get("labels", {}).get("severity") not in ("critical", "warning", "info"):
            fail(f"alert {name} needs severity critical|warning|info")
        ann = r.get("annotations", {})
        for key in ("summary", "description", "runbook_url"):
            if not ann.get(key):
                fail(f"alert {name} has no {key} annotation")
        anchor = ann.get("runbook_url", "").split("#", 1)[-1]
        if not ann.get("runbook_url", "").startswith(RUNBOOK_BASE + "#") or anchor not in anchors:
            fail(f"alert {name}: runbook_url {ann.get('runbook_url')!r} is not {RUNBOOK_BASE}#<a section "
                 "of docs/runbook.md>")
        if name not in fired:
            fail(f"alert {name} has no unit test where it fires")
        if name not in quiet:
            fail(f"alert {name} has no unit test where it stays quiet")
    ok(f"rules: {n_alerts} alerts with for/severity/annotations/runbook sections/unit tests")

    # The PrometheusRule carries exactly rules.yml.
    pr_path = os.path.join(root, "deploy/k8s/prometheusrule.yaml")
    pr = load_yaml(pr_path)
    if pr.get("spec") != load_yaml(os.path.join(root, "deploy/prometheus/rules.yml")):
        fail("deploy/k8s/prometheusrule.yaml differs from rules.yml: run `python3 scripts/ops_check.py sync-rules`")
    elif open(pr_path, encoding="utf-8").read() != prometheusrule_text(root):
        fail("deploy/k8s/prometheusrule.yaml is not the generated text: run `python3 scripts/ops_check.py sync-rules`")
    else:
        ok("k8s PrometheusRule == rules.yml")

    # Every FOLLOWGUARD_* name in deploy/ and the Dockerfile is one the code reads.
    used = {}
    for d, _, files in os.walk(os.path.join(root, "deploy")):
        for f in files:
            if not f.endswith((".yaml", ".yml", ".json")):
                continue  # documentation may name the scripts' own variables
            path = os.path.join(d, f)
            for n in re.findall(r"FOLLOWGUARD_[A-Z0-9_]+", open(path, encoding="utf-8").read()):
                used.setdefault(n, path)
    for n in re.findall(r"FOLLOWGUARD_[A-Z0-9_]+", open(os.path.join(root, "Dockerfile"), encoding="utf-8").read()):
        used.setdefault(n, "Dockerfile")
    for n, where in sorted(used.items()):
        if n not in env_names:
            fail(f"{os.path.relpath(where, root)} sets {n}, which no clap flag reads")
    ok(f"{len(used)} FOLLOWGUARD_* names in deploy/ and Dockerfile are read by the code")

    # Kubernetes: static membership, cooperative-sticky, probes, grace above the drain.
    docs = {}
    for f in os.listdir(os.path.join(root, "deploy/k8s")):
        if f.endswith(".yaml"):
            for doc in load_yaml_all(os.path.join(root, "deploy/k8s", f)):
                docs[doc.get("kind")] = doc
    sts = docs.get("StatefulSet")
    cm = docs.get("ConfigMap", {}).get("data", {})
    if not sts:
        fail("deploy/k8s has no StatefulSet")
    else:
        pod = sts["spec"]["template"]["spec"]
        c = pod["containers"][0]
        env = {e["name"]: e.get("value", "") for e in c.get("env", [])}
        kopts = kafka_options(env.get("FOLLOWGUARD_KAFKA_OPTIONS", ""), "StatefulSet")
        if kopts.get("group.instance.id") != "$(POD_NAME)":
            fail("StatefulSet must set group.instance.id to the pod name (static membership)")
        if kopts.get("partition.assignment.strategy") != "cooperative-sticky":
            fail("StatefulSet must use cooperative-sticky assignment")
        for probe, path in (("startupProbe", "/healthz"), ("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            if c.get(probe, {}).get("httpGet", {}).get("path") != path:
                fail(f"{probe} must GET {path}")
        if not c.get("resources", {}).get("requests"):
            fail("container has no resource requests")
        grace = duration_seconds(cm.get("FOLLOWGUARD_SHUTDOWN_GRACE", "10s"))
        if grace is None or pod.get("terminationGracePeriodSeconds", 30) <= grace:
            fail("terminationGracePeriodSeconds must exceed FOLLOWGUARD_SHUTDOWN_GRACE")
        svc = docs.get("Service", {})
        if svc.get("metadata", {}).get("name") != "followguard":
            fail("the Service must be named `followguard`: it becomes the job label the rules match")
        ok("k8s: static membership, cooperative-sticky, probes, requests, grace > shutdown grace")
    for kind in ("ServiceMonitor", "PrometheusRule", "ConfigMap", "Service", "StatefulSet"):
        if kind not in docs:
            fail(f"deploy/k8s has no {kind}")

    # Compose: the laptop stack has every piece and mounts what provisioning expects.
    compose = load_yaml(os.path.join(root, "deploy/compose.yaml"))
    services = compose.get("services", {})
    for s in ("kafka", "followguard", "generator", "prometheus", "alertmanager", "grafana"):
        if s not in services:
            fail(f"deploy/compose.yaml has no `{s}` service")
    prov = load_yaml(os.path.join(root, "deploy/grafana/provisioning/dashboards/followguard.yaml"))
    dash_dir = prov["providers"][0]["options"]["path"]
    fg_env = services.get("followguard", {}).get("environment") or {}
    kafka_options(str(fg_env.get("FOLLOWGUARD_KAFKA_OPTIONS", "")), "deploy/compose.yaml")
    mounts = " ".join(str(v) for v in services.get("grafana", {}).get("volumes", []))
    if dash_dir not in mounts:
        fail(f"compose grafana does not mount the dashboards at {dash_dir}")
    ok("compose: kafka, followguard, generator, prometheus, alertmanager, grafana")


def check_serve_env(root, help_text):
    """Every setting deploy/ hands to `followguard serve` must be one serve reads: clap
    ignores unknown environment variables, so a typo or a flag that only another command
    has would be silently ignored in production."""
    known = set(re.findall(r"FOLLOWGUARD_[A-Z0-9_]+", help_text))
    given = {}
    for f in os.listdir(os.path.join(root, "deploy/k8s")):
        if not f.endswith(".yaml"):
            continue
        for doc in load_yaml_all(os.path.join(root, "deploy/k8s", f)):
            if doc.get("kind") == "ConfigMap":
                for k in doc.get("data", {}):
                    given.setdefault(k, f"deploy/k8s/{f}")
            if doc.get("kind") == "StatefulSet":
                for c in doc["spec"]["template"]["spec"]["containers"]:
                    for e in c.get("env", []):
                        given.setdefault(e["name"], f"deploy/k8s/{f}")
    compose = load_yaml(os.path.join(root, "deploy/compose.yaml"))
    for k in (compose["services"]["followguard"].get("environment") or {}):
        given.setdefault(k, "deploy/compose.yaml (followguard)")
    dockerfile = open(os.path.join(root, "Dockerfile"), encoding="utf-8").read()
    for k in re.findall(r"(FOLLOWGUARD_[A-Z0-9_]+)=", dockerfile):
        given.setdefault(k, "Dockerfile")
    for k, where in sorted(given.items()):
        if k.startswith("FOLLOWGUARD_") and k not in known:
            fail(f"{where} sets {k}, which `followguard serve` does not read (see serve --help)")
    ok(f"{sum(1 for k in given if k.startswith('FOLLOWGUARD_'))} FOLLOWGUARD_* settings given to serve are serve flags")


# ------------------------------------------------------------------ alertmanager test config


def am_test_config(src, dst, resolve_timeout=None):
    cfg = load_yaml(src)
    if resolve_timeout:
        # Issue #23: a short resolve_timeout, so the check can show an alert outliving it.
        cfg.setdefault("global", {})["resolve_timeout"] = resolve_timeout
    # Keep the routing tree and inhibitions; drop every integration so nothing leaves the host.
    cfg["receivers"] = [{"name": r["name"]} for r in cfg.get("receivers", [])]
    with open(dst, "w", encoding="utf-8") as f:
        _yaml().safe_dump(cfg, f, sort_keys=False)


# ------------------------------------------------------------------ live checks


def get_json(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read().decode("utf-8"))


def prom_query(base, expr):
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        body = get_json(url)
    except urllib.error.HTTPError as e:
        try:
            body = json.loads(e.read().decode("utf-8"))
        except ValueError:
            return None, f"HTTP {e.code}"
    if body.get("status") != "success":
        return None, f"{body.get('errorType')}: {body.get('error')}"
    return body["data"]["result"], None


def scalar(base, expr):
    res, err = prom_query(base, expr)
    if err or not res:
        return None
    try:
        return float(res[0]["value"][1])
    except (KeyError, IndexError, ValueError):
        return None


def alive(pid):
    if not pid:
        return True
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def wait_for(what, predicate, timeout, pid=None, every=1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            ok(what)
            return True
        if not alive(pid):
            fail(f"followguard exited while waiting for: {what}")
            return False
        time.sleep(every)
    fail(f"timed out after {timeout}s waiting for: {what}")
    return False


def check_live(root, prom, am, expect_events, pid, public_url=None, admin_token=None,
               resolve_timeout_s=None, long_lived_out=None, https_log=None):
    # 1. The scenario ran: everything produced was processed and a campaign was alerted.
    wait_for(
        f"Prometheus saw all {expect_events} records processed",
        lambda: (scalar(prom, "sum(followguard_events_total)") or 0) >= expect_events,
        timeout=180, pid=pid)
    wait_for("an open bought-follower alert was counted",
             lambda: (scalar(prom, 'sum(followguard_alerts_total{status="open"})') or 0) > 0,
             timeout=30, pid=pid)
    wait_for("consumer lag per partition is exported",
             lambda: bool((prom_query(prom, "followguard_consumer_lag_records")[0] or [])),
             timeout=30, pid=pid)
    wait_for("rejected records were dead-lettered",
             lambda: (scalar(prom, 'sum(followguard_dead_letter_records_total)') or 0) >= 3,
             timeout=30, pid=pid)
    # A few more scrapes and rule evaluations so every rate window has samples.
    time.sleep(5)
    if FAILURES:
        return

    # 2. Every series name deploy/ reads exists in this Prometheus: a renamed or removed
    # metric fails here with its name.
    names = set(get_json(f"{prom}/api/v1/label/__name__/values")["data"])
    for n in sorted(metric_names_in_deploy(root)):
        if ":" in n:
            continue  # recording-rule outputs are checked through their queries below
        if n not in names:
            fail(f"metric {n} (used in deploy/) is not exported by followguard / not in Prometheus")
    ok(f"{len(names)} series names in Prometheus cover every metric deploy/ reads")

    # 3. Every dashboard query parses and returns series.
    for where, expr in dashboard_queries(root):
        res, err = prom_query(prom, expr)
        if err:
            fail(f"{where}: query error {err}: {expr}")
        elif not res:
            fail(f"{where}: no series: {expr}")
    ok(f"{len(dashboard_queries(root))} dashboard queries parse and return series")

    # 4. Every rule expression parses and evaluates; recording rules return series, and each
    # series an alert reads exists (the alert condition itself is false in a healthy run).
    for r in rules(root):
        name = r.get("alert") or r.get("record")
        res, err = prom_query(prom, r["expr"])
        if err:
            fail(f"rule {name}: query error {err}")
            continue
        if "record" in r and not res:
            fail(f"recording rule {name} returns no series")
        for metric, sel in selectors(r["expr"]):
            sres, serr = prom_query(prom, sel)
            if serr or not sres:
                fail(f"rule {name}: selector {sel} returns no series ({serr or 'empty'})")
    ok(f"{len(rules(root))} rule expressions parse, evaluate and read existing series")

    # 5. Prometheus itself loaded and evaluates the rules without errors.
    groups = get_json(f"{prom}/api/v1/rules")["data"]["groups"]
    loaded = [r for g in groups for r in g["rules"]]
    if len(loaded) != len(rules(root)):
        fail(f"Prometheus loaded {len(loaded)} rules, rules.yml has {len(rules(root))}")
    for r in loaded:
        if r.get("health") != "ok":
            fail(f"rule {r.get('name')} health {r.get('health')}: {r.get('lastError')}")
    ok(f"Prometheus evaluates all {len(loaded)} rules with health ok")
    targets = get_json(f"{prom}/api/v1/targets")["data"]["activeTargets"]
    if not targets or any(t.get("health") != "up" for t in targets):
        fail(f"scrape targets not all up: {[(t.get('scrapeUrl'), t.get('health'), t.get('lastError')) for t in targets]}")
    else:
        ok("followguard scrape target is up")

    # 6. Alertmanager received followguard's alerts through the webhook sink.
    am_alerts = []

    def fetch_am():
        nonlocal am_alerts
        q = urllib.parse.urlencode({"filter": 'source="followguard"'})
        am_alerts = get_json(f"{am}/api/v2/alerts?{q}")
        return len(am_alerts) > 0

    if wait_for("Alertmanager lists followguard alerts", fetch_am, timeout=60, pid=pid):
        for a in am_alerts:
            labels, ann = a.get("labels", {}), a.get("annotations", {})
            if labels.get("alertname") != "FollowerPurchaseSuspected":
                fail(f"Alertmanager alert has alertname {labels.get('alertname')!r}")
            for key in ("alert_id", "kind", "followee_id"):
                if not labels.get(key):
                    fail(f"Alertmanager alert lacks label {key}: {labels}")
            if "severity" in labels:
                fail(f"severity is a label (a severity change would make a second alert): {labels}")
            for key in ("summary", "severity", "runbook_url"):
                if not ann.get(key):
                    fail(f"Alertmanager alert lacks a {key} annotation: {ann}")
            if not ann.get("runbook_url", "").startswith("https://"):
                fail(f"runbook_url annotation is not absolute: {ann.get('runbook_url')!r}")
            gen = a.get("generatorURL", "")
            if public_url and gen != f"{public_url}/alerts/{labels.get('alert_id')}":
                fail(f"generatorURL {gen!r} is not the alert's evidence page under {public_url}")
            if ann.get("status") not in ("open", "update"):
                fail(f"active Alertmanager alert has status annotation {ann.get('status')!r}")
            receivers = [r.get("name") for r in a.get("receivers", [])]
            if receivers != ["trust-and-safety"]:
                fail(f"followguard alert routed to {receivers}, expected ['trust-and-safety']")
        sent = scalar(prom, "sum(followguard_webhook_sent_total)") or 0
        dropped = scalar(prom, "sum(followguard_webhook_dropped_total)")
        if sent < 1 or dropped != 0:
            fail(f"webhook counters: sent {sent}, dropped {dropped} (want >= 1 and 0)")
        kinds = sorted({(a["labels"].get("kind"), a["annotations"].get("severity")) for a in am_alerts})
        ok(f"Alertmanager lists {len(am_alerts)} followguard alerts {kinds}, routed to trust-and-safety; "
           f"webhook sent {sent:.0f}, dropped {dropped:.0f}")
        if public_url and admin_token:
            # Issue #23: the evidence pages refuse a request without the admin token;
            # the probes and /metrics stay open.
            for path in ("/alerts", "/api/alerts"):
                try:
                    urllib.request.urlopen(public_url + path, timeout=10)
                    fail(f"{path} answered without the admin token")
                except urllib.error.HTTPError as e:
                    if e.code != 401:
                        fail(f"{path} without the admin token: HTTP {e.code}, want 401")
            for path in ("/metrics", "/healthz"):
                try:
                    urllib.request.urlopen(public_url + path, timeout=10).read()
                except urllib.error.URLError as e:
                    fail(f"{path} is not open: {e}")
            req = urllib.request.Request(public_url + "/api/alerts",
                                         headers={"Authorization": f"Bearer {admin_token}"})
            with urllib.request.urlopen(req, timeout=10) as r:
                n_listed = len(json.loads(r.read().decode("utf-8")).get("alerts", []))
            ok(f"/alerts and /api/alerts refuse requests without the admin token (401); with it "
               f"/api/alerts lists {n_listed} alerts; /metrics and /healthz stay open")
            rss = scalar(prom, 'max(process_resident_memory_bytes{job="followguard"})') or 0
            fds = scalar(prom, 'max(process_open_fds{job="followguard"})') or 0
            if rss <= 0 or fds <= 0:
                fail(f"standard process_* series not scraped (rss {rss}, open fds {fds})")
            else:
                ok(f"standard process_* series scraped: resident memory {rss / 2**20:.0f} MiB, "
                   f"{fds:.0f} open fds")
            # The generatorURL is the evidence page, served with the admin token.
            gen = am_alerts[0].get("generatorURL", "")
            req = urllib.request.Request(gen, headers={"Authorization": f"Bearer {admin_token}"})
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    page = r.read().decode("utf-8", "replace")
                if am_alerts[0]["labels"]["alert_id"] not in page:
                    fail(f"evidence page {gen} does not name its alert")
                else:
                    ok(f"generatorURL {gen} serves the alert's evidence page (with the admin token)")
            except urllib.error.URLError as e:
                fail(f"generatorURL {gen}: {e}")
        if resolve_timeout_s and not FAILURES:
            check_outlives_resolve_timeout(am, am_alerts, resolve_timeout_s, long_lived_out, pid)
        if https_log:
            # The HTTPS receiver in front of Alertmanager checked the bearer token.
            counts = json.load(open(https_log, encoding="utf-8"))
            ok_posts = scalar(prom, 'sum(followguard_webhook_requests_total{result="success"})') or 0
            if counts.get("accepted", 0) < 1 or counts.get("refused", 0) != 0:
                fail(f"HTTPS receiver counts {counts}: want accepted >= 1 and refused 0")
            elif ok_posts < counts["accepted"] - 1:
                fail(f"followguard counted {ok_posts} successful posts, the receiver {counts}")
            else:
                ok(f"webhook delivered over HTTPS (self-signed CA via --webhook-ca-file) with a bearer "
                   f"token the receiver checked: {counts['accepted']} posts accepted, 0 refused")


def check_outlives_resolve_timeout(am, first, resolve_timeout_s, out_path, pid):
    """Issue #23: an alert followguard keeps open stays firing in Alertmanager for longer
    than its resolve_timeout (the webhook resends it with endsAt ahead), and its endsAt
    moves forward between resends."""
    q = urllib.parse.urlencode({"filter": 'source="followguard"'})
    ids = {a["labels"]["alert_id"]: a for a in first}
    wait = 3 * resolve_timeout_s
    time.sleep(wait)
    if not alive(pid):
        fail("followguard exited while its alerts were checked")
        return
    now = {a["labels"]["alert_id"]: a for a in get_json(f"{am}/api/v2/alerts?{q}")}
    gone = sorted(set(ids) - set(now))
    if gone:
        fail(f"alerts {gone} stopped firing in Alertmanager within {wait:.0f}s "
             f"(resolve_timeout {resolve_timeout_s:.0f}s) while followguard still had them open")
        return
    stale = [i for i in ids if now[i]["endsAt"] <= ids[i]["endsAt"]]
    if stale:
        fail(f"alerts {stale}: endsAt did not move forward in {wait:.0f}s (no resend?)")
        return
    not_firing = [i for i in ids if now[i]["status"]["state"] not in ("active", "suppressed")]
    if not_firing:
        fail(f"alerts {not_firing} not active in Alertmanager after {wait:.0f}s")
        return
    ok(f"{len(ids)} open alerts still firing in Alertmanager {wait:.0f}s later (3x its resolve_timeout "
       f"{resolve_timeout_s:.0f}s); endsAt moved forward with each resend")
    if out_path:
        with open(out_path, "w", encoding="utf-8") as f:
            json.dump(sorted(ids), f)

def check_am_matches_topic(am, alerts_path, long_lived=None):
    """Alertmanager's followguard alerts are exactly the bursts still open on the alerts
    topic, with the same kind, severity and followee (resolved bursts carry an endsAt in
    the past, so Alertmanager no longer lists them as active)."""
    last = {}
    with open(alerts_path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if "alert_id" in rec:
                # Records of one alert share a key (the followee) and so a partition: in order.
                last[rec["alert_id"]] = rec
    if not last:
        fail(f"no alert records read from the alerts topic ({alerts_path})")
        return
    expected = {i: r for i, r in last.items() if r.get("status") != "resolved"}
    q = urllib.parse.urlencode({"filter": 'source="followguard"'})
    # alert_id -> every Alertmanager alert carrying it (one: severity is an annotation, so
    # a severity change updates the alert instead of adding a label set).
    listed = {}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        listed = {}
        for a in get_json(f"{am}/api/v2/alerts?{q}"):
            listed.setdefault(a["labels"].get("alert_id"), []).append(a)
        if set(listed) == set(expected):
            break
        time.sleep(1)
    if set(listed) != set(expected):
        fail(f"Alertmanager lists alert ids {sorted(listed)}, the alerts topic has open {sorted(expected)}")
        return
    for i, rec in expected.items():
        if len(listed[i]) != 1:
            fail(f"alert {i}: Alertmanager lists {len(listed[i])} alerts for it: {[a['labels'] for a in listed[i]]}")
            continue
        a = listed[i][0]
        got = {k: a["labels"].get(k) for k in ("kind", "followee_id")}
        got["severity"] = a["annotations"].get("severity")
        want = {k: rec.get(k) for k in ("kind", "followee_id", "severity")}
        if got != want:
            fail(f"alert {i}: Alertmanager has {got}, the topic {want}")
        elif a["annotations"].get("status") != rec.get("status"):
            fail(f"alert {i}: Alertmanager status {a['annotations'].get('status')!r}, topic {rec.get('status')!r}")
        elif rec.get("campaign_id") and a["annotations"].get("campaign_id") != rec["campaign_id"]:
            fail(f"alert {i}: campaign annotation {a['annotations'].get('campaign_id')!r}, topic {rec['campaign_id']!r}")
    ok(f"Alertmanager's active followguard alerts match the {len(expected)} open bursts on the alerts "
       f"topic, one Alertmanager alert each ({len(last) - len(expected)} resolved, not listed)")
    if long_lived:
        ids = json.load(open(long_lived, encoding="utf-8"))
        resolved = [i for i in ids if last.get(i, {}).get("status") == "resolved"]
        if not resolved:
            fail(f"none of the long-open alerts {ids} was resolved by followguard after the tail of the stream")
        else:
            ok(f"{len(resolved)} of the {len(ids)} alerts that outlived resolve_timeout were resolved by "
               f"followguard and left Alertmanager's active list")


def cut_stream(events_path, truth_path, margin_ms, tail_path=None):
    """Ends the stream shortly after the last injected campaign, so at least that burst is
    still open when the stream stops (a resolution needs an hour of quiet event time) and
    Alertmanager has an active alert to list. Lines keep their order."""
    from datetime import datetime, timezone

    truth = json.load(open(truth_path, encoding="utf-8"))
    ends = [c["end_ms"] for c in truth.get("campaigns", [])]
    if not ends:
        fail(f"{truth_path} has no campaigns")
        return
    cutoff = max(ends) + margin_ms
    kept = dropped = 0
    tail = []
    with open(events_path, encoding="utf-8") as f:
        lines = f.readlines()
    with open(events_path, "w", encoding="utf-8") as f:
        for line in lines:
            try:
                ts = json.loads(line).get("ts")
                ms = datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() * 1000
            except (ValueError, AttributeError, TypeError):
                ms = None
            if ms is not None and ms > cutoff:
                dropped += 1
                tail.append(line)
                continue
            f.write(line)
            kept += 1
    if tail_path:
        # The rest of the stream (issue #23), produced later so followguard resolves the
        # bursts still open at the cut: the cut-off lines, then the stream's campaign-free
        # first hours again, whole days later (new event ids), so every followee sees a
        # day of quiet organic traffic after its campaign.
        def ts_ms(line):
            try:
                t = json.loads(line).get("ts")
                return datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp() * 1000
            except (ValueError, AttributeError, TypeError):
                return None

        times = [t for t in map(ts_ms, lines) if t is not None]
        first, last = min(times), max(times)
        day = 86_400_000
        shift = -(-(last - first) // day) * day
        first_campaign = min(c["start_ms"] for c in truth["campaigns"])
        # A drip campaign stays hot for the detector's 24 h long window, then needs an
        # hour of quiet: cover 27 h after the stream's end.
        cover_until = last + 27 * 3_600_000
        again = 0
        copy = 0
        while first + shift < cover_until:
            copy += 1
            for line in lines:
                t = ts_ms(line)
                if t is None or t >= first_campaign or t + shift > cover_until:
                    continue
                rec = json.loads(line)
                rec["event_id"] = f"{rec.get('event_id')}-again{copy}"
                when = datetime.fromtimestamp((t + shift) / 1000, tz=timezone.utc)
                rec["ts"] = when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
                tail.append(json.dumps(rec, separators=(",", ":")) + "\n")
                again += 1
            shift += day
        with open(tail_path, "w", encoding="utf-8") as f:
            f.writelines(tail)
        print(f"tail: {dropped} cut-off events plus {again} quiet ones (the first campaign-free "
              f"hours again, {copy} days)", file=sys.stderr)
    print(f"kept {kept} events up to 10 minutes after the last campaign, dropped {dropped}", file=sys.stderr)


def kafka_options(value, where):
    """FOLLOWGUARD_KAFKA_OPTIONS as serve reads it: options separated by ';' (config.rs,
    value_delimiter). A ',' followed by another key=... inside one value means the options
    were comma-joined and serve would read them as a single option."""
    opts = {}
    for o in filter(None, (x.strip() for x in value.split(";"))):
        key, sep, val = o.partition("=")
        if not sep:
            fail(f"{where}: FOLLOWGUARD_KAFKA_OPTIONS entry {o!r} is not key=value")
            continue
        if re.search(r",\s*[a-z][a-z0-9._]*=", val):
            fail(f"{where}: FOLLOWGUARD_KAFKA_OPTIONS value of {key} contains ',key=': "
                 "separate options with ';'")
        opts[key] = val
    return opts


def k8s_kafka_options(root, pod):
    """The StatefulSet's librdkafka options with the pod name filled in and a short session
    timeout (the development broker delivers a new member's first records only after about
    half of it), so the live check runs serve with production's group settings."""
    for doc in load_yaml_all(os.path.join(root, "deploy/k8s/statefulset.yaml")):
        if doc.get("kind") != "StatefulSet":
            continue
        for c in doc["spec"]["template"]["spec"]["containers"]:
            for e in c.get("env", []):
                if e["name"] == "FOLLOWGUARD_KAFKA_OPTIONS":
                    opts = kafka_options(e["value"].replace("$(POD_NAME)", pod), "StatefulSet")
                    opts["session.timeout.ms"] = "6000"
                    return ";".join(f"{k}={v}" for k, v in opts.items())
    fail("deploy/k8s/statefulset.yaml sets no FOLLOWGUARD_KAFKA_OPTIONS")
    return ""


def https_receiver(port, cert, key, token_file, upstream, counts_path):
    """Issue #23: a TLS endpoint (self-signed certificate) in front of Alertmanager that
    accepts a webhook post only with `Authorization: Bearer <token>` and forwards it;
    counts accepted and refused posts into counts_path after each request."""
    import http.server
    import ssl

    token = open(token_file, encoding="utf-8").read().strip()
    counts = {"accepted": 0, "refused": 0}

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.headers.get("Authorization") != f"Bearer {token}":
                counts["refused"] += 1
                code = 401
            else:
                req = urllib.request.Request(upstream + self.path, data=body, method="POST",
                                             headers={"Content-Type": "application/json"})
                try:
                    with urllib.request.urlopen(req, timeout=10) as r:
                        code = r.status
                except urllib.error.HTTPError as e:
                    code = e.code
                except OSError:
                    code = 502
                counts["accepted" if code < 300 else "refused"] += 1
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()
            with open(counts_path + ".tmp", "w", encoding="utf-8") as f:
                json.dump(counts, f)
            os.replace(counts_path + ".tmp", counts_path)

    with open(counts_path, "w", encoding="utf-8") as f:
        json.dump(counts, f)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    srv.serve_forever()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("static")
    s.add_argument("--root", required=True)
    s = sub.add_parser("k8s-kafka-options")
    s.add_argument("--root", required=True)
    s.add_argument("--pod", required=True)
    s = sub.add_parser("cut-stream")
    s.add_argument("--events", required=True)
    s.add_argument("--truth", required=True)
    s.add_argument("--tail")
    s = sub.add_parser("am-topic")
    s.add_argument("--alertmanager", required=True)
    s.add_argument("--alerts", required=True)
    s.add_argument("--long-lived")
    s = sub.add_parser("wait-events")
    s.add_argument("--prometheus", required=True)
    s.add_argument("--expect-events", type=int, required=True)
    s.add_argument("--followguard-pid", type=int)
    s = sub.add_parser("https-receiver")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--cert", required=True)
    s.add_argument("--key", required=True)
    s.add_argument("--token-file", required=True)
    s.add_argument("--upstream", required=True)
    s.add_argument("--counts", required=True)
    s = sub.add_parser("serve-env")
    s.add_argument("--root", required=True)
    s.add_argument("--help-file", required=True)
    s = sub.add_parser("sync-rules")
    s.add_argument("--root", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    s = sub.add_parser("am-test-config")
    s.add_argument("--in", dest="src", required=True)
    s.add_argument("--out", dest="dst", required=True)
    s.add_argument("--resolve-timeout")
    s = sub.add_parser("live")
    s.add_argument("--root", required=True)
    s.add_argument("--prometheus", required=True)
    s.add_argument("--alertmanager", required=True)
    s.add_argument("--expect-events", type=int, required=True)
    s.add_argument("--followguard-pid", type=int)
    s.add_argument("--public-url")
    s.add_argument("--admin-token-file")
    s.add_argument("--resolve-timeout-seconds", type=float)
    s.add_argument("--long-lived-out")
    s.add_argument("--https-counts")
    a = ap.parse_args()

    if a.cmd == "static":
        check_static(a.root)
    elif a.cmd == "k8s-kafka-options":
        print(k8s_kafka_options(a.root, a.pod))
    elif a.cmd == "cut-stream":
        cut_stream(a.events, a.truth, 600_000, a.tail)
    elif a.cmd == "am-topic":
        check_am_matches_topic(a.alertmanager.rstrip("/"), a.alerts, a.long_lived)
    elif a.cmd == "serve-env":
        check_serve_env(a.root, open(a.help_file, encoding="utf-8").read())
    elif a.cmd == "sync-rules":
        with open(os.path.join(a.root, "deploy/k8s/prometheusrule.yaml"), "w", encoding="utf-8") as f:
            f.write(prometheusrule_text(a.root))
        print("wrote deploy/k8s/prometheusrule.yaml")
    elif a.cmd == "am-test-config":
        am_test_config(a.src, a.dst, a.resolve_timeout)
    elif a.cmd == "wait-events":
        prom = a.prometheus.rstrip("/")
        wait_for(f"Prometheus saw all {a.expect_events} records processed",
                 lambda: (scalar(prom, "sum(followguard_events_total)") or 0) >= a.expect_events,
                 timeout=120, pid=a.followguard_pid)
        time.sleep(3)  # a few more scrapes and webhook posts
    elif a.cmd == "https-receiver":
        https_receiver(a.port, a.cert, a.key, a.token_file, a.upstream, a.counts)
    elif a.cmd == "live":
        token = open(a.admin_token_file, encoding="utf-8").read().strip() if a.admin_token_file else None
        check_live(a.root, a.prometheus.rstrip("/"), a.alertmanager.rstrip("/"), a.expect_events,
                   a.followguard_pid, a.public_url, token, a.resolve_timeout_seconds,
                   a.long_lived_out, a.https_counts)
    if FAILURES:
        print(f"{len(FAILURES)} check(s) failed:", file=sys.stderr)
        for f in FAILURES:
            print(f"  - {f}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
