#!/usr/bin/env python3
"""The container image, run with buildah (chroot isolation, the host's network; loopback only).

KAL_IMAGE names the manifest list (amd64 + arm64); `buildah from` on it gives this machine's own
image (checked), on which the tests below run. The arm64 image is checked from its config and
files, and its binary run under qemu-aarch64-static, proxying to stand-in apiservers.

- drop-in: started with no arguments and a Kubespray-rendered nginx.conf mounted at /etc/nginx
  (upstreams rewritten to stand-in apiservers on 127.0.0.11-13), it finds the file, proxies TLS
  untouched (the client certificate reaches the apiserver) and serves /healthz on the health port.
- the manifest's way: the args that `kube-api-lb manifest` (run inside the image) renders work as
  uid/gid 65532; and so does the --config-hostpath mode with the file written by --write-config,
  whose sha256 is the manifest's checksum annotation.

Image: KAL_IMAGE (tag) in the buildah storage under KAL_IMAGE_DIR (scripts/build-image.sh sets
both and runs this file). Without KAL_IMAGE it runs `scripts/build-image.sh --no-test` first.
Skipped (with the reason) when buildah is not installed or this is not root.
"""
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kal_testlib as lib  # noqa: E402

WORK = os.environ.get("KAL_IMAGE_DIR") or os.path.join(lib.REPO, "build-image")
BUILDAH = ["buildah", "--root", os.path.join(WORK, "containers"), "--runroot",
           os.path.join(WORK, "run"), "--storage-driver", "vfs"]
CONTROL_PLANES = ["127.0.0.11", "127.0.0.12", "127.0.0.13"]
HOST_ARCH = subprocess.run(["dpkg", "--print-architecture"], stdout=subprocess.PIPE, text=True,
                           check=True).stdout.strip()

_ctr = None
_tag = None
_certs = None
_apiservers = []


def project_version():
    with open(os.path.join(lib.REPO, "CMakeLists.txt")) as f:
        return re.search(r"project\(kube-api-lb VERSION ([0-9.]+)", f.read()).group(1)


def buildah(*args, timeout=120):
    r = subprocess.run(BUILDAH + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=timeout)
    if r.returncode != 0:
        raise AssertionError(f"buildah {' '.join(args)} failed ({r.returncode}):\n{r.stderr}")
    return r.stdout


def setUpModule():
    global _ctr, _tag, _certs
    if shutil.which("buildah") is None:
        raise unittest.SkipTest("buildah is not installed (apt-get install buildah, or run "
                                "scripts/build-image.sh, which installs it)")
    if os.geteuid() != 0:
        raise unittest.SkipTest("buildah with vfs storage and chroot isolation needs root here")
    _tag = os.environ.get("KAL_IMAGE")
    if not _tag:
        _tag = f"kube-api-lb:{project_version()}"
        subprocess.run([os.path.join(lib.REPO, "scripts", "build-image.sh"), "--no-test"],
                       check=True, timeout=1200, env=dict(os.environ, KAL_IMAGE_DIR=WORK))
    _ctr = buildah("from", "--name", f"kal-test-image-{os.getpid()}", _tag).strip()
    _certs = lib.make_certs()
    for name, ip in zip("abc", CONTROL_PLANES):
        _apiservers.append(lib.FakeApiserver(name, _certs, listen=(f"{ip}:0",),
                                             args=["--no-client-cert-required"]))


def tearDownModule():
    if _ctr:
        subprocess.run(BUILDAH + ["rm", _ctr], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)


def run_image(args, volumes=(), user=None, label="image"):
    """Starts /kube-api-lb ARGS in the test container (the ENTRYPOINT with those args). buildah
    kills the process when it is signalled itself, so lib.stop()/cleanup end it."""
    cmd = BUILDAH + ["run", "--isolation", "chroot"]
    for v in volumes:
        cmd += ["-v", v]
    if user:
        cmd += ["--user", user]
    return lib.spawn(cmd + [_ctr, "--", "/kube-api-lb", *args], label=label)


def uid_of_listener(port):
    """(uid, gid) of the process that owns the TCP listener on `port`, from /proc."""
    inodes = set()
    for f in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(f) as fh:
            next(fh)
            for line in fh:
                cols = line.split()
                if cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(cols[9])
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    with open(f"/proc/{pid}/status") as st:
                        s = st.read()
                    uid = int(re.search(r"^Uid:\s+(\d+)", s, re.M).group(1))
                    gid = int(re.search(r"^Gid:\s+(\d+)", s, re.M).group(1))
                    return uid, gid
        except OSError:
            continue
    raise AssertionError(f"no process owns a listener on port {port}")


def http_get(port, path):
    return lib.http_get("127.0.0.1", port, path)


def endpoints():
    return ",".join(a.endpoint for a in _apiservers)


