#!/usr/bin/env python3
"""--workers=N: several event loops sharing the listening sockets behave as one proxy — every connection
is served, the counters add up across loops, a hard-down endpoint's connections are closed on every
loop, a reload reaches every loop, and SIGTERM still exits 0."""
import concurrent.futures
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kal_testlib as kt  # noqa: E402

NAMES = ("a", "b", "c")


class Workers(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.certs = kt.make_certs()
        cls.apis = kt.start_apiservers(cls.certs, NAMES)
        cls.eps = [cls.apis[n].endpoint for n in NAMES]

    @classmethod
    def tearDownClass(cls):
        for a in cls.apis.values():
            a.stop()

    def health_flags(self):
        c = self.certs
        return [f"--health-ca-file={c.ca}", f"--health-client-cert={c.health_crt}",
                f"--health-client-key={c.health_key}"]

    def test_connections_spread_over_loops_and_counted_once(self):
        p = kt.Proxy(self.eps, ["--workers=3", "--policy=round-robin"] + self.health_flags())
        try:
            p.wait_ready(15)
            # One listening socket per worker on the same port.
            threads = os.listdir(f"/proc/{p.pid}/task")
            self.assertGreaterEqual(len(threads), 3, "expected a thread per extra worker")
            n = 300

            def one(_):
                return kt.served_by("127.0.0.1", p.port, self.certs)

            with concurrent.futures.ThreadPoolExecutor(16) as ex:
                got = list(ex.map(one, range(n)))
            self.assertEqual(len(got), n)
            self.assertEqual(set(got), set(NAMES), f"not every apiserver served: {set(got)}")
            m = p.metrics()
            # Every connection counted exactly once, whichever loop accepted it.
            total = sum(kt.metric(m, "kube_api_lb_endpoint_connections_total", endpoint=e)
                        for e in self.eps)
            self.assertEqual(total, n)
            self.assertEqual(kt.metric(m, "kube_api_lb_accepted_connections_total"), n)
            self.assertEqual(kt.metric(m, "kube_api_lb_workers"), 3)
        finally:
            p.stop_clean()

    def test_up_to_four_loops_share_one_socket_more_use_reuseport(self):
        """2-4 loops poll one listening socket (whichever is free accepts); above four each loop
        binds its own SO_REUSEPORT socket. Either way every connection is served."""
        if not shutil.which("ss"):
            self.skipTest("ss (iproute2) is not installed")
        for workers, sockets in ((3, 1), (5, 5)):
            p = kt.Proxy(self.eps, [f"--workers={workers}"] + self.health_flags())
            try:
                p.wait_ready(15)
                out = subprocess.run(["ss", "-HltnO", "(", "sport", "=", f":{p.port}", ")"],
                                     capture_output=True, text=True, timeout=10).stdout
                self.assertEqual(len(out.splitlines()), sockets,
                                 f"--workers={workers}: listening sockets:\n{out}")
                got = [kt.served_by("127.0.0.1", p.port, self.certs) for _ in range(20)]
                self.assertEqual(set(got), set(NAMES))
            finally:
                p.stop_clean()

    def test_hard_down_closes_streams_on_every_loop(self):
        victim = kt.FakeApiserver("v", self.certs, listen=["127.0.0.13:0"],
                                  args=["--watch-interval-ms", "100"])
        # A second apiserver, listed after the victim, stays ready and takes no client
        # (--policy=first): a dead verdict closes connections only while another endpoint is
        # ready (issue 21: when none is, the proxy keeps serving through all and closes nothing).
        spare = kt.FakeApiserver("s", self.certs, listen=["127.0.0.12:0"])
        p = kt.Proxy([victim.endpoint, spare.endpoint],
                     ["--workers=2", "--policy=first"] + self.health_flags())
        streams = []
        try:
            p.wait_ready(15)
            kt.wait_until(lambda: all(kt.metric(p.metrics(), "kube_api_lb_endpoint_health_state",
                                                endpoint=e, state="up") == 1
                                      for e in (victim.endpoint, spare.endpoint)), 10,
                          what="both apiservers up before the streams are opened")
            # Enough streams that both loops are likely to hold some (whichever is free accepts).
            for _ in range(12):
                c = kt.HeldConnection("127.0.0.1", p.port, self.certs)
                c.conn.request("GET", "/api/v1/namespaces/default/pods?watch=1")
                r = c.conn.getresponse()
                self.assertEqual(r.status, 200)
                r.readline()
                streams.append((c, r))
            # Hung, not killed: after a kill the kernel resets the streams itself, and a refused
            # connect does not close connections (an apiserver shutting down still serves them).
            # A hang is what only the proxy can end, on every loop.
            t0 = time.monotonic()
            os.kill(victim.proc.pid, signal.SIGSTOP)
            deadline = t0 + 6
            for c, r in streams:
                c.conn.sock.settimeout(max(0.1, deadline - time.monotonic()))
                try:
                    while r.readline():
                        pass
                except (OSError, ValueError):
                    pass
            took = time.monotonic() - t0
            self.assertLess(took, 3.5 if not p.sanitized() else 5,
                            "streams bound to a hung apiserver were not all closed in time")
            self.assertEqual(kt.metric(p.metrics(), "kube_api_lb_endpoint_closed_on_down_total",
                                       endpoint=victim.endpoint), len(streams),
                             "not every stream was closed by the proxy")
        finally:
            for c, _ in streams:
                c.close()
            p.stop_clean()
            victim.stop(signal.SIGKILL)
            spare.stop(signal.SIGKILL)

    def test_reload_reaches_every_loop(self):
        d = kt.tmpdir()
        cfg = os.path.join(d, "config.yaml")

        def write(policy, eps):
            tmp = cfg + ".tmp"
            with open(tmp, "w") as f:
                f.write("apiVersion: kubeapilb.config.k8s.io/v1alpha1\n"
                        "kind: KubeAPILBConfiguration\n"
                        f"policy: {policy}\n"
                        "endpoints:\n" + "".join(f"  - \"{e}\"\n" for e in eps))
            os.rename(tmp, cfg)

        write("round-robin", self.eps)
        p = kt.Proxy(None, [f"--config={cfg}", "--workers=2"] + self.health_flags())
        try:
            p.wait_ready(15)
            write("first", self.eps)
            p.proc.send_signal(signal.SIGHUP)
            kt.wait_until(lambda: kt.metric(p.metrics(), "kube_api_lb_config_reloads_total") >= 1,
                          10, what="the reload")
            # The other loop applies it on its next turn: wait for ten in a row.
            kt.wait_until(lambda: all(kt.served_by("127.0.0.1", p.port, self.certs) == "a"
                                      for _ in range(10)), 5, what="policy first on both loops")
            got = {kt.served_by("127.0.0.1", p.port, self.certs) for _ in range(40)}
            self.assertEqual(got, {"a"}, "policy 'first' not applied on every loop")
        finally:
            p.stop_clean()


if __name__ == "__main__":
    kt.main()
