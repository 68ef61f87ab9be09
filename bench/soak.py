#!/usr/bin/env python3
"""Churn soak for kube-api-lb (issue 19, part 2; stdlib only). Run it through bench/soak.sh.

    soak.py [MINUTES] [--warmup S] [--churn S] [--quiet S] [--out DIR] [--seed N]

One kube-api-lb (YAML config file, HTTP/2 health checks) in front of three TLS stand-in
apiservers (tests/tools/fake_apiserver.py on 127.0.0.11-13), for MINUTES (default 10), in phases:

  churn (warm-up) | quiet (baseline) | churn | quiet | churn | quiet ... (the run ends with a quiet)

Clients, all the time (HTTPS with the test client certificate, like kubelet):
  * new-conn     a new TLS connection per GET /version (Connection: close);
  * keep-alive   GET /version every 0.2 s on one connection, a new one when it breaks;
  * watch        a chunked watch (an event every 200 ms), reconnecting at once when it ends (like
                 client-go's reflectors) or when it stalls for 30 s;
in churn phases only (the quiet phases keep one new-conn client at one request per second):
  * slow reader  GET /bytes of 2 MiB read 64 KiB at a time with a pause, content checked (sha256);
  * vanisher     GET /bytes of 64 MiB, vanishes after a random part of the answer: close() or a
                 reset (SO_LINGER 0), alternately.

Faults, in churn phases only, one apiserver at a time (so at least one always stays ready): kill
(SIGKILL, restarted 1-3 s later), hang (the control file's "hang", or SIGSTOP/SIGCONT, alternately,
for 2-5 s), drain (SIGTERM with a 6 s shutdown delay: /readyz answers 500, then the apiserver
closes its listener and its idle connections; the proxy's config checks /readyz every 2 s, so it
stops sending new connections there in time, as docs/health-checks.md describes for a delay longer
than readyzInterval + fall; started again once it exited) and restart
(SIGTERM twice: it exits at once; started again at once). Before each fault the controller waits
until the proxy reports every endpoint of its current set up again. Every ~10 s the config file is
rewritten (temporary file + rename; the proxy's file watch reloads it), alternating the endpoint
sets {a, b, c} and {b, c}; a quiet phase always runs with {a, b, c}.

Sampled every second from /proc/<proxy pid>: open descriptors, RSS, threads, CPU (utime+stime).

Failure (precise):
  An apiserver is *ready* over a time span when it is in the proxy's endpoint set for the whole
  span (during a reload's change-over only the endpoints of both sets count; an added one counts
  once the proxy reports it up) and no fault touches it in the span: a fault lasts from its onset
  until the proxy reports the apiserver up again after it.
  A client outcome is a *failure* when the client did not get its complete, correct answer (refused,
  reset, TLS error, timeout after 30 s, a status other than 200, a short or wrong body, a watch
  whose headers never came) and some apiserver was ready over the request's whole span, unless:
    - the request ran on an existing connection (a keep-alive request after the first, the rest of a
      watch, a slow read after its headers) whose apiserver was not ready over the span since that
      connection's last good answer (a fault or a reload removing it broke that connection; the
      client reconnects, and that reconnect is judged on its own), or
    - the request's span meets a fault's onset window: from the signal (or the control-file write)
      until the fault took effect (the process died, was stopped, or reported the hang). A
      connection the proxy had already handed to that apiserver, TLS handshake done, cannot be
      moved by an L4 proxy; requests that start later must be served elsewhere.
  Such outcomes are counted as "excused", by reason.
  A watch that ends (cleanly or not) and reconnects is never a failure; its reconnect is a new
  request. A vanisher's deliberate close or reset is not a failure; its request up to that point is
  judged like any other. A wrong body (bytes not those the apiserver sent) is always a failure.

Pass: zero failures; at the end of every quiet phase after the baseline, the descriptor count and
RSS (medians of the phase's last 5 s) within FD_TOL descriptors and RSS_TOL of the baseline (the end
of the first quiet phase, after the warm-up churn filled the allocator's caches); with 3 or more
quiet phases, the least-squares slope over their end values, projected over the run, also within
those tolerances; kube-api-lb still running at the end and exiting 0 on SIGTERM. RSS is reported but
not judged when the binary runs under AddressSanitizer (its quarantine holds freed memory).
Everything is judged on counts and resources, nothing on speed: a slow machine lengthens the waits,
not the verdict.

Writes into --out (default /tmp/kal-soak-<time>): samples.csv, events.json, outcomes.json,
result.json, summary.md, soak.png (bench/soak_plot.py with Debian's /usr/bin/python3 and
python3-matplotlib), and the logs of every process. Exit 0 on pass, 1 on fail, 2 on bad usage.
"""

import argparse
import bisect
import csv
import errno
import json
import os
import random
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (process registry, free ports, helpers)

REPO = bench.REPO
TOOLS = os.path.join(REPO, "tests", "tools")
sys.path.insert(0, TOOLS)
import kal_pattern  # noqa: E402
import kal_python  # noqa: E402

NAMES = ["a", "b", "c"]
IPS = {"a": "127.0.0.11", "b": "127.0.0.12", "c": "127.0.0.13"}
SETS = [["a", "b", "c"], ["b", "c"]]
WATCH_MS = 200
CLIENT_TIMEOUT = 30.0
WATCH_STALL = 30.0
SLOW_BYTES = 2 * 1024 * 1024
VANISH_BYTES = 64 * 1024 * 1024
SHUTDOWN_DELAY = 6.0  # > readyzInterval (2 s) + fall: the proxy sees /readyz 500 in time
READYZ_INTERVAL = "2s"
RELOAD_EVERY = 10.0
FD_TOL = 4            # descriptors: two proxied connections (client + upstream socket each)
RSS_TOL_KIB = 4096    # RSS: 4 MiB or RSS_TOL_FRAC of the baseline, whichever is larger
RSS_TOL_FRAC = 0.10
UP_WAIT = 60.0        # a loaded machine may take long; waiting longer changes no verdict


