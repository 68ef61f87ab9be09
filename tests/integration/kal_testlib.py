"""Shared helpers for kube-api-lb's integration tests (stdlib only).

Processes: every process started here is recorded and stopped at exit (by PID), and gets
PR_SET_PDEATHSIG so it dies with the test even if the test is SIGKILLed (e.g. by a CTest timeout).
Start them from the main thread (the death signal follows the thread that forked).

Environment: KAL_BIN (the built binary, default <repo>/build/kube-api-lb), KAL_SOURCE_DIR (repo root),
KAL_KEEP_TMP=1 keeps the temporary directory (certs, logs) for inspection.
"""
import atexit
import ctypes
import fcntl
import hashlib
import http.client
import json
import os
import re
import resource
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import termios
import threading
import time
import unittest

REPO = os.environ.get("KAL_SOURCE_DIR") or os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KAL_BIN = os.environ.get("KAL_BIN") or os.path.join(REPO, "build", "kube-api-lb")
TOOLS = os.path.join(REPO, "tests", "tools")
sys.path.insert(0, TOOLS)
import kal_pattern  # noqa: E402,F401  (re-exported for tests)
import kal_python  # noqa: E402
from kal_wait import wait_until  # noqa: E402,F401  (re-exported for tests)


def tool_python():
    """The interpreter for the stand-in apiserver: this one if it can import h2 (HTTP/2), else
    Debian's /usr/bin/python3 where python3-h2 installs (the first python3 on PATH may be a pyenv
    or virtualenv one). fake_apiserver.py would re-execute itself there anyway; choosing it up
    front saves that second start."""
    return kal_python.interpreter("h2")

_procs = []
_logs = []  # (label, path) of every log file, dumped when a test fails
_tmp = None


# ---------------------------------------------------------------- temp dir and cleanup
def tmpdir():
    """A per-process scratch directory, removed at exit unless KAL_KEEP_TMP=1."""
    global _tmp
    if _tmp is None:
        _tmp = tempfile.mkdtemp(prefix="kal-it-")
    return _tmp


def _cleanup():
    for p in reversed(_procs):
        if p.poll() is None:
            try:
                p.send_signal(signal.SIGCONT)  # a SIGSTOPped child cannot act on SIGTERM
                p.terminate()
            except OSError:
                pass
    deadline = time.monotonic() + 3
    for p in reversed(_procs):
        try:
            p.wait(max(0.05, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    if _tmp and os.environ.get("KAL_KEEP_TMP") != "1":
        shutil.rmtree(_tmp, ignore_errors=True)
    elif _tmp:
        sys.stderr.write(f"kal_testlib: kept {_tmp}\n")


atexit.register(_cleanup)


def _on_term(num, frame):
    sys.exit(128 + num)  # runs atexit


signal.signal(signal.SIGTERM, _on_term)

_libc = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1


def _child_setup(nofile=None):
    def fn():
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if isinstance(nofile, tuple):  # (soft, hard): a hard limit the process cannot raise
            resource.setrlimit(resource.RLIMIT_NOFILE, nofile)
        elif nofile is not None:
            soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(nofile, hard), hard))
    return fn


def spawn(args, stdout=subprocess.DEVNULL, stderr=None, env=None, nofile=None, label=None):
    """Starts a process that is stopped at exit. stderr: None -> a log file in tmpdir() (path in
    proc.log_path). nofile: soft RLIMIT_NOFILE for the child (default: inherited), or a
    (soft, hard) tuple."""
    log_path = None
    if stderr is None:
        label = label or os.path.basename(args[0])
        fd, log_path = tempfile.mkstemp(prefix=f"{label}-", suffix=".log", dir=tmpdir())
        stderr = fd
    p = subprocess.Popen(args, stdout=stdout, stderr=stderr, env=env,
                         preexec_fn=_child_setup(nofile), close_fds=True)
    if log_path:
        os.close(stderr)
        _logs.append((label, log_path))
    p.log_path = log_path
    p.args_list = args
    _procs.append(p)
    return p


