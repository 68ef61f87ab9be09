#!/usr/bin/env python3
"""A stand-in kube-apiserver for kube-api-lb's tests and demo: real TLS, client certificates, HTTP/1.1.

    fake_apiserver.py --listen 127.0.0.11:6443 [--listen ...] --name a \\
        --cert server.crt --key server.key --ca ca.crt [--shutdown-delay 15] [--ready-file PATH] \\
        [--no-client-cert-required] [--anonymous-auth=false] [--watch-interval-ms 200] [-v]

TLS: client certificates are required and verified against --ca by default (handshake fails without
one). With --no-client-cert-required they are optional; a request without one is "system:anonymous":
with --anonymous-auth=true (default, like kube-apiserver) it may read /healthz /livez /readyz /version
and gets 403 elsewhere; with --anonymous-auth=false it gets 401 everywhere.
ALPN offers only http/1.1. Keep-alive is supported; one thread per connection.

Endpoints:
  GET  /healthz /livez          200 "ok"
  GET  /readyz                  200 "ok"; 500 while draining (after SIGTERM) or while --ready-file is missing
  GET  /version                 kube-apiserver's version JSON, gitVersion "v1.31.0-fake-<name>", "apiserver": name
  GET  /whoami                  JSON: the client certificate subject this server saw, and its name
  GET  /api, /apis              minimal discovery documents
  GET  /api/v1/namespaces/<ns>/pods            a PodList
  GET  /api/v1/namespaces/<ns>/pods?watch=1    chunked stream, one JSON watch event every
                                               --watch-interval-ms (or &intervalMs=N), until the
                                               client goes away or the server stops
  GET  /bytes?n=N               N bytes of the shared test pattern (tests/tools/kal_pattern.py)
  POST /sha256                  {"sha256": hex, "bytes": n} of the request body (Content-Length or chunked)
  GET  /sleep?ms=N              answers "slept" after N ms
Every response carries "X-Apiserver: <name>".

Graceful shutdown like kube-apiserver's --shutdown-delay-duration: on SIGTERM/SIGINT /readyz answers 500
for --shutdown-delay seconds while everything else is still served; then the listeners close (new
connects are refused), watches end, idle keep-alive connections are closed, requests in flight get up
to --shutdown-grace seconds, and the process exits 0. A second signal exits at once with status 1.

stderr: one "listening <host>:<port>" line per listener once it is bound (port 0 gets its real port),
then "... accepting since unix_time=<wall clock of the first listen(2), microseconds>" (for tests that
time recovery from the instant an apiserver accepts connections again), plus one line per lifecycle
event; per-request logs only with -v.
"""
import argparse
import hashlib
import json
import os
import signal
import socket
import ssl
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kal_pattern  # noqa: E402

PUBLIC_PATHS = ("/healthz", "/livez", "/readyz", "/version")
MAX_LINE = 16 * 1024
IDLE_TIMEOUT = 300.0
HANDSHAKE_TIMEOUT = 10.0

REASONS = {
    100: "Continue", 200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
    404: "Not Found", 405: "Method Not Allowed", 500: "Internal Server Error",
    503: "Service Unavailable"
}


def log(msg):
    sys.stderr.write(f"{time.strftime('%H:%M:%S')} fake-apiserver {msg}\n")
    sys.stderr.flush()


def parse_listen(spec):
    if spec.startswith("["):
        host, sep, port = spec[1:].partition("]:")
        if not sep:
            raise ValueError(f"bad --listen {spec!r}")
    else:
        host, sep, port = spec.rpartition(":")
        if not sep or ":" in host:
            raise ValueError(f"bad --listen {spec!r} (IPv6 needs brackets)")
    return host, int(port)


def status_json(code, reason, message):
    return json.dumps({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code
    }).encode()


class BadRequest(Exception):
    pass


class Conn:
    """One client connection; `idle` is True while waiting for the next request."""

    def __init__(self, sock, peer):
        self.sock = sock
        self.peer = peer
        self.idle = True
        self.lock = threading.Lock()
        self.closed = False

    def force_close(self):
        """Wake a thread blocked reading this socket (used at shutdown for idle connections)."""
        with self.lock:
            if self.closed:
                return
            try:
                dup = socket.socket(fileno=os.dup(self.sock.fileno()))
                dup.shutdown(socket.SHUT_RDWR)
                dup.close()
            except OSError:
                pass

    def mark_closed(self):
        with self.lock:
            self.closed = True


