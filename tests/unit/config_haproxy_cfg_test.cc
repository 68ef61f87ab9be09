#include "kube_api_lb/config/haproxy_cfg.h"

#include "config_test_data.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <string>

using kal::Config;
using kal::HostPort;
using kal::Millis;
using kal_test::data;
using kal_test::name;
using kal_test::slurp;
using kal_test::v4;
using kal_test::v6;

namespace {

Config parse_ok(const std::string &text, std::vector<std::string> *notes = nullptr) {
  auto r = kal::parse_haproxy_cfg(text, "haproxy.cfg", {}, notes);
  REQUIRE_MESSAGE(r.ok(), r.error());
  return *r;
}

Config kubespray_expected() {
  Config c;
  c.source = "haproxy.cfg";
  c.listen = {v4("127.0.0.1", 6443)};
  c.endpoints = {v4("192.168.10.11", 6443), v4("192.168.10.12", 6443), v4("192.168.10.13", 6443)};
  c.policy = kal::Policy::LeastConn;
  c.connect_timeout = Millis{30000};
  c.health.mode = kal::HealthMode::Https;
  c.health.path = "/healthz";
  c.health.interval = Millis{15000};
  c.health.fast_interval = Millis{15000}; // HAProxy: fastinter defaults to inter
  c.health.down_interval = Millis{15000};
  c.health.timeout = Millis{30000}; // timeout check
  c.health.rise = 2;
  c.health.fall = 2;
  c.health.slow_start = Millis{60000};
  c.admin.healthz_listen = {v4("0.0.0.0", 8081)};
  c.admin.listen = {};
  return c;
}

bool has_note(const std::vector<std::string> &notes, const std::string &text) {
  return std::find(notes.begin(), notes.end(), text) != notes.end();
}

} // namespace

TEST_CASE("haproxy: Kubespray's rendered haproxy.cfg") {
  std::vector<std::string> notes;
  Config c = parse_ok(data("kubespray/haproxy.cfg"), &notes);
  Config want = kubespray_expected();
  CHECK(c.listen == want.listen);
  CHECK(c.endpoints == want.endpoints);
  CHECK(c.health == want.health);
  CHECK(c.admin == want.admin);
  CHECK(c == want);
  CHECK(
      has_note(notes, "haproxy.cfg:2:5: ignored \"maxconn\" in global (HAProxy process setting)"));
  CHECK(has_note(notes, "haproxy.cfg:16:5: ignored \"timeout client\" in defaults (kube-api-lb's "
                        "idleTimeout applies: none by default, so watches live)"));
  CHECK(has_note(notes, "haproxy.cfg:37:70: default-server: ignored \"maxconn\" (no per-endpoint "
                        "connection cap)"));
  CHECK(has_note(notes,
                 "haproxy.cfg: admin listener 127.0.0.1:8081 not opened: a drop-in binds only "
                 "the ports its file names; /readyz, /metrics and /stats are served on the "
                 "health port 0.0.0.0:8081 to loopback clients (set admin.listen in a "
                 "kube-api-lb config file for a separate one)"));

  SUBCASE("the shared reference copy, when present, is the same file") {
    auto ref = slurp(std::string(KAL_SOURCE_DIR) + "/../shared/reference/kubespray/haproxy.cfg");
    if (ref) {
      CHECK(parse_ok(*ref) == want);
    }
  }
}

