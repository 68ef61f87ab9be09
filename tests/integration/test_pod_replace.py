#!/usr/bin/env python3
"""Replacing kube-api-lb's own pod without an outage (issue 19, part 4).

kubelet replaces a static pod in this order: the stop signal to the old container, wait until it
has exited, then start the new one on the same host port. Between the old process closing its
listener and the new one opening it, 127.0.0.1:6443 refuses kubelet and kube-proxy. This test plays
that sequence with the binary itself, in front of three TLS stand-in apiservers, while

  * 6 watches are open (HTTP/1.1 chunked, like client-go's; each reconnects at once when it ends,
    as client-go's reflectors do), and
  * a client makes one TLS request on a new connection every 20 ms.

It reports the refused window and asserts what makes the replacement nearly invisible:
  * the old process exits soon after the stop signal (well before its 30 s grace), because
    connections between exchanges (idle watches, idle keep-alives) are closed at once;
  * no request fails other than by a refused connect while nothing listens, and no watch is cut
    in the middle of an event: each one ends between events and resumes through the new process;
  * a transfer in progress at the stop signal finishes intact, and the old process exits right
    after it.
bench/replace.sh measures the same sequence for kube-api-lb, nginx and HAProxy side by side.
"""
import errno
import os
import socket
import ssl
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kal_testlib as kt  # noqa: E402

GRACE_S = 30  # --shutdown-grace: what the old behaviour would wait for
MAX_SECONDS = 90  # hard bound of every background loop
WATCH_MS = 400  # stand-in watch event interval: mostly idle watches, as kubelet's are


