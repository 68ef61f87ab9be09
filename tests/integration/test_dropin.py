#!/usr/bin/env python3
"""Kubespray drop-in (issue 4): kube-api-lb started with NO arguments from Kubespray's own rendered
nginx.conf / haproxy.cfg (upstreams rewritten to loopback stand-in apiservers), found through the
search path (KUBE_API_LB_CONFIG_SEARCH_PATH stands in for /etc/kube-api-lb/config.yaml,
/etc/nginx/nginx.conf, /usr/local/etc/haproxy/haproxy.cfg), plus `check-config` on good and broken
files.

Run as root, the test re-executes itself in a private network namespace (unshare -n, lo up):
inside it, Kubespray's real ports 6443 and 8081 are tested untouched, and 127.0.0.1:8081 can be
held by "other software" while the health port is moved (the drop-in binds only the ports its file
names). Without root it runs in the current namespace and skips what needs that.
KAL_DROPIN_NETNS=0 forces the current namespace.
"""
import collections
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import unittest

NETNS_ENV = "KAL_DROPIN_NETNS"


def _enter_netns():
    """Re-executes this file in a new network namespace when possible; returns True inside one."""
    state = os.environ.get(NETNS_ENV)
    if state == "1":
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        return True
    if state == "0" or os.geteuid() != 0 or not shutil.which("unshare") or \
            not shutil.which("ip"):
        return False
    if subprocess.run(["unshare", "-n", "true"], stderr=subprocess.DEVNULL).returncode != 0:
        return False
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvpe("unshare", ["unshare", "-n", "--", sys.executable, os.path.abspath(__file__),
                           *sys.argv[1:]], dict(os.environ, **{NETNS_ENV: "1"}))


IN_NETNS = _enter_netns() if __name__ == "__main__" else False

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kal_testlib as kt  # noqa: E402


def kubespray_file(name):
    """Kubespray's rendered file: the repo's copy, else the shared reference."""
    for d in (os.path.join(kt.REPO, "tests", "data", "kubespray"),
              os.path.join(kt.REPO, "..", "shared", "reference", "kubespray"),
              "/work/shared/reference/kubespray"):
        p = os.path.join(d, name)
        if os.path.exists(p):
            with open(p) as f:
                return f.read()
    raise AssertionError(f"Kubespray's {name} not found")


def rewrite(text, pattern, repl, count):
    """re.subn that insists on exactly `count` replacements (so a changed Kubespray template
    fails loudly here instead of silently testing something else)."""
    out, n = re.subn(pattern, repl, text, flags=re.M)
    if n != count:
        raise AssertionError(f"rewrite {pattern!r}: {n} matches, expected {count}")
    return out


def listening_sockets():
    """{(address, port)} of every TCP socket in LISTEN state in this namespace, from /proc."""
    out = set()
    for path, fam in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    cols = line.split()
                    if cols[3] != "0A":
                        continue
                    h, p = cols[1].split(":")
                    raw = b"".join(struct.pack("<I", int(h[i:i + 8], 16))
                                   for i in range(0, len(h), 8))
                    out.add((socket.inet_ntop(fam, raw), int(p, 16)))
        except OSError:
            continue
    return out


def ss_listening():
    """`ss -Hltn` local addresses, or None if ss is missing."""
    if not shutil.which("ss"):
        return None
    r = subprocess.run(["ss", "-Hltn"], stdout=subprocess.PIPE, text=True, timeout=10)
    return {line.split()[3] for line in r.stdout.splitlines() if len(line.split()) >= 4}


def ss_pids_on(port):
    """`ss -Hltnp` lines of listening sockets on `port` (with their "pid=N" users), or "" if ss is
    missing."""
    if not shutil.which("ss"):
        return ""
    r = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], stdout=subprocess.PIPE, text=True,
                       timeout=10)
    return r.stdout


