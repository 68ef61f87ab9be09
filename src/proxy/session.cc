#include "proxy/session.h"

#include "kube_api_lb/log/logger.h"
#include "proxy/worker.h"
#include "uvx/sockaddr.h"

#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

namespace kal {
namespace {

// A write in flight: owns its bytes (a pool buffer or a heap copy) until libuv is done with it.
struct WriteReq {
  uv_write_t req;
  BufferPool *pool;
  char *data;
  bool pooled;
  bool to_upstream;
  size_t len;
};

void free_write(WriteReq *w) {
  if (w->pooled) {
    w->pool->put(w->data);
  } else {
    delete[] w->data;
  }
  delete w;
}

void write_cb(uv_write_t *req, int status) noexcept {
  auto *w = reinterpret_cast<WriteReq *>(req);
  // A closed handle's data is null: the session is gone or moved on (UV_ECANCELED).
  auto *self = static_cast<Session *>(req->handle->data);
  bool to_upstream = w->to_upstream;
  size_t len = w->len;
  free_write(w);
  if (!self) {
    return;
  }
  if (status < 0) {
    self->on_write_error(to_upstream);
    return;
  }
  self->on_write_done(to_upstream, len);
}

void alloc_cb(uv_handle_t *h, size_t, uv_buf_t *buf) noexcept {
  auto *self = static_cast<Session *>(h->data);
  if (!self) {
    *buf = uv_buf_init(nullptr, 0);
    return;
  }
  self->on_alloc(buf);
}

void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) noexcept {
  auto *self = static_cast<Session *>(s->data);
  if (!self) {
    return; // cannot happen with a pooled buffer: alloc_cb gave none without an owner
  }
  self->on_read(s, nread, buf);
}

void connect_cb(uv_connect_t *req, int status) noexcept {
  auto *self = static_cast<Session *>(req->handle->data);
  delete req;
  if (self) {
    self->on_connect(status);
  }
}

void shutdown_cb(uv_shutdown_t *req, int status) noexcept {
  auto *self = static_cast<Session *>(req->handle->data);
  delete req;
  if (self) {
    self->on_shutdown_done(status);
  }
}

// A socket error (libuv reports POLLERR as UV_EBADF and stops the poll) is left to the splice
// calls: they return what the socket received before it, then the error itself.
void splice_poll_cb(uv_poll_t *h, int, int) noexcept {
  if (auto *self = static_cast<Session *>(h->data)) {
    self->on_splice_poll(h);
  }
}

// splice(2) moves up to a chunk per call through a pipe of the same size; a session moves at most
// a fair share per loop turn before it lets other connections run.
constexpr size_t kSpliceChunk = 256 * 1024;
constexpr size_t kSpliceFairShare = 1024 * 1024;

// A session whose upstream stopped taking bytes, once it has written everything the upstream
// sent, waits for the client's FIN or for the client to have acknowledged all of it: as long as
// the client takes or sends something every kLingerMs, for kLingerMaxMs at most (nginx's
// lingering_timeout and lingering_time); checked every kLingerPollMs.
constexpr uint64_t kLingerMs = 5000;
constexpr uint64_t kLingerMaxMs = 30000;
constexpr uint64_t kLingerPollMs = 100;

void close_fd(int &fd) {
  if (fd >= 0) {
    ::close(fd);
    fd = -1;
  }
}

void timer_cb(uv_timer_t *t) noexcept {
  if (auto *self = static_cast<Session *>(t->data)) {
    self->on_timer();
  }
}

} // namespace

Session::Session(Worker &worker) : worker_(worker) {}

Session::~Session() = default;

bool Session::init_client() {
  worker_.link(this);
  if (uv_tcp_init(worker_.loop(), client_.make(this)) != 0) {
    client_.abandon();
    close(CloseReason::ClientError);
    return false;
  }
  return true;
}

bool Session::start(uv_stream_t *server) {
  if (!init_client()) {
    return false;
  }
  if (uv_accept(server, client_.stream()) != 0) {
    close(CloseReason::ClientError);
    return false;
  }
  return begin();
}

