#!/usr/bin/env python3
"""Live reload of kube-api-lb's YAML config file under live traffic (issue 4).

One proxy runs from <tmp>/config.yaml in front of TLS stand-in apiservers while
  * a bounded background loop opens new short connections (TLS + client cert, GET /version,
    Connection: close) through it: every one of them must succeed, across every reload;
  * two long-lived watch streams per endpoint (chunked events every 100 ms) must keep flowing
    through every reload, unless their endpoint was removed (then they close after drainTimeout).
The steps run in order on the same process (method names carry the order):
  a) add an endpoint by an atomic rename (file watch, no signal): traffic only once it is healthy
  b1) remove an endpoint: no new connections to it; its streams closed after drainTimeout, not
      before
  b2) re-add it, remove it again: a reload in the middle of the drain does not postpone it
  c) change the policy with SIGHUP: the distribution of new connections changes
  d) break the file (syntax error, unknown field, and SIGHUP on the broken file): rejected with
     FILE:LINE:COL in the log, running config stays, metrics count failures, hash unchanged; a
     health-check CA file that cannot be loaded: rejected naming it, endpoints and checks stay
  e) add a listener: the unchanged one keeps its socket, nothing queued on it is reset
  f) change the listen address: the new one serves, the old one stops accepting, streams survive
A second, small class checks that other files changing in the config's directory do not hold a
reload back indefinitely.
"""
import collections
import datetime
import os
import re
import signal
import socket
import ssl
import struct
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kal_testlib as kt  # noqa: E402

DRAIN = 2.0  # drainTimeout written in the config, seconds
WATCH_MS = 100  # stand-in watch event interval
MAX_SECONDS = 100  # hard bound of every background loop
STREAMS_PER_ENDPOINT = 2
# The proxy logs "configuration reloaded" once its main loop has applied a reload; the workers
# take the new settings on their next loop turn (posted), so counting starts a little later.
SETTLE = 0.3


def log_time(line):
    """Wall-clock seconds of a kube-api-lb text log line (ts=2026-11-27T11:22:04.926Z)."""
    m = re.search(r"ts=(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z", line)
    if not m:
        raise AssertionError(f"no ts= in log line {line!r}")
    return datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def listener_inode(host, port):
    """Inode of the listening IPv4 socket host:port in /proc/net/tcp, or None."""
    want = "%08X:%04X" % (struct.unpack("<I", socket.inet_aton(host))[0], port)
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            cols = line.split()
            if cols[1] == want and cols[3] == "0A":
                return int(cols[9])
    return None


class Stream(threading.Thread):
    """One watch through the proxy, read until it ends or stop() (bounded by MAX_SECONDS)."""

    def __init__(self, host, port, certs, ns):
        super().__init__(daemon=True)
        self.host, self.port, self.ns = host, port, ns
        self.ctx = kt.client_context(certs)
        self.server = None
        self.opened = threading.Event()
        self.open_error = None
        self.last_data = None
        self.events = 0
        self.ended_at = None
        self.end_how = None
        self._halt = threading.Event()
        self.sock = None

    def run(self):
        try:
            raw = socket.create_connection((self.host, self.port), timeout=5)
            self.sock = self.ctx.wrap_socket(raw, server_hostname=self.host)
            self.sock.sendall(f"GET /api/v1/namespaces/{self.ns}/pods?watch=1&intervalMs="
                              f"{WATCH_MS} HTTP/1.1\r\nHost: kubernetes\r\n\r\n".encode())
            buf = b""
            while b"\r\n\r\n" not in buf:
                d = self.sock.recv(65536)
                if not d:
                    raise OSError("EOF before the response headers")
                buf += d
            head = buf.split(b"\r\n\r\n", 1)[0].decode("latin-1")
            if not head.startswith("HTTP/1.1 200"):
                raise OSError(f"watch answered {head.splitlines()[0]!r}")
            m = re.search(r"^x-apiserver:\s*(\S+)", head, re.M | re.I)
            self.server = m.group(1) if m else "?"
            self.last_data = time.time()
        except (OSError, ssl.SSLError) as e:
            self.open_error = repr(e)
            self.ended_at = time.time()
            self.end_how = "open failed"
            self.opened.set()
            return
        self.opened.set()
        self.sock.settimeout(0.25)
        deadline = time.monotonic() + MAX_SECONDS
        while not self._halt.is_set() and time.monotonic() < deadline:
            try:
                d = self.sock.recv(65536)
            except socket.timeout:
                continue
            except (OSError, ssl.SSLError) as e:
                if self._halt.is_set():
                    break
                self.ended_at, self.end_how = time.time(), f"error {e!r}"
                break
            if not d:
                self.ended_at, self.end_how = time.time(), "eof"
                break
            self.events += d.count(b'"type"')
            self.last_data = time.time()
        try:
            self.sock.close()
        except OSError:
            pass

    def alive(self, within=1.0):
        """Still open and an event arrived within the last `within` seconds."""
        return self.ended_at is None and self.last_data is not None and \
            time.time() - self.last_data < within

    def describe(self):
        return (f"stream {self.ns} via {self.server}: events={self.events} "
                f"ended={self.end_how} at {self.ended_at}")

    def stop(self):
        self._halt.set()


