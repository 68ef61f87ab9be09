#include "kube_api_lb/core/rtt_estimator.h"

#include <algorithm>

namespace kal {

using std::chrono::microseconds;
using std::chrono::milliseconds;

const char *to_string(RttSource s) {
  switch (s) {
  case RttSource::Ping:
    return "ping";
  case RttSource::Kernel:
    return "kernel";
  case RttSource::Request:
    return "request";
  }
  return "?";
}

RttEstimator::RttEstimator(RttConfig cfg) : cfg_(cfg) {
  cfg_.floor = std::max(cfg_.floor, milliseconds(1));
  cfg_.ceiling = std::max(cfg_.ceiling, cfg_.floor);
  cfg_.initial = std::clamp(cfg_.initial, cfg_.floor, cfg_.ceiling);
  cfg_.min_margin = std::max(cfg_.min_margin, milliseconds(0));
  cfg_.k = std::max(cfg_.k, 1);
}

RttEstimator RttEstimator::with_config(RttConfig cfg) const {
  RttEstimator r = *this;
  r.cfg_ = RttEstimator(cfg).cfg_;
  return r;
}

bool RttEstimator::add_sample(RttSource src, microseconds rtt) {
  if (rtt.count() < 0) {
    return false;
  }
  // A sample can be no longer than a check could wait; the cap keeps the arithmetic below far
  // from overflowing whatever a caller passes.
  rtt = std::min<microseconds>(rtt, std::chrono::hours(1));
  if (src == RttSource::Request && network_sample_) {
    return false;
  }
  if (src != RttSource::Request && !network_sample_) {
    // The first network sample replaces what request samples (handler time included) built up,
    // rather than being averaged into it: from now on only the network counts.
    network_sample_ = true;
    samples_ = 0;
  }
  last_ = rtt;
  if (samples_ == 0) {
    srtt_ = rtt;
    rttvar_ = rtt / 2;
  } else {
    const microseconds err = srtt_ > rtt ? srtt_ - rtt : rtt - srtt_;
    // Integer arithmetic on microseconds: the rounding error is below a microsecond per step.
    rttvar_ = (3 * rttvar_ + err) / 4;
    srtt_ = (7 * srtt_ + rtt) / 8;
  }
  samples_++;
  return true;
}

milliseconds RttEstimator::clamped(microseconds t) const {
  const milliseconds ms = std::chrono::ceil<milliseconds>(t);
  return std::clamp(ms, cfg_.floor, cfg_.ceiling);
}

milliseconds RttEstimator::timeout() const {
  if (samples_ == 0) {
    return cfg_.floor;
  }
  const microseconds margin = std::max<microseconds>(cfg_.k * rttvar_, cfg_.min_margin);
  return clamped(srtt_ + margin);
}

milliseconds RttEstimator::first_check_timeout(int round_trips) const {
  if (samples_ == 0) {
    return cfg_.initial;
  }
  // Samples are capped at an hour, so n up to 100 stays far from overflow.
  const int64_t n = std::clamp(round_trips, 1, 100);
  // Overflow is out of reach: samples are real round trips (far below 10^9 us), n is small.
  const microseconds margin = std::max<microseconds>(n * cfg_.k * rttvar_, cfg_.min_margin);
  return clamped(n * srtt_ + margin);
}

} // namespace kal
