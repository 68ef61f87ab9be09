#include "kube_api_lb/core/check_budget.h"

#include <algorithm>

namespace kal {

using std::chrono::milliseconds;

const char *to_string(PassiveEvidence e) {
  switch (e) {
  case PassiveEvidence::DialRefused:
    return "dial_refused";
  case PassiveEvidence::DialTimedOut:
    return "dial_timeout";
  case PassiveEvidence::Reset:
    return "reset";
  case PassiveEvidence::FirstByteTimeout:
    return "first_byte_timeout";
  case PassiveEvidence::GoAway:
    return "goaway";
  case PassiveEvidence::IdleClose:
    return "idle_close";
  }
  return "?";
}

const char *to_string(CheckKind k) {
  switch (k) {
  case CheckKind::None:
    return "none";
  case CheckKind::Ping:
    return "ping";
  case CheckKind::Readyz:
    return "readyz";
  }
  return "?";
}

CheckBudget::CheckBudget(BudgetConfig cfg, uint64_t seed)
    : cfg_(cfg),
      jitter_(ScheduleConfig{cfg.http1_interval, cfg.fast_interval, cfg.down_interval, cfg.jitter},
              seed) {}

milliseconds CheckBudget::readyz_delay(Cadence c) const {
  switch (c) {
  case Cadence::Fast:
    return cfg_.fast_interval;
  case Cadence::Down:
    if (way_ == Liveness::Http2 && alive_ && down_streak_ > 1) {
      // Alive but not ready: back off towards the budget's interval (see the header).
      const milliseconds cap = std::max(cfg_.readyz_interval, cfg_.down_interval);
      milliseconds d = cfg_.down_interval;
      for (unsigned i = 1; i < down_streak_ && d < cap; i++) {
        d *= 2;
      }
      return std::min(d, cap);
    }
    return cfg_.down_interval;
  case Cadence::Normal:
    break;
  }
  return way_ == Liveness::Http2 ? cfg_.readyz_interval : cfg_.http1_interval;
}

milliseconds CheckBudget::readyz_jittered(Cadence c) {
  const milliseconds d = readyz_delay(c);
  if (c == Cadence::Normal && way_ == Liveness::Http2) {
    // The budget's interval is a minimum: jitter only lengthens it (uniform in [d, d + 2 x
    // jitter x d], 10-12 s by default, 11 s on average), so a fleet's steady state stays at or
    // under one /readyz per readyz_interval per node per apiserver however the phases fall.
    return jitter_.jittered(d) +
           std::chrono::duration_cast<milliseconds>(d * std::max(cfg_.jitter, 0.0));
  }
  return jitter_.jittered(d);
}

void CheckBudget::start(TimePoint now, milliseconds offset) {
  started_ = true;
  in_flight_ = false;
  pending_ = false;
  readyz_started_ = now;
  readyz_due_ = now + std::max(offset, milliseconds(0));
}

void CheckBudget::set_way(Liveness way, TimePoint now) {
  way_ = way;
  if (way != Liveness::Http2) {
    down_streak_ = 0;
  }
  ping_due_ =
      way == Liveness::Http2 ? now + jitter_.jittered(cfg_.ping_interval) : TimePoint::max();
  if (started_ && !in_flight_) {
    // Without PINGs /readyz is the liveness check again: never leave it 10 s away.
    const TimePoint by_cadence = readyz_started_ + readyz_jittered(cadence_);
    readyz_due_ = std::max(now, std::min(readyz_due_, by_cadence));
  }
}

CheckKind CheckBudget::due(TimePoint now) const {
  if (started_ && !in_flight_ && now >= readyz_due_) {
    return CheckKind::Readyz;
  }
  if (now >= ping_due_) {
    return CheckKind::Ping;
  }
  return CheckKind::None;
}

TimePoint CheckBudget::next_wakeup() const {
  const TimePoint readyz = started_ && !in_flight_ ? readyz_due_ : TimePoint::max();
  return std::min(readyz, ping_due_);
}

void CheckBudget::on_ping_sent(TimePoint now) {
  if (way_ == Liveness::Http2) {
    ping_due_ = now + jitter_.jittered(cfg_.ping_interval);
  }
}

void CheckBudget::on_readyz_started(TimePoint now) {
  in_flight_ = true;
  readyz_started_ = now;
}

void CheckBudget::on_readyz_finished(TimePoint now, Cadence cadence, bool answered) {
  in_flight_ = false;
  cadence_ = cadence;
  down_streak_ =
      cadence == Cadence::Down && way_ == Liveness::Http2 && alive_ ? down_streak_ + 1 : 0;
  if (pending_) {
    pending_ = false;
    readyz_due_ = now;
  } else {
    readyz_due_ = std::max(now, readyz_started_ + readyz_jittered(cadence));
  }
  if (answered && way_ == Liveness::Http2) {
    ping_due_ = std::max(ping_due_, now + jitter_.jittered(cfg_.ping_interval));
  }
}

void CheckBudget::set_alive(bool alive) {
  alive_ = alive;
  if (!alive) {
    down_streak_ = 0;
  }
}

void CheckBudget::on_cadence(TimePoint now, Cadence cadence) {
  cadence_ = cadence;
  if (cadence != Cadence::Down) {
    down_streak_ = 0;
  }
  if (started_ && !in_flight_) {
    const TimePoint by_cadence = readyz_started_ + readyz_jittered(cadence);
    readyz_due_ = std::max(now, std::min(readyz_due_, by_cadence));
  }
}

void CheckBudget::bring_readyz_forward(TimePoint now) {
  if (in_flight_) {
    pending_ = true;
  } else {
    readyz_due_ = std::min(readyz_due_, now);
  }
}

bool CheckBudget::on_passive(PassiveEvidence, TimePoint now) {
  if (!started_) {
    return false; // the first check is on its way anyway
  }
  if (triggered_once_ && now - last_trigger_ < cfg_.trigger_min_gap) {
    suppressed_++;
    return false;
  }
  triggered_once_ = true;
  last_trigger_ = now;
  triggered_++;
  bring_readyz_forward(now);
  return true;
}

void CheckBudget::recheck_now(TimePoint now) {
  if (started_) {
    bring_readyz_forward(now);
  }
}

} // namespace kal
