#pragma once
// The HTTP/2 client side of one check connection, as bytes in and bytes out (no sockets, no libuv,
// no TLS): the owner feeds it the plaintext its TlsEngine decrypted and encrypts and sends what
// take_output() returns. Framing is Debian's libnghttp2 (the reference implementation, by the
// author of nghttpx), driven through nghttp2_session_mem_recv / mem_send.
//
// What it is for (issue 21): on a kept-alive h2 connection to a kube-apiserver,
//  - send_ping(): an HTTP/2 PING with an 8-byte opaque id. Go's HTTP/2 server answers it without
//    authentication, audit or handlers; a stopped, starved or cut-off apiserver does not. The ack
//    comes back as an Event with its round trip (feed it to RttEstimator as RttSource::Ping);
//  - request(): `GET /readyz` (optionally `?verbose`) on a new stream; the answer comes back as an
//    Event with status, body and round trip;
//  - GOAWAY and stream resets from the server come back as Events; a protocol error (the peer sent
//    garbage, or broke HTTP/2) makes feed() return false and failed() true: the owner closes the
//    connection. A peer can never make it crash or throw.
//
// How the integrator drives it, after the TLS handshake chose "h2" (TlsEngine::alpn()):
//   auto h2 = H2Liveness::create(opts);           // the client preface and SETTINGS are queued
//   tls.write(h2->take_output())                   // after every call below, too
//   on bytes from TLS:  if (!h2->feed(plain, now)) close; for (auto &e : h2->take_events()) ...
//   budget says Ping:   h2->send_ping(now)
//   budget says Readyz: h2->request(now, verbose)
//   on each tick:       h2->expire_pings(now - rtt.timeout()) → that many PingTimedOut;
//                       h2->expire_requests(now - timeout) → ReadyzTimedOut (streams cancelled)
// Every method is non-blocking and returns at once; nothing calls back into the owner.
#include "kube_api_lb/core/check_schedule.h"
#include "kube_api_lb/core/result.h"

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

struct nghttp2_session;

namespace kal {

class H2Liveness {
public:
  struct Options {
    std::string authority;        // ":authority" (Host): "10.0.0.11:6443", "api.example:6443"
    std::string path = "/readyz"; // request() asks for it ("?verbose" or "&verbose" appended)
    // Body bytes kept per answer (the rest is read, acknowledged for flow control and dropped):
    // /readyz?verbose lists every check in about 2 KiB.
    size_t max_body = 64 * 1024;
    std::string user_agent = "kube-api-lb";
  };

  enum class EventKind : uint8_t {
    PingAck,      // ping_id, rtt
    Response,     // stream_id, status, body, rtt (to the response headers), duration (to the end)
    StreamFailed, // stream_id, error_code (RST_STREAM from the server, or refused by GOAWAY),
                  // status if headers had arrived
    GoAway,       // error_code, last_stream_id: the server will take no new streams
  };
  struct Event {
    EventKind kind = EventKind::PingAck;
    uint64_t ping_id = 0;
    int32_t stream_id = 0;
    int status = 0;
    std::string body;
    bool body_truncated = false;
    std::chrono::microseconds rtt{0};
    std::chrono::microseconds duration{0};
    uint32_t error_code = 0; // HTTP/2 error code (RFC 9113 section 7)
    int32_t last_stream_id = 0;
  };

  // A client session with the preface and SETTINGS (server push off) queued for take_output().
  // Fails only when libnghttp2 cannot allocate.
  static Result<std::unique_ptr<H2Liveness>> create(Options opts);
  ~H2Liveness();
  H2Liveness(const H2Liveness &) = delete;
  H2Liveness &operator=(const H2Liveness &) = delete;

  // Plaintext received from the server at `now` (the time acks and answers are stamped with).
  // Returns false when the bytes broke the protocol: failed() is then true, error() says why, and
  // take_output() may still hold a GOAWAY to send before closing. Afterwards a no-op.
  bool feed(std::string_view bytes, TimePoint now);

  // Appends every byte waiting to go to the server to `out`; returns how many.
  size_t take_output(std::string &out);
  bool has_output() const { return !out_.empty(); }

  // Queues a PING stamped `now`. Returns its id (1, 2, ...), or nullopt once failed().
  std::optional<uint64_t> send_ping(TimePoint now);
  // Queues `GET <path>[?verbose]` stamped `now` on a new stream. Returns the stream id, or nullopt
  // once failed() or after a GOAWAY (open a new connection for the next request).
  std::optional<int32_t> request(TimePoint now, bool verbose = false);

  // Every event since the last call, in the order they happened.
  std::vector<Event> take_events();

  // Forgets PINGs sent before `deadline` (their acks, if they ever come, are ignored) and returns
  // how many: each one is a PING that timed out.
  size_t expire_pings(TimePoint deadline);
  // Cancels (RST_STREAM CANCEL) requests sent before `deadline` that have not finished, and
  // returns how many: each one is a request that timed out. No event follows for them.
  size_t expire_requests(TimePoint deadline);

  size_t pings_in_flight() const { return pings_.size(); }
  size_t requests_in_flight() const { return streams_.size(); }
  // When the oldest unanswered PING / unfinished request was sent, for the owner's timer.
  std::optional<TimePoint> oldest_ping() const;
  std::optional<TimePoint> oldest_request() const;

  bool goaway_received() const { return goaway_; }
  bool failed() const { return failed_; }
  const std::string &error() const { return error_; }

private:
  struct Stream {
    TimePoint sent;
    TimePoint headers_at{};
    int status = 0;
    std::string body;
    bool truncated = false;
  };
  friend struct H2LivenessCallbacks; // the nghttp2 C callbacks (h2_liveness.cc)

  explicit H2Liveness(Options opts) : opts_(std::move(opts)) {}
  // Serializes what nghttp2 has queued into out_; false (and fail()) on a library error.
  bool pump();
  void fail(std::string why);

  Options opts_;
  nghttp2_session *session_ = nullptr;
  std::string out_;
  std::vector<Event> events_;
  std::deque<std::pair<uint64_t, TimePoint>> pings_; // in flight, oldest first
  std::map<int32_t, Stream> streams_;                // requests in flight
  uint64_t next_ping_id_ = 1;
  TimePoint now_{}; // of the feed() in progress
  bool goaway_ = false;
  bool failed_ = false;
  std::string error_;
  std::string last_lib_error_; // nghttp2's last error message, for error()
};

} // namespace kal
