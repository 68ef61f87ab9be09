#include "uvx/listener.h"

#include "kube_api_lb/log/logger.h"
#include "uvx/sockaddr.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace kal::uvx {

struct Listener::State {
  uv_loop_t *loop = nullptr;
  void *owner = nullptr;
  uv_connection_cb cb = nullptr;
  int backlog = 128;
  int fd = -1;
  std::string name;
  Handle<uv_tcp_t> tcp;
  Timer retry;
  uint64_t pauses = 0;
  uint64_t last_warn_ms = 0;

  ~State() {
    retry.reset();
    tcp.reset();
    if (fd >= 0) {
      ::close(fd);
    }
  }

  // Accepts on a fresh duplicate of the socket. 0 or a libuv error code.
  int resume() {
    int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (copy < 0) {
      return -errno;
    }
    auto *t = tcp.make(owner);
    if (int rc = uv_tcp_init(loop, t); rc != 0) {
      tcp.abandon();
      ::close(copy);
      return rc;
    }
    int rc = uv_tcp_open(t, copy);
    if (rc != 0) {
      ::close(copy); // not the handle's yet
    } else {
      rc = uv_listen(tcp.stream(), backlog, cb);
    }
    if (rc != 0) {
      tcp.reset();
    }
    return rc;
  }

  static void retry_cb(uv_timer_t *t) noexcept {
    auto *self = static_cast<State *>(t->data);
    if (self && self->resume() != 0) {
      self->retry.start(retry_cb, kRetryMs); // still failing: later
    }
  }
};

Listener::Listener() = default;
Listener::~Listener() = default;
Listener::Listener(Listener &&) noexcept = default;
Listener &Listener::operator=(Listener &&) noexcept = default;

int Listener::open(uv_loop_t *loop, int fd, void *owner, uv_connection_cb cb, int backlog,
                   std::string name) {
  s_ = std::make_unique<State>();
  s_->loop = loop;
  s_->owner = owner;
  s_->cb = cb;
  s_->backlog = backlog;
  s_->fd = fd;
  s_->name = std::move(name);
  if (s_->retry.init(loop, s_.get())) {
    s_->retry.unref();
  }
  return s_->resume();
}

void Listener::accept_failed(int status) {
  if (!s_) {
    return;
  }
  s_->tcp.reset();
  ++s_->pauses;
  const uint64_t now = uv_now(s_->loop);
  if (s_->last_warn_ms == 0 || now - s_->last_warn_ms >= 10000) {
    s_->last_warn_ms = now; // at most one line per 10 s under a lasting EMFILE
    log::warn("accept failed, pausing the listener")
        .kv("listener", s_->name)
        .kv("error", uv_strerror(status))
        .kv("retry_ms", kRetryMs)
        .kv("pauses", s_->pauses);
  }
  if (!s_->retry.active()) {
    s_->retry.start(State::retry_cb, kRetryMs);
  }
}

bool Listener::is(const uv_stream_t *s) const { return s_ && s_->tcp && s_->tcp.stream() == s; }

int Listener::fd() const { return s_ ? s_->fd : -1; }

Result<int> listen_socket(const HostPort &hp, bool reuseport, int backlog,
                          const std::string &what) {
  sockaddr_storage ss;
  if (!literal_sockaddr(hp, ss)) {
    return Err{what + hp.str() + ": not an IP address (listen addresses must be literal IPs)"};
  }
  int fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return Err{what + hp.str() + ": socket: " + std::strerror(errno)};
  }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (reuseport) {
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  }
  if (ss.ss_family == AF_INET6) {
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  }
  socklen_t len = ss.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  if (::bind(fd, reinterpret_cast<sockaddr *>(&ss), len) != 0) {
    int e = errno;
    ::close(fd);
    std::string why = e == EADDRINUSE      ? "address already in use"
                      : e == EADDRNOTAVAIL ? "address not available on this host"
                      : e == EACCES        ? "permission denied (ports below 1024 need root)"
                                           : std::strerror(e);
    return Err{what + hp.str() + ": " + why};
  }
  if (::listen(fd, backlog) != 0) {
    int e = errno;
    ::close(fd);
    return Err{what + hp.str() + ": " + std::strerror(e)};
  }
  return fd;
}

} // namespace kal::uvx
