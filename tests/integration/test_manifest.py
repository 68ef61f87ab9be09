#!/usr/bin/env python3
"""`kube-api-lb manifest`: the shipped manifest is its output, files it writes, and its errors.

The field-by-field checks of the rendered Pod are in tests/unit/manifest_test.cc (yaml-cpp parses
there; Python's stdlib has no YAML parser), including on manifests/kube-api-lb.yaml itself.

To regenerate the shipped manifest after an intended change:
    KAL_UPDATE_MANIFEST=1 KAL_BIN=build/kube-api-lb python3 tests/integration/test_manifest.py
"""
import hashlib
import os
import threading
import tempfile
import re
import stat
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kal_testlib as lib  # noqa: E402

SHIPPED = os.path.join(lib.REPO, "manifests", "kube-api-lb.yaml")
GOLDEN = os.path.join(lib.REPO, "tests", "data", "golden")
# The lab's Case 2 worker: three control planes (text in a manifest; nothing connects to them).
CASE2 = ["manifest", "--endpoints=192.168.10.11:6443,192.168.10.12:6443,192.168.10.13:6443"]


def manifest(*args, timeout=15):
    return lib.run_kal(list(args), timeout=timeout)


def annotation(text):
    m = re.search(r'^    kube-api-lb\.io/config-checksum: "([0-9a-f]{64})"$', text, re.M)
    return m.group(1) if m else None


def without_header(text):
    """The document without the generator's leading comment block and blank line."""
    lines = text.splitlines(keepends=True)
    while lines and (lines[0].startswith("#") or lines[0].strip() == ""):
        lines.pop(0)
    return "".join(lines)


class ShippedManifest(unittest.TestCase):
    def test_shipped_manifest_is_the_generators_output(self):
        r = manifest(*CASE2)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr, "")
        if os.environ.get("KAL_UPDATE_MANIFEST") == "1":
            with open(SHIPPED, "w") as f:
                f.write(r.stdout)
        with open(SHIPPED) as f:
            shipped = f.read()
        self.assertEqual(
            r.stdout, shipped,
            "manifests/kube-api-lb.yaml is not what `kube-api-lb " + " ".join(CASE2) +
            "` prints; regenerate it (KAL_UPDATE_MANIFEST=1, see this file's docstring) and "
            "review the diff")

    def test_header_says_how_to_regenerate(self):
        with open(SHIPPED) as f:
            header = [l for l in f.read().splitlines() if l.startswith("#")]
        cmd = " ".join(l.lstrip("# ").rstrip(" \\") for l in header[2:])
        self.assertEqual(cmd, "kube-api-lb " + " ".join(CASE2))

    def test_shipped_manifest_matches_the_unit_tests_golden(self):
        # The unit tests check every field of tests/data/golden/manifest-args.yaml's rendering.
        with open(SHIPPED) as f, open(os.path.join(GOLDEN, "manifest-args.yaml")) as g:
            self.assertEqual(without_header(f.read()), g.read())

    def test_no_registry_host_and_no_traffic_addresses_but_the_endpoints(self):
        with open(SHIPPED) as f:
            text = f.read()
        image = re.search(r"^      image: (\S+)$", text, re.M).group(1)
        self.assertNotIn("/", image, "the default image must not name a registry")
        self.assertEqual(set(re.findall(r"192\.168\.\d+\.\d+", text)),
                         {"192.168.10.11", "192.168.10.12", "192.168.10.13"})


