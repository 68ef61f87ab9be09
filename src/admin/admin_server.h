#pragma once
// A tiny HTTP/1.1 server for /healthz, /readyz, /metrics, /stats and the status page (/) on the
// main loop.
// One request per connection (Connection: close): kubelet probes and Prometheus scrapes open a
// connection per request anyway, and it keeps the server trivially bounded.
#include "kube_api_lb/core/endpoint.h"
#include "kube_api_lb/core/intrusive_list.h"
#include "kube_api_lb/core/result.h"
#include "uvx/deferred_delete.h"
#include "uvx/handle.h"
#include "uvx/listener.h"

#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace kal {

struct AdminConn;

struct AdminHandlers {
  std::function<bool()> ready;                   // /readyz: 200 when true, else 503
  std::function<std::string()> metrics;          // /metrics body
  std::function<std::string()> stats;            // /stats body (JSON)
  std::function<std::string()> readiness_detail; // /readyz?verbose body lines
  std::function<std::string()> not_ready_reason; // /readyz 503 body
  std::function<std::string()> stats_compact;    // /stats?compact: the same JSON on one line
  std::function<std::string()> status_page;      // GET /: the status page (HTML)
  std::string status_page_csp;                   // its Content-Security-Policy
};

class AdminServer {
public:
  // `healthz_only`: a Kubespray-style health port on every address. It answers /healthz to anyone
  // and the rest (/readyz, /metrics, /stats) only to loopback peers, so the Kubespray drop-in
  // keeps its metrics on the node without publishing them to the network.
  AdminServer(uv_loop_t *loop, AdminHandlers handlers, bool healthz_only);
  ~AdminServer();
  AdminServer(const AdminServer &) = delete;
  AdminServer &operator=(const AdminServer &) = delete;

  // Errors name the address ("admin listen 127.0.0.1:8081: address already in use").
  Result<bool> listen(const HostPort &addr);
  void close();

  // Builds the full HTTP response for a raw request (pure; exposed for unit tests).
  // `loopback_peer`: the request came from 127.0.0.0/8 or ::1.
  std::string respond(std::string_view request, bool loopback_peer = true) const;

  // What the bytes read so far on a connection make of a request (pure; the read callback's
  // decision, exposed for tests and the fuzzer). nullopt: the head is not complete yet, read on.
  // A head ends at the first blank line ("\r\n\r\n" or "\n\n") within the first kMaxRequest
  // bytes and is answered by respond(); kMaxRequest bytes or more with no blank line among them
  // get a 431. Bytes after the blank line are never looked at.
  static constexpr size_t kMaxRequest = 8192;
  std::optional<std::string> answer(std::string_view read_so_far, bool loopback_peer) const;

  // Connections open now (accepted, not yet finished).
  size_t connections() const;

private:
  friend struct AdminConn;
  static void connection_cb(uv_stream_t *server, int status) noexcept;
  void on_connection(uv_stream_t *server, int status);
  // A connection that ended leaves the server's list; it is freed at the end of the loop
  // iteration.
  void retire(AdminConn &c);

  uv_loop_t *loop_;
  AdminHandlers handlers_;
  bool healthz_only_;
  std::vector<uvx::Listener> listeners_;
  uvx::DeferredDelete<AdminConn> graveyard_; // finished connections, freed after this turn
  OwnedList<AdminConn, AdminConn> conns_;    // open connections, closed with the server
};

} // namespace kal
