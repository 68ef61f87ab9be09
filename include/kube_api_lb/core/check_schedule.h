#pragma once
// When the next health check of an endpoint is due: HAProxy's three intervals with jitter, on an
// injected clock and RNG so tests drive it with a TimePoint they advance and a fixed seed.
//
//   interval       the endpoint is stable (fully up)            HAProxy `inter`
//   fast_interval  its counter is between thresholds or Unknown HAProxy `fastinter`
//   down_interval  it is fully down                             HAProxy `downinter`
//
// Intervals are measured start to start, not end to start: a check that took 400 ms to time out
// already spaced the samples by 400 ms, so the re-check that decides "down" starts right away
// instead of another fast_interval later. That is what keeps hang detection under 2 s with the
// default 1 s interval (see docs/health-checks.md). At most one check per endpoint is ever in
// flight; the caller starts the next one no earlier than the previous one finished.
#include "kube_api_lb/core/health_tracker.h"

#include <chrono>
#include <cstdint>
#include <random>

namespace kal {

using SteadyClock = std::chrono::steady_clock;
using TimePoint = SteadyClock::time_point;

struct ScheduleConfig {
  std::chrono::milliseconds interval{1000};
  std::chrono::milliseconds fast_interval{250};
  std::chrono::milliseconds down_interval{500};
  double jitter = 0.1; // each delay is scaled by a uniform factor in [1 - jitter, 1 + jitter]
};

enum class Cadence : uint8_t { Normal, Fast, Down };
const char *to_string(Cadence c); // "normal", "fast", "down"

// HAProxy's srv_getinter(): Normal when fully up, Down when fully down, Fast otherwise.
Cadence cadence_of(const HealthTracker &t);

class CheckSchedule {
public:
  // `seed` feeds the jitter RNG; the checker seeds from std::random_device, tests with a constant.
  CheckSchedule(ScheduleConfig cfg, uint64_t seed);

  const ScheduleConfig &config() const { return cfg_; }

  // The un-jittered delay for the tracker's current cadence.
  std::chrono::milliseconds base_delay(const HealthTracker &t) const;

  // `d` scaled by a fresh uniform factor in [1 - jitter, 1 + jitter], never negative.
  std::chrono::milliseconds jittered(std::chrono::milliseconds d);

  // Offset of the very first check of a new endpoint: uniform in [0, min(interval, 100ms)], so a
  // fresh proxy knows every endpoint within about 100 ms plus one check, and endpoints added
  // together are not checked in lockstep.
  std::chrono::milliseconds initial_offset();

  // When the next check is due, given that the last one started at `started` and finished at
  // `now`: started + jittered(base_delay), but never before `now`.
  TimePoint next_due(TimePoint started, TimePoint now, const HealthTracker &t);

private:
  ScheduleConfig cfg_;
  std::mt19937_64 rng_;
};

} // namespace kal
