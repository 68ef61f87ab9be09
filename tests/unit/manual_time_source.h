#pragma once
// A TimeSource for tests: time stands still until the test moves it, and timers fire only inside
// advance() / fire_due(), in deadline order (ties in arming order), each with now() set to its
// deadline. Nothing here touches a loop, so it drives code whose I/O runs on a real libuv loop
// (real sockets) while its timers and clock are the test's.
#include "uvx/time_source.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <vector>

namespace kal::testing {

class ManualTimeSource final : public TimeSource {
public:
  // Starts at an arbitrary but realistic point (a day after boot), never at the epoch: code that
  // treats TimePoint{} as "never" must not be fooled.
  explicit ManualTimeSource(TimePoint start = TimePoint(std::chrono::hours(24)), uint64_t seed = 42)
      : now_(start), seed_(seed) {}
  ~ManualTimeSource() override {
    for (ManualTimer *t : timers_) {
      t->source_ = nullptr; // a timer outliving its source is inert (the test's mistake)
    }
  }
  ManualTimeSource(const ManualTimeSource &) = delete;
  ManualTimeSource &operator=(const ManualTimeSource &) = delete;

  TimePoint now() const override {
    now_ += read_step_;
    return now_;
  }
  std::unique_ptr<Timer> create_timer(std::function<void()> cb, TimerKind = {}) override {
    return std::make_unique<ManualTimer>(*this, std::move(cb));
  }
  uint64_t seed() override { return seed_; }

  // Every now() read moves time on by `d` (default 0) without firing anything: with 1 µs, a
  // duration measured around real I/O is never zero, as on a real clock.
  void set_read_step(std::chrono::nanoseconds d) { read_step_ = d; }
  void set_seed(uint64_t s) { seed_ = s; }

  // The earliest deadline of an armed timer, if any.
  std::optional<TimePoint> next_due() const {
    std::optional<TimePoint> best;
    for (const ManualTimer *t : timers_) {
      if (t->armed_ && (!best || t->due_ < *best)) {
        best = t->due_;
      }
    }
    return best;
  }
  size_t armed() const {
    return static_cast<size_t>(
        std::count_if(timers_.begin(), timers_.end(), [](auto *t) { return t->armed_; }));
  }

  // Fires, one at a time, every timer due at or before now (also ones armed by the callbacks
  // with a zero delay). Returns how many fired. Bounded: a callback re-arming itself with 0 ms
  // forever is a bug the test should see, so it stops after `limit` firings.
  size_t fire_due(size_t limit = 10000) { return fire_until(now_, limit); }

  // Moves time on by `d`, firing each timer that falls due on the way at its own deadline.
  size_t advance(std::chrono::nanoseconds d, size_t limit = 10000) {
    const TimePoint to = now_ + d;
    const size_t n = fire_until(to, limit);
    now_ = std::max(now_, to);
    return n;
  }

private:
  class ManualTimer final : public Timer {
  public:
    ManualTimer(ManualTimeSource &s, std::function<void()> cb) : source_(&s), cb_(std::move(cb)) {
      s.timers_.push_back(this);
    }
    ~ManualTimer() override {
      if (source_) {
        auto &v = source_->timers_;
        v.erase(std::remove(v.begin(), v.end(), this), v.end());
      }
    }
    void enable(std::chrono::milliseconds d) override {
      if (!source_) {
        return;
      }
      armed_ = true;
      due_ = source_->now_ + std::max(d, std::chrono::milliseconds(0));
      order_ = source_->next_order_++;
    }
    void disable() override { armed_ = false; }
    bool enabled() const override { return armed_; }

  private:
    friend class ManualTimeSource;
    ManualTimeSource *source_;
    std::function<void()> cb_;
    bool armed_ = false;
    TimePoint due_{};
    uint64_t order_ = 0;
  };

  size_t fire_until(TimePoint to, size_t limit) {
    size_t fired = 0;
    while (fired < limit) {
      ManualTimer *next = nullptr;
      for (ManualTimer *t : timers_) {
        if (t->armed_ && t->due_ <= to &&
            (!next || t->due_ < next->due_ ||
             (t->due_ == next->due_ && t->order_ < next->order_))) {
          next = t;
        }
      }
      if (!next) {
        break;
      }
      now_ = std::max(now_, next->due_);
      next->armed_ = false;
      fired++;
      next->cb_(); // may create, arm or destroy timers (never `next` itself, see Timer)
    }
    return fired;
  }

  mutable TimePoint now_;
  std::chrono::nanoseconds read_step_{0};
  uint64_t seed_;
  uint64_t next_order_ = 0;
  std::vector<ManualTimer *> timers_;
};

} // namespace kal::testing