def now():
    return time.monotonic()


# ---------------------------------------------------------------- the timeline of readiness
class Timeline:
    """Fault intervals per apiserver, endpoint-set changes and fault onsets, for judging."""

    def __init__(self):
        self.lock = threading.Lock()
        self.faults = {n: [] for n in NAMES}  # [start, end or None]
        self.sets = []   # (t, frozenset of members counted as in the set from t on)
        self.onsets = []  # [onset, in effect] of every fault (any apiserver), in onset order

    def set_members(self, t, members):
        with self.lock:
            self.sets.append((t, frozenset(members)))

    def fault_start(self, name, t):
        with self.lock:
            self.faults[name].append([t, None])
            self.onsets.append([t, t])

    def in_effect(self, t):
        """The latest fault's onset window ends at t (the victim died or stopped by then)."""
        with self.lock:
            self.onsets[-1][1] = t

    def fault_end(self, name, t):
        with self.lock:
            self.faults[name][-1][1] = t

    def ready(self, name, t0, t1):
        with self.lock:
            for s, e in self.faults[name]:
                if s <= t1 and (e is None or e >= t0):
                    return False
            # Membership over [t0, t1]: the set in effect at t0 and every set from then to t1.
            i = bisect.bisect_right([t for t, _ in self.sets], t0) - 1
            if i < 0:
                return False
            for t, members in self.sets[i:]:
                if t > t1:
                    break
                if name not in members:
                    return False
            return True

    def some_ready(self, t0, t1):
        return any(self.ready(n, t0, t1) for n in NAMES)

    def onset_within(self, t0, t1):
        """True if a fault's onset window (its signal until it took effect) meets [t0, t1]."""
        with self.lock:
            for a, b in reversed(self.onsets):
                if b < t0 - 60:
                    return False
                if a <= t1 and b >= t0:
                    return True
            return False


class Outcomes:
    """Every client outcome: ok, or an error judged by the rules in the module docstring."""

    def __init__(self, timeline, t_base):
        self.tl = timeline
        self.t_base = t_base
        self.lock = threading.Lock()
        self.counts = {}  # (kind, verdict) -> n
        self.failures = []
        self.excused = {}  # reason -> n
        self.per_second = {}  # int(t - base) -> [ok, failed, excused]
        self.errors = []  # raw, judged at the end

    def _sec(self, t, idx):
        k = int(t - self.t_base)
        row = self.per_second.setdefault(k, [0, 0, 0])
        row[idx] += 1

    def ok(self, kind, t1):
        with self.lock:
            self.counts[(kind, "ok")] = self.counts.get((kind, "ok"), 0) + 1
            self._sec(t1, 0)

    def error(self, kind, t0, t1, err, conn_api=None, conn_since=None, corrupt=False):
        """conn_api: the apiserver of the existing connection the request ran on (None: a new
        connection); conn_since: that connection's last good answer. Judged by judge_all() once
        the run is over and the timeline is complete (a fault's onset window ends only when the
        victim has died or stopped, which may be after the client saw the error)."""
        with self.lock:
            self.errors.append((kind, t0, t1, str(err)[:200], conn_api, conn_since, corrupt))

    def judge_all(self):
        for kind, t0, t1, err, conn_api, conn_since, corrupt in self.errors:
            if corrupt:
                verdict = "failed"
            elif not self.tl.some_ready(t0, t1):
                verdict = "excused: no apiserver ready"
            elif conn_api is not None and not self.tl.ready(conn_api, conn_since, t1):
                verdict = "excused: its apiserver was faulted or removed"
            elif self.tl.onset_within(t0, t1):
                verdict = "excused: a fault took effect during it"
            else:
                verdict = "failed"
            key = (kind, "failed" if verdict == "failed" else "excused")
            self.counts[key] = self.counts.get(key, 0) + 1
            if verdict == "failed":
                self.failures.append({"kind": kind, "t0": round(t0 - self.t_base, 3),
                                      "t1": round(t1 - self.t_base, 3), "error": err,
                                      "conn_api": conn_api})
                self._sec(t1, 1)
            else:
                self.excused[verdict] = self.excused.get(verdict, 0) + 1
                self._sec(t1, 2)

    def total(self, verdict):
        with self.lock:
            return sum(n for (_, v), n in self.counts.items() if v == verdict)


# ---------------------------------------------------------------- clients
class ClientError(Exception):
    pass


def read_head(s, buf=b""):
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d:
            raise ClientError("EOF before the response headers")
        buf += d
        if len(buf) > 65536:
            raise ClientError("headers too long")
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
        raise ClientError(f"bad status line {lines[0][:80]!r}")
    hdrs = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return int(parts[1]), hdrs, rest


def read_body(s, hdrs, rest):
    """Reads a Content-Length body (the stand-in's answers other than watches have one)."""
    n = int(hdrs.get("content-length", "-1"))
    if n < 0:
        raise ClientError("no Content-Length")
    body = rest
    while len(body) < n:
        d = s.recv(min(65536, n - len(body)))
        if not d:
            raise ClientError(f"EOF after {len(body)} of {n} body bytes")
        body += d
    return body[:n]