class Outputs(unittest.TestCase):
    def test_output_file_equals_stdout(self):
        out = os.path.join(lib.tmpdir(), "out", "kube-api-lb.yaml")
        os.makedirs(os.path.dirname(out), exist_ok=True)
        r = manifest(*CASE2, f"--output={out}")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "")
        with open(out) as f, open(SHIPPED) as g:
            self.assertEqual(f.read(), g.read())
        # No temporary file is left next to it (kubelet reads every non-hidden file there).
        self.assertEqual(os.listdir(os.path.dirname(out)), ["kube-api-lb.yaml"])

    def test_output_to_a_pipe_stays_a_pipe(self):
        # --output=/dev/stdout, a FIFO or a device is written as it is: the atomic rename used for
        # files would replace it with a regular file (it once replaced /dev/null).
        d = tempfile.mkdtemp(dir=lib.tmpdir())
        fifo = os.path.join(d, "manifest.fifo")
        os.mkfifo(fifo)
        got = {}

        def reader():
            with open(fifo) as f:
                got["text"] = f.read()
        t = threading.Thread(target=reader, daemon=True)
        t.start()
        r = manifest(*CASE2, f"--output={fifo}")
        t.join(10)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(stat.S_ISFIFO(os.stat(fifo).st_mode), "the FIFO was replaced by a file")
        with open(SHIPPED) as g:
            self.assertEqual(got.get("text"), g.read())
        self.assertEqual(sorted(os.listdir(d)), ["manifest.fifo"], "a temporary file was left")
        r = manifest(*CASE2, f"--output={d}")
        self.assertEqual(r.returncode, 1)
        self.assertIn("is a directory", r.stderr)

    def test_config_hostpath_and_write_config(self):
        d = os.path.join(lib.tmpdir(), "etc-kube-api-lb")
        os.makedirs(d, exist_ok=True)
        conf = os.path.join(d, "config.yaml")
        old_umask = os.umask(0o077)  # the file must still come out world-readable (pod is 65532)
        try:
            r = manifest(*CASE2, "--config-hostpath=/etc/kube-api-lb", f"--write-config={conf}",
                         "--policy=round-robin", "--health-interval=2s")
        finally:
            os.umask(old_umask)
        self.assertEqual(r.returncode, 0, r.stderr)
        text = r.stdout
        self.assertEqual(stat.S_IMODE(os.stat(conf).st_mode), 0o644)
        with open(conf, "rb") as f:
            body = f.read()
        digest = hashlib.sha256(body).hexdigest()
        self.assertEqual(annotation(text), digest)
        self.assertIn("        - --config=/etc/kube-api-lb/config.yaml\n", text)
        self.assertIn("        path: /etc/kube-api-lb\n        type: Directory\n", text)
        self.assertIn(b"policy: round-robin", body)
        self.assertIn(b"interval: 2s", body)

        # The written file is a valid config for the proxy itself ...
        chk = lib.run_kal(["check-config", f"--config={conf}"])
        self.assertEqual(chk.returncode, 0, chk.stderr)
        # ... and feeding it back gives the same manifest: the round trip is exact.
        again = manifest("manifest", f"--config={conf}", "--config-hostpath=/etc/kube-api-lb")
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertEqual(annotation(again.stdout), digest)
        self.assertEqual(without_header(again.stdout), without_header(text))

    def test_checksum_follows_the_config(self):
        a = annotation(manifest(*CASE2).stdout)
        b = annotation(manifest(*CASE2, "--health-rise=3").stdout)
        c = annotation(manifest(*CASE2, "--image=kube-api-lb:other", "--memory-limit=128Mi")
                       .stdout)
        self.assertTrue(a and b and c)
        self.assertNotEqual(a, b)
        self.assertEqual(a, c)  # pod options are not proxy configuration

    def test_migrating_from_kubespray_nginx_conf(self):
        nginx = os.path.join(lib.REPO, "tests", "data", "kubespray", "nginx.conf")
        r = manifest("manifest", f"--config={nginx}", "--admin-listen=127.0.0.1:8082")
        self.assertEqual(r.returncode, 0, r.stderr)
        for arg in ("--endpoints=192.168.10.11:6443,192.168.10.12:6443,192.168.10.13:6443",
                    "--idle-timeout=10m0s", "--admin-listen=127.0.0.1:8082",
                    "--healthz-listen=0.0.0.0:8081"):
            self.assertIn(f"        - {arg}\n", r.stdout)
        self.assertIn("          port: 8082\n", r.stdout)

    def test_help(self):
        r = manifest("manifest", "--help")
        self.assertEqual(r.returncode, 0, r.stderr)
        for flag in ("--endpoints", "--image", "--config-hostpath", "--memory-limit",
                     "--write-config", "--output", "--name", "--namespace"):
            self.assertIn(flag, r.stdout)


class Errors(unittest.TestCase):
    CASES = [
        ([], "--endpoints is required"),
        (["--endpoints=10.0.0.1"], "--endpoints: endpoint \"10.0.0.1\": missing port"),
        (["--endpoints=10.0.0.1:99999"], "port 99999 out of range"),
        (["--endpoints=10.0.0.1:6443,10.0.0.1:6443"], "duplicate"),
        (CASE2[1:] + ["--bogus"], "--bogus"),
        (CASE2[1:] + ["--policy=fastest"], "--policy: unknown policy \"fastest\""),
        (CASE2[1:] + ["--connect-timeout=1x"], "--connect-timeout"),
        (CASE2[1:] + ["--memory-limit=64MB"], "--memory-limit: quantity \"64MB\": unknown unit"),
        (CASE2[1:] + ["--memory-limit=16Mi"], "--memory-request=32M is above --memory-limit=16Mi"),
        (CASE2[1:] + ["--cpu-request=lots"], "--cpu-request: quantity \"lots\""),
        (CASE2[1:] + ["--name=Kube_API"], "--name \"Kube_API\": must be a DNS-1123 label"),
        (CASE2[1:] + ["--namespace=kube.system"], "--namespace \"kube.system\""),
        (CASE2[1:] + ["--image="], "--image"),
        (CASE2[1:] + ["--image=a b"], "--image \"a b\": must not contain whitespace"),
        (CASE2[1:] + ["--image-pull-policy=sometimes"], "--image-pull-policy \"sometimes\""),
        (CASE2[1:] + ["--config-hostpath=etc/kube-api-lb"], "must be an absolute path"),
        (CASE2[1:] + ["--config-hostpath=/"], "refusing to mount"),
        (CASE2[1:] + ["--health-rise=0"], "--health-rise"),
        (["--config=/nonexistent/kube-api-lb.yaml"], "/nonexistent/kube-api-lb.yaml"),
    ]

    def test_bad_flags_are_one_clear_line_and_exit_2(self):
        for args, want in self.CASES:
            with self.subTest(args=args):
                r = manifest("manifest", *args)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertEqual(r.stdout, "")
                self.assertTrue(r.stderr.startswith("kube-api-lb: error: "), r.stderr)
                self.assertEqual(r.stderr.count("\n"), 1, r.stderr)
                self.assertIn(want, r.stderr)

    def test_unwritable_output_is_a_runtime_error(self):
        missing = os.path.join(lib.tmpdir(), "no", "such", "dir")
        for flag in ("--output", "--write-config"):
            with self.subTest(flag=flag):
                r = manifest(*CASE2, f"{flag}={missing}/x.yaml")
                self.assertEqual(r.returncode, 1, r.stderr)
                self.assertTrue(r.stderr.startswith("kube-api-lb: error: "), r.stderr)
                self.assertIn(flag, r.stderr)
                self.assertIn("No such file or directory", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
