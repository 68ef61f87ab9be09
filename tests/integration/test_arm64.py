#!/usr/bin/env python3
"""The linux/arm64 build, cross-compiled here and run under qemu-aarch64-static (no binfmt).

Builds (scripts/build-static.sh arm64: Release, static, only kube-api-lb and kal_unit_tests) into
KAL_ARM64_BUILD_DIR (default <repo>/build-image/build-arm64, the tree scripts/build-image.sh uses
for the arm64 image, so CI cross-compiles once), then checks:

- both programs are static AArch64 executables (ELF header: machine, no interpreter, no NEEDED);
- `--version`;
- `check-config` on the Kubespray files in tests/data/kubespray prints exactly what the amd64 binary
  (KAL_BIN) prints: the same effective configuration, hash included;
- the unit tests pass, all but the two sys_resident cases that read the process's real mappings
  from /proc/self/smaps: qemu-user emulates /proc/self/maps for the guest but not smaps, so there
  the arm64 code shows up as the host's non-executable pages (UNDER_QEMU_EXCLUDED below);
- a request through the arm64 kube-api-lb to a stand-in apiserver on loopback, with curl: TLS
  passes through (the apiserver sees curl's client certificate), and the health checker marks the
  apiserver ready (/readyz 200 on the admin port).

Skipped in the ASan+UBSan pass (KAL_SANITIZED=1): the arm64 build is not sanitized, and the plain
pass has checked this very binary already.
"""
import os
import re
import shutil
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kal_testlib as lib  # noqa: E402

BUILD = os.environ.get("KAL_ARM64_BUILD_DIR") or os.path.join(lib.REPO, "build-image",
                                                               "build-arm64")
QEMU = "qemu-aarch64-static"
BIN = os.path.join(BUILD, "kube-api-lb")
UNIT = os.path.join(BUILD, "kal_unit_tests")
KUBESPRAY = os.path.join(lib.REPO, "tests", "data", "kubespray")
# doctest test-case filters (names up to their first comma: a comma separates filters). Both
# cases read /proc/self/smaps, which qemu-user passes through from the host (only /proc/self/maps
# is emulated), so the guest's code is not found there.
UNDER_QEMU_EXCLUDED = [
    "exe_mappings lists this binary's mappings*",
    "release_startup_pages unmaps the executable's code pages*",
]


def setUpModule():
    if os.environ.get("KAL_SANITIZED") == "1":
        raise unittest.SkipTest("the arm64 build is not sanitized; the plain pass checks it")
    for tool in (QEMU, "aarch64-linux-gnu-g++"):
        if shutil.which(tool) is None:
            raise AssertionError(f"{tool} is missing: run scripts/install-deps.sh")
    t0 = time.monotonic()
    subprocess.run([os.path.join(lib.REPO, "scripts", "build-static.sh"), "arm64", BUILD,
                    "kube-api-lb", "kal_unit_tests"], check=True, timeout=1200)
    print(f"arm64 build (kube-api-lb, kal_unit_tests) up to date in "
          f"{time.monotonic() - t0:.1f} s: {BUILD}", file=sys.stderr)


