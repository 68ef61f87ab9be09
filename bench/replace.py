#!/usr/bin/env python3
"""Pod replacement benchmark (stdlib only). Run it through bench/replace.sh.

kubelet replaces a static pod by sending the container's stop signal, waiting until it exits (up to
the pod's grace period, 30 s by default, then SIGKILL), and only then starting the new container on
the same host port. Meanwhile 127.0.0.1:6443 refuses kubelet and kube-proxy. This plays that
sequence for kube-api-lb, nginx (Kubespray's nginx-proxy config; the nginx image stops with SIGQUIT)
and HAProxy (Kubespray's haproxy config; the haproxy image stops with SIGUSR1, a soft stop), in front
of three TLS stand-in apiservers (tests/tools/fake_apiserver.py) on 127.0.0.11-13, while

  * 6 watches are open (chunked; each reconnects at once when it ends, as client-go's reflectors do);
  * a client opens a new TLS connection and sends GET /version every 20 ms.

Per trial: "exit after" = stop signal to the old process's exit; "refused window" = first to last
refused connect; "refused" = requests refused; "failed" = requests that failed any other way (reset,
cut answer, timeout); "cut" = watches that ended in the middle of an event. A proxy that has not
exited after the grace is killed, as kubelet does.
"""

import errno
import json
import os
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

REPO = bench.REPO
TOOLS = os.path.join(REPO, "tests", "tools")
TRIALS = bench.env_int("REPLACE_TRIALS", 2, 1, 10)
GRACE = bench.env_int("REPLACE_GRACE", 30, 1, 120)  # the pod's terminationGracePeriodSeconds
ALL = ["kube-api-lb", "nginx", "haproxy"]
LABEL = {"kube-api-lb": "kube-api-lb", "nginx": "nginx (Kubespray, SIGQUIT)",
         "haproxy": "HAProxy (Kubespray, SIGUSR1)"}
STOP = {"kube-api-lb": signal.SIGTERM, "nginx": signal.SIGQUIT, "haproxy": signal.SIGUSR1}
WATCH_MS = 400
WATCHES = 6


class Client:
    def __init__(self, pki):
        self.ctx = ssl.create_default_context(cafile=os.path.join(pki, "ca.crt"))
        self.ctx.load_cert_chain(os.path.join(pki, "client.crt"), os.path.join(pki, "client.key"))


class Watch(threading.Thread):
    """A watch that reconnects when it ends; counts ends and cuts mid-event (partial chunk)."""

    def __init__(self, client, port, ns, deadline):
        super().__init__(daemon=True)
        self.client, self.port, self.ns, self.deadline = client, port, ns, deadline
        self.ends = self.cuts = self.events = 0
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set() and time.monotonic() < self.deadline:
            try:
                self.one()
            except (OSError, ssl.SSLError, ValueError):
                time.sleep(0.02)

    def one(self):
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        s = self.client.ctx.wrap_socket(raw, server_hostname="localhost")
        try:
            s.sendall(f"GET /api/v1/namespaces/{self.ns}/pods?watch=1&intervalMs={WATCH_MS} "
                      "HTTP/1.1\r\nHost: kubernetes\r\n\r\n".encode())
            buf = b""
            while b"\r\n\r\n" not in buf:
                d = s.recv(65536)
                if not d:
                    raise OSError("EOF before headers")
                buf += d
            head, buf = buf.split(b"\r\n\r\n", 1)
            if not head.startswith(b"HTTP/1.1 200"):
                raise OSError("watch refused")
            s.settimeout(0.25)
            while not self.halt.is_set():
                while True:
                    i = buf.find(b"\r\n")
                    if i < 0:
                        break
                    size = int(buf[:i].split(b";")[0], 16)
                    if size == 0 or len(buf) < i + 2 + size + 2:
                        break
                    self.events += buf[i + 2:i + 2 + size].count(b'"type"')
                    buf = buf[i + 2 + size + 2:]
                try:
                    d = s.recv(65536)
                except socket.timeout:
                    continue
                except (OSError, ssl.SSLError):
                    d = b""
                if not d:
                    self.ends += 1
                    partial = buf and not buf.startswith(b"0\r\n")
                    self.cuts += 1 if partial else 0
                    return
                buf += d
        finally:
            s.close()


