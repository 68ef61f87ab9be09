#include "kube_api_lb/core/health_tracker.h"

#include <algorithm>

namespace kal {

const char *to_string(Transition t) {
  switch (t) {
  case Transition::Unchanged:
    return "unchanged";
  case Transition::ChangePending:
    return "pending";
  case Transition::Changed:
    return "changed";
  }
  return "?";
}

HealthTracker::HealthTracker(int rise, int fall)
    : rise_(std::max(rise, 1)), fall_(std::max(fall, 1)) {}

HealthTracker HealthTracker::with_thresholds(int rise, int fall) const {
  HealthTracker t(rise, fall);
  t.health_ = health_;
  const int top = t.rise_ + t.fall_ - 1;
  if (health_ == Health::Up) {
    const int failures = rise_ + fall_ - 1 - counter_;
    t.counter_ = std::max(t.rise_, top - failures);
  } else if (health_ == Health::Down) {
    t.counter_ = std::min(counter_, t.rise_ - 1);
  }
  return t;
}

TrackerUpdate HealthTracker::record(CheckResult r) {
  TrackerUpdate u;
  u.old_health = health_;
  u.result = r;
  const bool pass = r == CheckResult::Ok || r == CheckResult::L7Auth;
  const int top = rise_ + fall_ - 1;
  if (health_ == Health::Unknown) {
    counter_ = pass ? top : 0;
    health_ = pass ? Health::Up : Health::Down;
    u.first = true;
    u.transition = Transition::Changed;
    u.new_health = health_;
    return u;
  }
  const int before = counter_;
  if (pass) {
    if (counter_ < top) {
      counter_++;
      if (counter_ >= rise_) {
        counter_ = top;
      }
    }
  } else if (counter_ > 0) {
    counter_--;
    if (counter_ < rise_) {
      counter_ = 0;
    }
  }
  health_ = counter_ >= rise_ ? Health::Up : Health::Down;
  u.new_health = health_;
  if (u.new_health != u.old_health) {
    u.transition = Transition::Changed;
  } else if (counter_ != before) {
    u.transition = Transition::ChangePending;
  }
  return u;
}

TrackerUpdate HealthTracker::record_passive_failures(uint32_t n, CheckResult r) {
  TrackerUpdate u;
  u.old_health = u.new_health = health_;
  u.result = r;
  if (n == 0 || health_ == Health::Unknown) {
    return u;
  }
  const int before = counter_;
  if (health_ == Health::Up) {
    // Stop at `rise`: one failure away from down, decided by the active re-check.
    const int64_t dented = static_cast<int64_t>(counter_) - static_cast<int64_t>(n);
    counter_ = static_cast<int>(std::max<int64_t>(dented, rise_));
  } else {
    counter_ = 0; // any failure while down restarts the climb, as in HAProxy
  }
  if (counter_ != before) {
    u.transition = Transition::ChangePending;
  }
  return u;
}

std::string HealthTracker::progress() const {
  if (health_ == Health::Up) {
    return std::to_string(counter_ - rise_ + 1) + "/" + std::to_string(fall_);
  }
  return std::to_string(health_ == Health::Down ? counter_ : 0) + "/" + std::to_string(rise_);
}

} // namespace kal
