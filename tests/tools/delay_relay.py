#!/usr/bin/env python3
"""A slow link in user space (this kernel has no netem): a TCP relay on loopback that holds every
byte D ms ± J ms in each direction before passing it on, so a request's round trip costs ~2·D.

    delay_relay.py --listen 127.0.0.1:0 --upstream 127.0.0.11:6443 --delay-ms 200 --jitter-ms 50 \\
        [--seed 1] [--lifetime 300] [--control-file PATH] [--max-buffer 16777216] [--name a]

Each accepted connection gets its own connection to --upstream (made at once: only bytes are
delayed). Everything read from one side is stamped with a release time now + D + U(-J, +J) (at
least now) and queued; a writer per direction sends it when that time comes. Release times never
go backwards (a chunk never overtakes an earlier one: order is kept, as on a real link, so under
jitter a chunk can wait behind a slower one). An end of stream (FIN) and a reset travel the same
queue: a FIN is passed on as a half-close (shutdown(SHUT_WR)) and a reset as a reset, each after
its delay. A direction holds at most --max-buffer bytes; above that the relay stops reading that
side (TCP flow control pushes back on the sender), so large transfers work at any delay.
If the upstream refuses, the client's connection is reset after 2·D (what a SYN answered with RST
costs over the link).

Not modelled: the TCP handshake's round trip (a client's connect(2) completes at once against the
relay's listening socket), loss, bandwidth limits.

Control (all optional):
  --control-file PATH   polled every 100 ms; on a change a JSON object sets any of
                        {"hang": true|false, "delay_ms": D, "jitter_ms": J}; keys left out keep
                        their value. New delays apply to bytes read from then on. With a
                        "seq" key, "control applied seq=N" is logged once it has been applied.
  SIGUSR1 / SIGUSR2     hang / resume.
  hang                  the link forwards nothing in either direction and closes nothing (a
                        blackhole whose path comes back later): bytes keep being read into the
                        queues up to --max-buffer, new connections are accepted and connected
                        upstream but get nothing through; on resume, the queued bytes flow on.
  --lifetime S          exit after S seconds (default 3600), whatever happens; SIGTERM/SIGINT
                        exit at once, closing every connection.

stderr: "listening HOST:PORT" once bound (port 0 gets the real port), one line per control change,
and at exit one "stats {json}" line (connections, bytes each way). Loopback addresses only.
"""
import argparse
import asyncio
import collections
import ipaddress
import json
import os
import random
import resource
import signal
import socket
import sys
import time

RESET = object()  # queue marker: pass a reset on


def log(msg):
    sys.stderr.write(f"{time.strftime('%H:%M:%S')} delay-relay {msg}\n")
    sys.stderr.flush()


def parse_hostport(spec):
    if spec.startswith("["):
        host, sep, port = spec[1:].partition("]:")
    else:
        host, sep, port = spec.rpartition(":")
    if not sep or not host:
        raise ValueError(f"bad address {spec!r} (HOST:PORT or [V6]:PORT)")
    return host, int(port)


def require_loopback(host):
    """Raises ValueError unless every address `host` resolves to is a loopback address."""
    infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    for info in infos:
        if not ipaddress.ip_address(info[4][0]).is_loopback:
            raise ValueError(f"{host} is not a loopback address ({info[4][0]}): refusing")


class Link:
    """The shared state of the simulated link: delay, jitter, hang."""

    def __init__(self, delay_ms, jitter_ms, seed):
        self.delay_ms, self.jitter_ms = float(delay_ms), float(jitter_ms)
        self.rng = random.Random(seed)
        self.resumed = asyncio.Event()
        self.resumed.set()
        self.stats = {"connections": 0, "open": 0, "refused": 0, "bytes_up": 0, "bytes_down": 0}

    @property
    def hanging(self):
        return not self.resumed.is_set()

    def one_way(self):
        """This chunk's one-way delay in seconds."""
        j = self.rng.uniform(-self.jitter_ms, self.jitter_ms) if self.jitter_ms > 0 else 0.0
        return max(0.0, self.delay_ms + j) / 1000.0

    def set(self, hang=None, delay_ms=None, jitter_ms=None):
        if delay_ms is not None and float(delay_ms) != self.delay_ms:
            self.delay_ms = float(delay_ms)
            log(f"delay_ms={self.delay_ms:g}")
        if jitter_ms is not None and float(jitter_ms) != self.jitter_ms:
            self.jitter_ms = float(jitter_ms)
            log(f"jitter_ms={self.jitter_ms:g}")
        if hang is not None and bool(hang) == self.resumed.is_set():
            if hang:
                self.resumed.clear()
            else:
                self.resumed.set()
            log(f"hang={'true' if hang else 'false'}")


class Direction:
    """One direction of one connection: a reader stamps chunks, a writer releases them in order."""

    def __init__(self, link, reader, writer, max_buffer, stat):
        self.link, self.reader, self.writer = link, reader, writer
        self.max_buffer, self.stat = max_buffer, stat
        self.queue = collections.deque()  # (release time, bytes | b"" for FIN | RESET)
        self.buffered = 0
        self.last_release = 0.0
        self.have = asyncio.Event()
        self.room = asyncio.Event()
        self.room.set()

    def push(self, item, size):
        loop = asyncio.get_running_loop()
        t = max(loop.time() + self.link.one_way(), self.last_release)
        self.last_release = t
        self.queue.append((t, item))
        self.buffered += size
        if self.buffered >= self.max_buffer:
            self.room.clear()
        self.have.set()

    async def read_side(self):
        while True:
            await self.room.wait()
            try:
                data = await self.reader.read(64 * 1024)
            except (ConnectionError, OSError):
                self.push(RESET, 0)
                return
            self.push(data, len(data))
            if not data:
                return

    async def write_side(self):
        """Returns normally after passing a FIN on; raises ConnectionError after a reset."""
        loop = asyncio.get_running_loop()
        while True:
            while not self.queue:
                self.have.clear()
                await self.have.wait()
            t, item = self.queue[0]
            wait = t - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            await self.link.resumed.wait()
            self.queue.popleft()
            if item is RESET:
                abort(self.writer)
                raise ConnectionResetError("reset passed on")
            if not item:
                if self.writer.can_write_eof():
                    self.writer.write_eof()
                await self.writer.drain()
                return
            self.writer.write(item)
            self.buffered -= len(item)
            self.link.stats[self.stat] += len(item)
            if self.buffered < self.max_buffer:
                self.room.set()
            await self.writer.drain()


