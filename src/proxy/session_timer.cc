// Session's one timer: what it waits for now (connect, first byte, idle, half-closed, linger) and
// what its firing means. The decisions are core/session_timers.h's; this file arms the libuv timer
// and carries the verdict out. Kept apart from session.cc so the relay reads on its own.
#include "proxy/session.h"

#include "kube_api_lb/log/logger.h"
#include "proxy/worker.h"

namespace kal {

uint64_t Session::idle_limit() const {
  const auto &s = worker_.settings();
  return idle_limit_ms(s.idle_timeout_ms, s.half_closed_timeout_ms, c2u_.eof || u2c_.eof);
}

void Session::arm_timer() {
  TimerPlan plan =
      plan_timer(phase_, replay_.size(), worker_.settings().first_byte_timeout_ms, idle_limit());
  first_byte_timer_ = plan.kind == TimerPlan::Kind::FirstByte;
  if (plan.kind == TimerPlan::Kind::Stop) {
    timer_.stop();
  } else {
    timer_.start(timer_cb, plan.period_ms, first_byte_timer_ ? 0 : plan.period_ms);
  }
}

void Session::timer_cb(uv_timer_t *t) noexcept {
  if (auto *self = static_cast<Session *>(t->data)) {
    self->on_timer();
  }
}

void Session::on_timer() {
  if (closed_) {
    return;
  }
  TimerFacts f{.phase = phase_,
               .lingering = linger_.active(),
               .first_byte_timer = first_byte_timer_,
               .replay_bytes = replay_.size(),
               .idle_limit_ms = idle_limit(),
               .last_activity_ms = last_activity_ms_};
  switch (kal::on_timer(f, uv_now(worker_.loop()))) {
  case TimerVerdict::LingerTick:
    on_linger_tick();
    return;
  case TimerVerdict::ConnectTimedOut:
    if (log::v(1)) {
      log::info("upstream connect timed out").kv("endpoint", up_ ? up_->name() : "?");
    }
    on_connect(UV_ETIMEDOUT);
    return;
  case TimerVerdict::Redial:
    redial(true);
    return;
  case TimerVerdict::Replan:
    arm_timer();
    return;
  case TimerVerdict::CloseIdle:
    close(CloseReason::IdleTimeout);
    return;
  case TimerVerdict::Wait:
    return;
  }
}

} // namespace kal
