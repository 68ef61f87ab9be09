#include "proxy/uv_transport.h"

#include "proxy/session.h"
#include "uvx/sockaddr.h"

#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <unistd.h>

namespace kal {
namespace {

// A write in flight: owns its bytes (a pool buffer or a heap copy) until libuv is done with it.
struct WriteReq {
  uv_write_t req;
  BufferPool *pool;
  char *data;
  bool pooled;
  Direction dir;
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

} // namespace

void UvTransport::alloc_cb(uv_handle_t *h, size_t, uv_buf_t *buf) noexcept {
  auto *self = static_cast<Session *>(h->data);
  if (!self) {
    *buf = uv_buf_init(nullptr, 0);
    return;
  }
  self->on_alloc(buf);
}

void UvTransport::read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) noexcept {
  auto *self = static_cast<Session *>(s->data);
  if (!self) {
    return; // cannot happen with a pooled buffer: alloc_cb gave none without an owner
  }
  Side side = s == self->io_.client_.stream() ? Side::Client : Side::Upstream;
  self->on_read(side, nread, buf);
}

void UvTransport::write_cb(uv_write_t *req, int status) noexcept {
  auto *w = reinterpret_cast<WriteReq *>(req);
  // A closed handle's data is null: the session is gone or moved on (UV_ECANCELED).
  auto *self = static_cast<Session *>(req->handle->data);
  Direction d = w->dir;
  size_t len = w->len;
  free_write(w);
  if (!self) {
    return;
  }
  if (status < 0) {
    self->on_write_error(d);
    return;
  }
  self->on_write_done(d, len);
}

void UvTransport::connect_cb(uv_connect_t *req, int status) noexcept {
  auto *self = static_cast<Session *>(req->handle->data);
  delete req;
  if (self) {
    self->on_connect(status);
  }
}

void UvTransport::shutdown_cb(uv_shutdown_t *req, int status) noexcept {
  auto *self = static_cast<Session *>(req->handle->data);
  delete req;
  if (self) {
    self->on_shutdown_done(status);
  }
}

// A socket error (libuv reports POLLERR as UV_EBADF and stops the poll) is left to the splice
// calls: they return what the socket received before it, then the error itself.
void UvTransport::splice_poll_cb(uv_poll_t *h, int, int) noexcept {
  if (auto *self = static_cast<Session *>(h->data)) {
    const auto &up = self->io_.pipes_[0];
    self->on_splice_ready(up && up->owns(h) ? Direction::ToUpstream : Direction::ToClient);
  }
}

bool UvTransport::accept(uv_stream_t *server) {
  if (uv_tcp_init(loop_, client_.make(&owner_)) != 0) {
    client_.abandon();
    return false;
  }
  return uv_accept(server, client_.stream()) == 0;
}

bool UvTransport::adopt(int fd) {
  if (uv_tcp_init(loop_, client_.make(&owner_)) != 0) {
    client_.abandon();
    ::close(fd);
    return false;
  }
  if (uv_tcp_open(client_.get(), fd) != 0) {
    ::close(fd); // not the handle's yet
    return false;
  }
  return true;
}

int UvTransport::open_upstream() {
  int rc = uv_tcp_init(loop_, upstream_.make(&owner_));
  if (rc != 0) {
    upstream_.abandon(); // libuv never saw it
  }
  return rc;
}

int UvTransport::connect(const sockaddr_storage &addr) {
  auto *req = new uv_connect_t{};
  int rc =
      uv_tcp_connect(req, upstream_.get(), reinterpret_cast<const sockaddr *>(&addr), connect_cb);
  if (rc != 0) {
    delete req;
    return rc;
  }
  uv_read_start(upstream_.stream(), alloc_cb, read_cb);
  return 0;
}

void UvTransport::close_upstream() {
  pipes_[0].reset();
  pipes_[1].reset();
  upstream_.reset();
}

void UvTransport::close_all() {
  close_upstream();
  client_.reset();
}

void UvTransport::read_start(Side s) { uv_read_start(sock(s).stream(), alloc_cb, read_cb); }

void UvTransport::read_stop(Side s) { uv_read_stop(sock(s).stream()); }

WriteResult UvTransport::write(Direction d, char *data, size_t len, bool pooled, bool idle,
                               size_t *queued) {
  uv_stream_t *dst = sock(dest_of(d)).stream();
  *queued = 0;
  size_t off = 0;
  if (idle) {
    uv_buf_t b = uv_buf_init(data, static_cast<unsigned>(len));
    int n = uv_try_write(dst, &b, 1);
    if (n > 0) {
      off = static_cast<size_t>(n);
    } else if (n < 0 && n != UV_EAGAIN && n != UV_ENOSYS) {
      pooled ? pool_.put(data) : delete[] data;
      return WriteResult::Failed;
    }
  }
  if (off == len) {
    pooled ? pool_.put(data) : delete[] data;
    return WriteResult::Done;
  }
  auto *w = new WriteReq{};
  w->pool = &pool_;
  w->pooled = pooled;
  w->data = data;
  w->dir = d;
  w->len = len - off;
  uv_buf_t b = uv_buf_init(data + off, static_cast<unsigned>(len - off));
  if (uv_write(&w->req, dst, &b, 1, write_cb) != 0) {
    free_write(w);
    return WriteResult::Failed;
  }
  *queued = len - off;
  return WriteResult::Queued;
}

size_t UvTransport::write_queue_size(Side s) const {
  return uv_stream_get_write_queue_size(sock(s).stream());
}

ShutdownResult UvTransport::shutdown(Side s, bool idle) {
  uv_stream_t *dst = sock(s).stream();
  int f = -1;
  if (idle && uv_stream_get_write_queue_size(dst) == 0 &&
      uv_fileno(reinterpret_cast<uv_handle_t *>(dst), &f) == 0) {
    return ::shutdown(f, SHUT_WR) == 0 ? ShutdownResult::Done : ShutdownResult::Failed;
  }
  auto *req = new uv_shutdown_t{};
  if (uv_shutdown(req, dst, shutdown_cb) != 0) {
    delete req;
    return ShutdownResult::Failed;
  }
  return ShutdownResult::Queued;
}

int UvTransport::fd(Side s) const {
  int f = -1;
  const auto &h = sock(s);
  if (!h || uv_fileno(h.base(), &f) != 0) {
    return -1;
  }
  return f;
}

std::optional<uint8_t> UvTransport::tcp_state(Side s) const {
  int f = fd(s);
  tcp_info info{};
  socklen_t len = sizeof info;
  if (f < 0 || getsockopt(f, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) {
    return std::nullopt;
  }
  return info.tcpi_state;
}

std::optional<size_t> UvTransport::unacked(Side s) const {
  int f = fd(s);
  int n = 0;
  if (f < 0 || ioctl(f, SIOCOUTQ, &n) != 0) {
    return std::nullopt;
  }
  return static_cast<size_t>(std::max(n, 0));
}

void UvTransport::set_nodelay(Side s) { uv_tcp_nodelay(sock(s).get(), 1); }

void UvTransport::tune_liveness(Side s, unsigned keepalive_idle_s, unsigned user_timeout_ms) {
  if (int f = fd(s); f >= 0) {
    uvx::tune_tcp_liveness(f, keepalive_idle_s, user_timeout_ms);
  }
}

bool UvTransport::splice_open(Direction d) {
  uv_stream_t *src = sock(source_of(d)).stream();
  int sfd = fd(source_of(d));
  int dfd = fd(dest_of(d));
  if (write_queue_size(dest_of(d)) != 0 || sfd < 0 || dfd < 0) {
    return false;
  }
  auto p = std::make_unique<SplicePipe>();
  if (!p->open(loop_, sfd, dfd, &owner_, splice_poll_cb)) {
    return false;
  }
  pipe(d) = std::move(p);
  uv_read_stop(src);
  return true;
}

} // namespace kal
