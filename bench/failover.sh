#!/usr/bin/env bash
# kube-api-lb failover benchmark: how fast kube-api-lb, nginx (Kubespray's nginx-proxy) and HAProxy
# (Kubespray's and a tuned config) steer new connections away from a hung, cut-off, refusing or
# draining apiserver, and how fast a stuck long-lived stream is closed so the client can reconnect.
# TLS stand-in apiservers from tests/tools/fake_apiserver.py; one of them in a network namespace this
# script creates (and deletes). Needs root. Writes the "Failover" section of docs/benchmarks.md.
# Debian packages: nginx libnginx-mod-stream haproxy python3 openssl iproute2 nftables
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
for tool in nginx haproxy python3 openssl ip nft; do
  command -v "$tool" >/dev/null 2>&1 || { echo "failover: error: $tool not found" >&2; exit 2; }
done
. "$here/driver.sh"
run_driver "$here/failover.py" "$@"