TEST_CASE("haproxy: variants") {
  SUBCASE("dual-stack with Kubespray's stray semicolon (issue #12793)") {
    std::vector<std::string> notes;
    Config c = parse_ok(data("haproxy/dualstack.cfg"), &notes);
    Config want = kubespray_expected();
    want.listen = {v4("127.0.0.1", 6443), v6("::1", 6443)};
    want.endpoints = {v6("fd00:10::11", 6443), v6("fd00:10::12", 6443), v4("192.168.10.13", 6443)};
    want.admin.healthz_listen = {v4("0.0.0.0", 8081), v6("::", 8081)};
    CHECK(c == want);
    CHECK(has_note(notes, "haproxy.cfg:31:3: stray \";\" at the end of the line ignored "
                          "(Kubespray issue #12793)"));
  }
  SUBCASE("another port, random, plain check with per-server intervals, no monitor") {
    Config c = parse_ok(data("haproxy/other-port.cfg"));
    Config want;
    want.source = "haproxy.cfg";
    want.admin.listen = {}; // no monitor section either: no admin listener at all
    want.listen = {v4("127.0.0.1", 16443)};
    want.endpoints = {v4("10.1.0.21", 8443), v4("10.1.0.22", 8443)};
    want.policy = kal::Policy::RandomTwo;
    want.connect_timeout = Millis{750};
    want.health.mode = kal::HealthMode::Tcp;
    want.health.interval = Millis{3000};
    want.health.fast_interval = Millis{1000};
    want.health.down_interval = Millis{3000};
    want.health.rise = 3;
    want.health.fall = 5;
    CHECK(c == want);
  }
  SUBCASE("no check, balance first, a disabled server, bind :port") {
    std::vector<std::string> notes;
    Config c = parse_ok(data("haproxy/no-check.cfg"), &notes);
    Config want;
    want.source = "haproxy.cfg";
    want.admin.listen = {}; // a drop-in opens no admin port of its own
    want.listen = {v4("0.0.0.0", 6443)};
    want.endpoints = {v4("10.0.0.1", 6443), v4("10.0.0.2", 6443)};
    want.policy = kal::Policy::First;
    want.health.mode = kal::HealthMode::None;
    CHECK(c == want);
    CHECK(has_note(notes, "haproxy.cfg:12:3: server c is disabled: left out of the endpoints"));
  }
  SUBCASE("listen section, TLS checks with CA, client certificate and SNI") {
    Config c = parse_ok(data("haproxy/tls.cfg"));
    Config want;
    want.source = "haproxy.cfg";
    want.admin.listen = {};
    want.listen = {v4("127.0.0.1", 6443), v6("::1", 6443)};
    want.endpoints = {name("cp1.example.com", 6443), name("cp2.example.com", 6443)};
    want.policy = kal::Policy::RoundRobin;
    want.connect_timeout = Millis{2000};
    want.health.mode = kal::HealthMode::Tls;
    want.health.interval = Millis{2000};
    want.health.fast_interval = Millis{2000};
    want.health.down_interval = Millis{4000};
    want.health.timeout = Millis{3000};
    want.health.ca_file = "/etc/kubernetes/pki/ca.crt";
    want.health.client_cert = "/etc/kal/client.pem";
    want.health.client_key = "/etc/kal/client.pem";
    want.health.server_name = "kubernetes";
    CHECK(c == want);
  }
  SUBCASE("comments, tabs, odd indentation, quotes") {
    CHECK(parse_ok(data("haproxy/comments.cfg")) == kubespray_expected());
  }
}

