#!/usr/bin/env python3
"""kube-api-lb benchmark driver (stdlib only). Run it through bench/run.sh.

Runs kube-api-lb, nginx (Kubespray's nginx-proxy config), HAProxy (Kubespray's haproxy option) and
"direct" (no proxy) in front of the same loopback backends, in interleaved rounds, and writes the
medians with their min-max spread and the ratios to docs/benchmarks.md.

Every process it starts is tracked by PID and stopped on exit, error, Ctrl-C or SIGTERM.
Only loopback addresses are used. Every load step is bounded in time.
"""

import datetime
import json
import math
import os
import platform
import random
import re
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
TEMPLATES = os.path.join(HERE, "templates")
STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def env_int(name, default, lo, hi):
    raw = os.environ.get(name, "")
    if raw == "":
        return default
    try:
        v = int(raw)
    except ValueError:
        sys.exit(f"bench: error: {name}={raw!r} is not an integer")
    if not lo <= v <= hi:
        sys.exit(f"bench: error: {name}={v} is outside {lo}..{hi}")
    return v


ROUNDS = env_int("BENCH_ROUNDS", 9, 1, 50)
DURATION = env_int("BENCH_DURATION", 3, 1, 60)  # seconds per wrk run
IDLE_CONNS = env_int("BENCH_CONNS", 9000, 0, 60000)
BULK_MIB = env_int("BENCH_BULK_MIB", 64, 1, 1024)
BULK_COUNT = env_int("BENCH_BULK_COUNT", 16, 1, 1000)  # downloads per curl stream
BULK_STREAMS = env_int("BENCH_BULK_STREAMS", 2, 1, 16)
BACKEND_PORT = env_int("BENCH_BACKEND_PORT", 18080, 1, 65535)
BACKEND_WORKERS = env_int("BENCH_BACKEND_WORKERS", 2, 1, 16)
TIME_LIMIT = env_int("BENCH_TIME_LIMIT", 570, 30, 7200)  # whole run, seconds
KA_CONNS = env_int("BENCH_KA_CONNS", 50, 1, 5000)
BACKENDS = [f"127.0.0.{i}:{BACKEND_PORT}" for i in (11, 12, 13)]
ALL_PROXIES = ["direct", "kube-api-lb", "kube-api-lb-2", "nginx", "haproxy"]
LABEL = {"direct": "direct", "kube-api-lb": "kube-api-lb", "nginx": "nginx", "haproxy": "HAProxy",
         "kube-api-lb-2": "kube-api-lb (2)"}
SHORT = {"kube-api-lb": "kal", "kube-api-lb-2": "kal (2)"}


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- processes

def ppid_map():
    """pid -> parent pid for every process we can see."""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        rest = data[data.rfind(b")") + 2:].split()
        out[int(name)] = int(rest[1])
    return out


def tree(pid):
    """pid and all its descendants (nginx master + workers, for instance)."""
    parents = ppid_map()
    if pid not in parents:
        return []
    found, frontier = [pid], [pid]
    while frontier:
        nxt = [p for p, pp in parents.items() if pp in frontier and p not in found]
        found += nxt
        frontier = nxt
    return found


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return False
    return data[data.rfind(b")") + 2:data.rfind(b")") + 3] != b"Z"


class Procs:
    """Registry of every long-running process this run started; stops them by PID."""

    def __init__(self):
        self.popens = []

    def start(self, argv, log_path, **kw):
        logf = open(log_path, "ab")
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                             start_new_session=True, preexec_fn=raise_nofile, **kw)
        logf.close()
        self.popens.append(p)
        return p

    def stop(self, p, sig=signal.SIGTERM, grace=12.0):
        if p not in self.popens:
            return
        members = tree(p.pid)
        if p.poll() is None:
            try:
                p.send_signal(sig)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                log(f"pid {p.pid} ({p.args[0]}) ignored {sig.name} for {grace}s, killing it")
                p.kill()
                p.wait(timeout=5)
        # Children (nginx workers) normally exit with their master; make sure.
        for pid in members[1:]:
            deadline = time.monotonic() + 3
            while alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.popens.remove(p)

    def stop_all(self):
        for p in list(reversed(self.popens)):
            try:
                self.stop(p, grace=5.0)
            except Exception as e:  # keep cleaning the others
                log(f"cleanup of pid {p.pid} failed: {e}")


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(hard, 65536)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


_handed_out = set()  # never the same port twice (a proxy and its health port on one port)


def free_port():
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            p = s.getsockname()[1]
        if p not in _handed_out:
            _handed_out.add(p)
            return p
    raise RuntimeError("no fresh free port on 127.0.0.1")


