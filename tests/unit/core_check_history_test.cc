// core/check_history: bounded at kCapacity whatever the number of checks, oldest first.
#include "kube_api_lb/core/check_history.h"

#include <doctest/doctest.h>

using namespace kal;

TEST_CASE("check history keeps the last kCapacity samples") {
  struct Row {
    size_t adds;
    size_t want_size;
    int64_t want_first; // mono_ms of the oldest kept
  };
  const Row rows[] = {
      {0, 0, 0},
      {1, 1, 1},
      {CheckHistory::kCapacity, CheckHistory::kCapacity, 1},
      {CheckHistory::kCapacity + 1, CheckHistory::kCapacity, 2},
      {10000, CheckHistory::kCapacity, 10000 - static_cast<int64_t>(CheckHistory::kCapacity) + 1},
  };
  for (const auto &r : rows) {
    CAPTURE(r.adds);
    CheckHistory h;
    for (size_t i = 1; i <= r.adds; i++) {
      h.add(CheckSample{static_cast<int64_t>(i), 100, i % 2 ? CheckResult::Ok : CheckResult::L4Con,
                        i % 3 == 0});
    }
    auto s = h.samples();
    CHECK(s.size() == r.want_size);
    CHECK(h.recorded() == r.adds);
    if (!s.empty()) {
      CHECK(s.front().mono_ms == r.want_first);
      CHECK(s.back().mono_ms == static_cast<int64_t>(r.adds));
    }
  }
}
