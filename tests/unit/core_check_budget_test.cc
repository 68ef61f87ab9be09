#include "kube_api_lb/core/check_budget.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace std::chrono_literals;
using kal::BudgetConfig;
using kal::Cadence;
using kal::CheckBudget;
using kal::CheckKind;
using kal::Liveness;
using kal::PassiveEvidence;
using kal::TimePoint;
using std::chrono::milliseconds;

namespace {

BudgetConfig no_jitter() {
  BudgetConfig c;
  c.jitter = 0.0;
  return c;
}

constexpr int64_t kNever = -1;

enum class Op {
  Start,        // arg: offset ms
  Proto,        // proto
  ReadyzStart,  //
  ReadyzDone,   // cadence, answered
  PingSent,     //
  Passive,      // expect: returned
  Recheck,      //
  CadenceShift, // cadence
};

// One step at t ms: do `op`, then expect what is due at t, and both due times (ms, or kNever).
struct Step {
  int64_t t;
  Op op;
  int64_t arg = 0;
  Liveness proto = Liveness::Unknown;
  Cadence cadence = Cadence::Normal;
  bool answered = true;
  bool returned = true; // Passive only
  CheckKind due = CheckKind::None;
  int64_t readyz_due = kNever;
  int64_t ping_due = kNever;
};

TimePoint at(int64_t ms) { return TimePoint{} + milliseconds(ms); }
int64_t ms_of(TimePoint t) {
  return t == TimePoint::max() ? kNever : (t - TimePoint{}) / milliseconds(1);
}

void run(const char *name, const BudgetConfig &cfg, const std::vector<Step> &steps) {
  CheckBudget b(cfg, 1);
  for (size_t i = 0; i < steps.size(); i++) {
    const Step &s = steps[i];
    const std::string n = name;
    CAPTURE(n);
    CAPTURE(i);
    CAPTURE(s.t);
    const TimePoint now = at(s.t);
    switch (s.op) {
    case Op::Start:
      b.start(now, milliseconds(s.arg));
      break;
    case Op::Proto:
      b.set_way(s.proto, now);
      break;
    case Op::ReadyzStart:
      b.on_readyz_started(now);
      break;
    case Op::ReadyzDone:
      b.on_readyz_finished(now, s.cadence, s.answered);
      break;
    case Op::PingSent:
      b.on_ping_sent(now);
      break;
    case Op::Passive:
      CHECK(b.on_passive(PassiveEvidence::Reset, now) == s.returned);
      break;
    case Op::Recheck:
      b.recheck_now(now);
      break;
    case Op::CadenceShift:
      b.on_cadence(now, s.cadence);
      break;
    }
    CHECK(b.due(now) == s.due);
    if (!b.readyz_in_flight()) {
      CHECK(ms_of(b.readyz_due()) == s.readyz_due);
    }
    CHECK(ms_of(b.ping_due()) == s.ping_due);
  }
}

using P = Liveness;
using C = Cadence;
using K = CheckKind;

} // namespace

TEST_CASE("budget: h2 steady state is a PING a second and a /readyz every 10 s") {
  run("h2", no_jitter(),
      {
          {0, Op::Start, 50, P::Unknown, C::Normal, true, true, K::None, 50, kNever},
          {50, Op::ReadyzStart, 0, P::Unknown, C::Normal, true, true, K::None, kNever, kNever},
          // ALPN said h2 during the check: PINGs start a second later.
          {52, Op::Proto, 0, P::Http2, C::Normal, true, true, K::None, kNever, 1052},
          // The answer proves liveness: the first PING moves to a second after it.
          {60, Op::ReadyzDone, 0, P::Http2, C::Normal, true, true, K::None, 10050, 1060},
          {1060, Op::PingSent, 0, P::Http2, C::Normal, true, true, K::None, 10050, 2060},
          {2060, Op::PingSent, 0, P::Http2, C::Normal, true, true, K::None, 10050, 3060},
          // Both due at once: the /readyz goes first (its answer is liveness evidence too).
          {10050, Op::PingSent, 0, P::Http2, C::Normal, true, true, K::Readyz, 10050, 11050},
          {10050, Op::ReadyzStart, 0, P::Http2, C::Normal, true, true, K::None, kNever, 11050},
          // A PING still goes while a slow /readyz is in flight.
          {11050, Op::PingSent, 0, P::Http2, C::Normal, true, true, K::None, kNever, 12050},
          // Timed out (no answer): the PING schedule is not deferred.
          {11500, Op::ReadyzDone, 0, P::Http2, C::Fast, false, true, K::Readyz, 11500, 12050},
      });
}

