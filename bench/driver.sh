# Sourced by the bench/*.sh entry points. run_driver SCRIPT ARGS...: runs the Python driver in the
# background so this shell can forward INT/TERM/HUP to it (the driver stops every process it
# started, by PID, before it exits) and returns the driver's exit code.
run_driver() {
  python3 "$@" &
  driver=$!
  trap 'stop_driver; exit 130' INT
  trap 'stop_driver; exit 143' TERM
  trap 'stop_driver; exit 129' HUP
  set +e
  wait "$driver"
  local rc=$?
  set -e
  return "$rc"
}

stop_driver() {
  if kill -0 "$driver" 2>/dev/null; then
    kill -TERM "$driver" 2>/dev/null || true
    wait "$driver" 2>/dev/null || true
  fi
}
