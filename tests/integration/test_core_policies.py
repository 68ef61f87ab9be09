#!/usr/bin/env python3
"""Balancing policies over three TLS stand-in apiservers, the admin endpoints and their counters,
and graceful SIGTERM."""
import collections
import json
import os
import signal
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kal_testlib as kt  # noqa: E402

NAMES = ("a", "b", "c")


def health_flags(certs):
    return [f"--health-ca-file={certs.ca}", f"--health-client-cert={certs.health_crt}",
            f"--health-client-key={certs.health_key}"]


def wait_all_up(proxy, endpoints, timeout=15):
    def up():
        m = proxy.metrics()
        return all(kt.metric(m, "kube_api_lb_endpoint_up", endpoint=e) == 1 for e in endpoints)
    kt.wait_until(up, timeout, interval=0.1, what=f"all of {endpoints} to be up")


class Policies(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.certs = kt.make_certs()
        # Distinct loopback addresses, like the demo control plane.
        cls.apis = kt.start_apiservers(cls.certs, NAMES)
        cls.eps = [cls.apis[n].endpoint for n in NAMES]

    def start(self, policy, extra=()):
        p = kt.Proxy(self.eps, health_flags(self.certs) + [f"--policy={policy}", *extra])
        self.addCleanup(p.stop_clean)
        wait_all_up(p, self.eps)
        return p

    def count_new_connections(self, proxy, n):
        return collections.Counter(kt.served_by("127.0.0.1", proxy.port, self.certs)
                                   for _ in range(n))

    def test_round_robin_even(self):
        p = self.start("round-robin")
        got = self.count_new_connections(p, 30)
        self.assertEqual(set(got), set(NAMES), got)
        self.assertLessEqual(max(got.values()) - min(got.values()), 1, f"uneven: {got}")
        # Strict rotation: every window of three consecutive connections covers all three.
        seq = [kt.served_by("127.0.0.1", p.port, self.certs) for _ in range(9)]
        for i in range(0, 9, 3):
            self.assertEqual(sorted(seq[i:i + 3]), list(NAMES), f"not a rotation: {seq}")

    def test_first_picks_first_live(self):
        # Its own servers, since one is killed.
        apis = [kt.FakeApiserver(f"f{i}", self.certs) for i in range(3)]
        eps = [a.endpoint for a in apis]
        p = kt.Proxy(eps, health_flags(self.certs) + ["--policy=first"])
        self.addCleanup(p.stop_clean)
        wait_all_up(p, eps)
        self.assertEqual(self.count_new_connections(p, 20), {"f0": 20})
        apis[0].stop(signal.SIGKILL)
        # At once (connect-retry), and after the health checker marks it down.
        self.assertEqual(self.count_new_connections(p, 20), {"f1": 20})
        time.sleep(3)
        self.assertEqual(self.count_new_connections(p, 20), {"f1": 20})
        apis[2].stop()
        apis[1].stop()

    def test_least_conn_balances_held_connections(self):
        p = self.start("least-conn")
        held = []
        try:
            for _ in range(9):
                c = kt.HeldConnection("127.0.0.1", p.port, self.certs)
                held.append((c, c.whom()))
            got = collections.Counter(w for _, w in held)
            self.assertEqual(got, {"a": 3, "b": 3, "c": 3}, f"held connections: {got}")
            # Free "b"'s three; the next three new connections must all go to "b".
            for c, w in held:
                if w == "b":
                    c.close()
            held = [(c, w) for c, w in held if w != "b"]
            kt.wait_until(lambda: kt.metric(p.metrics(), "kube_api_lb_endpoint_active_connections",
                                            endpoint=self.apis["b"].endpoint) == 0, 5,
                          what="b's active connections to drop to 0")
            for _ in range(3):
                c = kt.HeldConnection("127.0.0.1", p.port, self.certs)
                held.append((c, c.whom()))
            got = collections.Counter(w for _, w in held)
            self.assertEqual(got, {"a": 3, "b": 3, "c": 3}, f"after freeing b: {got}")
        finally:
            for c, _ in held:
                c.close()

    def test_random_two_spreads(self):
        p = self.start("random-two")
        got = self.count_new_connections(p, 150)
        self.assertEqual(set(got), set(NAMES), got)
        for n in NAMES:
            self.assertGreaterEqual(got[n], 25, f"random-two starves {n}: {got}")
        held = []
        for _ in range(60):
            c = kt.HeldConnection("127.0.0.1", p.port, self.certs)
            self.addCleanup(c.close)
            held.append(c.whom())
        got = collections.Counter(held)
        # Two choices keep held load close to even (pure random would often exceed these).
        for n in NAMES:
            self.assertTrue(14 <= got[n] <= 26, f"random-two held connections: {got}")

    def test_counters_match_traffic(self):
        b1, b2 = kt.TcpBackend("m1"), kt.TcpBackend("m2")
        eps = [b1.endpoint, b2.endpoint]
        p = kt.Proxy(eps, ["--health-check=tcp", "--policy=round-robin"])
        self.addCleanup(p.stop_clean)
        wait_all_up(p, eps)
        want = {e: {"conns": 0, "sent": 0, "recv": 0} for e in eps}
        name_to_ep = {"m1": eps[0], "m2": eps[1]}
        for i in range(10):
            payload = os.urandom(1000 * (i + 1))
            s = socket.create_connection(("127.0.0.1", p.port), timeout=10)
            s.sendall(b"SINK\n" + payload)
            s.shutdown(socket.SHUT_WR)
            back = b""
            while True:
                d = s.recv(65536)
                if not d:
                    break
                back += d
            s.close()
            name = back.split(b"\n")[0].split()[-1].decode()
            self.assertEqual(back.split(b"\n")[1].split()[1].decode(), kt.sha256_hex(payload))
            w = want[name_to_ep[name]]
            w["conns"] += 1
            w["sent"] += 5 + len(payload)
            w["recv"] += len(back)
        self.assertEqual([want[e]["conns"] for e in eps], [5, 5])

        def settled():
            m = p.metrics()
            return all(kt.metric(m, "kube_api_lb_endpoint_active_connections", endpoint=e) == 0
                       for e in eps)
        kt.wait_until(settled, 5, what="active connections to drop to 0")
        m = p.metrics()
        st = {e["endpoint"]: e for e in p.stats()["endpoints"]}
        for e in eps:
            got_m = {
                "conns": kt.metric(m, "kube_api_lb_endpoint_connections_total", endpoint=e),
                "sent": kt.metric(m, "kube_api_lb_endpoint_sent_bytes_total", endpoint=e),
                "recv": kt.metric(m, "kube_api_lb_endpoint_received_bytes_total", endpoint=e),
            }
            self.assertEqual(got_m, want[e], f"/metrics for {e}")
            got_s = {"conns": st[e]["connectionsTotal"], "sent": st[e]["sentBytes"],
                     "recv": st[e]["receivedBytes"]}
            self.assertEqual(got_s, want[e], f"/stats for {e}")
            self.assertEqual(st[e]["health"], "up")
            self.assertEqual(st[e]["activeConnections"], 0)
        self.assertEqual(kt.metric(m, "kube_api_lb_accepted_connections_total"), 10)
        self.assertIn(("kube_api_lb_build_info"), {n for n, _ in m})
        p.stop_clean()
        b1.stop()
        b2.stop()

    def test_dead_endpoint_counts_connect_failures(self):
        b = kt.TcpBackend("alive")
        dead = f"127.0.0.1:{kt.closed_port()}"
        p = kt.Proxy([dead, b.endpoint], ["--health-check=none", "--policy=first"])
        self.addCleanup(p.stop_clean)
        for i in range(5):
            s = socket.create_connection(("127.0.0.1", p.port), timeout=10)
            s.sendall(b"ECHO\n")
            self.assertEqual(kt.recv_exact(s, 14), b"OK ECHO alive\n")
            s.close()
        m = p.metrics()
        self.assertEqual(kt.metric(m, "kube_api_lb_endpoint_connect_failures_total",
                                   endpoint=dead), 5)
        self.assertEqual(kt.metric(m, "kube_api_lb_endpoint_retries_total", endpoint=dead), 5)
        self.assertEqual(kt.metric(m, "kube_api_lb_endpoint_connections_total",
                                   endpoint=b.endpoint), 5)
        p.stop_clean()
        b.stop()

    def test_healthz_and_readyz(self):
        apis = [kt.FakeApiserver(f"r{i}", self.certs) for i in range(2)]
        eps = [a.endpoint for a in apis]
        p = kt.Proxy(eps, health_flags(self.certs))
        self.addCleanup(p.stop_clean)
        self.assertEqual(p.admin_get("/healthz"), (200, "ok"))
        p.wait_ready()
        st, _ = p.admin_get("/readyz")
        self.assertEqual(st, 200)
        for a in apis:
            a.stop(signal.SIGKILL)
        t0 = time.monotonic()
        kt.wait_until(lambda: p.admin_get("/readyz")[0] == 503, 10, interval=0.1,
                      what="/readyz 503 with every endpoint dead")
        print(f"  /readyz went 503 {time.monotonic() - t0:.2f}s after all endpoints died",
              file=sys.stderr)
        self.assertEqual(p.admin_get("/healthz"), (200, "ok"),
                         "/healthz must not follow backend health")
        self.assertEqual(kt.metric(p.metrics(), "kube_api_lb_ready"), 0)
        self.assertFalse(p.stats()["ready"])
        # One comes back on its old address: ready again.
        host, port = apis[0].addrs[0]
        kt.FakeApiserver("back", self.certs, listen=[f"{host}:{port}"])
        kt.wait_until(lambda: p.admin_get("/readyz")[0] == 200, 10, interval=0.1,
                      what="/readyz 200 after an endpoint came back")
        self.assertEqual(kt.served_by("127.0.0.1", p.port, self.certs), "back")
        self.assertEqual(p.admin_get("/nonexistent")[0], 404)

    def test_sigterm_keeps_open_connection_until_it_closes(self):
        # A stream that is never quiet (an event every 20 ms) is a transfer in progress: it is
        # served until it ends. (An idle one is closed between two events at once so that its
        # client reconnects to the next process: test_pod_replace.)
        p = self.start("least-conn", ["--shutdown-grace=60s"])
        c = kt.HeldConnection("127.0.0.1", p.port, self.certs)
        c.conn.request("GET", "/api/v1/namespaces/default/pods?watch=1&intervalMs=20")
        r = c.conn.getresponse()
        self.assertEqual(r.status, 200)
        for _ in range(3):
            json.loads(r.readline())
        p.proc.send_signal(signal.SIGTERM)

        def refused():
            try:
                socket.create_connection(("127.0.0.1", p.port), timeout=1).close()
                return False
            except ConnectionRefusedError:
                return True
            except ConnectionResetError:
                # Queued on a listening socket (one per worker) as it closed: reset, not
                # refused; the next attempt finds none.
                return False
        kt.wait_until(refused, 3, what="new connections to be refused after SIGTERM")
        # Not ready while shutting down (as kube-apiserver), though /healthz still answers.
        st, body = p.admin_get("/readyz?verbose")
        self.assertEqual(st, 503, body)
        self.assertIn("[-]shutdown in progress", body)
        self.assertEqual(p.admin_get("/healthz")[0], 200)
        t0 = time.monotonic()
        events = 0
        while time.monotonic() - t0 < 2.0:
            line = r.readline()
            self.assertTrue(line, "the open watch was cut during graceful shutdown")
            json.loads(line)
            events += 1
        # Every 20 ms at the stand-in; the point is that the stream keeps flowing, and a loaded
        # machine stretches the stand-in's sleeps.
        self.assertGreaterEqual(events, 10, "the open watch stalled during graceful shutdown")
        self.assertIsNone(p.proc.poll(), "exited while a connection was still open")
        self.assertTrue(refused(), "accepting again?")
        c.close()
        t0 = time.monotonic()
        try:
            code = p.proc.wait(5)
        except Exception:
            self.fail("did not exit within 5 s after its last connection closed")
        self.assertEqual(code, 0, "graceful exit status")
        print(f"  exited {time.monotonic() - t0:.2f}s after the last connection closed",
              file=sys.stderr)

    def test_sigterm_grace_expires(self):
        # A stream that is never quiet holds the process until the grace ends.
        p = self.start("least-conn", ["--shutdown-grace=1s"])
        c = kt.HeldConnection("127.0.0.1", p.port, self.certs)
        c.conn.request("GET", "/api/v1/namespaces/default/pods?watch=1&intervalMs=20")
        r = c.conn.getresponse()
        json.loads(r.readline())
        t0 = time.monotonic()
        p.proc.send_signal(signal.SIGTERM)
        code = p.proc.wait(10)
        took = time.monotonic() - t0
        self.assertEqual(code, 0)
        self.assertTrue(0.8 <= took <= 4, f"exit {took:.2f}s after SIGTERM with 1s grace")
        # The stream was closed by the exit.
        c.conn.sock.settimeout(5)
        try:
            while r.readline():
                pass
        except (OSError, ValueError):
            pass
        c.close()


if __name__ == "__main__":
    kt.main()
