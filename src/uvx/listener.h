#pragma once
// A listening socket that libuv accepts on and that stops accepting for a while after an error.
//
// After an accept() error it cannot absorb (EMFILE once its spare descriptor is gone, ENFILE,
// ENOBUFS, ENOMEM), libuv calls the connection callback and retries at once, in a loop that does
// not return to the event loop: the thread would spin and starve every session and timer on it.
// Like nginx, the owner hands the error to accept_failed(), which pauses the listener and resumes
// it kRetryMs later (again and again until that works); meanwhile the kernel's backlog holds new
// connections. The socket is kept as a descriptor of its own, apart from the duplicate libuv polls,
// so pausing (closing libuv's handle) never unbinds the address.
#include "kube_api_lb/core/endpoint.h"
#include "kube_api_lb/core/result.h"
#include "uvx/handle.h"

#include <uv.h>

#include <memory>
#include <string>

namespace kal::uvx {

// A socket made by hand rather than uv_tcp_bind, bound to `hp` and listening: errors name the
// address and the cause, prefixed with `what` ("listen 127.0.0.1:6443: address already in use").
// IPv6 addresses are bound IPv6-only.
Result<int> listen_socket(const HostPort &hp, bool reuseport, int backlog, const std::string &what);

class Listener {
public:
  static constexpr uint64_t kRetryMs = 100;

  Listener();
  ~Listener();
  Listener(Listener &&) noexcept;
  Listener &operator=(Listener &&) noexcept;
  Listener(const Listener &) = delete;
  Listener &operator=(const Listener &) = delete;

  // Takes `fd` (bound and listening; closed here on error) and starts accepting on it: `cb` gets
  // each connection with the handle's data set to `owner`. `name` ("listen 127.0.0.1:6443") goes
  // into the log lines. 0 or a libuv error code.
  int open(uv_loop_t *loop, int fd, void *owner, uv_connection_cb cb, int backlog,
           std::string name);
  // `cb` got `status` < 0: stop accepting now (safe inside `cb`), log (at most once per 10 s),
  // and accept again kRetryMs later.
  void accept_failed(int status);

  bool is(const uv_stream_t *s) const;
  int fd() const;

private:
  struct State; // on the heap: its retry timer points at it while the Listener moves in a vector
  std::unique_ptr<State> s_;
};

} // namespace kal::uvx
