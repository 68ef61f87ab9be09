#!/usr/bin/env python3
"""Host-name endpoints: a name that does not resolve at start-up is not fatal.

A node that boots before its resolver works (or before /etc/hosts has the control plane's names)
must not leave kube-api-lb exiting and waiting on the kubelet's crash-loop back-off: the proxy
starts, serves through the endpoints that do resolve, keeps the others down ("unresolved"), and
retries them every second until they resolve. A DNS server that never answers delays neither the
start (one second at most) nor the shutdown.

Each test runs in a network namespace of its own, entered with `ip netns exec`, which bind-mounts
/etc/netns/<namespace>/hosts and resolv.conf over /etc's: the names come from that hosts file
(rewritten in place while the proxy runs) and DNS goes to 127.0.0.1 inside the namespace, where
nothing listens, so no lookup leaves it. Stand-in apiservers: tests/tools/fake_apiserver.py (TLS,
client certificates) on 127.0.0.11 and 127.0.0.12. Needs root (skipped otherwise).
"""
import json
import os
import shutil
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kal_testlib as kt  # noqa: E402
import kal_netns as kn  # noqa: E402

NAME_A = "apiserver-a.kal.test"
NAME_B = "apiserver-b.kal.test"
IP_A, IP_B = "127.0.0.11", "127.0.0.12"


class Names(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        kn.require_netns()
        cls.certs = kt.make_certs()

    def setUp(self):
        self.ns = kn.Netns(f"names{self._testMethodName[-8:]}")
        self.addCleanup(self.ns.close)
        self.etc = f"/etc/netns/{self.ns.name}"
        os.makedirs(self.etc, exist_ok=True)
        self.addCleanup(shutil.rmtree, self.etc, True)
        with open(os.path.join(self.etc, "resolv.conf"), "w") as f:
            f.write("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
        self.write_hosts({})
        self.apis = {}
        for name, ip in (("a", IP_A), ("b", IP_B)):
            self.apis[name] = kn.NsApiserver(kt, self.ns, name, ip, self.certs)
            self.addCleanup(self.apis[name].cleanup)

    def write_hosts(self, names):
        """Rewrites the namespace's hosts file in place (the bind mount follows the inode)."""
        lines = ["127.0.0.1 localhost"] + [f"{ip} {n}" for n, ip in names.items()]
        with open(os.path.join(self.etc, "hosts"), "w") as f:
            f.write("\n".join(lines) + "\n")

    def start_proxy(self, endpoints):
        c = self.certs
        p = kn.NsProxy(kt, self.ns, endpoints, args=[
            f"--health-ca-file={c.ca}", f"--health-client-cert={c.health_crt}",
            f"--health-client-key={c.health_key}", "--health-server-name=localhost",
            "--shutdown-grace=1s"])
        self.addCleanup(p.stop)
        return p

    def version(self, proxy):
        """GET /version through the proxy (TLS with the client certificate): the apiserver's
        name, or the error."""
        def get():
            ctx = kt.client_context(self.certs)
            try:
                raw = socket.create_connection(("127.0.0.1", proxy.port), timeout=3)
                with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                    s.settimeout(3)
                    s.sendall(b"GET /version HTTP/1.1\r\nHost: kubernetes\r\n"
                              b"Connection: close\r\n\r\n")
                    data, err = kt.read_to_eof(s)
                    if err:
                        raise err
            except (OSError, ValueError) as e:
                return f"error: {e!r}"
            head, _, body = data.partition(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                return f"error: {head[:80]!r}"
            return json.loads(body)["apiserver"]

        return self.ns.call(get, timeout=8)

    def test_unresolvable_name_among_good_ones_is_retried(self):
        self.write_hosts({NAME_A: IP_A})
        ep_a, ep_b = f"{NAME_A}:6443", f"{NAME_B}:6443"
        proxy = self.start_proxy([ep_a, ep_b])
        warned = proxy.events("cannot resolve endpoint host name, retrying every second",
                              endpoint=ep_b)
        self.assertTrue(warned, proxy.log()[-2000:])
        proxy.wait_health(ep_a, "up")
        down = proxy.wait_health(ep_b, "down")
        self.assertEqual(down.get("detail"), "unresolved", down)
        st, body = proxy.admin_get("/readyz?verbose")
        self.assertEqual(st, 200, body)
        self.assertIn(f"[-]endpoint {ep_b}", body)
        # Every request succeeds, all through the endpoint that resolved.
        served = [self.version(proxy) for _ in range(6)]
        self.assertEqual(served, ["a"] * 6)
        # The failing name is logged once, not at every retry.
        time.sleep(2.5)
        self.assertEqual(len(proxy.events(
            "cannot resolve endpoint host name, retrying every second", endpoint=ep_b)), 1,
            proxy.log()[-2000:])

        t0 = time.time()
        self.write_hosts({NAME_A: IP_A, NAME_B: IP_B})
        kt.wait_until(lambda: proxy.events("resolved endpoint", since=t0, endpoint=ep_b), 5,
                      what=f"{ep_b} to be resolved")
        proxy.wait_health(ep_b, "up", since=t0, timeout=10)
        # The endpoint resolved late carries traffic: with a down, every request goes to b.
        self.apis["a"].cleanup()
        proxy.wait_health(ep_a, "down", since=t0, timeout=10)
        served = [self.version(proxy) for _ in range(4)]
        self.assertEqual(served, ["b"] * 4)
        self.assertEqual(proxy.stop(), 0)

    def test_no_name_resolves_at_start(self):
        ep_b = f"{NAME_B}:6443"
        proxy = self.start_proxy([ep_b])
        self.assertIsNone(proxy.proc.poll())
        st, body = proxy.admin_get("/readyz")
        self.assertEqual(st, 503, body)
        st, _ = proxy.admin_get("/healthz")
        self.assertEqual(st, 200)
        self.assertTrue(self.version(proxy).startswith("error"))
        self.write_hosts({NAME_B: IP_B})
        proxy.wait_health(ep_b, "up", timeout=10)
        st, body = proxy.admin_get("/readyz")
        self.assertEqual(st, 200, body)
        self.assertEqual(self.version(proxy), "b")
        self.assertEqual(proxy.stop(), 0)


    def test_dns_server_that_never_answers_delays_neither_start_nor_stop(self):
        # A DNS server that takes the queries and never answers: each lookup of a name missing
        # from the hosts file hangs for the resolver's timeouts (5 s per attempt, two attempts).
        with open(os.path.join(self.etc, "resolv.conf"), "w") as f:
            f.write("nameserver 127.0.0.1\n")
        self.write_hosts({NAME_A: IP_A})

        def black_hole():
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            u.bind(("127.0.0.1", 53))
            t = socket.socket()
            t.bind(("127.0.0.1", 53))
            t.listen()
            return u, t

        for s in self.ns.call(black_hole):
            self.addCleanup(s.close)
        ep_a, ep_c = f"{NAME_A}:6443", "apiserver-c.kal.test:6443"
        t0 = time.monotonic()
        proxy = self.start_proxy([ep_a, ep_c])
        started = time.monotonic() - t0
        self.assertLess(started, 5.0, "start-up waited for the DNS server")
        self.assertTrue(proxy.events(
            "endpoint host name not resolved yet, serving without it until it is",
            endpoint=ep_c), proxy.log()[-2000:])
        proxy.wait_health(ep_a, "up")
        self.assertEqual(self.version(proxy), "a")
        t0 = time.monotonic()
        self.assertEqual(proxy.stop(), 0)
        self.assertLess(time.monotonic() - t0, 3.0, "shutdown waited for the DNS server")

if __name__ == "__main__":
    kt.main()
