#!/usr/bin/env python3
"""Network-namespace fault kit for kube-api-lb's failover tests (stdlib only, needs root).

As a module (imported by test_netns_failover.py):
  Netns            a throw-away network namespace (lo up), commands and Python threads inside it,
                   iptables inside it, deleted on close() and at exit
  NsApiserver      tests/tools/fake_apiserver.py run inside the namespace, with the instant its
                   listener appeared (read from /proc/<pid>/net/tcp, so nothing connects to it)
  NsProxy          kube-api-lb run inside the namespace; its log parsed into events
  LoadClient       this file run as a client load inside the namespace (see below); its JSON events

As a program, the client load (run it inside the namespace):
  kal_netns.py load --port 6443 --ca CA --cert CRT --key KEY [--host 127.0.0.1] [--req-threads 3]
      [--req-interval 0.05] [--streams 6] [--watch-interval-ms 100] [--timeout 5] [--stall 6]
      [--max-seconds 60]
  * request loops: each opens a new TLS connection (client certificate), GET /version with
    Connection: close, reads the answer; on failure it retries after 5 ms (a tight loop while every
    apiserver is down), on success after --req-interval
  * streams: each keeps one watch (GET .../pods?watch=1) open, reads its chunked events, and on any
    end reconnects at once (20 ms between failed attempts). The first streams are opened one after
    the other so that least-conn spreads them evenly.
  Every request and stream event is one JSON line on stdout (wall-clock times, time.time()):
    {"ev":"req","t0":..,"ths":..|null,"t1":..,"ok":bool,"server":..,"phase":..,"err":..}
        phase: where it failed: connect | handshake | request (the TLS handshake had completed,
        i.e. an apiserver had already answered in part)
    {"ev":"stream_open","id":i,"t":..,"t0":..,"server":..,"n":k,"failed_attempts":m}
    {"ev":"stream_fail","id":i,"t0":..,"ths":..,"t":..,"phase":..,"err":..}
        a (re)connect that failed
    {"ev":"stream_end","id":i,"t":..,"server":..,"n":k,"how":"clean"|"cut"|"stall","err":..,
        "last_event":..}   clean = the server ended the chunked body (terminal chunk);
        cut = EOF or error without it (the proxy or a dying server closed it); stall = no event
        for --stall seconds (the client gave up on it)
    {"ev":"ready"} once every stream got its first event; {"ev":"done"} at the end.
  Stops on SIGTERM/SIGINT or after --max-seconds (always bounded).
"""
import argparse
import atexit
import calendar
import ctypes
import faulthandler
import glob
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CLONE_NEWNET = 0x40000000


# ================================================================ orchestration side
def _run(argv, timeout=15, check=True, input_text=None):
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=timeout, input=input_text)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed ({r.returncode}): {r.stderr.strip()}")
    return r


def can_use_netns():
    """(ok, reason): root and a working `ip netns`."""
    if os.geteuid() != 0:
        return False, "needs root (network namespaces, iptables)"
    for tool in ("ip",):
        if not any(os.access(os.path.join(d, tool), os.X_OK)
                   for d in os.environ.get("PATH", "/usr/sbin:/usr/bin").split(":") + ["/usr/sbin",
                                                                                     "/sbin"]):
            return False, f"{tool} not found"
    return True, ""


def require_netns():
    """For a test class's setUpClass: skips without root or `ip netns`, and deletes namespaces
    left behind by earlier runs."""
    import unittest

    ok, why = can_use_netns()
    if not ok:
        raise unittest.SkipTest(why)
    remove_stale_namespaces()


def iptables_path():
    for d in os.environ.get("PATH", "").split(":") + ["/usr/sbin", "/sbin"]:
        p = os.path.join(d, "iptables")
        if d and os.access(p, os.X_OK):
            return p
    return None


def remove_stale_namespaces(prefix="kal-ft-"):
    """Deletes namespaces left behind by earlier runs whose test process is gone (SIGKILLed)."""
    for path in glob.glob(f"/run/netns/{prefix}*"):
        m = re.match(re.escape(prefix) + r"(\d+)-", os.path.basename(path))
        if not m:
            continue
        pid = int(m.group(1))
        if pid != os.getpid() and not os.path.exists(f"/proc/{pid}"):
            _run(["ip", "netns", "del", os.path.basename(path)], check=False)


