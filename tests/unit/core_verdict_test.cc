#include "kube_api_lb/core/verdict.h"

#include <doctest/doctest.h>

#include <optional>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using kal::CloseDecision;
using kal::Health;
using kal::Life;
using kal::Observation;
using kal::TimePoint;
using kal::Verdict;
using kal::VerdictConfig;
using std::chrono::milliseconds;

namespace {

using O = Observation;
using L = Life;
using D = CloseDecision;

// One step at t ms: an observation, or traffic seen, then (when `decide` is set) a close
// decision with a 400 ms traffic window; then the expected verdicts.
struct Step {
  int64_t t;
  std::optional<Observation> obs; // nullopt: bytes arrived from the endpoint at t
  bool ready;
  Life live;
  std::optional<CloseDecision> decide = std::nullopt;
  bool other_ready = true;
};

TimePoint at(int64_t ms) { return TimePoint{} + milliseconds(ms); }

const std::nullopt_t traffic = std::nullopt;

Verdict run(const char *name, const std::vector<Step> &steps, VerdictConfig cfg = {}) {
  Verdict v(cfg);
  for (size_t i = 0; i < steps.size(); i++) {
    const Step &s = steps[i];
    const std::string n = name;
    CAPTURE(n);
    CAPTURE(i);
    CAPTURE(s.t);
    if (s.obs) {
      const std::string label1 = kal::to_string(*s.obs);
      CAPTURE(label1);
      v.record(*s.obs);
    } else {
      v.on_traffic(at(s.t));
    }
    CHECK(v.ready() == s.ready);
    CHECK(v.life() == s.live);
    CHECK(v.health() == (s.live == L::Dead ? Health::Down : v.tracker().health()));
    if (s.decide) {
      CHECK(kal::to_string(v.decide_close(at(s.t), 400ms, s.other_ready)) ==
            std::string(kal::to_string(*s.decide)));
    }
  }
  return v;
}

} // namespace

TEST_CASE("verdict: an overloaded apiserver (slow /readyz, PINGs answered) closes nothing") {
  auto v = run("overload", {
                               {0, O::ReadyzOk, true, L::Alive},
                               {1000, O::PingAnswered, true, L::Alive},
                               {10000, O::ReadyzTimedOut, true, L::Alive, D::NotDead},
                               {10400, O::PingAnswered, true, L::Alive},
                               {10650, O::ReadyzTimedOut, false, L::Alive, D::NotDead},
                               {11000, O::PingAnswered, false, L::Alive, D::NotDead},
                               {11150, O::ReadyzTimedOut, false, L::Alive, D::NotDead},
                               // Overload over: /readyz answers again, rise 2.
                               {11650, O::ReadyzOk, false, L::Alive},
                               {11900, O::ReadyzOk, true, L::Alive},
                           });
  CHECK(v.mass_closes() == 0);
  CHECK(v.prevented_closes() == 0);
}

TEST_CASE("verdict: draining (/readyz 500) is not ready, not dead; its closed listener is dead "
          "evidence the close gate holds while its watches stream") {
  auto v = run("drain", {
                            {0, O::ReadyzOk, true, L::Alive},
                            {100, O::ReadyzFailed, true, L::Alive},
                            {350, O::ReadyzFailed, false, L::Alive, D::NotDead},
                            {900, O::GoAway, false, L::Alive},
                            // Listener closed at the end of the shutdown delay (or at once with
                            // --shutdown-delay-duration=0) while its watches still stream.
                            {950, traffic, false, L::Alive},
                            {1000, O::ConnectRefused, false, L::Alive, D::NotDead},
                            {1450, traffic, false, L::Alive},
                            {1500, O::ConnectRefused, false, L::Dead, D::TrafficSeen},
                            {1600, traffic, false, L::Dead, std::nullopt},
                            {2000, O::ConnectRefused, false, L::Dead, D::TrafficSeen},
                            // The apiserver ended its watches; nothing arrived for 401 ms.
                            {2001, O::ConnectRefused, false, L::Dead, D::Close},
                            // Restarted and ready again.
                            {5000, O::ReadyzFailed, false, L::Alive},
                            {5500, O::ReadyzOk, false, L::Alive},
                            {5750, O::ReadyzOk, true, L::Alive},
                        });
  CHECK(v.mass_closes() == 1);
  CHECK(v.prevented_closes() == 1);
}