TEST_CASE("haproxy: mapping details") {
  const std::string fe = "frontend f\n  mode tcp\n  bind 127.0.0.1:6443\n  default_backend b\n";
  SUBCASE("balance spellings") {
    struct Case {
      const char *balance;
      kal::Policy want;
    };
    for (auto c :
         {Case{"leastconn", kal::Policy::LeastConn}, Case{"roundrobin", kal::Policy::RoundRobin},
          Case{"static-rr", kal::Policy::RoundRobin}, Case{"first", kal::Policy::First},
          Case{"random", kal::Policy::RandomTwo}, Case{"random(3)", kal::Policy::RandomTwo}}) {
      CAPTURE(c.balance);
      Config r = parse_ok(fe + "backend b\n  mode tcp\n  balance " + c.balance +
                          "\n  server a 10.0.0.1:6443\n");
      CHECK(r.policy == c.want);
    }
    CHECK(parse_ok(fe + "backend b\n  server a 10.0.0.1:6443\n").policy == kal::Policy::RoundRobin);
  }
  SUBCASE("timeout client-fin and server-fin are noted with the setting that applies") {
    std::vector<std::string> notes;
    parse_ok("defaults\n  timeout client-fin 30s\n  timeout server-fin 1m\n" + fe +
                 "backend b\n  server a 10.0.0.1:6443\n",
             &notes);
    CHECK(has_note(notes, "haproxy.cfg:2:3: ignored \"timeout client-fin\" in defaults "
                          "(kube-api-lb's halfClosedTimeout applies: 5m by default)"));
    CHECK(has_note(notes, "haproxy.cfg:3:3: ignored \"timeout server-fin\" in defaults "
                          "(kube-api-lb's halfClosedTimeout applies: 5m by default)"));
  }
  SUBCASE("option httpchk forms and http-check send") {
    auto path = [&](const std::string &lines) {
      return parse_ok(fe + "backend b\n" + lines + "  server a 10.0.0.1:6443 check check-ssl\n")
          .health.path;
    };
    CHECK(path("  option httpchk GET /readyz\n") == "/readyz");
    CHECK(path("  option httpchk GET /livez HTTP/1.1\n") == "/livez");
    CHECK(path("  option httpchk /version\n") == "/version");
    CHECK(path("  option httpchk\n") == "/");
    CHECK(path("  option httpchk\n  http-check send meth GET uri /readyz ver HTTP/1.1\n") ==
          "/readyz");
  }
  SUBCASE("time units") {
    struct Case {
      const char *text;
      int64_t ms;
    };
    for (auto c :
         {Case{"1500", 1500}, Case{"1500ms", 1500}, Case{"2s", 2000}, Case{"1m", 60000},
          Case{"1h", 3600000}, Case{"1d", 86400000}, Case{"1500us", 2}, Case{"0", 0}, Case{"", -1},
          Case{"2x", -1}, Case{"1m30s", -1}, Case{"-1s", -1}, Case{"s", -1}}) {
      CAPTURE(c.text);
      auto r = kal::parse_haproxy_time(c.text);
      if (c.ms < 0) {
        CHECK_FALSE(r.ok());
      } else {
        REQUIRE_MESSAGE(r.ok(), r.error());
        CHECK(r->count() == c.ms);
      }
    }
  }
  SUBCASE("defaults carry default-server and httpchk into the backend") {
    Config c = parse_ok("defaults\n  mode tcp\n  default-server inter 5s rise 4\n"
                        "  option httpchk GET /readyz\n" +
                        fe + "backend b\n  server a 10.0.0.1:6443 check check-ssl fall 6\n");
    CHECK(c.health.mode == kal::HealthMode::Https);
    CHECK(c.health.path == "/readyz");
    CHECK(c.health.interval == Millis{5000});
    CHECK(c.health.rise == 4);
    CHECK(c.health.fall == 6);
  }
  SUBCASE("httpchk with plain check degrades to tcp") {
    std::vector<std::string> notes;
    Config c = parse_ok(fe + "backend b\n  option httpchk GET /healthz\n"
                             "  server a 10.0.0.1:6443 check\n",
                        &notes);
    CHECK(c.health.mode == kal::HealthMode::Tcp);
    CHECK(has_note(notes, "haproxy.cfg:6:10: option httpchk without check-ssl: apiservers speak "
                          "only TLS, so plain-HTTP checks become TCP connect checks (add "
                          "check-ssl for HTTPS checks)"));
  }
  SUBCASE("a specific monitor bind under a wildcard one is left to the wildcard") {
    std::vector<std::string> notes;
    Config c = parse_ok("frontend h\n  bind :8081\n  bind 127.0.0.1:8081\n  mode http\n"
                        "  monitor-uri /healthz\n" +
                            fe + "backend b\n  server a 10.0.0.1:6443\n",
                        &notes);
    CHECK(c.admin.healthz_listen == std::vector<HostPort>{v4("0.0.0.0", 8081)});
    CHECK(has_note(notes, "haproxy.cfg:3:8: monitor bind 127.0.0.1:8081 is covered by a wildcard "
                          "bind on the same port; left to it"));
  }
  SUBCASE("unused sections are ignored") {
    std::vector<std::string> notes;
    Config c = parse_ok("resolvers dns\n  nameserver a 10.0.0.53:53\n" + fe +
                            "backend b\n  server a 10.0.0.1:6443\nbackend unused\n"
                            "  server z 10.9.9.9:1\nlisten stats\n  bind :9000\n  mode http\n"
                            "  stats enable\n",
                        &notes);
    CHECK(c.endpoints == std::vector<HostPort>{v4("10.0.0.1", 6443)});
    CHECK(has_note(notes, "haproxy.cfg:1:1: ignored section \"resolvers\" (not relevant to a TCP "
                          "proxy)"));
    CHECK(has_note(notes, "haproxy.cfg:9:1: backend \"unused\" is not used by any TCP frontend; "
                          "ignored"));
    CHECK(has_note(notes, "haproxy.cfg:11:1: ignored listen \"stats\" (HTTP statistics page)"));
  }
}