class ImageTest(unittest.TestCase):
    def test_list_gives_this_machines_image(self):
        arch = buildah("inspect", "--format", "{{.OCIv1.OS}}/{{.OCIv1.Architecture}}",
                       _ctr).strip()
        self.assertEqual(arch, f"linux/{HOST_ARCH}")
        from_id = buildah("inspect", "--format", "{{.FromImageID}}", _ctr).strip()
        native = buildah("images", "--no-trunc", "--quiet", f"{_tag}-{HOST_ARCH}").strip()
        self.assertEqual(f"sha256:{from_id}", native)

    def test_arm64_image(self):
        image = f"{_tag}-arm64"
        cfg = buildah("inspect", "--type", "image", "--format",
                      "{{.OCIv1.OS}}/{{.OCIv1.Architecture}}|{{.OCIv1.Config.Entrypoint}}|"
                      "{{.OCIv1.Config.User}}|{{.OCIv1.Config.Cmd}}", image).strip()
        self.assertEqual(cfg, "linux/arm64|[/kube-api-lb]||[]")
        ctr = buildah("from", "--platform", "linux/arm64", "--name",
                      f"kal-test-image-arm64-{os.getpid()}", image).strip()
        try:
            mnt = buildah("mount", ctr).strip()
            files = sorted(os.path.relpath(os.path.join(d, f), mnt)
                           for d, _, fs in os.walk(mnt) for f in fs)
            self.assertEqual(files, ["etc/group", "etc/passwd", "kube-api-lb"])
            binary = os.path.join(mnt, "kube-api-lb")
            header = subprocess.run(["readelf", "-hlW", binary], stdout=subprocess.PIPE,
                                    text=True, check=True).stdout
            self.assertRegex(header, r"Machine:\s+AArch64")
            self.assertNotIn("INTERP", header)
            # The image's own (stripped) bytes, under emulation: version, then proxying.
            out = subprocess.run(["qemu-aarch64-static", binary, "--version"],
                                 stdout=subprocess.PIPE, text=True, timeout=60, check=True)
            self.assertEqual(out.stdout.strip(), f"kube-api-lb {project_version()}")
            port, admin = lib.free_port(), lib.free_port()
            p = lib.spawn(["qemu-aarch64-static", binary, f"--endpoints={endpoints()}",
                           f"--listen=127.0.0.1:{port}", f"--admin-listen=127.0.0.1:{admin}"],
                          label="image-arm64")
            lib.wait_until(lambda: lib.is_listening(port) and lib.is_listening(admin)
                           or p.poll() is not None, 30, what="the arm64 image's binary to listen")
            self.assertIsNone(p.poll(), lib.read_log(p))
            lib.wait_until(lambda: http_get(admin, "/readyz")[0] == 200, 30, what="/readyz 200")
            self.check_proxying(port)
            lib.stop(p, timeout=20)
        finally:
            subprocess.run(BUILDAH + ["rm", ctr], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)

    def check_proxying(self, port):
        names = {a.name for a in _apiservers}
        seen = set()
        for _ in range(6):
            seen.add(lib.served_by("127.0.0.1", port, _certs))
        self.assertTrue(seen <= names, seen)
        # TLS passthrough: the apiserver sees the client's own certificate.
        st, _, body = lib.https_request("127.0.0.1", port, "/whoami", _certs)
        self.assertEqual(st, 200, body)
        who = json.loads(body)
        self.assertEqual(who["username"], "system:node:k8s-node4", who)

    def test_version_and_entrypoint(self):
        out = subprocess.run(BUILDAH + ["run", "--isolation", "chroot", _ctr, "--",
                                        "/kube-api-lb", "--version"],
                             stdout=subprocess.PIPE, text=True, timeout=60, check=True).stdout
        self.assertEqual(out.strip(), f"kube-api-lb {project_version()}")
        cfg = buildah("inspect", "--type", "image", "--format",
                      "{{.OCIv1.Config.Entrypoint}}|{{.OCIv1.Config.User}}|{{.OCIv1.Config.Cmd}}",
                      _tag).strip()
        self.assertEqual(cfg, "[/kube-api-lb]||[]")

    def test_dropin_with_kubespray_nginx_conf(self):
        # Kubespray's health port stays 8081 as rendered, so the drop-in is tested as deployed:
        # the admin server's default 127.0.0.1:8081 gives way to it (docs/kubespray.md).
        if lib.is_listening(8081):
            self.skipTest("port 8081 is in use on this machine; the drop-in needs it as rendered")
        port = lib.free_port()
        with open(os.path.join(lib.REPO, "tests", "data", "kubespray", "nginx.conf")) as f:
            conf = f.read()
        servers = iter(a.endpoint for a in _apiservers)
        conf, n = re.subn(r"server 192\.168\.10\.1[123]:6443;",
                          lambda m: f"server {next(servers)};", conf)
        self.assertEqual(n, 3)
        conf = conf.replace("listen        127.0.0.1:6443;", f"listen        127.0.0.1:{port};")
        self.assertNotIn("192.168.", conf)
        self.assertIn("listen 8081;", conf)
        etc_nginx = os.path.join(lib.tmpdir(), "etc-nginx")
        os.makedirs(etc_nginx, mode=0o700, exist_ok=True)
        os.chmod(etc_nginx, 0o700)  # as Kubespray creates it: root only
        with open(os.path.join(etc_nginx, "nginx.conf"), "w") as f:
            f.write(conf)

        # Kubespray's nginx-proxy manifest: no command, no args, /etc/nginx mounted read-only.
        p = run_image([], volumes=[f"{etc_nginx}:/etc/nginx:ro"], label="image-dropin")
        lib.wait_until(lambda: lib.is_listening(port) and lib.is_listening(8081)
                       or p.poll() is not None, 20, what="the drop-in to listen")
        self.assertIsNone(p.poll(), lib.read_log(p))
        self.assertIn("config=/etc/nginx/nginx.conf", lib.read_log(p))
        # Kubespray's probes: GET /healthz on the health port, on every address.
        self.assertEqual(http_get(8081, "/healthz")[0], 200)
        # The health port serves the admin endpoints to loopback peers (the node itself).
        # (/readyz answers 200 or 503 by the apiservers' health; anything but 404 means served.)
        self.assertEqual(http_get(8081, "/metrics")[0], 200)
        self.assertIn(http_get(8081, "/readyz")[0], (200, 503))
        self.check_proxying(port)
        self.assertEqual(uid_of_listener(port), (0, 0))  # no USER in the image
        lib.stop(p, timeout=20)

    def test_manifest_args_as_nonroot(self):
        port, admin = lib.free_port(), lib.free_port()
        out = subprocess.run(
            BUILDAH + ["run", "--isolation", "chroot", _ctr, "--", "/kube-api-lb", "manifest",
                       f"--endpoints={endpoints()}", f"--listen=127.0.0.1:{port}",
                       f"--admin-listen=127.0.0.1:{admin}"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        manifest = out.stdout
        self.assertIn("runAsUser: 65532", manifest)
        self.assertIn(f"image: {_tag}", manifest)  # the default image is this very tag
        block = re.search(r"^      args:\n((?:        - .*\n)+)", manifest, re.M)
        self.assertIsNotNone(block, manifest)
        args = [line.split("- ", 1)[1] for line in block.group(1).splitlines()]
        self.assertEqual(args, [f"--endpoints={endpoints()}", f"--listen=127.0.0.1:{port}",
                                f"--admin-listen=127.0.0.1:{admin}"])

        p = run_image(args, user="65532:65532", label="image-args")
        lib.wait_until(lambda: lib.is_listening(port) and lib.is_listening(admin)
                       or p.poll() is not None, 20, what="the proxy to listen")
        self.assertIsNone(p.poll(), lib.read_log(p))
        self.assertEqual(uid_of_listener(port), (65532, 65532))
        # The manifest's probes.
        self.assertEqual(http_get(admin, "/healthz")[0], 200)
        lib.wait_until(lambda: http_get(admin, "/readyz")[0] == 200, 15, what="/readyz 200")
        self.check_proxying(port)
        lib.stop(p, timeout=20)

    def test_manifest_config_hostpath_as_nonroot(self):
        port, admin = lib.free_port(), lib.free_port()
        conf_dir = os.path.join(lib.tmpdir(), "etc-kube-api-lb")
        os.makedirs(conf_dir, exist_ok=True)
        out = subprocess.run(
            BUILDAH + ["run", "--isolation", "chroot", "-v", f"{conf_dir}:/etc/kube-api-lb",
                       _ctr, "--", "/kube-api-lb", "manifest", f"--endpoints={endpoints()}",
                       f"--listen=127.0.0.1:{port}", f"--admin-listen=127.0.0.1:{admin}",
                       "--config-hostpath=/etc/kube-api-lb",
                       "--write-config=/etc/kube-api-lb/config.yaml",
                       "--output=/etc/kube-api-lb/kube-api-lb.yaml"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        with open(os.path.join(conf_dir, "config.yaml"), "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        self.assertEqual(os.stat(os.path.join(conf_dir, "config.yaml")).st_mode & 0o777, 0o644)
        with open(os.path.join(conf_dir, "kube-api-lb.yaml")) as f:
            manifest = f.read()
        self.assertIn(f'kube-api-lb.io/config-checksum: "{digest}"', manifest)
        self.assertIn("- --config=/etc/kube-api-lb/config.yaml", manifest)

        p = run_image(["--config=/etc/kube-api-lb/config.yaml"],
                      volumes=[f"{conf_dir}:/etc/kube-api-lb:ro"], user="65532:65532",
                      label="image-config")
        lib.wait_until(lambda: lib.is_listening(port) and lib.is_listening(admin)
                       or p.poll() is not None, 20, what="the proxy to listen")
        self.assertIsNone(p.poll(), lib.read_log(p))
        self.assertEqual(uid_of_listener(port), (65532, 65532))
        self.check_proxying(port)
        lib.stop(p, timeout=20)


if __name__ == "__main__":
    unittest.main(verbosity=2)