TEST_CASE("budget: cadences (table): fast 250 ms, down 500 ms, http/1.1 1 s, h2 10 s") {
  struct Row {
    Liveness proto;
    Cadence cadence;
    int64_t next; // ms after a /readyz that started at 0 and finished at 5
  };
  const std::vector<Row> rows = {
      {P::Http2, C::Normal, 10000},  {P::Http2, C::Fast, 250},   {P::Http2, C::Down, 500},
      {P::Http1, C::Normal, 1000},   {P::Http1, C::Fast, 250},   {P::Http1, C::Down, 500},
      {P::Unknown, C::Normal, 1000}, {P::Unknown, C::Down, 500},
  };
  for (const auto &r : rows) {
    const std::string label1 = kal::to_string(r.proto);
    CAPTURE(label1);
    const std::string label2 = kal::to_string(r.cadence);
    CAPTURE(label2);
    CheckBudget b(no_jitter(), 1);
    b.start(at(0));
    b.on_readyz_started(at(0));
    b.set_way(r.proto, at(1));
    b.on_readyz_finished(at(5), r.cadence, true);
    CHECK(ms_of(b.readyz_due()) == r.next);
    CHECK(ms_of(b.ping_due()) == (r.proto == P::Http2 ? 1005 : kNever));
    CHECK(b.due(at(r.next - 1)) == (r.proto == P::Http2 && r.next > 1005 ? K::Ping : K::None));
    CHECK(b.due(at(r.next)) == K::Readyz);
    // A check slower than its interval: the next one starts at once, never in the past (Down
    // on h2 backs off: the second one waits 1 s, see below).
    b.on_readyz_started(at(20000));
    b.on_readyz_finished(at(20000 + r.next + 100), r.cadence, true);
    const bool backoff = r.proto == P::Http2 && r.cadence == C::Down;
    CHECK(ms_of(b.readyz_due()) == (backoff ? 21000 : 20000 + r.next + 100));
  }
}

