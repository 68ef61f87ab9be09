#include "kube_api_lb/core/send_stall.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace std::chrono_literals;
using kal::SendSample;
using kal::SendStall;
using kal::TimePoint;
using std::chrono::milliseconds;

namespace {

TimePoint at(int64_t ms) { return TimePoint{} + milliseconds(ms); }

// One sample at t ms, then what the detector says with a 400 ms timeout.
struct Row {
  int64_t t;
  SendSample s;
  bool stalled;
  bool new_stall; // take_new() at t
  int64_t stuck_ms;
};

void run(const char *name, const std::vector<Row> &rows) {
  SendStall d;
  for (size_t i = 0; i < rows.size(); i++) {
    const Row &r = rows[i];
    const std::string n = name;
    CAPTURE(n);
    CAPTURE(i);
    CAPTURE(r.t);
    d.sample(at(r.t), r.s);
    CHECK(d.stalled(at(r.t), 400ms) == r.stalled);
    CHECK(d.stuck_for(at(r.t)).count() == r.stuck_ms);
    CHECK(d.take_new(at(r.t), 400ms) == r.new_stall);
    CHECK(d.outstanding() == r.s.outstanding);
  }
}

} // namespace

TEST_CASE("send stall: a healthy connection's PINGs are acknowledged within a round trip") {
  run("healthy", {
                     // A PING written (40 bytes with TLS), sampled right after.
                     {0, {1, 40, 0}, false, false, 0},
                     // Acknowledged by the next tick.
                     {400, {1, 0, 40}, false, false, 0},
                     {1000, {1, 40, 40}, false, false, 0},
                     {1400, {1, 0, 80}, false, false, 0},
                 });
}

TEST_CASE("send stall: bytes outstanding with no acknowledgement for the timeout are a stall, "
          "reported once") {
  run("blackhole", {
                       {0, {1, 0, 500}, false, false, 0},
                       {1000, {1, 40, 500}, false, false, 0},
                       {1399, {1, 40, 500}, false, false, 399},
                       {1400, {1, 40, 500}, true, true, 400},
                       // The confirming PING and /readyz add bytes; still nothing acknowledged.
                       {1400, {1, 120, 500}, true, false, 400},
                       {1800, {1, 120, 500}, true, false, 800},
                   });
}

TEST_CASE("send stall: acknowledgement progress restarts the clock even while bytes stay queued") {
  run("slow but moving", {
                             {0, {1, 1000, 0}, false, false, 0},
                             {300, {1, 1040, 200}, false, false, 0},
                             {600, {1, 900, 400}, false, false, 0},
                             {999, {1, 900, 400}, false, false, 399},
                             {1000, {1, 900, 400}, true, true, 400},
                             // The peer takes bytes again: the stall period ends.
                             {1100, {1, 500, 800}, false, false, 0},
                             {1500, {1, 500, 800}, true, true, 400},
                         });
}

TEST_CASE("send stall: an empty queue or a new connection starts afresh") {
  run("reset", {
                   {0, {1, 40, 0}, false, false, 0},
                   {400, {1, 40, 0}, true, true, 400},
                   // Re-connected: the old connection's stall says nothing about this one.
                   {500, {2, 300, 0}, false, false, 0},
                   {600, {0, 0, 0}, false, false, 0},
                   {700, {3, 40, 0}, false, false, 0},
                   {1000, {3, 0, 40}, false, false, 0},
                   {1100, {3, 0, 40}, false, false, 0},
               });
}