TEST_CASE("haproxy: malformed and unsupported files fail with line and column") {
  struct Case {
    std::string text;
    std::string error;
  };
  const std::string fe = "frontend f\n  mode tcp\n  bind 127.0.0.1:6443\n  default_backend b\n";
  const std::string be = "backend b\n  mode tcp\n";
  const Case cases[] = {
      {"", "haproxy.cfg:1:1: empty configuration: no sections"},
      {"# nothing\n\n", "haproxy.cfg:1:1: empty configuration: no sections"},
      {"  maxconn 10\nglobal\n",
       "haproxy.cfg:1:3: keyword \"maxconn\" outside of any section (expected global, defaults, "
       "frontend, backend or listen first)"},
      {"global\n", "haproxy.cfg:1:1: no TCP frontend: nothing to proxy (expected a frontend with "
                   "mode tcp, bind and default_backend)"},
      {fe + be + "  server a \"10.0.0.1:6443\n",
       "haproxy.cfg:7:12: unterminated quoted string: the quote opened here is never closed"},
      {fe, "haproxy.cfg:4:19: backend \"b\" is not defined"},
      {"frontend f\n  mode tcp\n  bind 127.0.0.1:6443\n" + be + "  server a 10.0.0.1:6443\n",
       "haproxy.cfg:1:1: frontend \"f\" has no default_backend"},
      {"frontend f\n  mode tcp\n  default_backend b\n" + be + "  server a 10.0.0.1:6443\n",
       "haproxy.cfg:1:1: frontend \"f\" has no bind"},
      {"frontend f\n  mode http\n  bind 127.0.0.1:6443\n  default_backend b\n" + be +
           "  server a 10.0.0.1:6443\n",
       "haproxy.cfg:1:1: frontend \"f\" is in mode http: kube-api-lb is a TCP proxy (use mode "
       "tcp)"},
      {fe + "backend b\n  mode http\n  server a 10.0.0.1:6443\n",
       "haproxy.cfg:5:1: backend \"b\" is in mode http: kube-api-lb is a TCP proxy (use mode tcp)"},
      {fe + be, "haproxy.cfg:5:1: backend \"b\" has no (enabled) servers"},
      {fe + be + "  balance source\n  server a 10.0.0.1:6443\n",
       "haproxy.cfg:7:11: balance \"source\" is not supported: kube-api-lb balances by "
       "connections, not by key (use leastconn, roundrobin, first or random)"},
      {fe + be + "  server a 10.0.0.1:6443 backup\n",
       "haproxy.cfg:7:26: server a: \"backup\" is not supported (backup servers would receive "
       "traffic like the others)"},
      {fe + be + "  server a 10.0.0.1:6443 ssl\n",
       "haproxy.cfg:7:26: server a: \"ssl\" is not supported (kube-api-lb passes TLS through and "
       "never originates it)"},
      {fe + be + "  server a 10.0.0.1:6443 send-proxy\n",
       "haproxy.cfg:7:26: server a: \"send-proxy\" is not supported (the PROXY protocol is not "
       "sent)"},
      {fe + be + "  server a 10.0.0.1:6443 check port 8080\n",
       "haproxy.cfg:7:32: server a: \"port\" is not supported (checks go to the endpoint's own "
       "port)"},
      {fe + be + "  server a 10.0.0.1:6443 frob\n",
       "haproxy.cfg:7:26: server a: parameter \"frob\" is not supported"},
      {fe + be + "  server a 10.0.0.1:6443 inter\n",
       "haproxy.cfg:7:26: server a: \"inter\" needs a value"},
      {fe + be + "  server a 10.0.0.1:6443 check inter 2x\n",
       "haproxy.cfg:7:38: server a inter: time \"2x\" has unknown unit \"x\" (HAProxy units: us, "
       "ms, s, m, h, d)"},
      {fe + be + "  server a 10.0.0.1:6443 check inter 0\n",
       "haproxy.cfg:7:38: server a inter: must be greater than 0"},
      {fe + be + "  server a 10.0.0.1:6443 check rise 0\n",
       "haproxy.cfg:7:37: server a rise: 0 is out of range (1-100)"},
      {fe + be + "  default-server fall x\n  server a 10.0.0.1:6443\n",
       "haproxy.cfg:7:23: default-server fall: expected a number, got \"x\""},
      {fe + be + "  server a 10.0.0.1\n",
       "haproxy.cfg:7:12: server a: address \"10.0.0.1\" has no port (HAProxy would reuse the "
       "client's port; write it out)"},
      {fe + be + "  server a 10.0.0.1:+1\n",
       "haproxy.cfg:7:12: server a: port offsets are not supported"},
      {fe + be + "  server a 10.0.0.1:99999\n",
       "haproxy.cfg:7:12: address \"10.0.0.1:99999\": port 99999 out of range (1-65535)"},
      {fe + be + "  server a\n", "haproxy.cfg:7:3: \"server\" needs an address"},
      {fe + be + "  server a 10.0.0.1:6443\n  server a 10.0.0.2:6443\n",
       "haproxy.cfg:8:10: server name \"a\" is used twice in backend \"b\""},
      {fe + be + "  server a 10.0.0.1:6443\n  server b 10.0.0.1:6443\n",
       "haproxy.cfg:8:12: server b: duplicate address 10.0.0.1:6443 (server a)"},
      {fe + be + "  server a 10.0.0.1:6443 check\n  server b 10.0.0.2:6443\n",
       "haproxy.cfg:8:3: server b: check differs from server a (line 7); kube-api-lb applies one "
       "health-check setting to every endpoint"},
      {fe + be +
           "  server a 10.0.0.1:6443 check inter 1s\n  server b 10.0.0.2:6443 check inter "
           "2s\n",
       "haproxy.cfg:8:3: server b: inter differs from server a (line 7); kube-api-lb applies one "
       "health-check setting to every endpoint"},
      {fe + be + "  server a 10.0.0.1:6443 weight 10\n  server b 10.0.0.2:6443\n",
       "haproxy.cfg:8:3: server b: weight differs from server a (line 7); kube-api-lb applies one "
       "health-check setting to every endpoint"},
      {fe + be + "  option httpchk POST /x\n  server a 10.0.0.1:6443\n",
       "haproxy.cfg:7:18: option httpchk: method \"POST\" is not supported (checks send GET)"},
      {fe + be + "  option httpchk GET healthz\n  server a 10.0.0.1:6443\n",
       "haproxy.cfg:7:10: option httpchk: path \"healthz\" must start with '/'"},
      {fe + be + "  http-check expect string ok\n  server a 10.0.0.1:6443\n",
       "haproxy.cfg:7:14: \"http-check expect\" supports only \"status 200\" (kube-api-lb expects "
       "200 from the check path)"},
      {fe + be + "  option mysql-check\n  server a 10.0.0.1:6443\n",
       "haproxy.cfg:7:10: option mysql-check is not supported (checks are TCP connect, TLS "
       "handshake or HTTPS GET)"},
      {fe + be + "  tcp-check connect\n  server a 10.0.0.1:6443\n",
       "haproxy.cfg:7:3: \"tcp-check\" rules are not supported (checks are TCP connect, TLS "
       "handshake or HTTPS GET)"},
      {fe + be + "  stick-table type ip size 1m\n  server a 10.0.0.1:6443\n",
       "haproxy.cfg:7:3: \"stick-table\" is not supported: it would change how connections are "
       "routed"},
      {fe + be + "  server a 10.0.0.1:6443 check check-ssl verify required\n",
       "haproxy.cfg:7:3: server a: \"verify required\" needs \"ca-file\""},
      {fe + be + "  frobnicate\n  server a 10.0.0.1:6443\n",
       "haproxy.cfg:7:3: unknown keyword \"frobnicate\" in backend"},
      {fe + be + "  bind :1\n", "haproxy.cfg:7:3: \"bind\" is not allowed in a backend section"},
      {"frontend f\n  mode tcp\n  bind 127.0.0.1:6443 ssl crt /x.pem\n  default_backend b\n",
       "haproxy.cfg:3:23: bind option \"ssl\" is not supported (kube-api-lb does not terminate "
       "TLS)"},
      {"frontend f\n  mode tcp\n  bind 127.0.0.1:6443 accept-proxy\n  default_backend b\n",
       "haproxy.cfg:3:23: bind option \"accept-proxy\" is not supported (the PROXY protocol is not "
       "accepted)"},
      {"frontend f\n  mode tcp\n  bind /run/x.sock\n",
       "haproxy.cfg:3:8: address \"/run/x.sock\" is not supported (TCP addresses only)"},
      {"frontend f\n  mode tcp\n  bind 127.0.0.1:6443-6450\n",
       "haproxy.cfg:3:8: address \"127.0.0.1:6443-6450\": port ranges are not supported"},
      {"frontend f\n  mode tcp\n  bind 127.0.0.1\n",
       "haproxy.cfg:3:8: address \"127.0.0.1\": missing port (expected ADDRESS:PORT)"},
      {"frontend f\n  mode tcp\n  bind 127.0.0.1:6443,127.0.0.1:6443\n",
       "haproxy.cfg:3:23: duplicate bind 127.0.0.1:6443 (first at line 3)"},
      {"frontend f\n  mode tcp\n  bind 127.0.0.1:6443\n  use_backend b if x\n",
       "haproxy.cfg:4:3: \"use_backend\" is not supported: kube-api-lb has one endpoint set (use "
       "default_backend)"},
      {"frontend f\n  mode tcp\n  bind 127.0.0.1:6443\n  tcp-request content reject\n",
       "haproxy.cfg:4:3: \"tcp-request\" is not supported: it would change how connections are "
       "routed"},
      {"frontend f\n  mode udp\n", "haproxy.cfg:2:8: mode \"udp\" is not supported (tcp or http)"},
      {fe + "frontend g\n  mode tcp\n  bind [::1]:6443\n  default_backend c\n" + be +
           "  server a 10.0.0.1:6443\n",
       "haproxy.cfg:8:19: frontend \"g\" sends to \"c\" but frontend \"f\" (line 1) sends to "
       "\"b\": "
       "kube-api-lb has one endpoint set"},
      {fe + "frontend g\n  mode tcp\n  bind 0.0.0.0:6443\n  default_backend b\n" + be +
           "  server a 10.0.0.1:6443\n",
       "haproxy.cfg:7:8: bind 0.0.0.0:6443 overlaps bind 127.0.0.1:6443 (line 3)"},
      {"frontend h\n  bind :8081\n  mode http\n  monitor-uri /health\n" + fe + be +
           "  server a 10.0.0.1:6443\n",
       "haproxy.cfg:4:15: monitor-uri \"/health\" is not supported: the health port serves "
       "/healthz"},
      {"frontend h\n  bind 127.0.0.1:6443\n  mode http\n  monitor-uri /healthz\n" + fe + be +
           "  server a 10.0.0.1:6443\n",
       "haproxy.cfg:2:8: monitor bind 127.0.0.1:6443 overlaps TCP bind 127.0.0.1:6443"},
      {"frontend h\n  bind :8081\n  monitor fail if down\n",
       "haproxy.cfg:3:3: \"monitor fail\" is not supported: /healthz always answers 200 while "
       "kube-api-lb runs"},
      {"defaults d from base\n", "haproxy.cfg:1:12: named defaults (\"from\") are not supported"},
      {fe + be + "  server a 10.0.0.1:6443\nbackend b\n  server c 10.0.0.3:6443\n",
       "haproxy.cfg:8:1: backend \"b\" is defined twice"},
      {"backend\n  server a 10.0.0.1:6443\n", "haproxy.cfg:1:1: \"backend\" needs a name"},
  };
  for (const auto &c : cases) {
    CAPTURE(c.text);
    auto r = kal::parse_haproxy_cfg(c.text, "haproxy.cfg");
    REQUIRE_FALSE(r.ok());
    CHECK(r.error() == c.error);
  }
}