class ShortLoad:
    """Threads opening new connections (GET /version, Connection: close) in a bounded loop.
    results: (t0, t1, server or None, error or None, target port)."""

    def __init__(self, host, port, certs, threads=2, pause=0.01):
        self.host, self.port, self.certs, self.pause = host, port, certs, pause
        self.results = []
        self.lock = threading.Lock()
        self._halt = threading.Event()
        self.threads = [threading.Thread(target=self._loop, daemon=True) for _ in range(threads)]
        for t in self.threads:
            t.start()

    def _loop(self):
        deadline = time.monotonic() + MAX_SECONDS
        while not self._halt.is_set() and time.monotonic() < deadline:
            t0 = time.time()
            server, err = None, None
            try:
                st, h, body = kt.https_request(self.host, self.port, "/version", self.certs,
                                               timeout=5)
                if st != 200:
                    err = f"status {st}"
                else:
                    server = h.get("x-apiserver")
            except (OSError, ssl.SSLError, ValueError) as e:
                err = repr(e)
            with self.lock:
                self.results.append((t0, time.time(), server, err, self.port))
            time.sleep(self.pause)

    def snapshot(self):
        with self.lock:
            return list(self.results)

    def since(self, t):
        """Results of connections started at or after wall-clock time t."""
        return [r for r in self.snapshot() if r[0] >= t]

    def failures(self, since=0.0):
        return [r for r in self.snapshot() if r[3] is not None and r[0] >= since]

    def wait_count(self, t, n, timeout=10):
        return kt.wait_until(lambda: len(self.since(t)) >= n and self.since(t), timeout,
                             what=f"{n} short connections")

    def stop(self):
        self._halt.set()
        for t in self.threads:
            t.join(10)


