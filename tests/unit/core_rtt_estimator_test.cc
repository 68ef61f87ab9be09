#include "kube_api_lb/core/rtt_estimator.h"

#include <doctest/doctest.h>

#include <random>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using kal::RttConfig;
using kal::RttEstimator;
using kal::RttSource;
using std::chrono::microseconds;
using std::chrono::milliseconds;

namespace {

// A configuration whose floor and margin stay out of the way, to see RFC 6298's arithmetic itself.
RttConfig bare() {
  RttConfig c;
  c.floor = 1ms;
  c.min_margin = 0ms;
  return c;
}

struct Case {
  const char *name;
  RttConfig cfg;
  std::vector<microseconds> samples; // all from PINGs
  microseconds srtt, rttvar;
  milliseconds timeout, first3;
};

} // namespace

TEST_CASE("rtt: RFC 6298 smoothing, floor, margin and ceiling (table)") {
  const RttConfig def; // floor 400 ms, ceiling 10 s, initial 3 s, margin 200 ms, K 4
  const std::vector<Case> cases = {
      // Before any sample: the floor for an established connection, `initial` for a first check.
      {"no sample", def, {}, 0us, 0us, 400ms, 3000ms},
      // LAN: everything below the configured 400 ms stays at 400 ms (today's timeout).
      {"lan 1 ms", def, {1ms}, 1000us, 500us, 400ms, 400ms},
      {"lan jittery", def, {1ms, 3ms, 2ms}, 1343us, 843us, 400ms, 400ms},
      // First sample R: SRTT = R, RTTVAR = R/2, timeout = R + 4 R/2 = 3R.
      {"350 ms, one sample", def, {350ms}, 350ms, 175ms, 1050ms, 3150ms},
      {"bare 100 ms", bare(), {100ms}, 100ms, 50ms, 300ms, 900ms},
      // Second sample: RTTVAR = 3/4 * 50 + 1/4 * 100 = 62.5; SRTT = 7/8 * 100 + 1/8 * 200 = 112.5.
      {"bare 100 then 200", bare(), {100ms, 200ms}, 112500us, 62500us, 363ms, 1088ms},
      {"bare 400 then 300", bare(), {400ms, 300ms}, 387500us, 175000us, 1088ms, 3263ms},
      // The ceiling: one 5 s round trip asks for 15 s; capped at 10 s.
      {"5 s sample capped", def, {5000ms}, 5000ms, 2500ms, 10000ms, 10000ms},
  };
  for (const auto &c : cases) {
    const std::string label1 = c.name;
    CAPTURE(label1);
    RttEstimator e(c.cfg);
    for (auto s : c.samples) {
      CHECK(e.add_sample(RttSource::Ping, s));
    }
    CHECK(e.has_sample() == !c.samples.empty());
    CHECK(e.samples() == c.samples.size());
    CHECK(e.srtt() == c.srtt);
    CHECK(e.rttvar() == c.rttvar);
    CHECK(e.timeout() == c.timeout);
    CHECK(e.first_check_timeout(3) == c.first3);
  }
}

TEST_CASE("rtt: a steady slow link converges to srtt + the 200 ms margin") {
  RttEstimator e;
  for (int i = 0; i < 200; i++) {
    e.add_sample(RttSource::Ping, 350ms);
  }
  CHECK(e.srtt() == 350ms);
  CHECK(e.rttvar() < 1ms); // decayed: without the margin the timeout would be 350 ms itself
  CHECK(e.timeout() == 550ms);
  CHECK(e.first_check_timeout(3) == 1250ms); // 3 x 350 + 200
  CHECK(e.first_check_timeout(4) == 1600ms); // TLS 1.2 full handshake: one more round trip
  CHECK(e.first_check_timeout(0) == e.first_check_timeout(1));
  CHECK(e.first_check_timeout(1) == 550ms);
}