TEST_CASE("budget: not ready but alive on h2 backs off to the budget; lost h2 or a change resets") {
  // An overloaded or draining apiserver answers PINGs: its /readyz is asked 0.5, 1, 2, 4, 8 s
  // apart, then every readyz_interval (10 s), not twice a second for as long as it lasts.
  CheckBudget b(no_jitter(), 1);
  b.start(at(0));
  b.set_way(P::Http2, at(0));
  int64_t t = 0;
  const std::vector<int64_t> gaps = {500, 1000, 2000, 4000, 8000, 10000, 10000};
  for (int64_t gap : gaps) {
    CAPTURE(gap);
    b.on_readyz_started(at(t));
    b.on_readyz_finished(at(t + 5), C::Down, true);
    CHECK(ms_of(b.readyz_due()) == t + gap);
    t += gap;
  }
  // A 60 s not-ready spell costs 11 requests, not 120.
  // The first pass after it moves the verdict (Fast): the next /readyz comes 250 ms later.
  b.on_readyz_started(at(t));
  b.on_readyz_finished(at(t + 5), C::Fast, true);
  CHECK(ms_of(b.readyz_due()) == t + 250);
  t += 250;
  b.on_readyz_started(at(t));
  b.on_readyz_finished(at(t + 5), C::Down, true); // and down again: from 500 ms
  CHECK(ms_of(b.readyz_due()) == t + 500);
  t += 500;
  b.on_readyz_started(at(t));
  b.on_readyz_finished(at(t + 5), C::Down, true);
  CHECK(ms_of(b.readyz_due()) == t + 1000);
  t += 1000;
  // The h2 connection breaks (a restart): no PING says it is alive, so 500 ms again, also after
  // h2 comes back.
  b.set_way(P::Unknown, at(t));
  b.on_readyz_started(at(t));
  b.on_readyz_finished(at(t + 5), C::Down, true);
  CHECK(ms_of(b.readyz_due()) == t + 500);
  t += 500;
  b.set_way(P::Http2, at(t));
  b.on_readyz_started(at(t));
  b.on_readyz_finished(at(t + 5), C::Down, true);
  CHECK(ms_of(b.readyz_due()) == t + 500);
  t += 500;
  b.on_readyz_started(at(t));
  b.on_readyz_finished(at(t + 5), C::Down, false); // a slow /readyz (no answer): still alive
  CHECK(ms_of(b.readyz_due()) == t + 1000);
  t += 1000;
  // Dead (a hang: the connection stays, PINGs go unanswered): 500 ms, to see the recovery at once.
  b.set_alive(false);
  b.on_readyz_started(at(t));
  b.on_readyz_finished(at(t + 5), C::Down, false);
  CHECK(ms_of(b.readyz_due()) == t + 500);
  b.on_readyz_started(at(t + 500));
  b.on_readyz_finished(at(t + 505), C::Down, false);
  CHECK(ms_of(b.readyz_due()) == t + 1000);
  t += 1000;
  b.set_alive(true); // alive again, still not ready: the backoff starts over
  b.on_readyz_started(at(t));
  b.on_readyz_finished(at(t + 5), C::Down, true);
  CHECK(ms_of(b.readyz_due()) == t + 500);
  // Passive evidence still brings the next one forward (rate limited as ever).
  CHECK(b.on_passive(PassiveEvidence::DialRefused, at(t + 100)));
  CHECK(ms_of(b.readyz_due()) == t + 100);
}

TEST_CASE("budget: the h2 backoff never goes past a short readyz_interval, nor below down") {
  BudgetConfig cfg = no_jitter();
  cfg.readyz_interval = 2000ms;
  CheckBudget b(cfg, 1);
  b.start(at(0));
  b.set_way(P::Http2, at(0));
  int64_t t = 0;
  for (int64_t gap : {500, 1000, 2000, 2000, 2000}) {
    b.on_readyz_started(at(t));
    b.on_readyz_finished(at(t + 5), C::Down, true);
    CHECK(ms_of(b.readyz_due()) == t + gap);
    t += gap;
  }
  cfg.readyz_interval = 100ms; // below down_interval: down_interval stays the floor
  CheckBudget c(cfg, 1);
  c.start(at(0));
  c.set_way(P::Http2, at(0));
  for (int i = 0; i < 3; i++) {
    c.on_readyz_started(at(i * 500));
    c.on_readyz_finished(at(i * 500 + 5), C::Down, true);
    CHECK(ms_of(c.readyz_due()) == (i + 1) * 500);
  }
}

TEST_CASE("budget: passive evidence triggers a /readyz, at most one per second") {
  run("passive", no_jitter(),
      {
          {0, Op::Start, 0, P::Unknown, C::Normal, true, true, K::Readyz, 0, kNever},
          {0, Op::ReadyzStart},
          {1, Op::Proto, 0, P::Http2, C::Normal, true, true, K::None, kNever, 1001},
          {5, Op::ReadyzDone, 0, P::Http2, C::Normal, true, true, K::None, 10000, 1005},
          {3000, Op::Passive, 0, P::Http2, C::Normal, true, true, K::Readyz, 3000, 1005},
          {3000, Op::ReadyzStart, 0, P::Http2, C::Normal, true, true, K::Ping, kNever, 1005},
          {3004, Op::ReadyzDone, 0, P::Http2, C::Normal, true, true, K::None, 13000, 4004},
          // Within the second: absorbed by the rate limit.
          {3500, Op::Passive, 0, P::Http2, C::Normal, true, false, K::None, 13000, 4004},
          {3999, Op::Passive, 0, P::Http2, C::Normal, true, false, K::None, 13000, 4004},
          {4000, Op::Passive, 0, P::Http2, C::Normal, true, true, K::Readyz, 4000, 4004},
          {4000, Op::ReadyzStart, 0, P::Http2, C::Normal, true, true, K::None, kNever, 4004},
          // Evidence during a /readyz in flight: the next one runs right after it.
          {5001, Op::Passive, 0, P::Http2, C::Normal, true, true, K::Ping, kNever, 4004},
          {5001, Op::PingSent, 0, P::Http2, C::Normal, true, true, K::None, kNever, 6001},
          {5010, Op::ReadyzDone, 0, P::Http2, C::Fast, false, true, K::Readyz, 5010, 6001},
          {5010, Op::ReadyzStart, 0, P::Http2, C::Normal, true, true, K::None, kNever, 6001},
          {5020, Op::ReadyzDone, 0, P::Http2, C::Normal, true, true, K::None, 15010, 6020},
          // The checker's own evidence (a PING timed out) is not rate limited.
          {5500, Op::Passive, 0, P::Http2, C::Normal, true, false, K::None, 15010, 6020},
          {5500, Op::Recheck, 0, P::Http2, C::Normal, true, true, K::Readyz, 5500, 6020},
      });
}

