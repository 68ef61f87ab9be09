#pragma once
// A libuv loop for unit tests that drive real sockets, and a watchdog for code that could spin.
#include <doctest/doctest.h>
#include <uv.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <thread>
#include <unistd.h>

namespace kal::testing {

// Handles still open on `loop` (not closing), one line each: "timer (active, ref)".
inline std::string open_handles(uv_loop_t *loop) {
  std::string out;
  uv_walk(
      loop,
      [](uv_handle_t *h, void *arg) {
        if (uv_is_closing(h)) {
          return;
        }
        auto &s = *static_cast<std::string *>(arg);
        s += std::string(uv_handle_type_name(uv_handle_get_type(h))) + " (" +
             (uv_is_active(h) ? "active" : "inactive") + ", " + (uv_has_ref(h) ? "ref" : "unref") +
             ")\n";
      },
      &out);
  return out;
}

struct Loop {
  using Clock = std::chrono::steady_clock;
  uv_loop_t loop;
  Loop() { uv_loop_init(&loop); }
  // Fails the running test if a handle is left open once the code under test is gone (a leak:
  // its owner forgot to close it), naming each one; then closes them so the loop still closes,
  // and checks that uv_loop_close() returns 0.
  ~Loop() {
    // Let the closes already asked for finish; bounded, since a referenced handle left active
    // would keep UV_RUN_DEFAULT running forever.
    for (int i = 0; i < 1000 && uv_loop_alive(&loop); i++) {
      uv_run(&loop, UV_RUN_NOWAIT);
    }
    const std::string leaked = open_handles(&loop);
    CHECK_MESSAGE(leaked.empty(), "handles left open on the test loop:\n" << leaked);
    if (!leaked.empty()) {
      uv_walk(
          &loop,
          [](uv_handle_t *h, void *) {
            if (!uv_is_closing(h)) {
              uv_close(h, nullptr);
            }
          },
          nullptr);
    }
    for (int i = 0; i < 1000 && uv_loop_alive(&loop); i++) {
      uv_run(&loop, UV_RUN_NOWAIT);
    }
    CHECK(uv_loop_close(&loop) == 0);
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
