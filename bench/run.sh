#!/usr/bin/env bash
# kube-api-lb benchmark suite: kube-api-lb vs nginx (Kubespray's nginx-proxy) vs HAProxy (Kubespray's
# haproxy option) vs direct, on loopback, interleaved rounds. Writes docs/benchmarks.md.
# See bench/README.md for the knobs (BENCH_ROUNDS, BENCH_DURATION, KAL_BIN, KAL_BENCH_ARGS, ...).
#
# Debian packages this needs (the suite installs nothing itself):
BENCH_PACKAGES="nginx libnginx-mod-stream haproxy wrk curl python3"
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
stream_module=/usr/lib/nginx/modules/ngx_stream_module.so

missing=()
for tool in nginx haproxy wrk curl python3; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [[ ! -f "$stream_module" ]]; then
  missing+=("$stream_module (libnginx-mod-stream)")
fi
if ((${#missing[@]})); then
  echo "bench: error: missing ${missing[*]}; install the Debian packages: $BENCH_PACKAGES" >&2
  exit 2
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "bench: warning: not root; nginx/HAProxy may not raise their file limits for the idle-connection test" >&2
fi

# The Python driver tracks every process it starts by PID and stops them on exit, error, Ctrl-C
# (SIGINT) and SIGTERM/SIGHUP; this shell runs it in the background and forwards those signals
# to it (bench/driver.sh).
. "$here/driver.sh"
run_driver "$here/bench.py" "$@"