bool Session::start_handed_over(int fd) {
  if (!init_client() || uv_tcp_open(client_.get(), fd) != 0) {
    ::close(fd); // not the handle's yet
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
  list_ = worker_.upstreams();
  last_activity_ms_ = uv_now(worker_.loop());
  // Read the client at once: its bytes (the TLS ClientHello) are held while we dial.
  uv_read_start(client_.stream(), alloc_cb, read_cb);
  dial();
  return true;
}

void Session::bind_upstream(std::shared_ptr<Upstream> up, uint64_t epoch) {
  up_ = std::move(up);
  bound_epoch_ = epoch;
  up_->counters.active.fetch_add(1, std::memory_order_relaxed);
  up_->counters.total.fetch_add(1, std::memory_order_relaxed);
}

void Session::unbind_upstream() {
  if (up_) {
    up_->counters.active.fetch_sub(1, std::memory_order_relaxed);
    up_.reset();
  }
}

void Session::dial() {
  const auto &list = *list_;
  const auto &s = worker_.settings();
  int64_t now_ms = mono_ms(worker_.now()); // the base the checker's up_since_ms() is on
  Candidate cands[kMaxEndpoints];
  uint64_t epochs[kMaxEndpoints];
  size_t n = std::min(list.size(), kMaxEndpoints); // validate() rejects more
  for (size_t i = 0; i < n; ++i) {
    const auto &u = *list[i];
    // The kill epoch before the health: the checker sets Down before it bumps the epoch, so an
    // endpoint seen healthy here is bound with an epoch from before any kill that follows, and
    // close_killed_sessions() still catches the session.
    epochs[i] = u.kill_epoch();
    cands[i].health = s.health_checks ? u.health() : Health::Unknown;
    cands[i].active = u.counters.active.load(std::memory_order_relaxed);
    cands[i].excluded = (tried_ >> i) & 1 || u.removed();
    cands[i].weight = 1.0;
    if (s.slow_start_ms > 0 && cands[i].health == Health::Up && u.up_since_ms() > 0) {
      int64_t since = now_ms - u.up_since_ms();
      if (since >= 0 && static_cast<uint64_t>(since) < s.slow_start_ms) {
        cands[i].weight = 0.05 + 0.95 * static_cast<double>(since) / s.slow_start_ms;
      }
    }
  }
  auto choice = worker_.picker().pick(std::span<const Candidate>(cands, n));
  if (!choice) {
    log::warn("no endpoint left to try for this connection")
        .kv("attempts", attempts_)
        .kv("endpoints", static_cast<uint64_t>(n));
    close(CloseReason::NoUpstream);
    return;
  }
  tried_ |= uint64_t{1} << *choice;
  ++attempts_;
  bind_upstream(list[*choice], epochs[*choice]);

  sockaddr_storage addr;
  bool resolved = up_->first_addr(addr);
  auto *u = upstream_.make(this);
  if (!resolved || uv_tcp_init(worker_.loop(), u) != 0) {
    upstream_.abandon(); // libuv never saw it
    up_->counters.connect_failures.fetch_add(1, std::memory_order_relaxed);
    up_->counters.retries.fetch_add(1, std::memory_order_relaxed);
    unbind_upstream();
    dial();
    return;
  }
  upstream_connected_ = false;
  phase_ = Phase::Dialing;
  first_byte_timer_ = false;
  auto *req = new uv_connect_t{};
  int rc = uv_tcp_connect(req, u, reinterpret_cast<const sockaddr *>(&addr), connect_cb);
  if (rc != 0) {
    delete req;
    on_connect(rc);
    return;
  }
  // Reading is armed with the connect: libuv registers the socket once for both events, where
  // starting it in on_connect costs a failed EPOLL_CTL_ADD and a MOD. libuv completes the connect
  // before it delivers any read.
  uv_read_start(upstream_.stream(), alloc_cb, read_cb);
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
    up_->counters.connect_failures.fetch_add(1, std::memory_order_relaxed);
    up_->counters.retries.fetch_add(1, std::memory_order_relaxed);
    up_->add_passive_failure();
    if (worker_.on_passive_failure) {
      worker_.on_passive_failure();
    }
    upstream_.reset();
    unbind_upstream();
    timer_.stop();
    dial();
    return;
  }
  upstream_connected_ = true;
  uv_tcp_nodelay(upstream_.get(), 1);
  // Keepalive and TCP_USER_TIMEOUT guard connections that live long (watches); one that ends
  // within a second never needs them, so they are set by the worker once it has lived that long.
  const auto &s = worker_.settings();
  if (s.keepalive_idle_s > 0 || s.tcp_user_timeout_ms > 0) {
    connected_ms = uv_now(worker_.loop());
    worker_.queue_liveness(this);
  }
  phase_ = got_first_byte_ ? Phase::Relaying : Phase::AwaitFirstByte;
  if (!replay_.empty()) {
    send(true, replay_.data(), replay_.size());
    if (closed_ || !upstream_connected_) {
      return; // the write failed: closed, or re-dialling another endpoint with the same bytes
    }
    if (!replay_ok_) {
      replay_.clear();
      replay_.shrink_to_fit();
    }
  }
  if (c2u_.eof) {
    half_close(true);
    if (closed_ || !upstream_connected_) {
      return; // closed, or re-dialling another endpoint (its connect timer runs)
    }
  }
  arm_timer();
  // Dialling may have paused the client (replay buffer full); it flows again now.
  maybe_resume(true);
}

