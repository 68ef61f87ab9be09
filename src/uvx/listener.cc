#include "uvx/listener.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

namespace kal::uvx {

Listener::~Listener() {
  tcp_.reset();
  if (fd_ >= 0) {
    ::close(fd_);
  }
}

Listener &Listener::operator=(Listener &&o) noexcept {
  if (this != &o) {
    tcp_.reset();
    if (fd_ >= 0) {
      ::close(fd_);
    }
    loop_ = o.loop_;
    owner_ = o.owner_;
    cb_ = o.cb_;
    backlog_ = o.backlog_;
    fd_ = std::exchange(o.fd_, -1);
    tcp_ = std::move(o.tcp_);
  }
  return *this;
}

int Listener::open(uv_loop_t *loop, int fd, void *owner, uv_connection_cb cb, int backlog) {
  tcp_.reset();
  if (fd_ >= 0) {
    ::close(fd_);
  }
  loop_ = loop;
  owner_ = owner;
  cb_ = cb;
  backlog_ = backlog;
  fd_ = fd;
  return resume();
}

int Listener::resume() {
  if (fd_ < 0) {
    return UV_EBADF;
  }
  if (tcp_) {
    return 0;
  }
  int copy = fcntl(fd_, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) {
    return -errno;
  }
  auto *t = tcp_.make(owner_);
  if (int rc = uv_tcp_init(loop_, t); rc != 0) {
    tcp_.abandon();
    ::close(copy);
    return rc;
  }
  int rc = uv_tcp_open(t, copy);
  if (rc != 0) {
    ::close(copy); // not the handle's yet
  } else {
    rc = uv_listen(tcp_.stream(), backlog_, cb_);
  }
  if (rc != 0) {
    tcp_.reset();
  }
  return rc;
}

} // namespace kal::uvx
