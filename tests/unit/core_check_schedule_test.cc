#include "kube_api_lb/core/check_schedule.h"

#include <doctest/doctest.h>

#include <algorithm>

using namespace std::chrono_literals;
using kal::Cadence;
using kal::CheckResult;
using kal::CheckSchedule;
using kal::HealthTracker;
using kal::ScheduleConfig;
using kal::TimePoint;

TEST_CASE("schedule: HAProxy's inter / fastinter / downinter by counter") {
  ScheduleConfig cfg{1000ms, 250ms, 500ms, 0.0};
  CheckSchedule s(cfg, 1);
  HealthTracker t(2, 2);
  CHECK(kal::cadence_of(t) == Cadence::Fast); // Unknown: changing
  t.record(CheckResult::Ok);
  CHECK(s.base_delay(t) == 1000ms);
  t.record(CheckResult::L7Tout);
  CHECK(s.base_delay(t) == 250ms); // 1/2 up: changing state
  t.record(CheckResult::L7Tout);
  CHECK(s.base_delay(t) == 500ms); // fully down
  t.record(CheckResult::Ok);
  CHECK(s.base_delay(t) == 250ms); // 1/2 down: rising
  t.record(CheckResult::Ok);
  CHECK(s.base_delay(t) == 1000ms);
}

TEST_CASE("schedule: jitter stays within +-jitter and is reproducible with a seed") {
  ScheduleConfig cfg{1000ms, 250ms, 500ms, 0.1};
  CheckSchedule a(cfg, 7), b(cfg, 7);
  auto lo = 10000ms, hi = 0ms;
  for (int i = 0; i < 2000; i++) {
    auto d = a.jittered(1000ms);
    CHECK(d == b.jittered(1000ms));
    lo = std::min(lo, d);
    hi = std::max(hi, d);
  }
  CHECK(lo >= 900ms);
  CHECK(hi <= 1100ms);
  CHECK(lo < 920ms); // it actually spreads
  CHECK(hi > 1080ms);
  CHECK(a.jittered(0ms) == 0ms);
  CheckSchedule none(ScheduleConfig{1000ms, 250ms, 500ms, 0.0}, 3);
  CHECK(none.jittered(1000ms) == 1000ms);
}

TEST_CASE("schedule: initial offset in [0, min(interval, 100ms)]") {
  CheckSchedule s(ScheduleConfig{1000ms, 250ms, 500ms, 0.1}, 11);
  auto hi = 0ms;
  for (int i = 0; i < 1000; i++) {
    auto d = s.initial_offset();
    CHECK(d >= 0ms);
    CHECK(d <= 100ms);
    hi = std::max(hi, d);
  }
  CHECK(hi > 90ms);
  CheckSchedule small(ScheduleConfig{30ms, 10ms, 10ms, 0.0}, 11);
  for (int i = 0; i < 100; i++) {
    CHECK(small.initial_offset() <= 30ms);
  }
}

TEST_CASE("schedule: next check is measured start to start, never in the past") {
  CheckSchedule s(ScheduleConfig{1000ms, 250ms, 500ms, 0.0}, 1);
  HealthTracker t(2, 2);
  t.record(CheckResult::Ok);
  const TimePoint t0{};
  CHECK(s.next_due(t0, t0 + 5ms, t) == t0 + 1000ms);
  t.record(CheckResult::L7Tout); // took 400 ms to time out; fast interval is 250 ms
  CHECK(s.next_due(t0, t0 + 400ms, t) == t0 + 400ms); // re-check at once
}

namespace {

// Fake-clock simulation of one endpoint with the default-style settings: checks take `rtt` when
// the endpoint answers and `timeout` when it is hung; the endpoint hangs at `fault_at`. Returns how
// long after the fault it was marked down.
std::chrono::milliseconds simulate_hang(ScheduleConfig cfg, std::chrono::milliseconds timeout,
                                        int rise, int fall, std::chrono::milliseconds fault_at,
                                        uint64_t seed) {
  using namespace std::chrono;
  CheckSchedule s(cfg, seed);
  HealthTracker t(rise, fall);
  TimePoint now{};
  const TimePoint fault = TimePoint{} + fault_at;
  now += s.initial_offset();
  const auto rtt = 2ms;
  for (int i = 0; i < 10000; i++) {
    const TimePoint started = now;
    CheckResult r;
    if (started + rtt < fault) {
      r = CheckResult::Ok;
      now = started + rtt;
    } else {
      r = CheckResult::L7Tout; // the answer never comes
      now = started + timeout;
    }
    auto u = t.record(r);
    if (u.new_health == kal::Health::Down) {
      return duration_cast<milliseconds>(now - fault);
    }
    now = s.next_due(started, now, t);
  }
  return 1h;
}

} // namespace

TEST_CASE("schedule: defaults detect a hung apiserver within 2 s (fake clock, many phases)") {
  // The shipped defaults: interval 1s, fast 250ms, down 500ms, timeout 400ms, rise 2, fall 2,
  // jitter 10% (config/config.h, docs/health-checks.md).
  ScheduleConfig cfg{1000ms, 250ms, 500ms, 0.1};
  auto worst = 0ms;
  for (int phase = 0; phase < 1000; phase += 7) {
    for (uint64_t seed = 1; seed <= 5; seed++) {
      auto d = simulate_hang(cfg, 400ms, 2, 2, std::chrono::milliseconds(3000 + phase), seed);
      worst = std::max(worst, d);
    }
  }
  MESSAGE("worst simulated hang detection: " << worst.count() << " ms");
  CHECK(worst <= 1900ms);
  CHECK(worst >= 1500ms); // the bound is tight, not vacuous

  // The old 1 s timeout could not meet the 2 s target.
  auto old_worst = 0ms;
  for (int phase = 0; phase < 1000; phase += 7) {
    old_worst = std::max(
        old_worst, simulate_hang(cfg, 1000ms, 2, 2, std::chrono::milliseconds(3000 + phase), 1));
  }
  CHECK(old_worst > 2000ms);
}
