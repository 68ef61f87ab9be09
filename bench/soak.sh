#!/usr/bin/env bash
# Churn soak (issue 19, part 2): kube-api-lb in front of three TLS stand-in apiservers that are
# killed, hung, drained and restarted while a client mix runs and the config is reloaded; samples
# the proxy's descriptors, RSS, threads and CPU every second and judges failures and resource
# growth. See bench/soak.py for the phases, the clients and the exact pass criteria.
#   bench/soak.sh [MINUTES (default 10)] [--warmup S] [--churn S] [--quiet S] [--out DIR] [--seed N]
# Bounded: it stops by itself after MINUTES (plus the final shutdown) and stops only what it
# started, by PID. KAL_BIN selects the binary (default build/kube-api-lb).
# Debian packages: python3 python3-h2 openssl python3-matplotlib (the plot, with /usr/bin/python3)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$here/driver.sh"
run_driver "$here/soak.py" "$@"
