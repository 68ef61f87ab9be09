// Table for core/slow_start (the weights picker_test's "least-conn honours slow-start weight"
// then spreads connections by).
#include "kube_api_lb/core/slow_start.h"

#include <doctest/doctest.h>

using namespace kal;

TEST_CASE("slow-start weight ramps from 5% to 100% over the window") {
  struct Row {
    bool up;
    int64_t up_since, now;
    uint64_t window;
    double want;
  };
  const Row rows[] = {
      {true, 1000, 1000, 0, 1.0},       // slow start off
      {true, 0, 5000, 10000, 1.0},      // up since start-up: no ramp
      {false, 1000, 2000, 10000, 1.0},  // not Up: the picker's tiers decide, weight unused
      {true, 1000, 1000, 10000, 0.05},  // just came up
      {true, 1000, 6000, 10000, 0.525}, // half way
      {true, 1000, 10999, 10000, 0.05 + 0.95 * 9999 / 10000.0},
      {true, 1000, 11000, 10000, 1.0}, // the window is over
      {true, 5000, 4000, 10000, 1.0},  // a clock read before the transition
  };
  for (const auto &r : rows) {
    CAPTURE(r.now);
    CHECK(slow_start_weight(r.up, r.up_since, r.now, r.window) == doctest::Approx(r.want));
  }
}
