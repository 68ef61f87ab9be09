#pragma once
// A listening socket that libuv accepts on and that can stop accepting for a while.
//
// After an accept() error it cannot absorb (EMFILE once its spare descriptor is gone, ENFILE,
// ENOBUFS, ENOMEM), libuv calls the connection callback and retries at once, in a loop that does
// not return to the event loop: the thread would spin and starve every session and timer on it.
// Like nginx, the owner pauses the listener instead and resumes it a little later; meanwhile the
// kernel's backlog holds new connections. The socket is kept as a descriptor of its own, apart from
// the duplicate libuv polls, so pausing (closing libuv's handle) never unbinds the address.
#include "uvx/handle.h"

#include <uv.h>

#include <utility>

namespace kal::uvx {

class Listener {
public:
  Listener() = default;
  ~Listener();
  Listener(Listener &&o) noexcept
      : loop_(o.loop_), owner_(o.owner_), cb_(o.cb_), backlog_(o.backlog_),
        fd_(std::exchange(o.fd_, -1)), tcp_(std::move(o.tcp_)) {}
  Listener &operator=(Listener &&o) noexcept;
  Listener(const Listener &) = delete;
  Listener &operator=(const Listener &) = delete;

  // Takes `fd` (bound and listening; closed here on error) and starts accepting on it: `cb` gets
  // each connection with the handle's data set to `owner`. 0 or a libuv error code.
  int open(uv_loop_t *loop, int fd, void *owner, uv_connection_cb cb, int backlog);
  // Stops accepting; the socket stays bound and queues connections. Safe inside `cb`.
  void pause() { tcp_.reset(); }
  // Accepts again on a fresh duplicate of the socket. 0 or a libuv error code (still paused).
  int resume();

  bool paused() const { return fd_ >= 0 && !tcp_; }
  bool is(const uv_stream_t *s) const { return tcp_ && tcp_.stream() == s; }
  int fd() const { return fd_; }

private:
  uv_loop_t *loop_ = nullptr;
  void *owner_ = nullptr;
  uv_connection_cb cb_ = nullptr;
  int backlog_ = 128;
  int fd_ = -1;
  Handle<uv_tcp_t> tcp_;
};

} // namespace kal::uvx
