#include "admin/admin_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>
#include <memory>
#include <utility>

namespace kal {
namespace {

constexpr uint64_t kExchangeMs = 5000; // request and answer
// After the answer: the connection is half-closed and the peer's further bytes are read and
// dropped until its FIN, kLingerMs or kMaxDiscard bytes, whichever comes first. Closing with
// bytes unread would make the kernel send a reset, which can destroy the answer before the peer
// has read it (a 431 to a peer still sending its oversized head, for one).
constexpr uint64_t kLingerMs = 2000;
constexpr size_t kMaxDiscard = 1 << 20;

} // namespace

// One admin connection: reads the request head, writes the answer, closes. The server owns its
// connections (an OwnedList) so that closing the server (reload, shutdown) closes them too: a
// connection never outlives the server it would answer for. A connection that ends is handed to
// the server's deferred deleter and freed at the end of the loop iteration, never inside its own
// callback.
struct AdminConn : ListHook<AdminConn> {
  // The answer in flight: it lives until libuv's write callback, which may come after the
  // connection itself is gone (a close cancels the write).
  struct Write {
    uv_write_t req{};
    std::string out;
    AdminConn *conn = nullptr;
  };

  uvx::Handle<uv_tcp_t> tcp;
  uvx::Timer timer; // the whole exchange, request and answer, gets kExchangeMs
  AdminServer *server = nullptr;
  bool loopback_peer = false;
  std::string in;
  Write *write = nullptr;
  uv_shutdown_t *shut = nullptr; // in flight; its callback frees it
  bool done = false;             // the answer is decided: what the peer sends now is dropped
  bool peer_eof = false;         // the peer's FIN came while the answer was still being written
  size_t discarded = 0;

  // Ends the connection: its callbacks find no owner from here on, and the server frees it at the
  // end of the loop iteration. Idempotent.
  void finish() {
    if (write) {
      write->conn = nullptr; // its callback (UV_ECANCELED once the socket closes) frees it
      write = nullptr;
    }
    if (shut) {
      shut->data = nullptr;
      shut = nullptr;
    }
    // Handles free themselves after uv_close.
    timer.reset();
    tcp.reset();
    if (server) {
      std::exchange(server, nullptr)->retire(*this);
    }
  }
};

namespace {

void conn_alloc(uv_handle_t *, size_t, uv_buf_t *buf) noexcept {
  buf->base = new char[4096];
  buf->len = 4096;
}

void conn_timeout(uv_timer_t *t) noexcept;

void conn_shut(uv_shutdown_t *req, int status) noexcept {
  auto *c = static_cast<AdminConn *>(req->data);
  delete req;
  if (!c) {
    return;
  }
  c->shut = nullptr;
  if (status < 0) {
    c->finish();
  }
}

// The answer is out: half-close, and linger for the peer's FIN (see kLingerMs).
void conn_written(uv_write_t *req, int status) noexcept {
  auto *w = static_cast<AdminConn::Write *>(req->data);
  AdminConn *c = w->conn;
  delete w;
  if (!c) {
    return;
  }
  c->write = nullptr;
  if (c->peer_eof) {
    c->finish(); // nothing can be left unread: no linger
    return;
  }
  auto *s = new uv_shutdown_t{};
  s->data = c;
  if (status < 0 || uv_shutdown(s, c->tcp.stream(), conn_shut) != 0) {
    delete s;
    c->finish();
    return;
  }
  c->shut = s;
  c->timer.start(conn_timeout, kLingerMs);
}

void conn_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) noexcept {
  auto *c = static_cast<AdminConn *>(s->data);
  std::unique_ptr<char[]> owned(buf->base);
  if (!c) {
    return;
  }
  if (nread == UV_EOF && c->write) {
    // A peer may half-close right after its request: the answer still owed must not be cut.
    c->peer_eof = true;
    uv_read_stop(s);
    return;
  }
  if (nread < 0) {
    c->finish(); // the peer's FIN (or an error): during the linger, the normal end
    return;
  }
  if (c->done) {
    c->discarded += static_cast<size_t>(nread);
    if (c->discarded > kMaxDiscard) {
      c->finish();
    }
    return;
  }
  c->in.append(buf->base, static_cast<size_t>(nread));
  auto out = c->server->answer(c->in, c->loopback_peer);
  if (!out) {
    return;
  }
  c->done = true; // reading goes on: what follows is dropped
  auto *w = new AdminConn::Write{};
  w->req.data = w;
  w->out = std::move(*out);
  uv_buf_t b = uv_buf_init(w->out.data(), static_cast<unsigned>(w->out.size()));
  if (uv_write(&w->req, c->tcp.stream(), &b, 1, conn_written) != 0) {
    delete w;
    c->finish();
    return;
  }
  w->conn = c;
  c->write = w;
}

// A peer that never finishes its request, or never reads the answer, is cut.
void conn_timeout(uv_timer_t *t) noexcept {
  if (auto *c = static_cast<AdminConn *>(t->data)) {
    c->finish();
  }
}

bool is_loopback(const sockaddr *sa) {
  if (sa->sa_family == AF_INET) {
    auto a = ntohl(reinterpret_cast<const sockaddr_in *>(sa)->sin_addr.s_addr);
    return (a >> 24) == 127;
  }
  if (sa->sa_family == AF_INET6) {
    const auto &a6 = reinterpret_cast<const sockaddr_in6 *>(sa)->sin6_addr;
    if (IN6_IS_ADDR_LOOPBACK(&a6)) {
      return true;
    }
    return IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127;
  }
  return false;
}

std::string http_response(int code, const char *reason, const std::string &content_type,
                          const std::string &body, bool head, const std::string &extra = "") {
  std::string r = "HTTP/1.1 " + std::to_string(code) + " " + reason + "\r\n";
  r += "Content-Type: " + content_type + "\r\n";
  r += "X-Content-Type-Options: nosniff\r\n";
  r += extra;
  r += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  r += "Cache-Control: no-store\r\nConnection: close\r\n\r\n";
  if (!head) {
    r += body;
  }
  return r;
}

} // namespace

