#!/usr/bin/env bash
# Installs what is needed, builds, and runs every test: the plain build, then the whole suite again
# under AddressSanitizer + UndefinedBehaviorSanitizer, plus the clang-format check, then a bounded
# libFuzzer run of every fuzz target (scripts/fuzz.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
ulimit -n 65536 2>/dev/null || true

echo "== clang-format check"
bad=$(find src include tests -name '*.cc' -o -name '*.h' | xargs clang-format --dry-run -Werror 2>&1 | grep -c 'error:' || true)
if [ "$bad" != "0" ]; then
  find src include tests -name '*.cc' -o -name '*.h' | xargs clang-format --dry-run -Werror
  echo "clang-format: $bad formatting differences (run: clang-format -i src/*/*.{h,cc} include/kube_api_lb/*/*.h tests/unit/*.cc tests/example/*.cc)"
  exit 1
fi

echo "== build and test (RelWithDebInfo)"
BUILD_DIR=build bash scripts/build.sh
(cd build && ctest --output-on-failure --timeout 900)

echo "== build and test under ASan+UBSan"
BUILD_DIR=build-asan BUILD_TYPE=Debug bash scripts/build.sh -DKAL_SANITIZE=ON
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:halt_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# The slow-link soak runs its several minutes in the plain pass; under the sanitizers a minute of
# it looks for memory errors on the same paths.
(cd build-asan && KAL_SANITIZED=1 KAL_SLOW_LINK_SECONDS=60 ctest --output-on-failure --timeout 1500)
# libFuzzer on every parser of outside bytes (docs/fuzzing.md): its own clang build, then each
# target for a bounded time, two at once. About 3 minutes in all on 2 cores (build included).
echo "== fuzzing (scripts/fuzz.sh, ${KAL_FUZZ_SECONDS:-15} s per target)"
bash scripts/fuzz.sh "${KAL_FUZZ_SECONDS:-15}"
echo "all tests passed"
