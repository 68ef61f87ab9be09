#!/usr/bin/env python3
"""The test kit itself (issue 21): the stand-in apiserver speaks HTTP/2 with ALPN as kube-apiserver
does and counts requests, PINGs and handshakes; its slow-/readyz and hang modes switch at run
time; the delay relay adds the configured delay, keeps order under jitter, carries large transfers
and stops forwarding when hung. No kube-api-lb involved."""
import json
import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "tools"))
import kal_python  # noqa: E402

kal_python.ensure("h2")  # re-executes with /usr/bin/python3 (Debian's python3-h2) if needed
import h2.config  # noqa: E402
import h2.connection  # noqa: E402
import h2.events  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kal_testlib as kt  # noqa: E402


class H2Client:
    """A minimal HTTP/2 client over TLS (ALPN h2 only), one connection."""

    def __init__(self, host, port, certs, timeout=5):
        ctx = kt.client_context(certs)
        ctx.set_alpn_protocols(["h2"])
        raw = socket.create_connection((host, port), timeout=timeout)
        self.sock = ctx.wrap_socket(raw, server_hostname=host)
        self.alpn = self.sock.selected_alpn_protocol()
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.conn.initiate_connection()
        self.flush()
        self.backlog = []

    def flush(self):
        self.sock.sendall(self.conn.data_to_send())

    def wait_event(self, pred, timeout):
        """The first event (queued or new) matching pred, or None after timeout."""
        deadline = time.monotonic() + timeout
        while True:
            for i, ev in enumerate(self.backlog):
                if pred(ev):
                    return self.backlog.pop(i)
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                return None
            if not data:
                raise AssertionError("server closed the HTTP/2 connection")
            for ev in self.conn.receive_data(data):
                if isinstance(ev, h2.events.DataReceived):
                    self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                self.backlog.append(ev)
            self.flush()

    def ping(self, timeout=5):
        """Sends a PING; returns the seconds until its ACK, or None if none came in time."""
        opaque = os.urandom(8)
        t0 = time.monotonic()
        self.conn.ping(opaque)
        self.flush()
        ev = self.wait_event(lambda e: isinstance(e, h2.events.PingAckReceived) and
                             e.ping_data == opaque, timeout)
        return None if ev is None else time.monotonic() - t0

    def start(self, path):
        sid = self.conn.get_next_available_stream_id()
        self.conn.send_headers(sid, [(":method", "GET"), (":path", path), (":scheme", "https"),
                                     (":authority", "kubernetes")], end_stream=True)
        self.flush()
        return sid

    def get(self, path, timeout=5):
        """Returns (status, body) of one request on this connection."""
        sid = self.start(path)
        status, body = None, b""
        while True:
            ev = self.wait_event(lambda e: getattr(e, "stream_id", None) == sid, timeout)
            if ev is None:
                raise AssertionError(f"no answer to {path} within {timeout}s")
            if isinstance(ev, h2.events.ResponseReceived):
                status = int(dict(ev.headers)[":status"])
            elif isinstance(ev, h2.events.DataReceived):
                body += ev.data
            elif isinstance(ev, h2.events.StreamEnded):
                return status, body

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class H2Standin(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.certs = kt.make_certs()
        cls.api = kt.FakeApiserver("a", cls.certs, control=True)

    def setUp(self):
        self.api.set_mode(readyz_delay_ms=0, hang=False)

    def curl(self, *args, url, timeout=20):
        return kt.curl("-v", "--cacert", self.certs.ca, "--cert", self.certs.client_crt,
                       "--key", self.certs.client_key, *args, url, timeout=timeout)

    def test_curl_negotiates_h2_and_requests_are_counted(self):
        before = self.api.counters()
        url = f"https://127.0.0.1:{self.api.port}/readyz"
        r = self.curl("--http2", url=url)
        self.assertEqual((r.returncode, r.stdout), (0, b"ok"), r.stderr.decode())
        self.assertRegex(r.stderr.decode(), r"ALPN.*accepted h2")
        r = self.curl("--http1.1", url=url)
        self.assertEqual((r.returncode, r.stdout), (0, b"ok"), r.stderr.decode())
        self.assertNotRegex(r.stderr.decode(), r"ALPN.*accepted h2")
        def counted():
            c = self.api.counters()
            return c if c["readyz"] >= before["readyz"] + 2 else None
        after = kt.wait_until(counted, 5, what="both requests counted")
        for key in ("readyz_h2", "readyz_http1", "connections_h2", "connections_http1"):
            self.assertEqual(after[key] - before[key], 1, key)
        self.assertGreaterEqual(after["tls_handshakes"] - before["tls_handshakes"], 2)
        self.assertEqual(after["paths"]["/readyz"] - before["paths"].get("/readyz", 0), 2)
        # The same counters over the server's own endpoint.
        st, _, body = kt.https_request("127.0.0.1", self.api.port, "/debug/counters", self.certs)
        self.assertEqual(st, 200)
        self.assertGreaterEqual(json.loads(body)["readyz"], after["readyz"])

    def test_no_http2_offers_only_http11(self):
        api = kt.FakeApiserver("h1only", self.certs, args=["--no-http2"])
        try:
            r = self.curl("--http2", url=f"https://127.0.0.1:{api.port}/version")
            self.assertEqual(r.returncode, 0, r.stderr.decode())
            self.assertNotRegex(r.stderr.decode(), r"ALPN.*accepted h2")
            self.assertEqual(json.loads(r.stdout)["apiserver"], "h1only")
            self.assertFalse(api.counters()["http2"])
        finally:
            api.stop()

    def test_pings_are_answered_and_counted(self):
        before = self.api.counters()["pings"]
        c = H2Client("127.0.0.1", self.api.port, self.certs)
        try:
            self.assertEqual(c.alpn, "h2")
            for _ in range(3):
                rtt = c.ping()
                self.assertIsNotNone(rtt, "PING not acknowledged")
                self.assertLess(rtt, 0.5)
            self.assertEqual(c.get("/readyz"), (200, b"ok"))
        finally:
            c.close()
        kt.wait_until(lambda: self.api.counters()["pings"] == before + 3, 5,
                      what="3 more PINGs counted")

    def test_watch_streams_over_h2(self):
        c = H2Client("127.0.0.1", self.api.port, self.certs)
        try:
            sid = c.start("/api/v1/namespaces/default/pods?watch=1&intervalMs=20")
            rvs, deadline = [], time.monotonic() + 3
            while len(rvs) < 10 and time.monotonic() < deadline:
                ev = c.wait_event(lambda e: getattr(e, "stream_id", None) == sid, 1)
                if isinstance(ev, h2.events.DataReceived):
                    rvs += [int(json.loads(line)["object"]["metadata"]["resourceVersion"])
                            for line in ev.data.splitlines() if line]
                self.assertNotIsInstance(ev, h2.events.StreamEnded)
            self.assertGreaterEqual(len(rvs), 10, "watch events over h2")
            self.assertEqual(rvs, list(range(rvs[0], rvs[0] + len(rvs))))
            kt.wait_until(lambda: self.api.counters()["watches_open"] >= 1, 5,
                          what="the watch to be counted")  # the file is up to 0.5 s old
            c.conn.reset_stream(sid)
            c.flush()
            kt.wait_until(lambda: self.api.counters()["watches_open"] == 0, 5,
                          what="the reset watch to end")
        finally:
            c.close()

    def test_readyz_delay_switches_at_run_time_and_pings_stay_fast(self):
        c = H2Client("127.0.0.1", self.api.port, self.certs)
        try:
            self.api.set_mode(readyz_delay_ms=600)
            sid = c.start("/readyz")  # its answer waits 600 ms...
            t0 = time.monotonic()
            self.assertLess(c.ping(), 0.3, "a PING must not wait behind a slow /readyz")
            self.assertEqual(c.get("/version")[0], 200)
            self.assertLess(time.monotonic() - t0, 0.4, "/version must not wait either")
            ev = c.wait_event(lambda e: isinstance(e, h2.events.StreamEnded) and
                              e.stream_id == sid, 3)
            self.assertIsNotNone(ev)
            self.assertGreaterEqual(time.monotonic() - t0, 0.55)
            t0 = time.monotonic()
            st, _, _ = kt.https_request("127.0.0.1", self.api.port, "/readyz", self.certs)
            self.assertEqual(st, 200)
            self.assertGreaterEqual(time.monotonic() - t0, 0.55, "HTTP/1.1 /readyz is slow too")
            self.api.set_mode(readyz_delay_ms=0)
            t0 = time.monotonic()
            self.assertEqual(c.get("/readyz"), (200, b"ok"))
            self.assertLess(time.monotonic() - t0, 0.3)
        finally:
            c.close()

    def test_hang_stops_everything_and_resumes(self):
        c = H2Client("127.0.0.1", self.api.port, self.certs)
        try:
            self.assertIsNotNone(c.ping())
            self.api.set_mode(hang=True)
            self.assertIsNone(c.ping(timeout=1.0), "a hung apiserver answered a PING")
            raw = socket.create_connection(("127.0.0.1", self.api.port), timeout=1.0)
            with self.assertRaises(OSError, msg="a hung apiserver completed a TLS handshake"):
                kt.client_context(self.certs).wrap_socket(raw, server_hostname="127.0.0.1")
            raw.close()
            self.api.set_mode(hang=False)
            # The PING sent while it hung is answered now, and a new one too.
            self.assertIsNotNone(c.wait_event(
                lambda e: isinstance(e, h2.events.PingAckReceived), 3))
            self.assertIsNotNone(c.ping())
            self.assertEqual(c.get("/readyz"), (200, b"ok"))
        finally:
            c.close()

    def test_counters_per_connection(self):
        api = kt.FakeApiserver("peers", self.certs, args=["--count-peers"])
        c = H2Client("127.0.0.1", api.port, self.certs)
        try:
            c.ping()
            c.ping()
            self.assertEqual(c.get("/readyz"), (200, b"ok"))
            me = "%s:%d" % c.sock.getsockname()[:2]
            self.assertEqual(api.counters()["peers"][me],
                             {"requests": 1, "readyz": 1, "pings": 2})
        finally:
            c.close()
            api.stop()

    def test_counters_file_is_written_at_exit(self):
        api = kt.FakeApiserver("short", self.certs, control=True)
        kt.https_request("127.0.0.1", api.port, "/readyz", self.certs)
        api.stop()
        with open(api.counters_file) as f:
            self.assertEqual(json.load(f)["readyz"], 1)


class Relay(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.certs = kt.make_certs()
        cls.api = kt.FakeApiserver("r", cls.certs)

    def test_round_trip_takes_twice_the_delay(self):
        direct = H2Client("127.0.0.1", self.api.port, self.certs)
        relay = kt.DelayRelay(self.api.endpoint, delay_ms=150)
        slow = H2Client("127.0.0.1", relay.port, self.certs)
        try:
            base = min(direct.ping() for _ in range(3))
            rtts = [slow.ping() for _ in range(4)]
            self.assertLess(base, 0.05)
            for rtt in rtts:
                self.assertIsNotNone(rtt)
                self.assertGreaterEqual(rtt, 0.295, rtts)
                self.assertLess(rtt, 0.7, rtts)  # 2 x 150 ms and a Python relay's delays
            relay.set(delay_ms=50)
            rtt = slow.ping()
            self.assertGreaterEqual(rtt, 0.095)
            self.assertLess(rtt, 0.29)  # under the old delay's 0.3 s
        finally:
            direct.close()
            slow.close()
            relay.stop()

    def test_jitter_keeps_order_and_bulk_is_intact(self):
        relay = kt.DelayRelay(self.api.endpoint, delay_ms=60, jitter_ms=50, seed=7)
        c = H2Client("127.0.0.1", relay.port, self.certs)
        try:
            rtts = [c.ping() for _ in range(8)]
            self.assertTrue(all(r is not None and 0.02 <= r < 0.5 for r in rtts), rtts)
            self.assertGreater(max(rtts) - min(rtts), 0.01, f"no jitter seen: {rtts}")
            sid = c.start("/api/v1/namespaces/default/pods?watch=1&intervalMs=5")
            rvs, deadline = [], time.monotonic() + 3
            while len(rvs) < 40 and time.monotonic() < deadline:
                ev = c.wait_event(lambda e: getattr(e, "stream_id", None) == sid, 1)
                if isinstance(ev, h2.events.DataReceived):
                    rvs += [int(json.loads(line)["object"]["metadata"]["resourceVersion"])
                            for line in ev.data.splitlines() if line]
            self.assertGreaterEqual(len(rvs), 40)
            self.assertEqual(rvs, list(range(rvs[0], rvs[0] + len(rvs))), "reordered")
            n = 24 * 1024 * 1024
            r = kt.curl("--cacert", self.certs.ca, "--cert", self.certs.client_crt, "--key",
                        self.certs.client_key, f"https://127.0.0.1:{relay.port}/bytes?n={n}",
                        timeout=30)
            self.assertEqual(r.returncode, 0, r.stderr.decode())
            self.assertEqual(kt.sha256_hex(r.stdout), kt.kal_pattern.sha256_of(n))
        finally:
            c.close()
            relay.stop()

    def test_hang_stops_forwarding_without_closing(self):
        relay = kt.DelayRelay(self.api.endpoint, delay_ms=20)
        c = H2Client("127.0.0.1", relay.port, self.certs)
        try:
            self.assertIsNotNone(c.ping())
            relay.set(hang=True)
            self.assertIsNone(c.ping(timeout=1.0), "PING crossed a hung link")
            relay.set(hang=False)
            self.assertIsNotNone(c.wait_event(
                lambda e: isinstance(e, h2.events.PingAckReceived), 3), "not resumed")
            self.assertEqual(c.get("/readyz"), (200, b"ok"))
        finally:
            c.close()
            relay.stop()


if __name__ == "__main__":
    kt.main()
