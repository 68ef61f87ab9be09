#include "kube_api_lb/config/nginx_conf.h"

#include "config_test_data.h"

#include <doctest/doctest.h>

#include <string>

using kal::Config;
using kal::HostPort;
using kal::Millis;
using kal_test::data;
using kal_test::slurp;
using kal_test::v4;
using kal_test::v6;

namespace {

Config parse_ok(const std::string &text, std::vector<std::string> *notes = nullptr) {
  auto r = kal::parse_nginx_conf(text, "nginx.conf", {}, notes);
  REQUIRE_MESSAGE(r.ok(), r.error());
  return *r;
}

// What Kubespray's rendered nginx.conf means to kube-api-lb.
Config kubespray_expected() {
  Config c;
  c.source = "nginx.conf";
  c.listen = {v4("127.0.0.1", 6443)};
  c.endpoints = {v4("192.168.10.11", 6443), v4("192.168.10.12", 6443), v4("192.168.10.13", 6443)};
  c.policy = kal::Policy::LeastConn;
  c.connect_timeout = Millis{1000};
  c.idle_timeout = Millis{600000};
  c.shutdown_grace = Millis{10000};
  c.admin.healthz_listen = {v4("0.0.0.0", 8081)};
  c.admin.listen = {}; // 127.0.0.1:8081 would collide with the health port
  return c;
}

bool has_note(const std::vector<std::string> &notes, const std::string &text) {
  for (const auto &n : notes) {
    if (n == text) {
      return true;
    }
  }
  return false;
}

} // namespace

TEST_CASE("nginx: Kubespray's rendered nginx.conf") {
  std::vector<std::string> notes;
  Config c = parse_ok(data("kubespray/nginx.conf"), &notes);
  Config want = kubespray_expected();
  CHECK(c.listen == want.listen);
  CHECK(c.endpoints == want.endpoints);
  CHECK(c.admin == want.admin);
  CHECK(c.health == Config{}.health); // nginx.conf has no active checks: our defaults
  CHECK(c == want);
  CHECK(has_note(notes, "nginx.conf:3:1: ignored \"worker_processes\" (nginx process setting)"));
  CHECK(has_note(notes, "nginx.conf:5:1: \"worker_shutdown_timeout\" sets shutdownGrace to 10s"));
  CHECK(has_note(notes, "nginx.conf:7:1: ignored \"events\" (connection processing is "
                        "kube-api-lb's own)"));
  CHECK(has_note(notes, "nginx.conf:30:3: ignored \"aio\" in http (HTTP settings do not apply)"));
  CHECK(has_note(notes, "nginx.conf:43:5: location /healthz is served by kube-api-lb itself "
                        "(always 200 while running)"));
  CHECK(has_note(notes, "nginx.conf:47:5: location /stub_status ignored (the health port serves "
                        "only /healthz)"));
  CHECK(has_note(notes,
                 "nginx.conf: admin listener 127.0.0.1:8081 not opened: a drop-in binds only "
                 "the ports its file names; /readyz, /metrics and /stats are served on the "
                 "health port 0.0.0.0:8081 to loopback clients (set admin.listen in a "
                 "kube-api-lb config file for a separate one)"));

  SUBCASE("the shared reference copy, when present, is the same file") {
    auto ref = slurp(std::string(KAL_SOURCE_DIR) + "/../shared/reference/kubespray/nginx.conf");
    if (ref) {
      CHECK(parse_ok(*ref) == want);
    }
  }
}

