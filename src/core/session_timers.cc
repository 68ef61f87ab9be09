#include "kube_api_lb/core/session_timers.h"

namespace kal {

uint64_t idle_limit_ms(uint64_t idle_ms, uint64_t half_closed_ms, bool any_fin) {
  if (any_fin && half_closed_ms > 0 && (idle_ms == 0 || half_closed_ms < idle_ms)) {
    return half_closed_ms;
  }
  return idle_ms;
}

TimerPlan plan_timer(SessionPhase phase, size_t replay_bytes, uint64_t first_byte_timeout_ms,
                     uint64_t idle_limit_ms) {
  if (phase == SessionPhase::AwaitFirstByte && replay_bytes > 0) {
    return {TimerPlan::Kind::FirstByte, first_byte_timeout_ms};
  }
  if (phase != SessionPhase::Dialing && idle_limit_ms > 0) {
    // Checked lazily: the timer fires at most twice per idle period instead of being re-armed on
    // every read.
    return {TimerPlan::Kind::Idle, idle_limit_ms / 2 + 1};
  }
  return {};
}

TimerVerdict on_timer(const TimerFacts &f, uint64_t now_ms) {
  if (f.lingering) {
    return TimerVerdict::LingerTick;
  }
  switch (f.phase) {
  case SessionPhase::Dialing:
    return TimerVerdict::ConnectTimedOut;
  case SessionPhase::AwaitFirstByte:
    if (f.first_byte_timer) {
      // The bytes may have outgrown the replay limit meanwhile: then only idleness is checked.
      return f.replay_bytes > 0 ? TimerVerdict::Redial : TimerVerdict::Replan;
    }
    break; // the idle timer: a client that sent nothing yet is idle like any other
  case SessionPhase::Relaying:
    break;
  }
  if (f.idle_limit_ms > 0 && now_ms - f.last_activity_ms >= f.idle_limit_ms) {
    return TimerVerdict::CloseIdle;
  }
  return TimerVerdict::Wait;
}

} // namespace kal
