// The admin server's HTTP request handling on arbitrary bytes: kal::AdminServer::answer (when the
// head read so far is complete, or too large: 431) and respond (the request line, method, path
// and query; /healthz, /livez, /readyz, /metrics, /stats and the status page at /). The first
// input byte picks the server (all paths, or a health port serving only /healthz to others than
// loopback), the peer, readiness and the size of the pieces the bytes arrive in; the rest is what
// the peer sends. Properties: the bytes in pieces get the same answer as at once, at the first
// piece that completes the head; no answer only while no blank line has come and fewer than
// kMaxRequest bytes; a 431 only past kMaxRequest bytes with no blank line among them; the answer
// is one well-formed HTTP/1.1 response with a known status,
// a Content-Length that matches its body (none for HEAD), "Connection: close"; only GET and HEAD
// are served; a health port never shows /metrics, /stats, /readyz or the status page to a
// non-loopback peer.
#include "admin/admin_server.h"
#include "fuzz_target.h"

#include <uv.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <set>

namespace {

struct Servers {
  uv_loop_t loop{};
  bool ready = true;
  std::unique_ptr<kal::AdminServer> full;
  std::unique_ptr<kal::AdminServer> healthz_only;

  Servers() {
    uv_loop_init(&loop);
    kal::AdminHandlers h;
    h.ready = [this] { return ready; };
    h.metrics = [] { return std::string("# METRICS-BODY\n"); };
    h.stats = [] { return std::string("{\"STATS-BODY\":1}"); };
    h.readiness_detail = [] { return std::string("[+]DETAIL-BODY\n"); };
    h.not_ready_reason = [] { return std::string("REASON-BODY\n"); };
    h.stats_compact = [] { return std::string("{\"COMPACT-BODY\":1}"); };
    h.status_page = [] { return std::string("<html>STATUS-PAGE-BODY</html>"); };
    h.status_page_csp = "default-src 'none'";
    full = std::make_unique<kal::AdminServer>(&loop, h, false);
    healthz_only = std::make_unique<kal::AdminServer>(&loop, h, true);
  }
};

} // namespace

KAL_FUZZ_TARGET(admin_request) {
  static Servers s; // never listens: respond() is all that runs
  if (size == 0) {
    return;
  }
  const uint8_t mode = data[0];
  const std::string_view req(reinterpret_cast<const char *>(data + 1), size - 1);
  const bool health_port = mode & 1;
  const bool loopback = mode & 2;
  s.ready = mode & 4;
  const size_t piece = 1 + (mode >> 3); // 1..32 bytes per read
  const kal::AdminServer &server = *(health_port ? s.healthz_only : s.full);

  const auto at_once = server.answer(req, loopback);
  std::optional<std::string> in_pieces;
  size_t answered_at = 0;
  for (size_t n = std::min(piece, req.size());; n = std::min(n + piece, req.size())) {
    if ((in_pieces = server.answer(req.substr(0, n), loopback))) {
      answered_at = n;
      break;
    }
    if (n == req.size()) {
      break;
    }
  }
  KAL_FUZZ_CHECK(at_once.has_value() == in_pieces.has_value(), std::string(req));
  const std::string_view within = req.substr(0, kal::AdminServer::kMaxRequest);
  const bool blank_line = within.find("\r\n\r\n") != std::string_view::npos ||
                          within.find("\n\n") != std::string_view::npos;
  if (!at_once) {
    KAL_FUZZ_CHECK(!blank_line && req.size() < kal::AdminServer::kMaxRequest, std::string(req));
    return;
  }
  KAL_FUZZ_CHECK(*at_once == *in_pieces, *at_once + "\n---\n" + *in_pieces);
  const std::string &r = *at_once;
  if (r.rfind("HTTP/1.1 431 ", 0) == 0) {
    KAL_FUZZ_CHECK(!blank_line && answered_at >= kal::AdminServer::kMaxRequest, r);
  } else {
    KAL_FUZZ_CHECK(blank_line, r);
    KAL_FUZZ_CHECK(r == server.respond(req, loopback), r); // the request line decides
  }

  KAL_FUZZ_CHECK(r.rfind("HTTP/1.1 ", 0) == 0 && r.size() > 12 && r[12] == ' ', r);
  const int status = std::stoi(r.substr(9, 3));
  static const std::set<int> known = {200, 400, 404, 405, 431, 503};
  KAL_FUZZ_CHECK(known.count(status), r);
  const size_t head_end = r.find("\r\n\r\n");
  KAL_FUZZ_CHECK(head_end != std::string::npos, r);
  const std::string head = r.substr(0, head_end + 2);
  const std::string body = r.substr(head_end + 4);
  KAL_FUZZ_CHECK(head.find("\r\nConnection: close\r\n") != std::string::npos, r);
  const auto cl = head.find("\r\nContent-Length: ");
  KAL_FUZZ_CHECK(cl != std::string::npos, r);
  const size_t length = std::stoul(head.substr(cl + 18));
  const bool is_head = req.rfind("HEAD ", 0) == 0;
  KAL_FUZZ_CHECK(body.size() == (is_head && status != 400 && status != 431 ? 0 : length), r);
  if (!(req.rfind("GET ", 0) == 0 || is_head)) {
    KAL_FUZZ_CHECK(status == 400 || status == 405 || status == 431, r);
  }
  if (health_port && !loopback) {
    for (const char *secret : {"METRICS-BODY", "STATS-BODY", "DETAIL-BODY", "REASON-BODY",
                               "COMPACT-BODY", "STATUS-PAGE-BODY"}) {
      KAL_FUZZ_CHECK(r.find(secret) == std::string::npos, r);
    }
    KAL_FUZZ_CHECK(
        status == 200 || status == 400 || status == 404 || status == 405 || status == 431, r);
  }
}
