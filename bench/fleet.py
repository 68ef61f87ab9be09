#!/usr/bin/env python3
"""Fleet measurement: what kube-api-lb's health checks cost each apiserver, per node, projected to
100, 1,000 and 5,000 nodes (issue 21).

    bench/fleet.py [--nodes 40] [--duration 60] [--kal-arg=--health-interval=10s ...] \\
        [--apiserver-arg=--readyz-delay-ms=600 ...] [--slow-readyz-ms 600] [--no-http2] \\
        [--assert-budget] [--json out.json]

Starts three counting stand-in apiservers (tests/tools/fake_apiserver.py, TLS with client
certificates, ALPN h2 + http/1.1 unless --no-http2) on 127.0.0.11-13 and N kube-api-lb processes,
one per simulated node, each with its own --listen and --admin-listen port on 127.0.0.1 and the
defaults plus any --kal-arg (binary: --kal-bin, else $KAL_BIN, else build/kube-api-lb). Nothing
connects through the proxies: what the apiservers see is the checkers alone. Once every proxy's
/readyz answers 200 and --warmup seconds have passed, the apiservers' counters (their
--counters-file, stamped with their own clock) are read, again after --duration seconds, and the
difference is divided by the time between the two stamps:

  requests/s (all HTTP requests; /readyz on its own), HTTP/2 PINGs/s, TLS handshakes/s, and new
  TCP connections/s, per apiserver, per node (the per-apiserver rate / N), and per apiserver at
  100, 1,000 and 5,000 nodes (per-node rate x nodes; the checks of one node do not depend on the
  others', so the cost is linear in nodes). Node by node too: the stand-ins count per client
  connection (--count-peers) and each proxy's connections are found in /proc (its fds and
  /proc/net/tcp), giving min / median / max over nodes of each node's own rates.

Budget (issue 21): at 5,000 nodes at most ~500 HTTP requests/s per apiserver, i.e. <= 0.1
requests/s per node per apiserver (--budget). The verdict is always printed; with --assert-budget
the exit status is 1 when any apiserver is over it. Exit status 2: the run itself failed (a process
died, a proxy never became ready).

Every process is started by this script, stopped by PID at the end (SIGTERM, then SIGKILL after
5 s) and dies with it (PR_SET_PDEATHSIG). Runs for about --duration + --warmup + start-up seconds.
Loopback only.
"""
import argparse
import ctypes
import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
TOOLS = os.path.join(REPO, "tests", "tools")
sys.path.insert(0, TOOLS)
import kal_python  # noqa: E402
from kal_wait import wait_until  # noqa: E402

APISERVER_IPS = ("127.0.0.11", "127.0.0.12", "127.0.0.13")
NAMES = ("a", "b", "c")
SCALES = (100, 1000, 5000)
_libc = ctypes.CDLL(None, use_errno=True)


def log(msg):
    sys.stderr.write(f"fleet: {msg}\n")
    sys.stderr.flush()


