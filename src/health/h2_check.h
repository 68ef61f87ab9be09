#pragma once
// The HTTP/2 side of the probe's kept-alive check connection once TLS negotiated "h2": what one
// chunk of plaintext from the apiserver means for the check (an answer to the /readyz in flight,
// PING acks, a GOAWAY, a broken protocol), over H2Liveness (health/h2_liveness.h). No sockets and
// no TLS: the Probe (health/probe.h) feeds it what it decrypted and sends what take_output()
// returns. Decides nothing about the endpoint: it only reports what arrived.
#include "health/h2_liveness.h"

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kal {

class H2Check {
public:
  // The /readyz answer, or its stream's failure.
  struct Answer {
    int status = 0;                   // HTTP status (0: the stream failed before its headers)
    bool failed = false;              // RST_STREAM or refused by GOAWAY: no complete answer
    std::string detail;               // why it failed
    std::chrono::microseconds rtt{0}; // request sent → response headers
  };
  // What one feed() found.
  struct Fed {
    bool ok = true; // false: the peer broke HTTP/2; error() says how; close the connection
    std::optional<Answer> answer;                     // the request in flight ended
    std::vector<std::chrono::microseconds> ping_acks; // round trips of PINGs acknowledged
    bool goaway = false;                              // a GOAWAY arrived (first time only)
  };

  // A client session (preface and SETTINGS queued) that asks for `path` with `authority` as
  // :authority. Null only when libnghttp2 cannot allocate.
  static std::unique_ptr<H2Check> create(std::string authority, std::string path);

  Fed feed(std::string_view plain, TimePoint now);
  // Appends every byte to send to `out`; returns how many.
  size_t take_output(std::string &out) { return h2_->take_output(out); }

  // Whether the connection can take another request (no GOAWAY, no protocol error).
  bool usable() const { return !h2_->failed() && !h2_->goaway_received(); }
  // Starts `GET <path>` at `now`; false when not usable() or one is in flight already.
  bool request(TimePoint now);
  bool request_in_flight() const { return stream_.has_value(); }
  // Cancels the request in flight (its timeout): RST_STREAM CANCEL, the connection stays.
  void cancel_request();

  // Queues a PING stamped `now`; false when the session failed.
  bool ping(TimePoint now);
  // Forgets PINGs sent before `deadline`; returns how many timed out.
  size_t expire_pings(TimePoint deadline) { return h2_->expire_pings(deadline); }
  std::optional<TimePoint> oldest_ping() const { return h2_->oldest_ping(); }
  size_t pings_in_flight() const { return h2_->pings_in_flight(); }

  const std::string &error() const { return h2_->error(); }

private:
  explicit H2Check(std::unique_ptr<H2Liveness> h2) : h2_(std::move(h2)) {}

  std::unique_ptr<H2Liveness> h2_;
  std::optional<int32_t> stream_; // the request in flight
  bool goaway_reported_ = false;
};

} // namespace kal
