#!/usr/bin/env bash
# Installs every Debian package kube-api-lb needs to build, run its demo, test and benchmark.
set -euo pipefail
PACKAGES=(
  # build
  build-essential cmake pkg-config clang-format
  libuv1-dev libnghttp2-dev libssl-dev nlohmann-json3-dev libyaml-cpp-dev doctest-dev libcli11-dev
  # demo and tests: real TLS stand-in apiservers (python3; python3-h2 for their HTTP/2), real
  # clients, network namespaces
  python3 python3-h2 openssl curl kubernetes-client iproute2 iptables procps
  # benchmarks: the baselines and load generators
  nginx libnginx-mod-stream haproxy wrk
  # failover benchmark (nft inside its namespace) and profiles (bench/profile.sh)
  nftables strace valgrind linux-perf
  # the container image: built and run with buildah (vfs storage, chroot isolation)
  buildah
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# kubectl may already be installed from elsewhere; then Debian's client is not needed.
if command -v kubectl >/dev/null 2>&1; then
  missing=("${missing[@]/kubernetes-client/}")
fi
if [ "${#missing[@]}" -gt 0 ] && [ -n "$(echo "${missing[@]}" | tr -d ' ')" ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2068
  apt-get install -y -qq --no-install-recommends ${missing[@]} >/dev/null
fi
# Debian's nginx package starts a default server on port 80 where a service manager exists; the
# project never uses it, and it must not hold ports our tests use.