TEST_CASE("verdict: a crash (connects refused, nothing arriving) is dead after two and closes") {
  auto v = run("crash", {
                            {0, O::ReadyzOk, true, L::Alive},
                            {1000, O::PingAnswered, true, L::Alive},
                            {1200, O::ConnectRefused, true, L::Alive, D::NotDead},
                            {1201, O::ConnectRefused, false, L::Dead, D::Close},
                            {1700, O::ConnectRefused, false, L::Dead, D::AlreadyClosed},
                        });
  CHECK(v.dead_by() == O::ConnectRefused);
  CHECK(v.mass_closes() == 1);
  auto w = run("reset", {
                            {0, O::ReadyzOk, true, L::Alive},
                            {10, O::Reset, true, L::Alive},
                            {20, O::ConnectRefused, false, L::Dead, D::Close},
                        });
  CHECK(w.dead_by() == O::ConnectRefused);
}

TEST_CASE("verdict: an outside not-ready signal steers away, closes nothing, lifts at once") {
  Verdict v;
  v.record(O::ReadyzOk);
  REQUIRE(v.ready());
  auto u = v.set_outside_not_ready(true);
  CHECK(u.ready_before);
  CHECK_FALSE(u.ready_after);
  CHECK(u.ready_changed());
  CHECK_FALSE(v.ready());
  CHECK(v.health() == Health::Down);
  CHECK(v.life() == L::Alive);
  CHECK(v.decide_close(at(0), 400ms, true) == D::NotDead);
  // /readyz keeps passing: still held.
  v.record(O::ReadyzOk);
  v.record(O::PingAnswered);
  CHECK_FALSE(v.ready());
  CHECK(v.tracker().health() == Health::Up);
  // A reload keeps the hold.
  VerdictConfig cfg;
  cfg.rise = 3;
  Verdict w = v.with_config(cfg);
  CHECK(w.outside_not_ready());
  CHECK_FALSE(w.ready());
  // Dead evidence while held still makes it dead; the gate decides as always.
  w.record(O::PingTimedOut);
  w.record(O::PingTimedOut);
  CHECK(w.dead());
  CHECK(w.decide_close(at(1000), 400ms, true) == D::Close);
  // Lifted: readiness is the tracker's again at once.
  Verdict x;
  x.record(O::ReadyzOk);
  x.set_outside_not_ready(true);
  u = x.set_outside_not_ready(false);
  CHECK(u.ready_changed());
  CHECK(x.ready());
  CHECK(x.health() == Health::Up);
  // Held before the first check: not ready whatever the first /readyz says.
  Verdict y;
  y.set_outside_not_ready(true);
  y.record(O::ReadyzOk);
  CHECK_FALSE(y.ready());
  CHECK(y.health() == Health::Down);
}

TEST_CASE("verdict: a hang (PINGs unanswered) is dead after two, closes once") {
  auto v = run("hang", {
                           {0, O::ReadyzOk, true, L::Alive},
                           {1000, O::PingAnswered, true, L::Alive},
                           {2400, O::PingTimedOut, true, L::Alive, D::NotDead},
                           // The confirming re-check on a fresh connection gets no handshake.
                           {2800, O::HandshakeTimedOut, false, L::Dead, D::Close},
                           {3200, O::ConnectTimedOut, false, L::Dead, D::AlreadyClosed},
                           {4000, O::PingTimedOut, false, L::Dead, D::AlreadyClosed},
                       });
  CHECK(v.mass_closes() == 1);
  CHECK(v.prevented_closes() == 0);
  CHECK(v.tracker().health() == Health::Down);
}

TEST_CASE("verdict: dead evidence table (two of a kind, alive evidence interrupts)") {
  struct Row {
    Observation o;
    bool dead_evidence;
  };
  const std::vector<Row> rows = {
      {O::ReadyzOk, false},
      {O::ReadyzFailed, false},
      {O::ReadyzUnauthorized, false},
      {O::ReadyzTimedOut, false},
      {O::ReadyzMalformed, false},
      {O::ConnectRefused, true},
      {O::ConnectTimedOut, true},
      {O::Reset, true},
      {O::HandshakeFailed, false},
      {O::HandshakeTimedOut, true},
      {O::PingAnswered, false},
      {O::PingTimedOut, true},
      {O::Stalled, true},
      {O::GoAway, false},
      {O::NoAnswer, true},
  };
  for (const auto &r : rows) {
    const std::string label2 = kal::to_string(r.o);
    CAPTURE(label2);
    Verdict v;
    v.record(O::ReadyzOk);
    v.record(r.o);
    CHECK_FALSE(v.dead());
    const auto u = v.record(r.o);
    CHECK(v.dead() == r.dead_evidence);
    CHECK(u.became_dead() == r.dead_evidence);
    // Alive evidence ends a dead period at once, and resets the count.
    v.record(O::PingAnswered);
    CHECK(v.life() == L::Alive);
    CHECK(v.dead_evidence() == 0);
    v.record(r.o);
    CHECK_FALSE(v.dead());
  }
  // Interleaved alive evidence: never two in a row, never dead.
  Verdict v;
  for (int i = 0; i < 10; i++) {
    v.record(O::PingTimedOut);
    v.record(O::PingAnswered);
  }
  CHECK(v.life() == L::Alive);
  // dead_after 1: one piece is enough.
  VerdictConfig one;
  one.dead_after = 1;
  Verdict w(one);
  CHECK(w.record(O::Stalled).became_dead());
  CHECK(w.life() == L::Dead);
}

