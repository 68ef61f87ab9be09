#!/usr/bin/env python3
"""A stand-in kube-apiserver for kube-api-lb's tests and demo: real TLS, client certificates,
HTTP/1.1 and HTTP/2, and counters of what it was sent.

    fake_apiserver.py --listen 127.0.0.11:6443 [--listen ...] --name a \\
        --cert server.crt --key server.key --ca ca.crt [--shutdown-delay 15] [--ready-file PATH] \\
        [--no-client-cert-required] [--anonymous-auth=false] [--watch-interval-ms 200] [-v] \\
        [--no-http2] [--counters-file PATH] [--count-peers] [--control-file PATH] \\
        [--readyz-delay-ms N]

TLS: client certificates are required and verified against --ca by default (handshake fails without
one). With --no-client-cert-required they are optional; a request without one is "system:anonymous":
with --anonymous-auth=true (default, like kube-apiserver) it may read /healthz /livez /readyz /version
and gets 403 elsewhere; with --anonymous-auth=false it gets 401 everywhere.
ALPN offers "h2" and "http/1.1", h2 preferred, as kube-apiserver does (--no-http2: only http/1.1); a
client that offers no ALPN gets HTTP/1.1. HTTP/1.1: keep-alive, one thread per connection. HTTP/2
(Debian's python3-h2, server side): one I/O thread per connection, one thread per request; the
same endpoints and answers, watches stream as DATA frames, PING frames are acknowledged (by h2)
and counted; flow control is honoured both ways. Needs the h2 module: when this interpreter lacks
it the script re-executes itself with /usr/bin/python3 (same PID), and exits 2 if h2 is missing
there too (install python3-h2 or pass --no-http2).

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
  GET  /debug/counters          the counters below as JSON (public like /readyz; not itself counted
                                as a request, but in "debug_requests")
  GET  /apis/discovery.k8s.io/v1/namespaces/default/endpointslices[?watch=1&resourceVersion=N
       &allowWatchBookmarks=true&timeoutSeconds=S]
                                the default/kubernetes EndpointSlices of --cluster-file (below):
                                an EndpointSliceList, or a chunked watch (HTTP/1.1) sending MODIFIED
                                / ADDED / DELETED events when the file changes, a BOOKMARK every
                                second, and ending cleanly after timeoutSeconds
Every response carries "X-Apiserver: <name>".

EndpointSlices (for kube-api-lb's endpoint discovery; several stand-ins share one file the way
apiservers share etcd):
  --cluster-file PATH      polled every 100 ms; JSON {"resourceVersion": N, "compactedRV": M,
                           "slices": [{"name": "kubernetes", "port": P, "addressType": "IPv4",
                           "endpoints": [{"ip": "127.0.0.11", "ready": true|false|null}]}],
                           "fault": {"id": K, "kind": KIND}}  (write it atomically). "ready": null
                           leaves the conditions out. A watch from a resourceVersion below
                           compactedRV gets an ERROR event 410 Gone (with "compactedStatus": true
                           an HTTP 410 answer instead). A new fault id is applied once
                           by every watch open then: "410" (ERROR 410 event, stream ends),
                           "error" (ERROR 500 event), "malformed" (an event that is not JSON),
                           "oversize" (a 2 MiB event), "cut" (half an event, then the connection
                           is closed), lists are never faulted.
  --token TOKEN=USER       a bearer token and the user it authenticates (repeatable); an unknown
                           token is 401
  --endpointslices-allow USER
                           only these users may get/list/watch endpointslices (repeatable; none
                           given: every authenticated user); others get 403 Forbidden
  counters: "slices_lists", "slices_watches", "slices_forbidden", "slices_unauthorized"

Counters (for tests and bench/fleet.py): JSON with "name", "pid", "unix_time", "monotonic" (this
process's clock, for rates), "uptime_s", "http2" (h2 offered), "readyz_delay_ms", "hang", and totals
since start: "connections" (TCP accepted), "connections_open", "tls_handshakes" (completed),
"tls_resumed" (of those, session resumptions), "tls_handshake_failures", "connections_h2",
"connections_http1", "requests" (every HTTP request but /debug/*), "requests_h2",
"requests_http1", "readyz", "readyz_h2", "readyz_http1", "pings" (HTTP/2 PING frames received, not
counting ACKs), "goaways_received", "streams_reset", "watches_open", "debug_requests", and
"paths": {path: requests} (the first 200 distinct paths; then "other"); with --count-peers also
"peers": {"ip:port": {"requests", "readyz", "pings"}} per client connection (the first 5,000).
  GET /debug/counters      on the server itself
  --counters-file PATH     written atomically (temporary file + rename) every 0.5 s and at exit

Fault modes, to turn one apiserver "overloaded" or "hung" while a test runs:
  --readyz-delay-ms N      /readyz answers after N ms (on HTTP/2 only that stream waits); everything
                           else, PINGs included, is answered at once
  --control-file PATH      polled every 100 ms; when its content changes, a JSON object in it sets
                           any of {"readyz_delay_ms": N, "hang": true|false, "listen": false,
                           "watch_events": true|false}; keys left out keep their value, a missing
                           or unparsable file changes nothing (write it atomically)
  listen: false            closes the listeners (new connects are refused) and the idle
                           connections (HTTP/2: GOAWAY), as Go's http.Server.Shutdown does and as
                           kube-apiserver does on SIGTERM with --shutdown-delay-duration=0;
                           connections with a request in flight (watches) go on. Not reversible.
                           Logs "listeners closed at unix_time=<wall clock>".
  watch_events: false      open watches stay open but send no events (silent, as most watches
                           are most of the time); true resumes them
  hang                     the process stops answering anything: no accept(2) (the kernel still
                           completes TCP handshakes into the backlog), no TLS handshake, no request,
                           no PING ACK, no watch event, nothing read or written on any connection;
                           nothing is closed; "hang": false resumes where it stopped. The counters
                           file is still written. SIGSTOP/SIGCONT from a test does the same to the
                           whole process (counters file included).

Graceful shutdown like kube-apiserver's --shutdown-delay-duration: on SIGTERM/SIGINT /readyz answers 500
for --shutdown-delay seconds while everything else is still served; then the listeners close (new
connects are refused), watches end, idle keep-alive connections are closed, requests in flight get up
to --shutdown-grace seconds, and the process exits 0. A second signal exits at once with status 1.

stderr: one "listening <host>:<port>" line per listener once it is bound (port 0 gets its real port),
then "... accepting since unix_time=<wall clock of the first listen(2), microseconds>" (for tests that
time recovery from the instant an apiserver accepts connections again), plus one line per lifecycle
event (fault mode changes included); per-request logs only with -v.
"""
import argparse
import hashlib
import json
import os
import select
import signal
import socket
import ssl
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kal_pattern  # noqa: E402
import kal_python  # noqa: E402