class DropIn(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.certs = kt.make_certs()

    # ------------------------------------------------------------ helpers
    def apiservers(self, listens):
        """Stand-in apiservers that, like kube-apiserver, ask for a client certificate but do not
        require one (health checks from nginx.conf's defaults present none); -v logs requests."""
        return [kt.FakeApiserver(f"s{i + 1}", self.certs, listen=[l],
                                 args=["--no-client-cert-required", "-v"])
                for i, l in enumerate(listens)]

    def write(self, name, text):
        d = os.path.join(kt.tmpdir(), f"case-{self.id().rsplit('.', 1)[-1]}")
        os.makedirs(d, exist_ok=True)
        p = os.path.join(d, name)
        with open(p, "w") as f:
            f.write(text)
        return p

    def start_noargs(self, search, wait_ports, endpoints_up=3):
        """kube-api-lb with no arguments at all and the given search path; returns once it listens
        on `wait_ports` and its first health checks found `endpoints_up` endpoints up (until then
        an endpoint is not picked, and a spread right after start would miss it)."""
        env = dict(os.environ, KUBE_API_LB_CONFIG_SEARCH_PATH=":".join(search))
        p = kt.spawn(kt.proxy_cmd(), env=env, label="kube-api-lb")
        self.addCleanup(lambda: p.poll() is None and kt.stop(p))

        def up():
            if p.poll() is not None:
                raise AssertionError(f"kube-api-lb exited ({p.returncode}):\n{kt.read_log(p)}")
            first_up = [ln for ln in kt.read_log(p).splitlines()
                        if 'msg="health first check"' in ln and " health=up " in ln]
            return (all(kt.is_listening(port) for port in wait_ports) and
                    len(first_up) >= endpoints_up)
        kt.wait_until(up, 10, what=f"kube-api-lb to listen on {wait_ports} with "
                                   f"{endpoints_up} endpoints up")
        return p

    def assert_detected(self, proc, path, fmt):
        lines = [ln for ln in kt.read_log(proc).splitlines()
                 if "running from detected configuration" in ln]
        self.assertEqual(len(lines), 1, kt.read_log(proc))
        self.assertIn(f"config={path}", lines[0])
        self.assertIn(f"format={fmt}", lines[0])

    def curl_whoami(self, host, port):
        """curl with the kubelet client certificate through the proxy; returns the /whoami JSON."""
        url = f"https://{kt.hostport(host, port)}/whoami"
        r = kt.curl("--cacert", self.certs.ca, "--cert", self.certs.client_crt, "--key",
                    self.certs.client_key, "-w", "\n%{http_code}", "--max-time", "10", url)
        self.assertEqual(r.returncode, 0, f"curl {url}: {r.stderr.decode()}")
        body, _, code = r.stdout.decode().rpartition("\n")
        self.assertEqual(code, "200", f"curl {url}: {r.stdout!r}")
        who = json.loads(body)
        # The apiserver saw the client certificate: TLS went through untouched.
        self.assertEqual(who["username"], "system:node:k8s-node4", who)
        self.assertIn("system:nodes", who["groups"], who)
        self.assertFalse(who["anonymous"], who)
        return who

    def curl_healthz(self, host, port):
        url = f"http://{kt.hostport(host, port)}/healthz"
        r = kt.curl("-w", "\n%{http_code}", "--max-time", "10", url)
        self.assertEqual(r.returncode, 0, f"curl {url}: {r.stderr.decode()}")
        self.assertTrue(r.stdout.decode().endswith("\n200"), f"curl {url}: {r.stdout!r}")

    def assert_bound(self, want, not_want=()):
        socks = listening_sockets()
        for a in want:
            self.assertIn(a, socks, f"no listening socket {a}; have {sorted(socks)}")
        for a in not_want:
            self.assertNotIn(a, socks, f"unexpected listening socket {a}")
        ss = ss_listening()
        if ss is not None:
            for host, port in want:
                shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
                self.assertTrue(shown in ss or (host == "::" and f"*:{port}" in ss),
                                f"ss -ltn does not show {shown}: {sorted(ss)}")

    def spread(self, host, port, names, admin_port, n=12,
               why="least_conn shares idle endpoints"):
        """n sequential new connections must reach every one of `names`. With admin_port, each
        starts only once the proxy has no connection open, so every pick is among idle
        endpoints (deterministic)."""
        got = collections.Counter()
        for _ in range(n):
            if admin_port:
                kt.wait_until(lambda: self.active_connections(admin_port) == 0, 5,
                              what="no open connection")
            got[kt.served_by(host, port, self.certs)] += 1
        self.assertEqual(set(got), set(names), f"{why}: {n} sequential connections went {got}")

    def active_connections(self, admin_port):
        st, body = self.admin(admin_port, "/metrics")
        self.assertEqual(st, 200)
        return kt.metric(kt.parse_prometheus(body), "kube_api_lb_active_connections")

    def stop_clean(self, proc):
        self.assertEqual(kt.stop(proc), 0, kt.read_log(proc)[-2000:])

    # ------------------------------------------------------------ nginx.conf
    def nginx_conf(self, endpoints, port, health_port):
        """Kubespray's nginx.conf with its three upstreams replaced by `endpoints` (HOST:PORT)."""
        text = kubespray_file("nginx.conf")
        eps = iter(endpoints)
        text = rewrite(text, r"^(\s*server\s+)192\.168\.10\.1[123]:6443;",
                       lambda m: f"{m.group(1)}{next(eps)};", 3)
        text = rewrite(text, r"^(\s*listen\s+)127\.0\.0\.1:6443;", rf"\g<1>127.0.0.1:{port};", 1)
        return rewrite(text, r"^(\s*listen\s+)8081;", rf"\g<1>{health_port};", 1)

    def test_nginx_conf_no_arguments(self):
        apis = self.apiservers([f"127.0.0.1{i}:0" for i in (1, 2, 3)])
        port, health = kt.free_port(), kt.free_port()
        if IN_NETNS:
            # Why users move the health port: something else holds 8081. The drop-in must not
            # open a port of its own there.
            other = socket.socket()
            other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            other.bind(("127.0.0.1", 8081))
            other.listen(1)
            self.addCleanup(other.close)
        conf = self.write("nginx.conf", self.nginx_conf([a.endpoint for a in apis], port, health))
        missing_yaml = os.path.join(os.path.dirname(conf), "kube-api-lb", "config.yaml")
        missing_cfg = os.path.join(os.path.dirname(conf), "haproxy", "haproxy.cfg")
        p = self.start_noargs([missing_yaml, conf, missing_cfg], [port, health])
        self.assert_detected(p, conf, "nginx")
        started = [ln for ln in kt.read_log(p).splitlines() if 'msg="kube-api-lb started"' in ln]
        self.assertEqual(len(started), 1)
        self.assertIn(f"listen=127.0.0.1:{port} ", started[0])
        self.assertIn("endpoints=" + ",".join(a.endpoint for a in apis), started[0])
        self.assertIn("policy=least-conn", started[0])
        # curl with the client certificate through 127.0.0.1:<port>.
        who = self.curl_whoami("127.0.0.1", port)
        self.assertIn(who["apiserver"], {"s1", "s2", "s3"})
        self.spread("127.0.0.1", port, ["s1", "s2", "s3"], health)
        # kubectl as kubelet would use it.
        kc = kt.write_kubeconfig(os.path.join(os.path.dirname(conf), "kubeconfig"),
                                 f"https://127.0.0.1:{port}", self.certs)
        r = subprocess.run(["kubectl", f"--kubeconfig={kc}", "get", "--raw", "/version"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=30) \
            if shutil.which("kubectl") else None
        if r is not None:
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("v1.31.0-fake-s", r.stdout)
        # /healthz on the health port, on all addresses as Kubespray's probes expect.
        self.curl_healthz("127.0.0.1", health)
        self.curl_healthz("127.0.0.2", health)  # any local address reaches a 0.0.0.0 bind
        self.assert_bound([("0.0.0.0", health), ("127.0.0.1", port)],
                          not_want=[("0.0.0.0", port)])
        # nginx.conf has no health checks: kube-api-lb's defaults (GET /readyz) run, and the
        # health port reports them to loopback clients; no admin port of its own was opened.
        kt.wait_until(lambda: self.admin(health, "/readyz")[0] == 200, 10, what="/readyz 200")
        self.assertNotIn(f"pid={p.pid},", ss_pids_on(8081))
        for a in apis:
            kt.wait_until(lambda: "GET /readyz user=system:anonymous" in a.log(), 10,
                          what=f"a health check of {a.name}")
        self.stop_clean(p)

    def test_nginx_conf_reload(self):
        """The drop-in follows Kubespray rewriting nginx.conf (an atomic rename, as Ansible's
        template module does): a server removed from the upstream stops getting clients; a
        broken rewrite is rejected with FILE:LINE:COL and the running configuration stays."""
        apis = self.apiservers([f"127.0.0.1{i}:0" for i in (1, 2, 3)])
        port, health = kt.free_port(), kt.free_port()
        text = self.nginx_conf([a.endpoint for a in apis], port, health)
        conf = self.write("nginx.conf", text)
        p = self.start_noargs([conf], [port, health])
        self.spread("127.0.0.1", port, ["s1", "s2", "s3"], health)

        def install(new_text):
            with open(conf + ".tmp", "w") as f:
                f.write(new_text)
            os.rename(conf + ".tmp", conf)

        def wait_line(pattern):
            return kt.wait_until(
                lambda: next((ln for ln in kt.read_log(p).splitlines() if re.search(pattern, ln)),
                             None), 5, what=f"log line {pattern}")
        install(rewrite(text, rf"^\s*server\s+{re.escape(apis[2].endpoint)};\n", "", 1))
        wait_line(r'msg="configuration reloaded".*endpoints=2')
        self.spread("127.0.0.1", port, ["s1", "s2"], health)
        sni = rewrite(text, r"^(\s*)proxy_pass(\s+)kube_apiserver;$",
                      r"\g<0>\n\g<1>ssl_preread on;", 1)
        line = sni.splitlines().index("    ssl_preread on;") + 1
        install(sni)
        bad = wait_line(r'msg="configuration reload rejected')
        self.assertIn(f"{conf}:{line}:5: ", bad)
        self.assertIn("ssl_preread", bad)
        self.spread("127.0.0.1", port, ["s1", "s2"], health)
        self.curl_healthz("127.0.0.1", health)
        m = kt.parse_prometheus(self.admin(health, "/metrics")[1])
        self.assertEqual(kt.metric(m, "kube_api_lb_config_reloads_total"), 1)
        self.assertEqual(kt.metric(m, "kube_api_lb_config_reload_failures_total"), 1)
        self.stop_clean(p)

    def admin(self, port, path):
        return kt.http_get("127.0.0.1", port, path)

    def test_nginx_conf_dual_stack(self):
        # Kubespray's dual-stack rendering: an IPv6 upstream in brackets, the stream server on
        # 127.0.0.1 and [::1], the health server on 8081 and [::]:8081.
        apis = self.apiservers(["[::1]:0", "127.0.0.12:0", "127.0.0.13:0"])
        port, health = kt.free_port_both(), kt.free_port_both()
        text = self.nginx_conf([a.endpoint for a in apis], port, health)
        text = rewrite(text, rf"^(\s*)listen(\s+)127\.0\.0\.1:{port};",
                       rf"\g<0>\n\g<1>listen\g<2>[::1]:{port};", 1)
        text = rewrite(text, rf"^(\s*)listen {health};", rf"\g<0>\n\g<1>listen [::]:{health};", 1)
        self.assertIn(f"server [::1]:{apis[0].port};", text)
        conf = self.write("nginx.conf", text)
        missing = os.path.join(os.path.dirname(conf), "missing.yaml")
        p = self.start_noargs([missing, conf], [port, health])
        self.assert_detected(p, conf, "nginx")
        for host in ("127.0.0.1", "::1"):
            self.curl_whoami(host, port)
            self.curl_healthz(host, health)
        self.spread("127.0.0.1", port, ["s1", "s2", "s3"], health)  # s1: the IPv6 upstream
        self.spread("::1", port, ["s1", "s2", "s3"], health)
        self.assert_bound([("0.0.0.0", health), ("::", health), ("127.0.0.1", port),
                           ("::1", port)], not_want=[("0.0.0.0", port), ("::", port)])
        self.stop_clean(p)

    def test_nginx_conf_kubespray_ports_untouched(self):
        """Only the upstream servers rewritten: 127.0.0.1:6443 and the health port 8081 as
        Kubespray renders them (needs a private namespace for those ports)."""
        if not IN_NETNS:
            self.skipTest("needs a private network namespace (root) for ports 6443 and 8081")
        apis = self.apiservers([f"127.0.0.1{i}:6443" for i in (1, 2, 3)])
        text = kubespray_file("nginx.conf")
        text = rewrite(text, r"192\.168\.10\.(1[123]):6443", r"127.0.0.\1:6443", 3)
        conf = self.write("nginx.conf", text)
        p = self.start_noargs([conf], [6443, 8081])
        self.assert_detected(p, conf, "nginx")
        self.curl_whoami("127.0.0.1", 6443)
        self.spread("127.0.0.1", 6443, ["s1", "s2", "s3"], 8081)  # /metrics on the health port
        self.curl_healthz("127.0.0.1", 8081)
        self.assert_bound([("0.0.0.0", 8081), ("127.0.0.1", 6443)])
        self.stop_clean(p)

    # ------------------------------------------------------------ haproxy.cfg
    def test_haproxy_cfg_no_arguments(self):
        apis = self.apiservers([f"127.0.0.1{i}:0" for i in (1, 2, 3)])
        port, health = kt.free_port(), kt.free_port()
        text = kubespray_file("haproxy.cfg")
        eps = iter(a.endpoint for a in apis)
        text = rewrite(text, r"^(\s*server\s+k8s-node\d\s+)192\.168\.10\.1[123]:6443",
                       lambda m: f"{m.group(1)}{next(eps)}", 3)
        text = rewrite(text, r"^(\s*bind\s+)127\.0\.0\.1:6443$", rf"\g<1>127.0.0.1:{port}", 1)
        text = rewrite(text, r"^(\s*bind\s+)0\.0\.0\.0:8081$", rf"\g<1>0.0.0.0:{health}", 1)
        cfg = self.write("haproxy.cfg", text)
        d = os.path.dirname(cfg)
        p = self.start_noargs([os.path.join(d, "config.yaml"), os.path.join(d, "nginx.conf"),
                               cfg], [port, health])
        self.assert_detected(p, cfg, "haproxy")
        self.curl_whoami("127.0.0.1", port)
        # Kubespray's default-server has "slowstart 60s"; HAProxy never applies slowstart when
        # it starts (only to a server that was seen failed), so idle endpoints share at once.
        self.spread("127.0.0.1", port, ["s1", "s2", "s3"], health,
                    why="HAProxy semantics: slowstart does not apply at start-up")
        # The monitor-uri frontend became the /healthz listener, on all addresses.
        self.curl_healthz("127.0.0.1", health)
        self.curl_healthz("127.0.0.2", health)
        self.assert_bound([("0.0.0.0", health), ("127.0.0.1", port)],
                          not_want=[("0.0.0.0", port)])
        # `option httpchk GET /healthz` + check-ssl: the checks are HTTPS GET /healthz.
        for a in apis:
            kt.wait_until(lambda: "GET /healthz user=system:anonymous" in a.log(), 10,
                          what=f"a /healthz health check of {a.name}")
            self.assertNotIn("GET /readyz", a.log())
        self.stop_clean(p)

    # ------------------------------------------------------------ nothing found
    def test_no_config_anywhere(self):
        d = os.path.join(kt.tmpdir(), "empty")
        os.makedirs(os.path.join(d, "nginx"), exist_ok=True)  # a directory is not a config
        paths = [os.path.join(d, "kube-api-lb", "config.yaml"), os.path.join(d, "nginx"),
                 os.path.join(d, "haproxy.cfg")]
        env = dict(os.environ, KUBE_API_LB_CONFIG_SEARCH_PATH=":".join(paths))
        r = kt.run_kal([], env=env, timeout=10)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertEqual(r.stdout, "")
        self.assertLess(r.elapsed, 5)
        lines = r.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, r.stderr)
        self.assertTrue(lines[0].startswith("kube-api-lb: error: "), lines[0])
        for path in paths:
            self.assertIn(path, lines[0])

    # ------------------------------------------------------------ check-config
    def check(self, path, *extra):
        return kt.run_kal(["check-config", f"--config={path}", *extra], timeout=10)

    def assert_valid(self, path, expect):
        r = self.check(path)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("kube-api-lb: configuration", r.stderr)
        self.assertIn("is valid", r.stderr)
        out = r.stdout
        self.assertIn("apiVersion: kubeapilb.config.k8s.io/v1alpha1\n", out)
        self.assertIn("kind: KubeAPILBConfiguration\n", out)
        for s in expect:
            self.assertIn(s, out, f"check-config {path}:\n{out}")
        # The effective YAML is itself a valid config with the same settings.
        again = self.write("effective.yaml", out)
        r2 = self.check(again)
        self.assertEqual(r2.returncode, 0, r2.stderr)
        strip = lambda s: [ln for ln in s.splitlines() if not ln.startswith("#")]  # noqa: E731
        self.assertEqual(strip(r2.stdout), strip(out))
        return out

    def assert_invalid(self, path, line, col, message):
        r = self.check(path)
        self.assertEqual(r.returncode, 1, f"{path}: {r.stderr}")
        self.assertEqual(r.stdout, "", "nothing on stdout for an invalid file")
        err = r.stderr.strip().splitlines()
        self.assertEqual(len(err), 1, r.stderr)
        self.assertRegex(err[0], r"^kube-api-lb: configuration invalid: " + re.escape(
            f"{path}:{line}:{col}: ") + message)

    def test_check_config_good_files(self):
        eps = ["127.0.0.11:16001", "127.0.0.12:16002", "127.0.0.13:16003"]

        ng = self.write("nginx.conf", self.nginx_conf(eps, 16443, 18081))
        out = self.assert_valid(ng, [f'  - "{e}"' for e in eps] + [
            'listen:\n  - "127.0.0.1:16443"', "policy: least-conn", "connectTimeout: 1s",
            "idleTimeout: 10m", 'healthzListen:\n    - "0.0.0.0:18081"'])
        self.assertIn("# effective configuration; source: " + ng, out)
        text = kubespray_file("haproxy.cfg")
        it = iter(eps)
        text = rewrite(text, r"192\.168\.10\.1[123]:6443", lambda m: next(it), 3)
        hp = self.write("haproxy.cfg", text)
        self.assert_valid(hp, [f'  - "{e}"' for e in eps] + [
            "policy: least-conn", "connectTimeout: 30s", "path: /healthz", "interval: 15s",
            'healthzListen:\n    - "0.0.0.0:8081"'])
        y = self.write("config.yaml", "apiVersion: kubeapilb.config.k8s.io/v1alpha1\n"
                       "kind: KubeAPILBConfiguration\n"
                       f"endpoints: [{', '.join(eps)}]\n"
                       "policy: first\ndrainTimeout: 2s\n")
        self.assert_valid(y, [f'  - "{e}"' for e in eps] + ["policy: first",
                                                             "drainTimeout: 2s"])

    def test_check_config_broken_files(self):
        head = "apiVersion: kubeapilb.config.k8s.io/v1alpha1\nkind: KubeAPILBConfiguration\n" \
               "endpoints: [127.0.0.11:6443]\n"
        self.assert_invalid(self.write("unknown.yaml", head + "policy: first\nconectTimeout: 1s\n"),
                            5, 1, r'unknown field "conectTimeout" \(did you mean "connectTimeout"')
        self.assert_invalid(self.write("syntax.yaml", head + "policy: first: x\n"), 4, 14,
                            "YAML syntax error")
        self.assert_invalid(self.write("badport.yaml", head.replace("6443]", "70000]")), 3, 13,
                            r".*70000.*out of range")
        ng = kubespray_file("nginx.conf")
        sni = rewrite(ng, r"^(\s*)proxy_pass(\s+)kube_apiserver;$",
                      r"\g<0>\n\g<1>ssl_preread on;", 1)
        line = sni.splitlines().index("    ssl_preread on;") + 1
        self.assert_invalid(self.write("sni.conf", sni), line, 5, '"ssl_preread" is not supported')
        port = rewrite(ng, r"192\.168\.10\.12:6443", "192.168.10.12:76443", 1)
        line = next(i + 1 for i, ln in enumerate(port.splitlines()) if "76443" in ln)
        self.assert_invalid(self.write("port.conf", port), line, 12, r"server: .*out of range")
        unclosed = "\n".join(ng.splitlines()[:17]) + "\n"  # inside the upstream block
        self.assert_invalid(self.write("unclosed.conf", unclosed), 14, 3,
                            r'block "upstream" opened here is never closed')
        hp = kubespray_file("haproxy.cfg")
        bal = rewrite(hp, r"^(\s*balance\s+)leastconn$", r"\g<1>source", 1)
        line = next(i + 1 for i, ln in enumerate(bal.splitlines()) if "balance" in ln)
        self.assert_invalid(self.write("balance.cfg", bal), line, 11,
                            r'balance "source" is not supported')
        noport = rewrite(hp, r"(k8s-node2 192\.168\.10\.12):6443", r"\1", 1)
        line = next(i + 1 for i, ln in enumerate(noport.splitlines()) if "k8s-node2" in ln)
        self.assert_invalid(self.write("noport.cfg", noport), line, 20, r".*has no port")


if __name__ == "__main__":
    kt.main()