class Client(threading.Thread):
    def __init__(self, soak, kind):
        super().__init__(daemon=True, name=kind)
        self.soak, self.kind = soak, kind
        self.out = soak.outcomes

    def connect(self):
        raw = socket.create_connection(("127.0.0.1", self.soak.port), timeout=CLIENT_TIMEOUT)
        try:
            return self.soak.ctx.wrap_socket(raw, server_hostname="localhost")
        except BaseException:
            raw.close()
            raise

    def active(self):
        """Waits while this client is paused (quiet phases); False when the run is over."""
        while not self.soak.done.is_set():
            if self.soak.quiet.is_set() and self.kind in ("slow", "vanish", "new-conn-2"):
                time.sleep(0.2)
                continue
            return True
        return False

    def pace(self, busy, quiet):
        time.sleep(quiet if self.soak.quiet.is_set() else busy)


class NewConn(Client):
    def run(self):
        while self.active():
            t0 = now()
            try:
                s = self.connect()
                try:
                    s.sendall(b"GET /version HTTP/1.1\r\nHost: kubernetes\r\n"
                              b"Connection: close\r\n\r\n")
                    st, hdrs, rest = read_head(s)
                    body = read_body(s, hdrs, rest)
                finally:
                    s.close()
                if st != 200 or b'"apiserver"' not in body:
                    raise ClientError(f"status {st}: {body[:80]!r}")
                self.out.ok("new-conn", now())
            except (OSError, ssl.SSLError, ClientError, ValueError) as e:
                self.out.error("new-conn", t0, now(), e)
                time.sleep(0.05)
            self.pace(0.05, 1.0)


class KeepAlive(Client):
    def run(self):
        s, api, since = None, None, None
        while self.active():
            t0 = now()
            try:
                if s is None:
                    s, api, since = self.connect(), None, None
                s.sendall(b"GET /version HTTP/1.1\r\nHost: kubernetes\r\n\r\n")
                st, hdrs, rest = read_head(s)
                body = read_body(s, hdrs, rest)
                if st != 200 or b'"apiserver"' not in body:
                    raise ClientError(f"status {st}: {body[:80]!r}")
                who = hdrs.get("x-apiserver")
                if api is not None and who != api:
                    raise ClientError(f"one connection answered by {api}, then by {who}")
                api, since = who, now()
                self.out.ok("keep-alive", since)
            except (OSError, ssl.SSLError, ClientError, ValueError) as e:
                self.out.error("keep-alive", t0, now(), e, conn_api=api, conn_since=since)
                if s is not None:
                    s.close()
                s = None
                time.sleep(0.05)
            time.sleep(0.2)
        if s is not None:
            s.close()


class Watch(Client):
    def __init__(self, soak, i):
        super().__init__(soak, "watch")
        self.ns = f"soak{i}"
        self.events = self.ends = 0

    def run(self):
        while self.active():
            self.one()

    def one(self):
        t0 = now()
        try:
            s = self.connect()
        except (OSError, ssl.SSLError) as e:
            self.out.error("watch", t0, now(), e)
            time.sleep(0.05)
            return
        api = since = None
        try:
            s.sendall(f"GET /api/v1/namespaces/{self.ns}/pods?watch=1&intervalMs={WATCH_MS} "
                      "HTTP/1.1\r\nHost: kubernetes\r\n\r\n".encode())
            st, hdrs, buf = read_head(s)
            if st != 200:
                raise ClientError(f"watch answered {st}")
            api, since = hdrs.get("x-apiserver"), now()
            self.out.ok("watch", since)
            s.settimeout(1.0)
            while not self.soak.done.is_set():
                while True:  # whole chunks out of buf
                    i = buf.find(b"\r\n")
                    if i < 0:
                        break
                    size = int(buf[:i].split(b";")[0], 16)
                    if size == 0:
                        self.ends += 1
                        return  # the server ended the watch: reconnect
                    if len(buf) < i + 2 + size + 2:
                        break
                    n = buf[i + 2:i + 2 + size].count(b'"type"')
                    if n:
                        self.events += n
                        since = now()
                    buf = buf[i + 2 + size + 2:]
                try:
                    d = s.recv(65536)
                except socket.timeout:
                    if now() - since > WATCH_STALL:
                        raise ClientError(f"no watch event for {WATCH_STALL:.0f} s")
                    continue
                if not d:
                    self.ends += 1
                    return  # ended: reconnect (never a failure by itself)
                buf += d
        except (OSError, ssl.SSLError, ClientError, ValueError) as e:
            if api is None:  # the watch never started: a request that failed
                self.out.error("watch", t0, now(), e)
                time.sleep(0.05)
            elif isinstance(e, ClientError) and "no watch event" in str(e):
                self.out.error("watch-stall", since, now(), e, conn_api=api, conn_since=since)
            else:
                self.ends += 1
        finally:
            s.close()


class SlowReader(Client):
    want = kal_pattern.sha256_of(SLOW_BYTES)

    def run(self):
        import hashlib
        while self.active():
            t0 = now()
            api = since = None
            try:
                s = self.connect()
                try:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
                    s.sendall(f"GET /bytes?n={SLOW_BYTES} HTTP/1.1\r\nHost: kubernetes\r\n"
                              "Connection: close\r\n\r\n".encode())
                    st, hdrs, rest = read_head(s)
                    if st != 200:
                        raise ClientError(f"status {st}")
                    api, since = hdrs.get("x-apiserver"), now()
                    h, got = hashlib.sha256(rest), len(rest)
                    while got < SLOW_BYTES:
                        d = s.recv(min(65536, SLOW_BYTES - got))
                        if not d:
                            raise ClientError(f"EOF after {got} of {SLOW_BYTES} bytes")
                        h.update(d)
                        got += len(d)
                        time.sleep(0.05)
                finally:
                    s.close()
                if h.hexdigest() != self.want:
                    self.out.error("slow", t0, now(), "wrong body (sha256)", corrupt=True)
                else:
                    self.out.ok("slow", now())
            except (OSError, ssl.SSLError, ClientError, ValueError) as e:
                self.out.error("slow", t0, now(), e, conn_api=api, conn_since=since)
                time.sleep(0.05)