class Procs:
    """Every child, stopped by PID at the end; each dies with this process (PR_SET_PDEATHSIG)."""

    def __init__(self):
        self.procs = []

    def start(self, argv, log_path):
        with open(log_path, "wb") as logf:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                 preexec_fn=lambda: _libc.prctl(1, signal.SIGKILL),
                                 close_fds=True)
        p.log_path = log_path
        self.procs.append(p)
        return p

    def stop_all(self):
        for p in self.procs:
            if p.poll() is None:
                try:
                    p.send_signal(signal.SIGCONT)
                    p.terminate()
                except OSError:
                    pass
        deadline = time.monotonic() + 5
        for p in self.procs:
            try:
                p.wait(max(0.05, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


_handed_out = set()


def free_port(host="127.0.0.1"):
    for _ in range(200):
        with socket.socket() as s:
            s.bind((host, 0))
            p = s.getsockname()[1]
        if p not in _handed_out:
            _handed_out.add(p)
            return p
    raise RuntimeError("no free port")


def tail(path, n=15):
    try:
        with open(path, errors="replace") as f:
            return "\n".join(f.read().splitlines()[-n:])
    except OSError:
        return ""


def admin_status(port, path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        c.request("GET", path)
        r = c.getresponse()
        r.read()
        return r.status
    except OSError:
        return None
    finally:
        c.close()


def start_apiservers(procs, work, pki, http2, extra):
    servers = {}
    py = kal_python.interpreter("h2") if http2 else sys.executable
    for name, ip in zip(NAMES, APISERVER_IPS):
        counters = os.path.join(work, f"counters-{name}.json")
        control = os.path.join(work, f"control-{name}.json")
        argv = [py, os.path.join(TOOLS, "fake_apiserver.py"), "--name", name, "--control-file",
                control,
                "--listen", f"{ip}:0", "--cert", os.path.join(pki, "server.crt"),
                "--key", os.path.join(pki, "server.key"), "--ca", os.path.join(pki, "ca.crt"),
                "--counters-file", counters, "--count-peers", "--http2" if http2 else "--no-http2",
                *extra]
        p = procs.start(argv, os.path.join(work, f"apiserver-{name}.log"))
        servers[name] = {"proc": p, "counters": counters, "control": control}
    for name, s in servers.items():
        def listening():
            if s["proc"].poll() is not None:
                raise RuntimeError(f"apiserver {name} exited:\n{tail(s['proc'].log_path)}")
            m = re.search(r"^listening (\S+):(\d+)$", tail(s["proc"].log_path, 50), re.M)
            return m and f"{m.group(1)}:{m.group(2)}"
        s["endpoint"] = wait_until(listening, 20, what=f"apiserver {name} to listen", interval=0.1)
        wait_until(lambda: os.path.exists(s["counters"]), 10,
                   what=f"apiserver {name}'s counters", interval=0.1)
    return servers


def start_proxies(procs, work, pki, kal_bin, endpoints, n, kal_args):
    proxies = []
    for i in range(n):
        port, admin = free_port(), free_port()
        argv = [kal_bin, "--endpoints=" + ",".join(endpoints), f"--listen=127.0.0.1:{port}",
                f"--admin-listen=127.0.0.1:{admin}", "--health-check=https",
                f"--health-ca-file={os.path.join(pki, 'ca.crt')}",
                f"--health-client-cert={os.path.join(pki, 'health.crt')}",
                f"--health-client-key={os.path.join(pki, 'health.key')}", *kal_args]
        p = procs.start(argv, os.path.join(work, f"kube-api-lb-{i:04d}.log"))
        proxies.append({"proc": p, "port": port, "admin": admin})
    return proxies


def read_counters(servers):
    out = {}
    for name, s in servers.items():
        for _ in range(20):  # written atomically, but be patient with a slow first write
            try:
                with open(s["counters"]) as f:
                    out[name] = json.load(f)
                break
            except (OSError, ValueError):
                time.sleep(0.05)
        else:
            raise RuntimeError(f"cannot read {s['counters']}")
    return out


def rates(before, after):
    """Per-second rates between two counter snapshots of one apiserver."""
    dt = after["monotonic"] - before["monotonic"]
    if dt <= 0:
        raise RuntimeError("counters did not advance (is the apiserver hung?)")

    def r(key):
        return (after.get(key, 0) - before.get(key, 0)) / dt
    return {"seconds": dt, "requests": r("requests"), "readyz": r("readyz"), "pings": r("pings"),
            "handshakes": r("tls_handshakes"), "connections": r("connections"),
            "requests_h2": r("requests_h2"), "requests_http1": r("requests_http1"),
            "connections_open": after.get("connections_open", 0),
            "connections_h2_total": after.get("connections_h2", 0),
            "connections_http1_total": after.get("connections_http1", 0)}


def tcp_table():
    """inode -> (local "ip:port", remote "ip:port") of every IPv4 TCP socket in this namespace."""
    def addr(hexa):
        ip, port = hexa.split(":")
        return f"{socket.inet_ntoa(struct.pack('<I', int(ip, 16)))}:{int(port, 16)}"
    rows = {}
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            cols = line.split()
            rows[cols[9]] = (addr(cols[1]), addr(cols[2]))
    return rows


def local_ports_to(pid, table, endpoint):
    """The local "ip:port" of each socket of process `pid` connected to `endpoint`."""
    out = []
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return out
    for fd in fds:
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            row = table.get(link[8:-1])
            if row and row[1] == endpoint:
                out.append(row[0])
    return out


def per_node_spread(servers, proxies, before, after):
    """Per apiserver: min / median / max over nodes of each node's own rates, from the stand-ins'
    per-connection counters (--count-peers) and the connections each proxy holds at the end (a
    connection a proxy closed during the window is not attributed: "attributed" says how much
    of the apiserver's requests and PINGs was)."""
    table = tcp_table()
    out = {}
    for name, s in servers.items():
        dt = after[name]["monotonic"] - before[name]["monotonic"]
        b, a = before[name].get("peers", {}), after[name].get("peers", {})
        zero = {"requests": 0, "readyz": 0, "pings": 0}
        per = {"requests": [], "readyz": [], "pings": []}
        seen = 0
        total = {k: 0 for k in zero}
        for p in proxies:
            ports = local_ports_to(p["proc"].pid, table, s["endpoint"])
            if ports:
                seen += 1
            for k in per:
                n = sum(a.get(l, zero)[k] - b.get(l, zero)[k] for l in ports)
                per[k].append(n / dt)
                total[k] += n
        whole = {k: after[name].get(k, 0) - before[name].get(k, 0) for k in total}
        got = sum(total[k] for k in ("requests", "pings"))
        want = sum(whole[k] for k in ("requests", "pings"))
        out[name] = {k: [min(v), statistics.median(v), max(v)] for k, v in per.items()}
        out[name]["nodes_connected"] = seen
        out[name]["attributed"] = got / want if want else 1.0
    return out


def fmt(x):
    if x >= 100:
        return f"{x:,.0f}"
    if x >= 10:
        return f"{x:.1f}"
    if x >= 1:
        return f"{x:.2f}"
    return f"{x:.3f}"


def report(res, nodes, budget, out=sys.stdout):
    w = out.write
    w(f"\nper apiserver, measured over {res['measured_s']:.1f} s with {nodes} nodes "
      f"(per node = / {nodes}):\n")
    w(f"{'apiserver':<10}{'req/s':>9}{'readyz/s':>10}{'PINGs/s':>9}{'TLS hs/s':>10}"
      f"{'conn/s':>8}{'open':>6} | {'per node: req/s':>16}{'readyz/s':>10}{'PINGs/s':>9}"
      f"{'TLS hs/s':>10}  protocol\n")
    for name, r in res["apiservers"].items():
        pn = r["per_node"]
        proto = "h2" if r["requests_h2"] > 0 and r["requests_http1"] == 0 else \
            "http/1.1" if r["requests_h2"] == 0 else "mixed"
        if r["requests"] == 0:
            proto = "h2" if r["connections_h2_total"] else "-"
        w(f"{name:<10}{fmt(r['requests']):>9}{fmt(r['readyz']):>10}{fmt(r['pings']):>9}"
          f"{fmt(r['handshakes']):>10}{fmt(r['connections']):>8}{r['connections_open']:>6} | "
          f"{fmt(pn['requests']):>16}{fmt(pn['readyz']):>10}{fmt(pn['pings']):>9}"
          f"{fmt(pn['handshakes']):>10}  {proto}\n")
    if res.get("spread"):
        w("\nnode by node (each node's own rate at each apiserver: min / median / max):\n")
        w(f"{'apiserver':<10}{'requests/s':>24}{'readyz/s':>24}{'PINGs/s':>24}  nodes  "
          "attributed\n")
        for name, sp in res["spread"].items():
            cells = ["/".join(fmt(x) for x in sp[k]) for k in ("requests", "readyz", "pings")]
            w(f"{name:<10}{cells[0]:>24}{cells[1]:>24}{cells[2]:>24}"
              f"{sp['nodes_connected']:>7}  {sp['attributed'] * 100:.0f}%\n")
    w("\nprojected per apiserver (the worst apiserver's per-node rate x nodes):\n")
    w(f"{'nodes':>7}{'requests/s':>12}{'readyz/s':>10}{'PINGs/s':>10}{'TLS hs/s':>10}\n")
    for n, p in res["projection"].items():
        w(f"{n:>7,}{fmt(p['requests']):>12}{fmt(p['readyz']):>10}{fmt(p['pings']):>10}"
          f"{fmt(p['handshakes']):>10}\n")
    v = res["verdict"]
    verdict = "WITHIN budget" if v["ok"] else f"OVER budget ({v['x']:.1f}x)"
    w(f"\nbudget: <= {budget:g} requests/s per node per apiserver (= {budget * 5000:,.0f}/s per "
      f"apiserver at 5,000 nodes); worst apiserver {v['worst']}: {fmt(v['per_node'])}/s per "
      f"node -> {fmt(v['at_5000'])}/s at 5,000 nodes: {verdict}\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=40, help="kube-api-lb processes (default 40)")
    ap.add_argument("--duration", type=float, default=60.0, help="seconds measured (default 60)")
    ap.add_argument("--warmup", type=float, default=5.0,
                    help="seconds after every proxy is ready before measuring (default 5)")
    ap.add_argument("--kal-bin", default=os.environ.get("KAL_BIN") or
                    os.path.join(REPO, "build", "kube-api-lb"))
    ap.add_argument("--kal-arg", action="append", default=[], metavar="FLAG",
                    help="extra kube-api-lb flag (repeatable), "
                    "e.g. --kal-arg=--health-interval=10s")
    ap.add_argument("--apiserver-arg", action="append", default=[], metavar="FLAG",
                    help="extra stand-in apiserver flag for all three (repeatable), "
                    "e.g. --apiserver-arg=--readyz-delay-ms=600")
    ap.add_argument("--no-http2", action="store_true",
                    help="the stand-ins offer only http/1.1 (default: h2 and http/1.1)")
    ap.add_argument("--budget", type=float, default=0.1,
                    help="requests/s per node per apiserver allowed (default 0.1)")
    ap.add_argument("--assert-budget", action="store_true", help="exit 1 when over budget")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    ap.add_argument("--ready-timeout", type=float, default=60.0)
    ap.add_argument("--slow-readyz-ms", type=int, default=0, metavar="MS",
                    help="once every proxy is ready, every stand-in answers /readyz after MS ms "
                         "(overload: not ready, still alive); measured after --warmup more")
    a = ap.parse_args()
    if a.nodes < 1 or a.duration <= 0:
        ap.error("--nodes must be >= 1 and --duration > 0")
    if not os.access(a.kal_bin, os.X_OK):
        ap.error(f"kube-api-lb binary not found at {a.kal_bin} (set KAL_BIN or --kal-bin)")
    if not a.no_http2 and not kal_python.has("h2", python=kal_python.interpreter("h2")):
        ap.error("the HTTP/2 stand-ins need python3-h2 (scripts/install-deps.sh); or --no-http2")

    work = tempfile.mkdtemp(prefix="kal-fleet-")
    procs = Procs()

    def on_signal(num, frame):
        raise KeyboardInterrupt()
    signal.signal(signal.SIGTERM, on_signal)
    status = 0
    try:
        pki = os.path.join(work, "pki")
        subprocess.run([sys.executable, os.path.join(TOOLS, "gen_certs.py"), pki], check=True,
                       stdout=subprocess.DEVNULL)
        servers = start_apiservers(procs, work, pki, not a.no_http2, a.apiserver_arg)
        endpoints = [s["endpoint"] for s in servers.values()]
        log(f"apiservers {', '.join(endpoints)} ({'h2+http/1.1' if not a.no_http2 else 'http/1.1'}"
            f"); starting {a.nodes} kube-api-lb {' '.join(a.kal_arg)}")
        t_start = time.monotonic()
        proxies = start_proxies(procs, work, pki, a.kal_bin, endpoints, a.nodes, a.kal_arg)

        def all_ready():
            for i, p in enumerate(proxies):
                if p["proc"].poll() is not None:
                    raise RuntimeError(f"kube-api-lb #{i} exited ({p['proc'].returncode}):\n"
                                       f"{tail(p['proc'].log_path)}")
                if not p.get("ready"):
                    p["ready"] = admin_status(p["admin"], "/readyz") == 200
            return all(p["ready"] for p in proxies)
        wait_until(all_ready, a.ready_timeout, what=f"all {a.nodes} proxies to be ready",
                   interval=0.2)
        log(f"all {a.nodes} ready after {time.monotonic() - t_start:.1f} s; warming up "
            f"{a.warmup:g} s, then measuring {a.duration:g} s")
        time.sleep(a.warmup)
        if a.slow_readyz_ms:
            # The control plane overloaded: /readyz slow on every apiserver, everything else
            # (PINGs included) answered. What the fleet then costs each apiserver is the figure.
            for s in servers.values():
                tmp = s["control"] + ".tmp"
                with open(tmp, "w") as f:
                    json.dump({"readyz_delay_ms": a.slow_readyz_ms}, f)
                os.replace(tmp, s["control"])
            log(f"every apiserver now answers /readyz after {a.slow_readyz_ms} ms; settling "
                f"{a.warmup:g} s more")
            time.sleep(a.warmup)
        before = read_counters(servers)
        deadline = time.monotonic() + a.duration
        while time.monotonic() < deadline:  # watch for deaths while waiting
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
            for i, p in enumerate(proxies):
                if p["proc"].poll() is not None:
                    raise RuntimeError(f"kube-api-lb #{i} exited ({p['proc'].returncode}) while "
                                       f"measuring:\n{tail(p['proc'].log_path)}")
        after = read_counters(servers)
        spread = per_node_spread(servers, proxies, before, after)
        not_ready = sum(1 for p in proxies if admin_status(p["admin"], "/readyz") != 200)

        res = {"nodes": a.nodes, "kal_bin": a.kal_bin, "kal_args": a.kal_arg,
               "apiserver_args": a.apiserver_arg, "slow_readyz_ms": a.slow_readyz_ms,
               "http2_offered": not a.no_http2, "apiservers": {}, "proxies_not_ready_at_end":
               not_ready}
        for name in NAMES:
            r = rates(before[name], after[name])
            r["per_node"] = {k: r[k] / a.nodes for k in
                             ("requests", "readyz", "pings", "handshakes", "connections")}
            res["apiservers"][name] = r
        res["spread"] = spread
        res["measured_s"] = min(r["seconds"] for r in res["apiservers"].values())
        worst = max(NAMES, key=lambda n: res["apiservers"][n]["per_node"]["requests"])
        wpn = res["apiservers"][worst]["per_node"]
        res["projection"] = {n: {k: wpn[k] * n for k in ("requests", "readyz", "pings",
                                                         "handshakes")} for n in SCALES}
        ok = wpn["requests"] <= a.budget
        res["verdict"] = {"worst": worst, "per_node": wpn["requests"],
                          "at_5000": wpn["requests"] * 5000, "budget_per_node": a.budget,
                          "ok": ok, "x": wpn["requests"] / a.budget if a.budget else 0.0}
        print(f"fleet: {a.nodes} kube-api-lb x 3 apiservers, binary {a.kal_bin}, flags: "
              f"{' '.join(a.kal_arg) or '(defaults)'}; stand-ins offer "
              f"{'h2, http/1.1' if not a.no_http2 else 'http/1.1'}"
              f"{f'; /readyz answered after {a.slow_readyz_ms} ms (overload)' if a.slow_readyz_ms else ''}")
        report(res, a.nodes, a.budget)
        if not_ready:
            print(f"warning: {not_ready} of {a.nodes} proxies were not ready at the end")
        if a.json:
            with open(a.json, "w") as f:
                json.dump(res, f, indent=2)
        if a.assert_budget and not ok:
            status = 1
    except KeyboardInterrupt:
        log("interrupted")
        status = 130
    except (RuntimeError, AssertionError, OSError, subprocess.CalledProcessError) as e:
        log(f"error: {e} (logs in {work})")
        a.keep = True
        status = 2
    finally:
        procs.stop_all()
        if a.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    sys.exit(status)


if __name__ == "__main__":
    main()
