#include "admin/admin_server.h"
#include "admin/metrics.h"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

using namespace kal;

namespace {
std::vector<std::shared_ptr<Upstream>> ups3() {
  std::vector<std::shared_ptr<Upstream>> v;
  for (const char *a : {"127.0.0.11:6443", "127.0.0.12:6443", "[::1]:6443"}) {
    v.push_back(std::make_shared<Upstream>(*parse_host_port(a)));
  }
  return v;
}
} // namespace

TEST_CASE("admin server answers /healthz always and /readyz by readiness") {
  bool ready = false;
  AdminHandlers h;
  h.ready = [&] { return ready; };
  h.metrics = [] { return std::string("m 1\n"); };
  h.stats = [] { return std::string("{}"); };
  AdminServer s(nullptr, h, false);
  CHECK(s.respond("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").rfind("HTTP/1.1 200 OK", 0) == 0);
  CHECK(s.respond("GET /readyz HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 503", 0) == 0);
  ready = true;
  CHECK(s.respond("GET /readyz HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 200", 0) == 0);
  auto m = s.respond("GET /metrics HTTP/1.1\r\n\r\n");
  CHECK(m.find("text/plain; version=0.0.4") != std::string::npos);
  CHECK(m.find("\r\n\r\nm 1\n") != std::string::npos);
  auto head = s.respond("HEAD /healthz HTTP/1.1\r\n\r\n");
  CHECK(head.find("Content-Length: 2") != std::string::npos);
  CHECK(head.substr(head.size() - 4) == "\r\n\r\n");
  CHECK(s.respond("POST /healthz HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 405", 0) == 0);
  CHECK(s.respond("GET /nope HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 404", 0) == 0);
  CHECK(s.respond("\x16\x03\x01 garbage").rfind("HTTP/1.1 400", 0) == 0);
  CHECK(s.respond("GET /healthz\r\n\r\n").rfind("HTTP/1.1 400", 0) == 0);
}

TEST_CASE(
    "healthz-only server (Kubespray's health port): /healthz for all, the rest for loopback") {
  AdminHandlers h;
  h.ready = [] { return true; };
  h.metrics = [] { return std::string("m 1\n"); };
  AdminServer s(nullptr, h, true);
  CHECK(s.respond("GET /healthz HTTP/1.1\r\n\r\n", false).rfind("HTTP/1.1 200", 0) == 0);
  CHECK(s.respond("GET /metrics HTTP/1.1\r\n\r\n", false).rfind("HTTP/1.1 404", 0) == 0);
  CHECK(s.respond("GET /readyz HTTP/1.1\r\n\r\n", false).rfind("HTTP/1.1 404", 0) == 0);
  CHECK(s.respond("GET /metrics HTTP/1.1\r\n\r\n", true).rfind("HTTP/1.1 200", 0) == 0);
  CHECK(s.respond("GET /readyz HTTP/1.1\r\n\r\n", true).rfind("HTTP/1.1 200", 0) == 0);
}

TEST_CASE("readiness: an Up endpoint, or Unknown ones when checks are off") {
  auto ups = ups3();
  CHECK_FALSE(any_usable(ups, true));
  CHECK(any_usable(ups, false));
  ups[1]->set_health(Health::Up);
  CHECK(any_usable(ups, true));
  ups[1]->set_removed();
  CHECK_FALSE(any_usable(ups, true));
  for (auto &u : ups) {
    u->set_health(Health::Down);
  }
  CHECK_FALSE(any_usable(ups, false));
}

TEST_CASE("prometheus output carries per-endpoint counters and valid families") {
  auto ups = ups3();
  ups[0]->set_health(Health::Up);
  ups[0]->counters.total = 7;
  ups[0]->counters.bytes_to_upstream = 1234;
  ups[2]->health_counters.failures[static_cast<size_t>(CheckResult::L4Tout)] = 3;
  ProcessStats ps;
  ps.accepted = 9;
  ps.config_hash = "abc";
  auto text = render_prometheus(ups, ps);
  CHECK(text.find("kube_api_lb_endpoint_up{endpoint=\"127.0.0.11:6443\"} 1\n") !=
        std::string::npos);
  CHECK(text.find("kube_api_lb_endpoint_up{endpoint=\"127.0.0.12:6443\"} 0\n") !=
        std::string::npos);
  CHECK(text.find("kube_api_lb_endpoint_connections_total{endpoint=\"127.0.0.11:6443\"} 7\n") !=
        std::string::npos);
  CHECK(text.find("kube_api_lb_endpoint_sent_bytes_total{endpoint=\"127.0.0.11:6443\"} 1234\n") !=
        std::string::npos);
  CHECK(text.find("kube_api_lb_endpoint_health_check_failures_total{endpoint=\"[::1]:6443\","
                  "reason=\"L4TOUT\"} 3\n") != std::string::npos);
  CHECK(text.find("kube_api_lb_accepted_connections_total 9\n") != std::string::npos);
  CHECK(text.find("kube_api_lb_build_info{version=\"") != std::string::npos);
  // Every sample line belongs to a family declared with # TYPE before it.
  std::string declared;
  size_t pos = 0;
  while (pos < text.size()) {
    auto end = text.find('\n', pos);
    auto line = text.substr(pos, end - pos);
    pos = end + 1;
    if (line.rfind("# TYPE ", 0) == 0) {
      declared = line.substr(7, line.find(' ', 7) - 7);
    } else if (line[0] != '#') {
      CAPTURE(line);
      CHECK(line.rfind(declared, 0) == 0);
    }
  }
}

TEST_CASE("stats JSON mirrors the metrics") {
  auto ups = ups3();
  ups[1]->counters.active = 2;
  ProcessStats ps;
  ps.ready = true;
  auto j = nlohmann::json::parse(render_stats_json(ups, ps));
  CHECK(j["ready"] == true);
  REQUIRE(j["endpoints"].size() == 3);
  CHECK(j["endpoints"][1]["endpoint"] == "127.0.0.12:6443");
  CHECK(j["endpoints"][1]["activeConnections"] == 2);
  CHECK(j["endpoints"][2]["health"] == "unknown");
}