class ReloadUnderTraffic(unittest.TestCase):
    """The steps share one proxy, one load and the same streams, in name order."""

    @classmethod
    def setUpClass(cls):
        cls.certs = kt.make_certs()
        d = kt.tmpdir()
        cls.dir = os.path.join(d, "etc")
        os.mkdir(cls.dir)
        cls.path = os.path.join(cls.dir, "config.yaml")
        cls.apis = {}
        for i, n in enumerate(("a", "b", "c")):
            cls.apis[n] = kt.FakeApiserver(n, cls.certs, listen=[f"127.0.0.1{i + 1}:0"])
        # The endpoint added later answers /readyz 500 until its ready file exists. The server
        # cert names 127.0.0.1 (not .14), and health checks verify it.
        cls.ready_file = os.path.join(d, "d-ready")
        cls.apis["d"] = kt.FakeApiserver("d", cls.certs, listen=["127.0.0.1:0"],
                                         args=["--ready-file", cls.ready_file])
        cls.ep = {n: a.endpoint for n, a in cls.apis.items()}
        cls.name_of = {v: k for k, v in cls.ep.items()}
        cls.port = kt.free_port()
        cls.admin_port = kt.free_port()
        cls.settings = {"listen": [f"127.0.0.1:{cls.port}"], "endpoints": ["a", "b", "c"],
                        "policy": "round-robin"}
        cls.write_config(**cls.settings)
        cls.proc = kt.spawn(kt.proxy_cmd(f"--config={cls.path}"), label="kube-api-lb")

        def up():
            if cls.proc.poll() is not None:
                raise AssertionError(f"kube-api-lb exited ({cls.proc.returncode}):\n"
                                     f"{kt.read_log(cls.proc)[-3000:]}")
            return kt.is_listening(cls.port) and kt.is_listening(cls.admin_port)
        kt.wait_until(up, 10, what="kube-api-lb to listen")
        cls.wait_up(["a", "b", "c"])
        # Streams first (round-robin with nothing else going on spreads them exactly), then load.
        cls.streams = []
        for n in ("a", "b", "c"):
            cls.open_streams_to(n, STREAMS_PER_ENDPOINT)
        cls.load = ShortLoad("127.0.0.1", cls.port, cls.certs)
        time.sleep(0.5)

    @classmethod
    def tearDownClass(cls):
        load = getattr(cls, "load", None)
        if load:
            load.stop()
        for s in getattr(cls, "streams", []):
            s.stop()
        proc = getattr(cls, "proc", None)
        if proc is not None and proc.poll() is None:
            rc = kt.stop(proc)
            if rc != 0:
                sys.stderr.write(f"kube-api-lb exited {rc} at the end\n")

    # ------------------------------------------------------------ helpers
    @classmethod
    def config_text(cls, listen, endpoints, policy, grace="2s", admin_port=None):
        c = cls.certs
        eps = ", ".join(f'"{cls.ep[n]}"' for n in endpoints)
        ls = ", ".join(f'"{x}"' for x in listen)
        return f"""# written by test_reload.py
apiVersion: kubeapilb.config.k8s.io/v1alpha1
kind: KubeAPILBConfiguration
listen: [{ls}]
endpoints: [{eps}]
policy: {policy}
drainTimeout: {int(DRAIN * 1000)}ms
shutdownGrace: {grace}
healthCheck:
  mode: https
  path: /readyz
  interval: 300ms
  fastInterval: 100ms
  downInterval: 200ms
  caFile: {c.ca}
  clientCert: {c.health_crt}
  clientKey: {c.health_key}
admin:
  listen: ["127.0.0.1:{admin_port or cls.admin_port}"]
"""

    @classmethod
    def write_raw(cls, text):
        """Replaces the config file the way kubelet and Ansible do: write a temporary file in the
        same directory, then rename it over the old one."""
        tmp = cls.path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, cls.path)

    @classmethod
    def write_config(cls, padding=0, **kw):
        """Writes the settings with `kw` changed; `padding` comment lines make the file slower to
        parse (the reload then blocks the accepting loop for a noticeable time)."""
        s = dict(cls.settings)
        s.update(kw)
        pad = "".join(f"# padding {i:07d} {'x' * 60}\n" for i in range(padding))
        cls.write_raw(cls.config_text(s["listen"], s["endpoints"], s["policy"],
                                      s.get("grace", "2s"), s.get("admin_port")) + pad)
        return s

    @classmethod
    def log(cls):
        return kt.read_log(cls.proc)

    @classmethod
    def log_lines(cls, pattern):
        return [ln for ln in cls.log().splitlines() if re.search(pattern, ln)]

    RELOADED = r'msg="configuration reloaded"'
    REJECTED = r'msg="configuration reload rejected'

    def wait_log(self, pattern, count, timeout=5):
        """Waits for the count-th log line matching pattern; returns it."""
        def got():
            if self.proc.poll() is not None:
                raise AssertionError(f"kube-api-lb exited ({self.proc.returncode})")
            ls = self.log_lines(pattern)
            return ls[count - 1] if len(ls) >= count else None
        return kt.wait_until(got, timeout, what=f"log line #{count} matching {pattern}")

    @classmethod
    def admin_get(cls, path):
        return kt.http_get("127.0.0.1", cls.admin_port, path)

    @classmethod
    def metrics(cls):
        st, body = cls.admin_get("/metrics")
        assert st == 200, st
        return kt.parse_prometheus(body)

    @classmethod
    def config_metrics(cls):
        m = cls.metrics()
        info = [dict(ls) for (n, ls), v in m.items() if n == "kube_api_lb_config_info"]
        assert len(info) == 1, info
        return (kt.metric(m, "kube_api_lb_config_reloads_total"),
                kt.metric(m, "kube_api_lb_config_reload_failures_total"), info[0]["hash"])

    @classmethod
    def endpoint_up(cls, name):
        return kt.metric(cls.metrics(), "kube_api_lb_endpoint_up", endpoint=cls.ep[name])

    @classmethod
    def wait_up(cls, names, timeout=10):
        kt.wait_until(lambda: all(cls.endpoint_up(n) == 1 for n in names), timeout,
                      interval=0.05, what=f"{names} up")

    @classmethod
    def open_streams_to(cls, name, n, attempts=40):
        """Opens watches until `n` of them reached `name`; the others are closed again."""
        got = 0
        for i in range(attempts):
            s = Stream("127.0.0.1", cls.port, cls.certs, f"{name}-{i}")
            s.start()
            if not s.opened.wait(10) or s.server is None:
                raise AssertionError(f"watch through the proxy failed: {s.open_error}")
            if s.server == name:
                cls.streams.append(s)
                got += 1
                if got == n:
                    return
            else:
                s.stop()
                s.join(2)
        raise AssertionError(f"could not open {n} watches to {name} in {attempts} attempts")

    def streams_of(self, name):
        return [s for s in self.streams if s.server == name]

    def assert_streams_alive(self, names, when):
        for n in names:
            ss = self.streams_of(n)
            self.assertGreaterEqual(len(ss), STREAMS_PER_ENDPOINT, f"{when}: streams to {n}")
            for s in ss:
                self.assertTrue(s.alive(), f"{when}: {s.describe()} is not flowing")

    # Failures before this time were already reported by the step that caused them.
    failures_reported_until = 0.0

    def assert_no_failed_connection(self, when):
        bad = self.load.failures(self.failures_reported_until)
        self.assertEqual(bad, [], f"{when}: {len(bad)} new connections failed, first: {bad[:3]}")

    def counts_since(self, t, n, timeout=10):
        """Servers of the first n short connections started after t."""
        rs = sorted(self.load.wait_count(t, n, timeout))[:n]
        return collections.Counter(r[2] for r in rs)

    # ------------------------------------------------------------ the steps
    def test_0_baseline(self):
        self.assertIn(f"config={self.path}", self.log_lines(r'msg="kube-api-lb started"')[0])
        got = self.counts_since(time.time(), 30)
        self.assertEqual(set(got), {"a", "b", "c"}, f"round-robin over a, b, c: {got}")
        self.assert_streams_alive(["a", "b", "c"], "baseline")
        self.assert_no_failed_connection("baseline")
        reloads, failures, _ = self.config_metrics()
        self.assertEqual((reloads, failures), (0, 0))
        m = self.metrics()
        self.__class__.baseline = {n: (kt.metric(m, "kube_api_lb_endpoint_health_transitions_total",
                                                 endpoint=self.ep[n]),
                                       kt.metric(m, "kube_api_lb_endpoint_health_checks_total",
                                                 endpoint=self.ep[n])) for n in ("a", "b")}

    def test_a_add_endpoint_by_rename(self):
        before = self.config_metrics()
        conns_a = kt.metric(self.metrics(), "kube_api_lb_endpoint_connections_total",
                            endpoint=self.ep["a"])
        n = len(self.log_lines(self.RELOADED))
        self.__class__.settings = self.write_config(endpoints=["a", "b", "c", "d"])
        line = self.wait_log(self.RELOADED, n + 1)
        self.assertIn('trigger="file change"', line)
        self.assertTrue(self.log_lines(r'msg="endpoint added.*endpoint=' +
                                       re.escape(self.ep["d"])), self.log()[-2000:])
        t_reload = time.time()
        # d is checked (and failing /readyz) but gets no client while it is not healthy.
        kt.wait_until(lambda: kt.metric(self.metrics(), "kube_api_lb_endpoint_health_checks_total",
                                        endpoint=self.ep["d"]) >= 2, 5,
                      what="d to be health-checked")
        time.sleep(1.5)
        self.assertEqual(self.endpoint_up("d"), 0)
        during = collections.Counter(r[2] for r in self.load.since(t_reload))
        self.assertGreater(sum(during.values()), 20, during)
        self.assertNotIn("d", during, f"unhealthy new endpoint got clients: {during}")
        self.assertEqual(set(during), {"a", "b", "c"}, during)
        # Unchanged endpoints kept their state: counters were not reset, still up.
        m = self.metrics()
        self.assertGreaterEqual(kt.metric(m, "kube_api_lb_endpoint_connections_total",
                                          endpoint=self.ep["a"]), conns_a)
        self.assertEqual(kt.metric(m, "kube_api_lb_endpoint_up", endpoint=self.ep["a"]), 1)
        # Now it becomes ready: it comes up, and only then gets clients.
        open(self.ready_file, "w").close()
        self.wait_up(["d"], timeout=15)  # not ready a while: checked every 0.5-10 s (h2 backoff)
        up_lines = [ln for ln in self.log_lines(r"health=up")
                    if f"endpoint={self.ep['d']}" in ln]
        self.assertTrue(up_lines, self.log()[-2000:])
        t_up = log_time(up_lines[0])
        t = time.time()
        got = self.counts_since(t, 40)
        self.assertEqual(set(got), {"a", "b", "c", "d"}, f"round-robin over four: {got}")
        first_d = min(r[1] for r in self.load.snapshot() if r[2] == "d")
        self.assertGreaterEqual(first_d, t_up - 0.005,
                                "a client reached d before its health check passed")
        self.open_streams_to("d", STREAMS_PER_ENDPOINT)
        reloads, failures, h = self.config_metrics()
        self.assertEqual((reloads, failures), (before[0] + 1, before[1]))
        self.assertNotEqual(h, before[2], "config hash did not change on a successful reload")
        self.assert_streams_alive(["a", "b", "c", "d"], "after adding d")
        self.assert_no_failed_connection("after adding d")

    def test_b1_remove_endpoint_drains(self):
        c_streams = self.streams_of("c")
        self.assertEqual(len(c_streams), STREAMS_PER_ENDPOINT)
        self.assertTrue(all(s.alive() for s in c_streams))
        n = len(self.log_lines(self.RELOADED))
        t_write = time.time()
        self.__class__.settings = self.write_config(endpoints=["a", "b", "d"])
        line = self.wait_log(self.RELOADED, n + 1)
        t_seen = time.time()
        t_reload = log_time(line)
        self.assertGreaterEqual(t_reload, t_write - 0.01)
        removed = self.log_lines(r'msg="endpoint removed.*endpoint=' + re.escape(self.ep["c"]))
        self.assertEqual(len(removed), 1, self.log()[-2000:])
        self.assertRegex(removed[0], r"connections=([2-9]|\d\d)")
        # No new connection goes to c once the reload is done.
        time.sleep(max(0.0, DRAIN - 0.5 - (time.time() - t_reload)))
        # Not before drainTimeout: c's streams still flow 1.5 s after the reload.
        for s in c_streams:
            self.assertTrue(s.alive(1.0), f"{s.describe()} closed before drainTimeout "
                                          f"(reload at {t_reload:.3f})")
        after = collections.Counter(r[2] for r in self.load.since(t_seen + SETTLE))
        self.assertGreater(sum(after.values()), 10, after)
        self.assertNotIn("c", after, f"new connections reached the removed endpoint: {after}")
        self.assertEqual(set(after), {"a", "b", "d"}, after)
        # After drainTimeout: closed by the proxy, within a second of it.
        kt.wait_until(lambda: all(s.ended_at for s in c_streams), DRAIN + 3,
                      what="the removed endpoint's streams to be closed")
        for s in c_streams:
            waited = s.ended_at - t_reload
            print(f"  {s.describe()}: closed {waited:.3f}s after the reload", file=sys.stderr)
            # The drain's clock starts before the reload's log line is written (the loop's time
            # when the reload began), so the lower bound is taken from the write of the file.
            self.assertGreaterEqual(s.ended_at - t_write, DRAIN, s.describe())
            self.assertLessEqual(waited, DRAIN + 1.0, s.describe())
        # The apiserver itself is fine: it was the proxy that closed them.
        self.assertEqual(self.apis["c"].proc.poll(), None)
        self.assert_streams_alive(["a", "b", "d"], "after removing c")
        self.assert_no_failed_connection("after removing c")
        # Last (it does not affect the steps after it): the drained connections are counted where
        # an operator can see them: the process-wide counter keeps counting after the removed
        # endpoint's own series is gone.
        drained = sum(v for (name, _), v in self.metrics().items()
                      if name == "kube_api_lb_drained_connections_total")
        self.assertGreaterEqual(drained, len(c_streams),
                                "the connections closed by the drain are not counted in "
                                "kube_api_lb_drained_connections_total")

    def add_c_with_streams_then_remove_it(self):
        """Adds c back, opens streams to it, removes it again (the reload not yet awaited).
        Returns the count of reload lines before, c's new streams and when the removal was
        written."""
        n = len(self.log_lines(self.RELOADED))
        self.__class__.settings = self.write_config(endpoints=["a", "b", "c", "d"])
        self.wait_log(self.RELOADED, n + 1)
        self.wait_up(["c"], timeout=5)
        old = set(self.streams_of("c"))
        self.open_streams_to("c", STREAMS_PER_ENDPOINT)
        c_streams = [s for s in self.streams_of("c") if s not in old]
        t_write = time.time()
        self.__class__.settings = self.write_config(endpoints=["a", "b", "d"])
        return n, c_streams, t_write

    def test_b2_drain_not_postponed_by_another_reload(self):
        """c comes back (a new endpoint again: checked, then used), gets streams, is removed
        again, and 1.2 s into its drain an unrelated setting changes: the drain still ends
        drainTimeout after the removal."""
        n, c_streams, t_write = self.add_c_with_streams_then_remove_it()
        line = self.wait_log(self.RELOADED, n + 2)
        t_reload = log_time(line)
        time.sleep(max(0.0, 1.2 - (time.time() - t_reload)))
        self.__class__.settings = self.write_config(grace="3s")
        self.wait_log(self.RELOADED, n + 3)
        kt.wait_until(lambda: all(s.ended_at for s in c_streams), DRAIN + 4,
                      what="the removed endpoint's streams to be closed")
        for s in c_streams:
            waited = s.ended_at - t_reload
            self.assertGreaterEqual(s.ended_at - t_write, DRAIN, s.describe())  # as in b1
            self.assertLessEqual(waited, DRAIN + 0.8,
                                 f"{s.describe()}: closed {waited:.2f}s after its endpoint was "
                                 f"removed (drainTimeout {DRAIN}s; a second reload came 1.2s "
                                 "into the drain)")
        self.assert_streams_alive(["a", "b", "d"], "after the second drain")
        self.assert_no_failed_connection("after the second drain")

    def test_b3_endpoint_added_back_while_draining_keeps_its_connections(self):
        """c is removed and, before its drain timeout, added back (an Ansible run that rewrites
        the file twice, a revert): it is the same endpoint, so its streams stay."""
        n, c_streams, _ = self.add_c_with_streams_then_remove_it()
        self.wait_log(self.RELOADED, n + 2)
        time.sleep(0.3)
        self.__class__.settings = self.write_config(endpoints=["a", "b", "c", "d"])
        t_back = log_time(self.wait_log(self.RELOADED, n + 3))
        self.assertEqual(len(self.log_lines(r'msg="removed endpoint added back.*endpoint=' +
                                            re.escape(self.ep["c"]))), 1, self.log()[-2000:])
        time.sleep(max(0.0, DRAIN + 1.0 - (time.time() - t_back)))
        for s in c_streams:
            self.assertTrue(s.alive(1.0), f"{s.describe()}: closed although its endpoint was "
                                          "added back before the drain timeout")
        # One endpoint, one series (kt.metric requires exactly one sample).
        m = self.metrics()
        self.assertEqual(kt.metric(m, "kube_api_lb_endpoint_up", endpoint=self.ep["c"]), 1)
        # Back to a, b, d for the steps after this one: c drains as usual.
        self.__class__.settings = self.write_config(endpoints=["a", "b", "d"])
        self.wait_log(self.RELOADED, n + 4)
        kt.wait_until(lambda: all(s.ended_at for s in c_streams), DRAIN + 4,
                      what="c's streams to be drained after its final removal")
        self.assert_streams_alive(["a", "b", "d"], "after c came and went")
        self.assert_no_failed_connection("after c came and went")

    def test_c_policy_change_by_sighup(self):
        t = time.time()
        before = collections.Counter(r[2] for r in self.load.since(t - 1.0))
        self.assertGreater(len(before), 1, f"round-robin spreads: {before}")
        reloads0 = self.config_metrics()[0]
        n = len(self.log_lines(self.RELOADED))
        # The watch would notice the rename only after its 200 ms debounce; SIGHUP comes first and
        # the debounced event then finds the content it already applied.
        self.__class__.settings = self.write_config(policy="first")
        self.proc.send_signal(signal.SIGHUP)
        line = self.wait_log(self.RELOADED, n + 1)
        t_seen = time.time()
        self.assertIn("trigger=SIGHUP", line)
        got = self.counts_since(t_seen + SETTLE, 30)
        self.assertEqual(got, collections.Counter({"a": 30}),
                         f"policy first: every new connection to a (first listed), got {got}")
        time.sleep(0.5)
        self.assertEqual(len(self.log_lines(self.RELOADED)), n + 1,
                         "the same change was applied twice (SIGHUP and file watch)")
        self.assertEqual(self.config_metrics()[0], reloads0 + 1)
        self.assert_streams_alive(["a", "b", "d"], "after the policy change")
        self.assert_no_failed_connection("after the policy change")

    def reject(self, text, want, trigger):
        """Installs `text` (or signals if text is None); the reload must be rejected with `want`
        (a regex) in the log line, leaving everything as it was."""
        reloads, failures, h = self.config_metrics()
        n_ok = len(self.log_lines(self.RELOADED))
        n_bad = len(self.log_lines(self.REJECTED))
        if text is None:
            self.proc.send_signal(signal.SIGHUP)
        else:
            self.write_raw(text)
        line = self.wait_log(self.REJECTED, n_bad + 1)
        self.assertIn(f"trigger={trigger}", line)
        self.assertRegex(line, want)
        time.sleep(0.4)  # a late second reload would show up here
        self.assertEqual(len(self.log_lines(self.RELOADED)), n_ok)
        self.assertEqual(len(self.log_lines(self.REJECTED)), n_bad + 1)
        self.assertEqual(self.config_metrics(), (reloads, failures + 1, h))
        # The running config stays: still policy first, still a, b, d.
        t = time.time()
        self.assertEqual(self.counts_since(t, 10), collections.Counter({"a": 10}))
        self.assertTrue(kt.is_listening(self.port))
        for name in ("a", "b", "d"):
            self.assertEqual(self.endpoint_up(name), 1)
        self.assert_streams_alive(["a", "b", "d"], f"after a rejected reload ({want})")
        self.assert_no_failed_connection(f"after a rejected reload ({want})")

    def test_d_broken_file_is_rejected(self):
        good = self.config_text(self.settings["listen"], self.settings["endpoints"],
                                self.settings["policy"], self.settings.get("grace", "2s"))
        lines = good.splitlines(keepends=True)
        # Line 6 is "policy: first": make it a YAML syntax error (a second ':' at column 14).
        self.assertEqual(lines[5], "policy: first\n")
        syntax = "".join(lines[:5] + ["policy: first: x\n"] + lines[6:])
        p = re.escape(self.path)
        self.reject(syntax, p + r":6:14: YAML syntax error", '"file change"')
        unknown = "".join(lines[:6] + ["drainTimeot: 5s\n"] + lines[6:])
        self.reject(unknown, p + r':7:1: unknown field \\?"drainTimeot\\?"', '"file change"')
        # SIGHUP with the broken file still in place: rejected again.
        self.reject(None, p + r":7:1: unknown field", "SIGHUP")
        # A health-check TLS file that cannot be loaded is a mistake on the node, not a failure
        # of the apiservers: rejected naming the file; the running checks keep every endpoint up.
        missing = os.path.join(self.dir, "missing-ca.crt")
        bad_ca = re.sub(r"(?m)^  caFile: .*$", f"  caFile: {missing}", good)
        self.assertNotEqual(bad_ca, good)
        self.reject(bad_ca, r"health CA file .*" + re.escape(missing), '"file change"')
        # The good file back: same settings, same hash, nothing to do.
        _, failures, h = self.config_metrics()
        n = len(self.log_lines(r'msg="configuration unchanged"'))
        self.write_raw(good)
        self.wait_log(r'msg="configuration unchanged"', n + 1)
        self.assertEqual(self.config_metrics()[1:], (failures, h))
        self.assert_no_failed_connection("after the good file came back")

    def test_e_add_listener_keeps_the_old_one(self):
        """Adding a listener must not touch the unchanged one: closing and re-binding it resets
        every connection waiting in its accept queue. The file is padded so that the reload's
        parse holds the (single) event loop for a while and connections of the live load queue
        up meanwhile, as they would behind any busy moment."""
        port = self.port
        inode = listener_inode("127.0.0.1", port)
        self.assertIsNotNone(inode)
        extra = kt.free_port()
        n = len(self.log_lines(self.RELOADED))
        t0 = time.time()
        try:
            self.__class__.settings = self.write_config(
                listen=[f"127.0.0.1:{port}", f"127.0.0.1:{extra}"], padding=20000)
            self.wait_log(self.RELOADED, n + 1, timeout=10)
            kt.wait_until(lambda: kt.is_listening(extra), 5, what="the added listener")
            self.assertEqual(kt.served_by("127.0.0.1", extra, self.certs), "a")
            time.sleep(0.5)
            problems = []
            now = listener_inode("127.0.0.1", port)
            if now != inode:
                problems.append(f"the unchanged listener 127.0.0.1:{port} was closed and "
                                f"re-bound (socket inode {inode} -> {now})")
            bad = self.load.failures(t0)
            if bad:
                problems.append(f"{len(bad)} new connections to 127.0.0.1:{port} failed around "
                                f"the reload, e.g. {bad[:2]}")
            self.assertEqual(problems, [])
            self.assert_streams_alive(["a", "b", "d"], "after adding a listener")
        finally:
            self.__class__.failures_reported_until = time.time()

    def test_f_listen_change(self):
        # New connections to the old address fail by design once it closes, so the load is
        # stopped (every connection so far checked), and restarted on the new address.
        self.load.stop()
        self.assert_no_failed_connection("before the listen change")
        old_ports = [int(x.rsplit(":", 1)[1]) for x in self.settings["listen"]]
        new_port = kt.free_port()
        reloads = self.config_metrics()[0]
        n = len(self.log_lines(self.RELOADED))
        self.__class__.settings = self.write_config(listen=[f"127.0.0.1:{new_port}"])
        self.wait_log(self.RELOADED, n + 1)
        kt.wait_until(lambda: kt.is_listening(new_port), 5, what="the new listener")
        for old_port in old_ports:
            # Each worker loop applies the change when it next runs: the main loop's new
            # listener can be up a moment before another loop has closed its copy of the old one.
            kt.wait_until(lambda: not kt.is_listening(old_port), 5,
                          what=f"the old listener {old_port} to close in every worker")
            with self.assertRaises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", old_port), timeout=2).close()
        self.assertEqual(kt.served_by("127.0.0.1", new_port, self.certs), "a")
        self.assertEqual(self.config_metrics()[0], reloads + 1)
        # Streams accepted on the old listener still flow.
        time.sleep(0.5)
        self.assert_streams_alive(["a", "b", "d"], "after the listen change")
        self.__class__.port = new_port
        self.__class__.load = ShortLoad("127.0.0.1", new_port, self.certs)
        t = time.time()
        self.assertEqual(self.counts_since(t, 20), collections.Counter({"a": 20}))
        self.assert_no_failed_connection("on the new listener")

    def test_g_failed_admin_change_is_retried(self):
        """The admin address cannot be bound: the rest of the reload applies, the admin server
        stays where it was, and the same file sent again (SIGHUP) retries the admin change
        instead of being taken for the configuration already running."""
        blocker = socket.socket()
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(1)
        busy = blocker.getsockname()[1]
        n_ok = len(self.log_lines(self.RELOADED))
        n_admin = len(self.log_lines(r'msg="admin listeners not changed"'))
        self.__class__.settings = self.write_config(admin_port=busy)
        self.wait_log(r'msg="admin listeners not changed"', n_admin + 1)
        self.wait_log(self.RELOADED, n_ok + 1)
        self.assertEqual(self.admin_get("/healthz")[0], 200, "the old admin address stopped")
        blocker.close()
        self.proc.send_signal(signal.SIGHUP)
        self.wait_log(self.RELOADED, n_ok + 2)
        kt.wait_until(lambda: kt.is_listening(busy), 5, what="the admin change to be retried")
        self.assertEqual(kt.http_get("127.0.0.1", busy, "/healthz")[0], 200)
        # Back to the original admin address for the last step.
        s = dict(self.settings)
        s.pop("admin_port")
        self.__class__.settings = s
        self.write_config()
        self.wait_log(self.RELOADED, n_ok + 3)
        kt.wait_until(lambda: kt.is_listening(self.admin_port), 5, what="the admin address back")

    def test_z_end(self):
        """Every stream of a kept endpoint lived through all of it; clean exit."""
        for n in ("a", "b", "d"):
            for s in self.streams_of(n):
                self.assertIsNone(s.ended_at, s.describe())
        self.assert_no_failed_connection("at the end")
        # Unchanged endpoints kept their health state through every reload: no transition (no
        # trip through unknown or down), and their check counters went on from where they were.
        m = self.metrics()
        for n, (transitions, checks) in self.baseline.items():
            self.assertEqual(kt.metric(m, "kube_api_lb_endpoint_health_transitions_total",
                                       endpoint=self.ep[n]), transitions, n)
            self.assertGreater(kt.metric(m, "kube_api_lb_endpoint_health_checks_total",
                                         endpoint=self.ep[n]), checks, n)
        total = len(self.load.snapshot())
        self.assertGreater(total, 20)
        print(f"  short connections on the last listener: {total}; streams kept: "
              f"{sum(1 for s in self.streams if s.ended_at is None)}, events "
              f"{sum(s.events for s in self.streams)}", file=sys.stderr)
        self.load.stop()
        for s in self.streams:
            s.stop()
        self.assertEqual(kt.stop(self.proc), 0, self.log()[-2000:])


