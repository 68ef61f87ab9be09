// Tables for core/session_timers: each row names the integration test that proves the same case.
#include "kube_api_lb/core/session_timers.h"

#include <doctest/doctest.h>

#include <string>

using namespace kal;

namespace {
using P = SessionPhase;
using K = TimerPlan::Kind;
using V = TimerVerdict;
constexpr uint64_t kMin = 60 * 1000;
} // namespace

TEST_CASE("the idle limit in force: idle, or the shorter half-closed timeout after a FIN") {
  struct Row {
    const char *mirrors;
    uint64_t idle, half;
    bool any_fin;
    uint64_t want;
  };
  const Row rows[] = {
      {"test_core_retry: test_no_idle_timeout_by_default", 0, 5 * kMin, false, 0},
      {"test_core_retry: test_idle_timeout", 1000, 5 * kMin, false, 1000},
      {"test_core_bulk: test_silent_client_after_the_upstreams_fin_is_closed", 0, 1000, true, 1000},
      {"half-closed shorter than idle", 10 * kMin, 1000, true, 1000},
      {"idle shorter than half-closed stays", 1000, 5 * kMin, true, 1000},
      {"half-closed 0 = never", 0, 0, true, 0},
      {"half-closed 0 leaves idle", 1000, 0, true, 1000},
      {"no FIN: half-closed does not apply", 0, 1000, false, 0},
  };
  for (const auto &r : rows) {
    CAPTURE(std::string(r.mirrors));
    CHECK(idle_limit_ms(r.idle, r.half, r.any_fin) == r.want);
  }
}

TEST_CASE("arming the timer") {
  struct Row {
    const char *mirrors;
    P phase;
    size_t replay_bytes;
    uint64_t idle_limit;
    TimerPlan want;
  };
  const Row rows[] = {
      {"test_core_retry: test_silent_upstream_first_byte_timeout_replays",
       P::AwaitFirstByte,
       8,
       0,
       {K::FirstByte, 500}},
      {"test_core_retry: test_first_byte_timeout_counts_from_the_clients_latest_bytes (re-armed "
       "on each piece)",
       P::AwaitFirstByte,
       3,
       0,
       {K::FirstByte, 500}},
      {"test_core_retry: test_first_byte_timeout_when_the_client_speaks_after_the_connect "
       "(connected, nothing sent yet: the idle timer)",
       P::AwaitFirstByte,
       0,
       10 * kMin,
       {K::Idle, 5 * kMin + 1}},
      {"test_core_retry: test_idle_timeout_for_a_client_that_never_speaks",
       P::AwaitFirstByte,
       0,
       1000,
       {K::Idle, 501}},
      {"test_core_retry: test_idle_timeout", P::Relaying, 0, 1000, {K::Idle, 501}},
      {"test_core_retry: test_no_idle_timeout_by_default", P::Relaying, 0, 0, {K::Stop, 0}},
      {"dialling keeps its connect timer", P::Dialing, 8, 1000, {K::Stop, 0}},
  };
  for (const auto &r : rows) {
    CAPTURE(std::string(r.mirrors));
    CHECK(plan_timer(r.phase, r.replay_bytes, 500, r.idle_limit) == r.want);
  }
}

TEST_CASE("the timer fires: what it means") {
  struct Row {
    const char *mirrors;
    TimerFacts facts;
    uint64_t now;
    V want;
  };
  auto facts = [](P phase, bool fb_timer, size_t held, uint64_t idle, uint64_t last,
                  bool lingering = false) {
    TimerFacts f;
    f.phase = phase;
    f.first_byte_timer = fb_timer;
    f.replay_bytes = held;
    f.idle_limit_ms = idle;
    f.last_activity_ms = last;
    f.lingering = lingering;
    return f;
  };
  const Row rows[] = {
      {"test_core_retry: test_connect_timeout_moves_on", facts(P::Dialing, false, 8, 0, 0), 300,
       V::ConnectTimedOut},
      {"test_core_retry: test_silent_upstream_first_byte_timeout_replays",
       facts(P::AwaitFirstByte, true, 8, 0, 0), 500, V::Redial},
      {"the held bytes outgrew the replay limit meanwhile", facts(P::AwaitFirstByte, true, 0, 0, 0),
       500, V::Replan},
      {"test_core_retry: test_idle_timeout_for_a_client_that_never_speaks",
       facts(P::AwaitFirstByte, false, 0, 1000, 0), 1002, V::CloseIdle},
      {"test_core_retry: test_idle_timeout", facts(P::Relaying, false, 0, 1000, 500), 1500,
       V::CloseIdle},
      {"test_core_retry: test_idle_timeout (bytes moved half a period ago)",
       facts(P::Relaying, false, 0, 1000, 1000), 1501, V::Wait},
      {"test_core_retry: test_no_idle_timeout_by_default", facts(P::Relaying, false, 0, 0, 0),
       99 * kMin, V::Wait},
      {"test_core_bulk: test_silent_client_after_the_upstreams_fin_is_closed",
       facts(P::Relaying, false, 0, 1000, 200), 1200, V::CloseIdle},
      {"test_core_bulk: test_client_still_sending_after_the_upstreams_fin_is_not_closed",
       facts(P::Relaying, false, 0, 1000, 1100), 1600, V::Wait},
      {"test_core_retry: test_client_that_never_reads_is_let_go_after_the_linger_time",
       facts(P::Relaying, false, 0, 1000, 0, true), 99 * kMin, V::LingerTick},
  };
  for (const auto &r : rows) {
    CAPTURE(std::string(r.mirrors));
    CHECK(on_timer(r.facts, r.now) == r.want);
  }
}
