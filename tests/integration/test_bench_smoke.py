#!/usr/bin/env python3
"""The benchmark suite itself, scaled down so it runs in about a minute: bench/run.sh (every proxy,
every figure, the report and its raw values), bench/failover.sh (one scenario, kube-api-lb and
nginx), bench/profile.sh (syscalls per request through kube-api-lb and nginx), bench/fleet.py (4
nodes, 21 s), bench/replace.sh (every proxy once, 3 s grace), and the suite's errors for bad knobs. Checks that every figure was measured and the
processes the suite started are gone; it asserts nothing about speed (the machine is shared,
performance is what the full run reports side by side), but it does assert the health checks'
request budget per node, which is a count, not a speed."""
import json
import os
import re
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kal_testlib as kt  # noqa: E402

BENCH = os.path.join(kt.REPO, "bench")
FIGURES = ["ka_rps", "ka_p50", "ka_p99", "cc_cps", "cc_p99", "bulk_mbs", "ll_p50", "ll_p99",
           "rss_idle", "pss_idle", "rss_loaded", "kib_per_conn", "rss_after_burst",
           "rss_after_load", "cpu_per_gb", "cpu_per_10k", "cpu_per_100k_req"]


def workdir():
    """A directory of the test's own, readable by the nginx workers (which may run as another user)
    down to the suite's work directory inside it."""
    os.chmod(kt.tmpdir(), 0o755)
    d = tempfile.mkdtemp(dir=kt.tmpdir())
    os.chmod(d, 0o755)
    return d