class Vanisher(Client):
    def run(self):
        rnd = random.Random(self.soak.seed + 7)
        k = 0
        while self.active():
            k += 1
            t0 = now()
            stop_at = rnd.randrange(0, 512 * 1024)
            reset = k % 2 == 0
            s = None
            try:
                s = self.connect()
                s.sendall(f"GET /bytes?n={VANISH_BYTES} HTTP/1.1\r\nHost: kubernetes\r\n"
                          "Connection: close\r\n\r\n".encode())
                st, hdrs, rest = read_head(s)
                if st != 200:
                    raise ClientError(f"status {st}")
                api, since = hdrs.get("x-apiserver"), now()
                got = len(rest)
                try:
                    while got < stop_at:
                        d = s.recv(65536)
                        if not d:
                            raise ClientError(f"EOF after {got} bytes")
                        got += len(d)
                except (OSError, ssl.SSLError, ClientError) as e:
                    self.out.error("vanish", t0, now(), e, conn_api=api, conn_since=since)
                    continue
                self.out.ok("vanish", now())
            except (OSError, ssl.SSLError, ClientError, ValueError) as e:
                self.out.error("vanish", t0, now(), e)
            finally:
                if s is not None:
                    if reset:  # RST instead of FIN: SO_LINGER with a zero timeout
                        try:
                            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                         b"\x01\x00\x00\x00\x00\x00\x00\x00")
                        except OSError:
                            pass
                    s.close()
            time.sleep(0.1)


