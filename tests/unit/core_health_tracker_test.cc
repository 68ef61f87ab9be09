#include "kube_api_lb/core/health_tracker.h"

#include <doctest/doctest.h>

#include <random>
#include <string>
#include <vector>

using kal::CheckResult;
using kal::Health;
using kal::HealthTracker;
using kal::Transition;

namespace {

// HAProxy's counter arithmetic (src/check.c, set_server_check_status), transcribed as the oracle.
struct HaproxyOracle {
  int rise, fall, health;
  void pass() {
    if (health < rise + fall - 1) {
      health++;
      if (health >= rise) {
        health = rise + fall - 1;
      }
    }
  }
  void fail() {
    if (health > 0) {
      health--;
      if (health < rise) {
        health = 0;
      }
    }
  }
  bool up() const { return health >= rise; }
};

struct Step {
  CheckResult r;
  Health health;
  const char *progress;
  Transition t;
};

constexpr auto P = CheckResult::Ok;
constexpr auto TOUT = CheckResult::L4Tout;
constexpr auto STS = CheckResult::L7Sts;
constexpr auto AUTH = CheckResult::L7Auth;
constexpr auto UP = Health::Up;
constexpr auto DOWN = Health::Down;
constexpr auto SAME = Transition::Unchanged;
constexpr auto PEND = Transition::ChangePending;
constexpr auto CHG = Transition::Changed;

void run_table(int rise, int fall, const std::vector<Step> &steps) {
  HealthTracker t(rise, fall);
  CHECK(t.health() == Health::Unknown);
  int i = 0;
  for (const auto &s : steps) {
    CAPTURE(i);
    auto u = t.record(s.r);
    CHECK(u.first == (i == 0));
    CHECK(u.new_health == s.health);
    CHECK(t.health() == s.health);
    CHECK(t.progress() == s.progress);
    CHECK(u.transition == s.t);
    i++;
  }
}

} // namespace

TEST_CASE("tracker: first result decides at once") {
  run_table(2, 2, {{P, UP, "2/2", CHG}});
  run_table(2, 2, {{TOUT, DOWN, "0/2", CHG}});
  run_table(3, 5, {{STS, DOWN, "0/3", CHG}});
  run_table(3, 5, {{P, UP, "5/5", CHG}});
}

TEST_CASE("tracker: rise 2 fall 2, HAProxy x/y progress") {
  run_table(2, 2,
            {
                {P, UP, "2/2", CHG},
                {P, UP, "2/2", SAME},
                {TOUT, UP, "1/2", PEND}, // one failure: still up, one to go
                {P, UP, "2/2", PEND},    // a pass restores it fully
                {TOUT, UP, "1/2", PEND},
                {TOUT, DOWN, "0/2", CHG}, // health=down 0/2
                {TOUT, DOWN, "0/2", SAME},
                {P, DOWN, "1/2", PEND},   // rising
                {STS, DOWN, "0/2", PEND}, // a failure while rising restarts the climb
                {P, DOWN, "1/2", PEND},
                {P, UP, "2/2", CHG},
            });
}

TEST_CASE("tracker: rise 3 fall 1") {
  run_table(3, 1,
            {
                {P, UP, "1/1", CHG},
                {STS, DOWN, "0/3", CHG},
                {P, DOWN, "1/3", PEND},
                {P, DOWN, "2/3", PEND},
                {P, UP, "1/1", CHG},
            });
}

TEST_CASE("tracker: L7Auth never takes an endpoint down") {
  run_table(2, 2, {{AUTH, UP, "2/2", CHG}, {AUTH, UP, "2/2", SAME}, {AUTH, UP, "2/2", SAME}});
  // It counts as a layer-6 pass: a down endpoint that now answers 401 comes back.
  run_table(2, 2, {{TOUT, DOWN, "0/2", CHG}, {AUTH, DOWN, "1/2", PEND}, {AUTH, UP, "2/2", CHG}});
}