def arm64(*args, timeout=60):
    return subprocess.run([QEMU, BIN, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=timeout)


def project_version():
    with open(os.path.join(lib.REPO, "CMakeLists.txt")) as f:
        return re.search(r"project\(kube-api-lb VERSION ([0-9.]+)", f.read()).group(1)


class Arm64Test(unittest.TestCase):
    def test_elf_headers_static_aarch64(self):
        for path in (BIN, UNIT):
            header = subprocess.run(["readelf", "-hW", path], stdout=subprocess.PIPE, text=True,
                                    check=True).stdout
            self.assertRegex(header, r"Class:\s+ELF64", path)
            self.assertRegex(header, r"Machine:\s+AArch64", path)
            self.assertRegex(header, r"Type:\s+EXEC", path)  # static, not PIE
            segments = subprocess.run(["readelf", "-lW", path], stdout=subprocess.PIPE,
                                      text=True, check=True).stdout
            self.assertNotIn("INTERP", segments, f"{path} asks for a program interpreter")
            dynamic = subprocess.run(["readelf", "-dW", path], stdout=subprocess.PIPE,
                                     text=True).stdout
            self.assertNotIn("(NEEDED)", dynamic, f"{path} needs shared libraries")

    def test_version(self):
        r = arm64("--version")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.strip(), f"kube-api-lb {project_version()}")

    def test_check_config_kubespray_same_as_amd64(self):
        for name in ("nginx.conf", "haproxy.cfg"):
            path = os.path.join(KUBESPRAY, name)
            r = arm64("check-config", f"--config={path}")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn(f"configuration {path} is valid", r.stderr)
            for ip in ("192.168.10.11", "192.168.10.12", "192.168.10.13"):
                self.assertIn(f'"{ip}:6443"', r.stdout)
            native = lib.run_kal(["check-config", f"--config={path}"])
            self.assertEqual(native.returncode, 0, native.stderr)
            self.assertEqual(r.stdout, native.stdout, f"{name}: arm64 and amd64 disagree")
            self.assertEqual(r.stderr, native.stderr, f"{name}: arm64 and amd64 disagree")
        # And a broken file is refused, naming the problem, as on amd64.
        bad = os.path.join(lib.tmpdir(), "nginx.conf")
        with open(os.path.join(KUBESPRAY, "nginx.conf")) as f:
            text = f.read()
        with open(bad, "w") as f:
            f.write(text.replace("server 192.168.10.12:6443;", "server 192.168.10.12:99999;"))
        r = arm64("check-config", f"--config={bad}")
        self.assertNotEqual(r.returncode, 0, r.stdout)
        self.assertIn("99999", r.stderr)
        self.assertEqual(r.stderr, lib.run_kal(["check-config", f"--config={bad}"]).stderr)

    def test_unit_tests_under_qemu(self):
        t0 = time.monotonic()
        r = subprocess.run([QEMU, UNIT, "--test-case-exclude=" + ",".join(UNDER_QEMU_EXCLUDED)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=480, cwd=lib.tmpdir())
        took = time.monotonic() - t0
        tail = "\n".join(r.stdout.splitlines()[-40:])
        self.assertEqual(r.returncode, 0, tail)
        self.assertIn("Status: SUCCESS!", r.stdout, tail)
        counts = re.search(r"test cases:\s+(\d+) \|\s+(\d+) passed \|\s+(\d+) failed \|\s+"
                           r"(\d+) skipped", r.stdout)
        self.assertIsNotNone(counts, tail)
        total, passed, failed, skipped = map(int, counts.groups())
        self.assertEqual(failed, 0, tail)
        self.assertGreater(passed, 100, tail)  # the suite ran, not a filter that matched nothing
        self.assertEqual(skipped, len(UNDER_QEMU_EXCLUDED), tail)
        print(f"\narm64 unit tests under {QEMU}: {passed} test cases passed, {skipped} excluded, "
              f"in {took:.1f} s", file=sys.stderr)

    def test_proxied_request(self):
        certs = lib.make_certs()
        # The health checker has no client certificate here (as in test_image.py); curl has one.
        api = lib.FakeApiserver("arm64-backend", certs, args=["--no-client-cert-required"])
        port, admin = lib.free_port(), lib.free_port()
        p = lib.spawn([QEMU, BIN, f"--endpoints={api.endpoint}", f"--listen=127.0.0.1:{port}",
                       f"--admin-listen=127.0.0.1:{admin}"], label="kube-api-lb-arm64")
        lib.wait_until(lambda: lib.is_listening(port) and lib.is_listening(admin)
                       or p.poll() is not None, 30, what="the arm64 kube-api-lb to listen")
        self.assertIsNone(p.poll(), lib.read_log(p))
        curl = ["--cacert", certs.ca, "--cert", certs.client_crt, "--key", certs.client_key]
        r = lib.curl(*curl, f"https://127.0.0.1:{port}/version")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b'"apiserver": "arm64-backend"', r.stdout.replace(b'":"', b'": "'))
        # TLS passthrough: the apiserver saw curl's own client certificate.
        r = lib.curl(*curl, f"https://127.0.0.1:{port}/whoami")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"system:node:k8s-node4", r.stdout)
        # The health checker, under emulation too, marks the apiserver ready.
        lib.wait_until(lambda: lib.http_get("127.0.0.1", admin, "/readyz")[0] == 200, 30,
                       what="/readyz 200 from the arm64 kube-api-lb")
        self.assertEqual(lib.stop(p, timeout=20), 0, lib.read_log(p))


if __name__ == "__main__":
    lib.main()