TEST_CASE("nginx: variants") {
  SUBCASE("dual-stack") {
    Config c = parse_ok(data("nginx/dualstack.conf"));
    Config want = kubespray_expected();
    want.listen = {v4("127.0.0.1", 6443), v6("::1", 6443)};
    want.endpoints = {v6("fd00:10::11", 6443), v6("fd00:10::12", 6443), v4("192.168.10.13", 6443)};
    want.admin.healthz_listen = {v4("0.0.0.0", 8081), v6("::", 8081)};
    CHECK(c == want);
  }
  SUBCASE("another port, round-robin") {
    Config c = parse_ok(data("nginx/other-port.conf"));
    Config want = kubespray_expected();
    want.listen = {v4("127.0.0.1", 16443)};
    want.endpoints = {v4("10.1.0.21", 8443), v4("10.1.0.22", 8443)};
    want.policy = kal::Policy::RoundRobin;
    want.idle_timeout = Millis{1800000};
    want.connect_timeout = Millis{500};
    want.shutdown_grace = Millis{30000};
    want.admin.healthz_listen = {v4("0.0.0.0", 18081)};
    // The health port moved off 8081: still no admin port of the drop-in's own there (something
    // else may hold 8081 on such a node); the health port serves /metrics to loopback clients.
    CHECK(c == want);
  }
  SUBCASE("no health server, random two, a server marked down") {
    std::vector<std::string> notes;
    Config c = parse_ok(data("nginx/no-health.conf"), &notes);
    Config want;
    want.source = "nginx.conf";
    want.admin.listen = {}; // no health port either: no admin listener at all
    want.endpoints = {v4("192.168.10.11", 6443), v4("192.168.10.12", 6443)};
    want.policy = kal::Policy::RandomTwo;
    CHECK(c == want);
    CHECK(has_note(notes, "nginx.conf:14:5: server 192.168.10.13:6443 is marked \"down\": left "
                          "out of the endpoints"));
    CHECK(has_note(notes, "nginx.conf:13:31: ignored \"max_fails=3\" on server 192.168.10.12:6443 "
                          "(passive failure counting is replaced by active health checks)"));
  }
  SUBCASE("comments, odd whitespace and Jinja blank lines") {
    CHECK(parse_ok(data("nginx/comments.conf")) == kubespray_expected());
  }
  SUBCASE("CRLF line endings") { CHECK(parse_ok(data("nginx/crlf.conf")) == kubespray_expected()); }
}

TEST_CASE("nginx: mapping details") {
  const std::string up = "stream { upstream u { server 10.0.0.1:6443; } server { listen "
                         "127.0.0.1:6443; proxy_pass u; ";
  SUBCASE("stream-level timeouts are inherited, server-level ones win") {
    Config c = parse_ok("stream { proxy_timeout 5m; proxy_connect_timeout 2s;\n"
                        "upstream u { server 10.0.0.1:6443; }\n"
                        "server { listen 6443; proxy_pass u; proxy_connect_timeout 3s; } }\n");
    CHECK(c.idle_timeout == Millis{300000});
    CHECK(c.connect_timeout == Millis{3000});
    CHECK(c.listen == std::vector<HostPort>{v4("0.0.0.0", 6443)});
  }
  SUBCASE("absent timeouts keep kube-api-lb's defaults") {
    Config c = parse_ok(up + "} }");
    CHECK(c.idle_timeout == Config{}.idle_timeout);
    CHECK(c.connect_timeout == Config{}.connect_timeout);
    CHECK(c.policy == kal::Policy::RoundRobin);
    CHECK(c.admin.healthz_listen.empty());
    CHECK(c.admin.listen.empty());
  }
  SUBCASE("proxy_pass straight to an address") {
    Config c = parse_ok("stream { server { listen 127.0.0.1:6443; proxy_pass "
                        "cp.example.com:6443; } }");
    CHECK(c.endpoints ==
          std::vector<HostPort>{HostPort{"cp.example.com", 6443, HostPort::Kind::Name}});
  }
  SUBCASE("two stream servers to the same upstream merge their listens") {
    Config c = parse_ok("stream { upstream u { server 10.0.0.1:6443; }\n"
                        "server { listen 127.0.0.1:6443; proxy_pass u; }\n"
                        "server { listen [::1]:6443; proxy_pass u; } }");
    CHECK(c.listen == std::vector<HostPort>{v4("127.0.0.1", 6443), v6("::1", 6443)});
  }
  SUBCASE("equal weights, plain random, *:port, quoted escapes") {
    Config c = parse_ok("stream { upstream u { random; server 10.0.0.1:6443 weight=5;\n"
                        "server \"10.0.0.2:6443\" weight=5; }\n"
                        "server { listen *:7443 reuseport backlog=100; proxy_pass u; "
                        "tcp_nodelay on; proxy_protocol off; ssl_preread off; } }");
    CHECK(c.policy == kal::Policy::RandomTwo);
    CHECK(c.endpoints.size() == 2);
    CHECK(c.listen == std::vector<HostPort>{v4("0.0.0.0", 7443)});
  }
  SUBCASE("a specific http listen under a wildcard one is left to the wildcard") {
    std::vector<std::string> notes;
    Config c = parse_ok(up + "} }\nhttp { server { listen 8081; listen 127.0.0.1:8081; "
                             "listen [::]:8081; } }",
                        &notes);
    CHECK(c.admin.healthz_listen == std::vector<HostPort>{v4("0.0.0.0", 8081), v6("::", 8081)});
    CHECK(has_note(notes, "nginx.conf:2:37: http listen 127.0.0.1:8081 is covered by a wildcard "
                          "listen on the same port; left to it"));
  }
  SUBCASE("a base from flags is kept where nginx.conf is silent") {
    Config base;
    base.health.mode = kal::HealthMode::Tcp;
    base.workers = 2;
    auto r = kal::parse_nginx_conf(up + "} }", "x.conf", base);
    REQUIRE(r.ok());
    CHECK(r->health.mode == kal::HealthMode::Tcp);
    CHECK(r->workers == 2);
    CHECK(r->source == "x.conf");
  }
}

