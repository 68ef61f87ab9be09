#pragma once
// Round-trip time of one endpoint's check connection and the check timeout derived from it, the way
// TCP derives its retransmission timeout (RFC 6298, https://www.rfc-editor.org/rfc/rfc6298):
//
//   first sample R:  SRTT = R, RTTVAR = R/2
//   later sample R:  RTTVAR = 3/4 RTTVAR + 1/4 |SRTT - R|,  SRTT = 7/8 SRTT + 1/8 R
//   timeout:         clamp(SRTT + max(K * RTTVAR, min_margin), floor, ceiling), K = 4
//
// Pure: no clock, no I/O. The integrator (the health checker) feeds it samples it measured itself
// and asks it for the timeout of the next PING or request. One estimator per endpoint; it survives
// a re-connection to the same endpoint (the path, not the connection, has the round-trip time).
//
// Where and why it departs from RFC 6298:
//  - `min_margin` (200 ms) takes the place of the RFC's clock granularity G: on a steady link
//    RTTVAR decays towards zero and the timeout towards SRTT itself, so the first slightly slow
//    answer would time out. Linux floors its RTO's variance term at TCP_RTO_MIN = 200 ms for the
//    same reason. On a LAN the margin is invisible (SRTT + 200 ms < the 400 ms floor).
//  - `floor` is the configured check timeout (400 ms by default): the timeout never drops below
//    what the operator configured, so LAN detection times stay exactly what they were.
//  - `ceiling` (10 s) is lower than the RFC's 60 s maximum: this is a health check, not a
//    retransmission. A link whose round trips need more than 10 s cannot carry kubectl or a
//    watch's heartbeats either, and one huge outlier must not blind hang detection for minutes:
//    with the cap a hang is still seen within about fall x 10 s on the worst link.
//  - Request round trips include the apiserver's handler time (a /readyz under load can take
//    600 ms while the network round trip is 1 ms). Stretching the liveness timeout with it would
//    slow hang detection exactly when the control plane is overloaded, so request samples count
//    only until a network sample (PING or kernel) has arrived: that is, on HTTP/1.1 connections.
//  - No Karn's algorithm: every sample here is unambiguous (PINGs carry an id, one request per
//    stream), nothing is retransmitted.
#include <chrono>
#include <cstdint>

namespace kal {

// From HealthConfig: timeout (as floor). The rest are not configurable yet.
struct RttConfig {
  // The configured check timeout (HealthConfig::timeout): the timeout never goes below it.
  std::chrono::milliseconds floor{400};
  // The timeout never goes above it (see the file comment).
  std::chrono::milliseconds ceiling{10000};
  // The first check of a brand-new endpoint, before any sample: TCP + TLS handshake + request on
  // a link not measured yet. 3 s lets a 350 ms link pass its first check (3 round trips ≈ 1.05 s,
  // or 4 with a TLS 1.2 full handshake ≈ 1.4 s) with twice that to spare for jitter and a loaded
  // server's handshake; it is also the RTO TCP falls back to when it knows nothing of a path
  // (RFC 6298 section 5.7, RFC 2988's initial RTO). It costs only the first check of an endpoint
  // that never answered (blackholed from the start: 3 s per check until it answers once). After
  // that first answer, every timeout is derived from samples.
  std::chrono::milliseconds initial{3000};
  // Lower bound of the variance term (see the file comment).
  std::chrono::milliseconds min_margin{200};
  int k = 4; // RFC 6298's K
};

// Where a sample came from; decides whether it counts (see the file comment).
enum class RttSource : uint8_t {
  Ping,    // an HTTP/2 PING's ack: a pure network round trip, answered without a handler
  Kernel,  // the kernel's TCP_INFO tcpi_rtt of the check connection
  Request, // a request's round trip (first byte of the answer): includes handler time
};
const char *to_string(RttSource s); // "ping", "kernel", "request"

class RttEstimator {
public:
  // Values of `cfg` are clamped to be sane: floor >= 1 ms, ceiling >= floor, initial within
  // [floor, ceiling], k >= 1, min_margin >= 0.
  explicit RttEstimator(RttConfig cfg = {});

  const RttConfig &config() const { return cfg_; }
  // The same measurements under new settings (a live reload: a new floor): the path's round-trip
  // time did not change with the configuration, so a re-created check keeps it and its first
  // check on a new connection is not given RttConfig::initial again.
  RttEstimator with_config(RttConfig cfg) const;

  // Feeds one measured round trip. Returns whether it was used: negative samples are ignored, and
  // Request samples once a Ping or Kernel sample was seen.
  bool add_sample(RttSource src, std::chrono::microseconds rtt);

  // Whether any sample was used yet.
  bool has_sample() const { return samples_ > 0; }
  uint64_t samples() const { return samples_; }
  // The smoothed round trip and its variance (0 before the first sample), for /stats and metrics.
  std::chrono::microseconds srtt() const { return srtt_; }
  std::chrono::microseconds rttvar() const { return rttvar_; }
  // The last sample used (0 before the first).
  std::chrono::microseconds last() const { return last_; }

  // Timeout of one PING or one request on an established connection: floor before any sample,
  // else clamp(srtt + max(k * rttvar, min_margin), floor, ceiling).
  std::chrono::milliseconds timeout() const;

  // Timeout of a check that must first open the connection: `round_trips` network round trips
  // (TCP handshake 1, TLS 1.3 handshake 1 or TLS 1.2 full handshake 2, the request 1: pass 3 or
  // 4; clamped to [1, 100]). Before any sample: `initial` (a brand-new endpoint's first
  // check). With samples: clamp(n * srtt + max(n * k * rttvar, min_margin), floor, ceiling): each
  // round trip may be as slow as srtt + k * rttvar, and a false timeout here costs a whole new
  // handshake, so the variance is added per round trip rather than once.
  std::chrono::milliseconds first_check_timeout(int round_trips) const;

private:
  std::chrono::milliseconds clamped(std::chrono::microseconds t) const;

  RttConfig cfg_;
  uint64_t samples_ = 0;
  bool network_sample_ = false; // a Ping or Kernel sample was used
  std::chrono::microseconds srtt_{0};
  std::chrono::microseconds rttvar_{0};
  std::chrono::microseconds last_{0};
};

} // namespace kal
