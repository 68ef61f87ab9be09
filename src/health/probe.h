#pragma once
// The I/O half of one endpoint's health check, on libuv: TCP connect, TLS handshake (TlsEngine over
// memory BIOs), `GET <path>` over HTTP/1.1. Decides nothing: it reports one CheckResult per check
// and the HealthChecker feeds it to the endpoint's HealthTracker.
//
// Modes:
//  - https: one TLS connection per endpoint is kept alive between checks and every check is one
//    `GET <path>` on it, so a fleet of proxies costs the apiservers requests, not handshakes. It
//    is re-established (resuming the last TLS session) only when it breaks. If the server closes
//    the idle connection, on_idle_close runs so the caller can re-check at once: an apiserver that
//    dies closes its sockets, and that is the fastest signal there is.
//  - tls: a fresh connection per check, handshake (resumed), close_notify, close. The check is
//    the handshake, so keeping the connection would not re-check anything.
//  - tcp: a fresh connect per check, then close. What an L4 check must prove is that the listener
//    accepts now; a kept connection says nothing about that (a draining apiserver that closed its
//    listener, or a crashed one behind a stateful firewall, can leave old connections standing).
//
// A per-check timeout covers the whole check; when it fires the result names the phase the check
// was in: L4TOUT (connecting), L6TOUT (handshaking), L7TOUT (waiting for the answer), except that
// an answer whose status line already said "not ready" (not 2xx, 401 or 403) is reported as that
// L7STS even if the rest of it never arrives (a draining apiserver, not a hung one).
#include "health/tls_engine.h"
#include "kube_api_lb/config/config.h"
#include "kube_api_lb/core/health.h"
#include "kube_api_lb/core/http_response_parser.h"
#include "kube_api_lb/core/upstream.h"
#include "uvx/handle.h"
#include "uvx/time_source.h"

#include <uv.h>

#include <chrono>
#include <deque>
#include <functional>
#include <memory>
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
  bool busy() const { return static_cast<bool>(done_); }

  // Aborts a running check without calling `done` and closes every handle. The object stays
  // usable (start() again) and may be destroyed later; safe to call from inside `done`.
  void cancel();

  // Whether a kept-alive connection is ready for the next request (https mode).
  bool connected() const { return established_; }

  // Makes every check from the next start() on handshake with `tls` (the files were rotated). A
  // check in flight finishes with the old context, which its TlsEngine keeps alive. The kept-alive
  // connection and the session to resume are dropped at the next start(): both carry the identity
  // the old files presented, which the server may stop accepting once the old certificate expires.
  void set_tls(std::shared_ptr<TlsContext> tls);

private:
  enum class Phase { Idle, Connecting, Handshaking, Requesting };

  static void connect_cb(uv_connect_t *req, int status) noexcept;
  static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) noexcept;
  static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) noexcept;
  static void write_cb(uv_write_t *req, int status) noexcept;

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
  std::string sni_, verify_name_, request_;

  uvx::Handle<uv_tcp_t> tcp_;
  std::unique_ptr<Timer> timer_; // the check's timeout, and fail_soon()'s next-turn report
  std::unique_ptr<TlsEngine> tls_;
  SslSessionPtr session_; // from the last successful handshake with this endpoint
  HttpResponseParser parser_;
  Phase phase_ = Phase::Idle;
  bool established_ = false;
  bool linger_ = false;        // tls mode: check done, connection kept only to receive a ticket
  bool session_fresh_ = false; // the last read delivered a new session
  bool tls_renewed_ = false;   // set_tls() since the last start(): connect afresh, do not resume

  DoneFn done_;
  TimePoint started_;
  bool reused_ = false;     // this check started on a kept-alive connection
  bool retried_ = false;    // it already re-connected once after a stale kept-alive connection
  bool got_answer_ = false; // some response bytes arrived for the current request
  bool refused_ = false;    // the last connect was refused (reported with L4CON)
  bool pending_ = false;    // fail_soon() armed the timer to report pending_result_
  CheckResult pending_result_ = CheckResult::Ok;
  std::string pending_detail_;
  size_t addr_index_ = 0;                 // rotates through addrs() after connect failures
  std::deque<TimePoint> handshake_times_; // last minute's handshakes
  std::vector<char> readbuf_;
};

} // namespace kal