h2 = None  # the h2 package, imported in main() when --http2

PUBLIC_PATHS = ("/healthz", "/livez", "/readyz", "/version", "/debug/counters")
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
    """One HTTP/1.1 client connection; `idle` is True while waiting for the next request."""

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


class Counters:
    """What clients sent this server, for tests and bench/fleet.py (thread-safe totals)."""

    MAX_PATHS = 200
    MAX_PEERS = 5000

    def __init__(self, name, per_peer=False):
        self.name = name
        self.peers = {} if per_peer else None  # "ip:port" -> {"requests", "readyz", "pings"}
        self.lock = threading.Lock()
        self.started_unix = time.time()
        self.started = time.monotonic()
        self.c = dict.fromkeys((
            "connections", "connections_open", "tls_handshakes", "tls_resumed",
            "tls_handshake_failures",
            "connections_h2", "connections_http1", "requests", "requests_h2", "requests_http1",
            "readyz", "readyz_h2", "readyz_http1", "pings", "goaways_received", "streams_reset",
            "watches_open", "debug_requests", "slices_lists", "slices_watches",
            "slices_forbidden", "slices_unauthorized"), 0)
        self.paths = {}

    def add(self, key, n=1):
        with self.lock:
            self.c[key] += n

    def _peer(self, peer):
        """The per-connection entry of `peer` (a (host, port) tuple), or None; call locked."""
        if self.peers is None or not peer:
            return None
        key = f"{peer[0]}:{peer[1]}" if ":" not in peer[0] else f"[{peer[0]}]:{peer[1]}"
        e = self.peers.get(key)
        if e is None and len(self.peers) < self.MAX_PEERS:
            e = self.peers[key] = {"requests": 0, "readyz": 0, "pings": 0}
        return e

    def request(self, path, proto, peer=None):
        """Counts one request on `path` over `proto` ("h2" or "http1") from `peer`."""
        with self.lock:
            if path.startswith("/debug/"):
                self.c["debug_requests"] += 1
                return
            self.c["requests"] += 1
            self.c[f"requests_{proto}"] += 1
            e = self._peer(peer)
            if e:
                e["requests"] += 1
            if path == "/readyz":
                self.c["readyz"] += 1
                self.c[f"readyz_{proto}"] += 1
                if e:
                    e["readyz"] += 1
            if path not in self.paths and len(self.paths) >= self.MAX_PATHS:
                path = "other"
            self.paths[path] = self.paths.get(path, 0) + 1

    def ping(self, peer=None):
        with self.lock:
            self.c["pings"] += 1
            e = self._peer(peer)
            if e:
                e["pings"] += 1

    def snapshot(self, extra):
        with self.lock:
            snap = dict(self.c)
            snap["paths"] = dict(self.paths)
            if self.peers is not None:
                snap["peers"] = {k: dict(v) for k, v in self.peers.items()}
        now = time.monotonic()
        snap.update(name=self.name, pid=os.getpid(), unix_time=time.time(), monotonic=now,
                    uptime_s=now - self.started, started_unix=self.started_unix)
        snap.update(extra)
        return snap


def write_atomically(path, text):
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


