#!/usr/bin/env python3
"""kube-api-lb failover benchmark (stdlib only). Run it through bench/failover.sh.

Three TLS stand-in apiservers (tests/tools/fake_apiserver.py): "a" inside a network namespace this
script creates (so it can be cut off), "b" and "c" on 127.0.0.12/13. In front of them, one at a time:
kube-api-lb (--health-check=https, GET /readyz), nginx as Kubespray's nginx-proxy (passive only),
HAProxy as Kubespray configures it (check-ssl GET /healthz every 15 s) and HAProxy tuned (check-ssl
GET /readyz every 1 s, fall 2, on-marked-down shutdown-sessions).

Per trial: fresh backends and proxy; watch streams are opened through the proxy until one is served
by "a"; FAILOVER_PROBERS (2) loops each open a new TLS connection through the proxy every 20 ms, GET /version
(1 s timeout). Then "a" is faulted:
  hung      SIGSTOP (TCP still accepted by the kernel, nothing answers)
  cut-off   every packet to/from its namespace dropped (nft inside the namespace)
  refused   SIGKILL (connects refused, its connections reset)
  draining  SIGTERM with a 6 s shutdown delay: /readyz fails at once, everything else is served,
            then the listener closes (kube-apiserver's graceful shutdown)
Figures: "avoided after" = start time (after the fault) of the last probe that failed or was served
by "a" (new connections are steered away from then on); failed probes; "stream closed after" = time
until the proxy closed the watch stream bound to "a" so the client could reconnect elsewhere.
Anything not reached within the window is shown as "> window".

Caveat: with leastconn, connections stuck on a hung or cut-off server raise its connection count, so
a proxy can steer new connections away from it before any check fails (HAProxy keeps the half-closed
server side of an abandoned connection open; nginx closes it). "Avoided after" is what clients saw;
"stream closed after" is the figure that depends on active detection.
"""

import json
import os
import random
import shlex
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (process registry, rendering, helpers)

HERE = bench.HERE
REPO = bench.REPO
TOOLS = os.path.join(REPO, "tests", "tools")
TRIALS = bench.env_int("FAILOVER_TRIALS", 2, 1, 20)
WINDOW = bench.env_int("FAILOVER_WINDOW", 12, 3, 120)
PORT = bench.env_int("FAILOVER_PORT", 16443, 1, 65535)
PROBERS = bench.env_int("FAILOVER_PROBERS", 2, 1, 8)  # parallel probe loops
DRAIN_DELAY = 6
ALL = ["kube-api-lb", "nginx", "haproxy-kubespray", "haproxy-tuned"]
SCENARIOS = ["hung", "cut-off", "refused", "draining"]
LABEL = {"kube-api-lb": "kube-api-lb", "nginx": "nginx (Kubespray)",
         "haproxy-kubespray": "HAProxy (Kubespray)", "haproxy-tuned": "HAProxy (tuned)"}
log = bench.log


def run(argv, check=True):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    if check and r.returncode != 0:
        raise RuntimeError(f"{shlex.join(argv)} failed: {r.stderr.strip()}")
    return r


class Netns:
    """A namespace with one veth pair; the host end gets .1, the namespace end .2 of a /30."""

    def __init__(self):
        self.name = f"kalfo{os.getpid()}"
        tag = os.getpid() % 100000
        self.host_if, self.ns_if = f"kfh{tag}", f"kfn{tag}"
        used = run(["ip", "-4", "-o", "addr", "show"]).stdout
        for _ in range(50):
            x = random.randint(1, 254)
            if f"10.231.{x}." not in used:
                break
        else:
            raise RuntimeError("no free 10.231.x.0/30 subnet")
        self.host_ip, self.ns_ip = f"10.231.{x}.1", f"10.231.{x}.2"
        self.created = False

    def create(self):
        run(["ip", "netns", "add", self.name])
        self.created = True
        run(["ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if,
             "netns", self.name])
        run(["ip", "addr", "add", f"{self.host_ip}/30", "dev", self.host_if])
        run(["ip", "link", "set", self.host_if, "up"])
        run(["ip", "-n", self.name, "addr", "add", f"{self.ns_ip}/30", "dev", self.ns_if])
        run(["ip", "-n", self.name, "link", "set", self.ns_if, "up"])
        run(["ip", "-n", self.name, "link", "set", "lo", "up"])

    def cut(self):
        rules = ("table inet kalfo {\n"
                 " chain in { type filter hook input priority 0; policy drop; }\n"
                 " chain out { type filter hook output priority 0; policy drop; }\n}\n")
        r = subprocess.run(["ip", "netns", "exec", self.name, "nft", "-f", "-"], input=rules,
                           capture_output=True, text=True, timeout=10)
        if r.returncode != 0:
            raise RuntimeError(f"nft in {self.name} failed: {r.stderr.strip()}")

    def uncut(self):
        run(["ip", "netns", "exec", self.name, "nft", "delete", "table", "inet", "kalfo"],
            check=False)

    def destroy(self):
        if self.created:
            # Deleting the namespace removes the veth pair too. Our processes in it are gone by now.
            run(["ip", "netns", "del", self.name], check=False)
            self.created = False