void Session::arm_timer() {
  const auto &s = worker_.settings();
  first_byte_timer_ = phase_ == Phase::AwaitFirstByte && !replay_.empty();
  if (first_byte_timer_) {
    timer_.start(timer_cb, s.first_byte_timeout_ms);
  } else if (uint64_t idle = idle_limit_ms(); phase_ != Phase::Dialing && idle > 0) {
    // Checked lazily: the timer fires at most twice per idle period instead of being re-armed
    // on every read.
    timer_.start(timer_cb, idle / 2 + 1, idle / 2 + 1);
  } else {
    timer_.stop();
  }
}

void Session::on_timer() {
  if (closed_) {
    return;
  }
  if (lingering_) {
    on_linger_tick();
    return;
  }
  switch (phase_) {
  case Phase::Dialing:
    if (log::v(1)) {
      log::info("upstream connect timed out").kv("endpoint", up_ ? up_->name() : "?");
    }
    on_connect(UV_ETIMEDOUT);
    return;
  case Phase::AwaitFirstByte:
    if (first_byte_timer_) {
      if (!replay_.empty()) {
        redial(true);
        return;
      }
      arm_timer(); // the bytes outgrew the replay limit meanwhile: only idleness is checked now
      return;
    }
    break; // the idle timer: a client that sent nothing yet is idle like any other
  case Phase::Relaying:
    break;
  }
  uint64_t idle_ms = idle_limit_ms();
  if (idle_ms > 0 && uv_now(worker_.loop()) - last_activity_ms_ >= idle_ms) {
    close(CloseReason::IdleTimeout);
  }
}

// The idle timeout, or the shorter half-closed timeout once either side has sent its FIN.
uint64_t Session::idle_limit_ms() const {
  const auto &s = worker_.settings();
  uint64_t idle = s.idle_timeout_ms;
  uint64_t half = s.half_closed_timeout_ms;
  if ((c2u_.eof || u2c_.eof) && half > 0 && (idle == 0 || half < idle)) {
    idle = half;
  }
  return idle;
}

void Session::on_endpoint_killed() {
  if (closed_) {
    return;
  }
  if (client_left_silent()) {
    close(CloseReason::Done); // nothing to carry elsewhere
    return;
  }
  if (phase_ == Phase::Dialing || (can_replay() && phase_ == Phase::AwaitFirstByte)) {
    log::info("endpoint went down before it answered, re-dialling")
        .kv("endpoint", up_ ? up_->name() : "?");
    abandon_upstream();
    dial();
    return;
  }
  if (u2c_.eof || upstream_ended_unread()) {
    // Its answer is complete (FIN or reset): nothing is stuck on it, only still owed to the
    // client. Passed on as if the upstream had reset; the client's further bytes are dropped.
    upstream_takes_no_more();
    return;
  }
  close(CloseReason::EndpointDown);
}

