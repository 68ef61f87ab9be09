#!/usr/bin/env python3
"""The operator kit under deploy/ (issue 20), checked with Debian's promtool and a live
kube-api-lb in front of three stand-in apiservers (loopback only):

- `promtool check rules` on the rule file and on the PrometheusRule's rules, which must equal the
  rule file's; `promtool test rules` runs the unit tests of every alert (synthetic series);
- every alert has a runbook_url whose anchor is a section of docs/runbooks.md, and every section
  there has an alert;
- `promtool check metrics` on the live /metrics output;
- the Grafana dashboard parses, and every query (panels, templating, annotations) names only
  metrics the live /metrics exports; so do the rules;
- `promtool check config` on the node-local scrape example; the Kubernetes one parses and keeps
  the kube-api-lb pods, scrapes the host IP on the admin port and names instances by node.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kal_testlib as kt  # noqa: E402
import kal_python  # noqa: E402

if not kal_python.ensure("yaml"):
    print("SKIP: python3-yaml is missing (scripts/install-deps.sh installs it)")
    sys.exit(0 if os.environ.get("KAL_ALLOW_SKIP") else 1)
import yaml  # noqa: E402

import kal_live  # noqa: E402

DEPLOY = os.path.join(kt.REPO, "deploy")
PROM = os.path.join(DEPLOY, "prometheus")
RULES = os.path.join(PROM, "kube-api-lb-rules.yaml")
OPERATOR_RULES = os.path.join(PROM, "kube-api-lb-prometheusrule.yaml")
RULE_TESTS = os.path.join(PROM, "kube-api-lb-rules.test.yaml")
DASHBOARD = os.path.join(DEPLOY, "grafana", "kube-api-lb-dashboard.json")
RUNBOOKS = os.path.join(kt.REPO, "docs", "runbooks.md")
METRIC = re.compile(r"\bkube_api_lb_[a-z0-9_]+")


def promtool(*args, stdin=None):
    r = subprocess.run(["promtool", *args], input=stdin, capture_output=True, text=True,
                       timeout=120)
    return r.returncode, r.stdout + r.stderr


def exported_names(metrics_text):
    return set(re.findall(r"^# TYPE (\S+) ", metrics_text, re.M))


def dashboard_queries(d):
    out = []

    def walk(panels):
        for p in panels:
            for t in p.get("targets", []):
                out.append((p.get("title"), t["expr"]))
            walk(p.get("panels", []))
    walk(d["panels"])
    for v in d.get("templating", {}).get("list", []):
        q = v.get("query")
        if v.get("type") == "query":
            out.append((f"variable {v['name']}", q["query"] if isinstance(q, dict) else q))
    for a in d.get("annotations", {}).get("list", []):
        if "expr" in a:
            out.append((f"annotation {a['name']}", a["expr"]))
    return out


def all_rules(doc):
    return [r for g in doc["groups"] for r in g["rules"]]


class OperatorKit(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not shutil.which("promtool"):
            raise AssertionError("promtool missing: scripts/install-deps.sh installs prometheus")
        cls.live = kal_live.LiveProxy()
        st, cls.metrics_text = cls.live.get("/metrics")
        assert st == 200
        cls.names = exported_names(cls.metrics_text)
        with open(RULES) as f:
            cls.rules = yaml.safe_load(f)

    @classmethod
    def tearDownClass(cls):
        cls.live.stop()

    def test_rules_check_and_unit_tests(self):
        rc, out = promtool("check", "rules", RULES)
        self.assertEqual(rc, 0, out)
        rc, out = promtool("test", "rules", RULE_TESTS)
        self.assertEqual(rc, 0, out)
        # Every alert has a unit test.
        with open(RULE_TESTS) as f:
            tests = yaml.safe_load(f)
        tested = {t["alertname"] for case in tests["tests"] for t in case["alert_rule_test"]
                  if t["exp_alerts"]}
        alerts = {r["alert"] for r in all_rules(self.rules)}
        self.assertEqual(alerts - tested, set(), "alerts without a firing unit test")

    def test_prometheusrule_matches_the_rule_file(self):
        with open(OPERATOR_RULES) as f:
            pr = yaml.safe_load(f)
        self.assertEqual(pr["apiVersion"], "monitoring.coreos.com/v1")
        self.assertEqual(pr["kind"], "PrometheusRule")
        self.assertEqual(pr["spec"]["groups"], self.rules["groups"])
        with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
            yaml.safe_dump({"groups": pr["spec"]["groups"]}, f)
            f.flush()
            rc, out = promtool("check", "rules", f.name)
        self.assertEqual(rc, 0, out)

    def test_runbooks(self):
        with open(RUNBOOKS) as f:
            anchors = {h.strip().lower() for h in re.findall(r"^## (.+)$", f.read(), re.M)}
        want = set()
        for r in all_rules(self.rules):
            url = r["annotations"].get("runbook_url", "")
            self.assertTrue(url.startswith("docs/runbooks.md#"), f"{r['alert']}: {url!r}")
            anchor = url.split("#", 1)[1]
            self.assertEqual(anchor, r["alert"].lower())
            self.assertIn(anchor, anchors, f"{r['alert']}: no section in docs/runbooks.md")
            want.add(anchor)
        self.assertEqual(anchors - want, set(), "runbook sections without an alert")

    def test_live_metrics_pass_promtool(self):
        rc, out = promtool("check", "metrics", stdin=self.metrics_text)
        self.assertEqual(rc, 0, out)
        self.assertEqual(out.strip(), "", "promtool check metrics found problems")

    def test_rules_use_exported_metrics_only(self):
        for r in all_rules(self.rules):
            used = set(METRIC.findall(r["expr"]))
            self.assertTrue(used, f"{r['alert']}: names no kube-api-lb metric")
            self.assertEqual(used - self.names, set(), f"{r['alert']}: not exported")

    def test_dashboard_uses_exported_metrics_only(self):
        with open(DASHBOARD) as f:
            d = json.load(f)
        self.assertEqual(d["uid"], "kube-api-lb")
        queries = dashboard_queries(d)
        self.assertGreaterEqual(len(queries), 20)
        used_all = set()
        for where, q in queries:
            used = set(METRIC.findall(q))
            self.assertTrue(used, f"{where}: {q!r} names no kube-api-lb metric")
            self.assertEqual(used - self.names, set(), f"{where}: {q!r} uses a metric not exported")
            used_all |= used
        # The panels: endpoint health, connections, failovers, check latency, reloads.
        for m in ("kube_api_lb_endpoint_up", "kube_api_lb_endpoint_active_connections",
                  "kube_api_lb_endpoint_closed_on_down_total",
                  "kube_api_lb_endpoint_health_check_duration_seconds",
                  "kube_api_lb_config_reloads_total"):
            self.assertIn(m, used_all)
        # Per node and fleet-wide.
        self.assertIn("instance", {v["name"] for v in d["templating"]["list"]})
        self.assertEqual(sorted(p["title"] for p in d["panels"] if p["type"] == "row"),
                         ["Fleet", "Node: $instance"])

    def test_scrape_examples(self):
        rc, out = promtool("check", "config", os.path.join(PROM, "scrape-node-local.yaml"))
        self.assertEqual(rc, 0, out)
        with open(os.path.join(PROM, "scrape-kubernetes.yaml")) as f:
            k = yaml.safe_load(f)
        job = k["scrape_configs"][0]
        self.assertEqual(job["kubernetes_sd_configs"][0]["role"], "pod")
        rl = {tuple(r.get("source_labels", [])): r for r in job["relabel_configs"]}
        self.assertEqual(rl[("__meta_kubernetes_pod_label_k8s_app",)]["action"], "keep")
        self.assertEqual(rl[("__meta_kubernetes_pod_host_ip",)]["replacement"], "$1:8081")
        self.assertEqual(rl[("__meta_kubernetes_pod_node_name",)]["target_label"], "instance")
        # The label it selects is the one the manifest generator writes.
        with open(os.path.join(kt.REPO, "manifests", "kube-api-lb.yaml")) as f:
            self.assertIn("k8s-app: kube-api-lb", f.read())


if __name__ == "__main__":
    kt.main()