def suite_env(d, **extra):
    env = dict(os.environ)
    # The suite's work directories go under d, so its processes' command lines name d.
    env.update({"KAL_BIN": kt.KAL_BIN, "PYTHONDONTWRITEBYTECODE": "1", "TMPDIR": d})
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run(script, env, *args, timeout=600):
    return subprocess.run(["bash", os.path.join(BENCH, script), *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


def own_processes(marker):
    """Processes whose command line mentions marker (the test's directory, where the suite put its
    work directory, configs and certificates)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmd:
            found.append((int(name), cmd))
    return found


def free_backend_port():
    """A port free on 127.0.0.1 and on the three backend addresses."""
    for _ in range(50):
        p = kt.free_port()
        if not any(kt.is_listening(p, h) for h in ("127.0.0.11", "127.0.0.12", "127.0.0.13")):
            return p
    raise AssertionError("no port free on 127.0.0.11-13")


class BenchSmoke(unittest.TestCase):
    def test_run_writes_every_figure_for_every_proxy(self):
        d = workdir()
        out, raw = os.path.join(d, "bench.md"), os.path.join(d, "bench.json")
        port = free_backend_port()
        env = suite_env(d, BENCH_ROUNDS=2, BENCH_DURATION=1, BENCH_CONNS=300, BENCH_BULK_MIB=8,
                        BENCH_BULK_COUNT=2, BENCH_BACKEND_PORT=port, BENCH_OUT=out,
                        BENCH_JSON=raw, KAL_BENCH_ARGS_2="--workers=1")
        r = run("run.sh", env)
        self.assertEqual(r.returncode, 0, r.stdout[-3000:] + r.stderr[-3000:])
        with open(raw) as f:
            data = json.load(f)
        self.assertEqual(data["notes"], [], "the suite noted failures")
        results = data["results"]
        self.assertEqual(sorted(results),
                         sorted(["direct", "kube-api-lb", "kube-api-lb-2", "nginx", "haproxy"]))
        for name, rounds in results.items():
            self.assertEqual(len(rounds), 2, f"{name}: rounds")
            for m in rounds:
                if name == "direct":
                    # No proxy process: only the client-side figures.
                    want = ["ka_rps", "ka_p99", "cc_cps", "bulk_mbs", "ll_p50"]
                else:
                    want = FIGURES
                for key in want:
                    self.assertIn(key, m, f"{name} round {m['round']}: {key} missing")
                    # CPU is counted in clock ticks and a scaled-down step may use none; memory
                    # per connection is a difference of two RSS readings.
                    if key.startswith("cpu_") or key == "kib_per_conn":
                        self.assertIsInstance(m[key], (int, float), f"{name}: {key}")
                    else:
                        self.assertGreater(m[key], 0, f"{name} round {m['round']}: {key}")
                self.assertEqual(m.get("ka_errors", 0) + m.get("cc_errors", 0), 0, name)
                if name != "direct":
                    self.assertEqual(m.get("held"), 300, f"{name}: idle connections held")
                # Every load step ran for every proxy, each at a recorded position.
                self.assertEqual(sorted(m["positions"]),
                                 sorted(["low load", "keep-alive", "new connections", "bulk"]))
        with open(out) as f:
            md = f.read()
        for want in ("Keep-alive small requests", "New connection per request", "Bulk 8 MiB",
                     "RSS per idle connection", "Proxy CPU per 10k new connections",
                     "kal ÷ nginx", "kal ÷ HAProxy", "kube-api-lb --workers=1"):
            self.assertIn(want, md)
        # The report names the machine and the versions compared.
        self.assertRegex(md, r"nginx version: nginx/")
        self.assertRegex(md, r"HAProxy version")
        self.assertEqual(own_processes(d), [], "backend or proxies left running")

    def test_profile_compares_syscalls_with_a_baseline(self):
        d = workdir()
        port = free_backend_port()
        env = suite_env(d, BENCH_DURATION=1, BENCH_BULK_MIB=4, BENCH_BACKEND_PORT=port,
                        PROFILE_OUT=os.path.join(d, "prof"), PROFILE_BASELINES="nginx")
        r = run("profile.sh", env, "syscalls", "keepalive")
        self.assertEqual(r.returncode, 0, r.stdout[-3000:] + r.stderr[-3000:])
        # One section for kube-api-lb and one for nginx, each with per-request syscall counts.
        sections = re.split(r"^== ", r.stdout, flags=re.M)[1:]
        self.assertEqual(len(sections), 2, r.stdout)
        self.assertTrue(sections[0].startswith("syscalls / keepalive:"), sections[0][:200])
        self.assertTrue(sections[1].startswith("syscalls / keepalive (nginx):"), sections[1][:200])
        for s in sections:
            per_req = {m.group(1): float(m.group(2))
                       for m in re.finditer(r"^(\w+)\s+[\d,]+\s+([\d.]+)\s*$", s, re.M)}
            self.assertTrue({"read", "recvfrom", "write", "writev", "sendto"} & set(per_req), s)
        self.assertEqual(own_processes(d), [], "backend or proxies left running")

    @unittest.skipUnless(os.geteuid() == 0, "needs root (network namespace, nft)")
    def test_failover_measures_a_hung_apiserver(self):
        d = workdir()
        out = os.path.join(d, "failover.md")
        port = free_backend_port()
        env = suite_env(d, FAILOVER_TRIALS=1, FAILOVER_WINDOW=8, FAILOVER_SCENARIOS="hung",
                        FAILOVER_PROXIES="kube-api-lb,nginx", FAILOVER_PORT=port,
                        FAILOVER_OUT=out)
        r = run("failover.sh", env)
        self.assertEqual(r.returncode, 0, r.stdout[-3000:] + r.stderr[-3000:])
        with open(out) as f:
            md = f.read()
        raw = json.loads(md.split("```json", 1)[1].split("```", 1)[0])
        for name in ("kube-api-lb", "nginx"):
            (trial,) = raw[name]["hung"]
            self.assertNotIn("error", trial, f"{name}: {trial}")
            self.assertGreater(trial["probes"], 0, name)
        # kube-api-lb's active checks move clients off the hung apiserver within the window; the
        # probes give the time, whatever it is on this machine.
        self.assertIsNotNone(raw["kube-api-lb"]["hung"][0]["avoid_s"])
        self.assertEqual(own_processes(d), [], "proxies or apiservers left running")

    def test_replace_measures_every_proxy(self):
        d = workdir()
        out = os.path.join(d, "replace.json")
        # A 3 s grace keeps it short: nginx (worker_shutdown_timeout 10 s) and HAProxy (its soft stop
        # waits for the watches) are then killed at the grace, as kubelet would.
        env = suite_env(d, REPLACE_TRIALS=1, REPLACE_GRACE=3, REPLACE_DOC="-", REPLACE_JSON=out)
        r = run("replace.sh", env, timeout=300)
        self.assertEqual(r.returncode, 0, r.stdout[-3000:] + r.stderr[-3000:])
        with open(out) as f:
            res = json.load(f)
        self.assertEqual(sorted(res), ["haproxy", "kube-api-lb", "nginx"])
        for name, trials in res.items():
            (t,) = trials
            self.assertGreater(t["ok"], 0, name)  # requests were served before and after
            self.assertGreaterEqual(t["ends"], 6, name)  # every watch ended and reconnected
            self.assertGreaterEqual(t["exit"], 0.0, name)
        self.assertIn("| kube-api-lb |", r.stdout)
        self.assertEqual(own_processes(d), [], "proxies or apiservers left running")

    def test_fleet_counts_checks_per_node(self):
        d = workdir()
        out = os.path.join(d, "fleet.json")
        # The budget, asserted (issue 21): with the defaults a node sends each apiserver one
        # /readyz per 10-12 s (0.089/s measured over 40 nodes x 60 s) and a PING per second. A
        # 21 s window holds at most 3 /readyz per node at >= 10 s spacing, so 3/21 = 0.143 is the
        # most this short run can show: --budget 0.15 is exact for it, not a tolerance (today's
        # 1 s checks show 1.0).
        r = subprocess.run([sys.executable, os.path.join(BENCH, "fleet.py"), "--nodes", "4",
                            "--duration", "21", "--warmup", "1", "--json", out, "--budget",
                            "0.15", "--assert-budget"], env=suite_env(d), capture_output=True,
                           text=True, timeout=180)
        self.assertEqual(r.returncode, 0, r.stdout[-3000:] + r.stderr[-3000:])
        with open(out) as f:
            res = json.load(f)
        self.assertEqual(sorted(res["apiservers"]), ["a", "b", "c"])
        for name, a in res["apiservers"].items():
            # Every node checks every apiserver: some traffic reaches each, whatever the protocol.
            self.assertGreater(a["per_node"]["requests"] + a["per_node"]["pings"], 0, name)
            self.assertLessEqual(a["per_node"]["readyz"], 0.15, name)
            self.assertGreater(a["per_node"]["pings"], 0.7, name)  # PINGs ~1/s per node
            self.assertLess(a["per_node"]["pings"], 1.3, name)
        self.assertEqual(sorted(res["projection"]), ["100", "1000", "5000"])
        for name, sp in res["spread"].items():  # each node's connections were found in /proc
            self.assertEqual(sp["nodes_connected"], 4, name)
        self.assertEqual(r.returncode, 0 if res["verdict"]["ok"] else 1, "--assert-budget")
        self.assertIn("budget:", r.stdout)
        self.assertEqual(own_processes(d), [], "proxies or apiservers left running")

    def test_bad_knobs_are_named(self):
        d = workdir()
        cases = [
            ("run.sh", {"BENCH_ROUNDS": "many"}, "BENCH_ROUNDS='many' is not an integer"),
            ("run.sh", {"BENCH_ROUNDS": "0"}, "BENCH_ROUNDS=0 is outside 1..50"),
            ("run.sh", {"BENCH_PROXIES": "kube-api-lb,envoy"}, "unknown proxy 'envoy'"),
            ("run.sh", {"KAL_BIN": os.path.join(d, "nope")}, "not found or not executable"),
            ("run.sh", {"KAL_BIN_2": os.path.join(d, "nope2")}, "nope2 not found or not executable"),
            ("replace.sh", {"REPLACE_PROXIES": "envoy"}, "unknown proxy 'envoy'"),
            ("replace.sh", {"REPLACE_GRACE": "soon"}, "REPLACE_GRACE='soon' is not an integer"),
        ]
        if os.geteuid() == 0:  # failover.sh checks for root before its knobs
            cases.append(("failover.sh", {"FAILOVER_SCENARIOS": "meteor"},
                          "unknown scenario 'meteor'"))
        for script, extra, want in cases:
            env = suite_env(d, BENCH_OUT=os.path.join(d, "never.md"),
                            FAILOVER_OUT=os.path.join(d, "never.md"))
            env.update(extra)
            r = run(script, env, timeout=60)
            self.assertNotEqual(r.returncode, 0, f"{script} {extra}")
            self.assertIn(want, r.stderr + r.stdout, f"{script} {extra}")
            self.assertNotIn("Traceback", r.stderr, f"{script} {extra}")
        r = run("profile.sh", suite_env(d), "flamegraph", timeout=60)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("unknown profiler 'flamegraph'", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(d, "never.md")))


if __name__ == "__main__":
    kt.main()
