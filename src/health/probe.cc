#include "health/probe.h"
#include "kube_api_lb/version.h"

#include "uvx/sockaddr.h"
#include "uvx/stream_io.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <utility>

namespace kal {
namespace {

std::string uv_error(const char *what, int status) {
  return std::string(what) + ": " + uv_strerror(status);
}

// The kernel's smoothed round trip of a connected socket (0 when it cannot say).
std::chrono::microseconds kernel_rtt(uv_tcp_t *tcp) {
  uv_os_fd_t fd;
  if (uv_fileno(reinterpret_cast<uv_handle_t *>(tcp), &fd) != 0) {
    return std::chrono::microseconds(0);
  }
  struct tcp_info ti {};
  socklen_t len = sizeof(ti);
  if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0) {
    return std::chrono::microseconds(0);
  }
  return std::chrono::microseconds(ti.tcpi_rtt);
}

} // namespace

SendSample Probe::send_queue() const {
  SendSample s;
  if (!tcp_ || phase_ == Phase::Connecting) {
    return s;
  }
  uv_os_fd_t fd;
  if (uv_fileno(reinterpret_cast<const uv_handle_t *>(tcp_.get()), &fd) != 0) {
    return s;
  }
  int kernel = 0; // SIOCOUTQ: not yet sent plus sent but not yet acknowledged
  if (::ioctl(fd, TIOCOUTQ, &kernel) != 0 || kernel < 0) {
    return s;
  }
  const uint64_t queued = uv_stream_get_write_queue_size(
      reinterpret_cast<const uv_stream_t *>(tcp_.get())); // not yet handed to the kernel
  s.connection = conn_id_;
  s.outstanding = static_cast<uint64_t>(kernel) + queued;
  s.acked = written_ >= s.outstanding ? written_ - s.outstanding : 0;
  return s;
}

Probe::Probe(uv_loop_t *loop, TimeSource &time, std::shared_ptr<Upstream> up, ProbeOptions opts,
             std::function<void()> on_idle_close)
    : loop_(loop), time_(time), up_(std::move(up)), opts_(std::move(opts)),
      on_idle_close_(std::move(on_idle_close)), readbuf_(64 * 1024) {
  const HostPort &hp = up_->address();
  // RFC 6066: SNI carries host names only, never IP literals (an IP is still verified, against the
  // certificate's IP SANs).
  if (!opts_.server_name.empty()) {
    verify_name_ = opts_.server_name;
    if (!is_ip_literal(opts_.server_name)) {
      sni_ = opts_.server_name;
    }
  } else {
    verify_name_ = hp.host;
    if (hp.kind == HostPort::Kind::Name) {
      sni_ = hp.host;
    }
  }
  const std::string host = opts_.server_name.empty() ? hp.str() : opts_.server_name;
  request_ = "GET " + opts_.path + " HTTP/1.1\r\nHost: " + host +
             "\r\nUser-Agent: kube-api-lb/" KAL_VERSION
             "\r\nAccept: */*\r\nConnection: keep-alive\r\n\r\n";
}

Probe::~Probe() { cancel(); }

void Probe::cancel() {
  done_ = nullptr;
  pending_ = false;
  timer_.reset(); // closed, not just stopped: the loop must be able to run dry and close
  close_connection();
}

void Probe::close_connection() {
  // Handle::reset clears `data` first, so callbacks still queued for this socket (connect,
  // write, read) find no owner and only free their requests.
  tcp_.reset();
  tls_.reset();
  h2_.reset();
  established_ = false;
  linger_ = false;
  phase_ = Phase::Idle;
}

void Probe::close_gracefully() {
  if (tls_) {
    tls_->shutdown();
    flush(); // best effort: libuv writes at once when its queue is empty
  }
  close_connection();
}

void Probe::start(DoneFn done) { start(std::move(done), opts_.timeout); }

void Probe::start(DoneFn done, std::chrono::milliseconds timeout) {
  done_ = std::move(done);
  started_ = time_.now();
  timeout_ = std::max(timeout, std::chrono::milliseconds(1));
  rtt_ = kernel_rtt_ = std::chrono::microseconds(0);
  if (!timer_) {
    timer_ = time_.create_timer([this] { on_timeout(); });
  }
  retried_ = false;
  got_answer_ = false;
  refused_ = false;
  pending_ = false;
  timer_->enable(timeout_);
  if (tls_renewed_) {
    // Also a session stored by a check that was in flight during set_tls(): it resumes the old
    // identity.
    tls_renewed_ = false;
    session_.reset();
    close_gracefully();
  }
  if (h2_ && !h2_->usable()) {
    close_gracefully(); // after a GOAWAY: the next request needs a new connection
  }
  reused_ = opts_.mode == HealthMode::Https && established_;
  if (reused_) {
    send_request();
    return;
  }
  close_connection();
  connect();
}

