#!/usr/bin/env python3
"""Plain TCP backends for byte-exact proxy tests (asyncio, stdlib only).

    tcp_backends.py --listen 127.0.0.1:0 [--listen ...] [--name NAME]

Every connection starts with one command line from the client; the server answers at once with
"OK <MODE> <name>\\n" (so, like a TLS server answering a ClientHello, the first byte back comes
promptly), then:

  ECHO\\n        echoes every byte; on the client's EOF it flushes, half-closes and closes.
  SINK\\n        reads until the client's EOF, then writes "<bytes> <sha256hex>\\n" and closes.
                (Exercises the client->server half-close: the answer flows after the client's EOF.)
  SEND <n>\\n    writes n bytes of the shared pattern (kal_pattern), then half-closes its side; keeps
                reading until the client's EOF and reports what it got on stdout.
                (Exercises the server->client half-close.)

stdout carries one JSON object per line:
  {"event":"listening","host":...,"port":...}           once per listener, after bind
  {"event":"closed","id":..,"mode":..,"received":..,"sha256":..,"sent":..}   per finished connection
  {"event":"stats","active":..,"max_active":..,"accepted":..}                on SIGUSR1
Flow control is honoured in both directions (reading pauses while the write buffer is full), so a slow
peer slows the stream instead of growing memory.
"""
import argparse
import asyncio
import hashlib
import json
import os
import resource
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kal_pattern  # noqa: E402

MAX_CMD = 256


class Stats:
    def __init__(self):
        self.active = 0
        self.max_active = 0
        self.accepted = 0
        self.next_id = 0


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


class Conn(asyncio.Protocol):
    def __init__(self, name, stats):
        self.name = name
        self.stats = stats
        self.t = None
        self.cmd = b""
        self.mode = None
        self.hash = hashlib.sha256()
        self.received = 0
        self.sent = 0
        self.to_send = 0
        self.paused = False
        self.peer_eof = False
        self.send_done = False
        self.reported = False

    # --- asyncio callbacks
    def connection_made(self, t):
        self.t = t
        t.set_write_buffer_limits(high=1 << 20, low=256 << 10)
        self.stats.accepted += 1
        self.stats.active += 1
        self.stats.max_active = max(self.stats.max_active, self.stats.active)
        self.id = self.stats.next_id
        self.stats.next_id += 1

    def connection_lost(self, exc):
        self.stats.active -= 1
        self.report(error=str(exc) if exc else None)

    def data_received(self, data):
        if self.mode is None:
            self.cmd += data
            nl = self.cmd.find(b"\n")
            if nl < 0:
                if len(self.cmd) > MAX_CMD:
                    self.t.write(b"ERR command too long\n")
                    self.t.close()
                return
            line, data = self.cmd[:nl].decode("latin-1").strip(), self.cmd[nl + 1:]
            self.start(line)
            if self.mode is None or not data:
                return
        if self.mode == "ECHO":
            self.t.write(data)
            self.sent += len(data)
        else:
            self.received += len(data)
            self.hash.update(data)

    def eof_received(self):
        self.peer_eof = True
        if self.mode == "ECHO":
            # Both directions are done once our pending echo is flushed; close() flushes first.
            self.t.write_eof()
            self.t.close()
        elif self.mode == "SINK":
            self.t.write(f"{self.received} {self.hash.hexdigest()}\n".encode())
            self.t.close()
        elif self.mode == "SEND":
            if self.send_done:
                self.t.close()
        else:
            self.t.close()
        return True

    def pause_writing(self):
        self.paused = True
        if self.mode == "ECHO":
            self.t.pause_reading()

    def resume_writing(self):
        self.paused = False
        if self.mode == "ECHO":
            self.t.resume_reading()
        elif self.mode == "SEND":
            self.pump()

    # --- modes
    def start(self, line):
        parts = line.split()
        mode = parts[0].upper() if parts else ""
        if mode in ("ECHO", "SINK") and len(parts) == 1:
            self.mode = mode
        elif mode == "SEND" and len(parts) == 2 and parts[1].isdigit():
            self.mode = mode
            self.to_send = int(parts[1])
        else:
            self.t.write(f"ERR bad command {line[:40]!r}\n".encode())
            self.t.close()
            return
        self.t.write(f"OK {self.mode} {self.name}\n".encode())
        if self.mode == "SEND":
            self.pump()

    def pump(self):
        while not self.paused and self.sent < self.to_send and not self.t.is_closing():
            n = min(256 * 1024, self.to_send - self.sent)
            self.t.write(kal_pattern.chunk(self.sent, n))
            self.sent += n
        if self.sent >= self.to_send and not self.send_done and not self.t.is_closing():
            self.send_done = True
            self.t.write_eof()
            if self.peer_eof:
                self.t.close()

    def report(self, error=None):
        if self.reported or self.mode is None:
            return
        self.reported = True
        emit({"event": "closed", "id": self.id, "mode": self.mode, "received": self.received,
              "sha256": self.hash.hexdigest(), "sent": self.sent, "peer_eof": self.peer_eof,
              "error": error})


def parse_listen(s):
    host, _, port = s.rpartition(":")
    return host.strip("[]"), int(port)


async def serve(args):
    stats = Stats()
    loop = asyncio.get_running_loop()
    servers = []
    for spec in args.listen:
        host, port = parse_listen(spec)
        srv = await loop.create_server(lambda: Conn(args.name, stats), host, port, backlog=4096,
                                       reuse_address=True)
        servers.append(srv)
        for s in srv.sockets:
            h, p = s.getsockname()[:2]
            emit({"event": "listening", "host": h, "port": p})
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(
        signal.SIGUSR1, lambda: emit({"event": "stats", "active": stats.active,
                                      "max_active": stats.max_active, "accepted": stats.accepted}))
    await stop.wait()
    for srv in servers:
        srv.close()


def main():
    ap = argparse.ArgumentParser(description="plain TCP echo/sink/source backends")
    ap.add_argument("--listen", action="append", required=True, help="HOST:PORT, repeatable")
    ap.add_argument("--name", default="tcp")
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        asyncio.run(serve(args))
    except OSError as e:
        sys.stderr.write(f"tcp_backends: {e}\n")
        sys.exit(1)


if __name__ == "__main__":
    main()