TEST_CASE("verdict: live traffic contradicts a dead verdict; the close waits until it stops") {
  auto v = run("traffic", {
                              {0, O::ReadyzOk, true, L::Alive},
                              {1000, O::PingAnswered, true, L::Alive},
                              {2100, traffic, true, L::Alive},
                              {2400, O::PingTimedOut, true, L::Alive, D::NotDead},
                              {2450, traffic, true, L::Alive},
                              // Bytes 350 ms ago, within the 400 ms window: held.
                              {2800, O::PingTimedOut, false, L::Dead, D::TrafficSeen},
                              {2850, O::ConnectTimedOut, false, L::Dead, D::TrafficSeen},
                              // 400 ms exactly: still within.
                              {2850, traffic, false, L::Dead, std::nullopt},
                              {3250, O::PingTimedOut, false, L::Dead, D::TrafficSeen},
                              // Nothing for 401 ms: the path is dead after all.
                              {3251, O::PingTimedOut, false, L::Dead, D::Close},
                          });
  CHECK(v.mass_closes() == 1);
  CHECK(v.prevented_closes() == 1); // counted once per dead period
}

TEST_CASE("verdict: at most one mass close per flap window") {
  auto v = run("flap", {
                           {0, O::ReadyzOk, true, L::Alive},
                           {1000, O::PingTimedOut, true, L::Alive},
                           {1400, O::PingTimedOut, false, L::Dead, D::Close},
                           // The path comes back, then drops again 5 s later.
                           {3000, O::PingAnswered, false, L::Alive, D::NotDead},
                           {5000, O::PingTimedOut, false, L::Alive},
                           {5400, O::PingTimedOut, false, L::Dead, D::FlapWindow},
                           {20000, O::ConnectTimedOut, false, L::Dead, D::FlapWindow},
                           // 30 s after the last close: allowed again.
                           {31399, O::ConnectTimedOut, false, L::Dead, D::FlapWindow},
                           {31400, O::ConnectTimedOut, false, L::Dead, D::Close},
                           {31500, O::ConnectTimedOut, false, L::Dead, D::AlreadyClosed},
                       });
  CHECK(v.mass_closes() == 2);
  CHECK(v.prevented_closes() == 1);
}

TEST_CASE("verdict: when no other endpoint is ready, nothing is closed") {
  auto v = run("none ready", {
                                 {0, O::ReadyzOk, true, L::Alive},
                                 {1000, O::Reset, true, L::Alive},
                                 {1100, O::Reset, false, L::Dead, D::NoneReady, false},
                                 {1200, O::Reset, false, L::Dead, D::NoneReady, false},
                                 // Another endpoint became ready: clients have somewhere to go.
                                 {1300, O::Reset, false, L::Dead, D::Close, true},
                             });
  CHECK(v.prevented_closes() == 1);
  VerdictConfig cfg;
  cfg.hold_when_none_ready = false;
  Verdict w(cfg);
  w.record(O::Reset);
  w.record(O::Reset);
  CHECK(w.decide_close(at(0), 400ms, false) == D::Close);
}

TEST_CASE("verdict: first observation decides readiness; rise/fall as HAProxy") {
  run("first ok", {{0, O::ReadyzOk, true, L::Alive}});
  run("first fail", {{0, O::ReadyzFailed, false, L::Alive}});
  run("first refused", {{0, O::ConnectRefused, false, L::Unknown, D::NotDead}});
  run("first two refused",
      {{0, O::ConnectRefused, false, L::Unknown}, {1, O::ConnectRefused, false, L::Dead}});
  run("first ping", {{0, O::PingAnswered, false, L::Alive}}); // PINGs say nothing of readiness
  run("auth", {{0, O::ReadyzUnauthorized, true, L::Alive}});
  VerdictConfig cfg;
  cfg.rise = 3;
  cfg.fall = 1;
  run("rise 3 fall 1",
      {
          {0, O::ReadyzOk, true, L::Alive},
          {1, O::ReadyzMalformed, false, L::Alive},
          {2, O::ReadyzOk, false, L::Alive},
          {3, O::ReadyzOk, false, L::Alive},
          {4, O::ReadyzOk, true, L::Alive},
      },
      cfg);
  // Dead overrides a tracker still up (dead_after below fall).
  VerdictConfig slow;
  slow.fall = 5;
  run("dead before fall",
      {{0, O::ReadyzOk, true, L::Alive},
       {1, O::Stalled, true, L::Alive},
       {2, O::Stalled, false, L::Dead}},
      slow);
}