// The upstream's end (its FIN, or a reset) is in the kernel but not read yet: the session stopped
// reading at the high watermark, or the rest waits in a splice pipe, while the client takes its
// time. The kernel's TCP state tells: every state past ESTABLISHED but the two FIN_WAITs (which
// only mean our own FIN went out) comes from the peer's FIN or reset.
bool Session::upstream_ended_unread() const {
  int fd = -1;
  if (!upstream_connected_ || uv_fileno(upstream_.base(), &fd) != 0) {
    return false;
  }
  tcp_info info{};
  socklen_t len = sizeof info;
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) {
    return false;
  }
  switch (info.tcpi_state) {
  case TCP_CLOSE_WAIT:
  case TCP_LAST_ACK:
  case TCP_CLOSING:
  case TCP_TIME_WAIT:
  case TCP_CLOSE:
    return true;
  default:
    return false;
  }
}

void Session::redial(bool first_byte_timeout) {
  if (first_byte_timeout) {
    up_->counters.first_byte_timeouts.fetch_add(1, std::memory_order_relaxed);
  } else {
    up_->counters.early_closes.fetch_add(1, std::memory_order_relaxed);
  }
  up_->counters.retries.fetch_add(1, std::memory_order_relaxed);
  up_->add_passive_failure();
  if (worker_.on_passive_failure) {
    worker_.on_passive_failure();
  }
  log::info(first_byte_timeout ? "upstream silent before first byte, re-dialling"
                               : "upstream closed before first byte, re-dialling")
      .kv("endpoint", up_->name())
      .kv("replay_bytes", static_cast<uint64_t>(replay_.size()));
  abandon_upstream();
  dial();
}

void Session::tune_upstream_liveness() {
  int fd = -1;
  if (upstream_ && uv_fileno(upstream_.base(), &fd) == 0) {
    const auto &s = worker_.settings();
    uvx::tune_tcp_liveness(fd, s.keepalive_idle_s, s.tcp_user_timeout_ms);
  }
}

void Session::abandon_upstream() {
  worker_.dequeue_liveness(this);
  drop_splice(true);
  drop_splice(false);
  upstream_.reset(); // pending writes to it are cancelled; replay_ holds all of them
  upstream_connected_ = false;
  unbind_upstream();
  timer_.stop();
  c2u_.pending = 0;
  c2u_.shut = false;
  u2c_ = Direction{};
}

void Session::on_alloc(uv_buf_t *buf) {
  *buf = uv_buf_init(worker_.pool().get(), BufferPool::kBufferSize);
}