# ----------------------------------------------------------------------------- TLS client side

class Client:
    def __init__(self, pki):
        self.ctx = ssl.create_default_context(cafile=os.path.join(pki, "ca.crt"))
        self.ctx.check_hostname = False
        self.ctx.load_cert_chain(os.path.join(pki, "client.crt"), os.path.join(pki, "client.key"))

    def connect(self, port, timeout):
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        try:
            return self.ctx.wrap_socket(raw)
        except Exception:
            raw.close()
            raise


def read_head(s):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            raise OSError("closed before headers")
        data += chunk
        if len(data) > 65536:
            raise OSError("headers too long")
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return status, hdrs, rest


def probe(client, port, timeout=1.0):
    """One new connection + GET /version. Returns (ok, served_by)."""
    deadline = time.monotonic() + timeout
    try:
        s = client.connect(port, timeout)
    except (OSError, ssl.SSLError):
        return False, None
    try:
        s.settimeout(max(0.05, deadline - time.monotonic()))
        s.sendall(b"GET /version HTTP/1.1\r\nHost: kubernetes\r\nConnection: close\r\n\r\n")
        status, hdrs, _ = read_head(s)
        return status == 200 and time.monotonic() <= deadline, hdrs.get("x-apiserver")
    except (OSError, ssl.SSLError, ValueError, IndexError):
        return False, None
    finally:
        s.close()


class Watch(threading.Thread):
    def __init__(self, client, port):
        super().__init__(daemon=True)
        self.s = client.connect(port, 3.0)
        self.s.settimeout(3.0)
        self.s.sendall(b"GET /api/v1/namespaces/default/pods?watch=1&intervalMs=100 HTTP/1.1\r\n"
                       b"Host: kubernetes\r\n\r\n")
        status, hdrs, _ = read_head(self.s)
        if status != 200:
            raise RuntimeError(f"watch got HTTP {status}")
        self.backend = hdrs.get("x-apiserver")
        self.closed_at = None
        self.stop = False
        self.s.settimeout(0.2)

    def run(self):
        while not self.stop:
            try:
                if not self.s.recv(65536):
                    break
            except socket.timeout:
                continue
            except (OSError, ssl.SSLError):
                break
        if not self.stop:
            self.closed_at = time.monotonic()

    def close(self):
        self.stop = True
        self.join(timeout=2)
        try:
            self.s.close()
        except OSError:
            pass


# ----------------------------------------------------------------------------- one trial

def start_backends(procs, workdir, pki, ns):
    fake = os.path.join(TOOLS, "fake_apiserver.py")
    common = ["--cert", os.path.join(pki, "server.crt"), "--key", os.path.join(pki, "server.key"),
              "--ca", os.path.join(pki, "ca.crt"), "--no-client-cert-required",
              "--shutdown-delay", str(DRAIN_DELAY), "--shutdown-grace", "1"]
    addrs = {"a": f"{ns.ns_ip}:{PORT}", "b": f"127.0.0.12:{PORT}", "c": f"127.0.0.13:{PORT}"}
    ps = {}
    for name, addr in addrs.items():
        argv = ["python3", fake, "--listen", addr, "--name", name, *common]
        if name == "a":
            argv = ["ip", "netns", "exec", ns.name, *argv]  # ip execs: same PID
        ps[name] = procs.start(argv, os.path.join(workdir, f"backend-{name}.log"))
    for name, addr in addrs.items():
        host, port = addr.rsplit(":", 1)
        deadline = time.monotonic() + 10
        while True:
            if ps[name].poll() is not None:
                raise RuntimeError(f"backend {name} exited: see backend-{name}.log")
            try:
                socket.create_connection((host, int(port)), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"backend {name} not listening on {addr}")
                time.sleep(0.05)
    return ps, list(addrs.values())


