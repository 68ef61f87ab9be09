#include "uvx/uv_time_source.h"

#include "uvx/handle.h"

#include <algorithm>
#include <random>

namespace kal::uvx {
namespace {

class UvTimer final : public kal::Timer {
public:
  UvTimer(uv_loop_t *loop, std::function<void()> cb, TimerKind kind) : cb_(std::move(cb)) {
    if (timer_.init(loop, this) && kind == TimerKind::Background) {
      timer_.unref();
    }
  }
  // uvx::Handle clears `data` and closes: a callback already queued finds no owner.
  ~UvTimer() override = default;

  void enable(std::chrono::milliseconds d) override {
    timer_.start(&UvTimer::timer_cb, static_cast<uint64_t>(std::max<int64_t>(d.count(), 0)));
  }
  void disable() override { timer_.stop(); }
  bool enabled() const override { return timer_.active(); }

private:
  static void timer_cb(uv_timer_t *h) noexcept {
    if (auto *self = owner_of<UvTimer>(h)) {
      self->cb_();
    }
  }

  std::function<void()> cb_;
  uvx::Timer timer_;
};

} // namespace

TimePoint UvTimeSource::now() const { return TimePoint(std::chrono::nanoseconds(uv_hrtime())); }

std::unique_ptr<kal::Timer> UvTimeSource::create_timer(std::function<void()> cb, TimerKind kind) {
  return std::make_unique<UvTimer>(loop_, std::move(cb), kind);
}

uint64_t UvTimeSource::seed() {
  std::random_device rd;
  return (static_cast<uint64_t>(rd()) << 32) ^ rd();
}

} // namespace kal::uvx