_live_namespaces = set()


@atexit.register
def _delete_leftovers():
    for name in list(_live_namespaces):
        _run(["ip", "netns", "del", name], check=False)
        _live_namespaces.discard(name)


_libc = ctypes.CDLL(None, use_errno=True)


class Netns:
    """A network namespace named kal-ft-<pid>-<tag> with lo up (so 127.0.0.0/8 works inside)."""

    def __init__(self, tag):
        self.name = f"kal-ft-{os.getpid()}-{tag}"
        _run(["ip", "netns", "add", self.name])
        _live_namespaces.add(self.name)
        _run(["ip", "-n", self.name, "link", "set", "lo", "up"])

    def prefix(self):
        return ["ip", "netns", "exec", self.name]

    def run(self, argv, **kw):
        return _run(self.prefix() + list(argv), **kw)

    def call(self, fn, timeout=10):
        """Runs fn() in a new thread that first joins this namespace (sockets it creates live
        there); returns its result or re-raises its exception."""
        out = {}

        def body():
            try:
                fd = os.open(f"/run/netns/{self.name}", os.O_RDONLY)
                try:
                    if _libc.setns(fd, CLONE_NEWNET) != 0:
                        e = ctypes.get_errno()
                        raise OSError(e, f"setns({self.name}): {os.strerror(e)}")
                finally:
                    os.close(fd)
                out["v"] = fn()
            except BaseException as e:  # handed to the caller
                out["e"] = e

        t = threading.Thread(target=body, daemon=True)
        t.start()
        t.join(timeout)
        if t.is_alive():
            raise AssertionError(f"call inside {self.name} did not return within {timeout}s")
        if "e" in out:
            raise out["e"]
        return out.get("v")

    def http_get(self, host, port, path, timeout=3):
        """Plain-HTTP GET from inside the namespace (the proxy's admin port); (status, text)."""
        import kal_testlib

        return self.call(lambda: kal_testlib.http_get(host, port, path, timeout), timeout + 2)

    def iptables_batch(self, rules):
        """Appends rules (lists of iptables args without the binary, e.g. ["-A", "OUTPUT", ...])
        to the filter table atomically with iptables-restore --noflush."""
        ipt = iptables_path()
        if not ipt:
            raise AssertionError("iptables is not installed (apt-get install -y iptables)")
        text = "*filter\n" + "".join(" ".join(r) + "\n" for r in rules) + "COMMIT\n"
        self.run([ipt + "-restore", "--noflush"], input_text=text)

    def close(self):
        if self.name in _live_namespaces:
            _run(["ip", "netns", "del", self.name], check=False)
            _live_namespaces.discard(self.name)


def _hex_ipv4(ip):
    b = socket.inet_aton(ip)
    return (b[::-1] if sys.byteorder == "little" else b).hex().upper()


def listening_in(pid, ip, port):
    """True if TCP ip:port is in LISTEN state in the network namespace of process pid."""
    want = f"{_hex_ipv4(ip)}:{port:04X}"
    try:
        with open(f"/proc/{pid}/net/tcp") as f:
            next(f)
            for line in f:
                cols = line.split()
                if cols[1] == want and cols[3] == "0A":
                    return True
    except (OSError, StopIteration):
        pass
    return False