TEST_CASE("budget: a storm of passive failures costs one /readyz per second") {
  CheckBudget b(BudgetConfig{}, 7);
  b.start(at(0));
  b.on_readyz_started(at(0));
  b.set_way(P::Http2, at(1));
  b.on_readyz_finished(at(2), C::Normal, true);
  int readyz = 0;
  // 10,000 failed client dials over 10 s (one per millisecond), each /readyz taking 3 ms.
  for (int64_t t = 100; t < 10100; t++) {
    b.on_passive(PassiveEvidence::DialRefused, at(t));
    if (b.due(at(t)) == K::Readyz) {
      readyz++;
      b.on_readyz_started(at(t));
      b.on_readyz_finished(at(t + 3), C::Normal, true);
    }
  }
  CHECK(b.triggered() == 10);
  CHECK(b.suppressed() == 10000 - 10);
  CHECK(readyz >= 10);
  CHECK(readyz <= 11); // the triggered ones, and perhaps one on the 10 s schedule
}

TEST_CASE("budget: ready verdict changing between two /readyz shortens the wait") {
  run("cadence", no_jitter(),
      {
          {0, Op::Start, 0, P::Unknown, C::Normal, true, true, K::Readyz, 0, kNever},
          {0, Op::ReadyzStart},
          {1, Op::Proto, 0, P::Http2, C::Normal, true, true, K::None, kNever, 1001},
          {5, Op::ReadyzDone, 0, P::Http2, C::Normal, true, true, K::None, 10000, 1005},
          // A PING timed out at 1405 and dented the tracker: re-check within fast_interval of the
          // last /readyz start (0 + 250 is in the past: at once).
          {1405, Op::CadenceShift, 0, P::Http2, C::Fast, true, true, K::Readyz, 1405, 1005},
          {1405, Op::ReadyzStart, 0, P::Http2, C::Fast, true, true, K::Ping, kNever, 1005},
          {1405, Op::PingSent, 0, P::Http2, C::Fast, true, true, K::None, kNever, 2405},
          {1410, Op::ReadyzDone, 0, P::Http2, C::Normal, true, true, K::None, 11405, 2410},
          // Back to Normal: an earlier due time is kept, a later one not taken.
          {1500, Op::CadenceShift, 0, P::Http2, C::Normal, true, true, K::None, 11405, 2410},
      });
}

