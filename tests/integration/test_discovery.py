#!/usr/bin/env python3
"""Endpoint discovery from the cluster (issue 18) against TLS stand-in apiservers that serve the
default/kubernetes EndpointSlices from one shared file (the way apiservers share etcd): list,
chunked watch with bookmarks, 410 Gone, ERROR events, malformed and oversize events, a stream cut
mid-event, client-certificate and token auth, RBAC denial.

Every apiserver listens on one port P on its own loopback address (127.0.0.11, .12, ... as
control planes have their own IPs and one port); the slice lists those addresses with port P.

  Lifecycle (one proxy, client traffic throughout, in method order):
    a) discovery lists and watches the seed's three apiservers;
    b) a fourth control plane joins: it gets no traffic until its checks pass, then it does;
    c) it leaves the slice: withdrawn at once (no new connections), removed after the grace
       period and drained;
    d) all three seed control planes are replaced one at a time by new addresses (the sequence
       that left k3s and RKE2 agents stuck), each old one shutting down gracefully as it leaves
       the slice: zero failed requests, no new connection to an apiserver once it left the slice;
    e) the list comes back empty, then the only apiserver left in the slice removes itself:
       nothing dropped, traffic flows;
    f) the watch is cut mid-event, answers 410, an ERROR event, malformed JSON, an oversize event:
       each is logged, discovery lists again and keeps applying changes;
    g) the state file holds the discovered endpoints and the seed they were learned with.
  Restart: a saved state whose endpoints differ from the seed while every seed endpoint is down:
    it serves at once through the saved ones (and discovery works through them, token auth).
  Bad inputs: corrupt state file; read-only state directory; kubeconfig with a bad certificate
    (unparsable, and one signed by another CA); a token without permission (403): each a clear
    log line and a metric, and the proxy serves from the seed throughout.
"""
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kal_testlib as kt  # noqa: E402

MAX_SECONDS = 240  # bound of every background loop
GRACE_S = 2.0
PORT = None  # the one apiserver port, chosen once


def pki():
    """The test PKI with server SANs for every loopback address the tests use."""
    d = os.path.join(kt.tmpdir(), "pki-discovery")
    extra = []
    for i in range(14, 30):
        extra += ["--extra-san", f"IP:127.0.0.{i}"]
    subprocess.run([sys.executable, os.path.join(kt.TOOLS, "gen_certs.py"), d, *extra],
                   check=True, stdout=subprocess.DEVNULL)
    return kt.Certs(d)


def port():
    global PORT
    if PORT is None:
        PORT = kt.free_port()
    return PORT


class Cluster:
    """The shared EndpointSlice file and the stand-in apiservers serving it."""

    def __init__(self, certs, name="c", extra_args=()):
        self.certs = certs
        d = os.path.join(kt.tmpdir(), f"cluster-{name}")
        os.makedirs(d, exist_ok=True)
        self.file = os.path.join(d, "slices.json")
        self.rv = 10
        self.fault_id = 0
        self.members = []
        self.extra = list(extra_args)
        self.apis = {}
        self.write([])

    def write(self, members, fault=None, compacted=0, compacted_status=False):
        self.rv += 1
        self.members = list(members)
        eps = [{"ip": ip, "ready": ready} for ip, ready in
               ((m if isinstance(m, tuple) else (m, True)) for m in members)]
        doc = {"resourceVersion": self.rv, "compactedRV": compacted,
               "compactedStatus": compacted_status,
               "slices": [{"name": "kubernetes", "port": port(), "endpoints": eps}]}
        if fault:
            self.fault_id += 1
            doc["fault"] = {"id": self.fault_id, "kind": fault}
        kt.write_json_atomically(self.file, doc)

    def fault(self, kind):
        self.write(self.members, fault=kind)

    def start(self, ip, name, args=()):
        a = kt.FakeApiserver(name, self.certs, listen=[f"{ip}:{port()}"],
                             args=["--cluster-file", self.file, *self.extra, *args])
        self.apis[ip] = a
        return a


def kubeconfig(path, certs, user_lines):
    with open(path, "w") as f:
        f.write(f"""apiVersion: v1
kind: Config
current-context: discovery
contexts:
- name: discovery
  context: {{cluster: local, user: kal}}
clusters:
- name: local
  cluster:
    server: https://127.0.0.1:6443
    certificate-authority: {certs.ca}
users:
- name: kal
  user:
{user_lines}
""")
    return path


def cert_user(certs):
    return f"    client-certificate: {certs.client_crt}\n    client-key: {certs.client_key}"