class NsApiserver:
    """A fake apiserver inside `ns` on ip:port. .listen_t = wall time of its listen(2) (from its
    "accepting since" log line), .seen_t = when this test saw the listener in /proc."""

    def __init__(self, kt, ns, name, ip, certs, port=6443, args=(), timeout=10, wait=True):
        self.kt, self.ns, self.name, self.ip, self.port = kt, ns, name, ip, port
        self.certs, self.args = certs, list(args)
        self.endpoint = f"{ip}:{port}"
        self.proc = None
        self.start(timeout, wait)

    def start(self, timeout=10, wait=True):
        """Starts the process; with wait, returns once it listens (else call wait_listen)."""
        cmd = self.ns.prefix() + [
            self.kt.tool_python(), os.path.join(self.kt.TOOLS, "fake_apiserver.py"),
            "--name", self.name, "--listen", self.endpoint, "--cert", self.certs.server_crt,
            "--key", self.certs.server_key, "--ca", self.certs.ca, *self.args
        ]
        self.spawn_t = time.time()
        self.proc = self.kt.spawn(cmd, label=f"apiserver-{self.name}")
        if wait:
            self.wait_listen(timeout)
        return self

    def wait_listen(self, timeout=10):
        deadline = time.monotonic() + timeout
        while not listening_in(self.proc.pid, self.ip, self.port):
            if self.proc.poll() is not None:
                raise AssertionError(f"apiserver {self.name} exited ({self.proc.returncode}) at "
                                     f"start:\n{self.kt.read_log(self.proc)[-2000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"apiserver {self.name} did not listen on {self.endpoint} "
                                     f"within {timeout}s")
            time.sleep(0.002)
        self.seen_t = time.time()
        # The instant of listen(2) as the apiserver reports it (polling /proc lags under load).
        self.listen_t = self.seen_t
        while time.monotonic() < deadline:
            m = re.search(r"accepting since unix_time=([0-9.]+)", self.kt.read_log(self.proc))
            if m:
                self.listen_t = float(m.group(1))
                break
            time.sleep(0.005)
        return self

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        """Sends sig; returns the wall time just before it was sent."""
        t = time.time()
        os.kill(self.proc.pid, sig)
        return t

    def wait_exit(self, timeout):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"apiserver {self.name} did not exit within {timeout}s")

    def cleanup(self):
        if self.alive():
            try:
                os.kill(self.proc.pid, signal.SIGCONT)
                os.kill(self.proc.pid, signal.SIGKILL)
            except OSError:
                pass
            self.proc.wait(5)


_kv_re = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|\S*)')


def parse_log_line(line):
    """kube-api-lb's text log line -> dict (values unquoted; 't' = wall time from ts)."""
    d = {}
    for k, v in _kv_re.findall(line):
        if v.startswith('"'):
            try:
                v = json.loads(v)
            except ValueError:
                v = v[1:-1]
        d[k] = v
    ts = d.get("ts")
    if ts:
        m = re.match(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)\.(\d{3})Z", ts)
        if m:
            y, mo, da, h, mi, s, ms = (int(x) for x in m.groups())
            d["t"] = calendar.timegm((y, mo, da, h, mi, s)) + ms / 1000.0
    return d


class NsProxy:
    """kube-api-lb inside `ns`, listening on 127.0.0.1:port, admin on 127.0.0.1:admin_port."""

    def __init__(self, kt, ns, endpoints, args=(), port=6443, admin_port=8081, timeout=10):
        self.kt, self.ns, self.port, self.admin_port = kt, ns, port, admin_port
        cmd = self.ns.prefix() + kt.proxy_cmd(
            "--endpoints=" + ",".join(endpoints), f"--listen=127.0.0.1:{port}",
            f"--admin-listen=127.0.0.1:{admin_port}", *args)
        self.proc = kt.spawn(cmd, label="kube-api-lb")
        deadline = time.monotonic() + timeout
        while not (listening_in(self.proc.pid, "127.0.0.1", port) and
                   listening_in(self.proc.pid, "127.0.0.1", admin_port)):
            if self.proc.poll() is not None:
                raise AssertionError(f"kube-api-lb exited ({self.proc.returncode}) at start:\n"
                                     f"{self.log()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"kube-api-lb did not listen within {timeout}s")
            time.sleep(0.01)

    def log(self):
        return self.kt.read_log(self.proc)

    def events(self, msg=None, since=None, **kv):
        """Parsed log lines, optionally only those with this msg, at or after `since` (wall
        time; the log has ms resolution, so 1 ms of slack) and matching every key=value."""
        out = []
        for line in self.log().splitlines():
            if not line.startswith("ts="):
                continue
            d = parse_log_line(line)
            if msg is not None and d.get("msg") != msg:
                continue
            if since is not None and d.get("t", 0) < since - 0.001:
                continue
            if all(d.get(k) == v for k, v in kv.items()):
                out.append(d)
        return out

    def transitions(self, endpoint, health, since=None):
        """Health changes of endpoint to `health` (transitions, escalations and first checks)."""
        return [e for e in self.events(since=since, endpoint=endpoint, health=health)
                if e.get("msg") in ("health transition", "health first check",
                                    "health escalated to hard failure")]

    def wait_health(self, endpoint, health, since=None, timeout=10):
        deadline = time.monotonic() + timeout
        while True:
            got = self.transitions(endpoint, health, since)
            if got:
                return got[0]
            if self.proc.poll() is not None:
                raise AssertionError(f"kube-api-lb exited ({self.proc.returncode}):\n"
                                     f"{self.log()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"kube-api-lb: {endpoint} not health={health} within "
                                     f"{timeout}s")
            time.sleep(0.02)

    def admin_get(self, path, timeout=3):
        return self.ns.http_get("127.0.0.1", self.admin_port, path, timeout)

    def metrics(self):
        st, body = self.admin_get("/metrics")
        if st != 200:
            raise AssertionError(f"/metrics answered {st}")
        return self.kt.parse_prometheus(body)

    def stop(self, timeout=10):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"kube-api-lb did not exit within {timeout}s of SIGTERM")