void Probe::set_tls(std::shared_ptr<TlsContext> tls) {
  opts_.tls = std::move(tls);
  session_.reset();
  tls_renewed_ = true;
}

void Probe::fail_soon(CheckResult r, std::string detail) {
  // Reported from the timer on the next loop turn, so start() never calls back synchronously.
  close_connection();
  pending_ = true;
  pending_result_ = r;
  pending_detail_ = std::move(detail);
  if (!timer_) {
    timer_ = time_.create_timer([this] { on_timeout(); });
  }
  timer_->enable(std::chrono::milliseconds(0));
}

void Probe::connect() {
  refused_ = false;
  const auto addrs = up_->addrs();
  if (addrs.empty()) {
    fail_soon(CheckResult::L4Con, "unresolved");
    return;
  }
  const sockaddr_storage &sa = addrs[addr_index_ % addrs.size()];
  auto *tcp = tcp_.make(this);
  conn_id_++;
  written_ = 0;
  if (int rc = uv_tcp_init(loop_, tcp); rc != 0) {
    tcp_.abandon();
    fail_soon(CheckResult::L4Con, uv_error("socket", rc));
    return;
  }
  uv_tcp_nodelay(tcp, 1);
  auto *req = new uv_connect_t{};
  if (int rc =
          uv_tcp_connect(req, tcp, reinterpret_cast<const sockaddr *>(&sa), &Probe::connect_cb);
      rc != 0) {
    delete req;
    addr_index_++;
    refused_ = rc == UV_ECONNREFUSED;
    fail_soon(CheckResult::L4Con, uv_error("connect", rc));
    return;
  }
  phase_ = Phase::Connecting;
}

void Probe::connect_cb(uv_connect_t *req, int status) noexcept {
  // The handle outlives its requests: libuv cancels them before the close callback frees it.
  auto *self = static_cast<Probe *>(req->handle->data);
  delete req;
  if (!self || status == UV_ECANCELED) {
    return;
  }
  self->on_connect(status);
}

void Probe::on_connect(int status) {
  if (status < 0) {
    addr_index_++;
    refused_ = status == UV_ECONNREFUSED;
    close_connection();
    finish(CheckResult::L4Con, uv_error("connect", status));
    return;
  }
  kernel_rtt_ = kernel_rtt(tcp_.get());
  if (opts_.mode == HealthMode::Tcp) {
    close_connection();
    finish(CheckResult::Ok, "");
    return;
  }
  tls_ = TlsEngine::client(opts_.tls, sni_, verify_name_, session_.get());
  if (!tls_) {
    close_connection();
    finish(CheckResult::L6Rsp, "cannot create TLS session");
    return;
  }
  if (int rc = uvx::read_start<Probe, &Probe::readbuf_, &Probe::on_read>(tcp_.stream()); rc != 0) {
    close_connection();
    finish(CheckResult::L4Con, uv_error("read", rc));
    return;
  }
  phase_ = Phase::Handshaking;
  drive_handshake();
}

void Probe::flush() {
  if (!tls_ || !tcp_) {
    return;
  }
  std::string bytes;
  if (tls_->take_output(bytes) == 0) {
    return;
  }
  const size_t n = bytes.size();
  if (int rc = uvx::write_owned<Probe, &Probe::on_io_error>(tcp_.stream(), std::move(bytes));
      rc != 0) {
    on_io_error(rc);
    return;
  }
  written_ += n;
}

void Probe::count_handshake(bool resumed) {
  up_->health_counters.handshakes.fetch_add(1, std::memory_order_relaxed);
  if (resumed) {
    up_->health_counters.resumed_handshakes.fetch_add(1, std::memory_order_relaxed);
  }
  handshake_times_.push_back(time_.now());
}