def health_args(certs):
    return [f"--health-ca-file={certs.ca}", f"--health-client-cert={certs.health_crt}",
            f"--health-client-key={certs.health_key}", "--health-interval=200ms",
            "--health-readyz-interval=500ms",
            "--health-fast-interval=100ms", "--health-down-interval=200ms",
            "--shutdown-grace=2s", "--drain-timeout=2s"]


def discovery_args(kc, state):
    return ["--discovery=endpointslices", f"--discovery-kubeconfig={kc}",
            f"--state-file={state}", "--discovery-debounce=300ms",
            f"--discovery-grace={int(GRACE_S * 1000)}ms"]


def ep(ip):
    return f"{ip}:{port()}"


class Load:
    """Threads opening new connections through the proxy (GET /version) in a bounded loop;
    results: (t0, server or None, error or None)."""

    def __init__(self, proxy, certs, threads=2):
        self.proxy, self.certs = proxy, certs
        self.results = []
        self.lock = threading.Lock()
        self.halt = threading.Event()
        self.threads = [threading.Thread(target=self.loop, daemon=True) for _ in range(threads)]
        for t in self.threads:
            t.start()

    def loop(self):
        deadline = time.monotonic() + MAX_SECONDS
        while not self.halt.is_set() and time.monotonic() < deadline:
            t0 = time.time()
            server = err = None
            try:
                st, h, _ = kt.https_request("127.0.0.1", self.proxy.port, "/version", self.certs,
                                            timeout=5)
                if st == 200:
                    server = h.get("x-apiserver")
                else:
                    err = f"status {st}"
            except (OSError, ssl.SSLError, ValueError) as e:
                err = repr(e)
            with self.lock:
                self.results.append((t0, server, err))
            time.sleep(0.01)

    def since(self, t):
        with self.lock:
            return [r for r in self.results if r[0] >= t]

    def failures(self):
        with self.lock:
            return [r for r in self.results if r[2]]

    def stop(self):
        self.halt.set()
        for t in self.threads:
            t.join(10)