class LoadClient:
    """This file's `load` mode inside `ns`; JSON events collected in .events (reader thread)."""

    def __init__(self, kt, ns, certs, port=6443, args=()):
        self.kt = kt
        cmd = ns.prefix() + [
            sys.executable, "-u", os.path.abspath(__file__), "load", "--port", str(port),
            "--ca", certs.ca, "--cert", certs.client_crt, "--key", certs.client_key, *args
        ]
        self.proc = kt.spawn(cmd, stdout=subprocess.PIPE, label="load")
        feed = kt.JsonEvents(self.proc)
        self.events, self.cond, self.reader = feed.events, feed.cond, feed.reader

    def snapshot(self, kind=None):
        with self.cond:
            return [e for e in self.events if kind is None or e["ev"] == kind]

    def wait_for(self, pred, timeout, what):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                v = pred(self.events)
                if v:
                    return v
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self.reader.is_alive()):
                    raise AssertionError(f"load client: timed out after {timeout}s waiting for "
                                         f"{what}; its stderr:\n"
                                         f"{self.kt.read_log(self.proc)[-2000:]}")
                self.cond.wait(min(left, 0.1))

    def stop(self, timeout=15):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            # Where is it stuck? faulthandler (registered on SIGUSR1 in the client) writes every
            # thread's stack to its stderr log.
            try:
                self.proc.send_signal(signal.SIGUSR1)
                time.sleep(1.0)
            except OSError:
                pass
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"load client did not stop within {timeout}s; its stderr (thread "
                                 f"stacks):\n{self.kt.read_log(self.proc)[-6000:]}")
        self.reader.join(5)
        return self.snapshot()


# ================================================================ client load side
class Stopped(Exception):
    pass


class Stalled(Exception):
    pass


