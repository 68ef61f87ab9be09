#!/usr/bin/env bash
# Regenerates docs/status-page.png, the status page screenshot in the README: runs the browser
# test (tests/integration/test_status_page_browser.py) in its screenshot mode, which starts
# kube-api-lb in front of three stand-in apiservers on loopback, sends a few requests and holds
# three connections, kills one apiserver, waits a few seconds and captures the page in headless
# chromium. Needs a build (./build/kube-api-lb, or KAL_BIN=...) and scripts/install-deps.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-docs/status-page.png}"
KAL_BIN="${KAL_BIN:-$PWD/build/kube-api-lb}" KAL_SOURCE_DIR="$PWD" KAL_SCREENSHOT="$PWD/$out" \
  python3 tests/integration/test_status_page_browser.py
echo "wrote $out"