class Lifecycle(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.certs = pki()
        cls.cluster = Cluster(cls.certs)
        cls.seed_ips = ["127.0.0.11", "127.0.0.12", "127.0.0.13"]
        for i, ip in enumerate(cls.seed_ips):
            cls.cluster.start(ip, "abc"[i], ["--shutdown-delay", "2"])
        cls.cluster.write(cls.seed_ips)
        d = os.path.join(kt.tmpdir(), "lifecycle")
        os.makedirs(d)
        cls.state = os.path.join(d, "state", "discovery.json")
        os.makedirs(os.path.dirname(cls.state))
        kc = kubeconfig(os.path.join(d, "kubeconfig"), cls.certs, cert_user(cls.certs))
        cls.proxy = kt.Proxy([ep(ip) for ip in cls.seed_ips],
                             args=health_args(cls.certs) + discovery_args(kc, cls.state))
        cls.proxy.wait_ready(10)
        cls.load = Load(cls.proxy, cls.certs)

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, "load", None):
            cls.load.stop()

    # ------------------------------------------------------------------ helpers
    def disc(self):
        return self.proxy.stats()["discovery"]

    def endpoints(self):
        return {e["endpoint"]: e for e in self.proxy.stats()["endpoints"]}

    def wait_log(self, pattern, count=1, timeout=15):
        return kt.wait_until(lambda: len(re.findall(pattern, self.proxy.log())) >= count, timeout,
                             what=f"{count} log lines matching {pattern!r}")

    def wait_endpoint(self, ip, pred, timeout=15, what="state"):
        return kt.wait_until(lambda: (self.endpoints().get(ep(ip)) is not None and
                                      pred(self.endpoints()[ep(ip)])), timeout,
                             what=f"{ep(ip)} {what}")

    def assert_no_failures(self, when):
        self.assertEqual(self.load.failures(), [], f"failed client requests {when}")

    # ------------------------------------------------------------------ steps
    def test_a_lists_and_watches(self):
        kt.wait_until(lambda: self.disc()["state"] == "watching", 10, what="discovery watching")
        d = self.disc()
        self.assertGreaterEqual(d["lists"], 1)
        self.assertEqual(d["authFailures"], 0)
        self.assertTrue(d["connectionOpen"])
        eps = self.endpoints()
        self.assertEqual(sorted(eps), sorted(ep(ip) for ip in self.seed_ips))
        for e in eps.values():
            self.assertEqual(e["source"], "seed")
        # Discovery's own connection is no client session: only the load's connections count.
        m = self.proxy.metrics()
        self.assertEqual(kt.metric(m, "kube_api_lb_discovery_connection_open"), 1)
        self.assertIn("source=seed", self.proxy.admin_get("/readyz?verbose")[1])
        self.assert_no_failures("while discovery starts")

    def test_b_fourth_control_plane_gets_traffic_after_its_checks(self):
        applied0 = self.disc()["appliedUpdates"]
        ready = os.path.join(kt.tmpdir(), "d-ready")
        self.cluster.start("127.0.0.14", "d", ["--ready-file", ready, "--shutdown-delay", "2"])
        self.cluster.write(self.seed_ips + ["127.0.0.14"])
        self.wait_endpoint("127.0.0.14", lambda e: e["source"] == "discovered", what="discovered")
        t_added = time.time()
        time.sleep(1.5)  # checked, failing /readyz: no traffic
        self.assertEqual(self.endpoints()[ep("127.0.0.14")]["health"], "down")
        self.assertNotIn("d", {r[1] for r in self.load.since(t_added)},
                         "the new endpoint got traffic before its checks passed")
        open(ready, "w").close()
        self.wait_endpoint("127.0.0.14", lambda e: e["health"] == "up", what="up")
        t_up = time.time()
        kt.wait_until(lambda: "d" in {r[1] for r in self.load.since(t_up)}, 10,
                      what="traffic to the fourth control plane")
        self.assertEqual(kt.metric(self.proxy.metrics(), "kube_api_lb_endpoint_source",
                                   endpoint=ep("127.0.0.14"), source="discovered"), 1)
        # The join was an applied update (issue 18: applied and ignored updates are counted).
        self.assertGreater(self.disc()["appliedUpdates"], applied0)
        self.assertGreater(kt.metric(self.proxy.metrics(),
                                     "kube_api_lb_discovery_applied_updates_total"), applied0)
        self.assertIsNotNone(re.search(r"endpoint added; health-checked before it gets traffic"
                                       r".*127\.0\.0\.14", self.proxy.log()))
        self.assert_no_failures("while a control plane joined")

    def test_c_removed_control_plane_is_withdrawn_then_drains(self):
        # A long-lived connection on d, to see it drained, not cut at once.
        held = None
        for _ in range(40):
            c = kt.HeldConnection("127.0.0.1", self.proxy.port, self.certs)
            if c.whom() == "d":
                held = c
                break
            c.close()
        self.assertIsNotNone(held, "no connection landed on d")
        self.cluster.write(self.seed_ips)
        self.wait_endpoint("127.0.0.14", lambda e: e["withdrawn"], timeout=3, what="withdrawn")
        # The drain signal reaches the health checker (issue 21): held not ready there, so the
        # verdict, the close gate and /readyz see it; nothing is closed.
        self.wait_endpoint("127.0.0.14", lambda e: e["outsideNotReady"], timeout=3,
                           what="held not ready by the health checker")
        t_w = time.time()
        time.sleep(0.3)
        self.assertNotIn("d", {r[1] for r in self.load.since(t_w + 0.1)},
                         "new connections went to an apiserver that left the slice")
        self.assertEqual(held.whom(), "d", "the withdrawn endpoint's connection was closed")
        # Removed after the grace period: draining (removed), then gone.
        self.wait_endpoint("127.0.0.14", lambda e: e["removed"], timeout=GRACE_S + 5,
                           what="removed (draining)")
        self.assertGreaterEqual(time.time() - t_w, GRACE_S - 0.5)
        kt.wait_until(lambda: ep("127.0.0.14") not in self.endpoints(), 10,
                      what="the removed endpoint to finish draining")
        held.close()
        self.cluster.apis["127.0.0.14"].stop()
        self.assert_no_failures("while a control plane left")

    def test_d_every_seed_replaced_one_at_a_time(self):
        members = list(self.seed_ips)
        for old, new, name in zip(self.seed_ips, ["127.0.0.15", "127.0.0.16", "127.0.0.17"],
                                  "efg"):
            self.cluster.start(new, name, ["--shutdown-delay", "2"])
            members.append(new)
            self.cluster.write(members)
            self.wait_endpoint(new, lambda e: e["health"] == "up", what="up")
            # The old one shuts down as an apiserver does: it leaves the slice and fails /readyz
            # at once, serves for its shutdown delay, then stops.
            old_api = self.cluster.apis[old]
            members.remove(old)
            os.kill(old_api.proc.pid, signal.SIGTERM)
            self.cluster.write(members)
            self.wait_endpoint(old, lambda e: e["withdrawn"], timeout=3, what="withdrawn")
            t_w = time.time()
            old_name = "abc"[self.seed_ips.index(old)]
            time.sleep(1.0)
            late = [r for r in self.load.since(t_w + 0.1) if r[1] == old_name]
            self.assertEqual(late, [], f"new connections to {old} after it left the slice")
            old_api.proc.wait(15)
        # Every seed is gone; the three new apiservers serve; the seeds stay (never removed).
        eps = self.endpoints()
        for ip in self.seed_ips:
            self.assertIn(ep(ip), eps)
            self.assertEqual(eps[ep(ip)]["source"], "seed")
        t = time.time()
        kt.wait_until(lambda: {"e", "f", "g"} <= {r[1] for r in self.load.since(t)}, 10,
                      what="traffic to all three new control planes")
        self.assert_no_failures("while every seed control plane was replaced")
        self.assertEqual(self.disc()["state"], "watching")

    def test_e_empty_list_and_last_apiserver_leaving_drop_nothing(self):
        before = {k: e["withdrawn"] for k, e in self.endpoints().items()}
        ignored = self.disc()["ignoredUpdates"]
        self.cluster.write([])
        kt.wait_until(lambda: self.disc()["ignoredUpdates"] > ignored, 5,
                      what="the empty list to be ignored")
        time.sleep(GRACE_S + 1)
        self.assertEqual({k: e["withdrawn"] for k, e in self.endpoints().items()}, before,
                         "an empty list changed the endpoint list or withdrew an endpoint")
        # Only e is listed; then e leaves too (its own shutdown): ignored, e still serves.
        self.cluster.write(["127.0.0.15"])
        self.wait_endpoint("127.0.0.16", lambda e: e["withdrawn"], timeout=3, what="withdrawn")
        ignored = self.disc()["ignoredUpdates"]
        self.cluster.write([("127.0.0.15", False)])
        kt.wait_until(lambda: self.disc()["ignoredUpdates"] > ignored, 5,
                      what="the slice with no ready endpoint to be ignored")
        time.sleep(GRACE_S + 1)
        self.assertIn(ep("127.0.0.15"), self.endpoints())
        self.assertFalse(self.endpoints()[ep("127.0.0.15")]["withdrawn"])
        t = time.time()
        kt.wait_until(lambda: len(self.load.since(t)) > 20, 10, what="traffic")
        self.assert_no_failures("with an empty list")
        self.assertEqual(self.proxy.admin_get("/readyz")[0], 200)
        # Back to three (16 and 17 were let go after the grace period): added again.
        self.cluster.write(["127.0.0.15", "127.0.0.16", "127.0.0.17"])
        for ip in ("127.0.0.16", "127.0.0.17"):
            self.wait_endpoint(ip, lambda e: not e["withdrawn"] and not e["removed"],
                               what="added again")

    def fault_then_change(self, kind, log_pattern):
        d0 = self.disc()
        self.cluster.fault(kind)
        self.wait_log(log_pattern)
        kt.wait_until(lambda: self.disc()["lists"] > d0["lists"] and
                      self.disc()["state"] == "watching", 15,
                      what=f"discovery to list and watch again after {kind}")
        self.wait_endpoint("127.0.0.16", lambda e: not e["withdrawn"] and not e["removed"],
                           what="listed")
        # Changes still apply: 16 leaves (withdrawn at once) and comes back.
        self.cluster.write(["127.0.0.15", "127.0.0.17"])
        self.wait_endpoint("127.0.0.16", lambda e: e["withdrawn"], timeout=5, what="withdrawn")
        self.cluster.write(["127.0.0.15", "127.0.0.16", "127.0.0.17"])
        self.wait_endpoint("127.0.0.16", lambda e: not e["withdrawn"], timeout=5,
                           what="back")

    def test_f_watch_faults(self):
        kt.wait_until(lambda: self.disc()["state"] == "watching", 10, what="watching")
        self.fault_then_change("cut", r"watch stream was cut mid-event")
        self.fault_then_change("410", r"ERROR event: 410")
        self.fault_then_change("error", r"ERROR event: 500")
        self.fault_then_change("malformed", r"malformed watch event")
        self.fault_then_change("oversize", r"event larger than 1048576 bytes")
        # The watch refused with an HTTP 410 answer (not an ERROR event): every watch from the
        # listed version is too old while the history is compacted past it; the client relists
        # (with backoff) and resumes once it is not.
        d0 = self.disc()
        gone = r"410 Gone: the resourceVersion is too old; listing again"
        n = len(re.findall(gone, self.proxy.log()))
        self.cluster.write(self.cluster.members, fault="cut", compacted=self.cluster.rv + 1000,
                           compacted_status=True)
        self.wait_log(gone, count=n + 1)
        self.cluster.write(self.cluster.members)
        kt.wait_until(lambda: self.disc()["lists"] > d0["lists"] and
                      self.disc()["state"] == "watching", 40,
                      what="discovery to list and watch again after HTTP 410")
        self.assertGreater(self.disc()["watchRestarts"], d0["watchRestarts"])
        d = self.disc()
        self.assertGreaterEqual(d["watchRestarts"], 2)
        self.assertGreaterEqual(d["malformedEvents"], 1)
        self.assertGreaterEqual(d["oversizeEvents"], 1)
        m = self.proxy.metrics()
        self.assertGreaterEqual(kt.metric(m, "kube_api_lb_discovery_oversize_events_total"), 1)
        self.assert_no_failures("through watch faults")

    def test_g_state_file(self):
        import json
        with open(self.state) as f:
            st = json.load(f)
        self.assertEqual(st["formatVersion"], 1)
        self.assertEqual(sorted(st["seed"]), sorted(ep(ip) for ip in self.seed_ips))
        self.assertEqual(sorted(st["endpoints"]),
                         sorted(ep(ip) for ip in ("127.0.0.15", "127.0.0.16", "127.0.0.17")))
        self.assertEqual([f for f in os.listdir(os.path.dirname(self.state))],
                         ["discovery.json"], "a temporary file was left behind")
        self.assertGreaterEqual(self.disc()["stateWrites"], 1)

    def test_z_clean_exit(self):
        self.load.stop()
        self.assert_no_failures("at the end")
        n = len(self.load.results)
        self.assertGreater(n, 100)
        print(f"  client requests through the proxy: {n}, failed: 0", file=sys.stderr)
        self.proxy.stop_clean()