def start_proxy(name, procs, workdir, pki, addrs, kal_bin, kal_args):
    port, health_port = bench.free_port(), bench.free_port()
    subst = {"PREFIX": workdir, "LISTEN": f"127.0.0.1:{port}",
             "HEALTH_LISTEN": f"127.0.0.1:{health_port}", "STREAM_MODULE": bench.STREAM_MODULE,
             "ADDR1": addrs[0], "ADDR2": addrs[1], "ADDR3": addrs[2], "MAXCONN": "4000"}
    if name == "kube-api-lb":
        argv = [kal_bin, "--endpoints=" + ",".join(addrs), f"--listen=127.0.0.1:{port}",
                "--health-check=https", f"--health-ca-file={os.path.join(pki, 'ca.crt')}",
                "--health-server-name=localhost", f"--admin-listen=127.0.0.1:{health_port}",
                *kal_args]
    elif name == "nginx":
        conf = bench.render("nginx-proxy.conf", subst, workdir)
        argv = ["nginx", "-p", workdir, "-e", os.path.join(workdir, "nginx-start.log"), "-c", conf]
    elif name in ("haproxy-kubespray", "haproxy-tuned"):
        conf = bench.render(f"failover-{name}.cfg", subst, workdir)
        argv = ["haproxy", "-db", "-f", conf]
    else:
        raise ValueError(name)
    p = procs.start(argv, os.path.join(workdir, f"{name}.log"), cwd=workdir)
    bench.wait_http("127.0.0.1", health_port, "/healthz", p)
    return p, port


def trial(name, scenario, procs, workdir, pki, ns, client, kal_bin, kal_args):
    backends, addrs = start_backends(procs, workdir, pki, ns)
    proxy = None
    watches = []
    try:
        proxy, port = start_proxy(name, procs, workdir, pki, addrs, kal_bin, kal_args)
        deadline = time.monotonic() + 15
        while not probe(client, port, 2.0)[0]:
            if time.monotonic() > deadline or proxy.poll() is not None:
                raise RuntimeError("proxy never served GET /version")
            time.sleep(0.1)
        time.sleep(2.5)  # let active checkers see every backend up (rise 2 at 1 s)
        for _ in range(12):
            w = Watch(client, port)
            w.start()
            watches.append(w)
            if w.backend == "a":
                break
        on_a = [w for w in watches if w.backend == "a"]
        if not on_a:
            raise RuntimeError("no watch stream landed on backend a in 12 tries")

        results = []  # (t_start, t_end, ok, served_by)
        stop = threading.Event()

        def prober():
            while not stop.is_set():
                t0 = time.monotonic()
                ok, by = probe(client, port, 1.0)
                results.append((t0, time.monotonic(), ok, by))
                stop.wait(0.02)

        ths = [threading.Thread(target=prober, daemon=True) for _ in range(PROBERS)]
        for th in ths:
            th.start()
        time.sleep(1.0)
        t_fault = time.monotonic()
        pa = backends["a"]
        if scenario == "hung":
            pa.send_signal(signal.SIGSTOP)
        elif scenario == "cut-off":
            ns.cut()
        elif scenario == "refused":
            pa.send_signal(signal.SIGKILL)
        elif scenario == "draining":
            pa.send_signal(signal.SIGTERM)
        time.sleep(WINDOW)
        stop.set()
        for th in ths:
            th.join(timeout=5)
        results.sort()
        if proxy.poll() is not None:
            raise RuntimeError(f"proxy exited with code {proxy.returncode} during the trial")

        before = [r for r in results if r[0] < t_fault]
        after = [r for r in results if r[0] >= t_fault]
        if not after:
            raise RuntimeError("prober made no probe after the fault")
        bad = [r for r in after if not r[2] or r[3] == "a"]
        base_fail = sum(1 for r in before if not r[2])
        m = {"probes": len(after), "failed": sum(1 for r in after if not r[2]),
             "baseline_failed": base_fail}
        t_end_window = t_fault + WINDOW
        if not bad:
            m["avoid_s"] = 0.0
        elif bad[-1][0] > t_end_window - 1.5:  # still going wrong at the end of the window
            m["avoid_s"] = None
        else:
            m["avoid_s"] = bad[-1][0] - t_fault
        closed = [w.closed_at for w in on_a]
        m["stream_s"] = (max(closed) - t_fault) if all(c is not None for c in closed) else None
        others_closed = [w for w in watches if w.backend != "a" and w.closed_at is not None]
        m["other_streams_closed"] = len(others_closed)
        return m
    finally:
        for w in watches:
            w.close()
        if scenario == "cut-off":
            ns.uncut()
        for p in backends.values():
            if p.poll() is None:
                p.send_signal(signal.SIGCONT)
        if proxy is not None:
            procs.stop(proxy)
        for p in backends.values():
            procs.stop(p, sig=signal.SIGKILL, grace=5)


