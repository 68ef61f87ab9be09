#pragma once
// One proxied client connection: the client socket, the upstream socket, and the bytes between.
//
// Life cycle: accept -> dial (pick an endpoint, connect with a timeout; on failure pick the next,
// holding the client's bytes) -> relay (both directions, watermarks, half-close) -> close.
// Until the upstream sends its first byte, the client's bytes are kept (bounded) so that an
// upstream that resets, closes or stays silent past the first-byte timeout can be replaced
// transparently: nothing has reached the client yet.
//
// Owned by its Worker. Never deleted inside its own callbacks: close() unlinks it and queues it for
// deletion on a later loop turn.
#include "kube_api_lb/core/upstream.h"
#include "proxy/proxy_settings.h"
#include "uvx/handle.h"

#include <uv.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace kal {

class Worker;
using UpstreamList = std::vector<std::shared_ptr<Upstream>>;

class Session {
public:
  enum class CloseReason {
    Done,
    ClientError,
    UpstreamError,
    NoUpstream,
    IdleTimeout,
    EndpointDown,
    Drained,
    Shutdown
  };

  explicit Session(Worker &worker);
  ~Session();
  Session(const Session &) = delete;
  Session &operator=(const Session &) = delete;

  // Accepts a pending connection from `server` and starts dialling. Returns false (and the
  // session is already queued for deletion) when the accept itself failed.
  bool start(uv_stream_t *server);
  // The same for a connection another worker accepted and handed over (the session owns `fd`,
  // closing it on failure).
  bool start_handed_over(int fd);

  // Idempotent. Releases both sockets now, deletes the object on a later loop turn.
  void close(CloseReason why);

  // The endpoint this session is bound to (null while between endpoints), and whether the endpoint
  // was marked down for a hard failure since the session bound to it.
  Upstream *upstream() const { return up_.get(); }
  bool endpoint_killed() const { return up_ && up_->kill_epoch() != bound_epoch_; }
  bool closed() const { return closed_; }

  // The bound endpoint was marked down for a hard failure. A session that has not heard from it
  // yet moves to another endpoint (nothing reached the client); an established one is closed so
  // that the client reconnects through the proxy instead of waiting for its own timeouts.
  void on_endpoint_killed();

  // Intrusive list links owned by Worker.
  Session *prev = nullptr;
  Session *next = nullptr;
  // The worker's queue of upstream sockets whose keepalive and TCP_USER_TIMEOUT are still to be
  // set (see Worker::queue_liveness).
  Session *live_prev = nullptr;
  Session *live_next = nullptr;
  bool live_queued = false;
  uint64_t connected_ms = 0;
  // Sets keepalive and TCP_USER_TIMEOUT on the upstream socket (the worker calls it once the
  // connection has lived a second).
  void tune_upstream_liveness();

  // libuv trampolines reach these.
  void on_alloc(uv_buf_t *buf);
  void on_read(uv_stream_t *from, ssize_t nread, const uv_buf_t *buf);
  void on_connect(int status);
  void on_write_done(bool to_upstream, size_t len);
  // A write failed (reset, broken pipe). To the upstream before its first byte: the client has
  // seen nothing of it, so the bytes are replayed to another endpoint. To the upstream after it:
  // the upstream is read to its end first (see upstream_broken_). To the client: the session ends.
  void on_write_error(bool to_upstream);
  void on_shutdown_done(int status);
  void on_timer();
  void on_splice_poll(uv_poll_t *h);

private:
  // Links the session and sets up its client handle; false (closed) if libuv refuses.
  bool init_client();
  // The client socket is open: times, reads and dials.
  bool begin();

  // splice(2) for one direction once it carries bulk data: source socket -> pipe -> destination
  // socket inside the kernel, no copy through user space. libuv allows one watcher per fd and
  // owns the sockets, so the session polls duplicates of them (which share the sockets).
  struct Splice {
    bool active() const { return pipe_r >= 0; }
    int pipe_r = -1;
    int pipe_w = -1;
    int src_fd = -1; // dup of the source socket, polled for reading
    int dst_fd = -1; // dup of the destination socket, polled for writing when it is full
    uvx::Handle<uv_poll_t> src_poll;
    uvx::Handle<uv_poll_t> dst_poll;
  };
  struct Direction {
    size_t pending = 0;  // bytes handed to uv_write and not yet written
    bool eof = false;    // source sent FIN
    bool shut = false;   // shutdown(2) sent (or queued) on the destination
    bool paused = false; // source reading stopped by the watermark
  };
  enum class Phase { Dialing, AwaitFirstByte, Relaying };