void Session::on_read(uv_stream_t *from, ssize_t nread, const uv_buf_t *buf) {
  bool from_client = from == client_.stream();
  if (nread <= 0) {
    if (buf->base) {
      worker_.pool().put(buf->base);
    }
    if (nread == 0) {
      return; // EAGAIN
    }
    if (from_client) {
      if (nread == UV_EOF) {
        c2u_.eof = true;
        uv_read_stop(from);
        if (!upstream_connected_ && client_left_silent()) {
          // A TCP port probe: the connect in flight is abandoned, none other is dialled.
          close(CloseReason::Done);
          return;
        }
        if (upstream_connected_) {
          half_close(true);
        }
        maybe_finish();
      } else {
        close(CloseReason::ClientError);
      }
      return;
    }
    // Upstream EOF or error before it answered: nothing reached the client, try elsewhere,
    // unless the client has closed without sending anything: the upstream only answered its FIN.
    if (can_replay() && !client_left_silent()) {
      redial(false);
      return;
    }
    // A reset ends the upstream's bytes like a FIN, but it takes none either: what it sent is
    // still written to the client (see upstream_takes_no_more), whose bytes are discarded.
    u2c_.eof = true;
    uv_read_stop(from);
    half_close(false);
    if (nread != UV_EOF) {
      upstream_takes_no_more();
    }
    maybe_finish();
    return;
  }
  last_activity_ms_ = uv_now(worker_.loop());
  size_t len = static_cast<size_t>(nread);
  if (from_client) {
    if (upstream_broken_) {
      worker_.pool().put(buf->base);
      return;
    }
    if (up_) {
      up_->counters.bytes_to_upstream.fetch_add(len, std::memory_order_relaxed);
    }
    if (!got_first_byte_ && replay_ok_) {
      if (replay_.size() + len <= worker_.settings().replay_limit) {
        replay_.append(buf->base, len);
      } else {
        // Too much to hold: from here on a failure is no longer hidden from the client.
        replay_ok_ = false;
        if (upstream_connected_) {
          replay_.clear();
          replay_.shrink_to_fit();
        }
      }
    }
    if (!upstream_connected_) {
      if (replay_ok_) {
        worker_.pool().put(buf->base);
      } else {
        // Not replayable and not yet connected: keep the bytes as the data to send on connect.
        replay_.append(buf->base, len);
        worker_.pool().put(buf->base);
      }
      if (replay_.size() >= worker_.settings().high_watermark ||
          replay_.size() >= worker_.settings().replay_limit) {
        c2u_.paused = true;
        uv_read_stop(from);
      }
      return;
    }
    if (phase_ == Phase::AwaitFirstByte && !replay_.empty()) {
      // The upstream has to answer in time from the client's latest bytes: a request that
      // arrives in pieces (a slow client) owes no answer before its last piece.
      arm_timer();
    }
    relay(true, buf->base, len, true);
    if (len == BufferPool::kBufferSize && enter_splice(true)) {
      splice_pump(true);
    }
    return;
  }
  // From upstream.
  if (!got_first_byte_) {
    got_first_byte_ = true;
    phase_ = Phase::Relaying;
    replay_.clear();
    replay_.shrink_to_fit();
    arm_timer();
  }
  up_->counters.bytes_to_client.fetch_add(len, std::memory_order_relaxed);
  relay(false, buf->base, len, true);
  // A full buffer means more is waiting: bulk data, which splice(2) moves without copying.
  if (len == BufferPool::kBufferSize && enter_splice(false)) {
    splice_pump(false);
  }
}

// Writes what it can now; queues the rest with the buffer attached; pauses the source when the
// destination is above the high watermark.
void Session::relay(bool to_upstream, char *data, size_t len, bool pooled) {
  uv_stream_t *dst = to_upstream ? upstream_.stream() : client_.stream();
  Direction &d = dir(to_upstream);
  size_t off = 0;
  if (d.pending == 0) {
    uv_buf_t b = uv_buf_init(data, static_cast<unsigned>(len));
    int n = uv_try_write(dst, &b, 1);
    if (n > 0) {
      off = static_cast<size_t>(n);
    } else if (n < 0 && n != UV_EAGAIN && n != UV_ENOSYS) {
      release(data, pooled);
      on_write_error(to_upstream);
      return;
    }
  }
  if (off == len) {
    release(data, pooled);
    return;
  }
  auto *w = new WriteReq{};
  w->pool = &worker_.pool();
  w->pooled = pooled;
  w->data = data;
  w->to_upstream = to_upstream;
  w->len = len - off;
  uv_buf_t b = uv_buf_init(data + off, static_cast<unsigned>(len - off));
  int rc = uv_write(&w->req, dst, &b, 1, write_cb);
  if (rc != 0) {
    free_write(w);
    on_write_error(to_upstream);
    return;
  }
  d.pending += len - off;
  if (d.pending >= worker_.settings().high_watermark && !d.paused) {
    d.paused = true;
    uv_read_stop(to_upstream ? client_.stream() : upstream_.stream());
  }
}

void Session::release(char *data, bool pooled) {
  if (pooled) {
    worker_.pool().put(data);
  } else {
    delete[] data;
  }
}

void Session::send(bool to_upstream, const char *data, size_t len) {
  // A copy: the source (replay buffer) may be cleared or kept for another replay.
  char *copy = new char[len];
  std::memcpy(copy, data, len);
  relay(to_upstream, copy, len, false);
}

