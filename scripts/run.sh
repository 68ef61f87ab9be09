#!/usr/bin/env bash
# The main job, in one command on a fresh Debian machine (as root): installs what is needed,
# builds kube-api-lb, and runs it. With no control plane given it starts a local demo control plane
# (three TLS stand-in apiservers with client-certificate checks on 127.0.0.11-13:6443) and
# kube-api-lb on 127.0.0.1:6443 in front of them, and prints a working kubectl command.
#
#   bash scripts/run.sh                                   # demo control plane
#   KAL_ENDPOINTS=10.0.0.11:6443,10.0.0.12:6443 bash scripts/run.sh [extra kube-api-lb flags]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
BUILD_DIR=build BUILD_TYPE=Release BUILD_TARGET=kube-api-lb bash scripts/build.sh
exec bash scripts/demo.sh "$@"