# ---------------------------------------------------------------- the run
class Soak:
    def __init__(self, args):
        self.args = args
        self.seed = args.seed
        self.rnd = random.Random(args.seed)
        self.out = args.out
        self.procs = bench.Procs()
        self.done = threading.Event()
        self.stop = threading.Event()  # a signal asked to end early (what ran is still judged)
        self.quiet = threading.Event()
        self.events = []  # (t, kind, target, detail)
        self.samples = []  # (t, fds, rss_kib, threads, cpu, phase)
        self.phases = []  # (kind, t0, t1)
        self.t_base = now()
        self.timeline = Timeline()
        self.outcomes = Outcomes(self.timeline, self.t_base)
        self.kal_bin = os.environ.get("KAL_BIN") or os.path.join(REPO, "build", "kube-api-lb")
        self.apis = {}
        self.api_ports = {}
        self.current_set = 0
        self.reloads = 0
        self.last_reload = now()
        self.fault_kinds = {}
        self.drain_seen = []  # seconds from SIGTERM until the proxy reported the apiserver down

    def ev(self, kind, target="", detail=""):
        t = now()
        self.events.append((t, kind, target, detail))
        bench.log(f"soak: {t - self.t_base:7.1f} s {kind} {target} {detail}".rstrip())
        return t

    # ------------------------------------------------------------ processes
    def api_argv(self, n):
        pki = self.pki
        d = os.path.join(self.out, f"apiserver-{n}")
        return [self.py_h2, os.path.join(TOOLS, "fake_apiserver.py"), "--name", n,
                "--listen", f"{IPS[n]}:{self.api_ports[n]}",
                "--cert", os.path.join(pki, "server.crt"), "--key", os.path.join(pki, "server.key"),
                "--ca", os.path.join(pki, "ca.crt"), "--watch-interval-ms", str(WATCH_MS),
                "--shutdown-delay", str(SHUTDOWN_DELAY), "--shutdown-grace", "5",
                "--control-file", os.path.join(d, "control.json"),
                "--counters-file", os.path.join(d, "counters.json")]

    def start_api(self, n):
        d = os.path.join(self.out, f"apiserver-{n}")
        os.makedirs(d, exist_ok=True)
        ctl = os.path.join(d, "control.json")
        write_json(ctl, {"hang": False})
        p = self.procs.start(self.api_argv(n), os.path.join(self.out, f"apiserver-{n}.log"))
        self.apis[n] = p
        deadline = now() + UP_WAIT
        while not bench.port_in_use(IPS[n], self.api_ports[n]):
            if p.poll() is not None:
                raise RuntimeError(f"apiserver {n} exited ({p.returncode}) at start")
            if now() > deadline:
                raise RuntimeError(f"apiserver {n} not listening after {UP_WAIT:.0f} s")
            time.sleep(0.05)

    def write_config(self, members):
        pki = self.pki
        eps = ", ".join(f'"{IPS[n]}:{self.api_ports[n]}"' for n in members)
        text = f"""# written by bench/soak.py
apiVersion: kubeapilb.config.k8s.io/v1alpha1
kind: KubeAPILBConfiguration
listen: ["127.0.0.1:{self.port}"]
endpoints: [{eps}]
policy: least-conn
drainTimeout: 3s
shutdownGrace: 5s
healthCheck:
  mode: https
  path: /readyz
  http2: true
  readyzInterval: {READYZ_INTERVAL}
  caFile: {pki}/ca.crt
  clientCert: {pki}/health.crt
  clientKey: {pki}/health.key
  serverName: localhost
admin:
  listen: ["127.0.0.1:{self.admin_port}"]
"""
        tmp = self.config + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, self.config)

    def admin(self, path):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}{path}",
                                    timeout=10) as r:
            return r.read().decode()

    def up_endpoints(self):
        """The endpoints the proxy reports up (kube_api_lb_endpoint_up 1), as names."""
        by_addr = {f"{IPS[n]}:{self.api_ports[n]}": n for n in NAMES}
        up = set()
        for line in self.admin("/metrics").splitlines():
            if line.startswith("kube_api_lb_endpoint_up{") and line.rstrip().endswith(" 1"):
                for addr, n in by_addr.items():
                    if f'"{addr}"' in line:
                        up.add(n)
        return up

    def wait_up(self, names, what):
        deadline = now() + UP_WAIT
        while True:
            if self.proxy.poll() is not None:
                raise RuntimeError(f"kube-api-lb exited ({self.proxy.returncode})")
            try:
                if set(names) <= self.up_endpoints():
                    return now()
            except OSError:
                pass
            if now() > deadline:
                self.ev("warning", "", f"{what}: not all of {sorted(names)} up after "
                        f"{UP_WAIT:.0f} s")
                return now()
            time.sleep(0.1)

    def wait_down(self, name, timeout):
        """Waits until the proxy reports `name` not up; returns the time it took, or None."""
        t0 = now()
        while now() - t0 < timeout:
            try:
                if name not in self.up_endpoints():
                    t = self.ev("down", name, "the proxy saw the drain")
                    return t - t0
            except OSError:
                pass
            time.sleep(0.05)
        return None

    def reload_count(self):
        return json.loads(self.admin("/stats"))["config"]["reloads"]

    # ------------------------------------------------------------ sampling
    def sampler(self):
        pid = self.proxy.pid
        clk = os.sysconf("SC_CLK_TCK")
        last = None
        nxt = now()
        while not self.done.is_set():
            try:
                fds = len(os.listdir(f"/proc/{pid}/fd"))
                rss = thr = 0
                with open(f"/proc/{pid}/status") as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            rss = int(line.split()[1])
                        elif line.startswith("Threads:"):
                            thr = int(line.split()[1])
                with open(f"/proc/{pid}/stat") as f:
                    st = f.read().rsplit(")", 1)[1].split()
                cpu_s = (int(st[11]) + int(st[12])) / clk
            except OSError:
                break
            t = now()
            cpu = 0.0 if last is None else (cpu_s - last[1]) / max(1e-6, t - last[0])
            last = (t, cpu_s)
            self.samples.append((t, fds, rss, thr, cpu, self.phase_name))
            nxt += 1.0
            time.sleep(max(0.0, nxt - now()))

    # ------------------------------------------------------------ faults and reloads
    def reload(self):
        old = SETS[self.current_set]
        self.current_set = 1 - self.current_set
        new = SETS[self.current_set]
        before = self.reload_count()
        t = self.ev("reload", "", "{" + ",".join(new) + "}")
        # During the change-over only the endpoints of both sets count as in the set.
        self.timeline.set_members(t, set(old) & set(new))
        self.write_config(new)
        deadline = now() + UP_WAIT
        while self.reload_count() <= before:
            if now() > deadline:
                raise RuntimeError("the proxy did not reload its config file")
            time.sleep(0.05)
        self.reloads += 1
        self.last_reload = now()
        t_up = self.wait_up(new, "after the reload")
        self.timeline.set_members(t_up, new)

    def ensure_set(self, idx):
        if self.current_set != idx:
            self.reload()

    def fault(self):
        members = SETS[self.current_set]
        victim = self.rnd.choice(members)
        kinds = ["kill", "hang", "drain", "restart"]
        kind = kinds[sum(self.fault_kinds.values()) % len(kinds)]
        self.fault_kinds[kind] = self.fault_kinds.get(kind, 0) + 1
        p = self.apis[victim]
        n_kind = self.fault_kinds[kind]
        if kind == "kill":
            self.timeline.fault_start(victim, self.ev("kill", victim, "SIGKILL"))
            p.send_signal(signal.SIGKILL)
            p.wait()
            self.timeline.in_effect(now())
            self.procs.stop(p)
            time.sleep(self.rnd.uniform(1.0, 3.0))
            self.ev("start", victim)
            self.start_api(victim)
        elif kind == "hang":
            how = "control file" if n_kind % 2 else "SIGSTOP"
            self.timeline.fault_start(victim, self.ev("hang", victim, how))
            ctl = os.path.join(self.out, f"apiserver-{victim}", "control.json")
            if how == "SIGSTOP":
                p.send_signal(signal.SIGSTOP)
                wait_for(lambda: proc_state(p.pid) == "T", 10)
            else:
                t_w = time.time()
                write_json(ctl, {"hang": True})
                wait_for(lambda: counters(self.out, victim, t_w).get("hang") is True, 10)
            self.timeline.in_effect(now())
            time.sleep(self.rnd.uniform(2.0, 5.0))
            self.ev("resume", victim)
            if how == "SIGSTOP":
                p.send_signal(signal.SIGCONT)
            else:
                write_json(ctl, {"hang": False})
        elif kind == "drain":
            self.timeline.fault_start(victim, self.ev("drain", victim,
                                                      f"SIGTERM, {SHUTDOWN_DELAY:g} s delay"))
            p.send_signal(signal.SIGTERM)
            t_down = self.wait_down(victim, SHUTDOWN_DELAY + 30)
            if t_down is not None:
                self.drain_seen.append(t_down)
            try:
                p.wait(timeout=SHUTDOWN_DELAY + 30)
            except subprocess.TimeoutExpired:
                self.ev("warning", victim, "did not exit after its drain; killed")
                p.kill()
                p.wait()
            self.procs.stop(p)
            self.ev("start", victim)
            self.start_api(victim)
        else:
            self.timeline.fault_start(victim, self.ev("restart", victim, "SIGTERM x2"))
            p.send_signal(signal.SIGTERM)
            time.sleep(0.05)
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            self.timeline.in_effect(now())
            self.procs.stop(p)
            self.start_api(victim)
        t_up = self.wait_up([victim] if victim in SETS[self.current_set] else [],
                            f"{victim} after {kind}")
        self.timeline.fault_end(victim, t_up)
        self.ev("up", victim)

    # ------------------------------------------------------------ phases
    def plan(self):
        a = self.args
        total = a.minutes * 60.0
        phases = [("churn", min(a.warmup, total / 3)), ("quiet", min(a.quiet, total / 3))]
        left = total - sum(d for _, d in phases)
        while left >= a.quiet + min(a.churn, 5.0):
            c = min(a.churn, left - a.quiet)
            phases += [("churn", c), ("quiet", a.quiet)]
            left -= c + a.quiet
        if left > 0:  # the remainder lengthens the last churn phase
            i = len(phases) - 2
            phases[i] = ("churn", phases[i][1] + left)
        return phases

    def run_phase(self, kind, seconds):
        t0 = now()
        end = t0 + seconds
        self.phase_name = kind
        if kind == "quiet":
            self.quiet.set()
            self.ensure_set(0)
            self.ev("quiet", "", f"{seconds:.0f} s")
            while now() < end and self.proxy.poll() is None and not self.stop.is_set():
                time.sleep(0.2)
        else:
            self.quiet.clear()
            self.ev("churn", "", f"{seconds:.0f} s")
            while now() < end - 1.0 and self.proxy.poll() is None and not self.stop.is_set():
                if now() - self.last_reload >= RELOAD_EVERY:
                    self.reload()
                else:
                    self.fault()
                    time.sleep(self.rnd.uniform(0.5, 2.0))
            while now() < end and not self.stop.is_set():
                time.sleep(0.1)
        self.phases.append((kind, t0, now()))

    def run(self):
        self.py_h2 = kal_python.interpreter("h2")
        self.pki = os.path.join(self.out, "pki")
        subprocess.run([sys.executable, os.path.join(TOOLS, "gen_certs.py"), self.pki],
                       check=True, stdout=subprocess.DEVNULL)
        self.ctx = ssl.create_default_context(cafile=os.path.join(self.pki, "ca.crt"))
        self.ctx.load_cert_chain(os.path.join(self.pki, "client.crt"),
                                 os.path.join(self.pki, "client.key"))
        for n in NAMES:
            self.api_ports[n] = free_port_on(IPS[n])
            self.start_api(n)
        self.port, self.admin_port = bench.free_port(), bench.free_port()
        self.config = os.path.join(self.out, "config.yaml")
        self.write_config(SETS[0])
        self.phase_name = "start"
        self.proxy = self.procs.start([self.kal_bin, f"--config={self.config}"],
                                      os.path.join(self.out, "kube-api-lb.log"))
        t = self.wait_up(NAMES, "at start")
        self.timeline.set_members(t, SETS[0])
        self.sanitized = sanitized(self.proxy.pid, self.kal_bin)
        self.ev("proxy", "", f"pid {self.proxy.pid}{' (ASan)' if self.sanitized else ''}")
        threading.Thread(target=self.sampler, daemon=True).start()
        self.clients = [NewConn(self, "new-conn"), NewConn(self, "new-conn-2"),
                        KeepAlive(self, "keep-alive"), KeepAlive(self, "keep-alive"),
                        SlowReader(self, "slow"), Vanisher(self, "vanish")]
        self.watches = [Watch(self, i) for i in range(4)]
        self.clients += self.watches
        for c in self.clients:
            c.start()
        for kind, seconds in self.plan():
            self.run_phase(kind, seconds)
            if self.proxy.poll() is not None:
                self.ev("proxy-exited", "", f"status {self.proxy.returncode}")
                break
            if self.stop.is_set():
                self.ev("interrupted", "", "by a signal: judging what ran")
                break
        self.done.set()
        for c in self.clients:
            c.join(CLIENT_TIMEOUT + 5)
        self.proxy_alive = self.proxy.poll() is None
        self.proxy.send_signal(signal.SIGTERM)
        try:
            self.proxy_status = self.proxy.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proxy.kill()
            self.proxy_status = "did not exit within 30 s of SIGTERM"
        self.procs.stop(self.proxy)


