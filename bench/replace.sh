#!/usr/bin/env bash
# Pod replacement benchmark: kubelet's stop / wait / start sequence for kube-api-lb, nginx
# (Kubespray's nginx-proxy config) and HAProxy (Kubespray's config), side by side, with watches open
# and a TLS request every 20 ms; see bench/replace.py. REPLACE_TRIALS (2), REPLACE_GRACE (30 s),
# REPLACE_PROXIES (kube-api-lb,nginx,haproxy), REPLACE_JSON (raw results to a file).
# Writes the "replace" section of docs/benchmarks.md (REPLACE_DOC=- to skip).
# Debian packages: nginx libnginx-mod-stream haproxy python3 openssl
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$here/driver.sh"
run_driver "$here/replace.py" "$@"