def stop(p, sig=signal.SIGTERM, timeout=10):
    """Signals p (if alive) and waits; returns its exit status (negative = killed by signal)."""
    if p.poll() is None:
        p.send_signal(sig)
    try:
        return p.wait(timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        raise AssertionError(f"{p.args_list[0]} (pid {p.pid}) did not exit within {timeout}s "
                             f"of signal {sig}")


def read_log(p_or_path):
    path = getattr(p_or_path, "log_path", p_or_path)
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except (OSError, TypeError):
        return ""


def raise_nofile():
    """Raises this process's soft RLIMIT_NOFILE to the hard limit; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# ---------------------------------------------------------------- ports and waiting
# Ports this process has handed out: two calls in a row can otherwise get the same port from the
# kernel (the first socket is closed by then), and a test would bind its proxy and its health
# listener to one port.
_handed_out = set()


def free_port(host="127.0.0.1"):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(100):
        with socket.socket(fam, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            p = s.getsockname()[1]
        if p not in _handed_out:
            _handed_out.add(p)
            return p
    raise RuntimeError(f"no fresh free port on {host}")


def free_port_both():
    """A port free on both 127.0.0.1 and ::1."""
    for _ in range(50):
        p = free_port("127.0.0.1")
        try:
            with socket.socket(socket.AF_INET6) as s:
                s.bind(("::1", p))
            return p
        except OSError:
            continue
    raise RuntimeError("no port free on both 127.0.0.1 and ::1")


def hostport(host, port):
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def is_listening(port, host=None):
    """True if some socket in this network namespace listens on TCP `port` (read from /proc, so
    no connection is made: checking the proxy's port must not count as a proxied connection)."""
    for f in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(f) as fh:
                next(fh)
                for line in fh:
                    cols = line.split()
                    if cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                        return True
        except OSError:
            continue
    return False


def wait_port(host, port, timeout=10, proc=None):
    """Waits until host:port accepts a TCP connection (this DOES connect once)."""
    def ok():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{proc.args_list[0]} exited ({proc.returncode}) before "
                                 f"{hostport(host, port)} was up:\n{read_log(proc)[-3000:]}")
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return True
        except OSError:
            return False
    wait_until(ok, timeout, what=f"{hostport(host, port)} to accept")


# ---------------------------------------------------------------- certificates
class Certs:
    def __init__(self, d):
        self.dir = d
        for n in ("ca", "server", "client", "health"):
            setattr(self, f"{n}_crt", os.path.join(d, f"{n}.crt"))
            setattr(self, f"{n}_key", os.path.join(d, f"{n}.key"))
        self.ca = self.ca_crt


_certs = None


def make_certs(d=None):
    """Creates the test PKI (tests/tools/gen_certs.py) once per process, in tmpdir() by default."""
    global _certs
    if d is None and _certs is not None:
        return _certs
    out = d or os.path.join(tmpdir(), "pki")
    subprocess.run([sys.executable, os.path.join(TOOLS, "gen_certs.py"), out], check=True,
                   stdout=subprocess.DEVNULL)
    c = Certs(out)
    if d is None:
        _certs = c
    return c


def client_context(certs, cert="client", verify=True):
    """TLS client context trusting the test CA; cert: "client", "health" or None (anonymous)."""
    ctx = ssl.create_default_context(cafile=certs.ca) if verify else \
        ssl._create_unverified_context()
    if cert:
        ctx.load_cert_chain(getattr(certs, f"{cert}_crt"), getattr(certs, f"{cert}_key"))
    return ctx


# ---------------------------------------------------------------- stand-in servers
def write_json_atomically(path, obj):
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f)
    os.replace(tmp, path)


