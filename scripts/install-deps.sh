#!/usr/bin/env bash
# Installs every Debian package kube-api-lb needs to build, run its demo, test and benchmark.
set -euo pipefail
PACKAGES=(
  # build
  build-essential cmake pkg-config clang-format
  # the fuzzers (scripts/fuzz.sh): clang, its libFuzzer and sanitizer runtimes, and llvm-symbolizer
  # for readable stack traces of a failing input
  clang libclang-rt-14-dev llvm
  libuv1-dev libnghttp2-dev libssl-dev nlohmann-json3-dev libyaml-cpp-dev doctest-dev libcli11-dev
  # demo and tests: real TLS stand-in apiservers (python3; python3-h2 for their HTTP/2), real
  # clients, network namespaces
  python3 python3-h2 openssl curl kubernetes-client iproute2 iptables procps
  # benchmarks: the baselines and load generators
  nginx libnginx-mod-stream haproxy wrk
  # failover benchmark (nft inside its namespace) and profiles (bench/profile.sh)
  nftables strace valgrind linux-perf
  # the churn soak's plot (bench/soak_plot.py, run with /usr/bin/python3)
  python3-matplotlib
  # the container image: built and run with buildah (vfs storage, chroot isolation); its OCI
  # archive is copied with skopeo, as docs/kubespray.md publishes it
  buildah skopeo
  # the linux/arm64 image: cross-compiled with Debian's multiarch packages
  # (cmake/toolchain-aarch64-linux-gnu.cmake; yaml-cpp's arm64 archive comes below) and tested
  # under qemu-aarch64-static, called directly (no binfmt registration)
  crossbuild-essential-arm64 pkg-config:arm64
  libuv1-dev:arm64 libnghttp2-dev:arm64 libssl-dev:arm64
  qemu-user-static
  # the status page's browser test and README screenshot (headless chromium over the DevTools
  # protocol, spoken with python3-websocket; a font so the screenshot has glyphs), and the
  # operator kit's tests (a real Prometheus and promtool; python3-yaml reads the rule files)
  chromium python3-websocket fonts-dejavu-core prometheus python3-yaml
)
# The :arm64 packages need the arm64 package lists.
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  dpkg --add-architecture arm64
fi
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
# yaml-cpp's arm64 archive. libyaml-cpp-dev is not Multi-Arch: same, so its :arm64 package would
# replace the amd64 one (and the next install of the amd64 one would remove it again). Instead, the
# very same Debian package, at the amd64 one's version, is unpacked into a directory of its own that
# the arm64 toolchain file searches (KAL_ARM64_ROOT there).
arm64_root=/opt/kube-api-lb/arm64
yaml_version=$(dpkg-query -W -f='${Version}' libyaml-cpp-dev)
if [ "$(cat "$arm64_root/libyaml-cpp-dev.version" 2>/dev/null)" != "$yaml_version" ] ||
  [ ! -f "$arm64_root/usr/lib/aarch64-linux-gnu/libyaml-cpp.a" ]; then
  tmp=$(mktemp -d)
  chown _apt "$tmp" 2>/dev/null || true # apt downloads as _apt
  if ! (cd "$tmp" && apt-get download -qq "libyaml-cpp-dev:arm64=$yaml_version" 2>/dev/null); then
    apt-get update -qq
    (cd "$tmp" && apt-get download -qq "libyaml-cpp-dev:arm64=$yaml_version")
  fi
  rm -rf "$arm64_root"
  mkdir -p "$arm64_root"
  dpkg-deb -x "$tmp"/libyaml-cpp-dev_*_arm64.deb "$arm64_root"
  echo "$yaml_version" >"$arm64_root/libyaml-cpp-dev.version"
  rm -rf "$tmp"
fi