class Restart(unittest.TestCase):
    def test_saved_state_serves_at_once_when_every_seed_is_down(self):
        certs = pki()
        cluster = Cluster(certs, "restart", ["--no-client-cert-required",
                                             "--token", "tok-ok=kube-api-lb-discovery",
                                             "--endpointslices-allow", "kube-api-lb-discovery"])
        cluster.start("127.0.0.21", "x")
        cluster.start("127.0.0.22", "y")
        cluster.write(["127.0.0.21", "127.0.0.22"])
        seed = [ep(ip) for ip in ("127.0.0.11", "127.0.0.12", "127.0.0.13")]  # nothing listens
        d = os.path.join(kt.tmpdir(), "restart")
        os.makedirs(d)
        state = os.path.join(d, "discovery.json")
        kt.write_json_atomically(state, {
            "kind": "KubeAPILBDiscoveryState", "formatVersion": 1, "seed": seed,
            "endpoints": [ep("127.0.0.21"), ep("127.0.0.22")], "savedAt": "t"})
        kc = kubeconfig(os.path.join(d, "kubeconfig"), certs, "    token: tok-ok")
        t0 = time.monotonic()
        p = kt.Proxy(seed, args=health_args(certs) + discovery_args(kc, state))
        p.wait_ready(5)
        ready_after = time.monotonic() - t0
        who = kt.served_by("127.0.0.1", p.port, certs)
        self.assertIn(who, ("x", "y"))
        # It started with the saved endpoints in its list, before discovery had said anything.
        started = [l for l in p.log().splitlines() if 'msg="kube-api-lb started"' in l][0]
        self.assertIn(ep("127.0.0.21"), started)
        self.assertIn(ep("127.0.0.22"), started)
        self.assertIn("serving from the seed and the saved state", p.log())
        eps = {e["endpoint"]: e for e in p.stats()["endpoints"]}
        self.assertIn(eps[ep("127.0.0.21")]["source"], ("saved", "discovered"))
        # Discovery works through a saved endpoint (token auth) and confirms it.
        kt.wait_until(lambda: p.stats()["discovery"]["state"] == "watching", 10,
                      what="discovery through the saved endpoints")
        kt.wait_until(lambda: {e["endpoint"]: e for e in p.stats()["endpoints"]}
                      [ep("127.0.0.21")]["source"] == "discovered", 5, what="confirmed")
        # Discovery's own connection is counted as its own, never as a client session: with the
        # one client above gone, no session is open while discovery's connection is.
        kt.wait_until(lambda: p.stats()["activeConnections"] == 0, 5,
                      what="the client's session to end")
        st = p.stats()
        self.assertTrue(st["discovery"]["connectionOpen"], st["discovery"])
        m = p.metrics()
        self.assertEqual(kt.metric(m, "kube_api_lb_discovery_connection_open"), 1)
        self.assertEqual(sum(e["activeConnections"] for e in st["endpoints"]), 0, st["endpoints"])
        # Its last successful sync (issue 18), in /stats and /metrics.
        self.assertLess(abs(time.time() - st["discovery"]["lastSyncSeconds"]), 30, st["discovery"])
        self.assertLess(abs(time.time() - kt.metric(
            m, "kube_api_lb_discovery_last_sync_timestamp_seconds")), 30)
        print(f"  ready {ready_after:.2f}s after start with every seed endpoint down",
              file=sys.stderr)
        p.stop_clean()


