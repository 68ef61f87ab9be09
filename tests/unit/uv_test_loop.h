#pragma once
// A libuv loop for unit tests that drive real sockets, and a watchdog for code that could spin.
#include <uv.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <thread>
#include <unistd.h>

namespace kal::testing {

struct Loop {
  using Clock = std::chrono::steady_clock;
  uv_loop_t loop;
  Loop() { uv_loop_init(&loop); }
  ~Loop() {
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
  }
  Loop(const Loop &) = delete;
  Loop &operator=(const Loop &) = delete;

  // Runs the loop until `pred` holds or `limit` passes; returns whether `pred` held.
  bool run_until(const std::function<bool()> &pred, std::chrono::milliseconds limit) {
    uv_timer_t tick; // keeps uv_run(UV_RUN_ONCE) from blocking past the deadline
    uv_timer_init(&loop, &tick);
    uv_timer_start(
        &tick, [](uv_timer_t *) {}, 5, 5);
    const auto deadline = Clock::now() + limit;
    bool ok = pred();
    while (!ok && Clock::now() < deadline) {
      uv_run(&loop, UV_RUN_ONCE);
      ok = pred();
    }
    uv_close(reinterpret_cast<uv_handle_t *>(&tick), nullptr);
    uv_run(&loop, UV_RUN_NOWAIT);
    return ok;
  }
  void run_for(std::chrono::milliseconds d) {
    run_until([] { return false; }, d);
  }
};

// Ends the test process with a message if the scope is still running after `limit`: for code
// whose failure mode is a loop that never returns.
class Watchdog {
public:
  Watchdog(std::chrono::seconds limit, const char *what)
      : thread_([this, limit, what] {
          auto end = std::chrono::steady_clock::now() + limit;
          while (!done_ && std::chrono::steady_clock::now() < end) {
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
          }
          if (!done_) {
            std::fprintf(stderr, "watchdog: %s: still running after %llds\n", what,
                         static_cast<long long>(limit.count()));
            _exit(3);
          }
        }) {}
  ~Watchdog() {
    done_ = true;
    thread_.join();
  }
  Watchdog(const Watchdog &) = delete;
  Watchdog &operator=(const Watchdog &) = delete;

private:
  std::atomic<bool> done_{false};
  std::thread thread_;
};

} // namespace kal::testing