void AdminServer::connection_cb(uv_stream_t *server, int status) noexcept {
  if (auto *self = static_cast<AdminServer *>(server->data)) {
    self->on_connection(server, status);
  }
}

AdminServer::AdminServer(uv_loop_t *loop, AdminHandlers handlers, bool healthz_only)
    : loop_(loop), handlers_(std::move(handlers)), healthz_only_(healthz_only), graveyard_(loop) {}

AdminServer::~AdminServer() {
  close();
  graveyard_.flush();
}

void AdminServer::close() {
  listeners_.clear();
  while (AdminConn *c = conns_.front()) {
    c->finish(); // retires it
  }
}

size_t AdminServer::connections() const { return conns_.size(); }

void AdminServer::retire(AdminConn &c) { graveyard_.push(conns_.release(c)); }

Result<bool> AdminServer::listen(const HostPort &addr) {
  auto fd =
      uvx::listen_socket(addr, false, 128, healthz_only_ ? "healthz listen " : "admin listen ");
  if (!fd) {
    return Err{fd.error()};
  }
  uvx::Listener l;
  if (int rc = l.open(loop_, *fd, this, connection_cb, 128, "admin listen " + addr.str());
      rc != 0) {
    return Err{"admin listen " + addr.str() + ": " + uv_strerror(rc)};
  }
  listeners_.push_back(std::move(l));
  return true;
}