TEST_CASE("haproxy: time values above 8760h are errors, whatever the unit") {
  for (const char *t : {"200000000000d", "1000000000000d", "366d", "8761h", "525601m", "31536001s",
                        "31536000001", "31536000001000us"}) {
    CAPTURE(t);
    auto r = kal::parse_haproxy_time(t);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error() == "time \"" + std::string(t) + "\" is too large (maximum 8760h)");
  }
  for (const char *t : {"365d", "8760h", "525600m", "31536000s", "31536000000"}) {
    CAPTURE(t);
    auto r = kal::parse_haproxy_time(t);
    REQUIRE_MESSAGE(r.ok(), r.error());
    CHECK(r->count() == int64_t{31536000000});
  }
  const std::string fe = "frontend f\n  mode tcp\n  bind 127.0.0.1:6443\n  default_backend b\n";
  auto r = kal::parse_haproxy_cfg(
      fe + "backend b\n  server a 10.0.0.1:6443 check slowstart 200000000000d\n", "haproxy.cfg");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error() == "haproxy.cfg:6:42: server a slowstart: time \"200000000000d\" is too large "
                     "(maximum 8760h)");
}

TEST_CASE("haproxy: '#' starts a comment anywhere outside quotes") {
  const std::string fe = "frontend f\n  mode tcp\n  bind 127.0.0.1:6443\n  default_backend b\n";
  auto path = [&](const std::string &lines) {
    Config c = parse_ok(fe + "backend b\n" + lines);
    CHECK(c.health.mode == kal::HealthMode::Https);
    return c.health.path;
  };
  CHECK(path("  option httpchk GET /healthz#x\n  server a 10.0.0.1:6443 check check-ssl\n") ==
        "/healthz");
  CHECK(path("  option httpchk GET /healthz\n  server a 10.0.0.1:6443 check check-ssl#primary\n") ==
        "/healthz");
  CHECK(path("  option httpchk GET /a\\#b\n  server a 10.0.0.1:6443 check check-ssl\n") == "/a#b");
  CHECK(path("  option httpchk GET \"/a#b\"\n  server a 10.0.0.1:6443 check check-ssl\n") ==
        "/a#b");
  CHECK(path("  option httpchk GET '/a#b'\n  server a 10.0.0.1:6443 check check-ssl\n") == "/a#b");
  // A stray ";" before a comment glued to it is still dropped.
  std::vector<std::string> notes;
  Config c = parse_ok("frontend f\n  mode tcp\n  bind 127.0.0.1:6443;#loopback\n"
                      "  default_backend b\nbackend b\n  server a 10.0.0.1:6443 check#primary\n",
                      &notes);
  CHECK(c.listen == std::vector<HostPort>{v4("127.0.0.1", 6443)});
  CHECK(c.health.mode == kal::HealthMode::Tcp);
  CHECK(has_note(notes, "haproxy.cfg:3:3: stray \";\" at the end of the line ignored (Kubespray "
                        "issue #12793)"));
}

