#include "proxy/session.h"

#include "kube_api_lb/log/logger.h"
#include "proxy/worker.h"

#include <cerrno>
#include <cstring>

namespace kal {
namespace {

constexpr Direction kUp = Direction::ToUpstream;
constexpr Direction kDown = Direction::ToClient;

} // namespace

Session::Session(Worker &worker) : worker_(worker), io_(*this, worker.loop(), worker.pool()) {}

bool Session::start(uv_stream_t *server) {
  if (!io_.accept(server)) {
    close(CloseReason::ClientError);
    return false;
  }
  return begin();
}

bool Session::start_handed_over(int fd) {
  if (!io_.adopt(fd)) {
    close(CloseReason::ClientError);
    return false;
  }
  return begin();
}

bool Session::begin() {
  // TCP_NODELAY, keepalive and TCP_USER_TIMEOUT come from the listening socket: Linux copies them
  // into every accepted socket, which saves six setsockopt calls per connection.
  if (!timer_.init(worker_.loop(), this)) {
    close(CloseReason::ClientError);
    return false;
  }
  ep_.set_list(worker_.upstreams());
  last_activity_ms_ = accepted_ms_ = uv_now(worker_.loop());
  // Read the client at once: its bytes (the TLS ClientHello) are held while we dial.
  io_.read_start(Side::Client);
  dial();
  return true;
}

ExchangeFacts Session::facts() const {
  return {.phase = phase_,
          .got_first_byte = replay_.answered(),
          .replay_ok = replay_.replayable(),
          .replay_bytes = replay_.size(),
          .client_eof = c2u_.eof,
          .upstream_eof = u2c_.eof};
}

DrainFacts Session::drain_facts() const {
  return {.phase = phase_,
          .queued = c2u_.pending + u2c_.pending,
          .client_sent = last_from_client_ms_ != 0,
          .accepted_ms = accepted_ms_,
          .last_from_client_ms = last_from_client_ms_,
          .last_from_upstream_ms = last_from_upstream_ms_};
}

namespace {
bool local_shortage(int uv_err) {
  return uv_err == UV_EMFILE || uv_err == UV_ENFILE || uv_err == UV_ENOBUFS || uv_err == UV_ENOMEM;
}
} // namespace

void Session::dial() {
  const auto &s = worker_.settings();
  // The base the checker's up_since_ms() is on (slow start).
  up_ = ep_.bind_next(worker_.picker(), s, mono_ms(worker_.now()));
  if (!up_) {
    log::warn("no endpoint left to try for this connection")
        .kv("attempts", ep_.attempts())
        .kv("endpoints", static_cast<uint64_t>(ep_.size()));
    close(CloseReason::NoUpstream);
    return;
  }
  sockaddr_storage addr;
  if (!up_->first_addr(addr) || io_.open_upstream() != 0) {
    ep_.count_failure(&UpstreamCounters::connect_failures, false, nullptr);
    unbind_upstream();
    dial();
    return;
  }
  upstream_connected_ = false;
  phase_ = SessionPhase::Dialing;
  first_byte_timer_ = false;
  if (int rc = io_.connect(addr); rc != 0) {
    if (local_shortage(rc)) {
      // No descriptor (or memory) for the upstream socket: this process's limit, not the
      // endpoint's fault. Trying the others would fail the same way and blame each of them.
      worker_.note_out_of_resources(rc);
      io_.close_upstream();
      unbind_upstream();
      close(CloseReason::NoUpstream);
      return;
    }
    on_connect(rc);
    return;
  }
  timer_.start(timer_cb, s.connect_timeout_ms);
}

void Session::on_connect(int status) {
  if (closed_) {
    return;
  }
  if (status != 0) {
    if (log::v(2)) {
      log::debug("upstream connect failed")
          .kv("endpoint", up_->name())
          .kv("error", uv_err_name(status));
    }
    ep_.count_failure(&UpstreamCounters::connect_failures, true, worker_.on_passive_failure);
    io_.close_upstream();
    unbind_upstream();
    timer_.stop();
    dial();
    return;
  }
  upstream_connected_ = true;
  io_.set_nodelay(Side::Upstream);
  // Keepalive and TCP_USER_TIMEOUT guard connections that live long (watches); one that ends
  // within a second never needs them, so they are set by the worker once it has lived that long.
  const auto &s = worker_.settings();
  if (s.keepalive_idle_s > 0 || s.tcp_user_timeout_ms > 0) {
    connected_ms_ = uv_now(worker_.loop());
    worker_.queue_liveness(*this);
  }
  phase_ = replay_.answered() ? SessionPhase::Relaying : SessionPhase::AwaitFirstByte;
  if (!replay_.empty()) {
    send_copy(kUp, replay_.data(), replay_.size());
    if (closed_ || !upstream_connected_) {
      return; // the write failed: closed, or re-dialling another endpoint with the same bytes
    }
    if (!replay_.replayable()) {
      replay_.release();
    }
  }
  if (c2u_.eof) {
    half_close(kUp);
    if (closed_ || !upstream_connected_) {
      return; // closed, or re-dialling another endpoint (its connect timer runs)
    }
  }
  arm_timer();
  // Dialling may have paused the client (replay buffer full); it flows again now.
  maybe_resume(kUp);
}

void Session::on_endpoint_killed() {
  if (closed_) {
    return;
  }
  ExchangeFacts f = facts();
  // One getsockopt per session, and only when its endpoint goes down.
  bool ended_unread = !f.upstream_eof && upstream_ended_unread();
  switch (on_endpoint_down(f, ended_unread)) {
  case EndpointDown::CloseDone:
    close(CloseReason::Done); // nothing to carry elsewhere
    return;
  case EndpointDown::Redial:
    log::info("endpoint went down before it answered, re-dialling")
        .kv("endpoint", up_ ? up_->name() : "?");
    abandon_upstream();
    dial();
    return;
  case EndpointDown::DeliverEnded:
    // Passed on as if the upstream had reset; the client's further bytes are dropped.
    upstream_takes_no_more();
    return;
  case EndpointDown::Close:
    close(CloseReason::EndpointDown);
    return;
  }
}

// The upstream's end (its FIN, or a reset) is in the kernel but not read yet: the session stopped
// reading at the high watermark, or the rest waits in a splice pipe, while the client takes its
// time.
bool Session::upstream_ended_unread() const {
  if (!upstream_connected_) {
    return false;
  }
  auto state = io_.tcp_state(Side::Upstream);
  return state && peer_has_ended(*state);
}

void Session::redial(bool first_byte_timeout) {
  ep_.count_failure(first_byte_timeout ? &UpstreamCounters::first_byte_timeouts
                                       : &UpstreamCounters::early_closes,
                    true, worker_.on_passive_failure);
  log::info(first_byte_timeout ? "upstream silent before first byte, re-dialling"
                               : "upstream closed before first byte, re-dialling")
      .kv("endpoint", up_->name())
      .kv("replay_bytes", static_cast<uint64_t>(replay_.size()));
  abandon_upstream();
  dial();
}

void Session::tune_upstream_liveness() {
  if (io_.has_upstream()) {
    const auto &s = worker_.settings();
    io_.tune_liveness(Side::Upstream, s.keepalive_idle_s, s.tcp_user_timeout_ms);
  }
}

void Session::abandon_upstream() {
  worker_.dequeue_liveness(*this);
  io_.close_upstream(); // pending writes to it are cancelled; replay_ holds all of them
  upstream_connected_ = false;
  unbind_upstream();
  timer_.stop();
  c2u_.pending = 0;
  c2u_.shut = false;
  u2c_ = Flow{};
}

void Session::on_alloc(uv_buf_t *buf) {
  *buf = uv_buf_init(worker_.pool().get(), BufferPool::kBufferSize);
}

void Session::on_read(Side from, ssize_t nread, const uv_buf_t *buf) {
  if (nread <= 0 && buf->base) {
    worker_.pool().put(buf->base);
  }
  if (nread == 0) {
    return; // EAGAIN
  }
  if (nread > 0) {
    last_activity_ms_ = uv_now(worker_.loop());
    (from == Side::Client ? last_from_client_ms_ : last_from_upstream_ms_) = last_activity_ms_;
  }
  if (from == Side::Client) {
    on_client_read(nread, buf);
  } else {
    on_upstream_read(nread, buf);
  }
}

void Session::on_client_read(ssize_t nread, const uv_buf_t *buf) {
  if (nread < 0) {
    if (nread != UV_EOF) {
      close(CloseReason::ClientError);
      return;
    }
    c2u_.eof = true;
    io_.read_stop(Side::Client);
    if (!upstream_connected_ && client_left_silent(facts())) {
      // A TCP port probe: the connect in flight is abandoned, none other is dialled.
      close(CloseReason::Done);
      return;
    }
    if (upstream_connected_) {
      half_close(kUp);
    }
    maybe_finish();
    return;
  }
  size_t len = static_cast<size_t>(nread);
  if (upstream_broken_) {
    worker_.pool().put(buf->base);
    return;
  }
  ep_.count(&UpstreamCounters::bytes_to_upstream, len);
  const auto &s = worker_.settings();
  replay_.take(facts(), buf->base, len, s.replay_limit, upstream_connected_);
  if (!upstream_connected_) {
    worker_.pool().put(buf->base);
    if (pause_client_while_dialing(replay_.size(), s.high_watermark, s.replay_limit)) {
      c2u_.paused = true;
      io_.read_stop(Side::Client);
    }
    return;
  }
  if (phase_ == SessionPhase::AwaitFirstByte && !replay_.empty()) {
    // The upstream has to answer in time from the client's latest bytes: a request that
    // arrives in pieces (a slow client) owes no answer before its last piece.
    arm_timer();
  }
  relay(kUp, buf->base, len, true);
  if (len == BufferPool::kBufferSize && enter_splice(kUp)) {
    splice_pump(kUp);
  }
}

void Session::on_upstream_read(ssize_t nread, const uv_buf_t *buf) {
  if (nread < 0) {
    // Upstream EOF or error before it answered: nothing reached the client, try elsewhere.
    if (on_upstream_end(facts()) == UpstreamEnd::Redial) {
      redial(false);
      return;
    }
    // A reset ends the upstream's bytes like a FIN, but it takes none either: what it sent is
    // still written to the client (see upstream_takes_no_more), whose bytes are discarded.
    u2c_.eof = true;
    io_.read_stop(Side::Upstream);
    half_close(kDown);
    if (nread != UV_EOF) {
      upstream_takes_no_more();
    }
    maybe_finish();
    return;
  }
  size_t len = static_cast<size_t>(nread);
  if (!replay_.answered()) {
    replay_.on_answer();
    phase_ = SessionPhase::Relaying;
    arm_timer();
  }
  ep_.count(&UpstreamCounters::bytes_to_client, len);
  relay(kDown, buf->base, len, true);
  // A full buffer means more is waiting: bulk data, which splice(2) moves without copying.
  if (len == BufferPool::kBufferSize && enter_splice(kDown)) {
    splice_pump(kDown);
  }
}

// Writes what it can now; queues the rest with the buffer attached; pauses the source when the
// destination is above the high watermark.
void Session::relay(Direction d, char *data, size_t len, bool pooled) {
  Flow &f = flow(d);
  size_t queued = 0;
  switch (io_.write(d, data, len, pooled, f.pending == 0, &queued)) {
  case WriteResult::Done:
    return;
  case WriteResult::Failed:
    on_write_error(d);
    return;
  case WriteResult::Queued:
    break;
  }
  f.pending += queued;
  if (f.pending >= worker_.settings().high_watermark && !f.paused) {
    f.paused = true;
    io_.read_stop(source_of(d));
  }
}

void Session::send_copy(Direction d, const char *data, size_t len) {
  // A copy: the source (replay buffer) may be cleared or kept for another replay.
  char *copy = new char[len];
  std::memcpy(copy, data, len);
  relay(d, copy, len, false);
}

void Session::on_write_error(Direction d) {
  if (closed_) {
    return;
  }
  switch (on_write_failure(d, facts(), io_.has_upstream())) {
  case WriteFailure::Redial:
    redial(false);
    return;
  case WriteFailure::UpstreamTakesNoMore:
    upstream_takes_no_more();
    return;
  case WriteFailure::Close:
    close(d == kUp ? CloseReason::UpstreamError : CloseReason::ClientError);
    return;
  }
}

void Session::upstream_takes_no_more() {
  if (closed_ || upstream_broken_) {
    return;
  }
  upstream_broken_ = true;
  if (io_.splicing(kUp)) {
    io_.splice_close(kUp);
    c2u_.paused = true; // splicing had stopped libuv's reads: maybe_resume starts them again
  }
  c2u_.pending = 0;
  c2u_.shut = true; // nothing to pass a FIN to
  replay_.release();
  maybe_resume(kUp); // a paused client is read again, to be discarded
  // The lingering close starts now; its bounds also limit an answer still being written to a
  // client that never reads.
  linger_.start(uv_now(worker_.loop()));
  timer_.start(timer_cb, LingeringClose::kPollMs, LingeringClose::kPollMs);
  maybe_finish();
}

void Session::on_write_done(Direction d, size_t len) {
  if (closed_) {
    return;
  }
  Flow &f = flow(d);
  f.pending -= std::min(f.pending, len);
  last_activity_ms_ = uv_now(worker_.loop()); // a slow reader taking its answer is not idle
  maybe_resume(d);
  maybe_finish();
}

void Session::maybe_resume(Direction d) {
  Flow &f = flow(d);
  if (!f.paused || f.eof || f.pending > worker_.settings().high_watermark / 2) {
    return;
  }
  if (d == kUp && !upstream_connected_) {
    return;
  }
  f.paused = false;
  io_.read_start(source_of(d));
}

// Passes a FIN on. The FIN that ends the second direction is not passed on by shutdown(2) at all:
// both sides have been read to their EOF, so closing the sockets in close() sends it.
void Session::half_close(Direction d) {
  Flow &f = flow(d);
  if (f.shut || all_done()) {
    return;
  }
  f.shut = true;
  if (!linger_.active() && !first_byte_timer_) {
    arm_timer(); // the half-closed timeout applies from now
  }
  if (io_.shutdown(dest_of(d), f.pending == 0) == ShutdownResult::Failed) {
    upstream_gone_on_shutdown(d); // the peer is gone (ENOTCONN)
  }
}

// An upstream reset before its first byte is replaced like any early close (the client's bytes
// and its FIN go to another endpoint); otherwise there is nothing left to pass on.
void Session::upstream_gone_on_shutdown(Direction d) {
  if (d == kUp && on_upstream_end(facts()) == UpstreamEnd::Redial) {
    redial(false);
    return;
  }
  close(CloseReason::Done);
}

void Session::on_shutdown_done(int status) {
  if (closed_) {
    return;
  }
  if (status < 0 && status != UV_ECANCELED) {
    close(CloseReason::Done);
    return;
  }
  maybe_finish();
}

bool Session::all_done() const {
  return c2u_.eof && u2c_.eof && c2u_.pending == 0 && u2c_.pending == 0;
}

// Both sides sent their FIN and every byte was written: closing both sockets flushes what the
// kernel still holds and sends the FINs not yet passed on.
void Session::maybe_finish() {
  if (all_done()) {
    close(CloseReason::Done);
  }
}

// One poll of the lingering close (core/lingering_close.h): what is still owed to the client is
// what its kernel has not acknowledged plus what the proxy still queues for it.
void Session::on_linger_tick() {
  auto unacked = io_.unacked(Side::Client);
  if (!unacked) {
    close(CloseReason::Done);
    return;
  }
  if (linger_.should_close(*unacked + u2c_.pending, u2c_.eof, last_activity_ms_,
                           uv_now(worker_.loop()))) {
    close(CloseReason::Done);
  }
}

void Session::close(CloseReason why) {
  if (closed_) {
    return;
  }
  closed_ = true;
  if (why == CloseReason::EndpointDown) {
    ep_.count(&UpstreamCounters::closed_on_down);
  } else if (why == CloseReason::Drained) {
    ep_.count(&UpstreamCounters::drained);
  }
  unbind_upstream();
  timer_.reset();
  worker_.dequeue_liveness(*this);
  io_.close_all();
  replay_.release();
  worker_.retire(*this);
}

} // namespace kal
