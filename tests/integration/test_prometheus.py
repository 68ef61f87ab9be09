#!/usr/bin/env python3
"""A real Prometheus (Debian's `prometheus`) scrapes a running kube-api-lb in front of three
stand-in apiservers (issue 20). Bounded: about a minute, loopback only, its own temporary storage,
a free port, a 1 s scrape and evaluation interval.

- every series the dashboard and the alert rules name is in Prometheus (queried over its HTTP
  API), and every dashboard query evaluates without error in Prometheus's own engine (the
  Grafana variables replaced by match-all values);
- the alert rules load as shipped (deploy/prometheus/kube-api-lb-rules.yaml) and evaluate with
  no firing alert while all is well;
- one apiserver is killed: KubeApiLbEndpointDown goes pending for that endpoint under the shipped
  rules, and firing under a copy of them whose `for:` is cut to 3 s (the shipped `for: 1m` is
  covered by the promtool unit tests); no alert names the two live endpoints.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import unittest
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kal_testlib as kt  # noqa: E402
import kal_python  # noqa: E402

if not kal_python.ensure("yaml"):
    print("SKIP: python3-yaml is missing (scripts/install-deps.sh installs it)")
    sys.exit(0 if os.environ.get("KAL_ALLOW_SKIP") else 1)
import yaml  # noqa: E402

import kal_live  # noqa: E402
from test_operator_kit import DASHBOARD, METRIC, RULES, all_rules, dashboard_queries  # noqa: E402


class RealPrometheus(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not shutil.which("prometheus"):
            raise AssertionError("prometheus missing: scripts/install-deps.sh installs it")
        cls.live = kal_live.LiveProxy()
        d = os.path.join(kt.tmpdir(), "prometheus")
        os.makedirs(d)
        with open(RULES) as f:
            rules = yaml.safe_load(f)
        fast = {"groups": [{"name": "kube-api-lb-fast", "rules": []}]}
        for r in all_rules(rules):
            r2 = dict(r)
            if "for" in r2:
                r2["for"] = "3s"
            r2["labels"] = dict(r2.get("labels", {}), copy="fast")
            fast["groups"][0]["rules"].append(r2)
        with open(os.path.join(d, "fast-rules.yaml"), "w") as f:
            yaml.safe_dump(fast, f)
        shutil.copy(RULES, os.path.join(d, "kube-api-lb-rules.yaml"))
        cfg = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s",
                       "scrape_timeout": "900ms"},
            "rule_files": ["kube-api-lb-rules.yaml", "fast-rules.yaml"],
            "scrape_configs": [{"job_name": "kube-api-lb",
                                "static_configs": [{"targets": [cls.live.admin],
                                                    "labels": {"instance": "node-1"}}]}],
        }
        with open(os.path.join(d, "prometheus.yml"), "w") as f:
            yaml.safe_dump(cfg, f)
        cls.port = kt.free_port()
        cls.prom = kt.spawn(["prometheus", f"--config.file={d}/prometheus.yml",
                             f"--storage.tsdb.path={d}/data", "--storage.tsdb.retention.time=1h",
                             f"--web.listen-address=127.0.0.1:{cls.port}",
                             "--log.level=warn"],
                            label="prometheus")
        kt.wait_until(lambda: cls.get("/-/ready", raw=True) == 200, 30, what="prometheus ready")

    @classmethod
    def tearDownClass(cls):
        kt.stop(cls.prom)
        cls.live.stop()

    @classmethod
    def get(cls, path, raw=False, **params):
        url = f"http://127.0.0.1:{cls.port}{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                return r.status if raw else json.load(r)
        except urllib.error.HTTPError as e:
            if raw:
                return e.code
            return json.load(e)
        except OSError:
            if raw:
                return None
            raise

    def query(self, q):
        r = self.get("/api/v1/query", query=q)
        self.assertEqual(r.get("status"), "success", f"{q}: {r}")
        return r["data"]["result"]

    def alerts(self):
        return self.get("/api/v1/alerts")["data"]["alerts"]

    def test_scrape_series_and_alert(self):
        # Scraped: the target is up and the endpoints are seen up.
        kt.wait_until(lambda: len(self.query('kube_api_lb_endpoint_up == 1')) == 3, 30,
                      what="three endpoints up in prometheus")
        self.assertEqual(self.query('up{job="kube-api-lb"}')[0]["value"][1], "1")
        with open(DASHBOARD) as f:
            dash = json.load(f)
        with open(RULES) as f:
            rules = yaml.safe_load(f)
        names = set()
        for _, q in dashboard_queries(dash):
            names |= set(METRIC.findall(q))
        for r in all_rules(rules):
            names |= set(METRIC.findall(r["expr"]))
        missing = [n for n in sorted(names) if not self.query(n)]
        self.assertEqual(missing, [], "series the dashboard or rules use, absent in prometheus")
        print(f"{len(names)} series names used by the dashboard and rules, all present",
              flush=True)
        # Every dashboard query runs in Prometheus's engine.
        for where, q in dashboard_queries(dash):
            if q.startswith("label_values("):
                continue  # a Grafana function, not PromQL; its metric was checked above
            pq = q.replace("$__rate_interval", "1m").replace("$job", ".*").replace(
                "$instance", ".*")
            r = self.get("/api/v1/query", query=pq)
            self.assertEqual(r.get("status"), "success", f"{where}: {pq}: {r}")
        # All well: rules loaded, nothing firing or pending.
        groups = self.get("/api/v1/rules")["data"]["groups"]
        self.assertEqual(sorted(g["name"] for g in groups), ["kube-api-lb", "kube-api-lb-fast"])
        for g in groups:
            for r in g["rules"]:
                self.assertEqual(r.get("health"), "ok", f"{r['name']}: {r.get('lastError')}")
        self.assertEqual(self.alerts(), [])

        victim = self.live.apis["b"]
        t0 = time.monotonic()
        victim.proc.send_signal(signal.SIGKILL)

        def state(copy):
            for a in self.alerts():
                lb = a["labels"]
                if lb["alertname"] == "KubeApiLbEndpointDown" and \
                        lb["endpoint"] == victim.endpoint and lb.get("copy") == copy:
                    return a["state"]
            return None
        kt.wait_until(lambda: state(None) == "pending", 20, what="shipped rule pending")
        print(f"KubeApiLbEndpointDown pending after {time.monotonic() - t0:.1f} s", flush=True)
        kt.wait_until(lambda: state("fast") == "firing", 20, what="fast copy firing")
        print(f"KubeApiLbEndpointDown (for: 3s copy) firing after {time.monotonic() - t0:.1f} s",
              flush=True)
        others = {a["labels"].get("endpoint") for a in self.alerts()}
        self.assertEqual(others, {victim.endpoint}, "alerts name only the killed endpoint")
        for a in self.alerts():
            self.assertIn(a["labels"]["alertname"], ("KubeApiLbEndpointDown",))


if __name__ == "__main__":
    kt.main()
