#!/usr/bin/env python3
"""Overload (issue 21): apiservers that keep serving every request normally but answer /readyz
slowly (CPU-saturated, a slow etcd probe: ordinary under load). A slow /readyz is a readiness
signal, never proof of death: the proxy closes no connection, no request fails, and new connections
avoid the slow apiservers while a fast one exists. When all of them are slow it keeps serving
through all of them (fail-open), still closing nothing.

Three HTTP/2 stand-in apiservers (tests/tools/fake_apiserver.py, control=True) on loopback behind
one kube-api-lb with its defaults but --health-readyz-interval=2s (so a phase takes seconds, not
tens of seconds: what is tested here is the verdict, not the budget; bench/fleet.py measures that).
Nine watch streams through the proxy (three on each apiserver, least-conn) stay open for the whole
run and must never end; a client makes a new connection for GET /version every 50 ms and records
who answered. Phases, each at 600 ms and at 1.5 s: one of three slow (its /readyz answers after the
delay; the checker's timeout is 400 ms), then all three. After each phase the delay goes back to 0
and every endpoint comes back up.
"""
import os
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kal_testlib as kt  # noqa: E402

SANITIZED = os.environ.get("KAL_SANITIZED") == "1"
FACTOR = 1.5 if SANITIZED else 1.0
NAMES = ("a", "b", "c")
READYZ_INTERVAL = 2.0
# A slow /readyz is seen at the next /readyz (<= 2.2 s), confirmed 250 ms later (fall 2).
DETECT = (READYZ_INTERVAL * 1.1 + 3.0) * FACTOR


class Watch(threading.Thread):
    """A watch stream through the proxy on its own connection; reads until it ends."""

    def __init__(self, port, certs):
        super().__init__(daemon=True)
        ctx = kt.client_context(certs)
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        self.sock.sendall(b"GET /api/v1/namespaces/default/pods?watch=1&intervalMs=200 HTTP/1.1\r\n"
                          b"Host: kubernetes\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise AssertionError("watch closed before its head")
            head += chunk
        self.server = None
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"x-apiserver:"):
                self.server = line.split(b":", 1)[1].strip().decode()
        self.bytes = len(head)
        self.ended = None  # (time, why) once it ended
        self.stop = False

    def run(self):
        self.sock.settimeout(1.0)
        while not self.stop:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError as e:
                self.ended = (time.time(), repr(e))
                return
            if not data:
                self.ended = (time.time(), "EOF")
                return
            self.bytes += len(data)

    def close(self):
        self.stop = True
        self.join(5)
        self.sock.close()


class Requests(threading.Thread):
    """GET /version on a new connection every 50 ms; records (time, server or error)."""

    def __init__(self, port, certs):
        super().__init__(daemon=True)
        self.port, self.certs = port, certs
        self.log = []
        self.stop = False

    def run(self):
        while not self.stop:
            t = time.time()
            try:
                self.log.append((t, kt.served_by("127.0.0.1", self.port, self.certs, timeout=5)))
            except Exception as e:  # noqa: BLE001 - every failure counts
                self.log.append((t, f"ERROR {e!r}"))
            time.sleep(0.05)

    def between(self, t0, t1):
        return [w for t, w in self.log if t0 <= t <= t1]