# ---------------------------------------------------------------- judging and output
def linfit(xs, ys):
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return 0.0
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx


def judge(soak):
    s = soak
    s.outcomes.judge_all()
    quiet_ends = []
    for kind, t0, t1 in s.phases:
        if kind != "quiet":
            continue
        tail = [x for x in s.samples if t1 - 5.0 <= x[0] <= t1]
        if not tail:
            continue
        quiet_ends.append({"t": round(t1 - s.t_base, 1),
                           "fds": statistics.median(x[1] for x in tail),
                           "rss_kib": statistics.median(x[2] for x in tail),
                           "threads": statistics.median(x[3] for x in tail)})
    reasons = []
    checks = []
    rss_judged = not s.sanitized
    base = quiet_ends[0] if quiet_ends else None
    if base is None:
        reasons.append("no quiet phase was sampled")
    else:
        rss_tol = max(RSS_TOL_KIB, RSS_TOL_FRAC * base["rss_kib"])
        for q in quiet_ends[1:]:
            dfd, drss = q["fds"] - base["fds"], q["rss_kib"] - base["rss_kib"]
            ok_fd, ok_rss = dfd <= FD_TOL, drss <= rss_tol or not rss_judged
            checks.append({"t": q["t"], "fds": q["fds"], "dfds": dfd, "rss_kib": q["rss_kib"],
                           "drss_kib": drss, "ok": ok_fd and ok_rss})
            if not ok_fd:
                reasons.append(f"descriptors at the quiet end t={q['t']} s: {q['fds']:g}, "
                               f"baseline {base['fds']:g} (tolerance +{FD_TOL})")
            if not ok_rss:
                reasons.append(f"RSS at the quiet end t={q['t']} s: {q['rss_kib']:g} KiB, "
                               f"baseline {base['rss_kib']:g} KiB (tolerance +{rss_tol:.0f} KiB)")
    trend = None
    if len(quiet_ends) >= 3:
        xs = [q["t"] for q in quiet_ends]
        span = xs[-1] - xs[0]
        fd_slope = linfit(xs, [q["fds"] for q in quiet_ends])
        rss_slope = linfit(xs, [q["rss_kib"] for q in quiet_ends])
        trend = {"fds_per_hour": fd_slope * 3600, "rss_kib_per_hour": rss_slope * 3600,
                 "fds_over_run": fd_slope * span, "rss_kib_over_run": rss_slope * span}
        if fd_slope * span > FD_TOL:
            reasons.append(f"descriptors trend upwards: {fd_slope * 3600:+.1f}/h "
                           f"({fd_slope * span:+.1f} over the run, tolerance {FD_TOL})")
        if rss_judged and rss_slope * span > rss_tol:
            reasons.append(f"RSS trends upwards: {rss_slope * 3600:+.0f} KiB/h "
                           f"({rss_slope * span:+.0f} KiB over the run, tolerance "
                           f"{rss_tol:.0f} KiB)")
    failed = s.outcomes.total("failed")
    if failed:
        reasons.append(f"{failed} failed requests while an apiserver was ready")
    if not s.proxy_alive or s.proxy_status != 0:
        reasons.append(f"kube-api-lb: alive at the end {s.proxy_alive}, exit status "
                       f"{s.proxy_status} on SIGTERM")
    oks = s.outcomes.total("ok")
    if oks == 0:
        reasons.append("no request succeeded at all")
    if s.stop.is_set():
        reasons.append("interrupted by a signal before the planned end (figures are partial)")
    return {"pass": not reasons, "reasons": reasons, "baseline": base, "quiet_ends": quiet_ends,
            "checks": checks, "trend": trend, "rss_judged": rss_judged,
            "fd_tolerance": FD_TOL,
            "rss_tolerance_kib": max(RSS_TOL_KIB, RSS_TOL_FRAC * base["rss_kib"]) if base else None}