class ReloadNotStarved(unittest.TestCase):
    """Other files in the config file's directory (a log, an editor's swap file) change all the
    time; the debounce must still let the config change through within a bounded delay."""

    def test_reload_despite_a_busy_directory(self):
        certs = kt.make_certs()
        api = kt.FakeApiserver("solo", certs, listen=["127.0.0.11:0"])
        d = os.path.join(kt.tmpdir(), "busy-etc")
        os.mkdir(d)
        path = os.path.join(d, "config.yaml")
        port, admin = kt.free_port(), kt.free_port()

        def text(policy):
            return (f"apiVersion: kubeapilb.config.k8s.io/v1alpha1\n"
                    f"kind: KubeAPILBConfiguration\nlisten: [\"127.0.0.1:{port}\"]\n"
                    f"endpoints: [\"{api.endpoint}\"]\npolicy: {policy}\n"
                    f"healthCheck: {{mode: tcp}}\n"
                    f"admin: {{listen: [\"127.0.0.1:{admin}\"]}}\n")
        with open(path, "w") as f:
            f.write(text("least-conn"))
        p = kt.spawn(kt.proxy_cmd(f"--config={path}"), label="kube-api-lb-busy-dir")
        self.addCleanup(lambda: p.poll() is None and kt.stop(p))
        kt.wait_until(lambda: kt.is_listening(port) and kt.is_listening(admin), 10,
                      what="kube-api-lb to listen")
        with open(path + ".tmp", "w") as f:
            f.write(text("first"))
        os.rename(path + ".tmp", path)
        t0 = time.monotonic()
        reloaded_after = None
        other = os.path.join(d, "kube-api-lb.other.log")
        while time.monotonic() - t0 < 4.0:  # a sibling file written every 100 ms
            with open(other, "a") as f:
                f.write("busy\n")
            if "configuration reloaded" in kt.read_log(p):
                reloaded_after = time.monotonic() - t0
                break
            time.sleep(0.1)
        self.assertIsNotNone(reloaded_after,
                             "no reload within 4 s of the rename while another file in the "
                             "directory changed every 100 ms (the debounce restarts on every "
                             "event in the directory, whatever the file)")
        self.assertLess(reloaded_after, 2.0)
        self.assertEqual(kt.stop(p), 0)


if __name__ == "__main__":
    kt.main()
