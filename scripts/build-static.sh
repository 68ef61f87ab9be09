#!/usr/bin/env bash
# Compiles the static kube-api-lb binary (Release, -DKAL_STATIC=ON) for one architecture:
#
#   scripts/build-static.sh ARCH BUILD_DIR [TARGET...]      (default target: kube-api-lb)
#
# ARCH is a Debian architecture name: amd64 or arm64. The machine's own architecture builds
# natively; arm64 on amd64 is cross-compiled with cmake/toolchain-aarch64-linux-gnu.cmake (Debian's
# multiarch packages, installed by scripts/install-deps.sh), amd64 on arm64 (the Dockerfile on an
# arm64 buildx builder) with cmake/toolchain-x86_64-linux-gnu.cmake. Used by scripts/build-image.sh, the
# Dockerfile's build stage and tests/integration/test_arm64.py. KAL_JOBS: parallel jobs (nproc).
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 ARCH BUILD_DIR [TARGET...]" >&2
  exit 2
fi
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
arch=$1
dir=$2
shift 2
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(kube-api-lb)
host=$(dpkg --print-architecture)
args=(-G "Unix Makefiles" -DKAL_STATIC=ON -DCMAKE_BUILD_TYPE=Release)
case "$host/$arch" in
amd64/amd64 | arm64/arm64) ;;
amd64/arm64) args+=(-DCMAKE_TOOLCHAIN_FILE="$repo/cmake/toolchain-aarch64-linux-gnu.cmake") ;;
arm64/amd64) args+=(-DCMAKE_TOOLCHAIN_FILE="$repo/cmake/toolchain-x86_64-linux-gnu.cmake") ;;
*)
  echo "build-static: cannot build for '$arch' on $host (amd64 and arm64, natively or cross)" >&2
  exit 2
  ;;
esac
mkdir -p "$dir"
if ! cmake -S "$repo" -B "$dir" "${args[@]}" >"$dir/configure.log" 2>&1; then
  cat "$dir/configure.log" >&2
  echo "build-static: configuring $dir for $arch failed" >&2
  exit 1
fi
# Twice: the second pass recompiles anything whose sources were edited while the first ran (a
# shared working tree), so no object is built against a stale header.
for pass in 1 2; do
  if ! cmake --build "$dir" --target "${targets[@]}" -j"${KAL_JOBS:-$(nproc)}" \
    >"$dir/build-$pass.log" 2>&1; then
    tail -40 "$dir/build-$pass.log" >&2
    echo "build-static: compiling for $arch failed; full log: $dir/build-$pass.log" >&2
    exit 1
  fi
done
# (glibc's "Using 'getaddrinfo' in statically linked applications" link warnings are expected.)
