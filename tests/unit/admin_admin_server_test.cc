#include "admin/admin_server.h"
#include "admin/metrics.h"
#include "test_sockets.h"
#include "uv_test_loop.h"

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

TEST_CASE("admin server: a head is answered at its blank line, or with 431 past 8 KiB") {
  AdminHandlers h;
  h.ready = [] { return true; };
  AdminServer s(nullptr, h, false);
  CHECK(!s.answer("", true));
  CHECK(!s.answer("GET /readyz HTTP/1.1\r\nHost: x\r\n", true));
  CHECK(!s.answer("GET /readyz HTTP/1.1\r\nHost: x\r\n\r", true)); // mid blank line
  auto a = s.answer("GET /readyz HTTP/1.1\r\nHost: x\r\n\r\nGET /metrics", true);
  REQUIRE(a);
  CHECK(a->rfind("HTTP/1.1 200", 0) == 0);
  CHECK(s.answer("GET /livez HTTP/1.0\n\n", true)->rfind("HTTP/1.1 200", 0) == 0);
  const std::string start = "GET /readyz HTTP/1.1\r\nX-Long: ";
  std::string big = start + std::string(AdminServer::kMaxRequest - start.size() - 1, 'a');
  CHECK(!s.answer(big, true)); // 8191 bytes, no blank line yet: read on
  big += 'a';
  a = s.answer(big, true);
  REQUIRE(a);
  CHECK(a->rfind("HTTP/1.1 431 ", 0) == 0);
  // A blank line past the limit does not count: the same 431 whether it came in the same read.
  CHECK(*s.answer(big + "\r\n\r\n", true) == *a);
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

namespace {

// A real admin server on a loopback port, run by the test's own loop.
struct LiveAdmin {
  kal::testing::Loop l;
  AdminHandlers h;
  std::unique_ptr<AdminServer> s;
  uint16_t port = kal::testing::free_port();
  std::string metrics = "m 1\n"; // the /metrics body
  LiveAdmin() {
    h.ready = [] { return true; };
    h.metrics = [this] { return metrics; };
    h.stats = [] { return std::string("{}"); };
    s = std::make_unique<AdminServer>(&l.loop, h, false);
    REQUIRE(s->listen(kal::testing::loopback(port)).ok());
  }
  ~LiveAdmin() {
    s->close();
    s.reset();
  }
  // A connection that sent `request` and, `settle` later, has the server's 200 answer and FIN.
  int answered(const std::string &request, std::chrono::milliseconds settle) {
    int fd = kal::testing::connect_to(port);
    REQUIRE(fd >= 0);
    CHECK(send_all(fd, request));
    l.run_for(settle);
    bool eof = false;
    CHECK(kal::testing::drain(fd, eof).rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
    CHECK(eof); // the server's FIN, right after the answer
    return fd;
  }
  // Sends all of `data` without blocking the loop; false if the server reset the connection.
  bool send_all(int fd, const std::string &data) {
    size_t off = 0;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (off < data.size() && std::chrono::steady_clock::now() < deadline) {
      ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n > 0) {
        off += static_cast<size_t>(n);
      } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
        return false;
      }
      l.run_for(std::chrono::milliseconds(2));
    }
    return off == data.size();
  }
  // Reads until EOF (or 5 s); `reset` tells whether it ended in a reset.
  std::string read_to_eof(int fd, bool &reset) {
    std::string got;
    bool eof = false;
    reset = false;
    l.run_until(
        [&] {
          char buf[4096];
          for (;;) {
            ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
            if (n > 0) {
              got.append(buf, static_cast<size_t>(n));
              continue;
            }
            if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
              eof = true;
              reset = n < 0;
            }
            return eof;
          }
        },
        std::chrono::seconds(5));
    return got;
  }
};

} // namespace

