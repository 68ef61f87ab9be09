#pragma once
// The I/O half of one endpoint's health check, on libuv: TCP connect, TLS handshake (TlsEngine over
// memory BIOs), `GET <path>` over HTTP/1.1 or, when the handshake negotiated ALPN "h2", over HTTP/2
// (H2Check, health/h2_check.h) together with HTTP/2 PINGs. Decides nothing: it reports one
// CheckResult per check and what arrived between checks (PING acks, GOAWAY); the HealthChecker
// turns both into the endpoint's verdicts (core/verdict.h).
//
// Modes:
//  - https: one TLS connection per endpoint is kept alive between checks and every check is one
//    `GET <path>` on it, so a fleet of proxies costs the apiservers requests, not handshakes. It
//    is re-established (resuming the last TLS session) only when it breaks. If the server closes
//    the idle connection, on_idle_close runs so the caller can re-check at once: an apiserver that
//    dies closes its sockets, and that is the fastest signal there is.
//  - tls: a fresh connection per check, handshake (resumed), close_notify, close. The check is
//    the handshake, so keeping the connection would not re-check anything.
//    On an h2 connection (the TLS context offers ALPN h2, HealthConfig::http2) a /readyz that times
//    out only cancels its stream: the connection stays, because a slow /readyz is an overloaded
//    apiserver, not a dead one, and the PINGs on the same connection tell the two apart.
//  - tcp: a fresh connect per check, then close. What an L4 check must prove is that the listener
//    accepts now; a kept connection says nothing about that (a draining apiserver that closed its
//    listener, or a crashed one behind a stateful firewall, can leave old connections standing).
//
// A per-check timeout covers the whole check; when it fires the result names the phase the check
// was in: L4TOUT (connecting), L6TOUT (handshaking), L7TOUT (waiting for the answer), except that
// an answer whose status line already said "not ready" (not 2xx, 401 or 403) is reported as that
// L7STS even if the rest of it never arrives (a draining apiserver, not a hung one).
#include "health/h2_check.h"
#include "health/tls_engine.h"
#include "kube_api_lb/config/config.h"
#include "kube_api_lb/core/health.h"
#include "kube_api_lb/core/http_response_parser.h"
#include "kube_api_lb/core/send_stall.h"
#include "kube_api_lb/core/upstream.h"
#include "uvx/handle.h"
#include "uvx/time_source.h"

#include <uv.h>

#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace kal {

struct ProbeOptions {
  HealthMode mode = HealthMode::Https; // Https, Tls or Tcp (None is never probed)
  std::string path = "/readyz";
  std::chrono::milliseconds timeout{400};
  std::shared_ptr<TlsContext> tls; // required for Https and Tls
  std::string server_name; // verified name, Host and SNI (never an IP literal, RFC 6066); empty:
                           // the endpoint's host
};

struct ProbeOutcome {
  CheckResult result = CheckResult::Ok;
  bool refused = false; // L4CON because the connect was refused (ECONNREFUSED): nothing listens
  int status = 0;       // HTTP status when an answer (or at least its status line) was read, else 0
  std::string detail;   // why it failed ("connect: connection refused", "unresolved", ...)
  std::chrono::microseconds duration{0};
  bool reused = false; // the check ran over a connection kept from an earlier check
  bool h2 = false;     // the check ran over an HTTP/2 connection (ALPN h2)
  // The check connection's TLS handshake is done (https mode) and the connection is kept: h2
  // says which protocol it speaks.
  bool established = false;
  // Round trip of the request to the first byte (HTTP/1.1) or the response headers (HTTP/2); 0
  // when no answer arrived. Includes the apiserver's handler time.
  std::chrono::microseconds rtt{0};
  // The kernel's smoothed RTT (TCP_INFO tcpi_rtt) of a connection this check opened; 0 if none.
  std::chrono::microseconds kernel_rtt{0};
  // The check connection's send queue when the check timed out (L4/L6/L7 timeouts), taken just
  // before the connection was closed; connection 0 otherwise.
  SendSample send_queue;
};

// What arrives on a kept-alive h2 check connection between (and during) checks.
struct ProbeEvent {
  enum class Kind : uint8_t {
    PingAck, // rtt: the PING's round trip
    GoAway,  // the apiserver will take no new streams on this connection
  };
  Kind kind = Kind::PingAck;
  std::chrono::microseconds rtt{0};
};

class Probe {
public:
  using DoneFn = std::function<void(const ProbeOutcome &)>;

  // Sockets on `loop`; the check's timeout, its duration and the handshake counts of the last
  // minute on `time` (which must outlive the probe). `up` is read for addrs() and address(), and
  // its health_counters get the handshake counts. `on_idle_close` runs (on the loop) when an idle
  // kept-alive connection was closed by the peer.
  Probe(uv_loop_t *loop, TimeSource &time, std::shared_ptr<Upstream> up, ProbeOptions opts,
        std::function<void()> on_idle_close);
  ~Probe();
  Probe(const Probe &) = delete;
  Probe &operator=(const Probe &) = delete;

  // Starts one check. `done` runs exactly once, later on the loop (never inside start()), unless
  // cancel() or the destructor comes first. The probe must not be busy().
  void start(DoneFn done);
  // The same with this check's own timeout instead of ProbeOptions::timeout (the checker derives
  // it from the link's round-trip time).
  void start(DoneFn done, std::chrono::milliseconds timeout);
  bool busy() const { return static_cast<bool>(done_); }