# ----------------------------------------------------------------------------- report

def fmt_s(v):
    return "—" if v == "n/a" else (f"> {WINDOW} s" if v is None else f"{v:.2f} s")


def med(vals):
    """Median where None (not reached in the window) counts as +infinity."""
    if not vals:
        return "n/a"
    m = statistics.median([float("inf") if v is None else v for v in vals])
    return None if m == float("inf") else m


def spread(vals):
    if len(vals) < 2:
        return ""
    lo = min(vals, key=lambda v: float("inf") if v is None else v)
    hi = max(vals, key=lambda v: float("inf") if v is None else v)
    f = (lambda v: f"> {WINDOW}" if v is None else f"{v:.2f}")
    return f" ({f(lo)}–{f(hi)})"


def report(res, proxies):
    head = ["Scenario", "Figure"] + [LABEL[p] for p in proxies]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for sc in SCENARIOS:
        for key, label in (("avoid_s", "new connections avoid it after"),
                           ("failed", "failed probes / probes"),
                           ("stream_s", "stuck stream closed after")):
            cells = [sc, label]
            for p in proxies:
                trials = res.get(p, {}).get(sc, [])
                vals = [t[key] for t in trials if "error" not in t]
                if not vals:
                    cells.append("error" if trials else "—")
                elif key == "failed":
                    total = statistics.median([t["probes"] for t in trials if "error" not in t])
                    cells.append(f"{statistics.median(vals):.0f} / {total:.0f}"
                                 + (f" ({min(vals)}–{max(vals)})" if len(vals) > 1 else ""))
                else:
                    cells.append(fmt_s(med(vals)) + spread(vals))
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- main