void AdminServer::on_connection(uv_stream_t *server, int status) {
  if (status < 0) {
    for (auto &l : listeners_) {
      if (l.is(server)) {
        l.accept_failed(status);
      }
    }
    return;
  }
  auto conn = std::make_unique<AdminConn>();
  if (uv_tcp_init(loop_, conn->tcp.make(conn.get())) != 0) {
    conn->tcp.abandon();
    return;
  }
  AdminConn *c = &conns_.adopt(std::move(conn));
  c->server = this;
  if (uv_accept(server, c->tcp.stream()) != 0 || !c->timer.init(loop_, c)) {
    c->finish();
    return;
  }
  sockaddr_storage peer{};
  int len = sizeof peer;
  if (uv_tcp_getpeername(c->tcp.get(), reinterpret_cast<sockaddr *>(&peer), &len) == 0) {
    c->loopback_peer = is_loopback(reinterpret_cast<sockaddr *>(&peer));
  }
  c->timer.start(conn_timeout, kExchangeMs);
  uv_read_start(c->tcp.stream(), conn_alloc, conn_read);
}

std::optional<std::string> AdminServer::answer(std::string_view read_so_far,
                                               bool loopback_peer) const {
  const std::string_view head = read_so_far.substr(0, kMaxRequest);
  if (head.find("\r\n\r\n") != std::string_view::npos ||
      head.find("\n\n") != std::string_view::npos) {
    return respond(head, loopback_peer);
  }
  if (read_so_far.size() < kMaxRequest) {
    return std::nullopt;
  }
  return std::string("HTTP/1.1 431 Request Header Fields Too Large\r\n"
                     "Content-Length: 0\r\nConnection: close\r\n\r\n");
}

std::string AdminServer::respond(std::string_view req, bool loopback_peer) const {
  auto line_end = req.find_first_of("\r\n");
  std::string_view line = req.substr(0, line_end);
  auto sp1 = line.find(' ');
  auto sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp1 == std::string_view::npos || sp2 == std::string_view::npos ||
      line.substr(sp2 + 1).rfind("HTTP/1.", 0) != 0) {
    return http_response(400, "Bad Request", "text/plain", "malformed request line\n", false);
  }
  std::string_view method = line.substr(0, sp1);
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  bool head = method == "HEAD";
  if (method != "GET" && !head) {
    return http_response(405, "Method Not Allowed", "text/plain", "only GET and HEAD\n", false);
  }
  std::string_view path = target.substr(0, target.find('?'));
  bool verbose = target.find("verbose") != std::string_view::npos;
  if (path == "/healthz" || path == "/livez") {
    return http_response(200, "OK", "text/plain; charset=utf-8", "ok", head);
  }
  if (healthz_only_ && !loopback_peer) {
    return http_response(404, "Not Found", "text/plain", "not found\n", head);
  }
  if (path == "/readyz") {
    bool ok = handlers_.ready && handlers_.ready();
    std::string body = ok                           ? std::string("ok")
                       : handlers_.not_ready_reason ? handlers_.not_ready_reason()
                                                    : std::string("not ready\n");
    if (verbose && handlers_.readiness_detail) {
      body = handlers_.readiness_detail() + body;
    }
    return ok ? http_response(200, "OK", "text/plain; charset=utf-8", body, head)
              : http_response(503, "Service Unavailable", "text/plain; charset=utf-8", body, head);
  }
  if (path == "/metrics") {
    return http_response(200, "OK", "text/plain; version=0.0.4; charset=utf-8",
                         handlers_.metrics ? handlers_.metrics() : "", head);
  }
  if (path == "/stats") {
    const bool compact = target.find("compact") != std::string_view::npos;
    const auto &render =
        compact && handlers_.stats_compact ? handlers_.stats_compact : handlers_.stats;
    return http_response(200, "OK", "application/json", render ? render() : "{}", head);
  }
  if ((path == "/" || path == "/index.html") && handlers_.status_page) {
    // Everything the page runs is inline and allowed by hash (the CSP); it loads nothing from
    // anywhere, may be framed by no one, and only ever fetches /stats from its own origin.
    return http_response(200, "OK", "text/html; charset=utf-8", handlers_.status_page(), head,
                         "Content-Security-Policy: " + handlers_.status_page_csp +
                             "\r\nX-Frame-Options: DENY\r\nReferrer-Policy: no-referrer\r\n");
  }
  return http_response(404, "Not Found", "text/plain", "not found\n", head);
}

} // namespace kal