void Probe::drive_handshake() {
  const auto h = tls_->handshake();
  flush();
  if (!tls_) {
    return; // flush failed and ended the check
  }
  if (h == TlsEngine::Handshake::Failed) {
    std::string why = tls_->error();
    close_connection();
    finish(CheckResult::L6Rsp, why);
    return;
  }
  if (h == TlsEngine::Handshake::InProgress) {
    return;
  }
  count_handshake(tls_->resumed());
  if (opts_.mode == HealthMode::Tls) {
    if (auto s = tls_->take_new_session()) {
      session_ = std::move(s); // TLS 1.2: the session is known at the end of the handshake
      close_gracefully();
    } else {
      // TLS 1.3 tickets follow the handshake: keep the connection until one arrives (or the next
      // check replaces it), or there is nothing to resume next time.
      phase_ = Phase::Idle;
      linger_ = true;
    }
    finish(CheckResult::Ok, "");
    return;
  }
  established_ = true;
  if (tls_->alpn() == "h2") {
    const HostPort &hp = up_->address();
    h2_ = H2Check::create(opts_.server_name.empty() ? hp.str() : opts_.server_name, opts_.path);
    if (!h2_) {
      close_connection();
      finish(CheckResult::L7Rsp, "cannot create an HTTP/2 session");
      return;
    }
  }
  send_request();
}

void Probe::send_request() {
  parser_.reset();
  got_answer_ = false;
  phase_ = Phase::Requesting;
  request_sent_ = time_.now();
  if (h2_) {
    if (!h2_->request(request_sent_)) {
      std::string why = "HTTP/2: cannot start a request: " + h2_->error();
      close_connection();
      finish(CheckResult::L7Rsp, why);
      return;
    }
    flush_h2();
    return;
  }
  if (!tls_->write(request_)) {
    std::string why = tls_->error();
    close_connection();
    finish(CheckResult::L7Rsp, why);
    return;
  }
  flush();
}

void Probe::on_read(ssize_t nread, const char *data) {
  if (nread < 0) {
    on_io_error(static_cast<int>(nread));
    return;
  }
  tls_->feed(data, static_cast<size_t>(nread));
  if (phase_ == Phase::Handshaking) {
    drive_handshake();
    if (phase_ != Phase::Requesting || !tls_) {
      return;
    }
    // The server may have sent its first application data (tickets) with the handshake.
  }
  std::string plain;
  const auto st = tls_->read(plain);
  session_fresh_ = false;
  if (auto s = tls_->take_new_session()) {
    session_ = std::move(s);
    session_fresh_ = true;
  }
  flush(); // key updates and alerts
  if (!tls_) {
    return;
  }
  on_plaintext(plain, st);
}

void Probe::on_plaintext(const std::string &plain, TlsEngine::ReadStatus st) {
  if (h2_) {
    on_h2_plaintext(plain, st);
    return;
  }
  if (phase_ == Phase::Idle && linger_) {
    if (session_fresh_ || st != TlsEngine::ReadStatus::Ok) {
      close_gracefully();
    }
    return;
  }
  if (phase_ == Phase::Idle) {
    // Nothing is expected between checks: tickets carry no plaintext. Anything else (close_notify,
    // a stray answer) makes the connection unusable; let the owner re-check on a fresh one.
    if (!plain.empty() || st != TlsEngine::ReadStatus::Ok) {
      close_connection();
      if (on_idle_close_) {
        on_idle_close_();
      }
    }
    return;
  }
  if (phase_ != Phase::Requesting) {
    return;
  }
  if (!plain.empty()) {
    if (!got_answer_) {
      rtt_ = std::chrono::duration_cast<std::chrono::microseconds>(time_.now() - request_sent_);
    }
    got_answer_ = true;
    parser_.feed(plain);
  }
  if (parser_.state() == HttpResponseParser::State::Incomplete && st != TlsEngine::ReadStatus::Ok) {
    if (st == TlsEngine::ReadStatus::Failed) {
      on_closed(tls_->error());
      return;
    }
    parser_.finish();
    if (parser_.state() != HttpResponseParser::State::Done) {
      on_closed("connection closed (close_notify)");
      return;
    }
  }
  switch (parser_.state()) {
  case HttpResponseParser::State::Incomplete:
    return;
  case HttpResponseParser::State::Error: {
    std::string why = "bad HTTP answer: " + parser_.error();
    close_connection();
    finish(CheckResult::L7Rsp, why);
    return;
  }
  case HttpResponseParser::State::Done:
    break;
  }
  const int status = parser_.status();
  if (!parser_.keep_alive() || st != TlsEngine::ReadStatus::Ok) {
    close_connection();
  } else {
    phase_ = Phase::Idle;
  }
  if (status == 200) {
    finish(CheckResult::Ok, "", status);
  } else if (status == 401 || status == 403) {
    finish(CheckResult::L7Auth, "HTTP " + std::to_string(status), status);
  } else {
    finish(CheckResult::L7Sts, "HTTP " + std::to_string(status), status);
  }
}

