#pragma once
// A session's one timer and what it means when it fires: the connect timeout while dialling, the
// first-byte timeout while an upstream owes an answer to the client's bytes, and the idle timeout
// (the shorter half-closed timeout once either side sent its FIN) otherwise.
//
// Times are the worker loop's millisecond clock (uv_now) passed in as `now_ms`, and durations are
// milliseconds, as in ProxySettings. Tables: tests/unit/core_session_timers_test.cc.
#include "kube_api_lb/core/session_policy.h"

#include <cstdint>

namespace kal {

// The idle limit in force: `idle_ms`, or `half_closed_ms` once `any_fin` (either side sent its FIN)
// when that is shorter. 0 means none (either setting 0 means that one never applies).
uint64_t idle_limit_ms(uint64_t idle_ms, uint64_t half_closed_ms, bool any_fin);

// How to arm the timer after a change of phase or new client bytes.
struct TimerPlan {
  enum class Kind : uint8_t {
    FirstByte, // one-shot after `first_byte_timeout_ms`: the upstream owes an answer
    Idle,      // repeating every `period_ms`: idleness is checked lazily, twice per limit
    Stop,      // nothing to time (dialling has its own connect timer, or no idle limit)
  };
  Kind kind = Kind::Stop;
  uint64_t period_ms = 0;
  bool operator==(const TimerPlan &) const = default;
};
// `replay_bytes`: the client bytes the upstream has been sent and not answered; the first-byte
// timeout counts from the latest of them, so the relay re-plans on every piece a slow client sends.
TimerPlan plan_timer(SessionPhase phase, size_t replay_bytes, uint64_t first_byte_timeout_ms,
                     uint64_t idle_limit_ms);

// What the timer's firing means.
enum class TimerVerdict : uint8_t {
  LingerTick,      // the session is lingering: poll what is still owed to the client
  ConnectTimedOut, // the dial took too long: a connect failure, dial the next endpoint
  Redial,          // no first byte in time: count it, replay to another endpoint
  Replan,          // the first-byte timer fired with nothing held: only idleness is timed now
  CloseIdle,       // nothing moved for the idle limit
  Wait,            // not yet
};
struct TimerFacts {
  SessionPhase phase = SessionPhase::Dialing;
  bool lingering = false;
  bool first_byte_timer = false; // the timer was armed as TimerPlan::Kind::FirstByte
  size_t replay_bytes = 0;
  uint64_t idle_limit_ms = 0;
  uint64_t last_activity_ms = 0; // the latest byte read, or write completed
};
TimerVerdict on_timer(const TimerFacts &f, uint64_t now_ms);

} // namespace kal
