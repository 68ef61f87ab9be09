#include "proxy/splice_pipe.h"

#include <fcntl.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

namespace kal {
namespace {

void close_fd(int &fd) {
  if (fd >= 0) {
    ::close(fd);
    fd = -1;
  }
}

ssize_t splice_once(int from, int to, size_t n) {
  while (true) {
    ssize_t r = ::splice(from, nullptr, to, nullptr, n, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (r >= 0) {
      return r;
    }
    if (errno != EINTR) {
      return -errno;
    }
  }
}

} // namespace

bool SplicePipe::open(uv_loop_t *loop, int src_fd, int dst_fd, void *owner, uv_poll_cb cb) {
  close();
  loop_ = loop;
  cb_ = cb;
  int p[2];
  if (pipe2(p, O_NONBLOCK | O_CLOEXEC) != 0) {
    return false; // out of descriptors: stay on read/write
  }
  pipe_r_ = p[0];
  pipe_w_ = p[1];
  fcntl(pipe_w_, F_SETPIPE_SZ, static_cast<int>(kChunk)); // best effort: 64 KiB is fine too
  src_fd_ = fcntl(src_fd, F_DUPFD_CLOEXEC, 0);
  dst_fd_ = fcntl(dst_fd, F_DUPFD_CLOEXEC, 0);
  bool ok = src_fd_ >= 0 && dst_fd_ >= 0;
  if (ok && uv_poll_init(loop, src_poll_.make(owner), src_fd_) != 0) {
    src_poll_.abandon();
    ok = false;
  }
  if (ok && uv_poll_init(loop, dst_poll_.make(owner), dst_fd_) != 0) {
    dst_poll_.abandon();
    ok = false;
  }
  if (!ok) {
    close();
  }
  return ok;
}

void SplicePipe::close() {
  int backend = loop_ ? uv_backend_fd(loop_) : -1;
  for (auto [poll, fd] : {std::pair{&src_poll_, &src_fd_}, std::pair{&dst_poll_, &dst_fd_}}) {
    if (*poll) {
      uv_poll_stop(poll->get());
      poll->reset();
    }
    if (*fd >= 0) {
      // The duplicate shares its socket with libuv's descriptor, so closing it would not take it
      // out of epoll; remove it explicitly first.
      if (backend >= 0) {
        epoll_event ev{};
        epoll_ctl(backend, EPOLL_CTL_DEL, *fd, &ev);
      }
      close_fd(*fd);
    }
  }
  close_fd(pipe_r_);
  close_fd(pipe_w_);
  held_ = 0;
}

SplicePipe::Pumped SplicePipe::pump() {
  Pumped r;
  size_t moved = 0;
  while (true) {
    // The pipe first: the destination takes what the source gave.
    while (held_ > 0) {
      ssize_t n = splice_once(pipe_r_, dst_fd_, held_);
      if (n > 0) {
        held_ -= static_cast<size_t>(n);
        moved += static_cast<size_t>(n);
        continue;
      }
      if (n == -EAGAIN) {
        // Destination full: the pipe is this direction's buffer; read no more until it drains.
        uv_poll_stop(src_poll_.get());
        uv_poll_start(dst_poll_.get(), UV_WRITABLE, cb_);
        return r;
      }
      r.stop = Pumped::Stop::DestFailed;
      return r;
    }
    uv_poll_stop(dst_poll_.get());
    if (moved >= kFairShare) {
      // Level-triggered: the source watcher brings the pump back on the next loop turn.
      uv_poll_start(src_poll_.get(), UV_READABLE, cb_);
      return r;
    }
    ssize_t n = splice_once(src_fd_, pipe_w_, kChunk);
    if (n > 0) {
      held_ = static_cast<size_t>(n);
      r.read += held_;
      continue;
    }
    if (n == -EAGAIN) {
      uv_poll_start(src_poll_.get(), UV_READABLE, cb_);
      return r;
    }
    r.stop = n == 0 ? Pumped::Stop::SourceEnded : Pumped::Stop::SourceFailed;
    return r;
  }
}

} // namespace kal
