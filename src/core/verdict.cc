#include "kube_api_lb/core/verdict.h"

#include <algorithm>

namespace kal {
namespace {

enum class Sign : uint8_t { None, Alive, DeadEvidence };

struct Effect {
  bool tracked;  // recorded on the ready tracker
  CheckResult r; // as this result
  Sign sign;
};

// The table of the header comment, in code.
Effect effect_of(Observation o) {
  switch (o) {
  case Observation::ReadyzOk:
    return {true, CheckResult::Ok, Sign::Alive};
  case Observation::ReadyzFailed:
    return {true, CheckResult::L7Sts, Sign::Alive};
  case Observation::ReadyzUnauthorized:
    return {true, CheckResult::L7Auth, Sign::Alive};
  case Observation::ReadyzTimedOut:
    return {true, CheckResult::L7Tout, Sign::None};
  case Observation::ReadyzMalformed:
    return {true, CheckResult::L7Rsp, Sign::None};
  case Observation::ConnectRefused:
    return {true, CheckResult::L4Con, Sign::DeadEvidence};
  case Observation::ConnectTimedOut:
    return {true, CheckResult::L4Tout, Sign::DeadEvidence};
  case Observation::Reset:
    return {true, CheckResult::L4Con, Sign::DeadEvidence};
  case Observation::HandshakeFailed:
    return {true, CheckResult::L6Rsp, Sign::None};
  case Observation::HandshakeTimedOut:
    return {true, CheckResult::L6Tout, Sign::DeadEvidence};
  case Observation::PingAnswered:
    return {false, CheckResult::Ok, Sign::Alive};
  case Observation::PingTimedOut:
    return {true, CheckResult::L7Tout, Sign::DeadEvidence};
  case Observation::Stalled:
    return {true, CheckResult::L7Tout, Sign::DeadEvidence};
  case Observation::GoAway:
    return {false, CheckResult::Ok, Sign::Alive};
  case Observation::NoAnswer:
    return {true, CheckResult::L7Tout, Sign::DeadEvidence};
  }
  return {false, CheckResult::Ok, Sign::None};
}

} // namespace

const char *to_string(Observation o) {
  switch (o) {
  case Observation::ReadyzOk:
    return "readyz_ok";
  case Observation::ReadyzFailed:
    return "readyz_failed";
  case Observation::ReadyzUnauthorized:
    return "readyz_unauthorized";
  case Observation::ReadyzTimedOut:
    return "readyz_timeout";
  case Observation::ReadyzMalformed:
    return "readyz_malformed";
  case Observation::ConnectRefused:
    return "connect_refused";
  case Observation::ConnectTimedOut:
    return "connect_timeout";
  case Observation::Reset:
    return "reset";
  case Observation::HandshakeFailed:
    return "handshake_failed";
  case Observation::HandshakeTimedOut:
    return "handshake_timeout";
  case Observation::PingAnswered:
    return "ping_ok";
  case Observation::PingTimedOut:
    return "ping_timeout";
  case Observation::Stalled:
    return "stalled";
  case Observation::GoAway:
    return "goaway";
  case Observation::NoAnswer:
    return "no_answer";
  }
  return "?";
}

const char *to_string(Life l) {
  switch (l) {
  case Life::Unknown:
    return "unknown";
  case Life::Alive:
    return "alive";
  case Life::Dead:
    return "dead";
  }
  return "?";
}

const char *to_string(CloseDecision d) {
  switch (d) {
  case CloseDecision::Close:
    return "close";
  case CloseDecision::NotDead:
    return "not_dead";
  case CloseDecision::AlreadyClosed:
    return "already_closed";
  case CloseDecision::TrafficSeen:
    return "traffic_seen";
  case CloseDecision::FlapWindow:
    return "flap_window";
  case CloseDecision::NoneReady:
    return "none_ready";
  }
  return "?";
}

Verdict::Verdict(VerdictConfig cfg) : cfg_(cfg), tracker_(cfg.rise, cfg.fall) {
  cfg_.dead_after = std::max(cfg_.dead_after, 1);
  cfg_.flap_window = std::max(cfg_.flap_window, std::chrono::milliseconds(0));
}

Verdict Verdict::with_config(VerdictConfig cfg) const {
  Verdict v = *this;
  v.cfg_ = Verdict(cfg).cfg_;
  v.tracker_ = tracker_.with_thresholds(cfg.rise, cfg.fall);
  return v;
}

VerdictUpdate Verdict::record(Observation o) {
  VerdictUpdate u;
  u.ready_before = ready();
  u.old_life = life_;
  const Effect e = effect_of(o);
  if (e.tracked) {
    u.ready = tracker_.record(e.r);
  } else {
    u.ready.old_health = u.ready.new_health = tracker_.health();
    u.ready.result = e.r;
  }
  switch (e.sign) {
  case Sign::Alive:
    dead_evidence_ = 0;
    life_ = Life::Alive;
    // A new dead period, if one comes, may close again (subject to the flap window).
    closed_this_period_ = false;
    prevented_this_period_ = false;
    break;
  case Sign::DeadEvidence:
    dead_evidence_ = std::min(dead_evidence_ + 1, cfg_.dead_after);
    if (dead_evidence_ >= cfg_.dead_after) {
      if (life_ != Life::Dead) {
        dead_by_ = o;
      }
      life_ = Life::Dead;
    }
    break;
  case Sign::None:
    break;
  }
  u.new_life = life_;
  u.ready_after = ready();
  return u;
}

VerdictUpdate Verdict::set_outside_not_ready(bool on) {
  VerdictUpdate u;
  u.ready_before = ready();
  u.old_life = u.new_life = life_;
  u.ready.old_health = u.ready.new_health = tracker_.health();
  outside_not_ready_ = on;
  u.ready_after = ready();
  return u;
}

void Verdict::on_traffic(TimePoint at) {
  if (!traffic_seen_ || at > last_traffic_) {
    last_traffic_ = at;
  }
  traffic_seen_ = true;
}

CloseDecision Verdict::decide_close(TimePoint now, std::chrono::milliseconds traffic_window,
                                    bool other_ready) {
  if (life_ != Life::Dead) {
    return CloseDecision::NotDead;
  }
  if (closed_this_period_) {
    return CloseDecision::AlreadyClosed;
  }
  CloseDecision d = CloseDecision::Close;
  if (traffic_seen_ && now - last_traffic_ <= traffic_window) {
    d = CloseDecision::TrafficSeen;
  } else if (closed_once_ && now - last_close_ < cfg_.flap_window) {
    d = CloseDecision::FlapWindow;
  } else if (!other_ready && cfg_.hold_when_none_ready) {
    d = CloseDecision::NoneReady;
  }
  if (d == CloseDecision::Close) {
    closed_this_period_ = true;
    closed_once_ = true;
    last_close_ = now;
    mass_closes_++;
  } else if (!prevented_this_period_) {
    prevented_this_period_ = true;
    prevented_closes_++;
  }
  return d;
}

} // namespace kal
