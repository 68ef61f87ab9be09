#pragma once
// A session's sockets on libuv streams (see proxy/transport.h for the seam it implements). Owns
// the client and upstream handles and the two splice pipes; every handle's data is the session,
// and the C callbacks (static members here) call the session's event methods.
#include "proxy/buffer_pool.h"
#include "proxy/splice_pipe.h"
#include "proxy/transport.h"
#include "uvx/handle.h"

#include <uv.h>

#include <memory>

namespace kal {

class Session;

class UvTransport {
public:
  UvTransport(Session &owner, uv_loop_t *loop, BufferPool &pool)
      : owner_(owner), loop_(loop), pool_(pool) {}
  UvTransport(const UvTransport &) = delete;
  UvTransport &operator=(const UvTransport &) = delete;

  bool accept(uv_stream_t *server);
  bool adopt(int fd);
  int open_upstream();
  // Connects the socket open_upstream() made and arms its reading with the connect: libuv
  // registers the socket once for both events, where starting it in on_connect costs a failed
  // EPOLL_CTL_ADD and a MOD. libuv completes the connect before it delivers any read.
  int connect(const sockaddr_storage &addr);
  bool has_upstream() const { return static_cast<bool>(upstream_); }
  // Closes the upstream socket; writes still queued on it are cancelled (their callbacks find no
  // owner).
  void close_upstream();
  void close_all();

  void read_start(Side s);
  void read_stop(Side s);
  // Writes what the socket takes now (uv_try_write, when `idle`: nothing is queued for it) and
  // queues the rest with the buffer attached; the buffer (a pool buffer, or a heap copy when
  // !pooled) is freed when the write ends. `*queued`: the bytes queued.
  WriteResult write(Direction d, char *data, size_t len, bool pooled, bool idle, size_t *queued);
  size_t write_queue_size(Side s) const;
  // With nothing queued for the socket (`idle`, and libuv's queue empty) shutdown(2) is called at
  // once: uv_shutdown would arm a write watcher and wait a loop turn for it (two epoll_ctl calls
  // and a wake-up per direction).
  ShutdownResult shutdown(Side s, bool idle);

  std::optional<uint8_t> tcp_state(Side s) const;
  std::optional<size_t> unacked(Side s) const;
  void set_nodelay(Side s);
  void tune_liveness(Side s, unsigned keepalive_idle_s, unsigned user_timeout_ms);

  bool splice_open(Direction d);
  void splice_close(Direction d) { pipe(d).reset(); }
  bool splicing(Direction d) const { return pipe(d) != nullptr; }
  // Only while splicing(d).
  SplicePipe::Pumped splice_pump(Direction d) { return pipe(d)->pump(); }
  size_t splice_held(Direction d) const { return pipe(d) ? pipe(d)->held() : 0; }

private:
  static void alloc_cb(uv_handle_t *h, size_t, uv_buf_t *buf) noexcept;
  static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) noexcept;
  static void write_cb(uv_write_t *req, int status) noexcept;
  static void connect_cb(uv_connect_t *req, int status) noexcept;
  static void shutdown_cb(uv_shutdown_t *req, int status) noexcept;
  static void splice_poll_cb(uv_poll_t *h, int, int) noexcept;

  uvx::Handle<uv_tcp_t> &sock(Side s) { return s == Side::Client ? client_ : upstream_; }
  const uvx::Handle<uv_tcp_t> &sock(Side s) const {
    return s == Side::Client ? client_ : upstream_;
  }
  std::unique_ptr<SplicePipe> &pipe(Direction d) {
    return pipes_[d == Direction::ToUpstream ? 0 : 1];
  }
  const std::unique_ptr<SplicePipe> &pipe(Direction d) const {
    return pipes_[d == Direction::ToUpstream ? 0 : 1];
  }
  int fd(Side s) const;

  Session &owner_;
  uv_loop_t *loop_;
  BufferPool &pool_;
  uvx::Handle<uv_tcp_t> client_;
  uvx::Handle<uv_tcp_t> upstream_;
  // [0] client -> upstream, [1] upstream -> client; allocated only while a direction splices
  // (bulk transfers), so that an idle connection does not carry two pipes' worth of fields.
  std::unique_ptr<SplicePipe> pipes_[2];
};

static_assert(SessionTransport<UvTransport>);

} // namespace kal