TEST_CASE("tracker: matches HAProxy's counter on random sequences") {
  std::mt19937 rng(42);
  for (int rise = 1; rise <= 4; rise++) {
    for (int fall = 1; fall <= 4; fall++) {
      for (int run = 0; run < 50; run++) {
        HealthTracker t(rise, fall);
        // After the first result, HAProxy's counter sits at the same extreme.
        const bool first_pass = rng() % 2;
        t.record(first_pass ? P : TOUT);
        HaproxyOracle o{rise, fall, first_pass ? rise + fall - 1 : 0};
        for (int i = 0; i < 40; i++) {
          const bool pass = rng() % 3 != 0;
          const Health before = t.health();
          const int counter_before = t.counter();
          auto u = t.record(pass ? P : STS);
          pass ? o.pass() : o.fail();
          REQUIRE(t.counter() == o.health);
          REQUIRE((t.health() == Health::Up) == o.up());
          const Transition want = t.health() != before            ? Transition::Changed
                                  : t.counter() != counter_before ? Transition::ChangePending
                                                                  : Transition::Unchanged;
          REQUIRE(u.transition == want);
        }
      }
    }
  }
}

TEST_CASE("tracker: passive failures dent but never cross the threshold") {
  HealthTracker t(2, 3);
  auto u = t.record_passive_failures(5);
  CHECK(u.transition == Transition::Unchanged); // Unknown stays Unknown: the active check decides
  CHECK(t.health() == Health::Unknown);

  t.record(P);
  CHECK(t.progress() == "3/3");
  u = t.record_passive_failures(1);
  CHECK(u.transition == Transition::ChangePending);
  CHECK(t.health() == Health::Up);
  CHECK(t.progress() == "2/3");
  u = t.record_passive_failures(100);
  CHECK(u.transition == Transition::ChangePending);
  CHECK(t.progress() == "1/3"); // one failure from down
  u = t.record_passive_failures(1);
  CHECK(u.transition == Transition::Unchanged);
  // The active re-check decides.
  u = t.record(TOUT);
  CHECK(u.transition == Transition::Changed);
  CHECK(t.health() == Health::Down);

  // While rising, passive evidence restarts the climb.
  t.record(P);
  CHECK(t.progress() == "1/2");
  u = t.record_passive_failures(1);
  CHECK(u.transition == Transition::ChangePending);
  CHECK(t.progress() == "0/2");
  CHECK(t.record_passive_failures(0).transition == Transition::Unchanged);
}

TEST_CASE("tracker: fully up / fully down / changing") {
  HealthTracker t(2, 2);
  CHECK(t.changing());
  t.record(P);
  CHECK(t.fully_up());
  t.record(TOUT);
  CHECK(t.changing());
  t.record(TOUT);
  CHECK(t.fully_down());
  t.record(P);
  CHECK(t.changing());
  CHECK(HealthTracker(0, -1).rise() == 1); // clamped
}

TEST_CASE("tracker: new thresholds keep the state and the progress that fits") {
  HealthTracker unknown(2, 2);
  CHECK(unknown.with_thresholds(3, 3).health() == Health::Unknown);

  HealthTracker t(2, 2);
  t.record(P);
  HealthTracker n = t.with_thresholds(3, 3);
  CHECK(n.health() == Health::Up);
  CHECK(n.fully_up());
  CHECK(n.progress() == "3/3");
  CHECK(!n.record(TOUT).first); // decided by the counter, not as a first result
  CHECK(n.health() == Health::Up);
  CHECK(n.record(TOUT).new_health == Health::Up);
  CHECK(n.record(TOUT).transition == Transition::Changed); // `fall` failures take it down

  // One failure seen while up stays seen; more than the new `fall` allows leaves it one away.
  t.record(TOUT);
  CHECK(t.progress() == "1/2");
  CHECK(t.with_thresholds(3, 3).progress() == "2/3");
  CHECK(t.with_thresholds(2, 1).progress() == "1/1");
  HealthTracker one = t.with_thresholds(2, 1);
  CHECK(one.record(TOUT).new_health == Health::Down);

  // Down stays down; passes so far count, up to rise-1.
  t.record(TOUT);
  t.record(P);
  CHECK(t.progress() == "1/2");
  HealthTracker d = t.with_thresholds(3, 2);
  CHECK(d.health() == Health::Down);
  CHECK(d.progress() == "1/3");
  CHECK(d.record(P).new_health == Health::Down);
  CHECK(d.record(P).new_health == Health::Up);
  CHECK(t.with_thresholds(1, 2).progress() == "0/1");
  CHECK(t.with_thresholds(1, 2).record(P).new_health == Health::Up);
}