TEST_CASE("admin server: a peer still sending its oversized head gets the 431 whole, no reset") {
  LiveAdmin a;
  int fd = kal::testing::connect_to(a.port);
  REQUIRE(fd >= 0);
  // 16 KiB of head (the limit is 8 KiB), then 64 KiB more while the answer is already out.
  std::string head = "GET /healthz HTTP/1.1\r\nX-Big: " + std::string(16 * 1024, 'a');
  CHECK(a.send_all(fd, head));
  a.l.run_for(std::chrono::milliseconds(100));
  CHECK_MESSAGE(a.send_all(fd, std::string(64 * 1024, 'b')),
                "the server reset the connection while the peer was still sending");
  shutdown(fd, SHUT_WR);
  bool reset = false;
  std::string got = a.read_to_eof(fd, reset);
  CHECK_FALSE(reset);
  CHECK(got.rfind("HTTP/1.1 431 Request Header Fields Too Large\r\n", 0) == 0);
  close(fd);
}

TEST_CASE("admin server: after its answer it waits for the peer's FIN, 2 s at most") {
  LiveAdmin a;
  // The peer neither reads nor closes: the server's half-close comes with the answer, and its
  // close after the linger (nothing the peer sent is left unread, so no reset).
  int fd = a.answered("GET /healthz HTTP/1.1\r\n\r\nextra bytes after the request",
                      std::chrono::milliseconds(300));
  CHECK(a.l.run_until([&] { return a.s->connections() == 0; }, std::chrono::seconds(4)));
  close(fd);
}

TEST_CASE("admin server: a peer that half-closes after its request still gets a large answer") {
  LiveAdmin a;
  // Far more than the loopback socket buffers hold, so the answer is still being written when
  // the peer's FIN is read.
  a.metrics = std::string(8 * 1024 * 1024, 'm');
  int fd = kal::testing::connect_to(a.port);
  REQUIRE(fd >= 0);
  CHECK(a.send_all(fd, "GET /metrics HTTP/1.1\r\n\r\n"));
  shutdown(fd, SHUT_WR);
  a.l.run_for(std::chrono::milliseconds(300)); // the server reads the FIN; the peer reads nothing
  bool reset = false;
  std::string got = a.read_to_eof(fd, reset);
  CHECK_FALSE(reset);
  CHECK(got.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  auto body = got.find("\r\n\r\n");
  REQUIRE(body != std::string::npos);
  CHECK(got.size() - body - 4 == a.metrics.size());
  close(fd);
  CHECK(a.l.run_until([&] { return a.s->connections() == 0; }, std::chrono::seconds(1)));
}

TEST_CASE("admin server: closing the server closes a lingering connection") {
  LiveAdmin a;
  int fd = a.answered("GET /healthz HTTP/1.1\r\n\r\n", std::chrono::milliseconds(100));
  REQUIRE(a.s->connections() == 1); // half-closed, waiting for the peer's FIN
  a.s->close();
  CHECK(a.s->connections() == 0);
  close(fd);
}

TEST_CASE("admin server: / is the status page with its CSP and nosniff; loopback only in drop-in") {
  AdminHandlers h;
  h.status_page = [] { return std::string("<!doctype html>page"); };
  h.status_page_csp = "default-src 'none'";
  h.stats = [] { return std::string("{\n  \"a\": 1\n}\n"); };
  h.stats_compact = [] { return std::string("{\"a\":1}\n"); };
  AdminServer s(nullptr, h, false);
  auto r = s.respond("GET / HTTP/1.1\r\n\r\n");
  CHECK(r.rfind("HTTP/1.1 200 OK", 0) == 0);
  CHECK(r.find("Content-Type: text/html; charset=utf-8\r\n") != std::string::npos);
  CHECK(r.find("Content-Security-Policy: default-src 'none'\r\n") != std::string::npos);
  CHECK(r.find("X-Content-Type-Options: nosniff\r\n") != std::string::npos);
  CHECK(r.find("\r\n\r\n<!doctype html>page") != std::string::npos);
  CHECK(s.respond("GET /stats?compact=1 HTTP/1.1\r\n\r\n").find("{\"a\":1}") != std::string::npos);
  CHECK(s.respond("GET /stats HTTP/1.1\r\n\r\n").find("\"a\": 1") != std::string::npos);
  AdminServer dropin(nullptr, h, true);
  CHECK(dropin.respond("GET / HTTP/1.1\r\n\r\n", false).rfind("HTTP/1.1 404", 0) == 0);
  CHECK(dropin.respond("GET / HTTP/1.1\r\n\r\n", true).rfind("HTTP/1.1 200", 0) == 0);
}