class Server:
    def __init__(self, args):
        self.a = args
        self.name = args.name
        self.draining = False  # /readyz fails
        self.stopping = False  # listeners closed, connections winding down
        self.conns = set()
        self.conns_lock = threading.Lock()
        self.handshake_failures = 0
        self.requests = 0
        self.listeners = []
        self.ctx = self.make_ctx()

    def make_ctx(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.a.cert, self.a.key)
        ctx.load_verify_locations(self.a.ca)
        ctx.verify_mode = ssl.CERT_OPTIONAL if self.a.no_client_cert_required else ssl.CERT_REQUIRED
        ctx.set_alpn_protocols(["http/1.1"])
        return ctx

    # ---- lifecycle
    def bind(self):
        first_listen = None
        for spec in self.a.listen:
            host, port = parse_listen(spec)
            fam = socket.AF_INET6 if ":" in host else socket.AF_INET
            s = socket.socket(fam, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if fam == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.bind((host, port))
            s.listen(4096)
            if first_listen is None:
                first_listen = time.time()  # the kernel accepts connections from here on
            s.settimeout(0.2)
            self.listeners.append(s)
            h, p = s.getsockname()[:2]
            shown = f"[{h}]" if fam == socket.AF_INET6 else h
            sys.stderr.write(f"listening {shown}:{p}\n")
            sys.stderr.flush()
        if first_listen is not None:
            log(f"name={self.name} accepting since unix_time={first_listen:.6f}")

    def serve(self):
        threading.stack_size(512 * 1024)
        for s in self.listeners:
            threading.Thread(target=self.accept_loop, args=(s,), daemon=True).start()
        log(f"name={self.name} serving; client certs "
            f"{'optional' if self.a.no_client_cert_required else 'required'}, "
            f"anonymous-auth={'true' if self.a.anonymous_auth else 'false'}")

    def accept_loop(self, lsock):
        while not self.stopping:
            try:
                sock, peer = lsock.accept()
            except socket.timeout:
                continue
            except OSError as e:
                if self.stopping:
                    break
                log(f"accept error: {e}")
                time.sleep(0.05)
                continue
            if self.stopping:
                sock.close()
                break
            try:
                threading.Thread(target=self.handle, args=(sock, peer), daemon=True).start()
            except RuntimeError as e:  # cannot start a thread: shed this connection
                log(f"cannot start thread: {e}")
                sock.close()
        lsock.close()

    def shutdown(self):
        """The graceful sequence; runs in the main thread after the first signal."""
        self.draining = True
        log(f"name={self.name} signal received: /readyz fails for {self.a.shutdown_delay}s, "
            "still serving")
        time.sleep(self.a.shutdown_delay)
        self.stopping = True
        log(f"name={self.name} shutdown delay over: closing listeners and connections")
        deadline = time.monotonic() + self.a.shutdown_grace
        while time.monotonic() < deadline:
            with self.conns_lock:
                conns = list(self.conns)
            for c in conns:
                if c.idle:
                    c.force_close()
            if not conns:
                break
            time.sleep(0.05)
        with self.conns_lock:
            left = len(self.conns)
        log(f"name={self.name} exiting (requests served={self.requests}, "
            f"connections cut={left})")

    # ---- one connection
    def handle(self, raw, peer):
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        raw.settimeout(HANDSHAKE_TIMEOUT)
        try:
            sock = self.ctx.wrap_socket(raw, server_side=True)
        except (OSError, ssl.SSLError) as e:
            self.handshake_failures += 1
            n = self.handshake_failures
            if n <= 5 or n % 100 == 0 or self.a.verbose:
                log(f"TLS handshake from {peer[0]} failed ({n} so far): {e}")
            raw.close()
            return
        sock.settimeout(IDLE_TIMEOUT)
        conn = Conn(sock, peer)
        with self.conns_lock:
            self.conns.add(conn)
        try:
            cert = sock.getpeercert()
            ident = identity(cert)
            rfile = sock.makefile("rb", buffering=64 * 1024)
            while not self.stopping:
                conn.idle = True
                if self.stopping:
                    break
                req = read_request(rfile)
                conn.idle = False
                if req is None:
                    break
                self.requests += 1
                if not self.dispatch(sock, rfile, req, ident):
                    break
        except (OSError, ssl.SSLError, BadRequest, ValueError) as e:
            if self.a.verbose:
                log(f"connection from {peer[0]}:{peer[1]} ended: {e}")
        finally:
            conn.mark_closed()
            with self.conns_lock:
                self.conns.discard(conn)
            try:
                sock.close()
            except OSError:
                pass

    def send(self, sock, code, body, ctype="text/plain; charset=utf-8", extra=None):
        """Writes a complete response; returns whether the connection stays open."""
        keep = not self.stopping
        head = [f"HTTP/1.1 {code} {REASONS.get(code, 'Status')}", f"Content-Type: {ctype}",
                f"Content-Length: {len(body)}", f"X-Apiserver: {self.name}",
                "Cache-Control: no-cache, private"]
        if extra:
            head += extra
        if not keep:
            head.append("Connection: close")
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        return keep

    def dispatch(self, sock, rfile, req, ident):
        method, target, headers = req
        url = urllib.parse.urlsplit(target)
        path = url.path
        q = urllib.parse.parse_qs(url.query)
        if self.a.verbose:
            log(f"{method} {target} user={ident['username']}")
        if headers.get("expect", "").lower() == "100-continue":
            sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        if method == "POST" and path == "/sha256":
            n, digest = read_body(rfile, headers, hashlib.sha256())
            body = json.dumps({"sha256": digest.hexdigest(), "bytes": n, "apiserver": self.name})
            return self.send(sock, 200, body.encode(), "application/json")
        read_body(rfile, headers, None)  # keep the connection in sync whatever the path
        client_close = headers.get("connection", "").lower() == "close"

        if ident["anonymous"]:
            if not self.a.anonymous_auth:
                return self.send(sock, 401, status_json(401, "Unauthorized", "Unauthorized"),
                                 "application/json") and not client_close
            if not path.startswith(PUBLIC_PATHS):
                msg = f'forbidden: User "system:anonymous" cannot get path "{path}"'
                return self.send(sock, 403, status_json(403, "Forbidden", msg),
                                 "application/json") and not client_close
        if method not in ("GET", "HEAD"):
            return self.send(sock, 405, status_json(405, "MethodNotAllowed", method),
                             "application/json") and not client_close

        keep = True
        if path in ("/healthz", "/livez"):
            keep = self.send(sock, 200, b"ok")
        elif path == "/readyz":
            problems = []
            if self.draining:
                problems.append("[-]shutdown failed: reason withheld")
            if self.a.ready_file and not os.path.exists(self.a.ready_file):
                problems.append("[-]ready-file failed: reason withheld")
            if problems:
                keep = self.send(sock, 500, ("[+]ping ok\n" + "\n".join(problems) +
                                             "\nreadyz check failed\n").encode())
            else:
                keep = self.send(sock, 200, b"ok")
        elif path == "/version":
            keep = self.send(sock, 200, json.dumps({
                "major": "1", "minor": "31", "gitVersion": f"v1.31.0-fake-{self.name}",
                "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
                "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.22.5", "compiler": "gc",
                "platform": "linux/amd64", "apiserver": self.name
            }, indent=2).encode(), "application/json")
        elif path == "/whoami":
            keep = self.send(sock, 200, json.dumps({
                "apiserver": self.name, "subject": ident["subject"],
                "username": ident["username"], "groups": ident["groups"],
                "anonymous": ident["anonymous"]
            }).encode(), "application/json")
        elif path == "/api":
            keep = self.send(sock, 200, json.dumps({
                "kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{
                    "clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"
                }]
            }).encode(), "application/json")
        elif path == "/apis":
            keep = self.send(sock, 200, json.dumps({
                "kind": "APIGroupList", "apiVersion": "v1", "groups": []
            }).encode(), "application/json")
        elif path.startswith("/api/v1/namespaces/") and path.endswith("/pods"):
            ns = path.split("/")[4]
            if q.get("watch", [""])[0] in ("1", "true"):
                interval = float(q.get("intervalMs", [self.a.watch_interval_ms])[0]) / 1000.0
                self.watch(sock, ns, interval)
                keep = False
            else:
                keep = self.send(sock, 200, json.dumps({
                    "kind": "PodList", "apiVersion": "v1",
                    "metadata": {"resourceVersion": "1"},
                    "items": [pod(ns, f"pod-{i}", 1, self.name) for i in range(3)]
                }).encode(), "application/json")
        elif path == "/bytes":
            n = int(q.get("n", ["0"])[0])
            head = ["HTTP/1.1 200 OK", "Content-Type: application/octet-stream",
                    f"Content-Length: {n}", f"X-Apiserver: {self.name}"]
            sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
            if method == "GET":
                for c in kal_pattern.iter_chunks(n):
                    sock.sendall(c)
            keep = not self.stopping
        elif path == "/sleep":
            time.sleep(float(q.get("ms", ["0"])[0]) / 1000.0)
            keep = self.send(sock, 200, b"slept")
        else:
            keep = self.send(sock, 404, status_json(404, "NotFound", "the server could not find "
                                                    "the requested resource"), "application/json")
        return keep and not client_close

    def watch(self, sock, ns, interval):
        head = ["HTTP/1.1 200 OK", "Content-Type: application/json",
                "Transfer-Encoding: chunked", f"X-Apiserver: {self.name}"]
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        rv = 100
        while not self.stopping:
            rv += 1
            ev = json.dumps({
                "type": "MODIFIED" if rv > 101 else "ADDED",
                "object": pod(ns, "watched", rv, self.name)
            }).encode() + b"\n"
            sock.sendall(b"%x\r\n%s\r\n" % (len(ev), ev))
            time.sleep(interval)
        sock.sendall(b"0\r\n\r\n")  # the apiserver ends watches cleanly when it stops


