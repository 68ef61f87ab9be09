#pragma once
// The seam between a session's relay logic (session.cc) and its socket I/O. The relay decides
// what to read, write, shut down and splice; a transport does it on two sockets (the client's and
// the upstream's) and reports back through the session's event methods (on_alloc, on_read,
// on_connect, on_write_done, on_write_error, on_shutdown_done, on_splice_ready).
//
// A static seam: the session names its transport by type (Session::Transport), so the hot path
// pays no virtual call and no allocation for it. Today's only implementation is UvTransport
// (libuv streams, uv_poll for splice). Another one (an edge-triggered epoll transport, say) is
// tried by implementing this concept and switching Session::Transport, in an A/B build against
// today's, without touching the relay.
#include "kube_api_lb/core/session_policy.h"
#include "proxy/splice_pipe.h"

#include <uv.h>

#include <sys/socket.h>
#include <sys/types.h>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <optional>

namespace kal {

// A session's two sockets.
enum class Side : uint8_t { Client, Upstream };
constexpr Side source_of(Direction d) {
  return d == Direction::ToUpstream ? Side::Client : Side::Upstream;
}
constexpr Side dest_of(Direction d) {
  return d == Direction::ToUpstream ? Side::Upstream : Side::Client;
}

// A write: all of it written now, the rest queued (reported later by on_write_done or
// on_write_error), or failed at once.
enum class WriteResult : uint8_t { Done, Queued, Failed };
// A shutdown(2) of a socket's sending side: done now, queued behind pending writes (reported by
// on_shutdown_done), or failed (the peer is gone).
enum class ShutdownResult : uint8_t { Done, Queued, Failed };

template <class T>
concept SessionTransport = requires(T t, const T ct, uv_stream_t *server, int fd,
                                    const sockaddr_storage &addr, Side s, Direction d, char *data,
                                    size_t len, bool pooled, size_t *queued) {
  // Sockets: accept the client from a listener, or adopt one handed over (owning `fd`, closed
  // on failure); open and connect the upstream (0 or a libuv error); close.
  { t.accept(server) } -> std::same_as<bool>;
  { t.adopt(fd) } -> std::same_as<bool>;
  { t.open_upstream() } -> std::same_as<int>;
  { t.connect(addr) } -> std::same_as<int>;
  { ct.has_upstream() } -> std::same_as<bool>;
  t.close_upstream();
  t.close_all();
  // Reading, writing, half-closing.
  t.read_start(s);
  t.read_stop(s);
  { t.write(d, data, len, pooled, pooled, queued) } -> std::same_as<WriteResult>;
  { ct.write_queue_size(s) } -> std::same_as<size_t>;
  { t.shutdown(s, pooled) } -> std::same_as<ShutdownResult>;
  // What the kernel knows: the TCP state (tcp_info), the bytes not yet acknowledged.
  { ct.tcp_state(s) } -> std::same_as<std::optional<uint8_t>>;
  { ct.unacked(s) } -> std::same_as<std::optional<size_t>>;
  t.set_nodelay(s);
  t.tune_liveness(s, 0u, 0u);
  // splice(2) for one direction: open (false: stay on read/write), pump, close.
  { t.splice_open(d) } -> std::same_as<bool>;
  t.splice_close(d);
  { ct.splicing(d) } -> std::same_as<bool>;
  { t.splice_pump(d) } -> std::same_as<SplicePipe::Pumped>;
  { ct.splice_held(d) } -> std::same_as<size_t>;
};

} // namespace kal