class FakeApiserver:
    """tests/tools/fake_apiserver.py in a child process. control=True also gives it a counters
    file and a control file in tmpdir(): see counters() and set_mode()."""

    def __init__(self, name, certs, listen=("127.0.0.1:0",), args=(), timeout=10, control=False):
        self.name = name
        self.certs = certs
        cmd = [tool_python(), os.path.join(TOOLS, "fake_apiserver.py"), "--name", name,
               "--cert", certs.server_crt, "--key", certs.server_key, "--ca", certs.ca]
        for l in listen:
            cmd += ["--listen", l]
        self.counters_file = self.control_file = None
        if control:
            d = tempfile.mkdtemp(prefix=f"apiserver-{name}-", dir=tmpdir())
            self.counters_file = os.path.join(d, "counters.json")
            self.control_file = os.path.join(d, "control.json")
            cmd += ["--counters-file", self.counters_file, "--control-file", self.control_file]
        self.proc = spawn(cmd + list(args), label=f"apiserver-{name}")
        want = len(listen)
        self.addrs = wait_until(lambda: self._addrs(want), timeout,
                                what=f"fake apiserver {name} to listen")

    def _addrs(self, want):
        if self.proc.poll() is not None:
            raise AssertionError(f"fake apiserver {self.name} exited: {read_log(self.proc)}")
        found = re.findall(r"^listening (\[[^\]]+\]|[^:\s]+):(\d+)$", read_log(self.proc), re.M)
        if len(found) < want:
            return None
        return [(h.strip("[]"), int(p)) for h, p in found]

    @property
    def port(self):
        return self.addrs[0][1]

    @property
    def endpoint(self):
        return hostport(*self.addrs[0])

    def stop(self, sig=signal.SIGTERM, timeout=30):
        return stop(self.proc, sig, timeout)

    def log(self):
        return read_log(self.proc)

    def counters(self):
        """Its counters (see fake_apiserver.py): from the counters file when started with
        control=True (readable while it hangs, at most 0.5 s old), else GET /debug/counters."""
        if self.counters_file:
            def fresh():
                try:
                    with open(self.counters_file) as f:
                        return json.load(f)
                except (OSError, ValueError):
                    return None
            return wait_until(fresh, 5, what=f"{self.counters_file}")
        st, _, body = https_request(*self.addrs[0], "/debug/counters", self.certs)
        if st != 200:
            raise AssertionError(f"/debug/counters answered {st}")
        return json.loads(body)

    def set_mode(self, readyz_delay_ms=None, hang=None, timeout=5):
        """Switches a fault mode at run time (needs control=True) and waits until it applies:
        readyz_delay_ms: /readyz answers after this many ms; hang: answer nothing at all."""
        if not self.control_file:
            raise AssertionError("set_mode needs FakeApiserver(..., control=True)")
        want = {k: v for k, v in (("readyz_delay_ms", readyz_delay_ms), ("hang", hang))
                if v is not None}
        write_json_atomically(self.control_file, want)
        t0 = time.time()

        def applied():
            c = self.counters()
            return c["unix_time"] > t0 and all(c[k] == v for k, v in want.items())
        wait_until(applied, timeout, what=f"apiserver {self.name} to apply {want}")


class DelayRelay:
    """tests/tools/delay_relay.py in a child process: a TCP relay on loopback in front of
    `upstream` ("host:port") adding delay_ms ± jitter_ms one way (RTT ~ 2 x delay_ms)."""

    def __init__(self, upstream, delay_ms, jitter_ms=0, seed=1, listen="127.0.0.1:0",
                 lifetime=900, timeout=10):
        d = tempfile.mkdtemp(prefix="relay-", dir=tmpdir())
        self.control_file = os.path.join(d, "control.json")
        cmd = [sys.executable, os.path.join(TOOLS, "delay_relay.py"), "--listen", listen,
               "--upstream", upstream, "--delay-ms", str(delay_ms), "--jitter-ms", str(jitter_ms),
               "--seed", str(seed), "--lifetime", str(lifetime), "--control-file",
               self.control_file]
        self.proc = spawn(cmd, label="delay-relay")

        def addr():
            if self.proc.poll() is not None:
                raise AssertionError(f"delay relay exited: {read_log(self.proc)}")
            m = re.search(r"^listening (\[[^\]]+\]|[^:\s]+):(\d+)$", read_log(self.proc), re.M)
            return m and (m.group(1).strip("[]"), int(m.group(2)))
        self.addr = wait_until(addr, timeout, what="delay relay to listen")

    @property
    def port(self):
        return self.addr[1]

    @property
    def endpoint(self):
        return hostport(*self.addr)

    def set(self, hang=None, delay_ms=None, jitter_ms=None, timeout=10):
        """Changes the link at run time and returns once the relay says it has applied it
        (within its 100 ms poll, later on a loaded machine)."""
        self.seq = getattr(self, "seq", 0) + 1
        want = {k: v for k, v in (("hang", hang), ("delay_ms", delay_ms),
                                  ("jitter_ms", jitter_ms)) if v is not None}
        want["seq"] = self.seq
        write_json_atomically(self.control_file, want)
        line = f"control applied seq={self.seq}"
        wait_until(lambda: any(l.endswith(" " + line) for l in read_log(self.proc).splitlines()),
                   timeout,
                   what=f"the delay relay to apply {want}")

    def stop(self):
        return stop(self.proc)

    def log(self):
        return read_log(self.proc)


