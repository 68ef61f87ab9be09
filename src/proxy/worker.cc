#include "proxy/worker.h"

#include <fcntl.h>

#include "kube_api_lb/log/logger.h"
#include "uvx/sockaddr.h"

#include <malloc.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>

namespace kal {

void Worker::connection_cb(uv_stream_t *server, int status) noexcept {
  if (auto *self = static_cast<Worker *>(server->data)) {
    self->on_connection(server, status);
  }
}

void Worker::async_cb(uv_async_t *a) noexcept {
  if (auto *self = static_cast<Worker *>(a->data)) {
    self->on_async();
  }
}

void Worker::trim_cb(uv_timer_t *t) noexcept {
  if (auto *self = static_cast<Worker *>(t->data)) {
    self->on_trim_tick();
  }
}

void Worker::liveness_cb(uv_timer_t *t) noexcept {
  if (auto *self = static_cast<Worker *>(t->data)) {
    self->on_liveness_timer();
  }
}

namespace {

// glibc returns free pages to the kernel. Not under AddressSanitizer: its allocator owns every
// block, glibc's heap was never set up, and two worker loops trimming at the same moment would
// both initialise it in malloc_trim (not thread-safe there): a crash seen once in CI.
void trim_heap() {
#if !defined(__SANITIZE_ADDRESS__)
  malloc_trim(0);
#endif
}

} // namespace

Worker::Worker(uv_loop_t *loop, TimeSource &time, int index, ProxySettings settings,
               std::shared_ptr<const UpstreamList> ups)
    : loop_(loop), time_(time), index_(index), settings_(settings), ups_(std::move(ups)),
      picker_(settings.policy, 0x6b616c ^ static_cast<uint64_t>(index)), graveyard_(loop) {
  auto *a = async_.make(this);
  if (uv_async_init(loop_, a, async_cb) != 0) {
    async_.abandon();
  } else {
    // The async handle alone must not keep a stopping loop alive.
    uv_unref(async_.base());
  }
  if (trim_timer_.init(loop_, this)) {
    trim_timer_.start(trim_cb, 2000, 2000);
    trim_timer_.unref();
  }
  if (liveness_timer_.init(loop_, this)) {
    liveness_timer_.unref();
  }
}

// Neither nginx nor HAProxy gives memory back after a burst of connections; we do: once a burst
// has closed, cached buffers are released and glibc is asked to return free pages to the kernel.
void Worker::on_trim_tick() {
  if (closed_since_trim_ < 64 && pool_.free_count() == 0) {
    return;
  }
  if (pool_.outstanding() == 0) {
    pool_.release_free();
  }
  if (closed_since_trim_ >= 64) {
    trim_heap();
  }
  closed_since_trim_ = 0;
}

Worker::~Worker() {
  close_all(Session::CloseReason::Shutdown);
  graveyard_.flush();
  for (int fd : handed_) {
    ::close(fd);
  }
}

ListenFds::~ListenFds() {
  for (auto &[hp, fd] : fds_) {
    if (fd >= 0) {
      ::close(fd);
    }
  }
}

int ListenFds::take(const HostPort &hp) {
  for (auto &[addr, fd] : fds_) {
    if (addr == hp && fd >= 0) {
      return std::exchange(fd, -1);
    }
  }
  return -1;
}

void Worker::dup_listen_fds(ListenFds &out) const {
  for (const auto &l : listeners_) {
    int copy = fcntl(l.sock.fd(), F_DUPFD_CLOEXEC, 0);
    if (copy >= 0) {
      out.add(l.addr, copy);
    }
  }
}

Result<bool> Worker::listen(const std::vector<HostPort> &addrs, ListenFds *shared, bool reuseport) {
  auto bound = [&](const HostPort &hp) {
    return std::find_if(listeners_.begin(), listeners_.end(),
                        [&](const Listener &l) { return l.addr == hp; });
  };
  // Phase 1: bind what is new. On failure the new sockets close and the old set is untouched.
  std::vector<Listener> fresh;
  for (const auto &hp : addrs) {
    if (bound(hp) != listeners_.end()) {
      continue;
    }
    int inherited = shared ? shared->take(hp) : -1;
    auto fd = inherited >= 0 ? Result<int>{inherited}
                             : uvx::listen_socket(hp, reuseport, 4096, "listen ");
    if (!fd) {
      return Err{fd.error()};
    }
    if (inherited < 0) {
      // Inherited by every accepted socket.
      uvx::tune_tcp_socket(*fd, settings_.keepalive_idle_s, settings_.tcp_user_timeout_ms);
    }
    Listener l{hp, {}};
    if (int rc = l.sock.open(loop_, *fd, this, connection_cb, 4096, "listen " + hp.str());
        rc != 0) {
      return Err{"listen " + hp.str() + ": " + uv_strerror(rc)};
    }
    fresh.push_back(std::move(l));
  }
  // Phase 2: the new set, in the given order; listeners not in it close with the old vector.
  std::vector<Listener> next;
  for (const auto &hp : addrs) {
    if (auto it = bound(hp); it != listeners_.end()) {
      next.push_back(std::move(*it));
    } else {
      auto f =
          std::find_if(fresh.begin(), fresh.end(), [&](const Listener &l) { return l.addr == hp; });
      next.push_back(std::move(*f));
    }
  }
  listeners_ = std::move(next);
  return true;
}

void Worker::post(std::function<void()> fn) {
  {
    std::lock_guard lock(mu_);
    posted_.push_back(std::move(fn));
  }
  if (async_) {
    uv_async_send(async_.get());
  }
}

void Worker::on_async() {
  std::vector<std::function<void()>> fns;
  std::vector<int> fds;
  {
    std::lock_guard lock(mu_);
    fns.swap(posted_);
    fds.swap(handed_);
  }
  for (int fd : fds) {
    if (accepting_) {
      new_session().start_handed_over(fd); // counted before the reservation goes
    } else {
      ::close(fd); // shutting down: as if it had still been in the listen queue
    }
    drop_inbound();
  }
  for (auto &f : fns) {
    f();
  }
}

void Worker::stop_accepting() {
  accepting_ = false;
  // Connections the kernel has completed but nobody has accepted yet are reset when the last
  // descriptor of the listening socket closes: a client that connected a moment before the stop
  // signal would see its request fail instead of being served. Take them first; they are served
  // like any other (and closed by the shutdown drain once between exchanges).
  size_t taken = 0;
  for (auto &l : listeners_) {
    for (;;) {
      int fd = accept4(l.sock.fd(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        break; // EAGAIN: the queue is empty (any other error: nothing more to take either)
      }
      accepted_.fetch_add(1, std::memory_order_relaxed);
      ++taken;
      new_session().start_handed_over(fd);
    }
  }
  if (taken > 0 && log::v(1)) {
    log::info("took the connections queued on the listener before closing it")
        .kv("worker", index_)
        .kv("connections", static_cast<uint64_t>(taken));
  }
  listeners_.clear();
}

void Worker::close_all(Session::CloseReason why) {
  while (Session *s = sessions_.front()) {
    s->close(why); // retires it
  }
}

void Worker::note_out_of_resources(int uv_err) {
  out_of_resources_.fetch_add(1, std::memory_order_relaxed);
  const uint64_t now = uv_now(loop_);
  if (out_of_resources_warned_ms_ == 0 || now - out_of_resources_warned_ms_ >= 10000) {
    out_of_resources_warned_ms_ = now;
    log::warn("no descriptor left for an upstream socket: closing new connections until some "
              "are free")
        .kv("worker", index_)
        .kv("error", uv_strerror(uv_err))
        .kv("closed_total", out_of_resources_.load(std::memory_order_relaxed));
  }
}

size_t Worker::close_quiet_sessions() {
  const uint64_t now = uv_now(loop_);
  size_t closed = 0;
  sessions_.for_each([&](Session &s) {
    if (quiet_enough_to_close(s.drain_facts(), now)) {
      s.close(Session::CloseReason::Shutdown);
      ++closed;
    }
  });
  if (closed > 0 && log::v(1)) {
    log::info("shutdown: closed connections between exchanges")
        .kv("worker", index_)
        .kv("connections", static_cast<uint64_t>(closed));
  }
  return closed;
}

void Worker::close_killed_sessions() {
  size_t closed = 0;
  sessions_.for_each([&](Session &s) {
    if (s.endpoint_killed()) {
      s.on_endpoint_killed();
      closed += s.closed() ? 1 : 0;
    }
  });
  if (closed > 0) {
    log::info("closed connections bound to a down endpoint")
        .kv("worker", index_)
        .kv("connections", static_cast<uint64_t>(closed));
  }
}

void Worker::close_sessions_of(const std::vector<std::shared_ptr<Upstream>> &ups) {
  sessions_.for_each([&](Session &s) {
    for (const auto &u : ups) {
      if (s.upstream() == u.get()) {
        s.close(Session::CloseReason::Drained);
        break;
      }
    }
  });
}

void Worker::set_upstreams(std::shared_ptr<const UpstreamList> ups) { ups_ = std::move(ups); }

void Worker::set_settings(const ProxySettings &s) {
  settings_ = s;
  for (auto &l : listeners_) {
    uvx::tune_tcp_socket(l.sock.fd(), s.keepalive_idle_s, s.tcp_user_timeout_ms);
  }
  picker_.set_policy(s.policy);
}

void Worker::on_connection(uv_stream_t *server, int status) {
  if (status < 0) {
    for (auto &l : listeners_) {
      if (l.sock.is(server)) {
        l.sock.accept_failed(status);
      }
    }
    return;
  }
  accepted_.fetch_add(1, std::memory_order_relaxed);
  if (group_) {
    if (Worker *to = group_->lighter_than(*this); to && hand_over(server, *to)) {
      return;
    }
  }
  new_session().start(server);
}

bool Worker::hand_over(uv_stream_t *server, Worker &to) {
  // libuv accepts only into a handle, and a handle keeps its descriptor: accept into one that is
  // closed at once, and hand over a duplicate.
  uvx::Handle<uv_tcp_t> accepted;
  if (uv_tcp_init(loop_, accepted.make(nullptr)) != 0) {
    accepted.abandon();
    to.drop_inbound();
    return false; // still pending: this worker takes it
  }
  int fd = -1;
  uv_os_fd_t raw = -1;
  if (uv_accept(server, accepted.stream()) == 0 && uv_fileno(accepted.base(), &raw) == 0) {
    fd = fcntl(raw, F_DUPFD_CLOEXEC, 0);
  }
  accepted.reset();
  if (fd < 0) {
    to.drop_inbound();
    return true; // lost, as a session whose accept failed would lose it
  }
  if (group_->hand_over(to, fd)) {
    handed_over_.fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  to.drop_inbound();
  new_session().start_handed_over(fd);
  return true;
}

bool Worker::take_handed_over(int fd) {
  if (!async_) {
    return false;
  }
  {
    std::lock_guard lock(mu_);
    handed_.push_back(fd);
  }
  uv_async_send(async_.get());
  return true;
}

Worker *WorkerGroup::lighter_than(const Worker &self) {
  size_t mine = self.load();
  if (workers_.size() < 2 || mine <= kSlack) {
    return nullptr;
  }
  Worker *best = nullptr;
  size_t best_load = (mine - kSlack + 1) / 2; // a worker must hold fewer than this
  for (Worker *w : workers_) {
    if (w != &self) {
      if (size_t l = w->load(); l < best_load) {
        best = w;
        best_load = l;
      }
    }
  }
  if (best) {
    best->reserve_inbound();
  }
  return best;
}

bool WorkerGroup::hand_over(Worker &to, int fd) {
  std::lock_guard lock(mu_);
  return open_ && to.take_handed_over(fd);
}

void WorkerGroup::close() {
  std::lock_guard lock(mu_);
  open_ = false;
}

Session &Worker::new_session() {
  session_count_.fetch_add(1, std::memory_order_relaxed);
  return sessions_.adopt(std::make_unique<Session>(*this));
}

// A session is retired from inside its own callbacks (close()), so it is not freed here but at the
// end of the loop iteration, when no frame of it is left on the stack.
void Worker::retire(Session &s) {
  if (auto owned = sessions_.release(s)) {
    session_count_.fetch_sub(1, std::memory_order_relaxed);
    ++closed_since_trim_;
    graveyard_.push(std::move(owned));
  }
}

void Worker::queue_liveness(Session &s) {
  live_.erase(s);
  if (!liveness_timer_.get()) {
    s.tune_upstream_liveness(); // no timer: at once, as before
    return;
  }
  live_.push_back(s);
  if (!liveness_timer_.active()) {
    liveness_timer_.start(liveness_cb, kLivenessDelayMs);
  }
}

void Worker::dequeue_liveness(Session &s) { live_.erase(s); }

void Worker::on_liveness_timer() {
  uint64_t now = uv_now(loop_);
  while (Session *s = live_.front()) {
    if (s->connected_ms() + kLivenessDelayMs > now) {
      liveness_timer_.start(liveness_cb, s->connected_ms() + kLivenessDelayMs - now);
      return;
    }
    live_.erase(*s);
    s->tune_upstream_liveness();
  }
}

} // namespace kal
