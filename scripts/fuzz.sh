#!/usr/bin/env bash
# Builds the libFuzzer fuzzers (tests/fuzz/, clang, ASan+UBSan) in their own build directory and
# runs every target for a bounded time. Fails on a crash, a broken property, a leak, a hang
# (-timeout) or excess memory (-rss_limit_mb); the input that failed is copied into
# tests/fuzz/regressions/<target>/, which the ordinary test run replays (ctest -R fuzz_replay).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]          (default 20; scripts/test.sh uses this)
#
# Environment: FUZZ_BUILD_DIR (default build-fuzz), FUZZ_TARGETS (space-separated subset),
# FUZZ_PARALLEL (targets run at once, default 2), FUZZ_TIMEOUT (seconds one input may take,
# default 10), FUZZ_RSS_MB (default 1024). New corpus entries stay in $FUZZ_BUILD_DIR/corpus/ (add
# the interesting ones to tests/fuzz/corpus/ by hand). docs/fuzzing.md.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}
build=${FUZZ_BUILD_DIR:-build-fuzz}
parallel=${FUZZ_PARALLEL:-2}
timeout=${FUZZ_TIMEOUT:-10}
rss_mb=${FUZZ_RSS_MB:-1024}
start=$(date +%s)

echo "== fuzz: building the fuzzers with clang in $build"
CC=clang CXX=clang++ cmake -S . -B "$build" -DKAL_FUZZ=ON -DCMAKE_BUILD_TYPE=Fuzz \
  -DCMAKE_CXX_FLAGS="-O1 -gline-tables-only" >/dev/null
cmake --build "$build" -j2 --target kal_fuzzers
built=$(date +%s)
echo "== fuzz: built in $((built - start)) s"

targets=${FUZZ_TARGETS:-$(cd tests/fuzz && ls -- *_fuzz.cc | sed 's/_fuzz\.cc$//')}
mkdir -p "$build/logs"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:halt_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

run_target() {
  local t=$1 work="$build/corpus/$1" art="$build/artifacts/$1/" dict=()
  mkdir -p "$work" "$art" "tests/fuzz/regressions/$t"
  rm -f "$art"*
  [ -f "tests/fuzz/$t.dict" ] && dict=(-dict="tests/fuzz/$t.dict")
  if "$build/fuzz_$t" -max_total_time="$seconds" -timeout="$timeout" -rss_limit_mb="$rss_mb" \
    -malloc_limit_mb="$rss_mb" -max_len=8192 -print_final_stats=1 "${dict[@]}" \
    -artifact_prefix="$art" "$work" "tests/fuzz/corpus/$t" "tests/fuzz/regressions/$t" \
    >"$build/logs/$t.log" 2>&1; then
    return 0
  fi
  echo "== fuzz: $t FAILED (log: $build/logs/$t.log)" >&2
  tail -n 40 "$build/logs/$t.log" >&2
  local f
  for f in "$art"*; do
    [ -f "$f" ] || continue
    cp "$f" "tests/fuzz/regressions/$t/"
    echo "== fuzz: $t: input kept as tests/fuzz/regressions/$t/$(basename "$f")" >&2
  done
  return 1
}

failed=()
pids=()
names=()
for t in $targets; do
  run_target "$t" &
  pids+=($!)
  names+=("$t")
  while [ "$(jobs -rp | wc -l)" -ge "$parallel" ]; do
    wait -n || true
  done
done
for i in "${!pids[@]}"; do
  wait "${pids[$i]}" || failed+=("${names[$i]}")
done

# One line per target: executions, coverage (cov: edges, ft: features) at start and end.
printf '%-15s %10s %8s %14s %14s %7s\n' target executions exec/s "cov start>end" "ft start>end" rss_mb
for t in $targets; do
  log="$build/logs/$t.log"
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -1)
  first=$(grep -m1 -E '(INITED|INIT).* cov: ' "$log" || true)
  last=$(grep -E '^#[0-9]+.* cov: ' "$log" | tail -1)
  c0=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$first")
  f0=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$first")
  c1=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  f1=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  printf '%-15s %10s %8s %14s %14s %7s\n' "$t" "${execs:-?}" "${rate:-?}" "${c0:-?}>${c1:-?}" \
    "${f0:-?}>${f1:-?}" "${rss:-?}"
done
echo "== fuzz: $seconds s per target, $parallel at once; whole step $(($(date +%s) - start)) s"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "== fuzz: FAILED: ${failed[*]} (inputs kept under tests/fuzz/regressions/; commit them)" >&2
  exit 1
fi
echo "== fuzz: every target ran without a failure"