  void dial();
  void bind_upstream(std::shared_ptr<Upstream> up, uint64_t epoch);
  void unbind_upstream();
  // The upstream failed before answering: count it, then dial another endpoint and replay.
  void redial(bool first_byte_timeout);
  // Drops the current upstream socket before anything of it reached the client.
  void abandon_upstream();
  bool can_replay() const { return !got_first_byte_ && replay_ok_; }
  // The client closed without sending a byte (a TCP port probe): there is nothing to carry to any
  // endpoint, so it is never re-dialled. (While replayable, replay_ holds every byte it sent.)
  bool client_left_silent() const { return c2u_.eof && can_replay() && replay_.empty(); }
  void relay(bool to_upstream, char *data, size_t len, bool pooled);
  void send(bool to_upstream, const char *data, size_t len);
  // Gives back a buffer `relay` owns: to the pool, or to the heap for a copy made by send().
  void release(char *data, bool pooled);
  void maybe_resume(bool to_upstream);
  void half_close(bool to_upstream);
  // A write to the upstream failed after it answered: pass on what it sent, discard the client's
  // bytes from here on (see upstream_broken_).
  void upstream_takes_no_more();
  // The upstream sent its FIN (or reset) and the session has not read that far yet.
  bool upstream_ended_unread() const;
  // shutdown(2) found the destination gone: re-dial if it was an upstream yet to answer.
  void upstream_gone_on_shutdown(bool to_upstream);
  void maybe_finish();
  void on_linger_tick();
  bool all_done() const;
  void arm_timer();
  uint64_t idle_limit_ms() const;
  Direction &dir(bool to_upstream) { return to_upstream ? c2u_ : u2c_; }
  Splice &spl(bool to_upstream) { return spl_[to_upstream ? 0 : 1]; }
  // Switches a direction whose last read filled a whole buffer to splice(2). False (and nothing
  // changed) when the direction cannot or need not: data queued, paused, at EOF, or no pipe.
  bool enter_splice(bool to_upstream);
  // Moves bytes until the source has none, the destination is full, or a fair share was moved.
  void splice_pump(bool to_upstream);
  // Closes the direction's pipe, polls and duplicates (libuv reading is not restarted).
  void drop_splice(bool to_upstream);

  Worker &worker_;
  uvx::Handle<uv_tcp_t> client_;
  uvx::Handle<uv_tcp_t> upstream_;
  uvx::Timer timer_;
  std::shared_ptr<const UpstreamList> list_; // endpoint snapshot taken at accept
  std::shared_ptr<Upstream> up_;
  uint64_t bound_epoch_ = 0;
  uint64_t tried_ = 0; // bit i: list_[i] tried for this client
  int attempts_ = 0;
  Phase phase_ = Phase::Dialing;
  bool upstream_connected_ = false;
  // A write to the upstream failed after it had answered: it takes no more bytes, but what it sent
  // before (a TLS alert, an answer still queued for the client) is still read and passed on; the
  // client's further bytes are discarded.
  bool upstream_broken_ = false;
  // Set with upstream_broken_: the timer polls what is still owed to the client (on_linger_tick).
  bool lingering_ = false;
  size_t linger_owed_ = 0;          // bytes owed to the client (queued or unacknowledged) last tick
  uint64_t linger_progress_ms_ = 0; // when that number last went down
  uint64_t linger_start_ms_ = 0;
  bool got_first_byte_ = false;
  // The timer runs the first-byte timeout (the upstream has the client's bytes and owes an
  // answer), not the connect or idle timeout.
  bool first_byte_timer_ = false;
  bool replay_ok_ = true;
  bool closed_ = false;
  std::string replay_;  // client bytes not yet confirmed by an upstream answer
  Direction c2u_, u2c_; // in splice mode `pending` counts the bytes in the pipe
  Splice spl_[2];       // [0] client -> upstream, [1] upstream -> client
  uint64_t last_activity_ms_ = 0;
};

} // namespace kal