class Reader:
    """Buffered reads from a (TLS) socket that has a short timeout: between receives it checks
    `stop` and gives up with Stalled after `stall` seconds without data (if stall is set)."""

    def __init__(self, sock, stop, stall=None, deadline=None):
        self.sock, self.stop, self.stall, self.deadline = sock, stop, stall, deadline
        self.buf = b""
        self.last = time.time()

    def _fill(self):
        while True:
            if self.stop.is_set():
                raise Stopped()
            try:
                data = self.sock.recv(65536)
            except (socket.timeout, TimeoutError):
                now = time.time()
                if self.stop.is_set():
                    raise Stopped()
                if self.stall is not None and now - self.last > self.stall:
                    raise Stalled(f"no data for {now - self.last:.1f}s")
                if self.deadline is not None and now > self.deadline:
                    raise TimeoutError("request timed out")
                continue
            if not data:
                raise EOFError("connection closed")
            self.last = time.time()
            self.buf += data
            return

    def readline(self, limit=16384):
        while b"\r\n" not in self.buf:
            if len(self.buf) > limit:
                raise ValueError("line too long")
            self._fill()
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def read(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def head(self):
        status = self.readline()
        parts = status.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
            raise ValueError(f"bad status line {status[:80]!r}")
        headers = {}
        while True:
            h = self.readline()
            if not h:
                break
            k, _, v = h.decode("latin-1").partition(":")
            headers[k.strip().lower()] = v.strip()
        return int(parts[1]), headers


def _err(e):
    return f"{type(e).__name__}: {e}"[:200]


class Load:
    def __init__(self, a):
        self.a = a
        self.stop = threading.Event()
        self.signalled = False  # set by the SIGTERM/SIGINT handler: a plain flag, no lock
        self.out_lock = threading.Lock()
        ctx = ssl.create_default_context(cafile=a.ca)
        ctx.load_cert_chain(a.cert, a.key)
        self.ctx = ctx
        self.first_open = [threading.Event() for _ in range(a.streams)]

    def emit(self, ev):
        line = json.dumps(ev, separators=(",", ":"))
        with self.out_lock:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    def connect(self, timeout):
        raw = socket.create_connection((self.a.host, self.a.port), timeout=timeout)
        try:
            return self.ctx.wrap_socket(raw, server_hostname=self.a.host)
        except BaseException:
            raw.close()
            raise

    # ---- new connections, one request each
    def request_loop(self, idx):
        while not self.stop.is_set():
            rec = self.one_request()
            self.emit(rec)
            self.stop.wait(self.a.req_interval if rec["ok"] else 0.005)

    def one_request(self):
        a = self.a
        rec = {"ev": "req", "t0": time.time(), "ths": None, "ok": False, "server": None,
               "phase": "connect", "err": None}
        deadline = rec["t0"] + a.timeout
        s = None
        try:
            raw = socket.create_connection((a.host, a.port), timeout=a.timeout)
            rec["phase"] = "handshake"
            try:
                s = self.ctx.wrap_socket(raw, server_hostname=a.host)
            except BaseException:
                raw.close()
                raise
            rec["ths"] = time.time()
            rec["phase"] = "request"
            s.settimeout(0.25)
            s.sendall(b"GET /version HTTP/1.1\r\nHost: kubernetes\r\n"
                      b"User-Agent: kal-netns-load\r\nConnection: close\r\n\r\n")
            r = Reader(s, threading.Event(), deadline=deadline)
            status, headers = r.head()
            body = r.read(int(headers.get("content-length", "0")))
            if status != 200:
                raise ValueError(f"status {status}: {body[:100]!r}")
            rec["server"] = json.loads(body)["apiserver"]
            rec["ok"] = True
        except Exception as e:  # every failure is data
            rec["err"] = _err(e)
        finally:
            if s is not None:
                try:
                    s.close()
                except OSError:
                    pass
        rec["t1"] = time.time()
        return rec

    # ---- long-lived watch streams
    def open_stream(self, idx):
        """Opens a watch; returns (sock, reader, server) after its first event."""
        a = self.a
        phase = "connect"
        s = ths = None
        try:
            raw = socket.create_connection((a.host, a.port), timeout=a.timeout)
            phase = "handshake"
            try:
                s = self.ctx.wrap_socket(raw, server_hostname=a.host)
            except BaseException:
                raw.close()
                raise
            ths = time.time()
            phase = "request"
            s.settimeout(0.25)
            s.sendall(f"GET /api/v1/namespaces/default/pods?watch=1&intervalMs="
                      f"{a.watch_interval_ms:g} HTTP/1.1\r\nHost: kubernetes\r\n"
                      f"User-Agent: kal-netns-watch-{idx}\r\n\r\n".encode())
            r = Reader(s, self.stop, stall=a.stall, deadline=time.time() + a.timeout)
            status, headers = r.head()
            if status != 200 or headers.get("transfer-encoding", "").lower() != "chunked":
                raise ValueError(f"watch answered {status} {headers}")
            server = headers.get("x-apiserver")
            ev = self.next_event(r)
            if ev is None:
                raise EOFError("watch ended before its first event")
            r.deadline = None
            return s, r, server
        except BaseException as e:
            if s is not None:
                s.close()
            e.phase = phase
            e.ths = ths
            raise

    @staticmethod
    def next_event(r):
        """One watch event (decoded JSON) or None at the terminal chunk."""
        size = int(r.readline().split(b";")[0], 16)
        if size == 0:
            r.readline()
            return None
        data = r.read(size)
        if r.read(2) != b"\r\n":
            raise ValueError("bad chunk framing")
        return json.loads(data)

    def stream_loop(self, idx):
        # Initial opens one after the other (least-conn then spreads them evenly).
        if idx > 0:
            while not self.first_open[idx - 1].wait(0.1):
                if self.stop.is_set():
                    return
        n = 0
        while not self.stop.is_set():
            failed = 0
            t0 = time.time()
            while True:
                ta = time.time()
                try:
                    s, r, server = self.open_stream(idx)
                    break
                except Stopped:
                    return
                except Exception as e:
                    failed += 1
                    self.emit({"ev": "stream_fail", "id": idx, "t0": ta, "t": time.time(),
                               "ths": getattr(e, "ths", None), "phase": getattr(e, "phase", "?"),
                               "err": _err(e)})
                    if self.stop.wait(0.02):
                        return
            n += 1
            self.emit({"ev": "stream_open", "id": idx, "t0": t0, "t": time.time(),
                       "server": server, "n": n, "failed_attempts": failed})
            self.first_open[idx].set()
            how, err = "clean", None
            try:
                while True:
                    ev = self.next_event(r)
                    if ev is None:
                        break
                    got = ev["object"]["metadata"]["annotations"]["fake-apiserver"]
                    if got != server:
                        raise ValueError(f"event from {got} on a stream of {server}")
            except Stopped:
                s.close()
                return
            except Stalled as e:
                how, err = "stall", _err(e)
            except Exception as e:
                how, err = "cut", _err(e)
            end = time.time()
            s.close()
            self.emit({"ev": "stream_end", "id": idx, "t": end, "server": server, "n": n,
                       "how": how, "err": err, "last_event": r.last})

    def run(self):
        a = self.a
        threads = [threading.Thread(target=self.stream_loop, args=(i,), daemon=True)
                   for i in range(a.streams)]
        threads += [threading.Thread(target=self.request_loop, args=(i,), daemon=True)
                    for i in range(a.req_threads)]
        for t in threads:
            t.start()
        end = time.monotonic() + a.max_seconds
        announced = False
        # Polls self.signalled (set by the signal handler) rather than waiting on self.stop: a
        # handler runs in this thread between two bytecodes, possibly while this thread holds
        # self.stop's internal lock inside Event.wait(), and Event.set() from there would wait
        # for that lock forever (the one time this client did not stop on SIGTERM). The handler
        # only assigns a flag; stop.set() happens here, outside any lock.
        while not self.signalled and time.monotonic() < end:
            if not announced and all(e.is_set() for e in self.first_open):
                announced = True
                self.emit({"ev": "ready", "t": time.time()})
            time.sleep(0.05)
        self.stop.set()
        join_end = time.monotonic() + a.timeout + 2
        for t in threads:
            t.join(max(0.0, join_end - time.monotonic()))
        self.emit({"ev": "done", "t": time.time(),
                   "stuck_threads": sum(1 for t in threads if t.is_alive())})


def load_main(argv):
    ap = argparse.ArgumentParser(prog="kal_netns.py load")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--req-threads", type=int, default=3)
    ap.add_argument("--req-interval", type=float, default=0.05)
    ap.add_argument("--streams", type=int, default=6)
    ap.add_argument("--watch-interval-ms", type=float, default=100.0)
    ap.add_argument("--timeout", type=float, default=5.0)
    ap.add_argument("--stall", type=float, default=6.0)
    ap.add_argument("--max-seconds", type=float, default=60.0)
    a = ap.parse_args(argv)
    load = Load(a)

    def on_signal(num, frame):
        load.signalled = True  # nothing that takes a lock: see Load.run()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # LoadClient.stop's diagnosis
    load.run()
    sys.stdout.flush()
    os._exit(0)  # daemon threads stuck in a receive must not delay the exit


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "load":
        load_main(sys.argv[2:])
    else:
        sys.stderr.write(__doc__)
        sys.exit(2)
