#include "kube_api_lb/core/check_schedule.h"

#include <algorithm>
#include <cmath>

namespace kal {

using std::chrono::milliseconds;

const char *to_string(Cadence c) {
  switch (c) {
  case Cadence::Normal:
    return "normal";
  case Cadence::Fast:
    return "fast";
  case Cadence::Down:
    return "down";
  }
  return "?";
}

Cadence cadence_of(const HealthTracker &t) {
  if (t.fully_up()) {
    return Cadence::Normal;
  }
  if (t.fully_down()) {
    return Cadence::Down;
  }
  return Cadence::Fast;
}

CheckSchedule::CheckSchedule(ScheduleConfig cfg, uint64_t seed) : cfg_(cfg), rng_(seed) {
  cfg_.jitter = std::clamp(cfg_.jitter, 0.0, 1.0);
}

milliseconds CheckSchedule::base_delay(const HealthTracker &t) const {
  switch (cadence_of(t)) {
  case Cadence::Normal:
    return cfg_.interval;
  case Cadence::Down:
    return cfg_.down_interval;
  case Cadence::Fast:
    break;
  }
  return cfg_.fast_interval;
}

milliseconds CheckSchedule::jittered(milliseconds d) {
  if (d.count() <= 0) {
    return milliseconds(0);
  }
  if (cfg_.jitter <= 0) {
    return d;
  }
  std::uniform_real_distribution<double> u(-cfg_.jitter, cfg_.jitter);
  const double scaled = static_cast<double>(d.count()) * (1.0 + u(rng_));
  return milliseconds(std::max<int64_t>(0, std::llround(scaled)));
}

milliseconds CheckSchedule::initial_offset() {
  const int64_t cap = std::min<int64_t>(cfg_.interval.count(), 100);
  if (cap <= 0) {
    return milliseconds(0);
  }
  std::uniform_int_distribution<int64_t> u(0, cap);
  return milliseconds(u(rng_));
}

TimePoint CheckSchedule::next_due(TimePoint started, TimePoint now, const HealthTracker &t) {
  const TimePoint due = started + jittered(base_delay(t));
  return std::max(due, now);
}

} // namespace kal