TEST_CASE("nginx: malformed and unsupported files fail with line and column") {
  struct Case {
    std::string text;
    std::string error;
  };
  const std::string head = "stream {\n  upstream u {\n    server 10.0.0.1:6443;\n  }\n";
  const std::string srv = "  server {\n    listen 127.0.0.1:6443;\n    proxy_pass u;\n";
  const Case cases[] = {
      // Syntax.
      {"stream {\n  server { listen 1; }\n",
       "nginx.conf:1:1: block \"stream\" opened here is never closed (missing \"}\")"},
      {"events { }\n}\n", "nginx.conf:2:1: unexpected \"}\" with no block to close"},
      {"worker_processes 2\n", "nginx.conf:1:1: unexpected end of file: directive "
                               "\"worker_processes\" is missing its \";\""},
      {"events {\n  use epoll\n}\n",
       "nginx.conf:3:1: unexpected \"}\": directive \"use\" (line 2) is missing its \";\""},
      {";\n", "nginx.conf:1:1: unexpected \";\" where a directive name was expected"},
      {"error_log \"stderr;\n", "nginx.conf:1:11: unterminated string: the quote opened here is "
                                "never closed"},
      {"error_log \"stderr\"x;\n", "nginx.conf:1:19: unexpected \"x\" after a quoted string"},
      // Structure.
      {"events { }\n", "nginx.conf:1:1: no \"stream\" block: nothing to proxy (expected stream { "
                       "upstream ... { server ...; } server { listen ...; proxy_pass ...; } })"},
      {"stream;\n", "nginx.conf:1:1: \"stream\" must be a block: stream { ... }"},
      {"stream { }\n", "nginx.conf:1:1: the \"stream\" block has no \"server\": nothing to proxy"},
      {"foo bar;\n" + head + srv + "  }\n}\n",
       "nginx.conf:1:1: unknown directive \"foo\" at the top level"},
      {"include /etc/nginx/conf.d/*.conf;\n",
       "nginx.conf:1:1: \"include\" is not supported: include files are not read; put everything "
       "in one file"},
      // Stream server.
      {head + "  server {\n    proxy_pass u;\n  }\n}\n",
       "nginx.conf:5:3: stream server has no \"listen\""},
      {head + "  server {\n    listen 127.0.0.1:6443;\n  }\n}\n",
       "nginx.conf:5:3: stream server has no \"proxy_pass\""},
      {head + srv + "    ssl_preread on;\n  }\n}\n",
       "nginx.conf:8:5: \"ssl_preread\" is not supported: kube-api-lb does not route on TLS SNI"},
      {head + srv + "    proxy_protocol on;\n  }\n}\n",
       "nginx.conf:8:5: \"proxy_protocol\" is not supported: kube-api-lb does not send the PROXY "
       "protocol header"},
      {head + srv + "    proxy_ssl_verify on;\n  }\n}\n",
       "nginx.conf:8:5: \"proxy_ssl_verify\" is not supported: kube-api-lb passes TLS through "
       "untouched"},
      {head + srv + "    frobnicate on;\n  }\n}\n",
       "nginx.conf:8:5: directive \"frobnicate\" is not supported in a stream server"},
      {head + srv + "    proxy_timeout 10x;\n  }\n}\n",
       "nginx.conf:8:19: \"proxy_timeout\": time \"10x\" has unknown unit \"x\" (nginx units: ms, "
       "s, m, h, d, w)"},
      {head + srv + "    proxy_connect_timeout 0;\n  }\n}\n",
       "nginx.conf:8:27: \"proxy_connect_timeout\": must be greater than 0"},
      {head + srv + "    proxy_timeout;\n  }\n}\n",
       "nginx.conf:8:5: \"proxy_timeout\" takes 1 argument, got 0"},
      {head + srv + "    proxy_pass v;\n  }\n}\n",
       "nginx.conf:8:5: \"proxy_pass\" is given twice in one server"},
      {head + "  server {\n    listen 127.0.0.1:6443;\n    proxy_pass nowhere;\n  }\n}\n",
       "nginx.conf:7:16: proxy_pass \"nowhere\" names no upstream block and is not HOST:PORT"},
      {head + "  server {\n    listen 127.0.0.1:6443;\n    proxy_pass $upstream;\n  }\n}\n",
       "nginx.conf:7:16: proxy_pass \"$upstream\": variables are not supported"},
      {head + "  server {\n    listen 127.0.0.1:6443 udp;\n    proxy_pass u;\n  }\n}\n",
       "nginx.conf:6:27: listen 127.0.0.1:6443: \"udp\" is not supported (kube-api-lb proxies TCP "
       "only)"},
      {head + "  server {\n    listen 127.0.0.1:6443 ssl;\n    proxy_pass u;\n  }\n}\n",
       "nginx.conf:6:27: listen 127.0.0.1:6443: \"ssl\" is not supported (kube-api-lb does not "
       "terminate TLS)"},
      {head + "  server {\n    listen 127.0.0.1:99999;\n    proxy_pass u;\n  }\n}\n",
       "nginx.conf:6:12: listen: address \"127.0.0.1:99999\": port 99999 out of range (1-65535)"},
      {head + "  server {\n    listen 127.0.0.1;\n    proxy_pass u;\n  }\n}\n",
       "nginx.conf:6:12: listen: address \"127.0.0.1\": missing port (expected host:port)"},
      {head + "  server {\n    listen 6443-6445;\n    proxy_pass u;\n  }\n}\n",
       "nginx.conf:6:12: listen \"6443-6445\": port ranges are not supported"},
      {head + "  server {\n    listen unix:/run/x.sock;\n    proxy_pass u;\n  }\n}\n",
       "nginx.conf:6:12: listen \"unix:/run/x.sock\": UNIX sockets are not supported"},
      {head + srv +
           "  }\n  server {\n    listen [::1]:6443;\n    proxy_pass w;\n  }\n"
           "  upstream w { server 10.0.0.9:6443; }\n}\n",
       "nginx.conf:11:16: stream servers proxy to different upstreams (\"u\" at line 7, \"w\" "
       "here): kube-api-lb has one endpoint set"},
      {head + srv +
           "  }\n  server {\n    listen [::1]:6443;\n    proxy_pass u;\n"
           "    proxy_timeout 1m;\n  }\n}\n",
       "nginx.conf:9:3: stream servers use different proxy timeouts (line 5 and here); "
       "kube-api-lb has one set"},
      {head + srv + "  }\n  server {\n    listen 0.0.0.0:6443;\n    proxy_pass u;\n  }\n}\n",
       "nginx.conf:10:12: listen 0.0.0.0:6443 overlaps listen 127.0.0.1:6443 (line 6)"},
      {head + "  server {\n    listen 127.0.0.1:6443;\n    listen *:6443;\n    proxy_pass u;\n  "
              "}\n}\n",
       "nginx.conf:7:12: listen 0.0.0.0:6443 overlaps listen 127.0.0.1:6443 (line 6)"},
      // Upstream.
      {"stream {\n  upstream u {\n    hash $remote_addr consistent;\n    server 10.0.0.1:6443;\n"
       "  }\n}\n",
       "nginx.conf:3:5: \"hash\" is not supported: kube-api-lb balances by connections, not by key "
       "(use least_conn, random two, or round-robin)"},
      {"stream {\n  upstream u {\n    least_conn;\n    random two;\n    server 10.0.0.1:6443;\n"
       "  }\n}\n",
       "nginx.conf:4:5: upstream \"u\": load-balancing method redefined (first at line 3)"},
      {"stream {\n  upstream u {\n    random two least_time=connect;\n  }\n}\n",
       "nginx.conf:3:5: \"random least_time=connect\" is not supported (kube-api-lb supports "
       "\"random\" and \"random two [least_conn]\")"},
      {"stream {\n  upstream u {\n    server 10.0.0.1:6443;\n    server 10.0.0.2:6443 backup;\n"
       "  }\n}\n",
       "nginx.conf:4:26: server 10.0.0.2:6443: \"backup\" is not supported (backup servers would "
       "receive traffic like the others); remove the server or the parameter"},
      {"stream {\n  upstream u {\n    server 10.0.0.1:6443 weight=2;\n    server 10.0.0.2:6443;\n"
       "  }\n}\n",
       "nginx.conf:4:5: server weights differ (2 at line 3, 1 here): weighted balancing is not "
       "supported"},
      {"stream {\n  upstream u {\n    server 10.0.0.1:6443 max_conns=100;\n  }\n}\n",
       "nginx.conf:3:26: server 10.0.0.1:6443: \"max_conns\" is not supported (kube-api-lb does "
       "not "
       "cap connections per endpoint)"},
      {"stream {\n  upstream u {\n    server 10.0.0.1:6443 resolve;\n  }\n}\n",
       "nginx.conf:3:26: server 10.0.0.1:6443: parameter \"resolve\" is not supported"},
      {"stream {\n  upstream u {\n    server 10.0.0.1;\n  }\n}\n",
       "nginx.conf:3:12: server: address \"10.0.0.1\": missing port (expected host:port)"},
      {"stream {\n  upstream u {\n    server fd00::1:6443;\n  }\n}\n",
       "nginx.conf:3:12: server: address \"fd00::1:6443\": IPv6 addresses must be written in "
       "brackets, as [::1]:6443"},
      {"stream {\n  upstream u {\n    server 10.0.0.1:6443;\n    server 10.0.0.1:6443;\n"
       "  }\n}\n",
       "nginx.conf:4:12: duplicate server 10.0.0.1:6443 in upstream"},
      {"stream {\n  upstream u {\n  }\n}\n", "nginx.conf:2:3: upstream \"u\" has no servers"},
      {"stream {\n  upstream u {\n    server 10.0.0.1:6443 down;\n  }\n}\n",
       "nginx.conf:2:3: upstream \"u\" has no servers"},
      {"stream {\n  upstream u { server 10.0.0.1:6443; }\n  upstream u { server 10.0.0.2:6443; "
       "}\n}\n",
       "nginx.conf:3:3: upstream \"u\" is defined twice (first at line 2)"},
      // http health server.
      {head + srv + "  }\n}\nhttp {\n  server {\n    listen 8081 ssl;\n  }\n}\n",
       "nginx.conf:12:17: listen 8081: \"ssl\" is not supported (kube-api-lb does not terminate "
       "TLS)"},
      {head + srv + "  }\n}\nhttp {\n  server {\n    location /healthz { return 200; }\n  }\n}\n",
       "nginx.conf:11:3: http server has no \"listen\" (nginx would use port 80; write the port)"},
      {head + srv + "  }\n}\nhttp {\n  server {\n    listen 127.0.0.1:6443;\n  }\n}\n",
       "nginx.conf:12:12: http listen 127.0.0.1:6443 overlaps stream listen 127.0.0.1:6443"},
  };
  for (const auto &c : cases) {
    CAPTURE(c.text);
    auto r = kal::parse_nginx_conf(c.text, "nginx.conf");
    REQUIRE_FALSE(r.ok());
    CHECK(r.error() == c.error);
  }
}