class HealthOverload(unittest.TestCase):
    def setUp(self):
        self.certs = kt.make_certs()
        self.apis = {n: kt.FakeApiserver(n, self.certs, control=True) for n in NAMES}
        for a in self.apis.values():
            self.addCleanup(a.stop)
        self.ep = {n: a.endpoint for n, a in self.apis.items()}
        self.p = kt.Proxy([self.ep[n] for n in NAMES], [
            f"--health-ca-file={self.certs.ca}", f"--health-client-cert={self.certs.health_crt}",
            f"--health-client-key={self.certs.health_key}",
            f"--health-readyz-interval={READYZ_INTERVAL:g}s"])
        self.addCleanup(self.p.stop_clean)
        self.p.wait_ready()
        self.wait_states({n: "up" for n in NAMES}, 10)

    def state(self, m, n):
        return "up" if kt.metric(m, "kube_api_lb_endpoint_health_state", endpoint=self.ep[n],
                                 state="up") == 1 else "not-up"

    def wait_states(self, want, timeout):
        def ok():
            m = self.p.metrics()
            return all(self.state(m, n) == s for n, s in want.items())
        kt.wait_until(ok, timeout * FACTOR, interval=0.1, what=f"endpoint states {want}")

    def assert_alive(self, names, when):
        """Slow /readyz is a readiness signal, never proof of death: the dead verdict holds these
        endpoints alive, and the close gate was never even asked to close (a wrong dead verdict
        would be held back by it while no endpoint is ready, and cut nothing: this sees it)."""
        eps = {e["endpoint"]: e for e in self.p.stats()["endpoints"]}
        for n in names:
            e = eps[self.ep[n]]
            self.assertTrue(e["alive"], f"{n} judged dead {when}: {e}")
            self.assertEqual(e["closesPrevented"], 0, f"a close of {n} was attempted {when}")

    def closed_on_down(self):
        m = self.p.metrics()
        return {n: kt.metric(m, "kube_api_lb_endpoint_closed_on_down_total", endpoint=self.ep[n])
                for n in NAMES}

    def test_slow_readyz_closes_nothing_and_steers_new_connections(self):
        watches = [Watch(self.p.port, self.certs) for _ in range(9)]
        for w in watches:
            w.start()
        self.addCleanup(lambda: [w.close() for w in watches])
        on = {n: sum(1 for w in watches if w.server == n) for n in NAMES}
        self.assertEqual(on, {"a": 3, "b": 3, "c": 3}, "least-conn spreads the watches")
        req = Requests(self.p.port, self.certs)
        req.start()
        self.addCleanup(lambda: setattr(req, "stop", True))
        report = []
        for delay in (600, 1500):
            # One of three slow: it goes not ready; new connections go to the two others.
            t0 = time.time()
            self.apis["a"].set_mode(readyz_delay_ms=delay)
            self.wait_states({"a": "not-up", "b": "up", "c": "up"}, DETECT)
            t_seen = time.time()
            time.sleep(2.0)
            self.assert_alive(["a"], f"while slow ({delay} ms)")
            t1 = time.time()
            steered = req.between(t_seen + 0.2, t1)
            self.assertTrue(steered, "no request ran while a was slow")
            self.assertNotIn("a", steered, f"a new connection went to slow a ({delay} ms)")
            report.append(f"one slow ({delay} ms): not ready after {t_seen - t0:.2f}s, "
                          f"{len(steered)} new connections all to b/c")
            self.apis["a"].set_mode(readyz_delay_ms=0)
            self.wait_states({n: "up" for n in NAMES}, DETECT)
            # All three slow: all not ready, the proxy keeps serving through all of them.
            t0 = time.time()
            for n in NAMES:
                self.apis[n].set_mode(readyz_delay_ms=delay)
            self.wait_states({n: "not-up" for n in NAMES}, DETECT)
            t_seen = time.time()
            time.sleep(2.0)
            self.assert_alive(NAMES, f"while all were slow ({delay} ms)")
            served = req.between(t_seen, time.time())
            self.assertTrue(served, "no request ran while all were slow")
            report.append(f"all slow ({delay} ms): not ready after {t_seen - t0:.2f}s, "
                          f"{len(served)} requests served by {sorted(set(served))}")
            for n in NAMES:
                self.apis[n].set_mode(readyz_delay_ms=0)
            self.wait_states({n: "up" for n in NAMES}, DETECT)
        req.stop = True
        req.join(10)
        failed = [w for _, w in req.log if w.startswith("ERROR")]
        self.assertEqual(failed, [], f"{len(failed)} of {len(req.log)} requests failed")
        ended = [(w.server, w.ended) for w in watches if w.ended]
        self.assertEqual(ended, [], "a watch ended during the overload")
        self.assertEqual(self.closed_on_down(), {n: 0 for n in NAMES})
        stats = self.p.stats()
        eps = stats.get("endpoints", stats) if isinstance(stats, dict) else stats
        alive = {e["endpoint"]: e.get("alive") for e in eps} if isinstance(eps, list) else {}
        self.assertTrue(all(alive.values()), f"a slow apiserver was judged dead: {alive}")
        print("\n".join(["", "overload results:", *report,
                         f"{len(req.log)} requests, 0 failed; 9 watches, none ended; "
                         "closed_on_down 0 for every endpoint"]), flush=True)


if __name__ == "__main__":
    kt.main()
