#!/usr/bin/env bash
# kube-api-lb's "main job" demo.
#
# Without KAL_ENDPOINTS: starts a local demo control plane -- three stand-in apiservers speaking TLS
# with client-certificate checks on 127.0.0.11-13:6443 (tests/tools/fake_apiserver.py) -- and
# kube-api-lb on 127.0.0.1:6443 in front of them, writes a kubeconfig with a node's client
# certificate, prints the kubectl command that goes through the proxy and runs it once. Then it stays
# in the foreground until Ctrl-C (stopping everything it started), or exits right away with
# DEMO_ONESHOT=1 (status 0 only if the kubectl call through the proxy worked).
#
# With KAL_ENDPOINTS=host:port,...: just runs kube-api-lb against those endpoints (extra arguments
# are passed to it).
#
# Environment: KAL_BIN (default build/kube-api-lb), KAL_DEMO_DIR (state: certs, logs, kubeconfig;
# default $XDG_RUNTIME_DIR/kube-api-lb-demo or /tmp/kube-api-lb-demo), KAL_LISTEN (127.0.0.1:6443),
# KAL_ADMIN (127.0.0.1:8081), DEMO_ONESHOT=1, DEMO_SHUTDOWN_DELAY (seconds a stand-in apiserver's
# /readyz fails after SIGTERM before it stops; default 5).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KAL_BIN="${KAL_BIN:-$REPO/build/kube-api-lb}"
LISTEN="${KAL_LISTEN:-127.0.0.1:6443}"
ADMIN="${KAL_ADMIN:-127.0.0.1:8081}"
STATE="${KAL_DEMO_DIR:-${XDG_RUNTIME_DIR:-/tmp}/kube-api-lb-demo}"
TOOLS="$REPO/tests/tools"
APISERVERS=("a 127.0.0.11:6443" "b 127.0.0.12:6443" "c 127.0.0.13:6443")

die() { echo "demo: error: $*" >&2; exit 1; }

[[ -x "$KAL_BIN" ]] || die "kube-api-lb binary not found at $KAL_BIN (build it first, or set KAL_BIN)"

if [[ -n "${KAL_ENDPOINTS:-}" ]]; then
  echo "demo: running kube-api-lb on $LISTEN for $KAL_ENDPOINTS (admin on http://$ADMIN)" >&2
  exec "$KAL_BIN" --endpoints="$KAL_ENDPOINTS" --listen="$LISTEN" --admin-listen="$ADMIN" "$@"
fi

command -v python3 >/dev/null || die "python3 is needed for the stand-in apiservers"
command -v openssl >/dev/null || die "openssl is needed to make the demo certificates"
command -v curl >/dev/null || die "curl is needed"
mkdir -p "$STATE"

