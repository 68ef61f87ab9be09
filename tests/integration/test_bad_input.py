#!/usr/bin/env python3
"""Bad command lines: each gets one clear "kube-api-lb: error: ..." line naming the problem, the
documented exit code (2 for bad flags/config, 1 for runtime failures such as an address in use), a
quick exit, and never a crash (no death by signal, no sanitizer report). A host name that does not
resolve is not an error at start-up: test_names.py."""
import os
import re
import socket
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kal_testlib as kt  # noqa: E402

QUICK = 5.0  # seconds; an error must not wait for timeouts or health checks


class BadInput(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.live = kt.TcpBackend("live")  # a real endpoint, so only the tested flag is wrong
        # Nothing must be found by the no-argument config search.
        cls.env = dict(os.environ, KUBE_API_LB_CONFIG_SEARCH_PATH=os.path.join(
            kt.tmpdir(), "no-such-config.yaml"))

    def base(self):
        """Valid flags apart from the endpoints; listeners on free ports."""
        return [f"--listen=127.0.0.1:{kt.free_port()}",
                f"--admin-listen=127.0.0.1:{kt.free_port()}", "--health-check=tcp"]

    def expect_error(self, args, pattern, code=2):
        r = kt.run_kal(args, env=self.env)
        cmd = " ".join(["kube-api-lb", *args])
        err = r.stderr
        short = "\n".join(err.splitlines()[:12])  # enough to show a sanitizer report's top
        self.assertGreaterEqual(r.returncode, 0,
                                f"{cmd}: killed by signal {-r.returncode}:\n{short}")
        for bad in ("Sanitizer", "runtime error:", "terminate called", "Segmentation",
                    "Aborted", "core dumped"):
            if bad in err:
                self.fail(f"{cmd}: crash signature {bad!r} in stderr:\n{short}")
        self.assertEqual(r.returncode, code,
                         f"{cmd}: exit code {r.returncode}, want {code}; stderr:\n{short}")
        self.assertLess(r.elapsed, QUICK, f"{cmd}: took {r.elapsed:.1f}s to fail")
        lines = [l for l in err.splitlines() if l.startswith("kube-api-lb: error: ")]
        self.assertEqual(len(lines), 1,
                         f"{cmd}: want exactly one 'kube-api-lb: error: ' line, stderr:\n{short}")
        self.assertRegex(lines[0], re.compile(pattern, re.I),
                         f"{cmd}: error line does not name the problem")
        # The error is the message, not buried in a usage dump.
        self.assertLessEqual(len(err.strip().splitlines()), 3,
                             f"{cmd}: stderr too long for one clear message:\n{short}")
        return lines[0]

    # ---- flags
    def test_unknown_flag(self):
        self.expect_error(self.base() + [f"--endpoints={self.live.endpoint}", "--bogus-flag=1"],
                          r"bogus-flag")

    def test_unknown_policy(self):
        self.expect_error(self.base() + [f"--endpoints={self.live.endpoint}",
                                         "--policy=fastest"], r"policy.*fastest|fastest.*policy")

    def test_bad_duration(self):
        self.expect_error(self.base() + [f"--endpoints={self.live.endpoint}",
                                         "--connect-timeout=1x"], r"connect-timeout")

    def test_bad_health_check_mode(self):
        self.expect_error(self.base() + [f"--endpoints={self.live.endpoint}",
                                         "--health-check=icmp"], r"health-check.*icmp|icmp")

    # ---- endpoints
    def test_malformed_endpoint_port(self):
        self.expect_error(self.base() + ["--endpoints=127.0.0.1:https"],
                          r"127\.0\.0\.1:https")

    def test_malformed_endpoint_no_port(self):
        self.expect_error(self.base() + ["--endpoints=127.0.0.1"], r"127\.0\.0\.1.*port|port")

    def test_malformed_endpoint_garbage(self):
        self.expect_error(self.base() + [f"--endpoints={self.live.endpoint},foo bar:6443"],
                          r"foo bar")

    def test_duplicate_endpoint(self):
        ep = self.live.endpoint
        self.expect_error(self.base() + [f"--endpoints={ep},{ep}"],
                          rf"duplicate.*{re.escape(ep)}|{re.escape(ep)}.*duplicate")

    def test_port_out_of_range(self):
        self.expect_error(self.base() + ["--endpoints=127.0.0.1:70000"], r"70000")

    def test_port_zero(self):
        self.expect_error(self.base() + ["--endpoints=127.0.0.1:0"], r"port|127\.0\.0\.1:0")

    def test_listen_port_out_of_range(self):
        args = [f"--endpoints={self.live.endpoint}", "--listen=127.0.0.1:65536",
                f"--admin-listen=127.0.0.1:{kt.free_port()}"]
        self.expect_error(args, r"65536")

    def test_ipv6_without_brackets(self):
        self.expect_error(self.base() + ["--endpoints=::1:6443"], r"::1:6443|bracket")

    def test_empty_endpoints(self):
        self.expect_error(self.base() + ["--endpoints="], r"endpoint")

    def test_empty_item_in_endpoints(self):
        self.expect_error(self.base() + [f"--endpoints={self.live.endpoint},,"], r"endpoint|empty")

    def test_no_endpoints_no_config(self):
        self.expect_error(self.base(), r"endpoint|config")

    # ---- runtime failures (exit 1)
    def test_listen_address_in_use(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen()
            port = s.getsockname()[1]
            args = [f"--endpoints={self.live.endpoint}", f"--listen=127.0.0.1:{port}",
                    f"--admin-listen=127.0.0.1:{kt.free_port()}", "--health-check=tcp"]
            self.expect_error(args, rf"127\.0\.0\.1:{port}.*in use|in use.*127\.0\.0\.1:{port}",
                              code=1)

    def test_admin_address_in_use(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen()
            port = s.getsockname()[1]
            args = [f"--endpoints={self.live.endpoint}", f"--listen=127.0.0.1:{kt.free_port()}",
                    f"--admin-listen=127.0.0.1:{port}", "--health-check=tcp"]
            self.expect_error(args, rf"{port}.*in use|in use.*{port}", code=1)

    def test_missing_config_file(self):
        path = os.path.join(kt.tmpdir(), "absent.yaml")
        self.expect_error(self.base() + [f"--config={path}"], re.escape(path))

    # ---- the good paths of the same entry points, so the checks above can tell
    def test_version_and_help_succeed(self):
        r = kt.run_kal(["--version"], env=self.env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"^kube-api-lb \S+")
        r = kt.run_kal(["version"], env=self.env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"^kube-api-lb \S+")
        r = kt.run_kal(["--help"], env=self.env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("--endpoints", r.stdout)


if __name__ == "__main__":
    kt.main()