void Probe::on_io_error(int status) {
  on_closed(status == UV_EOF ? std::string("connection closed") : uv_error("connection", status));
}

void Probe::on_closed(std::string why) {
  switch (phase_) {
  case Phase::Idle:
    if (linger_) {
      close_connection(); // a tls-mode connection waiting for its ticket: nothing to report
      return;
    }
    close_connection();
    if (on_idle_close_) {
      on_idle_close_();
    }
    return;
  case Phase::Connecting:
    close_connection();
    finish(CheckResult::L4Con, why);
    return;
  case Phase::Handshaking:
    close_connection();
    finish(CheckResult::L6Rsp, why + " during TLS handshake");
    return;
  case Phase::Requesting:
    break;
  }
  if (parser_.head_done() && parser_.finish() == HttpResponseParser::State::Done) {
    // A body delimited by the close: a complete answer after all.
    on_plaintext("", TlsEngine::ReadStatus::Closed);
    return;
  }
  close_connection();
  if (reused_ && !got_answer_ && !retried_) {
    // The server closed the kept-alive connection just as we sent the request (the classic
    // keep-alive race). Nothing was answered: retry once on a fresh connection within the same
    // check and timeout, as HTTP clients do for idempotent requests.
    retried_ = true;
    reused_ = false;
    connect();
    return;
  }
  finish(CheckResult::L7Rsp, why + " before the answer");
}

void Probe::on_timeout() {
  if (pending_) {
    pending_ = false;
    finish(pending_result_, std::move(pending_detail_));
    return;
  }
  if (!done_) {
    return;
  }
  const Phase phase = phase_;
  const std::string ms = std::to_string(timeout_.count()) + "ms";
  timeout_queue_ = send_queue(); // before the connection goes: did our bytes leave?
  if (phase == Phase::Requesting && h2_) {
    // Slow is not dead: cancel the stream, keep the connection and its PINGs.
    h2_->cancel_request();
    phase_ = Phase::Idle;
    flush_h2();
    finish(CheckResult::L7Tout, "no HTTP/2 answer within " + ms);
    return;
  }
  close_connection();
  switch (phase) {
  case Phase::Connecting:
    finish(CheckResult::L4Tout, "no TCP connection within " + ms);
    return;
  case Phase::Handshaking:
    finish(CheckResult::L6Tout, "no TLS handshake within " + ms);
    return;
  case Phase::Requesting:
  case Phase::Idle:
    break;
  }
  // The status line already answered "not ready" (a draining apiserver's slow or unframed body):
  // that answer counts, not the missing rest. A 2xx, 401 or 403 proves nothing until complete.
  if (const int status = phase == Phase::Requesting ? parser_.status_line_status() : 0;
      status >= 300 && status != 401 && status != 403) {
    finish(CheckResult::L7Sts,
           "HTTP " + std::to_string(status) + " (answer incomplete within " + ms + ")", status);
    return;
  }
  finish(CheckResult::L7Tout, "no answer within " + ms);
}

void Probe::finish(CheckResult r, std::string detail, int status) {
  if (timer_) {
    timer_->disable();
  }
  const auto now = time_.now();
  while (!handshake_times_.empty() && now - handshake_times_.front() > std::chrono::minutes(1)) {
    handshake_times_.pop_front();
  }
  up_->health_counters.handshakes_last_minute.store(handshake_times_.size(),
                                                    std::memory_order_relaxed);
  if (!done_) {
    return;
  }
  ProbeOutcome o;
  o.result = r;
  o.refused = r == CheckResult::L4Con && refused_;
  o.status = status;
  o.detail = std::move(detail);
  o.duration = std::chrono::duration_cast<std::chrono::microseconds>(now - started_);
  o.reused = reused_;
  o.h2 = h2_ != nullptr;
  o.established = established_;
  o.rtt = rtt_;
  o.kernel_rtt = kernel_rtt_;
  if (r == CheckResult::L7Tout || r == CheckResult::L6Tout) {
    o.send_queue = timeout_queue_;
  }
  timeout_queue_ = {};
  auto done = std::move(done_);
  done_ = nullptr;
  done(o); // last: the callback may cancel or start this probe again
}

} // namespace kal