# A previous demo that was not shut down cleanly: stop its processes (only if they are still ours).
for pidfile in "$STATE"/*.pid; do
  [[ -e "$pidfile" ]] || continue
  pid="$(cat "$pidfile")"
  if [[ "$pid" =~ ^[0-9]+$ ]] && grep -qaE 'fake_apiserver|kube-api-lb' "/proc/$pid/cmdline" 2>/dev/null; then
    echo "demo: stopping leftover process $pid from an earlier demo ($pidfile)" >&2
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
done

# Refuse to start over something that already listens on one of our addresses (one python3 run).
busy="$(python3 - "${APISERVERS[@]#* }" "$LISTEN" "$ADMIN" <<'EOF'
import socket, sys
for addr in sys.argv[1:]:
    host, port = addr.rsplit(":", 1)
    host = host.strip("[]")
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    s.settimeout(0.5)
    if s.connect_ex((host, int(port))) == 0:
        print(addr)
EOF
)"
[[ -z "$busy" ]] || die "already in use: $(echo $busy); stop what listens there (or set KAL_LISTEN/KAL_ADMIN)"

CHILDREN=()
APISERVER_PIDS=()
cleanup() {
  trap - EXIT INT TERM
  if ((${#CHILDREN[@]})); then
    echo "demo: stopping ${#CHILDREN[@]} processes" >&2
    kill -TERM "${CHILDREN[@]}" 2>/dev/null || true
    sleep 0.3
    # A stand-in apiserver drains for DEMO_SHUTDOWN_DELAY on the first signal; a second one ends it.
    for p in "${APISERVER_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for _ in $(seq 100); do
      alive=0
      for p in "${CHILDREN[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
      ((alive)) || break
      sleep 0.1
    done
    kill -KILL "${CHILDREN[@]}" 2>/dev/null || true
    wait 2>/dev/null || true
  fi
  rm -f "$STATE"/*.pid
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "demo: certificates in $STATE/pki" >&2
python3 "$TOOLS/gen_certs.py" "$STATE/pki" >/dev/null
PKI="$STATE/pki"

for spec in "${APISERVERS[@]}"; do
  name="${spec%% *}"; addr="${spec#* }"
  python3 "$TOOLS/fake_apiserver.py" --name "$name" --listen "$addr" \
    --cert "$PKI/server.crt" --key "$PKI/server.key" --ca "$PKI/ca.crt" \
    --shutdown-delay "${DEMO_SHUTDOWN_DELAY:-5}" 2>"$STATE/apiserver-$name.log" &
  CHILDREN+=($!)
  APISERVER_PIDS+=($!)
  echo $! >"$STATE/apiserver-$name.pid"
done
for spec in "${APISERVERS[@]}"; do
  name="${spec%% *}"; addr="${spec#* }"
  for _ in $(seq 100); do
    grep -q '^listening ' "$STATE/apiserver-$name.log" 2>/dev/null && break
    kill -0 "$(cat "$STATE/apiserver-$name.pid")" 2>/dev/null ||
      die "stand-in apiserver $name failed: $(cat "$STATE/apiserver-$name.log")"
    sleep 0.1
  done
  grep -q '^listening ' "$STATE/apiserver-$name.log" || die "apiserver $name did not start"
done
ENDPOINTS="$(printf '%s\n' "${APISERVERS[@]}" | awk '{print $2}' | paste -sd,)"
echo "demo: stand-in apiservers (client certificates required) on $ENDPOINTS" >&2

"$KAL_BIN" --endpoints="$ENDPOINTS" --listen="$LISTEN" --admin-listen="$ADMIN" \
  --health-ca-file="$PKI/ca.crt" --health-client-cert="$PKI/health.crt" \
  --health-client-key="$PKI/health.key" "$@" 2>"$STATE/kube-api-lb.log" &
KAL_PID=$!
CHILDREN+=($KAL_PID)
echo $KAL_PID >"$STATE/kube-api-lb.pid"

ready=0
for _ in $(seq 100); do
  kill -0 "$KAL_PID" 2>/dev/null || die "kube-api-lb exited: $(tail -5 "$STATE/kube-api-lb.log")"
  if [[ "$(curl -s -o /dev/null -w '%{http_code}' "http://$ADMIN/readyz")" == 200 ]]; then
    ready=1
    break
  fi
  sleep 0.1
done
((ready)) || die "kube-api-lb did not become ready in 10s: $(tail -5 "$STATE/kube-api-lb.log")"

KUBECONFIG_PATH="$STATE/kubeconfig"
cat >"$KUBECONFIG_PATH" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: demo
  cluster:
    server: https://$LISTEN
    certificate-authority: $PKI/ca.crt
users:
- name: system:node:k8s-node4
  user:
    client-certificate: $PKI/client.crt
    client-key: $PKI/client.key
contexts:
- name: demo
  context:
    cluster: demo
    user: system:node:k8s-node4
current-context: demo
EOF

cat <<EOF

kube-api-lb is listening on https://$LISTEN (pid $KAL_PID), in front of $ENDPOINTS.

  kubectl --kubeconfig=$KUBECONFIG_PATH get --raw /version
  curl --cacert $PKI/ca.crt --cert $PKI/client.crt --key $PKI/client.key https://$LISTEN/whoami

Admin:  http://$ADMIN/healthz  http://$ADMIN/readyz  http://$ADMIN/metrics  http://$ADMIN/stats
Logs:   $STATE/kube-api-lb.log  $STATE/apiserver-{a,b,c}.log
Try a failure: kill -9 \$(cat $STATE/apiserver-a.pid), then run the kubectl command again.

EOF

status=0
if command -v kubectl >/dev/null; then
  echo "\$ kubectl --kubeconfig=$KUBECONFIG_PATH get --raw /version"
  kubectl --kubeconfig="$KUBECONFIG_PATH" get --raw /version || status=$?
else
  echo "(kubectl not installed; the same request with curl)"
  curl -sS --cacert "$PKI/ca.crt" --cert "$PKI/client.crt" --key "$PKI/client.key" \
    "https://$LISTEN/version" || status=$?
fi
echo
if ((status != 0)); then
  echo "demo: the request through kube-api-lb FAILED (status $status); proxy log:" >&2
  tail -20 "$STATE/kube-api-lb.log" >&2
fi

if [[ "${DEMO_ONESHOT:-0}" == 1 ]]; then
  exit "$status"
fi
echo "demo: running; press Ctrl-C to stop the proxy and the stand-in apiservers." >&2
# Stay up as long as the proxy does.
wait "$KAL_PID" || true
echo "demo: kube-api-lb exited: $(tail -3 "$STATE/kube-api-lb.log")" >&2
exit 1