void Session::on_write_error(bool to_upstream) {
  if (closed_) {
    return;
  }
  // An apiserver killed with the connection in its accept queue resets it; the client's first
  // bytes can reach the proxy in the same loop turn and be written before the reset is read.
  if (to_upstream && can_replay()) {
    redial(false);
    return;
  }
  if (to_upstream && upstream_) {
    upstream_takes_no_more();
    return;
  }
  close(to_upstream ? CloseReason::UpstreamError : CloseReason::ClientError);
}

// The upstream reset the connection (or closed it, and the client kept sending), but what it sent
// before is still owed to the client: an apiserver's TLS alert such as "certificate required"
// may still be unread, an answer and its FIN may still be queued for a client that reads slowly.
// Closing now would drop the first and, with the client's further bytes unread, make the kernel
// reset the client connection and discard the second. So the upstream is read to its end (an
// error ends the session as usual), what it sent is written, and the client is read and its bytes
// discarded, so that closing its socket later sends a FIN rather than a reset.
void Session::upstream_takes_no_more() {
  if (closed_ || upstream_broken_) {
    return;
  }
  upstream_broken_ = true;
  if (spl(true).active()) {
    drop_splice(true);
    c2u_.paused = true; // splicing had stopped libuv's reads: maybe_resume starts them again
  }
  c2u_.pending = 0;
  c2u_.shut = true; // nothing to pass a FIN to
  replay_.clear();
  replay_.shrink_to_fit();
  maybe_resume(true); // a paused client is read again, to be discarded
  // The lingering close starts now (see on_linger_tick); its 30 s also bound an answer still
  // being written to a client that never reads.
  lingering_ = true;
  linger_owed_ = SIZE_MAX;
  linger_start_ms_ = linger_progress_ms_ = uv_now(worker_.loop());
  timer_.start(timer_cb, kLingerPollMs, kLingerPollMs);
  maybe_finish();
}

void Session::on_write_done(bool to_upstream, size_t len) {
  if (closed_) {
    return;
  }
  Direction &d = dir(to_upstream);
  d.pending -= std::min(d.pending, len);
  last_activity_ms_ = uv_now(worker_.loop()); // a slow reader taking its answer is not idle
  maybe_resume(to_upstream);
  maybe_finish();
}

void Session::maybe_resume(bool to_upstream) {
  Direction &d = dir(to_upstream);
  if (!d.paused || d.eof || d.pending > worker_.settings().high_watermark / 2) {
    return;
  }
  if (to_upstream && !upstream_connected_) {
    return;
  }
  d.paused = false;
  uv_read_start(to_upstream ? client_.stream() : upstream_.stream(), alloc_cb, read_cb);
}

// Passes a FIN on. With nothing queued for the destination, shutdown(2) is called at once:
// uv_shutdown would arm a write watcher and wait a loop turn for it (two epoll_ctl calls and a
// wake-up per direction). The FIN that ends the second direction is not passed on by shutdown(2)
// at all: both sides have been read to their EOF, so close(2) in maybe_finish() sends it.
void Session::half_close(bool to_upstream) {
  Direction &d = dir(to_upstream);
  if (d.shut || all_done()) {
    return;
  }
  d.shut = true;
  if (!lingering_ && !first_byte_timer_) {
    arm_timer(); // the half-closed timeout applies from now
  }
  uv_stream_t *dst = to_upstream ? upstream_.stream() : client_.stream();
  int fd = -1;
  if (d.pending == 0 && uv_stream_get_write_queue_size(dst) == 0 &&
      uv_fileno(reinterpret_cast<uv_handle_t *>(dst), &fd) == 0) {
    if (::shutdown(fd, SHUT_WR) != 0) {
      upstream_gone_on_shutdown(to_upstream); // the peer is gone (ENOTCONN)
    }
    return;
  }
  auto *req = new uv_shutdown_t{};
  int rc = uv_shutdown(req, dst, shutdown_cb);
  if (rc != 0) {
    delete req;
    upstream_gone_on_shutdown(to_upstream);
  }
}