class JsonEvents:
    """The JSON lines a child writes to its stdout, appended to .events by a reader thread; .cond
    is notified on each and when the stream ends. Lines that are not JSON are skipped."""

    def __init__(self, proc):
        self.proc = proc
        self.events = []
        self.cond = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            with self.cond:
                self.events.append(ev)
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()


def start_apiservers(certs, names, args=("--watch-interval-ms", "100")):
    """One FakeApiserver per name on distinct loopback addresses (127.0.0.11, .12, ...), ports
    picked by the kernel; returns {name: FakeApiserver}."""
    return {n: FakeApiserver(n, certs, listen=[f"127.0.0.1{i + 1}:0"], args=list(args))
            for i, n in enumerate(names)}


class TcpBackend:
    """tests/tools/tcp_backends.py in a child process; its JSON events are collected in .events."""

    def __init__(self, name="tcp", listen=("127.0.0.1:0",), timeout=10):
        self.name = name
        cmd = [sys.executable, os.path.join(TOOLS, "tcp_backends.py"), "--name", name]
        for l in listen:
            cmd += ["--listen", l]
        self.proc = spawn(cmd, stdout=subprocess.PIPE, label=f"tcp-{name}")
        feed = JsonEvents(self.proc)
        self.events, self.cond = feed.events, feed.cond
        ls = self.wait_events(lambda e: e["event"] == "listening", len(listen), timeout)
        self.addrs = [(e["host"], e["port"]) for e in ls]

    def wait_events(self, pred, count=1, timeout=10):
        """Waits for at least `count` events matching pred; returns all that match."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                got = [e for e in self.events if pred(e)]
                if len(got) >= count:
                    return got
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise AssertionError(f"tcp backend {self.name}: wanted {count} matching "
                                         f"events, got {len(got)}; stderr: {read_log(self.proc)}")
                self.cond.wait(min(left, 0.2))

    def closed(self):
        with self.cond:
            return [e for e in self.events if e["event"] == "closed"]

    def stats(self, timeout=5):
        with self.cond:
            n = sum(1 for e in self.events if e["event"] == "stats")
        self.proc.send_signal(signal.SIGUSR1)
        return self.wait_events(lambda e: e["event"] == "stats", n + 1, timeout)[-1]

    @property
    def port(self):
        return self.addrs[0][1]

    @property
    def endpoint(self):
        return hostport(*self.addrs[0])

    def stop(self):
        return stop(self.proc)


def closed_port(host="127.0.0.1"):
    """A port on which nothing listens (connects are refused)."""
    return free_port(host)


# ---------------------------------------------------------------- the proxy
def proxy_cmd(*args):
    if not os.path.exists(KAL_BIN):
        raise AssertionError(f"kube-api-lb binary not found at {KAL_BIN} (set KAL_BIN)")
    return [KAL_BIN, *args]


def run_kal(args, timeout=15, env=None):
    """Runs kube-api-lb to completion; returns CompletedProcess with text stdout/stderr and
    .elapsed seconds."""
    t0 = time.monotonic()
    r = subprocess.run(proxy_cmd(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=timeout, env=env, preexec_fn=_child_setup())
    r.elapsed = time.monotonic() - t0
    return r


class Proxy:
    """kube-api-lb started with free ports on 127.0.0.1 for --listen and --admin-listen.

    endpoints: list of "host:port" strings (joined into --endpoints), or None to pass none.
    args: extra flags. listen: list of listen specs (default one free 127.0.0.1 port).
    nofile: soft RLIMIT_NOFILE to start it with (to check that it raises its own), or a
    (soft, hard) tuple (descriptor exhaustion).
    """

    def __init__(self, endpoints, args=(), listen=None, admin=True, nofile=None, env=None,
                 wait=True, timeout=10):
        if listen is None:
            self.port = free_port()
            listen = [f"127.0.0.1:{self.port}"]
        else:
            self.port = int(listen[0].rsplit(":", 1)[1])
        self.listen = listen
        self.host = listen[0].rsplit(":", 1)[0].strip("[]")
        cmd = []
        if endpoints is not None:
            cmd.append("--endpoints=" + ",".join(endpoints))
        cmd += [f"--listen={l}" for l in listen]
        self.admin_port = None
        if admin:
            self.admin_port = free_port()
            cmd.append(f"--admin-listen=127.0.0.1:{self.admin_port}")
        cmd += list(args)
        self.proc = spawn(proxy_cmd(*cmd), env=env, nofile=nofile, label="kube-api-lb")
        if wait:
            self.wait_up(timeout)

    @property
    def pid(self):
        return self.proc.pid

    def wait_up(self, timeout=10):
        """Waits until every listener and the admin port listen, without connecting to them."""
        ports = [int(l.rsplit(":", 1)[1]) for l in self.listen]
        if self.admin_port:
            ports.append(self.admin_port)

        def up():
            if self.proc.poll() is not None:
                raise AssertionError(f"kube-api-lb exited ({self.proc.returncode}) at start:\n"
                                     f"{self.log()[-4000:]}")
            return all(is_listening(p) for p in ports)
        wait_until(up, timeout, what="kube-api-lb to listen")

    def log(self):
        return read_log(self.proc)

    def admin_get(self, path, timeout=5):
        """GET on the admin server; returns (status, body text)."""
        return http_get("127.0.0.1", self.admin_port, path, timeout)

    def metrics(self):
        """Parses /metrics into {(name, frozenset(labels.items())): value}."""
        st, body = self.admin_get("/metrics")
        if st != 200:
            raise AssertionError(f"/metrics answered {st}")
        return parse_prometheus(body)

    def stats(self):
        st, body = self.admin_get("/stats")
        if st != 200:
            raise AssertionError(f"/stats answered {st}")
        return json.loads(body)

    def wait_ready(self, timeout=10):
        wait_until(lambda: self.admin_get("/readyz")[0] == 200, timeout, what="/readyz 200")

    def rss_kib(self):
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def sanitized(self):
        """True if the binary runs with AddressSanitizer (RSS numbers then mean nothing)."""
        if os.environ.get("KAL_SANITIZED") == "1":
            return True
        try:
            with open(f"/proc/{self.pid}/maps") as f:
                if "libasan" in f.read():
                    return True
        except OSError:
            pass
        try:
            with open(KAL_BIN, "rb") as f:
                return b"__asan_init" in f.read()
        except OSError:
            return False

    def stop(self, sig=signal.SIGTERM, timeout=15):
        return stop(self.proc, sig, timeout)

    def stop_clean(self, sig=signal.SIGTERM, timeout=15):
        """Stops it and asserts a clean exit (status 0: no sanitizer report, no leak); the error
        names what went wrong."""
        code = self.stop(sig, timeout)
        if code != 0 and not getattr(self, "_reported", False):
            self._reported = True  # once per process, not again from a cleanup
            log = self.log()
            lines = log.splitlines()
            key = [l for l in lines if "Sanitizer" in l or "runtime error" in l or
                   "level=error" in l or " #1 " in l or " #2 " in l][:8]
            raise AssertionError(f"kube-api-lb exited with status {code} on {sig!r} "
                                 f"(pid {self.pid}, log {self.proc.log_path}):\n" +
                                 "\n".join(key or lines[-10:]))


_metric_re = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)')
_label_re = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_prometheus(text):
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _metric_re.match(line)
        if not m:
            raise AssertionError(f"unparsable metrics line: {line!r}")
        labels = frozenset(_label_re.findall(m.group(3) or ""))
        out[(m.group(1), labels)] = float(m.group(4))
    return out


def metric(metrics, name, **labels):
    """Value of the sample `name` whose labels include `labels` (exactly one must match)."""
    want = set(labels.items())
    hits = [v for (n, ls), v in metrics.items() if n == name and want <= set(ls)]
    if len(hits) != 1:
        names = sorted({n for n, _ in metrics})
        raise AssertionError(f"metric {name}{labels}: {len(hits)} samples match; families: {names}")
    return hits[0]


# ---------------------------------------------------------------- clients
def https_request(host, port, path, certs, cert="client", method="GET", body=None,
                  server_hostname=None, timeout=10):
    """One HTTPS request on a new connection; returns (status, headers dict, body bytes)."""
    ctx = client_context(certs, cert)
    raw = socket.create_connection((host, port), timeout=timeout)
    s = ctx.wrap_socket(raw, server_hostname=server_hostname or host)
    try:
        c = http.client.HTTPSConnection(host, port, timeout=timeout, context=ctx)
        c.sock = s
        c.request(method, path, body=body)
        r = c.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        s.close()


def served_by(host, port, certs, timeout=10):
    """Name of the fake apiserver that answered GET /version on a new connection."""
    st, h, body = https_request(host, port, "/version", certs, timeout=timeout)
    if st != 200:
        raise AssertionError(f"/version answered {st}: {body[:200]!r}")
    return json.loads(body)["apiserver"]


class HeldConnection:
    """A kept-alive HTTPS connection (to count it against least-conn, or to watch)."""

    def __init__(self, host, port, certs, timeout=10):
        self.ctx = client_context(certs)
        self.conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=self.ctx)

    def get(self, path):
        self.conn.request("GET", path)
        r = self.conn.getresponse()
        return r.status, r.read()

    def whom(self):
        st, body = self.get("/version")
        return json.loads(body)["apiserver"]

    def close(self):
        self.conn.close()


def write_kubeconfig(path, server, certs, cert="client"):
    """A kubeconfig for kubectl: server URL, test CA, and the given client cert."""
    text = f"""apiVersion: v1