class KilledWhileSaving(unittest.TestCase):
    """SIGKILL of kube-api-lb while it saves the discovery state (issue 19, "at the limits"):
    strace, attached to the running proxy and following only the state file, its temporary file
    and its directory, delivers SIGKILL at the chosen system call of the save. The state file is
    then the old one or the new one, whole, and a new process starts from it."""

    @classmethod
    def setUpClass(cls):
        if not shutil.which("strace"):
            raise unittest.SkipTest("strace is not installed (scripts/install-deps.sh installs it)")
        cls.certs = pki()
        cls.cluster = Cluster(cls.certs, "killed")
        cls.cluster.start("127.0.0.27", "k1")
        cls.cluster.start("127.0.0.28", "k2")
        cls.cluster.write(["127.0.0.27", "127.0.0.28"])
        cls.seed = [ep("127.0.0.27")]
        cls.old = {"kind": "KubeAPILBDiscoveryState", "formatVersion": 1, "seed": cls.seed,
                   "endpoints": [ep("127.0.0.27"), ep("127.0.0.29")], "savedAt": "old"}

    def run_killed(self, name, call, when):
        d = os.path.join(kt.tmpdir(), f"killed-{name}")
        os.makedirs(d)
        state = os.path.join(d, "discovery.json")
        kt.write_json_atomically(state, self.old)
        kc = kubeconfig(os.path.join(kt.tmpdir(), f"kc-killed-{name}"), self.certs,
                        cert_user(self.certs))
        # A 2 s debounce: strace is attached long before the save.
        args = health_args(self.certs) + [
            "--discovery=endpointslices", f"--discovery-kubeconfig={kc}",
            f"--state-file={state}", "--discovery-debounce=2s", "--discovery-grace=5s"]
        p = kt.Proxy(self.seed, args=args)
        p.wait_up(10)  # it has read the state file: what strace sees next is the save
        pid = p.proc.pid
        tracer = subprocess.Popen(
            ["strace", "-f", "-qq", "-o", "/dev/null", "-p", str(pid),
             "-P", state, "-P", f"{state}.tmp.{pid}", "-P", d,
             "-e", "trace=openat,write,fsync,rename",
             "-e", f"inject={call}:signal=SIGKILL:when={when}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def traced():
            with open(f"/proc/{pid}/status") as f:
                return any(l.startswith("TracerPid:") and l.split()[1] != "0" for l in f)
        try:
            kt.wait_until(traced, 10, what="strace attached")
            status = p.proc.wait(timeout=30)
        finally:
            if tracer.poll() is None:
                tracer.kill()
            tracer.wait(timeout=10)
        self.assertEqual(status, -signal.SIGKILL, f"{name}: the injected SIGKILL did not happen")
        self.assertIn("applied once the change holds", p.log(), f"{name}: killed before the save")
        with open(state) as f:
            saved = json.load(f)  # whole: it parses
        # A new process starts from it (no "cannot be used" warning) and serves.
        q = kt.Proxy(self.seed, args=health_args(self.certs) + discovery_args(kc, state))
        q.wait_ready(10)
        self.assertNotIn("cannot be used", q.log())
        self.assertIn(kt.served_by("127.0.0.1", q.port, self.certs), ("k1", "k2"))
        q.stop_clean()
        return saved

    def test_sigkill_before_the_rename_keeps_the_old_state_whole(self):
        for call in ("openat", "write", "fsync", "rename"):
            saved = self.run_killed(call, call, 1)
            self.assertEqual(saved, self.old, f"killed at {call}: the state file changed")

    def test_sigkill_after_the_rename_has_the_new_state_whole(self):
        # The second fsync is the directory's, after the rename.
        saved = self.run_killed("dir-fsync", "fsync", 2)
        self.assertEqual(sorted(saved["endpoints"]), [ep("127.0.0.27"), ep("127.0.0.28")])


class ReloadWithDiscovery(unittest.TestCase):
    def test_seed_changes_and_discovery_turns_off_by_reload(self):
        """A config-file reload changes the seed under discovery, then turns discovery off."""
        certs = pki()
        cluster = Cluster(certs, "reload")
        cluster.start("127.0.0.25", "r1")
        cluster.start("127.0.0.26", "r2")
        cluster.write(["127.0.0.25"])
        d = os.path.join(kt.tmpdir(), "reload")
        os.makedirs(d)
        kc = kubeconfig(os.path.join(d, "kubeconfig"), certs, cert_user(certs))
        path = os.path.join(d, "config.yaml")
        port, admin = kt.free_port(), kt.free_port()

        def write(seed, mode="endpointslices"):
            disc = (f"discovery: {{mode: {mode}, kubeconfig: {kc}, "
                    f"stateFile: {d}/state.json, debounce: 300ms, grace: 1s}}\n"
                    if mode != "none" else "")
            text = (f"apiVersion: kubeapilb.config.k8s.io/v1alpha1\n"
                    f"kind: KubeAPILBConfiguration\nlisten: [\"127.0.0.1:{port}\"]\n"
                    f"endpoints: [{', '.join(chr(34) + ep(s) + chr(34) for s in seed)}]\n"
                    f"healthCheck: {{caFile: {certs.ca}, clientCert: {certs.health_crt}, "
                    f"clientKey: {certs.health_key}, interval: 200ms, fastInterval: 100ms, "
                    f"readyzInterval: 500ms}}\n{disc}"
                    f"admin: {{listen: [\"127.0.0.1:{admin}\"]}}\n")
            with open(path + ".tmp", "w") as f:
                f.write(text)
            os.rename(path + ".tmp", path)
        write(["127.0.0.25"])
        p = kt.Proxy.__new__(kt.Proxy)
        p.port, p.admin_port, p.listen, p.host = port, admin, [f"127.0.0.1:{port}"], "127.0.0.1"
        p.proc = kt.spawn(kt.proxy_cmd(f"--config={path}"), label="kube-api-lb-reload")
        p.wait_up(10)
        kt.wait_until(lambda: p.stats()["discovery"].get("state") == "watching", 10,
                      what="discovery watching")

        def eps():
            return {e["endpoint"]: e for e in p.stats()["endpoints"] if not e["removed"]}
        # New seed r2 (not listed by discovery); r1 leaves the seed but discovery lists it.
        write(["127.0.0.26"])
        kt.wait_until(lambda: set(eps()) == {ep("127.0.0.25"), ep("127.0.0.26")}, 10,
                      what="the new seed next to the discovered endpoint")
        self.assertEqual(eps()[ep("127.0.0.26")]["source"], "seed")
        self.assertEqual(eps()[ep("127.0.0.25")]["source"], "discovered")
        # Discovery off: the endpoints are the configured ones again.
        write(["127.0.0.26"], mode="none")
        kt.wait_until(lambda: set(eps()) == {ep("127.0.0.26")}, 10, what="discovery off")
        self.assertFalse(p.stats()["discovery"]["enabled"])
        self.assertEqual(kt.served_by("127.0.0.1", port, certs), "r2")
        p.stop_clean()


class BadInputs(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.certs = pki()
        cls.cluster = Cluster(cls.certs, "bad", ["--no-client-cert-required",
                                                 "--token", "tok-ok=kube-api-lb-discovery",
                                                 "--token", "tok-weak=someone",
                                                 "--endpointslices-allow",
                                                 "kube-api-lb-discovery"])
        cls.api = cls.cluster.start("127.0.0.23", "solo")
        cls.cluster.write(["127.0.0.23", "127.0.0.24"])
        cls.dir = os.path.join(kt.tmpdir(), "bad")
        os.makedirs(cls.dir)

    def run_proxy(self, name, user_lines, state, wrap=None):
        kc = kubeconfig(os.path.join(self.dir, f"kc-{name}"), self.certs, user_lines)
        args = health_args(self.certs) + discovery_args(kc, state)
        p = kt.Proxy([ep("127.0.0.23")], args=args, wait=wrap is None) if wrap is None else \
            wrap(args)
        p.wait_ready(10)
        self.assertEqual(kt.served_by("127.0.0.1", p.port, self.certs), "solo")
        return p

    def test_corrupt_state_file(self):
        state = os.path.join(self.dir, "corrupt.json")
        with open(state, "w") as f:
            f.write('{"kind": "KubeAPILBDiscoveryState", "formatVers')
        p = self.run_proxy("corrupt", "    token: tok-ok", state)
        self.assertRegex(p.log(), r"state file cannot be used.*state file " + re.escape(state) +
                         r": not JSON")
        self.assertEqual(p.stats()["discovery"]["savedState"][:6], "error:")
        # Discovery rewrites it once something changes.
        kt.wait_until(lambda: p.stats()["discovery"]["stateWrites"] >= 1, 10,
                      what="the state file rewritten")
        import json
        with open(state) as f:
            self.assertEqual(json.load(f)["formatVersion"], 1)
        p.stop_clean()

    def test_read_only_state_directory(self):
        ro = os.path.join(self.dir, "ro")
        os.makedirs(ro)
        state = os.path.join(ro, "discovery.json")
        if os.geteuid() == 0:
            # A read-only bind mount in a mount namespace of the proxy's own (EROFS, as a
            # read-only hostPath would give); root ignores permission bits.
            def wrap(args):
                port, admin = kt.free_port(), kt.free_port()
                cmd = ["unshare", "-m", "--propagation", "private", "sh", "-c",
                       f'mount --bind -o ro "{ro}" "{ro}" && exec "$0" "$@"', kt.KAL_BIN,
                       f"--endpoints={ep('127.0.0.23')}", f"--listen=127.0.0.1:{port}",
                       f"--admin-listen=127.0.0.1:{admin}", *args]
                p = kt.Proxy.__new__(kt.Proxy)
                p.port, p.admin_port, p.listen = port, admin, [f"127.0.0.1:{port}"]
                p.host = "127.0.0.1"
                p.proc = kt.spawn(cmd, label="kube-api-lb-ro")
                p.wait_up(10)
                return p
        else:
            os.chmod(ro, 0o555)
            wrap = None
        p = self.run_proxy("ro", "    token: tok-ok", state, wrap)
        kt.wait_until(lambda: p.stats()["discovery"]["stateWriteFailures"] >= 1, 10,
                      what="a failed state write")
        self.assertRegex(p.log(), r"cannot write the state file; serving on without it")
        self.assertEqual(kt.metric(p.metrics(),
                                   "kube_api_lb_discovery_state_write_failures_total"), 1)
        self.assertEqual(kt.served_by("127.0.0.1", p.port, self.certs), "solo")
        p.stop_clean()

    def test_kubeconfig_with_a_bad_certificate(self):
        # Not a certificate at all: named at start, the proxy serves from the seed.
        garbage = "    client-certificate-data: bm90IGEgY2VydGlmaWNhdGU=\n" \
                  "    client-key-data: bm90IGEga2V5"
        p = self.run_proxy("garbage", garbage, os.path.join(self.dir, "g.json"))
        self.assertRegex(p.log(), r"cannot use the kubeconfig.*the client certificate is not a "
                                  r"PEM certificate")
        self.assertEqual(p.stats()["discovery"]["state"], "error")
        p.stop_clean()
        # A real certificate from another CA: the apiserver rejects the handshake.
        other = os.path.join(self.dir, "other-pki")
        subprocess.run([sys.executable, os.path.join(kt.TOOLS, "gen_certs.py"), other],
                       check=True, stdout=subprocess.DEVNULL)
        strange = f"    client-certificate: {other}/client.crt\n" \
                  f"    client-key: {other}/client.key"
        p = self.run_proxy("strange", strange, os.path.join(self.dir, "s.json"))
        kt.wait_until(lambda: re.search(r"discovery: listing again after a backoff.*(TLS|read "
                                        r"from|unknown ca|alert)", p.log()), 10,
                      what="the rejected certificate to be logged")
        self.assertGreaterEqual(p.stats()["discovery"]["failures"], 1)
        self.assertEqual(kt.served_by("127.0.0.1", p.port, self.certs), "solo")
        p.stop_clean()

    def test_token_without_permission(self):
        token = os.path.join(self.dir, "token")
        with open(token, "w") as f:
            f.write("tok-weak\n")
        p = self.run_proxy("weak", f"    tokenFile: {token}", os.path.join(self.dir, "w.json"))
        kt.wait_until(lambda: "permission denied (403)" in p.log(), 10, what="the 403 log line")
        line = [l for l in p.log().splitlines() if "permission denied (403)" in l][0]
        self.assertIn("endpointslices.discovery.k8s.io in namespace default", line)
        self.assertIn('User \\"someone\\" cannot list resource', line)
        m = p.metrics()
        self.assertGreaterEqual(kt.metric(m, "kube_api_lb_discovery_auth_failures_total"), 1)
        self.assertEqual(kt.metric(m, "kube_api_lb_discovery_state", state="unauthorized"), 1)
        self.assertEqual(kt.served_by("127.0.0.1", p.port, self.certs), "solo")
        # The token file is rotated to one with the permission: taken up at the next attempt.
        with open(token + ".tmp", "w") as f:
            f.write("tok-ok\n")
        os.rename(token + ".tmp", token)
        kt.wait_until(lambda: p.stats()["discovery"]["state"] == "watching", 40,
                      what="discovery to recover with the rotated token")
        # An unknown token is 401, named as such.
        p.stop_clean()
        p = self.run_proxy("unknown", "    token: nobody-knows-me", os.path.join(self.dir, "u.json"))
        kt.wait_until(lambda: "did not accept the kubeconfig's credentials (401)" in p.log(), 10,
                      what="the 401 log line")
        p.stop_clean()


if __name__ == "__main__":
    kt.main()
