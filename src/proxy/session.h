#pragma once
// One proxied client connection: the client socket, the upstream socket, and the bytes between.
//
// Life cycle: accept -> dial (pick an endpoint, connect with a timeout; on failure pick the next,
// holding the client's bytes) -> relay (both directions, watermarks, half-close) -> close.
// Until the upstream sends its first byte, the client's bytes are kept (bounded) so that an
// upstream that resets, closes or stays silent past the first-byte timeout can be replaced
// transparently: nothing has reached the client yet.
//
// This file is the relay: it keeps the state and carries out decisions. What an event means
// (replay, linger, an endpoint going down, timeouts, slow start) is decided in core/
// (session_policy.h, session_timers.h, lingering_close.h, slow_start.h) from plain facts; the
// sockets are behind the transport seam (proxy/transport.h, today UvTransport).
//
// Owned by its Worker (an OwnedList). Never deleted inside its own callbacks: close() releases
// both sockets and hands the object to the worker's deferred deleter, which frees it at the end
// of the loop iteration.
#include "kube_api_lb/core/intrusive_list.h"
#include "kube_api_lb/core/lingering_close.h"
#include "kube_api_lb/core/session_policy.h"
#include "kube_api_lb/core/session_timers.h"
#include "kube_api_lb/core/shutdown_drain.h"
#include "kube_api_lb/core/upstream.h"
#include "proxy/endpoint_binding.h"
#include "proxy/proxy_settings.h"
#include "proxy/replay_buffer.h"
#include "proxy/uv_transport.h"
#include "uvx/handle.h"

#include <uv.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace kal {

class Worker;

// List tags: every session of a worker; the worker's queue of upstream sockets whose keepalive and
// TCP_USER_TIMEOUT are still to be set (see Worker::queue_liveness).
struct AllSessions;
struct LivenessQueue;

class Session : public ListHook<AllSessions>, public ListHook<LivenessQueue> {
public:
  // The socket I/O seam (proxy/transport.h); swap it here for an A/B of another transport.
  using Transport = UvTransport;
  static_assert(SessionTransport<Transport>);

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
  ~Session() = default;
  Session(const Session &) = delete;
  Session &operator=(const Session &) = delete;

  // Accepts a pending connection from `server` and starts dialling. Returns false (and the
  // session is already closed and queued for deletion) when the accept itself failed.
  bool start(uv_stream_t *server);
  // The same for a connection another worker accepted and handed over (the session owns `fd`,
  // closing it on failure).
  bool start_handed_over(int fd);

  // Idempotent. Releases both sockets now; the worker frees the object at the end of the loop
  // iteration.
  void close(CloseReason why);

  // The endpoint this session is bound to (null while between endpoints), and whether the endpoint
  // was marked down for a hard failure since the session bound to it.
  Upstream *upstream() const { return up_; }
  bool endpoint_killed() const { return ep_.killed(); }
  bool closed() const { return closed_; }

  // The bound endpoint was marked down for a hard failure: see on_endpoint_down() in
  // core/session_policy.h for what that means for this session.
  void on_endpoint_killed();

  // When the upstream connection was made (the loop's clock), and the keepalive and
  // TCP_USER_TIMEOUT it gets once it has lived a second (called by the worker).
  uint64_t connected_ms() const { return connected_ms_; }
  // What a stopping proxy reads to tell whether this connection is between exchanges
  // (core/shutdown_drain.h).
  DrainFacts drain_facts() const;
  void tune_upstream_liveness();

private:
  friend Transport; // its callbacks deliver the events below

  // Transport events.
  void on_alloc(uv_buf_t *buf);
  void on_read(Side from, ssize_t nread, const uv_buf_t *buf);
  void on_connect(int status);
  void on_write_done(Direction d, size_t len);
  void on_write_error(Direction d);
  void on_shutdown_done(int status);
  void on_splice_ready(Direction d);
  static void timer_cb(uv_timer_t *t) noexcept;
  void on_timer();

  // Per-direction relay state.
  struct Flow {
    size_t pending = 0;  // bytes handed to the transport and not yet written (or in the pipe)
    bool eof = false;    // source sent FIN
    bool shut = false;   // shutdown(2) sent (or queued) on the destination
    bool paused = false; // source reading stopped by the watermark
  };

  bool begin();
  ExchangeFacts facts() const;
  void dial();
  void unbind_upstream() {
    ep_.unbind();
    up_ = nullptr;
  }
  // The upstream failed before answering: count it, then dial another endpoint and replay.
  void redial(bool first_byte_timeout);
  // Drops the current upstream socket before anything of it reached the client.
  void abandon_upstream();
  void on_client_read(ssize_t nread, const uv_buf_t *buf);
  void on_upstream_read(ssize_t nread, const uv_buf_t *buf);
  void relay(Direction d, char *data, size_t len, bool pooled);
  void send_copy(Direction d, const char *data, size_t len);
  void maybe_resume(Direction d);
  void half_close(Direction d);
  // The upstream reset the connection (or closed it, and the client kept sending), or its endpoint
  // went down after its answer ended, but what it sent before is still owed to the client: an
  // apiserver's TLS alert such as "certificate required" may still be unread, an answer and its
  // FIN may still be queued for a client that reads slowly. Closing now would drop the first and,
  // with the client's further bytes unread, make the kernel reset the client connection and discard
  // the second. So the upstream is read to its end (an error ends the session as usual), what it
  // sent is written, and the client is read and its bytes discarded until the lingering close
  // (core/lingering_close.h) ends.
  void upstream_takes_no_more();
  // The upstream sent its FIN (or reset) and the session has not read that far yet.
  bool upstream_ended_unread() const;
  // shutdown(2) found the destination gone: re-dial if it was an upstream yet to answer.
  void upstream_gone_on_shutdown(Direction d);
  void maybe_finish();
  void on_linger_tick();
  bool all_done() const;
  void arm_timer();
  uint64_t idle_limit() const;
  Flow &flow(Direction d) { return d == Direction::ToUpstream ? c2u_ : u2c_; }
  // Switches a direction whose last read filled a whole buffer to splice(2). False (and nothing
  // changed) when the direction cannot or need not: data queued, paused, at EOF, or no pipe.
  bool enter_splice(Direction d);
  // Moves bytes until the source has none, the destination is full, or a fair share was moved.
  void splice_pump(Direction d);

  Worker &worker_;
  Transport io_;
  uvx::Timer timer_;
  EndpointBinding ep_;
  Upstream *up_ = nullptr; // ep_.get(), kept at hand
  SessionPhase phase_ = SessionPhase::Dialing;
  bool upstream_connected_ = false;
  // A write to the upstream failed after it had answered: it takes no more bytes, but what it sent
  // before (a TLS alert, an answer still queued for the client) is still read and passed on; the
  // client's further bytes are discarded. The timer then polls the lingering close.
  bool upstream_broken_ = false;
  LingeringClose linger_;
  // The timer runs the first-byte timeout (the upstream has the client's bytes and owes an
  // answer), not the connect or idle timeout.
  bool first_byte_timer_ = false;
  bool closed_ = false;
  ReplayBuffer replay_; // client bytes not yet confirmed by an upstream answer
  Flow c2u_, u2c_;      // in splice mode `pending` counts the bytes in the pipe
  uint64_t last_activity_ms_ = 0;
  uint64_t accepted_ms_ = 0;
  uint64_t last_from_client_ms_ = 0;   // the latest byte read from the client (0: none yet)
  uint64_t last_from_upstream_ms_ = 0; // the latest byte read from the upstream (0: none yet)
  uint64_t connected_ms_ = 0;
};

} // namespace kal