class Watch(threading.Thread):
    """A watch through the proxy that reconnects at once when it ends (bounded by MAX_SECONDS).
    Decodes the chunked body: an end with a partial chunk or event is a cut mid-event."""

    def __init__(self, host, port, certs, ns):
        super().__init__(daemon=True)
        self.host, self.port, self.ns = host, port, ns
        self.ctx = kt.client_context(certs)
        self.lock = threading.Lock()
        self.sessions = []  # (opened_at, ended_at or None, events, end how, cut mid-event)
        self.open_errors = []
        self._halt = threading.Event()

    def events_since(self, t):
        with self.lock:
            return sum(1 for s in self.sessions for e in s["times"] if e >= t)

    def run(self):
        deadline = time.monotonic() + MAX_SECONDS
        while not self._halt.is_set() and time.monotonic() < deadline:
            try:
                self._one()
            except (OSError, ssl.SSLError) as e:
                self.open_errors.append((time.time(), repr(e)))
                time.sleep(0.02)

    def _one(self):
        raw = socket.create_connection((self.host, self.port), timeout=5)
        sock = self.ctx.wrap_socket(raw, server_hostname=self.host)
        s = {"opened": time.time(), "ended": None, "times": [], "how": None, "cut": False}
        with self.lock:
            self.sessions.append(s)
        sock.sendall(f"GET /api/v1/namespaces/{self.ns}/pods?watch=1&intervalMs={WATCH_MS} "
                     "HTTP/1.1\r\nHost: kubernetes\r\n\r\n".encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            d = sock.recv(65536)
            if not d:
                raise OSError("EOF before the watch's response headers")
            buf += d
        head, buf = buf.split(b"\r\n\r\n", 1)
        if not head.startswith(b"HTTP/1.1 200"):
            raise OSError(f"watch answered {head.splitlines()[0]!r}")
        sock.settimeout(0.25)
        while not self._halt.is_set():
            # Take every complete chunk off the buffer.
            while True:
                line_end = buf.find(b"\r\n")
                if line_end < 0:
                    break
                size = int(buf[:line_end].split(b";")[0], 16)
                if size == 0:
                    s["how"] = "server ended the watch"
                    buf = b""
                    break
                if len(buf) < line_end + 2 + size + 2:
                    break
                chunk = buf[line_end + 2:line_end + 2 + size]
                buf = buf[line_end + 2 + size + 2:]
                with self.lock:
                    s["times"] += [time.time()] * chunk.count(b'"type"')
            try:
                d = sock.recv(65536)
            except socket.timeout:
                continue
            except (OSError, ssl.SSLError) as e:
                s["how"] = s["how"] or f"error {e!r}"
                s["cut"] = bool(buf)
                break
            if not d:
                s["how"] = s["how"] or "eof"
                s["cut"] = bool(buf)
                break
            buf += d
        s["ended"] = time.time()
        sock.close()

    def stop(self):
        self._halt.set()


class Requests(threading.Thread):
    """One TLS request (GET /version) on a new connection every 20 ms. results: (t, outcome,
    detail) with outcome "ok", "refused" (nothing listened), or "failed" (anything else)."""

    def __init__(self, host, port, certs):
        super().__init__(daemon=True)
        self.host, self.port, self.certs = host, port, certs
        self.results = []
        self._halt = threading.Event()

    def run(self):
        deadline = time.monotonic() + MAX_SECONDS
        while not self._halt.is_set() and time.monotonic() < deadline:
            t = time.time()
            try:
                st, _, body = kt.https_request(self.host, self.port, "/version", self.certs,
                                               timeout=5)
                self.results.append((t, "ok", None) if st == 200 else
                                    (t, "failed", f"status {st}: {body[:100]!r}"))
            except ConnectionRefusedError:
                self.results.append((t, "refused", None))
            except (OSError, ssl.SSLError) as e:
                refused = isinstance(e, OSError) and e.errno == errno.ECONNREFUSED
                self.results.append((t, "refused" if refused else "failed", repr(e)))
            time.sleep(max(0.0, 0.02 - (time.time() - t)))

    def stop(self):
        self._halt.set()
        self.join(10)


class PodReplacement(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.certs = kt.make_certs()
        cls.apis = kt.start_apiservers(cls.certs, ["a", "b", "c"],
                                       args=("--watch-interval-ms", str(WATCH_MS)))
        cls.endpoints = [a.endpoint for a in cls.apis.values()]

    @classmethod
    def tearDownClass(cls):
        for a in cls.apis.values():
            a.stop()

    def args(self):
        return [f"--shutdown-grace={GRACE_S}s", f"--health-ca-file={self.certs.ca}",
                f"--health-client-cert={self.certs.health_crt}",
                f"--health-client-key={self.certs.health_key}"]

    def start_proxy(self):
        p = kt.Proxy(self.endpoints, args=self.args())
        p.wait_ready(15)
        return p

    def replace(self, old):
        """kubelet's sequence: stop signal, wait for the exit, start the new one on the port.
        Returns (new proxy, seconds from the signal to the old one's exit, to the new listener)."""
        t0 = time.time()
        os.kill(old.pid, 15)
        code = old.proc.wait(GRACE_S + 15)
        t_exit = time.time()
        self.assertEqual(code, 0, f"the old kube-api-lb exited with {code}:\n{old.log()[-2000:]}")
        new = kt.Proxy(self.endpoints, args=self.args(), listen=[f"127.0.0.1:{old.port}"])
        t_listen = time.time()
        self.addCleanup(new.stop_clean)
        return new, t0, t_exit - t0, t_listen - t0

    def test_replace_with_watches_and_requests(self):
        old = self.start_proxy()
        watches = [Watch("127.0.0.1", old.port, self.certs, f"ns{i}") for i in range(6)]
        for w in watches:
            w.start()
        reqs = Requests("127.0.0.1", old.port, self.certs)
        reqs.start()
        try:
            kt.wait_until(lambda: all(w.events_since(0) >= 2 for w in watches), 15,
                          what="every watch to stream")
            time.sleep(1.0)
            new, t0, exit_s, listen_s = self.replace(old)
            new.wait_ready(15)
            # Every watch streams again, through the new process.
            kt.wait_until(lambda: all(w.events_since(t0 + listen_s) >= 2 for w in watches), 20,
                          what="every watch to stream again after the replacement")
            time.sleep(1.0)
        finally:
            reqs.stop()
            for w in watches:
                w.stop()
        refused = [r for r in reqs.results if r[1] == "refused"]
        failed = [r for r in reqs.results if r[1] == "failed"]
        ok = [r for r in reqs.results if r[1] == "ok"]
        window = (refused[-1][0] - refused[0][0]) if refused else 0.0
        cut = [(w.ns, s["how"]) for w in watches for s in w.sessions if s["cut"]]
        ended = [(w.ns, s["how"]) for w in watches for s in w.sessions if s["ended"]]
        print(f"\nreplacement: old exited {exit_s:.3f} s after SIGTERM (grace {GRACE_S} s), new "
              f"listening {listen_s:.3f} s after it; requests every 20 ms: {len(ok)} ok, "
              f"{len(refused)} refused over {window:.3f} s, {len(failed)} failed; watches: "
              f"{len(ended)} ended and resumed, {len(cut)} cut mid-event", flush=True)
        self.assertEqual(failed, [], "requests that failed other than by a refused connect (t0 "
                         f"{t0:.3f})")
        self.assertEqual(cut, [], "watches cut in the middle of an event")
        self.assertGreaterEqual(len(ended), 6, f"every watch ended and resumed: {ended}")
        # The behaviour, not a performance figure: the old process no longer waits for its grace
        # (30 s) because idle watches hold it; it leaves within a few polls of the quiet rule.
        self.assertLess(exit_s, 5.0, f"the old process lingered {exit_s:.1f} s:\n"
                        f"{old.log()[-3000:]}")
        # Issue 19: connects are refused for at most ~0.5 s plus the new process's start. The
        # refusals run from the old listener's close (at SIGTERM) to the new one's bind, so the
        # old process's part is its exit (0.06 s measured; the bound leaves room for a loaded
        # machine and ASan's exit-time leak check).
        old_part = 2.0 if os.environ.get("KAL_SANITIZED") == "1" else 1.0
        self.assertLess(exit_s, old_part, f"the old process took {exit_s:.3f} s to leave")
        self.assertLessEqual(window, listen_s + 0.1,
                             f"connects refused over {window:.3f} s, the new process listened "
                             f"{listen_s:.3f} s after SIGTERM")
        self.assertIn("shutting down", old.log())

    def test_transfer_in_progress_finishes(self):
        old = self.start_proxy()
        ctx = kt.client_context(self.certs)
        raw = socket.create_connection(("127.0.0.1", old.port), timeout=10)
        sock = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        n = 8 << 20
        sock.sendall(f"GET /bytes?n={n} HTTP/1.1\r\nHost: kubernetes\r\nConnection: close"
                     "\r\n\r\n".encode())
        # Read slowly: about 4 MiB/s, so the answer is still flowing when the signal comes.
        got = bytearray()
        t_start = time.time()
        signalled = None
        while True:
            try:
                d = sock.recv(65536)
            except (OSError, ssl.SSLError) as e:
                self.fail(f"the transfer in progress was cut after {len(got)} bytes: {e!r}")
            if not d:
                break
            got += d
            if signalled is None and len(got) > (1 << 20):
                os.kill(old.pid, 15)
                signalled = time.time()
            time.sleep(len(d) / (4 << 20))
            self.assertLess(time.time() - t_start, MAX_SECONDS)
        t_done = time.time()
        sock.close()
        code = old.proc.wait(GRACE_S + 15)
        t_exit = time.time()
        body = bytes(got).split(b"\r\n\r\n", 1)[1]
        print(f"\ntransfer in progress: {len(body)} of {n} bytes after SIGTERM at "
              f"{signalled - t_start:.2f} s; done {t_done - signalled:.2f} s after the signal; the "
              f"old process exited {t_exit - t_done:.3f} s after the transfer ended", flush=True)
        self.assertEqual(code, 0)
        self.assertIsNotNone(signalled, "the signal came before the transfer ended")
        self.assertGreater(t_done - signalled, 0.5, "the transfer was still flowing at the signal")
        self.assertEqual(len(body), n, "the transfer in progress was cut")
        self.assertLess(t_exit - t_done, 3.0, "the old process lingered after its last transfer")


if __name__ == "__main__":
    kt.main()
