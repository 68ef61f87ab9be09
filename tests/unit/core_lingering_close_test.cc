// Table for core/lingering_close: a linger is a sequence of polls; each row is one poll of a
// scenario that an integration test proves on real sockets.
#include "kube_api_lb/core/lingering_close.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace kal;

namespace {
struct Poll {
  uint64_t now;
  size_t owed;
  bool ended;
  uint64_t last_activity;
  bool close;
};

void run(const char *mirrors, const std::vector<Poll> &polls) {
  CAPTURE(std::string(mirrors));
  LingeringClose l;
  l.start(1000);
  CHECK(l.active());
  for (size_t i = 0; i < polls.size(); ++i) {
    const auto &p = polls[i];
    CAPTURE(i);
    CHECK(l.should_close(p.owed, p.ended, p.last_activity, p.now) == p.close);
  }
}
} // namespace

TEST_CASE("lingering close: bounds") {
  constexpr uint64_t Q = LingeringClose::kQuietMs;
  constexpr uint64_t M = LingeringClose::kMaxMs;
  run("test_core_endpoint_down: test_endpoint_down_after_its_answer_ended_delivers_all_of_it "
      "(a slow client takes it all, then the session closes)",
      {{1100, 200000, true, 0, false},
       {1200, 150000, true, 0, false},
       {1300, 1, true, 0, false},
       {1400, 0, true, 0, true}});
  run("nothing owed but the answer has not ended: keep reading its rest",
      {{1100, 0, false, 0, false}, {1100 + Q - 1, 0, false, 1100, false}});
  run("test_core_retry: test_client_that_never_reads_is_let_go_after_the_linger_time",
      {{1100, 300000, true, 0, false},
       {1100 + Q - 1, 300000, true, 0, false},
       {1100 + Q, 300000, true, 0, true}});
  run("test_core_retry: test_slow_client_still_uploading_gets_the_whole_answer (progress keeps "
      "it open past the quiet bound)",
      {{1100, 300000, true, 0, false},
       {1000 + Q - 100, 200000, true, 0, false},
       {1000 + 2 * Q - 200, 100000, true, 0, false},
       {1000 + 3 * Q - 300, 100000, true, 1000 + 3 * Q - 400, false},
       {1000 + 4 * Q - 500, 100000, true, 0, true}});
  run("a client that keeps sending but never reads is let go after the maximum",
      {{1100, 300000, true, 1100, false},
       {1000 + M - 1, 300000, true, 1000 + M - 2, false},
       {1000 + M, 300000, true, 1000 + M, true}});
  run("the owed figure going up is no progress", {{1100, 100, true, 0, false},
                                                  {1100 + Q - 1, 200, true, 0, false},
                                                  {1100 + Q, 200, true, 0, true}});
}
