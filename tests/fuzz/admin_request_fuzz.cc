// The admin server's HTTP request handling (kal::AdminServer::respond: the request line, method,
// path and query; /healthz, /livez, /readyz, /metrics, /stats and the status page at /) on
// arbitrary bytes. The first input byte picks the server (all paths, or a
// health port serving only /healthz to others than loopback), the peer and readiness; the rest
// is the request. Properties: the answer is one well-formed HTTP/1.1 response with a known status,
// a Content-Length that matches its body (none for HEAD), "Connection: close"; only GET and HEAD
// are served; a health port never shows /metrics, /stats, /readyz or the status page to a
// non-loopback peer.
#include "admin/admin_server.h"
#include "fuzz_target.h"

#include <uv.h>

#include <memory>
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
  const std::string r = (health_port ? s.healthz_only : s.full)->respond(req, loopback);

  KAL_FUZZ_CHECK(r.rfind("HTTP/1.1 ", 0) == 0 && r.size() > 12 && r[12] == ' ', r);
  const int status = std::stoi(r.substr(9, 3));
  static const std::set<int> known = {200, 400, 404, 405, 503};
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
  KAL_FUZZ_CHECK(body.size() == (is_head && status != 400 ? 0 : length), r);
  if (!(req.rfind("GET ", 0) == 0 || is_head)) {
    KAL_FUZZ_CHECK(status == 400 || status == 405, r);
  }
  if (health_port && !loopback) {
    for (const char *secret : {"METRICS-BODY", "STATS-BODY", "DETAIL-BODY", "REASON-BODY",
                               "COMPACT-BODY", "STATUS-PAGE-BODY"}) {
      KAL_FUZZ_CHECK(r.find(secret) == std::string::npos, r);
    }
    KAL_FUZZ_CHECK(status == 200 || status == 400 || status == 404 || status == 405, r);
  }
}