TEST_CASE("haproxy: http-check send with headers, and values that are missing") {
  const std::string fe = "frontend f\n  mode tcp\n  bind 127.0.0.1:6443\n  default_backend b\n";
  const std::string srv = "  server a 10.0.0.1:6443 check check-ssl\n";
  std::vector<std::string> notes;
  Config c = parse_ok(fe +
                          "backend b\n  option httpchk\n"
                          "  http-check send meth GET hdr Host x uri /readyz ver HTTP/1.1\n" +
                          srv,
                      &notes);
  CHECK(c.health.path == "/readyz");
  CHECK(has_note(notes, "haproxy.cfg:7:28: http-check send: ignored header \"Host\" (checks send "
                        "their own Host, User-Agent and Accept headers)"));
  CHECK(parse_ok(fe +
                 "backend b\n  option httpchk\n  http-check send hdr A b hdr C d uri /livez\n" +
                 srv)
            .health.path == "/livez");
  struct Case {
    std::string line;
    std::string error;
  };
  const Case cases[] = {
      {"  http-check send meth GET uri\n",
       "haproxy.cfg:7:28: http-check send: \"uri\" needs a value"},
      {"  http-check send uri /readyz meth\n",
       "haproxy.cfg:7:31: http-check send: \"meth\" needs a value"},
      {"  http-check send hdr Host\n",
       "haproxy.cfg:7:19: http-check send: \"hdr\" needs a name and "
       "a value"},
      {"  http-check send uri /readyz ver\n",
       "haproxy.cfg:7:31: http-check send: \"ver\" needs a value"},
      {"  http-check send uri \"/readyz x\"\n",
       "haproxy.cfg:7:23: http-check send: path \"/readyz x\" must not contain spaces or control "
       "characters"},
      {"  http-check send uri readyz\n",
       "haproxy.cfg:7:23: http-check send: path \"readyz\" must start with '/'"},
      {"  http-check send body x\n",
       "haproxy.cfg:7:19: http-check send: \"body\" is not supported"},
  };
  for (const auto &k : cases) {
    CAPTURE(k.line);
    auto r =
        kal::parse_haproxy_cfg(fe + "backend b\n  option httpchk\n" + k.line + srv, "haproxy.cfg");
    REQUIRE_FALSE(r.ok());
    CHECK(r.error() == k.error);
  }
}

