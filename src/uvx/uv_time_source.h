#pragma once
// The real TimeSource: timers are uv_timer handles on one libuv loop, now() is uv_hrtime()
// (CLOCK_MONOTONIC, nanoseconds: the one time base of uvx/time_source.h), the seed comes from
// std::random_device. One per loop: ProxyApp makes one for the main loop (health checker and
// worker 0) and one for each worker thread's loop.
#include "uvx/time_source.h"

#include <uv.h>

namespace kal::uvx {

class UvTimeSource final : public TimeSource {
public:
  // `loop` is not owned and must outlive this object and every timer it creates.
  explicit UvTimeSource(uv_loop_t *loop) : loop_(loop) {}
  UvTimeSource(const UvTimeSource &) = delete;
  UvTimeSource &operator=(const UvTimeSource &) = delete;

  TimePoint now() const override;
  // A uv_timer on the loop; closed (uvx::Handle) when the returned Timer is destroyed.
  std::unique_ptr<kal::Timer> create_timer(std::function<void()> cb,
                                           TimerKind kind = TimerKind::KeepsLoopAlive) override;
  uint64_t seed() override;

  uv_loop_t *loop() const { return loop_; }

private:
  uv_loop_t *loop_;
};

} // namespace kal::uvx
