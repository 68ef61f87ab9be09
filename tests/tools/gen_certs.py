#!/usr/bin/env python3
"""Generate the test PKI for kube-api-lb's integration tests and demo (openssl CLI, stdlib only).

    gen_certs.py OUT_DIR [--extra-san IP:1.2.3.4 --extra-san DNS:name ...] [--force]

Writes into OUT_DIR (created if missing):
  ca.crt / ca.key            a self-signed CA
  server.crt / server.key    apiserver serving cert, SANs: localhost, kubernetes, kubernetes.default(.svc...),
                             127.0.0.1, ::1, 127.0.0.11-13, 10.200.0.1-9, 10.200.1.1-9, 10.200.2.1-9
  client.crt / client.key    kubelet-style client cert: CN=system:node:k8s-node4, O=system:nodes
  health.crt / health.key    the proxy's health-checker client cert: CN=kube-api-lb-health-checker
  kubelet-bundle.pem         client.crt + client.key in one file (kubelet's client-current.pem layout)

Idempotent: if every file exists, the certs chain to the CA, and the server cert already carries the
requested SANs, nothing is rewritten. Files are written to a temporary directory and renamed into place,
so concurrent runs into the same directory never see half-written files.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

DAYS = "3650"
FILES = [
    "ca.crt", "ca.key", "server.crt", "server.key", "client.crt", "client.key", "health.crt",
    "health.key", "kubelet-bundle.pem"
]

CLIENT_SUBJECT = "/O=system:nodes/CN=system:node:k8s-node4"
HEALTH_SUBJECT = "/O=kube-api-lb/CN=kube-api-lb-health-checker"


def default_sans():
    sans = [
        "DNS:localhost", "DNS:kubernetes", "DNS:kubernetes.default", "DNS:kubernetes.default.svc",
        "DNS:kubernetes.default.svc.cluster.local", "DNS:lb-apiserver.kubernetes.local",
        "IP:127.0.0.1", "IP:::1", "IP:127.0.0.11", "IP:127.0.0.12", "IP:127.0.0.13"
    ]
    # Addresses the network-namespace tests may give their stand-in apiservers.
    for net in ("10.200.0", "10.200.1", "10.200.2"):
        sans += [f"IP:{net}.{i}" for i in range(1, 10)]
    return sans


def run(*args, cwd):
    r = subprocess.run(["openssl", *args], cwd=cwd, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        sys.stderr.write(f"gen_certs: openssl {' '.join(args)} failed:\n{r.stderr}")
        sys.exit(1)
    return r.stdout


def new_key(name, cwd):
    run("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", name, cwd=cwd)


def sign(cwd, name, subject, ext_lines):
    new_key(f"{name}.key", cwd)
    run("req", "-new", "-key", f"{name}.key", "-subj", subject, "-out", f"{name}.csr", cwd=cwd)
    with open(os.path.join(cwd, f"{name}.ext"), "w") as f:
        f.write("\n".join(ext_lines) + "\n")
    run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", DAYS, "-sha256", "-extfile", f"{name}.ext", "-out",
        f"{name}.crt", cwd=cwd)


def up_to_date(out, sans):
    if not all(os.path.exists(os.path.join(out, f)) for f in FILES):
        return False
    for c in ("server.crt", "client.crt", "health.crt"):
        r = subprocess.run(["openssl", "verify", "-CAfile", "ca.crt", c], cwd=out,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if r.returncode != 0:
            return False
    text = run("x509", "-in", "server.crt", "-noout", "-ext", "subjectAltName", cwd=out)
    have = {s.strip().replace("IP Address:", "IP:") for s in text.split("\n", 1)[-1].split(",")}
    # openssl prints ::1 as 0:0:0:0:0:0:0:1
    have = {("IP:::1" if s == "IP:0:0:0:0:0:0:0:1" else s) for s in have}
    return all(s in have for s in sans)


def generate(out, extra_sans=(), force=False):
    """Create (or keep) the PKI in `out`. Returns the directory path."""
    out = os.path.abspath(out)
    os.makedirs(out, exist_ok=True)
    sans = default_sans() + list(extra_sans)
    if not force and up_to_date(out, sans):
        return out
    tmp = tempfile.mkdtemp(prefix=".gen-", dir=out)
    try:
        new_key("ca.key", tmp)
        run("req", "-x509", "-new", "-key", "ca.key", "-subj", "/CN=kube-api-lb-test-ca", "-days",
            DAYS, "-sha256", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out", "ca.crt", cwd=tmp)
        sign(tmp, "server", "/CN=kube-apiserver", [
            "basicConstraints=CA:FALSE", "keyUsage=critical,digitalSignature,keyEncipherment",
            "extendedKeyUsage=serverAuth", "subjectAltName=" + ",".join(sans)
        ])
        client_ext = [
            "basicConstraints=CA:FALSE", "keyUsage=critical,digitalSignature,keyEncipherment",
            "extendedKeyUsage=clientAuth"
        ]
        sign(tmp, "client", CLIENT_SUBJECT, client_ext)
        sign(tmp, "health", HEALTH_SUBJECT, client_ext)
        with open(os.path.join(tmp, "kubelet-bundle.pem"), "w") as f:
            for part in ("client.crt", "client.key"):
                with open(os.path.join(tmp, part)) as p:
                    f.write(p.read())
        for f in FILES:
            os.chmod(os.path.join(tmp, f), 0o600 if f.endswith((".key", ".pem")) else 0o644)
        # CA first would let a concurrent reader pair a new CA with old leaves; rename leaves first.
        for f in reversed(FILES):
            os.replace(os.path.join(tmp, f), os.path.join(out, f))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--extra-san", action="append", default=[],
                    help="additional subjectAltName for the server cert, e.g. IP:10.9.0.1 or DNS:foo")
    ap.add_argument("--force", action="store_true", help="regenerate even if up to date")
    a = ap.parse_args()
    for s in a.extra_san:
        if not s.startswith(("IP:", "DNS:")):
            ap.error(f"--extra-san {s!r}: must start with IP: or DNS:")
    print(generate(a.out_dir, a.extra_san, a.force))


if __name__ == "__main__":
    main()