def pod(ns, name, rv, server):
    return {
        "kind": "Pod", "apiVersion": "v1",
        "metadata": {"name": name, "namespace": ns, "resourceVersion": str(rv),
                     "annotations": {"fake-apiserver": server}},
        "spec": {"nodeName": "k8s-node4", "containers": [{"name": "c", "image": "pause"}]},
        "status": {"phase": "Running"}
    }


def identity(cert):
    if not cert:
        return {"anonymous": True, "subject": "", "username": "system:anonymous",
                "groups": ["system:unauthenticated"]}
    parts, cn, groups = [], "", []
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            short = {"commonName": "CN", "organizationName": "O"}.get(key, key)
            parts.append(f"{short}={value}")
            if short == "CN":
                cn = value
            elif short == "O":
                groups.append(value)
    return {"anonymous": False, "subject": "/" + "/".join(parts), "username": cn,
            "groups": groups + ["system:authenticated"]}


def read_request(rfile):
    """Returns (method, target, headers) or None at a clean EOF between requests."""
    line = rfile.readline(MAX_LINE)
    while line in (b"\r\n", b"\n"):  # tolerate stray CRLF between requests
        line = rfile.readline(MAX_LINE)
    if not line:
        return None
    parts = line.decode("latin-1").split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadRequest(f"bad request line {line[:60]!r}")
    headers = {}
    while True:
        h = rfile.readline(MAX_LINE)
        if not h:
            raise BadRequest("EOF in headers")
        if h in (b"\r\n", b"\n"):
            break
        k, sep, v = h.decode("latin-1").partition(":")
        if not sep:
            raise BadRequest(f"bad header {h[:60]!r}")
        headers[k.strip().lower()] = v.strip()
    return parts[0], parts[1], headers