def abort(writer):
    """Closes with a reset (SO_LINGER 0), as a peer's RST would arrive."""
    try:
        writer.transport.abort()
    except (OSError, RuntimeError):
        pass


def nodelay(writer):
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass


async def relay(link, args, c_reader, c_writer):
    link.stats["connections"] += 1
    link.stats["open"] += 1
    nodelay(c_writer)
    try:
        host, port = args.upstream
        try:
            u_reader, u_writer = await asyncio.open_connection(host, port)
        except OSError:
            link.stats["refused"] += 1
            await asyncio.sleep(2 * link.one_way())
            abort(c_writer)
            return
        nodelay(u_writer)
        up = Direction(link, c_reader, u_writer, args.max_buffer, "bytes_up")
        down = Direction(link, u_reader, c_writer, args.max_buffer, "bytes_down")
        tasks = [asyncio.ensure_future(x) for x in
                 (up.read_side(), up.write_side(), down.read_side(), down.write_side())]
        try:
            # Done when both writers passed their FIN on, or at the first reset / write error.
            writers = {tasks[1], tasks[3]}
            while writers:
                done, _ = await asyncio.wait(writers, return_when=asyncio.FIRST_COMPLETED)
                for t in done:
                    writers.discard(t)
                    if t.exception() is not None:
                        writers = set()
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for w in (u_writer, c_writer):
                if w.transport.is_closing():
                    continue
                w.close()
    finally:
        link.stats["open"] -= 1


async def watch_control(link, path):
    last = None
    while True:
        try:
            with open(path) as f:
                text = f.read()
        except OSError:
            text = None
        if text is not None and text != last:
            last = text
            try:
                want = json.loads(text)
                if not isinstance(want, dict):
                    raise ValueError("not a JSON object")
                link.set(want.get("hang"), want.get("delay_ms"), want.get("jitter_ms"))
                if "seq" in want:
                    log(f"control applied seq={want['seq']}")
            except ValueError as e:
                log(f"ignoring {path}: {e}")
        await asyncio.sleep(0.1)


async def amain(args):
    link = Link(args.delay_ms, args.jitter_ms, args.seed)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGUSR1, link.set, True)
    loop.add_signal_handler(signal.SIGUSR2, link.set, False)
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    host, port = args.listen
    server = await asyncio.start_server(lambda r, w: relay(link, args, r, w), host, port,
                                        backlog=4096, reuse_address=True)
    for s in server.sockets:
        h, p = s.getsockname()[:2]
        sys.stderr.write(f"listening {'[' + h + ']' if ':' in h else h}:{p}\n")
    sys.stderr.flush()
    log(f"upstream={args.upstream[0]}:{args.upstream[1]} delay_ms={args.delay_ms:g} "
        f"jitter_ms={args.jitter_ms:g} lifetime_s={args.lifetime:g}")
    extra = []
    if args.control_file:
        extra.append(asyncio.ensure_future(watch_control(link, args.control_file)))
    try:
        await asyncio.wait_for(stop.wait(), timeout=args.lifetime)
    except asyncio.TimeoutError:
        log("lifetime over")
    server.close()
    for t in extra:
        t.cancel()
    sys.stderr.write(f"stats {json.dumps(link.stats)}\n")
    sys.stderr.flush()
    os._exit(0)  # open connections are closed by the kernel, not drained or cancelled one by one


def main():
    ap = argparse.ArgumentParser(description="TCP relay adding a one-way delay (loopback only)")
    ap.add_argument("--listen", required=True, help="HOST:PORT (port 0: any)")
    ap.add_argument("--upstream", required=True, help="HOST:PORT")
    ap.add_argument("--delay-ms", type=float, default=0.0, help="one-way delay D (RTT ~ 2D)")
    ap.add_argument("--jitter-ms", type=float, default=0.0, help="± uniform jitter J per chunk")
    ap.add_argument("--seed", type=int, default=None, help="jitter RNG seed")
    ap.add_argument("--lifetime", type=float, default=3600.0, help="exit after this many seconds")
    ap.add_argument("--control-file", help='JSON {"hang": b, "delay_ms": D, "jitter_ms": J}')
    ap.add_argument("--max-buffer", type=int, default=16 << 20,
                    help="bytes queued per direction before reading that side pauses")
    ap.add_argument("--name", default="relay")
    a = ap.parse_args()
    try:
        a.listen = parse_hostport(a.listen)
        a.upstream = parse_hostport(a.upstream)
        require_loopback(a.listen[0])
        require_loopback(a.upstream[0])
    except (ValueError, OSError) as e:
        ap.error(str(e))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:  # two descriptors per relayed connection
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        asyncio.run(amain(a))
    except OSError as e:
        log(f"cannot listen on {a.listen[0]}:{a.listen[1]}: {e}")
        sys.exit(1)


if __name__ == "__main__":
    main()
