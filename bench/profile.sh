#!/usr/bin/env bash
# Profile kube-api-lb under the benchmark loads: bench/profile.sh [syscalls|callgrind|perf] [load...]
# (loads: keepalive connclose bulk idle). See bench/profile.py. Needs strace / valgrind / perf.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python3 "$here/profile.py" "$@" &
driver=$!
cleanup() {
  if kill -0 "$driver" 2>/dev/null; then
    kill -TERM "$driver" 2>/dev/null || true
    wait "$driver" 2>/dev/null || true
  fi
}
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM
set +e
wait "$driver"
rc=$?
set -e
exit "$rc"