// An upstream reset before its first byte is replaced like any early close (the client's bytes
// and its FIN go to another endpoint); otherwise there is nothing left to pass on.
void Session::upstream_gone_on_shutdown(bool to_upstream) {
  if (to_upstream && can_replay() && !client_left_silent()) {
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

// Both sides sent their FIN and every byte was written: close(2) on both sockets flushes what the
// kernel still holds and sends the FINs not yet passed on.
void Session::maybe_finish() {
  if (all_done()) {
    close(CloseReason::Done);
  }
}

// The upstream takes no more bytes (upstream_broken_). The session closes once the upstream's
// answer has ended and the client has acknowledged all of it, FIN included: a reset then loses
// nothing, the bytes are in the client's receive queue, as if it had talked to the apiserver
// directly. Until then the client's bytes are read and discarded, since closing with them unread
// would reset the connection and throw away what is still owed to it. A client that neither
// takes nor sends anything for kLingerMs, or has not taken everything after kLingerMaxMs, is
// closed anyway.
void Session::on_linger_tick() {
  int fd = -1;
  int unacked = 0;
  if (uv_fileno(client_.base(), &fd) != 0 || ioctl(fd, SIOCOUTQ, &unacked) != 0) {
    close(CloseReason::Done);
    return;
  }
  size_t owed = static_cast<size_t>(std::max(unacked, 0)) + u2c_.pending;
  if (owed == 0 && u2c_.eof) {
    close(CloseReason::Done);
    return;
  }
  uint64_t now = uv_now(worker_.loop());
  if (owed < linger_owed_) {
    linger_progress_ms_ = now;
  }
  linger_owed_ = owed;
  uint64_t quiet_since = std::max(linger_progress_ms_, last_activity_ms_);
  if (now - quiet_since >= kLingerMs || now - linger_start_ms_ >= kLingerMaxMs) {
    close(CloseReason::Done);
  }
}

void Session::close(CloseReason why) {
  if (closed_) {
    return;
  }
  closed_ = true;
  if (why == CloseReason::EndpointDown && up_) {
    up_->counters.closed_on_down.fetch_add(1, std::memory_order_relaxed);
  } else if (why == CloseReason::Drained && up_) {
    up_->counters.drained.fetch_add(1, std::memory_order_relaxed);
  }
  unbind_upstream();
  timer_.reset();
  worker_.dequeue_liveness(this);
  drop_splice(true);
  drop_splice(false);
  upstream_.reset();
  client_.reset();
  replay_.clear();
  worker_.unlink(this);
  worker_.defer_delete(this);
}

// ---------------------------------------------------------------------------------- splice(2)

bool Session::enter_splice(bool to_upstream) {
  Direction &d = dir(to_upstream);
  Splice &sp = spl(to_upstream);
  if (closed_ || sp.active() || d.eof || d.paused || d.pending != 0 || !upstream_connected_ ||
      can_replay() || (to_upstream && upstream_broken_)) {
    return false;
  }
  uv_stream_t *src = to_upstream ? client_.stream() : upstream_.stream();
  uv_stream_t *dst = to_upstream ? upstream_.stream() : client_.stream();
  int sfd = -1;
  int dfd = -1;
  if (uv_stream_get_write_queue_size(dst) != 0 ||
      uv_fileno(reinterpret_cast<uv_handle_t *>(src), &sfd) != 0 ||
      uv_fileno(reinterpret_cast<uv_handle_t *>(dst), &dfd) != 0) {
    return false;
  }
  int p[2];
  if (pipe2(p, O_NONBLOCK | O_CLOEXEC) != 0) {
    return false; // out of descriptors: stay on read/write
  }
  sp.pipe_r = p[0];
  sp.pipe_w = p[1];
  fcntl(sp.pipe_w, F_SETPIPE_SZ, static_cast<int>(kSpliceChunk)); // best effort: 64 KiB is fine too
  sp.src_fd = fcntl(sfd, F_DUPFD_CLOEXEC, 0);
  sp.dst_fd = fcntl(dfd, F_DUPFD_CLOEXEC, 0);
  bool ok = sp.src_fd >= 0 && sp.dst_fd >= 0;
  if (ok && uv_poll_init(worker_.loop(), sp.src_poll.make(this), sp.src_fd) != 0) {
    sp.src_poll.abandon();
    ok = false;
  }
  if (ok && uv_poll_init(worker_.loop(), sp.dst_poll.make(this), sp.dst_fd) != 0) {
    sp.dst_poll.abandon();
    ok = false;
  }
  if (!ok) {
    drop_splice(to_upstream);
    return false;
  }
  uv_read_stop(src);
  return true;
}

void Session::drop_splice(bool to_upstream) {
  Splice &sp = spl(to_upstream);
  int backend = uv_backend_fd(worker_.loop());
  for (auto [poll, fd] :
       {std::pair{&sp.src_poll, &sp.src_fd}, std::pair{&sp.dst_poll, &sp.dst_fd}}) {
    if (*poll) {
      uv_poll_stop(poll->get());
      poll->reset();
    }
    if (*fd >= 0) {
      // The duplicate shares its socket with libuv's descriptor, so closing it would not take it
      // out of epoll; remove it explicitly first.
      epoll_event ev{};
      epoll_ctl(backend, EPOLL_CTL_DEL, *fd, &ev);
      close_fd(*fd);
    }
  }
  close_fd(sp.pipe_r);
  close_fd(sp.pipe_w);
}

void Session::on_splice_poll(uv_poll_t *h) {
  if (closed_) {
    return;
  }
  bool to_upstream = h == spl_[0].src_poll.get() || h == spl_[0].dst_poll.get();
  splice_pump(to_upstream); // restarts the polls it still needs
}

void Session::splice_pump(bool to_upstream) {
  Direction &d = dir(to_upstream);
  Splice &sp = spl(to_upstream);
  auto dst_error = to_upstream ? CloseReason::UpstreamError : CloseReason::ClientError;
  size_t moved = 0;
  while (!closed_) {
    // The pipe first: the destination takes what the source gave.
    while (d.pending > 0) {
      ssize_t n = ::splice(sp.pipe_r, nullptr, sp.dst_fd, nullptr, d.pending,
                           SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (n > 0) {
        d.pending -= static_cast<size_t>(n);
        moved += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n < 0 && errno == EAGAIN) {
        // Destination full: the pipe is this direction's buffer; read no more until it drains.
        uv_poll_stop(sp.src_poll.get());
        uv_poll_start(sp.dst_poll.get(), UV_WRITABLE, splice_poll_cb);
        return;
      }
      if (to_upstream) {
        upstream_takes_no_more(); // ends this direction's splicing
      } else {
        close(dst_error);
      }
      return;
    }
    uv_poll_stop(sp.dst_poll.get());
    if (moved >= kSpliceFairShare) {
      // Level-triggered: the source poll brings us back on the next loop turn.
      uv_poll_start(sp.src_poll.get(), UV_READABLE, splice_poll_cb);
      return;
    }
    ssize_t n = ::splice(sp.src_fd, nullptr, sp.pipe_w, nullptr, kSpliceChunk,
                         SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n > 0) {
      d.pending = static_cast<size_t>(n);
      last_activity_ms_ = uv_now(worker_.loop());
      worker_.add_spliced(static_cast<uint64_t>(n));
      if (up_) {
        (to_upstream ? up_->counters.bytes_to_upstream : up_->counters.bytes_to_client)
            .fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
      }
      continue;
    }
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0 && errno == EAGAIN) {
      uv_poll_start(sp.src_poll.get(), UV_READABLE, splice_poll_cb);
      return;
    }
    if (n == 0 || !to_upstream) {
      // The source's FIN (or the upstream's reset), with every byte before it delivered: on as
      // with read/write.
      d.eof = true;
      drop_splice(to_upstream);
      half_close(to_upstream);
      if (n != 0) {
        upstream_takes_no_more();
      }
      maybe_finish();
      return;
    }
    close(CloseReason::ClientError);
    return;
  }
}

} // namespace kal
