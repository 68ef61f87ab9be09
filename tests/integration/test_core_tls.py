#!/usr/bin/env python3
"""TLS passthrough with real clients: curl and kubectl with a client certificate reach a stand-in
apiserver that requires one, through kube-api-lb; IPv6 listeners and endpoints; host-name endpoints."""
import json
import os
import shutil
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kal_testlib as kt  # noqa: E402


def health_flags(certs):
    return [f"--health-ca-file={certs.ca}", f"--health-client-cert={certs.health_crt}",
            f"--health-client-key={certs.health_key}"]


class CoreTls(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.certs = kt.make_certs()
        cls.api = kt.FakeApiserver("a", cls.certs, args=["--watch-interval-ms", "50"])
        cls.proxy = kt.Proxy([cls.api.endpoint], health_flags(cls.certs))
        cls.proxy.wait_ready()

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop_clean()

    def curl_args(self, cert=True):
        a = ["--cacert", self.certs.ca]
        if cert:
            a += ["--cert", self.certs.client_crt, "--key", self.certs.client_key]
        return a

    def test_curl_with_client_cert_passes_through(self):
        url = f"https://127.0.0.1:{self.proxy.port}/whoami"
        r = kt.curl(*self.curl_args(), url)
        self.assertEqual(r.returncode, 0, f"curl {url}: {r.stderr.decode()}")
        who = json.loads(r.stdout)
        self.assertEqual(who["apiserver"], "a")
        self.assertFalse(who["anonymous"])
        # The backend saw the client's own certificate: TLS was not terminated by the proxy.
        self.assertEqual(who["subject"], "/O=system:nodes/CN=system:node:k8s-node4")
        self.assertEqual(who["username"], "system:node:k8s-node4")
        self.assertIn("system:nodes", who["groups"])

    def test_curl_without_client_cert_is_refused_by_backend(self):
        url = f"https://127.0.0.1:{self.proxy.port}/version"
        r = kt.curl(*self.curl_args(cert=False), url)
        self.assertNotEqual(r.returncode, 0, "backend requires a client cert; curl should fail")
        self.assertRegex(r.stderr.decode(), r"certificate required|alert|handshake|SSL")
        # ...and the backend, not the proxy, is who refused it.
        kt.wait_until(lambda: "did not return a certificate" in self.api.log() or
                      "CERTIFICATE" in self.api.log().upper(), 5,
                      what="backend to log the missing client certificate")

    def test_kubectl_get_raw_version(self):
        if not shutil.which("kubectl"):
            self.skipTest("kubectl not installed")
        kc = kt.write_kubeconfig(os.path.join(kt.tmpdir(), "kubeconfig"),
                                 f"https://127.0.0.1:{self.proxy.port}", self.certs)
        r = subprocess.run(["kubectl", f"--kubeconfig={kc}", "get", "--raw", "/version"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        v = json.loads(r.stdout)
        self.assertEqual(v["gitVersion"], "v1.31.0-fake-a")
        r = subprocess.run(["kubectl", f"--kubeconfig={kc}", "get", "--raw", "/whoami"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.assertEqual(json.loads(r.stdout)["username"], "system:node:k8s-node4")

    def test_watch_stream_flows(self):
        c = kt.HeldConnection("127.0.0.1", self.proxy.port, self.certs)
        try:
            c.conn.request("GET", "/api/v1/namespaces/default/pods?watch=1")
            r = c.conn.getresponse()
            self.assertEqual(r.status, 200)
            events, t0 = [], time.monotonic()
            while time.monotonic() - t0 < 2.0:
                line = r.readline()  # de-chunked by http.client
                self.assertTrue(line, "watch stream ended early")
                events.append(json.loads(line))
            # One event every 50 ms at the stand-in (its sleeps stretch on a loaded machine): the
            # stream flows, in order.
            self.assertGreaterEqual(len(events), 10, f"only {len(events)} events in 2 s")
            rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
            self.assertEqual(rvs, list(range(rvs[0], rvs[0] + len(rvs))), "events lost/reordered")
        finally:
            c.close()

    def test_bulk_through_tls(self):
        n = 64 * 1024 * 1024
        r = kt.curl(*self.curl_args(), f"https://127.0.0.1:{self.proxy.port}/bytes?n={n}",
                    "-o", "-", timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.assertEqual(len(r.stdout), n)
        self.assertEqual(kt.sha256_hex(r.stdout), kt.kal_pattern.sha256_of(n))
        body = os.urandom(16 * 1024 * 1024)
        path = os.path.join(kt.tmpdir(), "upload.bin")
        with open(path, "wb") as f:
            f.write(body)
        r = kt.curl(*self.curl_args(), "--data-binary", f"@{path}",
                    f"https://127.0.0.1:{self.proxy.port}/sha256", timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        got = json.loads(r.stdout)
        self.assertEqual((got["bytes"], got["sha256"]), (len(body), kt.sha256_hex(body)))

    def test_keepalive_many_requests_one_connection(self):
        c = kt.HeldConnection("127.0.0.1", self.proxy.port, self.certs)
        try:
            for i in range(200):
                st, body = c.get("/readyz")
                self.assertEqual((st, body), (200, b"ok"), f"request {i}")
        finally:
            c.close()

    def test_ipv6_listener(self):
        p6 = kt.free_port("::1")
        p4 = kt.free_port()
        proxy = kt.Proxy([self.api.endpoint], health_flags(self.certs),
                         listen=[f"[::1]:{p6}", f"127.0.0.1:{p4}"])
        try:
            proxy.wait_ready()
            for url in (f"https://[::1]:{p6}/whoami", f"https://127.0.0.1:{p4}/whoami"):
                r = kt.curl(*self.curl_args(), url)
                self.assertEqual(r.returncode, 0, f"curl {url}: {r.stderr.decode()}")
                self.assertEqual(json.loads(r.stdout)["username"], "system:node:k8s-node4")
        finally:
            proxy.stop_clean()

    def test_ipv6_endpoint(self):
        api6 = kt.FakeApiserver("v6", self.certs, listen=["[::1]:0"])
        proxy = kt.Proxy([api6.endpoint], health_flags(self.certs))
        try:
            proxy.wait_ready()
            self.assertEqual(kt.served_by("127.0.0.1", proxy.port, self.certs), "v6")
        finally:
            proxy.stop_clean()
            api6.stop()

    def test_hostname_endpoint(self):
        port = kt.free_port_both()
        api = kt.FakeApiserver("byname", self.certs,
                               listen=[f"127.0.0.1:{port}", f"[::1]:{port}"])
        proxy = kt.Proxy([f"localhost:{port}"],
                         health_flags(self.certs) + ["--health-server-name=localhost"])
        try:
            proxy.wait_ready()
            for _ in range(5):
                self.assertEqual(kt.served_by("127.0.0.1", proxy.port, self.certs), "byname")
            r = kt.curl(*self.curl_args(), f"https://localhost:{proxy.port}/whoami")
            self.assertEqual(r.returncode, 0, r.stderr.decode())
        finally:
            proxy.stop_clean()
            api.stop()

    def test_json_logs(self):
        proxy = kt.Proxy([self.api.endpoint], health_flags(self.certs) + ["--log-format=json"])
        try:
            proxy.wait_ready()
            kt.served_by("127.0.0.1", proxy.port, self.certs)
        finally:
            proxy.stop_clean()
        lines = [l for l in proxy.log().splitlines() if l.strip()]
        self.assertTrue(lines, "no log lines at all")
        for l in lines:
            try:
                obj = json.loads(l)
            except ValueError:
                self.fail(f"--log-format=json wrote a non-JSON line: {l!r}")
            self.assertIsInstance(obj, dict)
            self.assertIn("msg", obj, l)


if __name__ == "__main__":
    kt.main()