TEST_CASE("budget: h2 lost or never negotiated falls back to /readyz every second") {
  run("fallback", no_jitter(),
      {
          {0, Op::Start, 0, P::Unknown, C::Normal, true, true, K::Readyz, 0, kNever},
          {0, Op::ReadyzStart},
          {1, Op::Proto, 0, P::Http2, C::Normal, true, true, K::None, kNever, 1001},
          {5, Op::ReadyzDone, 0, P::Http2, C::Normal, true, true, K::None, 10000, 1005},
          // The connection broke; the new one speaks HTTP/1.1: no PINGs, /readyz at 1 s cadence.
          {300, Op::Proto, 0, P::Unknown, C::Normal, true, true, K::None, 1000, kNever},
          {400, Op::Proto, 0, P::Http1, C::Normal, true, true, K::None, 1000, kNever},
          {1000, Op::ReadyzStart, 0, P::Http1, C::Normal, true, true, K::None, kNever, kNever},
          {1003, Op::ReadyzDone, 0, P::Http1, C::Normal, true, true, K::None, 2000, kNever},
          {1003, Op::PingSent, 0, P::Http1, C::Normal, true, true, K::None, 2000, kNever},
      });
  CheckBudget b(no_jitter(), 1);
  CHECK(b.due(at(0)) == K::None);
  CHECK(b.next_wakeup() == TimePoint::max());
  CHECK_FALSE(b.on_passive(PassiveEvidence::GoAway, at(0))); // not started: nothing to bring
  b.start(at(10), 40ms);
  CHECK(b.next_wakeup() == at(50));
  b.on_readyz_started(at(50));
  CHECK(b.next_wakeup() == TimePoint::max()); // only the /readyz, in flight
  b.set_way(P::Http2, at(60));
  CHECK(b.next_wakeup() == at(1060));
}

TEST_CASE("budget: jitter within +-10% (/readyz on h2: +0-20%), reproducible with a seed; fleet "
          "rates") {
  for (Liveness proto : {P::Http2, P::Http1}) {
    const std::string label3 = kal::to_string(proto);
    CAPTURE(label3);
    CheckBudget a(BudgetConfig{}, 42), b(BudgetConfig{}, 42);
    for (CheckBudget *x : {&a, &b}) {
      x->start(at(0));
      x->on_readyz_started(at(0));
      x->set_way(proto, at(1));
      x->on_readyz_finished(at(2), C::Normal, true);
    }
    // One simulated hour of a healthy endpoint; every check answers in 2 ms.
    int readyz = 0, pings = 0;
    int64_t last_readyz = 0, last_ping = -1;
    int64_t lo_r = 1 << 30, hi_r = 0, lo_p = 1 << 30, hi_p = 0;
    const int64_t hour = 3600 * 1000;
    TimePoint now = at(2);
    while (now < at(hour)) {
      now = a.next_wakeup();
      CHECK(now == b.next_wakeup());
      const int64_t t = ms_of(now);
      switch (a.due(now)) {
      case K::Readyz:
        readyz++;
        lo_r = std::min(lo_r, t - last_readyz);
        hi_r = std::max(hi_r, t - last_readyz);
        last_readyz = t;
        for (CheckBudget *x : {&a, &b}) {
          x->on_readyz_started(now);
          x->on_readyz_finished(now + 2ms, C::Normal, true);
        }
        break;
      case K::Ping:
        pings++;
        if (last_ping >= 0) {
          lo_p = std::min(lo_p, t - last_ping);
          hi_p = std::max(hi_p, t - last_ping);
        }
        last_ping = t;
        for (CheckBudget *x : {&a, &b}) {
          x->on_ping_sent(now);
        }
        break;
      case K::None:
        FAIL("woken with nothing due");
        break;
      }
    }
    if (proto == P::Http2) {
      // Jittered upwards only: readyz_interval is a floor, the budget a ceiling.
      CHECK(lo_r >= 10000);
      CHECK(hi_r <= 12000);
      CHECK(lo_r < 10200); // it actually spreads
      CHECK(hi_r > 11800);
      CHECK(lo_p >= 900);
      CHECK(hi_p <= 2 + 1100 + 1100); // a /readyz between two PINGs defers the second
      // ≤ 0.1 requests/s per node per apiserver: ≤ 500/s at 5,000 nodes (today: 5,000/s); one
      // per 11 s on average: ~327 an hour.
      CHECK(readyz >= 315);
      CHECK(readyz <= 340);
      CHECK(pings >= 3000);
      CHECK(pings <= 3600);
    } else {
      CHECK(lo_r >= 900);
      CHECK(hi_r <= 1100);
      CHECK(readyz >= 3500); // today's cadence
      CHECK(pings == 0);
    }
  }
}
