// Table for core/shutdown_drain: which connections a stopping proxy closes at once. The rows name
// the integration test (tests/integration/test_pod_replace.py) that proves the same on sockets.
#include "kube_api_lb/core/shutdown_drain.h"

#include <doctest/doctest.h>

#include <string>

using namespace kal;
using P = SessionPhase;

TEST_CASE("shutdown drain: which connections close at once") {
  constexpr uint64_t now = 100000;
  struct Row {
    const char *what;
    DrainFacts facts;
    bool close;
  };
  const Row rows[] = {
      {"test_pod_replace: an idle watch (the last event came 2 s ago) closes",
       {P::Relaying, 0, true, 1000, now - 30000, now - 2000},
       true},
      {"an idle keep-alive connection (answer ended 5 s ago, nothing since) closes",
       {P::Relaying, 0, true, 1000, now - 5100, now - 5000},
       true},
      {"test_pod_replace: a transfer in progress (bytes queued to the client) stays",
       {P::Relaying, 65536, true, 1000, now - 30000, now - 5000},
       false},
      {"bytes from the upstream 50 ms ago: mid-answer, stays",
       {P::Relaying, 0, true, 1000, now - 30000, now - 50},
       false},
      {"upstream bytes exactly the quiet time ago: between exchanges, closes",
       {P::Relaying, 0, true, 1000, now - 30000, now - 100},
       true},
      {"the client spoke last 300 ms ago and no answer yet: its request is owed, stays",
       {P::Relaying, 0, true, 1000, now - 300, now - 5000},
       false},
      {"the client spoke last 1 s ago with no answer since (a WINDOW_UPDATE): closes",
       {P::Relaying, 0, true, 1000, now - 1000, now - 5000},
       true},
      {"test_pod_replace: the first request sent, dialling: owed an answer, stays",
       {P::Dialing, 0, true, now - 5000, now - 5000, 0},
       false},
      {"the first request sent, awaiting the first byte for 5 s: stays (the grace decides)",
       {P::AwaitFirstByte, 0, true, now - 5000, now - 5000, 0},
       false},
      {"accepted a moment ago, no byte yet (the ClientHello is on its way): stays",
       {P::Dialing, 0, false, now - 20, 0, 0},
       false},
      {"accepted 1 s ago and silent (a port probe): closes",
       {P::AwaitFirstByte, 0, false, now - 1000, 0, 0},
       true},
      {"just answered its first byte, queue flushed, 10 ms ago: stays",
       {P::Relaying, 0, true, now - 40, now - 30, now - 10},
       false},
      {"a clock that reads earlier than the facts (never negative): stays",
       {P::Relaying, 0, true, now + 10, now + 5, now + 5},
       false},
  };
  for (const auto &r : rows) {
    CAPTURE(std::string(r.what));
    CHECK(quiet_enough_to_close(r.facts, now) == r.close);
  }
}

TEST_CASE("shutdown drain: the rule's bounds are parameters") {
  DrainFacts watch{P::Relaying, 0, true, 0, 1000, 2000};
  CHECK_FALSE(quiet_enough_to_close(watch, 2400, {.quiet_ms = 500, .request_wait_ms = 1000}));
  CHECK(quiet_enough_to_close(watch, 2500, {.quiet_ms = 500, .request_wait_ms = 1000}));
  DrainFacts asked{P::Relaying, 0, true, 0, 3000, 2000};
  CHECK_FALSE(quiet_enough_to_close(asked, 4999, {.quiet_ms = 100, .request_wait_ms = 2000}));
  CHECK(quiet_enough_to_close(asked, 5000, {.quiet_ms = 100, .request_wait_ms = 2000}));
}