  // Runs (on the loop, never inside a call into the probe) for each ProbeEvent. The callback must
  // not destroy the probe.
  void set_on_event(std::function<void(const ProbeEvent &)> fn) { on_event_ = std::move(fn); }

  // Whether the kept-alive connection speaks HTTP/2 and can take PINGs now.
  bool h2() const { return established_ && h2_ != nullptr; }
  // Sends an HTTP/2 PING stamped `now`; false (nothing sent) when !h2().
  bool ping(TimePoint now);
  // Forgets PINGs sent before `deadline`; returns how many timed out (0 without h2).
  size_t expire_pings(TimePoint deadline);
  // When the oldest unanswered PING was sent.
  std::optional<TimePoint> oldest_ping() const;

  // Aborts a running check without calling `done` and closes every handle. The object stays
  // usable (start() again) and may be destroyed later; safe to call from inside `done`.
  void cancel();

  // Whether a kept-alive connection is ready for the next request (https mode).
  bool connected() const { return established_; }

  // The check connection's send queue now: bytes the checker wrote that the peer's TCP has not
  // acknowledged yet, wherever they wait (libuv's write queue, the kernel's send queue: SIOCOUTQ
  // counts both unsent and sent-but-unacknowledged bytes; TLS and HTTP/2 output is handed to
  // libuv as soon as it is produced, so nothing waits there), and the bytes acknowledged in total
  // on this connection. connection 0 when there is no connection.
  SendSample send_queue() const;

  // Makes every check from the next start() on handshake with `tls` (the files were rotated). A
  // check in flight finishes with the old context, which its TlsEngine keeps alive. The kept-alive
  // connection and the session to resume are dropped at the next start(): both carry the identity
  // the old files presented, which the server may stop accepting once the old certificate expires.
  void set_tls(std::shared_ptr<TlsContext> tls);

private:
  enum class Phase { Idle, Connecting, Handshaking, Requesting };

  static void connect_cb(uv_connect_t *req, int status) noexcept;

  void connect();
  void on_connect(int status);
  void on_read(ssize_t nread, const char *data);
  void on_io_error(int status);
  // `why` by value: it may be the TLS engine's error text, and closing drops the engine.
  void on_closed(std::string why);
  void on_timeout();
  void drive_handshake();
  void send_request();
  void on_plaintext(const std::string &plain, TlsEngine::ReadStatus st);
  void on_h2_plaintext(const std::string &plain, TlsEngine::ReadStatus st);
  void flush_h2(); // what H2Check queued, through TLS onto the socket
  void flush();
  void close_connection();
  void close_gracefully(); // close_notify, then close
  void count_handshake(bool resumed);
  void fail_soon(CheckResult r, std::string detail);
  // Ends the check: stops the timer, fills the outcome and calls done_ as the very last action.
  void finish(CheckResult r, std::string detail, int status = 0);

  uv_loop_t *loop_;
  TimeSource &time_;
  std::shared_ptr<Upstream> up_;
  ProbeOptions opts_;
  std::function<void()> on_idle_close_;
  std::function<void(const ProbeEvent &)> on_event_;
  std::string sni_, verify_name_, request_;

  uvx::Handle<uv_tcp_t> tcp_;
  std::unique_ptr<Timer> timer_; // the check's timeout, and fail_soon()'s next-turn report
  std::unique_ptr<TlsEngine> tls_;
  std::unique_ptr<H2Check> h2_; // the connection negotiated h2
  SslSessionPtr session_;       // from the last successful handshake with this endpoint
  HttpResponseParser parser_;
  Phase phase_ = Phase::Idle;
  bool established_ = false;
  bool linger_ = false;        // tls mode: check done, connection kept only to receive a ticket
  bool session_fresh_ = false; // the last read delivered a new session
  bool tls_renewed_ = false;   // set_tls() since the last start(): connect afresh, do not resume

  DoneFn done_;
  TimePoint started_;
  std::chrono::milliseconds timeout_{0}; // of the check running now
  TimePoint request_sent_{};
  std::chrono::microseconds rtt_{0};        // of the current check's request
  std::chrono::microseconds kernel_rtt_{0}; // of the connection the current check opened
  bool reused_ = false;                     // this check started on a kept-alive connection
  bool retried_ = false;    // it already re-connected once after a stale kept-alive connection
  bool got_answer_ = false; // some response bytes arrived for the current request
  bool refused_ = false;    // the last connect was refused (reported with L4CON)
  bool pending_ = false;    // fail_soon() armed the timer to report pending_result_
  CheckResult pending_result_ = CheckResult::Ok;
  std::string pending_detail_;
  size_t addr_index_ = 0;                 // rotates through addrs() after connect failures
  std::deque<TimePoint> handshake_times_; // last minute's handshakes
  uint64_t conn_id_ = 0;                  // of the connection in tcp_ (counts connects)
  uint64_t written_ = 0;                  // bytes handed to uv_write on that connection
  SendSample timeout_queue_;              // send_queue() when the current check timed out
  std::vector<char> readbuf_;
};

} // namespace kal