def read_body(rfile, headers, hasher):
    """Consumes the request body; returns (length, hasher)."""
    total = 0
    if headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size_line = rfile.readline(MAX_LINE)
            if not size_line:
                raise BadRequest("EOF in chunked body")
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                while rfile.readline(MAX_LINE) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                break
            left = size
            while left:
                data = rfile.read(min(left, 256 * 1024))
                if not data:
                    raise BadRequest("EOF in chunk")
                left -= len(data)
                total += len(data)
                if hasher:
                    hasher.update(data)
            rfile.readline(MAX_LINE)
    else:
        left = int(headers.get("content-length", "0"))
        while left:
            data = rfile.read(min(left, 256 * 1024))
            if not data:
                raise BadRequest("EOF in body")
            left -= len(data)
            total += len(data)
            if hasher:
                hasher.update(data)
    return total, hasher


def main():
    ap = argparse.ArgumentParser(description="stand-in kube-apiserver (TLS, client certs)")
    ap.add_argument("--listen", action="append", help="HOST:PORT or [V6]:PORT, repeatable "
                    "(default 127.0.0.1:6443)")
    ap.add_argument("--name", default="fake")
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--ca", required=True, help="CA that client certificates must chain to")
    ap.add_argument("--shutdown-delay", type=float, default=0.0,
                    help="seconds /readyz fails after SIGTERM before the listeners close")
    ap.add_argument("--shutdown-grace", type=float, default=5.0,
                    help="seconds requests in flight get after the listeners close")
    ap.add_argument("--ready-file", help="/readyz fails while this file is missing")
    ap.add_argument("--no-client-cert-required", action="store_true")
    ap.add_argument("--anonymous-auth", default="true", choices=["true", "false"])
    ap.add_argument("--watch-interval-ms", type=float, default=200.0)
    ap.add_argument("-v", "--verbose", action="store_true", help="log every request")
    a = ap.parse_args()
    a.anonymous_auth = a.anonymous_auth == "true"
    a.listen = a.listen or ["127.0.0.1:6443"]

    srv = Server(a)
    try:
        srv.bind()
    except (OSError, ValueError) as e:
        log(f"name={a.name} cannot listen: {e}")
        sys.exit(1)
    signals = []
    got = threading.Event()

    def on_signal(num, frame):
        signals.append(num)
        if len(signals) > 1:
            log(f"name={a.name} second signal: exiting now")
            os._exit(1)
        got.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    srv.serve()
    while not got.wait(1.0):
        pass
    srv.shutdown()
    sys.stderr.flush()
    os._exit(0)  # handler threads are daemons; don't wait for cut connections


if __name__ == "__main__":
    main()