def port_in_use(host, port):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def http_get(host, port, path="/", timeout=2.0):
    """Tiny HTTP/1.0 GET; returns (status, body) or raises OSError."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(f"GET {path} HTTP/1.0\r\nHost: bench\r\n\r\n".encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    parts = head.split(b" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise OSError(f"bad HTTP response {data[:80]!r}")
    return int(parts[1]), body


def wait_http(host, port, path, p, timeout=15.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if p is not None and p.poll() is not None:
            raise RuntimeError(f"exited with code {p.returncode} while starting")
        try:
            status, _ = http_get(host, port, path, timeout=1.0)
            if status == 200:
                return
            last = f"HTTP {status}"
        except OSError as e:
            last = str(e)
        time.sleep(0.05)
    raise RuntimeError(f"no HTTP 200 from {host}:{port}{path} within {timeout}s (last: {last})")


# ----------------------------------------------------------------------------- /proc figures

def cpu_seconds(pid):
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        rest = data[data.rfind(b")") + 2:].split()
        total += int(rest[11]) + int(rest[12])  # utime, stime (all threads)
    return total / CLK_TCK


def mem_kib(pid):
    """(RSS, PSS) in KiB summed over the process tree."""
    rss = pss = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1])
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1])
        except OSError:
            continue
    return rss, pss


# ----------------------------------------------------------------------------- load tools

def parse_time_us(tok):
    for unit, mul in (("us", 1.0), ("ms", 1e3), ("s", 1e6), ("m", 60e6)):
        if tok.endswith(unit):
            return float(tok[: -len(unit)]) * mul
    raise ValueError(tok)


def run_wrk(url, conns, threads, extra=()):
    argv = ["wrk", "-c", str(conns), "-t", str(threads), "-d", f"{DURATION}s", "--latency",
            "--timeout", "2s", *extra, url]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=DURATION + 30,
                       start_new_session=True)
    if r.returncode != 0:
        raise RuntimeError(f"wrk failed ({r.returncode}): {r.stderr.strip() or r.stdout.strip()}")
    res = {"errors": 0, "non2xx": 0}
    for line in r.stdout.splitlines():
        t = line.split()
        if not t:
            continue
        if t[0] in ("50%", "75%", "90%", "99%") and len(t) == 2:
            res["p" + t[0][:-1]] = parse_time_us(t[1])
        elif t[0] == "Requests/sec:":
            res["rps"] = float(t[1])
        elif len(t) > 2 and t[1] == "requests" and t[2] == "in":
            res["requests"] = int(t[0])
        elif line.strip().startswith("Socket errors:"):
            res["errors"] = sum(int(x.strip(",")) for x in t if x.strip(",").isdigit())
        elif line.strip().startswith("Non-2xx"):
            res["non2xx"] = int(t[-1])
    if "rps" not in res or "p99" not in res or "requests" not in res:
        raise RuntimeError(f"cannot parse wrk output:\n{r.stdout}")
    if res["requests"] == 0:
        raise RuntimeError("wrk completed no request")
    return res


def run_bulk(host, port, workdir, procs):
    cfg = os.path.join(workdir, "bulk.curl")
    with open(cfg, "w") as f:
        for _ in range(BULK_COUNT):
            f.write(f'url = "http://{host}:{port}/files/big.bin"\noutput = "/dev/null"\n')
    t0 = time.monotonic()
    ps = [subprocess.Popen(["curl", "-sS", "--max-time", "60", "-K", cfg, "-w",
                            "%{http_code} %{size_download}\n"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, start_new_session=True)
          for _ in range(BULK_STREAMS)]
    procs.popens.extend(ps)
    outs = []
    try:
        for p in ps:
            out, err = p.communicate(timeout=120)
            outs.append((p.returncode, out, err))
    finally:
        for p in ps:
            if p.poll() is None:
                p.kill()
                p.wait()
            procs.popens.remove(p)
    elapsed = time.monotonic() - t0
    total = 0
    want = BULK_MIB * 1024 * 1024
    for rc, out, err in outs:
        if rc != 0:
            raise RuntimeError(f"curl failed ({rc}): {err.strip()}")
        lines = out.strip().splitlines()
        for line in lines:
            code, size = line.split()
            if code != "200" or int(size) != want:
                raise RuntimeError(f"bulk download incomplete: HTTP {code}, {size} of {want} bytes")
            total += int(size)
        if len(lines) != BULK_COUNT:
            raise RuntimeError(f"curl did {len(lines)} of {BULK_COUNT} downloads")
    return total, elapsed


def hold_idle_conns(host, port, n):
    """Open n connections through the proxy, do one keep-alive request on each so that the proxy
    has connected upstream and moved data both ways, and keep them open. Returns the sockets."""
    socks = []
    batch = 250
    failures = 0
    req = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
    for start in range(0, n, batch):
        cur = []
        for _ in range(min(batch, n - start)):
            s = socket.socket()
            s.settimeout(10)
            try:
                s.connect((host, port))
                s.sendall(req)
                cur.append(s)
            except OSError:
                failures += 1
                s.close()
        for s in cur:
            try:
                data = b""
                while not (b"\r\n\r\n" in data and data.endswith(b"ok\n")):
                    chunk = s.recv(4096)
                    if not chunk:
                        raise OSError("closed")
                    data += chunk
                socks.append(s)
            except OSError:
                failures += 1
                s.close()
        if failures > n // 100 + 10:
            break
    return socks, failures


# ----------------------------------------------------------------------------- proxies

class Proxy:
    def __init__(self, name, workdir, procs, kal_bin, kal_args):
        self.name = name
        self.workdir = workdir
        self.procs = procs
        self.kal_bin = kal_bin
        self.kal_args = kal_args
        self.p = None
        self.port = BACKEND_PORT
        self.host = "127.0.0.11"
        self.log_path = os.path.join(workdir, f"{name}.log")

    def start(self):
        if self.name == "direct":
            return
        self.host = "127.0.0.1"
        self.port = free_port()
        health_port = free_port()
        subst = {"PREFIX": self.workdir, "LISTEN": f"127.0.0.1:{self.port}",
                 "HEALTH_LISTEN": f"127.0.0.1:{health_port}", "STREAM_MODULE": STREAM_MODULE,
                 "ADDR1": BACKENDS[0], "ADDR2": BACKENDS[1], "ADDR3": BACKENDS[2],
                 "MAXCONN": str(haproxy_maxconn())}
        if self.name in SHORT:
            argv = [self.kal_bin, "--endpoints=" + ",".join(BACKENDS),
                    f"--listen=127.0.0.1:{self.port}", "--health-check=tcp",
                    f"--admin-listen=127.0.0.1:{health_port}", *self.kal_args[self.name]]
            ready = (health_port, "/healthz")
        elif self.name == "nginx":
            conf = render("nginx-proxy.conf", subst, self.workdir)
            argv = ["nginx", "-p", self.workdir, "-e", os.path.join(self.workdir, "nginx-start.log"),
                    "-c", conf]
            ready = (health_port, "/healthz")
        elif self.name == "haproxy":
            conf = render("haproxy.cfg", subst, self.workdir)
            argv = ["haproxy", "-db", "-f", conf]
            ready = (health_port, "/healthz")
        else:
            raise ValueError(self.name)
        with open(self.log_path, "a") as f:
            f.write(f"--- {time.strftime('%H:%M:%S')} {shlex.join(argv)}\n")
        self.p = self.procs.start(argv, self.log_path, cwd=self.workdir)
        try:
            wait_http("127.0.0.1", ready[0], ready[1], self.p)
            # Forwarding works end to end (and every proxy has seen its backends as usable).
            wait_http(self.host, self.port, "/", self.p)
        except Exception:
            self.stop()
            raise

    def stop(self):
        if self.p is not None:
            self.procs.stop(self.p)
            self.p = None

    def pid(self):
        return self.p.pid if self.p else None

    def url(self):
        return f"http://{self.host}:{self.port}/"

    def check_alive(self):
        if self.p is not None and self.p.poll() is not None:
            raise RuntimeError(f"{self.name} exited with code {self.p.returncode}")

    def log_tail(self, n=5):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""


def haproxy_maxconn():
    """Room for the idle connections; HAProxy needs two descriptors per connection and refuses to
    start if it cannot raise RLIMIT_NOFILE that far."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    want = max(4000, IDLE_CONNS + 500)
    if hard != resource.RLIM_INFINITY:
        want = min(want, (hard - 200) // 2)
    return want


def render(name, subst, workdir):
    with open(os.path.join(TEMPLATES, name)) as f:
        text = f.read()
    for k, v in subst.items():
        text = text.replace(f"@{k}@", v)
    code = "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("#"))
    leftover = re.findall(r"@[A-Z0-9_]+@", code)
    if leftover:
        raise RuntimeError(f"template {name}: unfilled placeholders {leftover[:3]}")
    out = os.path.join(workdir, name.replace("/", "_"))
    with open(out, "w") as f:
        f.write(text)
    return out


def measure_memory(px):
    """RSS idle, with IDLE_CONNS idle connections held open, and after they close."""
    m = {}
    pid = px.p.pid if px.p else None
    if pid is None:
        return m
    rss, pss = mem_kib(pid)
    m["rss_idle"] = rss / 1024
    m["pss_idle"] = pss / 1024
    if IDLE_CONNS > 0:
        socks, failures = hold_idle_conns(px.host, px.port, IDLE_CONNS)
        try:
            if failures:
                m["conn_failures"] = failures
            time.sleep(0.5)
            px.check_alive()
            rss_l, pss_l = mem_kib(pid)
            m["rss_loaded"] = rss_l / 1024
            m["held"] = len(socks)
            if socks:
                m["kib_per_conn"] = (rss_l - rss) / len(socks)
                m["pss_kib_per_conn"] = (pss_l - pss) / len(socks)
        finally:
            for s in socks:
                s.close()
        time.sleep(1.5)
        px.check_alive()
        m["rss_after_burst"] = mem_kib(pid)[0] / 1024
    return m


def step_low_load(px, workdir, procs):
    r = run_wrk(px.url(), 1, 1)
    return {"ll_p50": r["p50"], "ll_p99": r["p99"]}


def step_keepalive(px, workdir, procs):
    pid = px.pid()
    c0 = cpu_seconds(pid) if pid else 0
    r = run_wrk(px.url(), KA_CONNS, 2)
    c1 = cpu_seconds(pid) if pid else 0
    m = {"ka_rps": r["rps"], "ka_p50": r["p50"], "ka_p99": r["p99"],
         "ka_errors": r["errors"] + r["non2xx"]}
    if pid:
        m["cpu_per_100k_req"] = (c1 - c0) / (r["requests"] / 100000)
    return m


def step_new_conns(px, workdir, procs):
    pid = px.pid()
    c0 = cpu_seconds(pid) if pid else 0
    r = run_wrk(px.url(), KA_CONNS, 2, ("-H", "Connection: close"))
    c1 = cpu_seconds(pid) if pid else 0
    m = {"cc_cps": r["rps"], "cc_p99": r["p99"], "cc_errors": r["errors"] + r["non2xx"]}
    if pid:
        m["cpu_per_10k"] = (c1 - c0) / (r["requests"] / 10000)
    return m


def step_bulk(px, workdir, procs):
    pid = px.pid()
    c0 = cpu_seconds(pid) if pid else 0
    nbytes, elapsed = run_bulk(px.host, px.port, workdir, procs)
    c1 = cpu_seconds(pid) if pid else 0
    m = {"bulk_mbs": nbytes / 1e6 / elapsed}
    if pid:
        m["cpu_per_gb"] = (c1 - c0) / (nbytes / 1e9)
    return m


# Load steps, each run for every proxy of a round back to back (so one figure is measured for all
# proxies within seconds of each other, under the same background noise).
LOAD_STEPS = [("low load", step_low_load), ("keep-alive", step_keepalive),
              ("new connections", step_new_conns), ("bulk", step_bulk)]


def run_round(rnd, order, workdir, procs, kal_bins, kal_args, notes):
    """One round: every proxy started fresh; memory figures per proxy; then each load step for all
    proxies in turn; then RSS after the load; every proxy stopped. Returns {name: figures} for the
    proxies that completed every step."""
    live, ms = {}, {}

    def failed(name, e):
        px = live.pop(name)
        msg = f"round {rnd + 1}: {name} failed: {e}"
        tail = px.log_tail()
        log(msg + ("\n" + tail if tail else ""))
        notes.append(msg.replace("\n", " "))
        px.stop()

    try:
        for name in order:
            px = Proxy(name, workdir, procs, kal_bins.get(name), kal_args)
            live[name] = px
            try:
                px.start()
                ms[name] = {"round": rnd + 1}
            except Exception as e:
                failed(name, e)
        time.sleep(0.3)
        for name in [n for n in order if n in live]:
            try:
                ms[name].update(measure_memory(live[name]))
            except Exception as e:
                failed(name, e)
        for step_name, step in LOAD_STEPS:
            # A fresh order per step and round: a rotation of one fixed list would always run the
            # same proxy right after the same other one (after "direct", which leaves the backend
            # busiest), and that carry-over would bias one proxy's figures every round.
            step_order = random.Random(f"{rnd}/{step_name}").sample(order, len(order))
            for pos, name in enumerate(n for n in step_order if n in live):
                try:
                    ms[name].setdefault("positions", {})[step_name] = pos + 1
                    ms[name].update(step(live[name], workdir, procs))
                    live[name].check_alive()
                except Exception as e:
                    failed(name, e)
        time.sleep(0.5)
        for name in [n for n in order if n in live]:
            if live[name].pid():
                ms[name]["rss_after_load"] = mem_kib(live[name].pid())[0] / 1024
    finally:
        for px in live.values():
            px.stop()
    return {name: ms[name] for name in order if name in live}


# ----------------------------------------------------------------------------- report

# key, label, unit, higher is better, format
ROWS = [
    ("ka_rps", "Keep-alive small requests, c=%d" % KA_CONNS, "req/s", True, "{:,.0f}"),
    ("ka_p50", "  p50 latency", "µs", False, "{:,.0f}"),
    ("ka_p99", "  p99 latency", "µs", False, "{:,.0f}"),
    ("cc_cps", "New connection per request, c=%d" % KA_CONNS, "conn/s", True, "{:,.0f}"),
    ("cc_p99", "  p99 latency", "µs", False, "{:,.0f}"),
    ("bulk_mbs", "Bulk %d MiB bodies, %d streams" % (BULK_MIB, BULK_STREAMS), "MB/s", True,
     "{:,.0f}"),
    ("ll_p50", "Low load (1 conn, 1 in flight) p50", "µs", False, "{:,.0f}"),
    ("ll_p99", "Low load (1 conn, 1 in flight) p99", "µs", False, "{:,.0f}"),
    ("rss_idle", "RSS idle", "MiB", False, "{:,.1f}"),
    ("pss_idle", "PSS idle", "MiB", False, "{:,.1f}"),
    ("rss_loaded", "RSS with %d idle connections" % IDLE_CONNS, "MiB", False, "{:,.1f}"),
    ("kib_per_conn", "  RSS per idle connection", "KiB", False, "{:,.2f}"),
    ("rss_after_burst", "RSS after those connections close", "MiB", False, "{:,.1f}"),
    ("rss_after_load", "RSS after all load steps", "MiB", False, "{:,.1f}"),
    ("cpu_per_gb", "Proxy CPU per GB (bulk)", "s/GB", False, "{:,.2f}"),
    ("cpu_per_10k", "Proxy CPU per 10k new connections", "s", False, "{:,.3f}"),
    ("cpu_per_100k_req", "Proxy CPU per 100k keep-alive requests", "s", False, "{:,.2f}"),
]


def fmt(v, f):
    return f.format(v) if v is not None else "—"


def summarize(results, proxies):
    """results[proxy] = list of per-round dicts -> stats[proxy][key] = (median, min, max, n)."""
    stats = {}
    for px in proxies:
        stats[px] = {}
        for key, *_ in ROWS:
            vals = [r[key] for r in results.get(px, []) if r.get(key) is not None]
            if vals:
                stats[px][key] = (statistics.median(vals), min(vals), max(vals), len(vals))
    return stats


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def table(stats, proxies):
    head = ["Figure", "unit"] + [LABEL[p] for p in proxies]
    kals = [p for p in proxies if p in SHORT]
    for kal in kals:
        k = SHORT[kal]
        head += [f"{k} ÷ direct", f"{k} ÷ nginx", f"{k} ÷ HAProxy", f"{k} vs best of nginx/HAProxy"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, label, unit, higher, f in ROWS:
        cells = [label.replace("  ", "↳ "), unit]
        med = {}
        for p in proxies:
            s = stats[p].get(key)
            if s is None:
                cells.append("—")
                continue
            med[p] = s[0]
            if s[3] > 1:
                cells.append(f"{fmt(s[0], f)} ({fmt(s[1], f)}–{fmt(s[2], f)})")
            else:
                cells.append(fmt(s[0], f))
        for kal in kals:
            k = med.get(kal)
            for other in ("direct", "nginx", "haproxy"):
                r = ratio(k, med.get(other))
                cells.append(f"{r:.2f}" if r is not None else "—")
            base = [med[p] for p in ("nginx", "haproxy") if p in med]
            if k is None or not base:
                cells.append("—")
            else:
                best = max(base) if higher else min(base)
                r = k / best if best else None
                if r is None:
                    cells.append("—")
                else:
                    ok = r >= 1.0 if higher else r <= 1.0
                    cells.append(f"{r:.2f} {'✔' if ok else '✘'}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


PAIRED = [("ka_rps", "Keep-alive req/s"), ("ka_p50", "Keep-alive p50"), ("ka_p99", "Keep-alive p99"),
          ("cc_cps", "New connections/s"), ("cc_p99", "New connection p99"),
          ("bulk_mbs", "Bulk MB/s"), ("ll_p50", "Low load p50"), ("ll_p99", "Low load p99"),
          ("cpu_per_100k_req", "CPU per 100k keep-alive requests"),
          ("cpu_per_10k", "CPU per 10k new connections"), ("cpu_per_gb", "CPU per GB")]


def median_ci(xs, level=0.95):
    """Distribution-free confidence interval of the median, from order statistics: with k the
    largest count such that P(Binomial(n, 1/2) < k) <= (1 - level) / 2, the interval is
    [x_(k), x_(n+1-k)] (1-based, sorted). Returns (lo, hi, the level it reaches), or None when n
    is too small for even [min, max] to reach `level` (n < 6 for 95 %)."""
    n = len(xs)
    s = sorted(xs)
    tail, k = 0.0, 0
    for j in range(n + 1):
        p = math.comb(n, j) / 2 ** n
        if tail + p > (1 - level) / 2:
            break
        tail += p
        k = j + 1
    if k == 0:
        return None
    return s[k - 1], s[n - k], 1 - 2 * tail


def paired_verdict(ci, higher):
    """"better" / "worse" when the median ratio's interval lies wholly on one side of 1, else "tie"
    (the rounds cannot tell the two apart)."""
    if ci is None:
        return "too few rounds"
    lo, hi, _ = ci
    if (lo >= 1.0) if higher else (hi <= 1.0):
        return "better"
    if (hi < 1.0) if higher else (lo > 1.0):
        return "worse"
    return "tie"


def paired_table(results, proxies):
    """Per-round ratios of kube-api-lb to nginx and to HAProxy *in the same round* (their load
    steps ran back to back), so noise that lasts longer than one step hits both sides alike.
    Each baseline is paired on its own: a per-round "best of the two" would be biased against
    kube-api-lb (the larger of two noisy samples beats a third equal one two times in three)."""
    kals = [p for p in proxies if p in SHORT]
    bases = [p for p in ("nginx", "haproxy") if p in proxies]
    if not kals or not bases:
        return None
    higher_better = {key: higher for key, _, _, higher, _ in ROWS}
    head = ["Figure"] + [f"{SHORT[k]} ÷ {LABEL[b]}" for k in kals for b in bases]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, label in PAIRED:
        higher = higher_better[key]
        cells = [label]
        for kal in kals:
            mine = {m["round"]: m[key] for m in results.get(kal, []) if m.get(key) is not None}
            for base in bases:
                rs = [mine[m["round"]] / m[key] for m in results.get(base, [])
                      if m.get(key) and m["round"] in mine]
                if not rs:
                    cells.append("—")
                    continue
                good = sum(1 for r in rs if (r >= 1.0 if higher else r <= 1.0))
                ci = median_ci(rs)
                cell = (f"{statistics.median(rs):.2f} ({min(rs):.2f}–{max(rs):.2f}), "
                        f"{good} of {len(rs)}")
                if ci:
                    cell += f"; CI {ci[0]:.2f}–{ci[1]:.2f} ({ci[2] * 100:.0f} %)"
                cells.append(f"{cell}: {paired_verdict(ci, higher)}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def cmd_first_line(argv):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"unavailable ({e})"
    out = (r.stdout.strip() or r.stderr.strip()).splitlines()
    return out[0] if out else "unknown"


def machine_info():
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = "?"
    try:
        with open("/proc/meminfo") as f:
            mem = f"{int(f.readline().split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return {"nproc": len(os.sched_getaffinity(0)), "cpu": model, "kernel": platform.release(),
            "memory": mem}


def write_report(path, stats, results, proxies, info, versions, rounds_done, elapsed, notes,
                 load_before, load_after, kal_args):
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    tbl = table(stats, proxies)
    out = [
        "# Benchmarks",
        "",
        "Generated by `bench/run.sh` (see `bench/README.md`); do not edit by hand — rerun it.",
        "",
        f"- Date: {date}; {rounds_done} interleaved rounds, {elapsed:.0f} s in total",
        f"- Machine: {info['nproc']} CPUs ({info['cpu']}), {info['memory']} RAM, "
        f"Linux {info['kernel']}; load average before/after: {load_before} / {load_after}",
    ]
    for name, v in versions.items():
        out.append(f"- {name}: `{v}`")
    for name in (p for p in proxies if p in SHORT):
        out.append(f"- {LABEL[name]} extra arguments: `{shlex.join(kal_args[name]) or '(none)'}`")
    out += [
        "",
        "Medians over the rounds, with the min–max spread in parentheses. Ratios are of medians;",
        "for throughput higher is better, for latency, memory and CPU lower is better; the last column",
        "compares kube-api-lb (kal) with the better of nginx and HAProxy for that figure "
        "(✔ = at least as good).",
        "",
        tbl,
        "",
    ]
    ptbl = paired_table(results, proxies)
    if ptbl:
        out += [
            "Paired, round by round: each round runs one load step for every proxy back to back, "
            "so the ratio within a round is less exposed to the machine's slow swings than the "
            "ratio of medians above. Each cell: median of the per-round ratios (min–max); in "
            "how many rounds kube-api-lb was at least as good (ratio ≥ 1 for throughput, ≤ 1 for "
            "latency and CPU); a confidence interval of that median from the order statistics "
            "(distribution-free; with 9 rounds it is the 2nd to 8th at 96 %, with 25 rounds the "
            "8th to 18th at 96 %); and the verdict it supports: better or worse when the interval lies "
            "wholly on one side of 1, tie when it straddles 1 (the rounds cannot tell the proxies "
            "apart).",
            "",
            ptbl,
            "",
        ]
    if notes:
        out += ["Notes from this run:", ""] + [f"- {n}" for n in notes] + [""]
    out += [
        "## Method",
        "",
        "- Backends: one nginx http instance (%d workers, keep-alive, sendfile) listening on "
        "%s; `/` returns a 3-byte body, `/files/big.bin` is a %d MiB file (in the page cache). "
        "It is shared by every proxy and started once." % (BACKEND_WORKERS, ", ".join(BACKENDS),
                                                          BULK_MIB),
        "- Proxies, each on its own loopback port, all TCP passthrough to the three backends:",
        "  - kube-api-lb: `--endpoints=<the three> --listen=127.0.0.1:P --health-check=tcp "
        "--admin-listen=127.0.0.1:A` plus `KAL_BENCH_ARGS`;",
        "  - nginx: Kubespray's nginx-proxy config (`bench/templates/nginx-proxy.conf`: stream, 2 "
        "workers, `least_conn`, `proxy_timeout 10m`, `proxy_connect_timeout 1s`), Debian's "
        "nginx with the dynamic stream module;",
        "  - HAProxy: Kubespray's haproxy option (`bench/templates/haproxy.cfg`: `mode tcp`, "
        "`balance leastconn`, default threads = one per CPU), with maxconn raised so the idle "
        "connections fit and without per-connection logging;",
        "  - direct: the client talks to 127.0.0.11 itself (the physical limit on this machine).",
        "- Rounds: in every round each proxy is started fresh, measured, and stopped; the order "
        "rotates by one each round so no proxy always runs first or last. Within a round the "
        "memory figures are taken proxy by proxy, then each load step (low load, keep-alive, new "
        "connections, bulk) runs for every proxy back to back before the next step, so one "
        "figure is measured for all proxies within seconds (the proxies not under load sit "
        "idle); each step shuffles the proxies afresh (a seeded shuffle, the positions are in "
        "the raw values), so no proxy always runs right after the same other one. Figures are "
        "medians "
        "over rounds; the spread shows how noisy the machine was. Client, proxy and backend share "
        "the same CPUs, so a proxy that burns more CPU also leaves less for the others — that is "
        "part of what is measured. On a busy machine a proxy with more threads (nginx 2 workers, "
        "HAProxy 2 threads) also gets a larger share of the CPU than a single-threaded one, so "
        "the CPU-per-unit rows are the cleaner efficiency comparison.",
        "- Per instance, in this order (the load steps interleaved with the other proxies' as "
        "above): RSS/PSS idle (sum over all processes of the proxy, from "
        "`/proc/PID/smaps_rollup`); %d connections opened through the proxy, one keep-alive "
        "`GET /` on each, held open: RSS loaded and KiB per connection = (loaded − idle) / held; "
        "all closed, 1.5 s later RSS again (does memory go back?); `wrk -c1 -t1 -d%ds --latency` "
        "(latency at low load); `wrk -c%d -t2 -d%ds --latency` (keep-alive, proxy CPU per 100k "
        "requests); the same with "
        "`-H 'Connection: close'` (a new TCP connection per request, proxy CPU per 10k "
        "connections); %d parallel `curl` streams each downloading the %d MiB file %d times over "
        "one connection (MB/s = 10^6 bytes/s, proxy CPU per GB = 10^9 bytes); RSS after all of it."
        % (IDLE_CONNS, DURATION, KA_CONNS, DURATION, BULK_STREAMS, BULK_MIB, BULK_COUNT),
        "- CPU is utime+stime from `/proc/PID/stat` summed over the proxy's processes (nginx "
        "master and workers; all threads are included in a process's figure), in clock ticks "
        "(10 ms).",
        "- Latency figures come from wrk's `--latency` distribution; they include the client "
        "and backend, so compare each proxy with direct.",
        "",
        "<details><summary>Raw values per round</summary>",
        "",
        "```json",
        json.dumps(results, indent=1, sort_keys=True),
        "```",
        "",
        "</details>",
        "",
    ]
    text = "\n".join(out)
    # Keep the sections bench/failover.sh and bench/replace.sh wrote, if any.
    for name in ("failover", "replace"):
        kept = read_section(path, name)
        if kept is not None:
            text += "\n" + section(kept, name)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    return tbl


def section(body, name):
    return f"<!-- {name}:begin -->\n{body.rstrip()}\n<!-- {name}:end -->\n"


def read_section(path, name):
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return None
    b, e = f"<!-- {name}:begin -->\n", f"<!-- {name}:end -->"
    if b in text and e in text:
        return text[text.index(b) + len(b):text.index(e)]
    return None


def replace_section(path, name, body):
    """Write body between the name:begin/end markers of path, appending it if not there yet."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        text = "# Benchmarks\n\n"
    b, e = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    if b in text and e in text:
        text = text[:text.index(b)] + section(body, name) + text[text.index(e) + len(e) + 1:]
    else:
        text = text.rstrip("\n") + "\n\n" + section(body, name)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


# ----------------------------------------------------------------------------- main

def main():
    t_start = time.monotonic()
    raise_nofile()
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    global IDLE_CONNS
    if IDLE_CONNS + 200 > soft:
        log(f"RLIMIT_NOFILE is {soft}: holding {soft - 200} idle connections instead of {IDLE_CONNS}")
        IDLE_CONNS = max(0, soft - 200)

    second = bool(os.environ.get("KAL_BENCH_ARGS_2")) or bool(os.environ.get("KAL_BIN_2"))
    default = [p for p in ALL_PROXIES if p != "kube-api-lb-2" or second]
    proxies = [p.strip() for p in os.environ.get("BENCH_PROXIES", ",".join(default)).split(",")
               if p.strip()]
    for p in proxies:
        if p not in ALL_PROXIES:
            sys.exit(f"bench: error: unknown proxy {p!r} in BENCH_PROXIES (known: {ALL_PROXIES})")
    kal_bin = os.path.abspath(os.environ.get("KAL_BIN") or os.path.join(REPO, "build", "kube-api-lb"))
    # The second variant may be another build (an A/B of a change, same rounds) and/or other flags.
    kal_bins = {"kube-api-lb": kal_bin,
                "kube-api-lb-2": os.path.abspath(os.environ.get("KAL_BIN_2") or kal_bin)}
    kal_args = {"kube-api-lb": shlex.split(os.environ.get("KAL_BENCH_ARGS", "")),
                "kube-api-lb-2": shlex.split(os.environ.get("KAL_BENCH_ARGS_2", ""))}
    for name, args in kal_args.items():
        if args:
            LABEL[name] = f"kube-api-lb {shlex.join(args)}"
            SHORT[name] = f"kal {shlex.join(args)}"
    if os.environ.get("KAL_BIN_2"):
        extra = "".join(" " + a for a in [shlex.join(kal_args["kube-api-lb-2"])] if a)
        LABEL["kube-api-lb-2"] = "kube-api-lb (KAL_BIN_2)" + extra
        SHORT["kube-api-lb-2"] = "kal (KAL_BIN_2)" + extra
    notes = []
    for name, path in kal_bins.items():
        if name in proxies and not os.access(path, os.X_OK):
            var = "KAL_BIN_2" if name == "kube-api-lb-2" and os.environ.get("KAL_BIN_2") else "KAL_BIN"
            sys.exit(f"bench: error: kube-api-lb binary {path} not found or not executable "
                     f"(set {var}, or BENCH_PROXIES without {name})")
    for addr in BACKENDS:
        host, port = addr.rsplit(":", 1)
        if port_in_use(host, int(port)):
            sys.exit(f"bench: error: backend address {addr} is already in use "
                     "(another benchmark running? set BENCH_BACKEND_PORT)")
    out_path = os.environ.get("BENCH_OUT", os.path.join(REPO, "docs", "benchmarks.md"))

    info = machine_info()
    versions = {}
    if any(p in SHORT for p in proxies):
        versions["kube-api-lb"] = cmd_first_line([kal_bin, "--version"])
    if "kube-api-lb-2" in proxies and os.environ.get("KAL_BIN_2"):
        versions["kube-api-lb (KAL_BIN_2)"] = (cmd_first_line([kal_bins["kube-api-lb-2"], "--version"])
                                               + f", {kal_bins['kube-api-lb-2']}")
    versions["nginx"] = cmd_first_line(["nginx", "-v"])
    versions["HAProxy"] = cmd_first_line(["haproxy", "-v"])
    versions["wrk"] = cmd_first_line(["wrk", "-v"])
    versions["curl"] = cmd_first_line(["curl", "--version"])
    load_before = " ".join(open("/proc/loadavg").read().split()[:3])

    procs = Procs()
    workdir = tempfile.mkdtemp(prefix="kal-bench-")
    os.chmod(workdir, 0o755)
    results = {p: [] for p in proxies}
    rounds_done = 0
    try:
        for d in ("www/files", "tmp"):
            os.makedirs(os.path.join(workdir, d))
        big = os.path.join(workdir, "www", "files", "big.bin")
        with open(big, "wb") as f:  # real pages (not a sparse file), so sendfile does real work
            chunk = os.urandom(1024 * 1024)
            for _ in range(BULK_MIB):
                f.write(chunk)
        os.chmod(big, 0o644)
        conf = render("backend-nginx.conf", {"PREFIX": workdir, "WORKERS": str(BACKEND_WORKERS),
                                             "ADDR1": BACKENDS[0], "ADDR2": BACKENDS[1],
                                             "ADDR3": BACKENDS[2]}, workdir)
        backend = procs.start(["nginx", "-p", workdir, "-e",
                               os.path.join(workdir, "backend-start.log"), "-c", conf],
                              os.path.join(workdir, "backend.log"), cwd=workdir)
        for addr in BACKENDS:
            host, port = addr.rsplit(":", 1)
            wait_http(host, int(port), "/", backend)
        # Warm the page cache and the backend.
        run_bulk("127.0.0.11", BACKEND_PORT, workdir, procs)

        round_times = []
        for rnd in range(ROUNDS):
            elapsed = time.monotonic() - t_start
            est = max(round_times) if round_times else 0
            if rnd > 0 and elapsed + est > TIME_LIMIT:
                notes.append(f"stopped after {rnd} of {ROUNDS} rounds to stay within "
                             f"BENCH_TIME_LIMIT={TIME_LIMIT}s")
                log(notes[-1])
                break
            t_round = time.monotonic()
            k = rnd % len(proxies)
            order = proxies[k:] + proxies[:k]
            log(f"round {rnd + 1}/{ROUNDS}: {' → '.join(order)}")
            done = run_round(rnd, order, workdir, procs, kal_bins, kal_args, notes)
            for name, m in done.items():
                results[name].append(m)
                log(f"  {name:12s} ka {m['ka_rps']:9,.0f} req/s  cc {m['cc_cps']:8,.0f} conn/s"
                    f"  bulk {m['bulk_mbs']:6,.0f} MB/s  ll p50 {m['ll_p50']:5.0f} µs"
                    + (f"  rss {m['rss_idle']:.1f}→{m.get('rss_loaded', 0):.1f}→"
                       f"{m.get('rss_after_burst', 0):.1f} MiB" if "rss_idle" in m else ""))
                if m.get("conn_failures"):
                    notes.append(f"round {rnd + 1}: {name} failed {m['conn_failures']} of "
                                 f"{IDLE_CONNS} idle connections")
                for key, what in (("ka_errors", "keep-alive"), ("cc_errors", "new-connection")):
                    if m.get(key):
                        notes.append(f"round {rnd + 1}: {name}: {m[key]} socket errors or "
                                     f"non-2xx responses in the {what} run")
            rounds_done += 1
            round_times.append(time.monotonic() - t_round)
        procs.stop(backend)
    finally:
        procs.stop_all()
        if os.environ.get("BENCH_KEEP_WORKDIR"):
            log(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    elapsed = time.monotonic() - t_start
    load_after = " ".join(open("/proc/loadavg").read().split()[:3])
    stats = summarize(results, proxies)
    if os.environ.get("BENCH_JSON"):
        with open(os.environ["BENCH_JSON"], "w") as f:
            json.dump({"results": results, "notes": notes, "info": info, "versions": versions}, f,
                      indent=1)
    if out_path != "-":
        tbl = write_report(out_path, stats, results, proxies, info, versions, rounds_done, elapsed,
                           notes, load_before, load_after, kal_args)
        log(f"wrote {out_path}")
    else:
        tbl = table(stats, proxies)
    print(tbl)
    for n in notes:
        print(f"note: {n}")
    print(f"total time: {elapsed:.0f} s")
    return 0


def on_signal(signum, frame):
    raise SystemExit(f"bench: interrupted by signal {signum}")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    # Even when started with SIGINT ignored (a background job of a script), Ctrl-C sent to us
    # directly must still stop and clean up.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit("bench: interrupted")