class Reply:
    """What to answer, whatever the protocol: a whole body ("full"), N pattern bytes ("bytes"), or
    a watch stream ("watch"); `delay` seconds pass before the answer starts."""

    def __init__(self, code, body=b"", ctype="text/plain; charset=utf-8", kind="full", n=0,
                 ns=None, interval=0.0, delay=0.0):
        self.code, self.body, self.ctype, self.kind = code, body, ctype, kind
        self.n, self.ns, self.interval, self.delay = n, ns, interval, delay


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
        self.counters = Counters(self.name, args.count_peers)
        self.readyz_delay_ms = float(args.readyz_delay_ms)
        self.hanging = False
        self.listening = True  # "listen": false closes the listeners for good
        self.watch_events = True  # "watch_events": false keeps watches open but silent
        self.awake = threading.Event()  # cleared while hanging
        self.awake.set()
        self.ctx = self.make_ctx()
        self.cluster = {"resourceVersion": 1, "compactedRV": 0, "compactedStatus": False,
                        "slices": [], "fault": None}
        self.cluster_cond = threading.Condition()
        self.tokens = dict(t.split("=", 1) for t in (args.token or []))

    def make_ctx(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.a.cert, self.a.key)
        ctx.load_verify_locations(self.a.ca)
        ctx.verify_mode = ssl.CERT_OPTIONAL if self.a.no_client_cert_required else ssl.CERT_REQUIRED
        ctx.set_alpn_protocols(["h2", "http/1.1"] if self.a.http2 else ["http/1.1"])
        return ctx

    # ---- fault modes and counters
    def wait_awake(self):
        """Blocks while the server hangs (returns at once otherwise, or when it stops)."""
        while not self.awake.wait(0.2):
            if self.stopping:
                return

    def set_mode(self, readyz_delay_ms=None, hang=None, listen=None, watch_events=None):
        if watch_events is not None and bool(watch_events) != self.watch_events:
            self.watch_events = bool(watch_events)
            log(f"name={self.name} watch_events={'true' if self.watch_events else 'false'}")
        if listen is not None and not listen and self.listening:
            self.close_listeners()
        if readyz_delay_ms is not None and float(readyz_delay_ms) != self.readyz_delay_ms:
            self.readyz_delay_ms = float(readyz_delay_ms)
            log(f"name={self.name} readyz_delay_ms={self.readyz_delay_ms:g}")
        if hang is not None and bool(hang) != self.hanging:
            self.hanging = bool(hang)
            if self.hanging:
                self.awake.clear()
            else:
                self.awake.set()
            log(f"name={self.name} hang={'true' if self.hanging else 'false'}")

    def snapshot(self):
        return self.counters.snapshot({"http2": bool(self.a.http2), "hang": self.hanging,
                                       "readyz_delay_ms": self.readyz_delay_ms})

    def write_counters(self):
        if self.a.counters_file:
            try:
                write_atomically(self.a.counters_file, json.dumps(self.snapshot()) + "\n")
            except OSError as e:
                log(f"name={self.name} cannot write {self.a.counters_file}: {e}")

    def housekeeping(self):
        """Polls --control-file every 100 ms and writes --counters-file every 0.5 s."""
        last_text, next_write = None, 0.0
        last_cluster = None
        while True:
            if self.a.cluster_file:
                try:
                    with open(self.a.cluster_file) as f:
                        text = f.read()
                except OSError:
                    text = None
                if text is not None and text != last_cluster:
                    last_cluster = text
                    try:
                        want = json.loads(text)
                        if not isinstance(want, dict):
                            raise ValueError("not a JSON object")
                        with self.cluster_cond:
                            self.cluster = {
                                "resourceVersion": int(want.get("resourceVersion", 1)),
                                "compactedRV": int(want.get("compactedRV", 0)),
                                "compactedStatus": bool(want.get("compactedStatus", False)),
                                "slices": list(want.get("slices", [])),
                                "fault": want.get("fault")}
                            self.cluster_cond.notify_all()
                    except (ValueError, TypeError) as e:
                        log(f"name={self.name} ignoring {self.a.cluster_file}: {e}")
            if self.a.control_file:
                try:
                    with open(self.a.control_file) as f:
                        text = f.read()
                except OSError:
                    text = None
                if text is not None and text != last_text:
                    last_text = text
                    try:
                        want = json.loads(text)
                        if not isinstance(want, dict):
                            raise ValueError("not a JSON object")
                        self.set_mode(want.get("readyz_delay_ms"), want.get("hang"),
                                      want.get("listen"), want.get("watch_events"))
                    except ValueError as e:
                        log(f"name={self.name} ignoring {self.a.control_file}: {e}")
            if self.a.counters_file and time.monotonic() >= next_write:
                self.write_counters()
                next_write = time.monotonic() + 0.5
            time.sleep(0.1)

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
        threading.Thread(target=self.housekeeping, daemon=True).start()
        log(f"name={self.name} serving; client certs "
            f"{'optional' if self.a.no_client_cert_required else 'required'}, "
            f"anonymous-auth={'true' if self.a.anonymous_auth else 'false'}, "
            f"alpn={'h2,http/1.1' if self.a.http2 else 'http/1.1'}")

    def close_listeners(self):
        """New connects refused, idle connections closed, busy ones (watches) kept: Go's
        http.Server.Shutdown before it waits for the rest."""
        self.listening = False
        for s in self.listeners:
            try:
                # Linux: a listening socket shut down refuses new connects at once and wakes its
                # accept(2) with EINVAL; the accept loop then closes it (no fd race with it).
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        log(f"name={self.name} listeners closed at unix_time={time.time():.6f}")
        with self.conns_lock:
            conns = list(self.conns)
        for c in conns:
            if c.idle:
                c.force_close()

    def accept_loop(self, lsock):
        while not self.stopping and self.listening:
            if self.hanging:  # leave new connections in the kernel's backlog
                self.wait_awake()
                continue
            try:
                sock, peer = lsock.accept()
            except socket.timeout:
                continue
            except OSError as e:
                if self.stopping or not self.listening:
                    break
                log(f"accept error: {e}")
                time.sleep(0.05)
                continue
            if self.stopping:
                sock.close()
                break
            self.counters.add("connections")
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
        self.awake.set()  # a hung server winds down too
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
        self.write_counters()
        log(f"name={self.name} exiting (requests served={self.requests}, "
            f"connections cut={left})")

    # ---- one connection
    def handle(self, raw, peer):
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        raw.settimeout(HANDSHAKE_TIMEOUT)
        self.counters.add("connections_open")
        try:
            self.wait_awake()
            try:
                sock = self.ctx.wrap_socket(raw, server_side=True)
            except (OSError, ssl.SSLError) as e:
                self.handshake_failures += 1
                self.counters.add("tls_handshake_failures")
                n = self.handshake_failures
                if n <= 5 or n % 100 == 0 or self.a.verbose:
                    log(f"TLS handshake from {peer[0]} failed ({n} so far): {e}")
                raw.close()
                return
            self.counters.add("tls_handshakes")
            if sock.session_reused:
                self.counters.add("tls_resumed")
            if sock.selected_alpn_protocol() == "h2":
                self.counters.add("connections_h2")
                H2Conn(self, sock, peer).run()
            else:
                self.counters.add("connections_http1")
                self.handle_http1(sock, peer)
        finally:
            self.counters.add("connections_open", -1)

    def handle_http1(self, sock, peer):
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
                self.wait_awake()
                self.requests += 1
                if not self.dispatch(sock, rfile, req, ident, peer):
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

    def sendall(self, sock, data):
        self.wait_awake()
        sock.sendall(data)

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
        self.sendall(sock, ("\r\n".join(head) + "\r\n\r\n").encode() + body)
        return keep

    def dispatch(self, sock, rfile, req, ident, peer=None):
        """Answers one HTTP/1.1 request; returns whether the connection stays open."""
        method, target, headers = req
        if self.a.verbose:
            log(f"{method} {target} user={ident['username']}")
        if headers.get("expect", "").lower() == "100-continue":
            self.sendall(sock, b"HTTP/1.1 100 Continue\r\n\r\n")
        path = urllib.parse.urlsplit(target).path
        if method == "POST" and path == "/sha256":
            n, digest = read_body(rfile, headers, hashlib.sha256())
            r = self.route(method, target, ident, "http1", (n, digest), peer)
            return self.send(sock, r.code, r.body, r.ctype)
        read_body(rfile, headers, None)  # keep the connection in sync whatever the path
        client_close = headers.get("connection", "").lower() == "close"
        auth = headers.get("authorization", "")
        if auth.startswith("Bearer "):
            user = self.tokens.get(auth[7:].strip())
            if user is None:
                self.counters.add("slices_unauthorized")
                return self.send(sock, 401, status_json(401, "Unauthorized", "Unauthorized"),
                                 "application/json") and not client_close
            ident = {"anonymous": False, "subject": "token", "username": user,
                     "groups": ["system:authenticated"]}
        r = self.route(method, target, ident, "http1", peer=peer)
        if r.delay:
            time.sleep(r.delay)
            self.wait_awake()
        if r.kind == "bytes":
            head = ["HTTP/1.1 200 OK", "Content-Type: application/octet-stream",
                    f"Content-Length: {r.n}", f"X-Apiserver: {self.name}"]
            self.sendall(sock, ("\r\n".join(head) + "\r\n\r\n").encode())
            if method == "GET":
                for c in kal_pattern.iter_chunks(r.n):
                    self.sendall(sock, c)
            keep = not self.stopping
        elif r.kind == "watch":
            self.watch(sock, r.ns, r.interval)
            keep = False
        elif r.kind == "slices_watch":
            self.slices_watch(sock, r.ns)
            keep = False
        else:
            keep = self.send(sock, r.code, r.body, r.ctype)
        return keep and not client_close

    def route(self, method, target, ident, proto, sha=None, peer=None):
        """Counts one request and decides its answer (protocol-neutral). sha: (bytes, hasher) of
        the body of a POST /sha256; peer: the client's (host, port), for --count-peers."""
        url = urllib.parse.urlsplit(target)
        path = url.path
        q = urllib.parse.parse_qs(url.query)
        self.counters.request(path, proto, peer)
        if method == "POST" and path == "/sha256":
            n, digest = sha
            body = json.dumps({"sha256": digest.hexdigest(), "bytes": n, "apiserver": self.name})
            return Reply(200, body.encode(), "application/json")
        if ident["anonymous"]:
            if not self.a.anonymous_auth:
                return Reply(401, status_json(401, "Unauthorized", "Unauthorized"),
                             "application/json")
            if not path.startswith(PUBLIC_PATHS):
                msg = f'forbidden: User "system:anonymous" cannot get path "{path}"'
                return Reply(403, status_json(403, "Forbidden", msg), "application/json")
        if method not in ("GET", "HEAD"):
            return Reply(405, status_json(405, "MethodNotAllowed", method), "application/json")

        if path in ("/healthz", "/livez"):
            return Reply(200, b"ok")
        if path == "/readyz":
            problems = []
            if self.draining:
                problems.append("[-]shutdown failed: reason withheld")
            if self.a.ready_file and not os.path.exists(self.a.ready_file):
                problems.append("[-]ready-file failed: reason withheld")
            delay = self.readyz_delay_ms / 1000.0
            if problems:
                return Reply(500, ("[+]ping ok\n" + "\n".join(problems) +
                                   "\nreadyz check failed\n").encode(), delay=delay)
            return Reply(200, b"ok", delay=delay)
        if path == "/version":
            return Reply(200, json.dumps({
                "major": "1", "minor": "31", "gitVersion": f"v1.31.0-fake-{self.name}",
                "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
                "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.22.5", "compiler": "gc",
                "platform": "linux/amd64", "apiserver": self.name
            }, indent=2).encode(), "application/json")
        if path == "/whoami":
            return Reply(200, json.dumps({
                "apiserver": self.name, "subject": ident["subject"],
                "username": ident["username"], "groups": ident["groups"],
                "anonymous": ident["anonymous"]
            }).encode(), "application/json")
        if path == "/api":
            return Reply(200, json.dumps({
                "kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{
                    "clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"
                }]
            }).encode(), "application/json")
        if path == "/apis":
            return Reply(200, json.dumps({
                "kind": "APIGroupList", "apiVersion": "v1", "groups": []
            }).encode(), "application/json")
        if path.startswith("/api/v1/namespaces/") and path.endswith("/pods"):
            ns = path.split("/")[4]
            if q.get("watch", [""])[0] in ("1", "true"):
                interval = float(q.get("intervalMs", [self.a.watch_interval_ms])[0]) / 1000.0
                return Reply(200, ctype="application/json", kind="watch", ns=ns,
                             interval=interval)
            return Reply(200, json.dumps({
                "kind": "PodList", "apiVersion": "v1",
                "metadata": {"resourceVersion": "1"},
                "items": [pod(ns, f"pod-{i}", 1, self.name) for i in range(3)]
            }).encode(), "application/json")
        if path == "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices":
            allowed = self.a.endpointslices_allow
            if allowed and ident["username"] not in allowed:
                self.counters.add("slices_forbidden")
                verb = "watch" if q.get("watch", [""])[0] in ("1", "true") else "list"
                msg = (f'endpointslices.discovery.k8s.io is forbidden: User "{ident["username"]}" '
                       f'cannot {verb} resource "endpointslices" in API group "discovery.k8s.io" '
                       'in the namespace "default"')
                return Reply(403, status_json(403, "Forbidden", msg), "application/json")
            if not self.a.cluster_file:
                return Reply(404, status_json(404, "NotFound", "no --cluster-file"),
                             "application/json")
            if q.get("watch", [""])[0] in ("1", "true"):
                self.counters.add("slices_watches")
                with self.cluster_cond:
                    c = self.cluster
                rv = int(q.get("resourceVersion", ["0"])[0] or 0)
                if c["compactedStatus"] and rv < c["compactedRV"]:
                    # As kube-apiserver does when the watch cannot even start from rv.
                    return Reply(410, status_json(410, "Expired", f"too old resource version: "
                                                  f"{rv} ({c['compactedRV']})"),
                                 "application/json")
                return Reply(200, ctype="application/json", kind="slices_watch", ns={
                    "rv": int(q.get("resourceVersion", ["0"])[0] or 0),
                    "timeout": float(q.get("timeoutSeconds", ["300"])[0]),
                    "bookmarks": q.get("allowWatchBookmarks", [""])[0] == "true"})
            self.counters.add("slices_lists")
            with self.cluster_cond:
                c = self.cluster
            return Reply(200, json.dumps({
                "kind": "EndpointSliceList", "apiVersion": "discovery.k8s.io/v1",
                "metadata": {"resourceVersion": str(c["resourceVersion"])},
                "items": [slice_object(sl, c["resourceVersion"]) for sl in c["slices"]]
            }).encode(), "application/json")
        if path == "/bytes":
            return Reply(200, ctype="application/octet-stream", kind="bytes",
                         n=int(q.get("n", ["0"])[0]))
        if path == "/sleep":
            return Reply(200, b"slept", delay=float(q.get("ms", ["0"])[0]) / 1000.0)
        if path == "/debug/counters":
            return Reply(200, json.dumps(self.snapshot()).encode(), "application/json")
        return Reply(404, status_json(404, "NotFound", "the server could not find the requested "
                                      "resource"), "application/json")

    def watch_event(self, ns, rv):
        return json.dumps({
            "type": "MODIFIED" if rv > 101 else "ADDED",
            "object": pod(ns, "watched", rv, self.name)
        }).encode() + b"\n"

    def watch(self, sock, ns, interval):
        head = ["HTTP/1.1 200 OK", "Content-Type: application/json",
                "Transfer-Encoding: chunked", f"X-Apiserver: {self.name}"]
        self.sendall(sock, ("\r\n".join(head) + "\r\n\r\n").encode())
        self.counters.add("watches_open")
        try:
            rv = 100
            while not self.stopping:
                if not self.watch_events:
                    time.sleep(interval)
                    continue
                rv += 1
                ev = self.watch_event(ns, rv)
                self.sendall(sock, b"%x\r\n%s\r\n" % (len(ev), ev))
                time.sleep(interval)
            sock.sendall(b"0\r\n\r\n")  # the apiserver ends watches cleanly when it stops
        finally:
            self.counters.add("watches_open", -1)


    def slices_watch(self, sock, opts):
        """The EndpointSlice watch (HTTP/1.1, chunked): events from --cluster-file changes,
        bookmarks, faults; ends after timeoutSeconds."""
        head = ["HTTP/1.1 200 OK", "Content-Type: application/json",
                "Transfer-Encoding: chunked", f"X-Apiserver: {self.name}"]
        self.sendall(sock, ("\r\n".join(head) + "\r\n\r\n").encode())
        self.counters.add("watches_open")

        def chunk(data):
            self.sendall(sock, b"%x\r\n%s\r\n" % (len(data), data))

        def event(typ, obj):
            chunk(json.dumps({"type": typ, "object": obj}).encode() + b"\n")
        try:
            with self.cluster_cond:
                c = self.cluster
            fault_id = (c["fault"] or {}).get("id")
            if opts["rv"] < c["compactedRV"]:
                event("ERROR", json.loads(status_json(410, "Expired",
                                                      "too old resource version")))
                sock.sendall(b"0\r\n\r\n")
                return
            last_rv = opts["rv"]
            sent = {}  # slice name -> its JSON as last sent
            if c["resourceVersion"] == last_rv:
                sent = {sl["name"]: json.dumps(sl, sort_keys=True) for sl in c["slices"]}
            elif c["resourceVersion"] < last_rv:
                # This stand-in has not read the newest file yet (another one has): once it has,
                # every slice is sent, as its state at the requested version is unknown here.
                last_rv = c["resourceVersion"]
            deadline = time.monotonic() + opts["timeout"]
            next_bookmark = time.monotonic() + 1.0
            while not self.stopping and time.monotonic() < deadline:
                with self.cluster_cond:
                    c = self.cluster
                fault = c["fault"] or {}
                if fault.get("id") is not None and fault.get("id") != fault_id:
                    fault_id = fault["id"]
                    kind = fault.get("kind")
                    log(f"name={self.name} watch fault {kind}")
                    if kind == "410":
                        event("ERROR", json.loads(status_json(410, "Expired",
                                                              "too old resource version")))
                        break
                    if kind == "error":
                        event("ERROR", json.loads(status_json(500, "InternalError",
                                                              "etcd is unhappy")))
                        break
                    if kind == "malformed":
                        chunk(b'{"type":"MODIFIED","object":nope}\n')
                        time.sleep(0.5)
                        break
                    if kind == "oversize":
                        big = slice_object({"name": "kubernetes", "port": 1, "endpoints": []},
                                           c["resourceVersion"])
                        big["metadata"]["annotations"] = {"pad": "x" * (2 << 20)}
                        event("MODIFIED", big)
                        time.sleep(0.5)
                        break
                    if kind == "cut":
                        data = json.dumps({"type": "MODIFIED", "object": slice_object(
                            c["slices"][0] if c["slices"] else {"name": "kubernetes",
                                                                 "port": 1, "endpoints": []},
                            c["resourceVersion"])}).encode()
                        chunk(data[:len(data) // 2])
                        time.sleep(0.2)
                        return  # the connection closes without the rest or a last chunk
                if c["resourceVersion"] > last_rv:
                    now = {sl["name"]: sl for sl in c["slices"]}
                    for name, sl in now.items():
                        text = json.dumps(sl, sort_keys=True)
                        if sent.get(name) != text:
                            event("ADDED" if name not in sent else "MODIFIED",
                                  slice_object(sl, c["resourceVersion"]))
                            sent[name] = text
                    for name in list(sent):
                        if name not in now:
                            event("DELETED", slice_object({"name": name, "port": 1,
                                                           "endpoints": []},
                                                          c["resourceVersion"]))
                            del sent[name]
                    last_rv = c["resourceVersion"]
                if opts["bookmarks"] and time.monotonic() >= next_bookmark:
                    event("BOOKMARK", {"kind": "EndpointSlice",
                                       "apiVersion": "discovery.k8s.io/v1",
                                       "metadata": {"resourceVersion": str(last_rv)}})
                    next_bookmark = time.monotonic() + 1.0
                with self.cluster_cond:
                    self.cluster_cond.wait(0.1)
            sock.sendall(b"0\r\n\r\n")
        finally:
            self.counters.add("watches_open", -1)


def slice_object(sl, rv):
    """An EndpointSlice of the kubernetes service from a --cluster-file entry."""
    eps = []
    for e in sl.get("endpoints", []):
        ep = {"addresses": [e["ip"]]}
        if e.get("ready", True) is not None:
            ep["conditions"] = {"ready": bool(e.get("ready", True))}
        eps.append(ep)
    return {
        "kind": "EndpointSlice", "apiVersion": "discovery.k8s.io/v1",
        "metadata": {"name": sl["name"], "namespace": "default", "resourceVersion": str(rv),
                     "labels": {"kubernetes.io/service-name": "kubernetes"}},
        "addressType": sl.get("addressType", "IPv4"),
        "endpoints": eps,
        "ports": [{"name": "https", "port": sl["port"], "protocol": "TCP"}]
    }


class H2Stream:
    def __init__(self, headers):
        self.headers = headers
        self.hasher = hashlib.sha256()
        self.body_bytes = 0
        self.reset = False


class H2Conn:
    """One HTTP/2 connection. This thread owns the socket (non-blocking: TLS reads and writes from
    two threads at once are not safe) and feeds h2's state machine; each request runs in a thread
    of its own that queues frames through h2 under `cond`. Bytes h2 produced wait in `out` (bounded
    by OUT_HIGH for DATA: a sender waits above it)."""

    OUT_HIGH = 1 << 20
    STREAM_WINDOW = 1 << 20
    CONN_WINDOW = 16 << 20

    def __init__(self, srv, sock, peer):
        self.srv = srv
        self.sock = sock
        self.peer = peer
        self.ident = identity(sock.getpeercert())
        self.cond = threading.Condition()
        cfg = h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        self.h2 = h2.connection.H2Connection(config=cfg)
        self.out = bytearray()
        self.streams = {}
        self.closing = False  # GOAWAY queued: close once `out` is written
        self.dead = False
        self.wake_r, self.wake_w = socket.socketpair()
        self.wake_r.setblocking(False)
        self.wake_w.setblocking(False)

    @property
    def idle(self):
        return not self.streams

    def force_close(self):
        with self.cond:
            if not self.closing and not self.dead:
                try:
                    self.h2.close_connection()
                except h2.exceptions.ProtocolError:
                    pass
                self.closing = True
                self.flush()

    def flush(self):
        """Moves what h2 produced to `out` and wakes the I/O thread; call with `cond` held."""
        data = self.h2.data_to_send()
        if data:
            self.out += data
        try:
            self.wake_w.send(b"x")
        except OSError:
            pass

    def run(self):
        srv = self.srv
        with srv.conns_lock:
            srv.conns.add(self)
        self.sock.setblocking(False)
        with self.cond:
            self.h2.initiate_connection()
            self.h2.update_settings({
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 1000,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: self.STREAM_WINDOW})
            self.h2.increment_flow_control_window(self.CONN_WINDOW - 65535)
            self.flush()
        pending = None  # bytes handed to SSL_write that must be retried unchanged
        last_read = time.monotonic()
        try:
            while not self.dead:
                with self.cond:
                    if pending is None and self.out:
                        pending = bytes(self.out[:64 * 1024])
                        del self.out[:len(pending)]
                        self.cond.notify_all()
                    if pending is None and self.closing:
                        break
                if srv.hanging:
                    srv.wait_awake()
                    continue
                if self.sock.pending():
                    readable = True
                else:
                    r, w, _ = select.select([self.sock, self.wake_r],
                                            [self.sock] if pending else [], [], 1.0)
                    readable = self.sock in r
                    if self.wake_r in r:
                        try:
                            self.wake_r.recv(4096)
                        except OSError:
                            pass
                if srv.hanging:
                    continue
                if readable:
                    try:
                        data = self.sock.recv(64 * 1024)
                    except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                        data = None
                    if data == b"":
                        break
                    if data:
                        last_read = time.monotonic()
                        self.receive(data)
                if pending:
                    try:
                        self.sock.send(pending)
                        pending = None
                    except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                        pass
                if not self.streams and time.monotonic() - last_read > IDLE_TIMEOUT:
                    break
        except (OSError, ssl.SSLError) as e:
            if srv.a.verbose:
                log(f"h2 connection from {self.peer[0]}:{self.peer[1]} ended: {e}")
        finally:
            with self.cond:
                self.dead = True
                self.cond.notify_all()
            with srv.conns_lock:
                srv.conns.discard(self)
            for s in (self.sock, self.wake_r, self.wake_w):
                try:
                    s.close()
                except OSError:
                    pass

    def receive(self, data):
        with self.cond:
            try:
                events = self.h2.receive_data(data)
            except h2.exceptions.ProtocolError as e:
                log(f"h2 protocol error from {self.peer[0]}:{self.peer[1]}: {e}")
                self.closing = True
                self.flush()
                return
            for ev in events:
                if isinstance(ev, h2.events.RequestReceived):
                    self.streams[ev.stream_id] = H2Stream(dict(ev.headers))
                elif isinstance(ev, h2.events.DataReceived):
                    st = self.streams.get(ev.stream_id)
                    if st:
                        st.hasher.update(ev.data)
                        st.body_bytes += len(ev.data)
                    self.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, h2.events.StreamEnded):
                    if ev.stream_id in self.streams:
                        threading.Thread(target=self.serve_stream, args=(ev.stream_id,),
                                         daemon=True).start()
                elif isinstance(ev, h2.events.StreamReset):
                    self.srv.counters.add("streams_reset")
                    st = self.streams.pop(ev.stream_id, None)
                    if st:
                        st.reset = True
                elif isinstance(ev, h2.events.PingReceived):
                    self.srv.counters.ping(self.peer)  # h2 queued the ACK already
                elif isinstance(ev, h2.events.ConnectionTerminated):
                    self.srv.counters.add("goaways_received")
                    self.closing = True
            self.flush()
            self.cond.notify_all()

    # ---- one request (its own thread)
    def serve_stream(self, sid):
        srv = self.srv
        st = self.streams.get(sid)
        if st is None:
            return
        try:
            h = st.headers
            method, target = h.get(":method", "GET"), h.get(":path", "/")
            srv.requests += 1
            if srv.a.verbose:
                log(f"h2 {method} {target} user={self.ident['username']}")
            r = srv.route(method, target, self.ident, "h2", (st.body_bytes, st.hasher),
                          self.peer)
            if r.delay:
                time.sleep(r.delay)
            head = [(":status", str(r.code)), ("content-type", r.ctype),
                    ("x-apiserver", srv.name), ("cache-control", "no-cache, private")]
            if r.kind == "watch":
                self.send_headers(sid, st, head, False)
                self.stream_watch(sid, st, r)
            elif r.kind == "bytes":
                head.append(("content-length", str(r.n)))
                self.send_headers(sid, st, head, method == "HEAD" or r.n == 0)
                if method != "HEAD" and r.n:
                    off = 0
                    for c in kal_pattern.iter_chunks(r.n):
                        off += len(c)
                        self.send_data(sid, st, c, off == r.n)
            else:
                head.append(("content-length", str(len(r.body))))
                no_body = method == "HEAD" or not r.body
                self.send_headers(sid, st, head, no_body)
                if not no_body:
                    self.send_data(sid, st, r.body, True)
        except StreamGone:
            pass
        finally:
            with self.cond:
                self.streams.pop(sid, None)
                if srv.stopping and not self.streams:
                    self.force_close()
                self.cond.notify_all()

    def stream_watch(self, sid, st, r):
        srv = self.srv
        srv.counters.add("watches_open")
        try:
            rv = 100
            while not srv.stopping:
                if not srv.watch_events:
                    time.sleep(r.interval)
                    continue
                rv += 1
                self.send_data(sid, st, srv.watch_event(r.ns, rv), False)
                time.sleep(r.interval)
            self.send_data(sid, st, b"", True)  # the apiserver ends watches cleanly when it stops
        finally:
            srv.counters.add("watches_open", -1)

    def send_headers(self, sid, st, head, end):
        self.srv.wait_awake()
        with self.cond:
            if st.reset or self.dead:
                raise StreamGone()
            try:
                self.h2.send_headers(sid, head, end_stream=end)
            except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
                raise StreamGone()
            self.flush()

    def send_data(self, sid, st, data, end):
        """Queues `data` on stream `sid` as flow control allows (waits for WINDOW_UPDATEs and for
        `out` to drain); ends the stream after it if `end`."""
        view = memoryview(data)
        off = 0
        while True:
            self.srv.wait_awake()
            with self.cond:
                while True:
                    if st.reset or self.dead:
                        raise StreamGone()
                    try:
                        room = min(self.h2.local_flow_control_window(sid),
                                   self.h2.max_outbound_frame_size)
                    except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
                        raise StreamGone()
                    if off == len(view) or (room > 0 and len(self.out) < self.OUT_HIGH):
                        break
                    self.cond.wait(1.0)
                n = min(room, len(view) - off)
                last = off + n == len(view)
                try:
                    if n or (last and end):
                        self.h2.send_data(sid, view[off:off + n].tobytes(),
                                          end_stream=end and last)
                except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
                    raise StreamGone()
                off += n
                self.flush()
                if last:
                    return


class StreamGone(Exception):
    """The client reset the stream or the connection ended."""


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
    ap.add_argument("--http2", action=argparse.BooleanOptionalAction, default=True,
                    help="offer ALPN h2 before http/1.1 (default); --no-http2: http/1.1 only")
    ap.add_argument("--counters-file",
                    help="write the counters (JSON) here every 0.5 s and at exit")
    ap.add_argument("--control-file", help='poll this JSON file every 100 ms: '
                    '{"readyz_delay_ms": N, "hang": true|false}')
    ap.add_argument("--count-peers", action="store_true",
                    help='counters also per client connection ("peers")')
    ap.add_argument("--cluster-file", help="the EndpointSlices to serve (JSON, polled)")
    ap.add_argument("--token", action="append", help="TOKEN=USER: a bearer token (repeatable)")
    ap.add_argument("--endpointslices-allow", action="append", default=[],
                    help="a user allowed to read endpointslices (repeatable; none: everyone)")
    ap.add_argument("--readyz-delay-ms", type=float, default=0.0,
                    help="/readyz answers after this many ms (everything else at once)")
    a = ap.parse_args()
    a.anonymous_auth = a.anonymous_auth == "true"
    a.listen = a.listen or ["127.0.0.1:6443"]
    if a.http2:
        if not kal_python.ensure("h2"):
            log(f"name={a.name} HTTP/2 needs the h2 module (Debian: python3-h2), missing in "
                f"{sys.executable} and {kal_python.SYSTEM_PYTHON}; or pass --no-http2")
            sys.exit(2)
        global h2
        import h2.config  # noqa: E402
        import h2.connection  # noqa: E402
        import h2.events  # noqa: E402
        import h2.exceptions  # noqa: E402
        import h2.settings  # noqa: E402

    srv = Server(a)
    try:
        srv.bind()
    except (OSError, ValueError) as e:
        log(f"name={a.name} cannot listen: {e}")
        sys.exit(1)
    signals = []

    def on_signal(num, frame):
        # Takes no lock (no Event.set(): the handler runs in the main thread between bytecodes,
        # possibly while it holds that Event's lock); the main thread polls `signals`.
        signals.append(num)
        if len(signals) > 1:
            os.write(2, f"name={a.name} second signal: exiting now\n".encode())
            os._exit(1)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    srv.serve()
    while not signals:
        time.sleep(0.05)
    srv.shutdown()
    sys.stderr.flush()
    os._exit(0)  # handler threads are daemons; don't wait for cut connections


if __name__ == "__main__":
    main()