TEST_CASE("haproxy: a health-check path with spaces or control characters is an error") {
  const std::string fe = "frontend f\n  mode tcp\n  bind 127.0.0.1:6443\n  default_backend b\n";
  for (const std::string path : {"\"/readyz x\"", "\"/readyz\tx\"", "'/a\x7f'"}) {
    CAPTURE(path);
    auto r = kal::parse_haproxy_cfg(fe + "backend b\n  option httpchk GET " + path +
                                        "\n  server a 10.0.0.1:6443 check check-ssl\n",
                                    "haproxy.cfg");
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().rfind("haproxy.cfg:6:10: option httpchk: path \"", 0) == 0);
    CHECK(r.error().find("must not contain spaces or control characters") != std::string::npos);
  }
}

TEST_CASE("haproxy: bind localhost means 127.0.0.1; other host names are errors") {
  const std::string be = "backend b\n  server a cp1.example:6443\n";
  Config c = parse_ok("frontend f\n  mode tcp\n  bind localhost:6443\n  default_backend b\n" + be +
                      "frontend h\n  mode http\n  bind localhost:8081\n  monitor-uri /healthz\n");
  CHECK(c.listen == std::vector<HostPort>{v4("127.0.0.1", 6443)});
  CHECK(c.admin.healthz_listen == std::vector<HostPort>{v4("127.0.0.1", 8081)});
  CHECK(c.endpoints == std::vector<HostPort>{name("cp1.example", 6443)}); // resolved later
  auto r = kal::parse_haproxy_cfg(
      "frontend f\n  mode tcp\n  bind 127.0.0.1:6443,cp1.example:6443\n  default_backend b\n" + be,
      "haproxy.cfg");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error() == "haproxy.cfg:3:23: bind: cp1.example:6443 is not an IP address (listen "
                     "addresses must be IP addresses or localhost)");
}

TEST_CASE("haproxy: a problem of the whole configuration points at its backend") {
  std::string text = "frontend f\n  mode tcp\n  bind 127.0.0.1:6443\n  default_backend b\n"
                     "backend b\n  mode tcp\n";
  for (int i = 1; i <= 65; ++i) {
    text += "  server s" + std::to_string(i) + " 10.0.1." + std::to_string(i) + ":6443\n";
  }
  auto r = kal::parse_haproxy_cfg(text, "haproxy.cfg");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().rfind("haproxy.cfg:5:1: too many endpoints: 65", 0) == 0);
}
