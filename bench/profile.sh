#!/usr/bin/env bash
# Profile kube-api-lb under the benchmark loads: bench/profile.sh [syscalls|callgrind|perf] [load...]
# (loads: keepalive connclose bulk idle). See bench/profile.py. Needs strace / valgrind / perf.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$here/driver.sh"
run_driver "$here/profile.py" "$@"
