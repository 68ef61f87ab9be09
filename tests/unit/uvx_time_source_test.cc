// The two TimeSources: the real one on a libuv loop (and the one time base it shares with
// steady_clock and uv_now), and the manual one the health checker's tests step by hand.
#include "manual_time_source.h"
#include "uv_test_loop.h"
#include "uvx/uv_time_source.h"

#include <doctest/doctest.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using kal::mono_ms;
using kal::TimePoint;
using kal::testing::Loop;
using kal::testing::ManualTimeSource;

TEST_CASE("time source: the real one reads the one time base: steady_clock and uv_now agree") {
  Loop l;
  kal::uvx::UvTimeSource ts(&l.loop);
  uv_update_time(&l.loop);
  const TimePoint before = std::chrono::steady_clock::now();
  const TimePoint now = ts.now();
  const TimePoint after = std::chrono::steady_clock::now();
  CHECK(before <= now);
  CHECK(now <= after);
  // uv_now() is the loop's cached time in milliseconds (CLOCK_MONOTONIC or its coarse twin, the
  // same epoch): what the workers' sessions compare with up_since_ms().
  const int64_t loop_ms = static_cast<int64_t>(uv_now(&l.loop));
  CHECK(std::abs(mono_ms(now) - loop_ms) <= 20);
  CHECK(ts.seed() != ts.seed()); // fresh entropy (equal by chance once in 2^64)
}

TEST_CASE("time source: real timers fire once, re-arm, disable, and die with their owner") {
  Loop l;
  kal::uvx::UvTimeSource ts(&l.loop);
  int fired = 0;
  auto t = ts.create_timer([&] { fired++; });
  CHECK_FALSE(t->enabled());
  t->enable(1ms);
  CHECK(t->enabled());
  REQUIRE(l.run_until([&] { return fired == 1; }, 2s));
  CHECK_FALSE(t->enabled()); // one-shot
  t->enable(0ms);
  t->disable();
  l.run_for(10ms);
  CHECK(fired == 1);
  t->enable(0ms);
  t.reset(); // armed, then destroyed: never fires, and its handle closes
  l.run_for(10ms);
  CHECK(fired == 1);

  // A background timer never keeps the loop running; a normal one does.
  auto bg = ts.create_timer([&] { fired++; }, kal::TimerKind::Background);
  bg->enable(60s);
  CHECK(uv_run(&l.loop, UV_RUN_NOWAIT) == 0);
  auto fg = ts.create_timer([&] { fired++; });
  fg->enable(60s);
  CHECK(uv_run(&l.loop, UV_RUN_NOWAIT) != 0);
}

TEST_CASE("time source: manual timers fire in deadline order, at their deadline, only when "
          "stepped") {
  const TimePoint t0 = TimePoint(24h);
  ManualTimeSource ts(t0, 7);
  CHECK(ts.now() == t0);
  CHECK(ts.seed() == 7);
  std::vector<std::string> log;
  std::unique_ptr<kal::Timer> a, b, c;
  a = ts.create_timer([&] {
    log.push_back("a@" + std::to_string(mono_ms(ts.now()) - mono_ms(t0)));
    b->enable(5ms); // re-arms another from inside a callback
  });
  b = ts.create_timer(
      [&] { log.push_back("b@" + std::to_string(mono_ms(ts.now()) - mono_ms(t0))); });
  c = ts.create_timer([&] { log.push_back("c"); });
  a->enable(10ms);
  b->enable(30ms);
  c->enable(20ms);
  CHECK(ts.armed() == 3);
  CHECK(*ts.next_due() == t0 + 10ms);
  CHECK(ts.fire_due() == 0); // nothing is due until time moves
  c.reset();                 // destroyed while armed: gone
  CHECK(ts.advance(12ms) == 1);
  CHECK(ts.now() == t0 + 12ms);
  CHECK(ts.advance(100ms) == 1);
  CHECK(log == std::vector<std::string>{"a@10", "b@15"}); // b re-armed 5 ms after a's deadline
  CHECK_FALSE(ts.next_due());

  // Zero delays run at the next fire_due(), in arming order; a timer re-arming itself with zero
  // delay forever is stopped by the bound.
  log.clear();
  a = ts.create_timer([&] { log.push_back("a"); });
  b = ts.create_timer([&] { log.push_back("b"); });
  b->enable(0ms);
  a->enable(0ms);
  CHECK(ts.fire_due() == 2);
  CHECK(log == std::vector<std::string>{"b", "a"});
  c = ts.create_timer([&] { c->enable(0ms); });
  c->enable(0ms);
  CHECK(ts.fire_due(50) == 50);

  // With a read step every now() moves on, without firing anything.
  ts.set_read_step(1us);
  const TimePoint r1 = ts.now(), r2 = ts.now();
  CHECK(r2 - r1 == 1us);
}

// The loop fixture's own check: a handle still open when the test ends fails the test (the
// fixture names it, "timer (active, ref)", then closes it so the loop can close).
TEST_CASE("time source: a timer left open on the test loop fails the test" *
          doctest::should_fail()) {
  static uv_timer_t forgotten; // static: the fixture's uv_close(h, nullptr) frees nothing
  Loop l;
  kal::uvx::UvTimeSource ts(&l.loop);
  uv_timer_init(&l.loop, &forgotten);
  uv_timer_start(
      &forgotten, [](uv_timer_t *) {}, 60000, 0);
}