kind: Config
clusters:
- name: kal
  cluster:
    server: {server}
    certificate-authority: {certs.ca}
users:
- name: node4
  user:
    client-certificate: {getattr(certs, cert + '_crt')}
    client-key: {getattr(certs, cert + '_key')}
contexts:
- name: kal
  context:
    cluster: kal
    user: node4
current-context: kal
"""
    with open(path, "w") as f:
        f.write(text)
    return path


def curl(*args, timeout=30):
    return subprocess.run(["curl", "-sS", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=timeout, preexec_fn=_child_setup())


def http_get(host, port, path, timeout=5):
    """Plain-HTTP GET (admin ports); returns (status, body text)."""
    c = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read().decode(errors="replace")
    finally:
        c.close()


def outq(sock):
    """Bytes in sock's send queue not yet acknowledged by the peer (TIOCOUTQ)."""
    return int.from_bytes(fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0" * 4), sys.byteorder)


def read_to_eof(sock):
    """Reads sock until EOF. Returns (bytes, the OSError that ended it early or None)."""
    got = b""
    try:
        while True:
            d = sock.recv(65536)
            if not d:
                return got, None
            got += d
    except OSError as e:
        return got, e


def recv_exact(sock, n):
    """Reads until n bytes or EOF (TCP may split any message)."""
    got = b""
    while len(got) < n:
        d = sock.recv(n - len(got))
        if not d:
            break
        got += d
    return got


def sha256_hex(data):
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------- running
def main():
    """unittest.main with a verbose runner; on failure, prints the tails of the logs of every
    process started, then exits non-zero."""
    prog = unittest.main(verbosity=2, exit=False)
    res = prog.result
    ok = res.wasSuccessful()
    if not ok:
        for label, path in _logs:
            text = read_log(path)
            if text.strip():
                tail = "\n".join(text.splitlines()[-25:])
                sys.stderr.write(f"\n----- last lines of {label} ({path}) -----\n{tail}\n")
    print(f"SUMMARY {os.path.basename(sys.argv[0])}: ran={res.testsRun} "
          f"failures={len(res.failures)} errors={len(res.errors)} skipped={len(res.skipped)} "
          f"{'OK' if ok else 'FAILED'}", flush=True)
    sys.exit(0 if ok else 1)
