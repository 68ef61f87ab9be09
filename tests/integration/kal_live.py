"""A running kube-api-lb from a YAML file in front of three stand-in apiservers
(tests/tools/fake_apiserver.py, real TLS), with fast health checks: the scene the status page's
browser test, the README screenshot and the Prometheus test look at. Loopback only."""
import os
import signal

import kal_testlib as kt


def config_text(listen, endpoints, admin, certs, extra=""):
    eps = ", ".join(f'"{e}"' for e in endpoints)
    return f"""apiVersion: kubeapilb.config.k8s.io/v1alpha1
kind: KubeAPILBConfiguration
listen: ["{listen}"]
endpoints: [{eps}]
healthCheck:
  mode: https
  path: /readyz
  interval: 500ms
  fastInterval: 100ms
  downInterval: 250ms
  caFile: {certs.ca}
  clientCert: {certs.health_crt}
  clientKey: {certs.health_key}
admin:
  listen: ["{admin}"]
{extra}"""


class LiveProxy:
    """Apiservers a, b, c and a kube-api-lb from <config_dir>/config.yaml. `config_dir_name` may
    be anything a directory can be called (the hostile-input test puts markup in it: it reaches
    the page as the config source)."""

    def __init__(self, config_dir_name="config", names=("a", "b", "c")):
        self.certs = kt.make_certs()
        self.apis = kt.start_apiservers(self.certs, list(names))
        self.dir = os.path.join(kt.tmpdir(), config_dir_name)
        os.makedirs(self.dir, exist_ok=True)
        self.path = os.path.join(self.dir, "config.yaml")
        self.port = kt.free_port()
        self.admin_port = kt.free_port()
        self.listen = f"127.0.0.1:{self.port}"
        self.admin = f"127.0.0.1:{self.admin_port}"
        self.endpoints = [self.apis[n].endpoint for n in names]
        self.write(config_text(self.listen, self.endpoints, self.admin, self.certs))
        self.proc = kt.spawn(kt.proxy_cmd(f"--config={self.path}"), label="kube-api-lb")
        kt.wait_port("127.0.0.1", self.admin_port, proc=self.proc)
        kt.wait_until(lambda: all(e["health"] == "up" for e in self.stats()["endpoints"]), 15,
                      what="every endpoint up")

    def write(self, text):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.rename(tmp, self.path)

    def reload(self):
        os.kill(self.proc.pid, signal.SIGHUP)

    def url(self, path="/"):
        return f"http://{self.admin}{path}"

    def get(self, path):
        return kt.http_get("127.0.0.1", self.admin_port, path)

    def stats(self):
        import json
        st, body = self.get("/stats")
        assert st == 200, f"/stats answered {st}"
        return json.loads(body)

    def traffic(self, n=5):
        """A few requests through the proxy, so connections and bytes are not all zero."""
        for _ in range(n):
            kt.https_request("127.0.0.1", self.port, "/version", self.certs)

    def log(self):
        return kt.read_log(self.proc)

    def stop(self):
        """Stops kube-api-lb and asserts a clean exit (0: no sanitizer report, no leak)."""
        code = kt.stop(self.proc)
        if code != 0:
            raise AssertionError(f"kube-api-lb exited with {code}:\n{self.log()[-3000:]}")
