#!/usr/bin/env python3
"""`kube-api-lb prepare-state-dir`, the generated manifest's init container (issue 18's state file
in the shipped deployment).

kubelet creates a DirectoryOrCreate hostPath as root, mode 0755, and fsGroup does not apply to
hostPath volumes, so the proxy (uid 65532, no capabilities) could not write its last-known-good
state there. The init container runs the real binary as root with CAP_CHOWN and CAP_FOWNER only
(here: setpriv's bounding set, what the container runtime gives it); the proxy's user, with no
capability at all, must then be able to create and atomically replace its state file there.
Needs root (it changes owners); skipped otherwise, saying why.
"""
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kal_testlib as kt  # noqa: E402

INIT_CAPS = "-all,+chown,+fowner"  # the manifest's initContainers[0] securityContext
PROXY = ["setpriv", "--reuid=65532", "--regid=65532", "--clear-groups", "--bounding-set=-all"]


def init(*args, caps=INIT_CAPS):
    return subprocess.run(["setpriv", f"--bounding-set={caps}", *kt.proxy_cmd(
        "prepare-state-dir", *args)], capture_output=True, text=True, timeout=15)


def as_proxy_user(script):
    """Runs a shell snippet as the proxy's user with no capabilities; returns CompletedProcess."""
    return subprocess.run([*PROXY, "sh", "-c", script], capture_output=True, text=True,
                          timeout=15)


@unittest.skipUnless(os.geteuid() == 0, "changes file owners: needs root")
class PrepareStateDir(unittest.TestCase):
    def setUp(self):
        # In /tmp itself: the proxy's user must be able to reach it, as /var/lib.
        self.parent = tempfile.mkdtemp(prefix="kal-state-")
        self.addCleanup(shutil.rmtree, self.parent, True)
        os.chmod(self.parent, 0o755)
        self.dir = os.path.join(self.parent, "kube-api-lb")

    def owner_mode(self, path):
        st = os.lstat(path)
        return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)

    def test_kubelet_made_directory_becomes_the_proxys(self):
        os.mkdir(self.dir, 0o755)  # what DirectoryOrCreate leaves: root's, 0755
        before = as_proxy_user(f"touch {self.dir}/state.json.tmp")
        self.assertNotEqual(before.returncode, 0, "the proxy's user could write there already: "
                            "the scenario did not set up")
        r = init(f"--dir={self.dir}")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("handed over to 65532:65532, mode 0750", r.stdout)
        self.assertEqual(self.owner_mode(self.dir), (65532, 65532, 0o750))
        # What the proxy's state writer does: a temporary file, then rename over the old state.
        w = as_proxy_user(f"echo one > {self.dir}/state.json.tmp && "
                          f"mv {self.dir}/state.json.tmp {self.dir}/state.json && "
                          f"echo two > {self.dir}/state.json.tmp && "
                          f"mv {self.dir}/state.json.tmp {self.dir}/state.json && "
                          f"cat {self.dir}/state.json")
        self.assertEqual((w.returncode, w.stdout), (0, "two\n"), w.stderr)
        # The next start (a restart of the pod): nothing to do, the state is untouched.
        again = init(f"--dir={self.dir}")
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertIn("already owned by 65532:65532", again.stdout)
        with open(os.path.join(self.dir, "state.json")) as f:
            self.assertEqual(f.read(), "two\n")

    def test_missing_directory_is_created(self):
        r = init(f"--dir={self.dir}", "--owner=1000:2000")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("created, owned by 1000:2000, mode 0750", r.stdout)
        self.assertEqual(self.owner_mode(self.dir), (1000, 2000, 0o750))

    def test_shared_or_foreign_directories_are_refused(self):
        # A --state-file in /etc/kubernetes or /var/lib must not give that directory away.
        os.mkdir(self.dir, 0o755)
        with open(os.path.join(self.dir, "admin.conf"), "w"):
            pass
        r = init(f"--dir={self.dir}")
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn('holds other files ("admin.conf"): refusing to give a shared directory to '
                      "65532:65532", r.stderr)
        self.assertEqual(self.owner_mode(self.dir), (0, 0, 0o755))
        # Not root's (kubelet makes it root's) nor already the proxy's: not ours to take.
        other = os.path.join(self.parent, "other")
        os.mkdir(other, 0o700)
        os.chown(other, 1234, 1234)
        r = init(f"--dir={other}")
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("is owned by 1234:1234, neither root (as kubelet creates it) nor "
                      "65532:65532", r.stderr)
        self.assertEqual(self.owner_mode(other), (1234, 1234, 0o700))

    def test_already_owned_with_a_loose_mode_is_tightened(self):
        # Someone did chown 65532 and chmod 777 by hand: anyone could plant the state.
        os.mkdir(self.dir)
        os.chown(self.dir, 65532, 65532)
        os.chmod(self.dir, 0o777)
        r = init(f"--dir={self.dir}")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("already owned by 65532:65532, mode set to 0750", r.stdout)
        self.assertEqual(self.owner_mode(self.dir), (65532, 65532, 0o750))

    def test_without_its_capabilities_it_says_which_one(self):
        os.mkdir(self.dir, 0o755)
        r = init(f"--dir={self.dir}", caps="-all")
        self.assertEqual(r.returncode, 1)
        self.assertIn(f"chown 65532:65532 {self.dir}: Operation not permitted (the init container "
                      "needs CAP_CHOWN)", r.stderr)
        self.assertEqual(os.lstat(self.dir).st_uid, 0)

    def test_bad_input(self):
        os.symlink("/etc", self.dir)
        cases = [
            ([f"--dir={self.dir}"], 1, "is a symbolic link: refusing to hand over what it points to"),
            ([f"--dir={self.dir}/"], 2, "without a trailing '/'"),
            ([f"--dir={self.parent}/../x"], 2, "must be a plain absolute path"),
            (["--dir=/"], 2, "without a trailing '/'"),
            (["--dir=relative/dir"], 2, "--dir: must be an absolute path"),
            ([f"--dir={self.parent}/x", "--owner=0:0"], 2, "--owner: expected UID:GID with ids"),
            ([f"--dir={self.parent}/x", "--owner=65532"], 2, "--owner: expected UID:GID (e.g."),
            ([], 2, "--dir is required"),
        ]
        for args, code, text in cases:
            with self.subTest(args=args):
                r = init(*args)
                self.assertEqual(r.returncode, code, r.stderr)
                self.assertIn(text, r.stderr)
                self.assertEqual(r.stderr.count("\n"), 1, r.stderr)
        self.assertEqual(os.lstat("/etc").st_uid, 0, "followed the symlink")
        with open(os.path.join(self.parent, "file"), "w"):
            pass
        r = init(f"--dir={self.parent}/file")
        self.assertEqual(r.returncode, 1)
        self.assertIn("exists and is not a directory", r.stderr)


if __name__ == "__main__":
    kt.main()