TEST_CASE("rtt: first check of a brand-new endpoint passes on a 350 ms link") {
  RttEstimator e;
  // No estimate: TCP + TLS 1.3 + request = 3 round trips = 1.05 s, TLS 1.2 full: 1.4 s.
  CHECK(e.first_check_timeout(3) > 1400ms);
  CHECK(e.first_check_timeout(3) == 3000ms);
  // That check's request round trip is the first sample; then a PING's replaces it.
  CHECK(e.add_sample(RttSource::Request, 360ms));
  CHECK(e.timeout() == 1080ms);
  CHECK(e.add_sample(RttSource::Ping, 350ms));
  CHECK(e.samples() == 1);
  CHECK(e.timeout() == 1050ms);
}

TEST_CASE("rtt: request samples (handler time) count only until a network sample") {
  struct Step {
    RttSource src;
    milliseconds rtt;
    bool used;
    microseconds srtt;
  };
  const std::vector<Step> steps = {
      {RttSource::Request, 600ms, true, 600ms}, // HTTP/1.1 so far: all there is
      {RttSource::Request, 600ms, true, 600ms},
      {RttSource::Ping, 2ms, true, 2ms},       // the network round trip replaces the handler time
      {RttSource::Request, 600ms, false, 2ms}, // an overloaded /readyz no longer stretches it
      {RttSource::Kernel, 4ms, true, 2250us},  // TCP_INFO is a network sample like a PING
      {RttSource::Request, 900ms, false, 2250us},
  };
  RttEstimator e;
  for (const auto &s : steps) {
    const std::string label2 = kal::to_string(s.src);
    CAPTURE(label2);
    CAPTURE(s.rtt.count());
    CHECK(e.add_sample(s.src, s.rtt) == s.used);
    CHECK(e.srtt() == s.srtt);
  }
  CHECK(e.timeout() == 400ms);
}

TEST_CASE("rtt: kernel sample first, negative samples ignored") {
  RttEstimator e;
  CHECK_FALSE(e.add_sample(RttSource::Ping, microseconds(-5)));
  CHECK_FALSE(e.has_sample());
  CHECK(e.add_sample(RttSource::Kernel, 120ms));
  CHECK_FALSE(e.add_sample(RttSource::Request, 10ms));
  CHECK(e.last() == 120ms);
  CHECK(e.timeout() == 400ms); // 120 + 4 x 60 = 360 < floor
  // Absurd values do not overflow: capped and clamped to the ceiling.
  CHECK(e.add_sample(RttSource::Ping, microseconds::max()));
  CHECK(e.timeout() == 10000ms);
  CHECK(e.first_check_timeout(1000000) == 10000ms);
}

TEST_CASE("rtt: configuration is clamped to sane values") {
  RttConfig c;
  c.floor = 0ms;
  c.ceiling = -5ms;
  c.initial = 99999ms;
  c.k = 0;
  c.min_margin = -1ms;
  RttEstimator e(c);
  CHECK(e.config().floor == 1ms);
  CHECK(e.config().ceiling == 1ms);
  CHECK(e.config().initial == 1ms);
  CHECK(e.config().k == 1);
  CHECK(e.config().min_margin == 0ms);
  RttConfig d;
  d.initial = 100ms; // below the floor: a first check never gets less than a normal one
  CHECK(RttEstimator(d).first_check_timeout(3) == 400ms);
}

TEST_CASE("rtt: a 400 +- 100 ms link never times out a PING (no flapping)") {
  for (uint64_t seed : {1u, 2u, 3u, 4u, 5u}) {
    std::mt19937_64 rng(seed);
    std::uniform_int_distribution<int> u(300000, 500000);
    RttEstimator e;
    int false_timeouts = 0;
    milliseconds hi{0};
    for (int i = 0; i < 5000; i++) {
      const microseconds rtt(u(rng));
      // The very first PING waits what a fresh connection's check did: `initial`.
      const milliseconds limit = e.has_sample() ? e.timeout() : e.first_check_timeout(3);
      false_timeouts += rtt > limit ? 1 : 0;
      hi = std::max(hi, limit);
      e.add_sample(RttSource::Ping, rtt);
    }
    CAPTURE(seed);
    CHECK(false_timeouts == 0);
    CHECK(e.timeout() < 1000ms); // and still tight enough to see a hang quickly
    CHECK(e.first_check_timeout(3) < 2500ms);
  }
}