def write_outputs(soak, verdict):
    s, out = soak, soak.out
    with open(os.path.join(out, "samples.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["t", "fds", "rss_kib", "threads", "cpu", "phase", "ok", "failed", "excused"])
        for t, fds, rss, thr, cpu, ph in s.samples:
            row = s.outcomes.per_second.get(int(t - s.t_base), [0, 0, 0])
            w.writerow([f"{t - s.t_base:.2f}", fds, rss, thr, f"{cpu:.4f}", ph, *row])
    with open(os.path.join(out, "events.json"), "w") as f:
        json.dump({"events": [(round(t - s.t_base, 3), k, tg, d) for t, k, tg, d in s.events],
                   "phases": [(k, round(a - s.t_base, 3), round(b - s.t_base, 3))
                              for k, a, b in s.phases]}, f, indent=0)
    counts = {f"{k}/{v}": n for (k, v), n in sorted(s.outcomes.counts.items())}
    watch_events = sum(w.events for w in s.watches)
    watch_ends = sum(w.ends for w in s.watches)
    cpu = [x[4] for x in s.samples[1:]]
    result = {
        "pass": verdict["pass"], "reasons": verdict["reasons"], "minutes": s.args.minutes,
        "seconds": round(now() - s.t_base, 1), "seed": s.seed, "sanitized": s.sanitized,
        "outcomes": counts, "ok": s.outcomes.total("ok"), "failed": s.outcomes.total("failed"),
        "excused": s.outcomes.excused, "failures": s.outcomes.failures[:50],
        "faults": s.fault_kinds, "reloads": s.reloads,
        "drain_detected_s": sorted(round(x, 2) for x in s.drain_seen),
        "watch_events": watch_events, "watch_ends": watch_ends,
        "baseline": verdict["baseline"], "quiet_ends": verdict["quiet_ends"],
        "checks": verdict["checks"], "trend": verdict["trend"],
        "rss_judged": verdict["rss_judged"], "fd_tolerance": verdict["fd_tolerance"],
        "rss_tolerance_kib": verdict["rss_tolerance_kib"],
        "peak": {"fds": max((x[1] for x in s.samples), default=0),
                 "rss_kib": max((x[2] for x in s.samples), default=0),
                 "threads": max((x[3] for x in s.samples), default=0),
                 "cpu": max(cpu, default=0.0)},
        "cpu_mean": statistics.fmean(cpu) if cpu else 0.0,
        "proxy_status": s.proxy_status, "load_avg": os.getloadavg(),
    }
    with open(os.path.join(out, "outcomes.json"), "w") as f:
        json.dump({"counts": counts, "failures": s.outcomes.failures}, f, indent=1)
    with open(os.path.join(out, "result.json"), "w") as f:
        json.dump(result, f, indent=1)
    text = summary_text(result)
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write(text + "\n")
    return result, text


def summary_text(r):
    b = r["baseline"] or {}
    last = r["quiet_ends"][-1] if r["quiet_ends"] else {}
    tr = r["trend"]
    ds = r["drain_detected_s"]
    drains = (f"{len(ds)}, after {ds[0]:g}-{ds[-1]:g} s (median {statistics.median(ds):g} s)"
              if ds else "none")
    excused = ", ".join(f"{k.split(': ', 1)[1]}: {v}" for k, v in sorted(r["excused"].items()))
    lines = [
        f"Churn soak: {r['seconds'] / 60:.1f} min, {'PASS' if r['pass'] else 'FAIL'}"
        f"{' (kube-api-lb under AddressSanitizer: RSS not judged)' if r['sanitized'] else ''}",
        "",
        f"- requests: {r['ok']} complete and correct, **{r['failed']} failed** while an "
        f"apiserver was ready, {sum(r['excused'].values())} excused "
        f"({excused or 'none'})",
        f"- by client: {', '.join(f'{k} {v}' for k, v in r['outcomes'].items())}",
        f"- drains seen by the proxy (SIGTERM to its /readyz verdict down): {drains}",
        f"- watches: {r['watch_events']} events received, {r['watch_ends']} ends (each reconnected)",
        f"- faults: {', '.join(f'{k} {v}' for k, v in sorted(r['faults'].items()))}; "
        f"config reloads: {r['reloads']}",
        f"- descriptors: baseline {b.get('fds', 0):g}, last quiet end {last.get('fds', 0):g} "
        f"(tolerance +{r['fd_tolerance']}), peak {r['peak']['fds']}",
        f"- RSS: baseline {b.get('rss_kib', 0) / 1024:.1f} MiB, last quiet end "
        f"{last.get('rss_kib', 0) / 1024:.1f} MiB (tolerance "
        f"+{(r['rss_tolerance_kib'] or 0) / 1024:.1f} MiB), peak {r['peak']['rss_kib'] / 1024:.1f} MiB",
        f"- threads: baseline {b.get('threads', 0):g}, peak {r['peak']['threads']}; CPU mean "
        f"{r['cpu_mean']:.2f} s/s, peak {r['peak']['cpu']:.2f} s/s",
    ]
    if tr:
        lines.append(f"- trend over {len(r['quiet_ends'])} quiet ends (least squares): "
                     f"descriptors {tr['fds_per_hour']:+.2f}/h, RSS "
                     f"{tr['rss_kib_per_hour'] / 1024:+.2f} MiB/h")
    lines.append("- quiet ends (t s: descriptors, RSS MiB): " + "; ".join(
        f"{q['t']:g}: {q['fds']:g}, {q['rss_kib'] / 1024:.1f}" for q in r["quiet_ends"]))
    for reason in r["reasons"]:
        lines.append(f"- FAIL: {reason}")
    return "\n".join(lines)


def write_json(path, obj):
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f)
    os.replace(tmp, path)


def wait_for(pred, timeout):
    deadline = now() + timeout
    while now() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return False


def proc_state(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return ""


def counters(out, name, newer_than):
    """The stand-in's counters file, if written after `newer_than` (wall clock), else {}."""
    try:
        with open(os.path.join(out, f"apiserver-{name}", "counters.json")) as f:
            c = json.load(f)
    except (OSError, ValueError):
        return {}
    return c if c.get("unix_time", 0) > newer_than else {}


def free_port_on(host):
    for _ in range(100):
        with socket.socket() as a:
            a.bind((host, 0))
            port = a.getsockname()[1]
        if not bench.port_in_use("127.0.0.1", port):
            return port
    raise RuntimeError(f"no free port on {host}")


def sanitized(pid, path):
    if os.environ.get("KAL_SANITIZED") == "1":
        return True
    try:
        with open(f"/proc/{pid}/maps") as f:
            if "libasan" in f.read():
                return True
        with open(path, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


def plot(out):
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "soak_plot.py")
    r = subprocess.run(["/usr/bin/python3", script, out], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        bench.log(f"soak: the plot failed:\n{r.stdout[-2000:]}")
    return r.returncode == 0


def main():
    ap = argparse.ArgumentParser(prog="soak.sh", description="kube-api-lb churn soak")
    ap.add_argument("minutes", nargs="?", type=float, default=10.0,
                    help="length of the run in minutes (default 10)")
    ap.add_argument("--warmup", type=float, default=60.0, help="first churn phase, s (default 60)")
    ap.add_argument("--churn", type=float, default=150.0, help="churn phases, s (default 150)")
    ap.add_argument("--quiet", type=float, default=30.0, help="quiet phases, s (default 30)")
    ap.add_argument("--out", help="output directory (default /tmp/kal-soak-<time>)")
    ap.add_argument("--seed", type=int, default=19)
    a = ap.parse_args()
    if not 0.5 <= a.minutes <= 24 * 60:
        ap.error(f"minutes {a.minutes:g}: must be between 0.5 and 1440")
    if a.quiet < 8 or a.warmup < 5 or a.churn < 5:
        ap.error("--quiet must be at least 8 s, --warmup and --churn at least 5 s")
    a.out = a.out or f"/tmp/kal-soak-{time.strftime('%Y%m%d-%H%M%S')}"
    os.makedirs(a.out, exist_ok=True)
    kal_bin = os.environ.get("KAL_BIN") or os.path.join(REPO, "build", "kube-api-lb")
    if not os.access(kal_bin, os.X_OK):
        sys.exit(f"soak: error: no kube-api-lb binary at {kal_bin} (set KAL_BIN)")
    bench.raise_nofile()
    soak = Soak(a)

    def on_signal(num, frame):
        # The first signal ends the run early, still judged and written; a second one at once.
        if soak.stop.is_set():
            sys.exit(128 + num)
        bench.log(f"soak: signal {num}: stopping after the fault in progress (again: at once)")
        soak.stop.set()

    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, on_signal)
    ok = False
    try:
        soak.run()
        verdict = judge(soak)
        result, text = write_outputs(soak, verdict)
        print(text, flush=True)
        plot(a.out)
        bench.log(f"soak: results in {a.out} (result.json, summary.md, samples.csv, soak.png)")
        ok = result["pass"]
    finally:
        soak.done.set()
        # A stopped apiserver cannot act on SIGTERM; a second SIGTERM skips its shutdown delay.
        for p in soak.apis.values():
            if p in soak.procs.popens and p.poll() is None:
                try:
                    p.send_signal(signal.SIGCONT)
                    p.send_signal(signal.SIGTERM)
                    time.sleep(0.05)
                    p.send_signal(signal.SIGTERM)
                except OSError:
                    pass
        soak.procs.stop_all()
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
