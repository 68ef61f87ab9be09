#!/usr/bin/env python3
"""Dial failures the client must not see, and connection lifetime rules:
connect timeout (a black-holed endpoint), an upstream that accepts but never answers (first-byte
timeout, replay), one that closes at once (early close, replay), an error on either side closing
both, and --idle-timeout (none by default). An endpoint marked down under an answer it has ended:
test_core_endpoint_down.py."""
import contextlib
import os
import signal
import socket
import struct
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kal_testlib as kt  # noqa: E402


def reset(s):
    """Closes s with a TCP reset (SO_LINGER 0) instead of a FIN."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def trickle(s, stop):
    """Sends 1,000 bytes on s every 10 ms, in a thread, until stop is set or s fails."""
    def run():
        try:
            while not stop.wait(0.01):
                s.sendall(b"u" * 1000)
        except OSError:
            pass

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def thread_state(pid, tid):
    try:
        with open(f"/proc/{pid}/task/{tid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "T"  # gone: not running either


@contextlib.contextmanager
def paused(proxy):
    """kube-api-lb stopped (SIGSTOP) while the body runs: what arrives meanwhile, it then sees at
    once, in the order it arrived."""
    os.kill(proxy.pid, signal.SIGSTOP)
    try:
        # kill(2) returns before every thread has stopped: wait until each one has.
        kt.wait_until(lambda: all(thread_state(proxy.pid, t) == "T"
                                  for t in os.listdir(f"/proc/{proxy.pid}/task")), 2,
                      what="kube-api-lb's threads to stop")
        yield
        time.sleep(0.05)  # the last packets land before it runs again
    finally:
        os.kill(proxy.pid, signal.SIGCONT)


class Misbehaving:
    """A loopback TCP server that misbehaves in one way:
    "blackhole": its accept queue is full, so SYNs are dropped and connects never finish;
    "silent": accepts and never reads nor writes; "close": accepts and closes at once;
    "readclose": reads the client's first bytes, then closes without answering;
    "rst": answers the command line, then resets the connection."""

    def __init__(self, mode):
        self.mode = mode
        self.accepted = 0
        self.held = []
        self.l = socket.socket()
        self.l.bind(("127.0.0.1", 0))
        self.port = self.l.getsockname()[1]
        self.endpoint = f"127.0.0.1:{self.port}"
        if mode == "blackhole":
            self.l.listen(0)
            # Fill the accept queue (never accepted) until a connect no longer completes.
            for _ in range(16):
                c = socket.socket()
                c.settimeout(0.3)
                try:
                    c.connect(("127.0.0.1", self.port))
                    self.held.append(c)
                except OSError:
                    c.close()
                    break
            else:
                raise unittest.SkipTest("cannot make a black-holed loopback listener here")
            return
        self.l.listen(128)
        threading.Thread(target=self.loop, daemon=True).start()

    def loop(self):
        while True:
            try:
                s, _ = self.l.accept()
            except OSError:
                return
            # Counted last: a test that sees the count goes on to use what it counts.
            if self.mode == "silent":
                self.held.append(s)
            elif self.mode == "close":
                s.close()
            elif self.mode == "readclose":
                threading.Thread(target=self.read_then_close, args=(s,), daemon=True).start()
            elif self.mode == "rst":
                threading.Thread(target=self.reset_later, args=(s,), daemon=True).start()
            self.accepted += 1

    def read_then_close(self, s):
        try:
            s.settimeout(5)
            s.recv(100)
        except OSError:
            pass
        s.close()

    def reset_later(self, s):
        try:
            s.settimeout(5)
            s.recv(100)
            s.sendall(b"OK RST reset\n")
            time.sleep(0.3)
            reset(s)
        except OSError:
            s.close()

    def close(self):
        self.l.close()
        for s in self.held:
            s.close()


def echo_once(port, payload=b"hello", timeout=10, pause=0.0):
    """ECHO round trip on a new connection; the client's bytes go out `pause` seconds after the
    connect. Returns (first line, seconds)."""
    t0 = time.monotonic()
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        time.sleep(pause)
        s.sendall(b"ECHO\n" + payload)
        want_tail = payload
        got = b""
        while b"\n" not in got or len(got.split(b"\n", 1)[1]) < len(want_tail):
            d = s.recv(65536)
            if not d:
                raise AssertionError(f"EOF after {got!r}")
            got += d
        first, rest = got.split(b"\n", 1)
        if rest != want_tail:
            raise AssertionError(f"echo mismatch: {rest!r}")
        return first.decode(), time.monotonic() - t0
    finally:
        s.close()


class Retry(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.live = kt.TcpBackend("live")

    def proxy(self, endpoints, *args):
        p = kt.Proxy(endpoints, ["--health-check=none", "--policy=first", *args])
        self.addCleanup(p.stop_clean)
        return p

    def answered(self, p, held, i, rcvbuf=None):
        """The i-th connection through p to the Misbehaving("silent") endpoint `held`, after one
        exchange (HELLO, HI): the upstream has answered. Returns (client, upstream) sockets."""
        s = socket.socket()
        self.addCleanup(s.close)
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.settimeout(10)
        s.connect(("127.0.0.1", p.port))
        s.sendall(b"HELLO\n")
        kt.wait_until(lambda: held.accepted > i, 5, what="the proxy to dial the endpoint")
        up = held.held[i]
        up.settimeout(5)
        self.assertEqual(kt.recv_exact(up, 6), b"HELLO\n")
        up.sendall(b"HI\n")
        self.assertEqual(kt.recv_exact(s, 3), b"HI\n")
        return s, up

    def counter(self, p, name, ep):
        return kt.metric(p.metrics(), f"kube_api_lb_endpoint_{name}", endpoint=ep)

    def test_connect_timeout_moves_on(self):
        hole = Misbehaving("blackhole")
        self.addCleanup(hole.close)
        p = self.proxy([hole.endpoint, self.live.endpoint], "--connect-timeout=300ms")
        for i in range(10):
            first, took = echo_once(p.port, b"held while dialling %d" % i)
            self.assertEqual(first, "OK ECHO live")
            self.assertLess(took, 2.0, f"connection {i} took {took:.2f}s with a 300ms "
                            "connect timeout")
        self.assertGreaterEqual(self.counter(p, "connect_failures_total", hole.endpoint), 1)
        self.assertEqual(self.counter(p, "connections_total", self.live.endpoint), 10)

    def test_silent_upstream_first_byte_timeout_replays(self):
        silent = Misbehaving("silent")
        self.addCleanup(silent.close)
        p = self.proxy([silent.endpoint, self.live.endpoint], "--first-byte-timeout=500ms")
        first, took = echo_once(p.port, b"replayed")
        self.assertEqual(first, "OK ECHO live")
        self.assertTrue(0.4 <= took < 3.0, f"took {took:.2f}s with a 500ms first-byte timeout")
        self.assertGreaterEqual(silent.accepted, 1, "the silent endpoint was never dialled")
        self.assertGreaterEqual(self.counter(p, "first_byte_timeouts_total", silent.endpoint), 1)

    def test_early_close_after_client_bytes_replays(self):
        # The upstream reads the client's first bytes (its ClientHello) and closes: re-dial, replay.
        closer = Misbehaving("readclose")
        self.addCleanup(closer.close)
        p = self.proxy([closer.endpoint, self.live.endpoint])
        for i in range(10):
            first, took = echo_once(p.port, b"again %d" % i)
            self.assertEqual(first, "OK ECHO live")
            self.assertLess(took, 2.0)
        self.assertGreaterEqual(closer.accepted, 1, "the closing endpoint was never dialled")
        self.assertGreaterEqual(self.counter(p, "early_closes_total", closer.endpoint), 1)

    def test_early_close_before_client_bytes_redials(self):
        # The upstream closes before the client has sent anything (an apiserver dying at the
        # moment of connect). Nothing reached the client, so this must be re-dialled too, not
        # passed on as an EOF.
        closer = Misbehaving("close")
        self.addCleanup(closer.close)
        p = self.proxy([closer.endpoint, self.live.endpoint])
        for i in range(5):
            try:
                first, took = echo_once(p.port, b"late %d" % i, pause=0.3)
            except (OSError, AssertionError) as e:
                self.fail(f"connection {i}: upstream closed before the client's first bytes; "
                          f"the client got: {e}")
            self.assertEqual(first, "OK ECHO live")
        self.assertGreaterEqual(closer.accepted, 1, "the closing endpoint was never dialled")

    def test_first_byte_timeout_when_the_client_speaks_after_the_connect(self):
        # The upstream connect completes before the client's first bytes arrive (a slow client,
        # or a re-dial before it sent anything). The idle timer armed at the connect must not
        # stand in for the first-byte timeout once the bytes are sent: that would leave a request
        # on a silent apiserver for half the idle timeout (minutes) instead of seconds.
        silent = Misbehaving("silent")
        self.addCleanup(silent.close)
        p = self.proxy([silent.endpoint, self.live.endpoint], "--first-byte-timeout=500ms",
                       "--idle-timeout=10m")
        for i in range(3):
            try:
                first, took = echo_once(p.port, b"slow client %d" % i, timeout=10, pause=0.4)
            except (OSError, AssertionError) as e:
                self.fail(f"connection {i}: the silent upstream was not replaced: {e}")
            self.assertEqual(first, "OK ECHO live")
            self.assertLess(took, 4.0, f"connection {i} took {took:.2f}s with a 500ms "
                            "first-byte timeout")
        self.assertGreaterEqual(self.counter(p, "first_byte_timeouts_total", silent.endpoint), 3)

    def test_first_byte_timeout_counts_from_the_clients_latest_bytes(self):
        # A request sent in pieces, each within the first-byte timeout of the one before but
        # together longer than it: the upstream owes no answer before the last piece, so the
        # connection stays on it and no first-byte timeout is counted.
        p = self.proxy([self.live.endpoint], "--first-byte-timeout=500ms")
        s = socket.create_connection(("127.0.0.1", p.port), timeout=10)
        self.addCleanup(s.close)
        for piece in (b"E", b"C", b"H", b"O"):  # the last bytes 0.6 s after the first
            s.sendall(piece)
            time.sleep(0.15)
        s.sendall(b"\npieces")
        got = b""
        while b"pieces" not in got:
            d = s.recv(65536)
            if not d:
                self.fail(f"the proxy closed the connection after {got!r}")
            got += d
        self.assertEqual(got, b"OK ECHO live\npieces")
        self.assertEqual(self.counter(p, "first_byte_timeouts_total", self.live.endpoint), 0)

    def test_idle_timeout_for_a_client_that_never_speaks(self):
        # Connected, upstream dialled, not a byte sent either way: idle like any other session.
        p = self.proxy([self.live.endpoint], "--idle-timeout=1s")
        s = socket.create_connection(("127.0.0.1", p.port), timeout=10)
        t0 = time.monotonic()
        try:
            d = s.recv(100)
        except ConnectionResetError:
            d = b""
        except socket.timeout:
            self.fail("a silent client was not closed by --idle-timeout=1s within 10s")
        took = time.monotonic() - t0
        s.close()
        self.assertEqual(d, b"")
        self.assertTrue(0.8 <= took <= 3.0, f"silent connection closed after {took:.2f}s, "
                        "--idle-timeout=1s")
        kt.wait_until(lambda: self.counter(p, "active_connections", self.live.endpoint) == 0, 3,
                      what="the session to be gone")

    def test_a_client_that_closes_without_a_byte_is_no_endpoint_failure(self):
        # A TCP port probe connects and closes. The apiserver answers the passed-on FIN by
        # closing: that is no failure of it, and no reason to dial the next endpoint.
        first_ep = kt.TcpBackend("first")
        second_ep = kt.TcpBackend("second")
        self.addCleanup(first_ep.stop)
        self.addCleanup(second_ep.stop)
        p = self.proxy([first_ep.endpoint, second_ep.endpoint])
        for pause in (0, 0.3, 0, 0.3):
            s = socket.create_connection(("127.0.0.1", p.port), timeout=10)
            time.sleep(pause)  # 0.3 s: the upstream connect is complete by then
            s.shutdown(socket.SHUT_WR)
            self.assertEqual(s.recv(100), b"", "the probe should get the proxy's FIN")
            s.close()
        kt.wait_until(lambda: kt.metric(p.metrics(), "kube_api_lb_accepted_connections_total")
                      == 4, 3, what="four accepted connections")
        for name in ("early_closes_total", "retries_total", "connections_total"):
            self.assertEqual(self.counter(p, name, second_ep.endpoint), 0,
                             f"{name} of the second endpoint")
        for name in ("early_closes_total", "retries_total"):
            self.assertEqual(self.counter(p, name, first_ep.endpoint), 0,
                             f"{name} of the first endpoint")
        self.assertNotIn("re-dialling", p.log())
        self.assertNotIn("no endpoint left to try", p.log())
        # And the endpoints still serve.
        self.assertEqual(echo_once(p.port)[0], "OK ECHO first")

    def test_write_to_a_reset_upstream_replays(self):
        # An apiserver killed while the proxy's connection sat in its accept queue resets that
        # connection. When the client's first bytes (its ClientHello) arrive in the same loop turn
        # as the reset, the proxy writes them before it has read the reset, and the write fails.
        # Nothing reached the client yet, so the bytes must go to another endpoint (seen once in
        # the netns kill -9 test as a failed TLS handshake). kube-api-lb is stopped while both
        # arrive, so that it sees them in that order: the client's bytes first.
        held = Misbehaving("silent")
        self.addCleanup(held.close)
        p = self.proxy([held.endpoint, self.live.endpoint])
        for i in range(3):
            s = socket.create_connection(("127.0.0.1", p.port), timeout=10)
            self.addCleanup(s.close)
            kt.wait_until(lambda: held.accepted > i, 5, what="the proxy to dial the endpoint")
            up = held.held[i]
            payload = b"replayed after a reset %d" % i
            # The endpoint accepted; give the proxy time to take the connect's completion too
            # (under ASan on a busy machine it may still be pending). Paused before that, it
            # would see the reset as a failed connect, another path (counted below all the same).
            time.sleep(0.3)
            with paused(p):
                s.sendall(b"ECHO\n" + payload)
                time.sleep(0.05)
                reset(up)
            got = b""
            want = b"OK ECHO live\n" + payload
            while len(got) < len(want):
                try:
                    d = s.recv(65536)
                except OSError as e:
                    self.fail(f"connection {i}: the client got {e!r} after {got!r}")
                if not d:
                    self.fail(f"connection {i}: the client got EOF after {got!r}: the failed "
                              "write to the reset upstream ended it instead of a replay")
                got += d
            self.assertEqual(got, want)
            s.close()
        # Every reset upstream was counted against it: as an early close (the write failed, the
        # path this test is about), or, if the proxy had not yet taken the connect's completion
        # when it was paused, as a failed connect. The write path ran at least once.
        early = self.counter(p, "early_closes_total", held.endpoint)
        failed_connects = self.counter(p, "connect_failures_total", held.endpoint)
        self.assertGreaterEqual(early, 1, "the write to a reset upstream was never exercised")
        self.assertGreaterEqual(early + failed_connects, 3, (early, failed_connects))

    def test_reset_upstream_still_passes_on_its_last_bytes(self):
        # An apiserver refusing a client (TLS 1.3 "certificate required") sends its alert and
        # resets the connection, since the client has sent more meanwhile. If the proxy writes
        # those client bytes before it reads the alert, the write fails; the alert must still
        # reach the client, followed by an EOF (seen as curl's "Empty reply from server" without
        # it). kube-api-lb is stopped while the bytes arrive, so it sees the client's first.
        held = Misbehaving("silent")
        self.addCleanup(held.close)
        p = self.proxy([held.endpoint])
        for i in range(3):
            s, up = self.answered(p, held, i)
            with paused(p):
                s.sendall(b"MORE\n")
                time.sleep(0.05)
                up.sendall(b"ALERT certificate required\n")
                reset(up)
            got, err = kt.read_to_eof(s)
            self.assertIsNone(err, f"connection {i}: {err!r} after {got!r}")
            self.assertEqual(got, b"ALERT certificate required\n", f"connection {i}")
            s.close()
        kt.wait_until(lambda: self.counter(p, "active_connections", held.endpoint) == 0, 3,
                      what="the proxy to end the sessions")

    def test_answer_survives_an_upstream_that_closed_while_the_client_uploads(self):
        # An apiserver rejecting a large upload (413, or a failed admission) answers, closes, and
        # resets the connection because the client keeps sending. The proxy has read the answer
        # (and the FIN, if one came first), but the client reads slowly: most of the answer still
        # sits in the proxy's send queue when its next write to the upstream fails or it reads
        # the reset. Closing the client socket then, with the client's further bytes unread,
        # makes the kernel send a reset and discard that queue: the client would lose the answer.
        # It must get all of it, then EOF; and a client that never closes its side is let go
        # within the linger time.
        held = Misbehaving("silent")
        self.addCleanup(held.close)
        p = self.proxy([held.endpoint])
        answer = bytes(range(256)) * 256  # 64 KiB
        for i, (upstream_fin, client_fin) in enumerate([(True, True), (True, False),
                                                         (False, True)]):
            s, up = self.answered(p, held, i, rcvbuf=4096)  # a receive buffer that fills at once
            with paused(p):
                up.sendall(answer)
                if upstream_fin:
                    up.shutdown(socket.SHUT_WR)
                s.sendall(b"x" * (128 * 1024))  # more than the proxy reads in one go
                if client_fin:
                    s.shutdown(socket.SHUT_WR)
                time.sleep(0.05)
                reset(up)
            time.sleep(0.3)  # the proxy runs into the failed write before the client reads
            t0 = time.monotonic()
            got, err = kt.read_to_eof(s)
            self.assertIsNone(err, f"connection {i}: {err!r} after {len(got)} of {len(answer)} "
                              "bytes")
            self.assertEqual(len(got), len(answer), f"connection {i}")
            self.assertEqual(got, answer, f"connection {i}")
            # With the client's FIN the session ends at once; without it, once the client has
            # acknowledged everything.
            kt.wait_until(lambda: self.counter(p, "active_connections", held.endpoint) == 0, 3,
                          what="the proxy to end the session")
            self.assertLess(time.monotonic() - t0, 3)
            s.close()

    def test_slow_client_still_uploading_gets_the_whole_answer(self):
        # As above, but the client takes longer than the linger time to read the answer, and
        # keeps uploading meanwhile (as a client that writes its whole body before it reads). It
        # is still taking bytes, so the proxy waits until it has all of them; then the proxy
        # closes (the client may see a reset after the answer, as from the apiserver directly).
        held = Misbehaving("silent")
        self.addCleanup(held.close)
        p = self.proxy([held.endpoint])
        answer = os.urandom(48 * 1024)
        s, up = self.answered(p, held, 0, rcvbuf=4096)
        stop = threading.Event()

        with paused(p):
            up.sendall(answer)
            up.shutdown(socket.SHUT_WR)
            s.sendall(b"x" * (128 * 1024))
            time.sleep(0.05)
            reset(up)
        uploader = trickle(s, stop)
        self.addCleanup(stop.set)
        t0 = time.monotonic()
        got = b""
        try:
            while True:
                time.sleep(0.5)
                d = s.recv(4096)
                if not d:
                    break
                got += d
        except OSError:
            pass
        took = time.monotonic() - t0
        stop.set()
        uploader.join(5)
        self.assertEqual(len(got), len(answer), f"after {took:.1f}s")
        self.assertEqual(got, answer)
        self.assertGreater(took, 5.5, "the client read faster than the linger time: no test")
        kt.wait_until(lambda: self.counter(p, "active_connections", held.endpoint) == 0, 3,
                      what="the proxy to end the session")
        s.close()

    def test_client_that_never_reads_is_let_go_after_the_linger_time(self):
        # The upstream's answer is still queued in the proxy when the upstream resets, and the
        # client keeps sending but never reads: the session must not live on discarding its bytes
        # (it is closed 30 s after the upstream stopped taking them). Without TCP_USER_TIMEOUT,
        # which would otherwise end a connection whose data stays unacknowledged as long.
        held = Misbehaving("silent")
        self.addCleanup(held.close)
        p = self.proxy([held.endpoint], "--tcp-user-timeout=0")
        s, up = self.answered(p, held, 0, rcvbuf=4096)
        stop = threading.Event()
        self.addCleanup(stop.set)

        def answer():
            try:
                up.sendall(os.urandom(16 << 20))
            except OSError:
                pass  # reset below

        threading.Thread(target=answer, daemon=True).start()
        time.sleep(0.5)  # the answer backs up: client, proxy and upstream buffers fill
        with paused(p):
            s.sendall(b"x" * (128 * 1024))
            time.sleep(0.05)
            reset(up)
        t0 = time.monotonic()
        trickle(s, stop)
        kt.wait_until(lambda: self.counter(p, "active_connections", held.endpoint) == 0, 40,
                      interval=0.5, what="the proxy to end the session")
        took = time.monotonic() - t0
        stop.set()
        self.assertGreater(took, 25, "closed before the linger time although the client sends")
        s.close()

    def test_spliced_answer_is_passed_on_up_to_the_upstream_reset(self):
        # Bulk from the upstream moves by splice(2), polled on a duplicate of its socket. When the
        # upstream's last bytes and its reset arrive together, the poll reports an error; the
        # bytes it received before the reset must still reach the client, then EOF.
        held = Misbehaving("silent")
        self.addCleanup(held.close)
        p = self.proxy([held.endpoint])
        s, up = self.answered(p, held, 0)
        bulk = os.urandom(4 << 20)
        before = kt.metric(p.metrics(), "kube_api_lb_spliced_bytes_total")
        threading.Thread(target=up.sendall, args=(bulk,), daemon=True).start()
        self.assertEqual(kt.recv_exact(s, len(bulk)), bulk)
        spliced = kt.metric(p.metrics(), "kube_api_lb_spliced_bytes_total") - before
        self.assertGreater(spliced, len(bulk) // 2, "the answer did not go through splice(2)")
        tail = os.urandom(100 * 1024)
        with paused(p):
            up.sendall(tail)
            deadline = time.monotonic() + 5
            while kt.outq(up) and time.monotonic() < deadline:
                time.sleep(0.01)
            self.assertEqual(kt.outq(up), 0, "the tail did not reach the proxy's socket")
            reset(up)
        got, err = kt.read_to_eof(s)
        self.assertIsNone(err, f"{err!r} after {len(got)} of {len(tail)} bytes")
        self.assertEqual(len(got), len(tail))
        self.assertEqual(got, tail)

    def test_upstream_reset_closes_client(self):
        rst = Misbehaving("rst")
        self.addCleanup(rst.close)
        p = self.proxy([rst.endpoint])
        s = socket.create_connection(("127.0.0.1", p.port), timeout=10)
        s.sendall(b"ECHO\n")
        self.assertEqual(kt.recv_exact(s, len(b"OK RST reset\n")), b"OK RST reset\n")
        t0 = time.monotonic()
        try:
            while s.recv(100):
                pass
        except ConnectionResetError:
            pass
        took = time.monotonic() - t0
        s.close()
        self.assertLess(took, 2.0, "client side not closed promptly after the upstream reset")

    def test_client_reset_closes_upstream(self):
        b = kt.TcpBackend("rstc")
        self.addCleanup(b.stop)
        p = self.proxy([b.endpoint])
        s = socket.create_connection(("127.0.0.1", p.port), timeout=10)
        s.sendall(b"ECHO\nx")
        got = b""
        while len(got) < len(b"OK ECHO rstc\nx"):
            d = s.recv(100)
            if not d:
                break
            got += d
        self.assertEqual(got, b"OK ECHO rstc\nx")
        reset(s)
        b.wait_events(lambda e: e["event"] == "closed" and e["mode"] == "ECHO", 1, timeout=3)
        kt.wait_until(lambda: self.counter(p, "active_connections", b.endpoint) == 0, 3,
                      what="the proxy to drop the session")

    def test_idle_timeout(self):
        p = self.proxy([self.live.endpoint], "--idle-timeout=1s")
        s = socket.create_connection(("127.0.0.1", p.port), timeout=10)
        s.sendall(b"ECHO\n")
        self.assertEqual(kt.recv_exact(s, len(b"OK ECHO live\n")), b"OK ECHO live\n")
        t0 = time.monotonic()
        try:
            d = s.recv(100)
        except ConnectionResetError:
            d = b""
        took = time.monotonic() - t0
        s.close()
        self.assertEqual(d, b"", "expected the proxy to close an idle connection")
        self.assertTrue(0.8 <= took <= 3.0, f"idle connection closed after {took:.2f}s, "
                        "--idle-timeout=1s")

    def test_no_idle_timeout_by_default(self):
        p = self.proxy([self.live.endpoint])
        s = socket.create_connection(("127.0.0.1", p.port), timeout=10)
        s.sendall(b"ECHO\n")
        self.assertEqual(kt.recv_exact(s, len(b"OK ECHO live\n")), b"OK ECHO live\n")
        time.sleep(4)
        s.sendall(b"still there\n")
        self.assertEqual(kt.recv_exact(s, len(b"still there\n")), b"still there\n")
        s.close()


if __name__ == "__main__":
    kt.main()
