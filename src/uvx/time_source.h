#pragma once
// Where the shell gets its time: the clock, one-shot timers and the RNG seed, handed in instead of
// read from std::chrono::steady_clock, uv_now() or std::random_device (Envoy's Dispatcher /
// TimeSource). The health checker and its probes take one; every proxy worker takes the one of
// its own loop for its `now`. UvTimeSource (uvx/uv_time_source.h) is the real one, on a libuv
// loop; tests use ManualTimeSource (tests/unit/manual_time_source.h), whose time moves only when
// the test advances it, firing the timers that fall due by hand.
//
// The one time base. Every TimePoint a TimeSource returns is a std::chrono::steady_clock
// time_point counting CLOCK_MONOTONIC since its epoch (boot): the clock libstdc++'s steady_clock,
// libuv's uv_hrtime() and libuv's loop time uv_now() (CLOCK_MONOTONIC, or its _COARSE variant with
// the same epoch) all read on Linux. So a time taken on one loop means the same on another:
// Upstream::up_since_ms(), written by the checker on the main loop, is compared with a worker's
// now on the worker's own loop thread. mono_ms() is the only conversion to plain milliseconds.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>

namespace kal {

using TimePoint = std::chrono::steady_clock::time_point;

// Milliseconds of `t` on the one time base (what Upstream::set_up_since_ms() stores).
inline int64_t mono_ms(TimePoint t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

// A one-shot timer made by a TimeSource; owned by whoever created it; never runs its callback
// again once destroyed. It may be destroyed from inside its own callback (a check's end that
// reloads the checker and retires the probe whose timeout fired), as long as the callback touches
// nothing it captured afterwards.
class Timer {
public:
  virtual ~Timer() = default;
  // Arms (or re-arms, replacing the earlier deadline) the timer to run its callback once, `d` from
  // the time source's now (negative counts as zero: on a later turn, never inside this call).
  virtual void enable(std::chrono::milliseconds d) = 0;
  virtual void disable() = 0;
  virtual bool enabled() const = 0;
};

// Whether an armed timer keeps its loop running. Background timers (a periodic file watch) never
// keep a stopping loop alive; ManualTimeSource fires both kinds alike.
enum class TimerKind { KeepsLoopAlive, Background };

// Lives on one loop: everything is called on that loop's thread, and it must outlive every timer
// it created and every object it was handed to.
class TimeSource {
public:
  virtual ~TimeSource() = default;
  // Now, on the one time base above. Monotonic; at least microsecond resolution on the real one.
  virtual TimePoint now() const = 0;
  // A new, disarmed timer that calls `cb` on this source's loop when it falls due.
  virtual std::unique_ptr<Timer> create_timer(std::function<void()> cb,
                                              TimerKind kind = TimerKind::KeepsLoopAlive) = 0;
  // A seed for a random generator (check jitter): fresh entropy on the real source, a fixed
  // (settable) value on the manual one, so tests replay the same jitter.
  virtual uint64_t seed() = 0;
};

} // namespace kal