def main():
    t_start = time.monotonic()
    if os.geteuid() != 0:
        sys.exit("failover: error: needs root (network namespace, nft)")
    for tool in ("ip", "nft", "nginx", "haproxy", "openssl"):
        if not shutil.which(tool):
            sys.exit(f"failover: error: {tool} not found")
    if not os.path.exists(os.path.join(TOOLS, "fake_apiserver.py")):
        sys.exit("failover: error: tests/tools/fake_apiserver.py not found")
    proxies = [p.strip() for p in os.environ.get("FAILOVER_PROXIES", ",".join(ALL)).split(",")
               if p.strip()]
    scenarios = [s.strip() for s in os.environ.get("FAILOVER_SCENARIOS",
                                                   ",".join(SCENARIOS)).split(",") if s.strip()]
    for p in proxies:
        if p not in ALL:
            sys.exit(f"failover: error: unknown proxy {p!r} (known: {ALL})")
    for s in scenarios:
        if s not in SCENARIOS:
            sys.exit(f"failover: error: unknown scenario {s!r} (known: {SCENARIOS})")
    kal_bin = os.path.abspath(os.environ.get("KAL_BIN") or os.path.join(REPO, "build", "kube-api-lb"))
    kal_args = shlex.split(os.environ.get("KAL_FAILOVER_ARGS", ""))
    if "kube-api-lb" in proxies and not os.access(kal_bin, os.X_OK):
        sys.exit(f"failover: error: kube-api-lb binary {kal_bin} not found (set KAL_BIN, or "
                 "FAILOVER_PROXIES without kube-api-lb)")
    for host in ("127.0.0.12", "127.0.0.13"):
        if bench.port_in_use(host, PORT):
            sys.exit(f"failover: error: {host}:{PORT} in use (set FAILOVER_PORT)")

    procs = bench.Procs()
    workdir = tempfile.mkdtemp(prefix="kal-failover-")
    os.chmod(workdir, 0o755)
    ns = Netns()
    res = {p: {s: [] for s in scenarios} for p in proxies}
    notes = []
    try:
        os.makedirs(os.path.join(workdir, "tmp"))
        pki = os.path.join(workdir, "pki")
        run(["python3", os.path.join(TOOLS, "gen_certs.py"), pki, "--extra-san",
             f"IP:{ns.ns_ip}"])
        ns.create()
        client = Client(pki)
        for t in range(TRIALS):
            for sc in scenarios:
                k = (t + scenarios.index(sc)) % len(proxies)
                for name in proxies[k:] + proxies[:k]:
                    try:
                        m = trial(name, sc, procs, workdir, pki, ns, client, kal_bin, kal_args)
                        log(f"trial {t + 1} {sc:9s} {name:18s} avoid {fmt_s(m['avoid_s']):>8s}  "
                            f"failed {m['failed']:3d}/{m['probes']}  stream {fmt_s(m['stream_s'])}")
                    except Exception as e:
                        m = {"error": str(e)}
                        notes.append(f"trial {t + 1} {sc} {name}: {e}")
                        log(notes[-1])
                    m["trial"] = t + 1
                    res[name][sc].append(m)
    finally:
        procs.stop_all()
        ns.destroy()
        if os.environ.get("BENCH_KEEP_WORKDIR"):
            log(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    tbl = report(res, proxies)
    elapsed = time.monotonic() - t_start
    out = os.environ.get("FAILOVER_OUT", os.path.join(REPO, "docs", "benchmarks.md"))
    if out != "-":
        write(out, tbl, res, notes, elapsed, kal_bin, kal_args, proxies)
        log(f"wrote {out}")
    print(tbl)
    for n in notes:
        print(f"note: {n}")
    print(f"total time: {elapsed:.0f} s")
    return 0


def write(path, tbl, res, notes, elapsed, kal_bin, kal_args, proxies):
    import datetime
    info = bench.machine_info()
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = ["## Failover", "",
             "Generated by `bench/failover.sh` (see `bench/README.md`); do not edit by hand.", "",
             f"- Date: {date}; {TRIALS} trials per cell, {WINDOW} s window, {elapsed:.0f} s total",
             f"- Machine: {info['nproc']} CPUs ({info['cpu']}), Linux {info['kernel']}"]
    if "kube-api-lb" in proxies:
        lines.append(f"- kube-api-lb: `{bench.cmd_first_line([kal_bin, '--version'])}`, "
                     f"`--health-check=https` (defaults: 1 s interval, fall 2, rise 2) "
                     f"{shlex.join(kal_args)}")
    lines += [f"- nginx: `{bench.cmd_first_line(['nginx', '-v'])}`; "
              f"HAProxy: `{bench.cmd_first_line(['haproxy', '-v'])}`", "",
              "Median over trials (min–max); \"> window\" = not reached before the window ended.",
              "", tbl, ""]
    if notes:
        lines += ["Notes:", ""] + [f"- {n}" for n in notes] + [""]
    lines += ["### Method (failover)", "", __doc__.split("\n\n", 1)[1].strip(), "",
              "Proxies: kube-api-lb `--health-check=https` against `/readyz` with the test CA; "
              "nginx = `bench/templates/nginx-proxy.conf` (Kubespray's, passive only); "
              "HAProxy (Kubespray) = `bench/templates/failover-haproxy-kubespray.cfg` "
              "(`check-ssl`, `GET /healthz`, inter 15 s, fall 2, no shutdown-sessions); "
              "HAProxy (tuned) = `bench/templates/failover-haproxy-tuned.cfg` "
              "(`GET /readyz`, inter/fastinter/downinter 1 s, fall 2, rise 2, "
              "`on-marked-down shutdown-sessions`, timeout check 1 s).", "",
              "<details><summary>Raw values per trial</summary>", "", "```json",
              json.dumps(res, indent=1), "```", "", "</details>", ""]
    bench.replace_section(path, "failover", "\n".join(lines))


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, bench.on_signal)
    signal.signal(signal.SIGHUP, bench.on_signal)
    # Even when started with SIGINT ignored (a background job of a script), Ctrl-C sent to us
    # directly must still stop and clean up.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit("failover: interrupted")