TEST_CASE("nginx: time values") {
  struct Case {
    const char *text;
    int64_t ms; // -1: error
  };
  const Case cases[] = {{"10m", 600000},
                        {"1s", 1000},
                        {"500ms", 500},
                        {"30", 30000},
                        {"1h 30m", 5400000},
                        {"1h30m", 5400000},
                        {"2d", 172800000},
                        {"1w", 604800000},
                        {"0", 0},
                        {"", -1},
                        {"abc", -1},
                        {"5y", -1},
                        {"-1s", -1},
                        {"99999999999999999999", -1}};
  for (const auto &c : cases) {
    CAPTURE(c.text);
    auto r = kal::parse_nginx_time(c.text);
    if (c.ms < 0) {
      CHECK_FALSE(r.ok());
    } else {
      REQUIRE_MESSAGE(r.ok(), r.error());
      CHECK(r->count() == c.ms);
    }
  }
}

TEST_CASE("nginx: listen localhost means 127.0.0.1; other host names are errors") {
  Config c = parse_ok("stream {\n  server {\n    listen localhost:6443;\n"
                      "    proxy_pass cp1.example:6443;\n  }\n}\n"
                      "http {\n  server {\n    listen localhost:8081;\n  }\n}\n");
  CHECK(c.listen == std::vector<HostPort>{v4("127.0.0.1", 6443)});
  CHECK(c.admin.healthz_listen == std::vector<HostPort>{v4("127.0.0.1", 8081)});
  CHECK(c.endpoints ==
        std::vector<HostPort>{HostPort{"cp1.example", 6443, HostPort::Kind::Name}}); // resolved
  auto r = kal::parse_nginx_conf("stream {\n  server {\n    listen cp1.example:6443;\n"
                                 "    proxy_pass 10.0.0.1:6443;\n  }\n}\n",
                                 "nginx.conf");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error() == "nginx.conf:3:12: listen: cp1.example:6443 is not an IP address (listen "
                     "addresses must be IP addresses or localhost)");
}

TEST_CASE("nginx: a problem of the whole configuration points at its upstream block") {
  std::string text = "stream {\n  upstream kube_apiserver {\n";
  for (int i = 1; i <= 65; ++i) {
    text += "    server 10.0.1." + std::to_string(i) + ":6443;\n";
  }
  text += "  }\n  server {\n    listen 127.0.0.1:6443;\n    proxy_pass kube_apiserver;\n  }\n}\n";
  auto r = kal::parse_nginx_conf(text, "nginx.conf");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().rfind("nginx.conf:2:3: too many endpoints: 65", 0) == 0);
}