class Requests(threading.Thread):
    def __init__(self, client, port, deadline):
        super().__init__(daemon=True)
        self.client, self.port, self.deadline = client, port, deadline
        self.results = []  # (monotonic t, "ok" | "refused" | "failed")
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set() and time.monotonic() < self.deadline:
            t = time.monotonic()
            self.results.append((t, self.once()))
            time.sleep(max(0.0, 0.02 - (time.monotonic() - t)))

    def once(self):
        try:
            raw = socket.create_connection(("127.0.0.1", self.port), timeout=2)
        except OSError as e:
            return "refused" if e.errno == errno.ECONNREFUSED else "failed"
        try:
            s = self.client.ctx.wrap_socket(raw, server_hostname="localhost")
            s.settimeout(2)
            s.sendall(b"GET /version HTTP/1.1\r\nHost: kubernetes\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                d = s.recv(65536)
                if not d:
                    break
                data += d
            s.close()
            return "ok" if data.startswith(b"HTTP/1.1 200") and b'"apiserver"' in data else "failed"
        except (OSError, ssl.SSLError):
            raw.close()
            return "failed"


def start_backends(procs, workdir, pki, port):
    fake = os.path.join(TOOLS, "fake_apiserver.py")
    common = ["--cert", os.path.join(pki, "server.crt"), "--key", os.path.join(pki, "server.key"),
              "--ca", os.path.join(pki, "ca.crt"), "--no-client-cert-required",
              "--watch-interval-ms", str(WATCH_MS)]
    addrs = [f"127.0.0.1{i}:{port}" for i in (1, 2, 3)]
    for name, addr in zip("abc", addrs):
        procs.start([sys.executable, fake, "--listen", addr, "--name", name, *common],
                    os.path.join(workdir, f"backend-{name}.log"))
    for addr in addrs:
        host, p = addr.rsplit(":", 1)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection((host, int(p)), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"backend not listening on {addr}")
                time.sleep(0.05)
    return addrs


def start_proxy(name, procs, workdir, pki, addrs, port, health_port, kal_bin, gen):
    subst = {"PREFIX": workdir, "LISTEN": f"127.0.0.1:{port}",
             "HEALTH_LISTEN": f"127.0.0.1:{health_port}", "STREAM_MODULE": bench.STREAM_MODULE,
             "ADDR1": addrs[0], "ADDR2": addrs[1], "ADDR3": addrs[2], "MAXCONN": "4000"}
    if name == "kube-api-lb":
        argv = [kal_bin, "--endpoints=" + ",".join(addrs), f"--listen=127.0.0.1:{port}",
                "--health-check=https", f"--health-ca-file={os.path.join(pki, 'ca.crt')}",
                "--health-server-name=localhost", f"--admin-listen=127.0.0.1:{health_port}",
                f"--shutdown-grace={GRACE}s"]
    elif name == "nginx":
        conf = bench.render("nginx-proxy.conf", subst, workdir)
        os.makedirs(os.path.join(workdir, "tmp"), exist_ok=True)
        argv = ["nginx", "-p", workdir, "-e", os.path.join(workdir, "nginx-start.log"), "-c", conf]
    else:
        conf = bench.render("failover-haproxy-kubespray.cfg", subst, workdir)
        argv = ["haproxy", "-db", "-f", conf]
    p = procs.start(argv, os.path.join(workdir, f"{name}-{gen}.log"), cwd=workdir)
    return p


def wait_listening(port, p, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if p.poll() is not None:
            raise RuntimeError(f"exited with code {p.returncode} while starting")
        if bench.port_in_use("127.0.0.1", port):
            return
        time.sleep(0.005)
    raise RuntimeError("not listening")


def trial(name, procs, workdir, pki, addrs, client, kal_bin):
    port, health_port = bench.free_port(), bench.free_port()
    old = start_proxy(name, procs, workdir, pki, addrs, port, health_port, kal_bin, "old")
    wait_listening(port, old)
    bench.wait_http("127.0.0.1", health_port, "/healthz", old)
    time.sleep(2.5)  # active checkers see every backend up
    deadline = time.monotonic() + GRACE + 40
    watches = [Watch(client, port, f"ns{i}", deadline) for i in range(WATCHES)]
    for w in watches:
        w.start()
    reqs = Requests(client, port, deadline)
    reqs.start()
    new = None
    try:
        time.sleep(2.0)
        t0 = time.monotonic()
        old.send_signal(STOP[name])
        killed = False
        members = bench.tree(old.pid)  # nginx: the master and its workers
        try:
            old.wait(timeout=GRACE)
        except subprocess.TimeoutExpired:
            # kubelet's SIGKILL after the grace period ends the whole container: every process.
            for pid in bench.tree(old.pid) or members:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            old.wait(timeout=10)
            killed = True
        # The container has exited when its last process has (nginx's workers outlive the master
        # for a moment).
        deadline = time.monotonic() + 10
        while any(bench.alive(pid) for pid in members[1:]) and time.monotonic() < deadline:
            time.sleep(0.002)
        t_exit = time.monotonic()
        procs.stop(old)
        new = start_proxy(name, procs, workdir, pki, addrs, port, health_port, kal_bin, "new")
        wait_listening(port, new)
        t_listen = time.monotonic()
        time.sleep(3.0)
    finally:
        reqs.halt.set()
        for w in watches:
            w.halt.set()
        reqs.join(10)
        for w in watches:
            w.join(5)
        if new is not None:
            procs.stop(new)
    refused = [t for t, r in reqs.results if r == "refused"]
    return {
        "exit": t_exit - t0, "killed": killed, "listen": t_listen - t0,
        "window": (refused[-1] - refused[0]) if refused else 0.0,
        "refused": len(refused), "failed": sum(1 for _, r in reqs.results if r == "failed"),
        "ok": sum(1 for _, r in reqs.results if r == "ok"),
        "cut": sum(w.cuts for w in watches), "ends": sum(w.ends for w in watches),
    }


def main():
    bench.raise_nofile()
    kal_bin = os.environ.get("KAL_BIN") or os.path.join(REPO, "build", "kube-api-lb")
    only = [p.strip() for p in os.environ.get("REPLACE_PROXIES", ",".join(ALL)).split(",")
            if p.strip()]
    for p in only:
        if p not in ALL:
            sys.exit(f"replace: error: REPLACE_PROXIES: unknown proxy {p!r} (known: "
                     f"{', '.join(ALL)})")
    for tool in ("nginx", "haproxy", "openssl"):
        if tool != "openssl" and tool not in only:
            continue
        if not any(os.access(os.path.join(d, tool), os.X_OK)
                   for d in os.environ.get("PATH", "").split(":") + ["/usr/sbin"]):
            sys.exit(f"replace: error: {tool} not found")
    if "kube-api-lb" in only and not os.access(kal_bin, os.X_OK):
        sys.exit(f"replace: error: no kube-api-lb binary at {kal_bin} (set KAL_BIN)")
    workdir = tempfile.mkdtemp(prefix="kal-replace-")
    pki = os.path.join(workdir, "pki")
    subprocess_run([sys.executable, os.path.join(TOOLS, "gen_certs.py"), pki])
    procs = bench.Procs()
    results = {n: [] for n in only}
    try:
        addrs = start_backends(procs, workdir, pki, bench.free_port())
        client = Client(pki)
        for k in range(TRIALS):
            for name in only:
                r = trial(name, procs, workdir, pki, addrs, client, kal_bin)
                results[name].append(r)
                bench.log(f"trial {k + 1}/{TRIALS} {name}: exit after {r['exit']:.3f} s"
                          f"{' (killed at the grace)' if r['killed'] else ''}, new listening "
                          f"{r['listen']:.3f} s after the signal, refused {r['refused']} over "
                          f"{r['window']:.3f} s, failed {r['failed']}, ok {r['ok']}, watches "
                          f"ended {r['ends']} cut {r['cut']}")
    finally:
        procs.stop_all()
    shutil.rmtree(workdir, ignore_errors=True)
    med = statistics.median
    lines = [f"Pod replacement (kubelet's sequence: stop signal, wait for exit, start), "
             f"{TRIALS} trial(s) each, grace {GRACE} s, 6 watches + a TLS request every 20 ms; "
             "medians:", "",
             "| proxy | exit after stop signal | refused window | refused | failed "
             "| watches cut mid-event |", "|---|---|---|---|---|---|"]
    for name in only:
        rs = results[name]
        killed = sum(r["killed"] for r in rs)
        lines.append(f"| {LABEL[name]} | {med(r['exit'] for r in rs):.3f} s"
                     f"{f' ({killed} killed at the grace)' if killed else ''} "
                     f"| {med(r['window'] for r in rs):.3f} s | {med(r['refused'] for r in rs):g} "
                     f"| {sum(r['failed'] for r in rs)} | {sum(r['cut'] for r in rs)} |")
    text = "\n".join(lines)
    print(text)
    if os.environ.get("REPLACE_JSON"):
        with open(os.environ["REPLACE_JSON"], "w") as f:
            json.dump(results, f, indent=1)
    out = os.environ.get("REPLACE_DOC", os.path.join(REPO, "docs", "benchmarks.md"))
    if out != "-" and only == ALL:
        bench.replace_section(out, "replace", text)
        bench.log(f"wrote the 'replace' section of {out}")


def subprocess_run(argv):
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)


if __name__ == "__main__":
    main()
