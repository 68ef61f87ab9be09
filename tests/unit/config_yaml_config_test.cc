#include "kube_api_lb/config/yaml_config.h"

#include "kube_api_lb/config/duration.h"

#include "config_test_data.h"

#include <doctest/doctest.h>

#include <string>

using kal::Config;
using kal::HostPort;
using kal::Millis;
using kal_test::v4;
using kal_test::v6;

namespace {

const std::string kHead = "apiVersion: kubeapilb.config.k8s.io/v1alpha1\n"
                          "kind: KubeAPILBConfiguration\n";

Config parse_ok(const std::string &text, Config base = {}) {
  auto r = kal::parse_yaml_config(text, "test.yaml", std::move(base));
  REQUIRE_MESSAGE(r.ok(), r.error());
  return *r;
}

} // namespace

TEST_CASE("yaml: every field is read") {
  const std::string text = kHead + R"(listen:
  - 127.0.0.1:7443
  - "[::1]:7443"
endpoints:
  - 10.0.0.11:6443
  - "[fd00::12]:6443"
  - cp3.example.com:6443
policy: random-two
connectTimeout: 1500ms
firstByteTimeout: 3s
idleTimeout: 10m
halfClosedTimeout: 45s
shutdownGrace: 1m30s
drainTimeout: 45s
tcpUserTimeout: 20s
keepaliveIdle: 5s
workers: 4
bufferHighWatermark: 512Ki
replayBufferLimit: 32768
healthCheck:
  mode: tls
  path: /livez
  interval: 2s
  fastInterval: 100ms
  downInterval: 1s
  timeout: 3s
  rise: 3
  fall: 4
  jitter: 0.25
  caFile: /etc/kubernetes/pki/ca.crt
  clientCert: /etc/kal/client.crt
  clientKey: /etc/kal/client.key
  serverName: kubernetes.default.svc
  slowStart: 30s
admin:
  listen: ["127.0.0.1:9081", "[::1]:9081"]
  healthzListen: ["0.0.0.0:8081", "[::]:8081"]
logging:
  format: json
  verbosity: 3
)";
  Config c = parse_ok(text);
  Config want;
  want.source = "test.yaml";
  want.listen = {v4("127.0.0.1", 7443), v6("::1", 7443)};
  want.endpoints = {v4("10.0.0.11", 6443), v6("fd00::12", 6443),
                    HostPort{"cp3.example.com", 6443, HostPort::Kind::Name}};
  want.policy = kal::Policy::RandomTwo;
  want.connect_timeout = Millis{1500};
  want.first_byte_timeout = Millis{3000};
  want.idle_timeout = Millis{600000};
  want.half_closed_timeout = Millis{45000};
  want.shutdown_grace = Millis{90000};
  want.drain_timeout = Millis{45000};
  want.tcp_user_timeout = Millis{20000};
  want.keepalive_idle = Millis{5000};
  want.workers = 4;
  want.buffer_high_watermark = 512 * 1024;
  want.replay_buffer_limit = 32768;
  want.health.mode = kal::HealthMode::Tls;
  want.health.path = "/livez";
  want.health.interval = Millis{2000};
  want.health.fast_interval = Millis{100};
  want.health.down_interval = Millis{1000};
  want.health.timeout = Millis{3000};
  want.health.rise = 3;
  want.health.fall = 4;
  want.health.jitter = 0.25;
  want.health.ca_file = "/etc/kubernetes/pki/ca.crt";
  want.health.client_cert = "/etc/kal/client.crt";
  want.health.client_key = "/etc/kal/client.key";
  want.health.server_name = "kubernetes.default.svc";
  want.health.slow_start = Millis{30000};
  want.admin.listen = {v4("127.0.0.1", 9081), v6("::1", 9081)};
  want.admin.healthz_listen = {v4("0.0.0.0", 8081), v6("::", 8081)};
  want.log_format = kal::LogFormat::Json;
  want.verbosity = 3;
  CHECK(c == want);
  // Field by field too, so a failure says which one.
  CHECK(c.listen == want.listen);
  CHECK(c.endpoints == want.endpoints);
  CHECK(c.health == want.health);
  CHECK(c.admin == want.admin);

  SUBCASE("and survives a round trip through to_yaml") {
    auto again = kal::parse_yaml_config(kal::to_yaml(c), "test.yaml");
    REQUIRE_MESSAGE(again.ok(), again.error());
    CHECK(*again == c);
  }
}

TEST_CASE("yaml: a minimal document keeps every default") {
  Config c = parse_ok(kHead + "endpoints: [10.0.0.1:6443]\n");
  Config want;
  want.source = "test.yaml";
  want.endpoints = {v4("10.0.0.1", 6443)};
  CHECK(c == want);
}

TEST_CASE("yaml: fields replace the base, absent and null fields keep it") {
  Config base;
  base.endpoints = {v4("10.9.9.9", 6443)};
  base.workers = 3;
  base.health.rise = 5;
  base.listen = {v4("127.0.0.1", 1111), v4("127.0.0.2", 1111)};
  Config c = parse_ok(kHead + "workers: 2\nendpoints:\nhealthCheck:\n  fall: 7\n  rise: ~\n"
                              "listen: [127.0.0.3:2222]\nlogging:\n",
                      base);
  CHECK(c.workers == 2);
  CHECK(c.endpoints == base.endpoints);
  CHECK(c.health.rise == 5);
  CHECK(c.health.fall == 7);
  CHECK(c.listen == std::vector<HostPort>{v4("127.0.0.3", 2222)});
  CHECK(c.source == "test.yaml");
}

TEST_CASE("yaml: accepted spellings") {
  CHECK(parse_ok(kHead + "endpoints: [a:1]\nidleTimeout: 0\n").idle_timeout == Millis{0});
  CHECK(parse_ok(kHead + "endpoints: [a:1]\nhalfClosedTimeout: 0\n").half_closed_timeout ==
        Millis{0});
  CHECK(parse_ok(kHead + "endpoints: [a:1]\nconnectTimeout: \"250ms\"\n").connect_timeout ==
        Millis{250});
  CHECK(parse_ok(kHead + "endpoints: [a:1]\nbufferHighWatermark: 1Mi\n").buffer_high_watermark ==
        1024 * 1024);
  CHECK(parse_ok(kHead + "endpoints: [a:1]\nadmin:\n  listen: []\n").admin.listen.empty());
  CHECK(parse_ok(kHead + "endpoints: [a:1]\nhealthCheck: {jitter: 0}\n").health.jitter == 0);
  CHECK(parse_ok("# leading comment\n---\n" + kHead + "endpoints: [a:1]\n...\n").endpoints.size() ==
        1);
  for (const char *p : {"least-conn", "round-robin", "random-two", "first"}) {
    CAPTURE(p);
    CHECK(kal::to_string(parse_ok(kHead + "endpoints: [a:1]\npolicy: " + p + "\n").policy) ==
          std::string(p));
  }
  for (const char *m : {"https", "tls", "tcp", "none"}) {
    CAPTURE(m);
    CHECK(kal::to_string(parse_ok(kHead + "endpoints: [a:1]\nhealthCheck:\n  mode: " + m + "\n")
                             .health.mode) == std::string(m));
  }
}

TEST_CASE("yaml: errors name file, line, column and the problem") {
  struct Case {
    std::string text;
    std::string error;
  };
  const std::string ep = "endpoints: [10.0.0.1:6443]\n";
  const Case cases[] = {
      // Document shape.
      {"", "test.yaml:1:1: empty configuration (expected a KubeAPILBConfiguration document with "
           "apiVersion: kubeapilb.config.k8s.io/v1alpha1)"},
      {"# only a comment\n", "test.yaml:1:1: empty configuration (expected a "
                             "KubeAPILBConfiguration document with apiVersion: "
                             "kubeapilb.config.k8s.io/v1alpha1)"},
      {"- a\n- b\n", "test.yaml:1:1: the document: expected a mapping of fields, got a list"},
      {"just text\n",
       "test.yaml:1:1: the document: expected a mapping of fields, got \"just text\""},
      {kHead + ep + "---\n" + kHead + ep, "test.yaml:5:1: expected one YAML document, found 2"},
      {"kind: KubeAPILBConfiguration\n" + ep,
       "test.yaml:1:1: missing apiVersion (expected \"apiVersion: "
       "kubeapilb.config.k8s.io/v1alpha1\")"},
      {"apiVersion: v1\nkind: KubeAPILBConfiguration\n" + ep,
       "test.yaml:1:13: apiVersion \"v1\" is not supported (expected "
       "kubeapilb.config.k8s.io/v1alpha1)"},
      {"apiVersion: kubeapilb.config.k8s.io/v1alpha1\n" + ep,
       "test.yaml:1:1: missing kind (expected \"kind: KubeAPILBConfiguration\")"},
      {"apiVersion: kubeapilb.config.k8s.io/v1alpha1\nkind: Pod\n" + ep,
       "test.yaml:2:7: kind \"Pod\" is not supported (expected KubeAPILBConfiguration)"},
      // YAML syntax.
      {kHead + "endpoints: [10.0.0.1:6443\nworkers: 2\n",
       "test.yaml:4:8: YAML syntax error: end of sequence flow not found"},
      {kHead + "endpoints:\n  - a:1\n bad: 2\n",
       "test.yaml:5:2: YAML syntax error: end of map not found"},
      {kHead + "\tworkers: 1\n",
       "test.yaml:3:1: YAML syntax error: illegal tab when looking for indentation"},
      // yaml-cpp 0.7's LoadAll alone never returns on these (it piles up empty documents).
      {",", "test.yaml:1:1: YAML syntax error: unexpected ',' where a document should start"},
      {"# c\n ,,\n",
       "test.yaml:2:2: YAML syntax error: unexpected ',' where a document should start"},
      {kHead + ep + "---\n,\n",
       "test.yaml:5:1: YAML syntax error: unexpected ',' where a document should start"},
      // Unknown and repeated fields.
      {kHead + ep + "conectTimeout: 1s\n",
       "test.yaml:4:1: unknown field \"conectTimeout\" (did you mean \"connectTimeout\"?)"},
      {kHead + ep + "connect_timeout: 1s\n",
       "test.yaml:4:1: unknown field \"connect_timeout\" (did you mean \"connectTimeout\"?)"},
      {kHead + ep + "rise: 3\n",
       "test.yaml:4:1: unknown field \"rise\" (did you mean \"healthCheck.rise\"?)"},
      {kHead + ep + "frobnicate: 3\n", "test.yaml:4:1: unknown field \"frobnicate\""},
      {kHead + ep + "healthCheck:\n  intervall: 1s\n",
       "test.yaml:5:3: unknown field \"intervall\" in healthCheck (did you mean \"interval\"?)"},
      {kHead + ep + "admin:\n  healthz: [0.0.0.0:8081]\n",
       "test.yaml:5:3: unknown field \"healthz\" in admin"},
      {kHead + ep + "logging:\n  level: 2\n", "test.yaml:5:3: unknown field \"level\" in logging"},
      {kHead + ep + "workers: 1\nworkers: 2\n",
       "test.yaml:5:1: field \"workers\" is repeated (first at line 4)"},
      {kHead + ep + "? [a]\n: 1\n", "test.yaml:4:3: field names must be strings, got a list"},
      // Wrong types.
      {kHead + "endpoints: 10.0.0.1:6443\n",
       "test.yaml:3:12: endpoints: expected a list of endpoints such as [\"127.0.0.1:6443\"], "
       "got \"10.0.0.1:6443\""},
      {kHead + ep + "listen: {a: 1}\n",
       "test.yaml:4:9: listen: expected a list of listen addresses such as [\"127.0.0.1:6443\"], "
       "got a mapping"},
      {kHead + "endpoints:\n  - [a]\n",
       "test.yaml:4:5: endpoints[0]: expected an address \"host:port\", got a list"},
      {kHead + ep + "workers: two\n", "test.yaml:4:10: workers: expected an integer, got \"two\""},
      {kHead + ep + "workers: \"2\"\n",
       "test.yaml:4:10: workers: expected an integer, got the string \"2\""},
      {kHead + ep + "workers: 1.5\n", "test.yaml:4:10: workers: expected an integer, got \"1.5\""},
      {kHead + ep + "workers: [1]\n", "test.yaml:4:10: workers: expected an integer, got a list"},
      {kHead + ep + "policy: [a]\n", "test.yaml:4:9: policy: expected a string, got a list"},
      {kHead + ep + "healthCheck: 5\n",
       "test.yaml:4:14: healthCheck: expected a mapping of fields, got \"5\""},
      {kHead + ep + "healthCheck:\n  jitter: lots\n",
       "test.yaml:5:11: healthCheck.jitter: expected a number, got \"lots\""},
      {kHead + ep + "bufferHighWatermark: 2MB\n",
       "test.yaml:4:22: bufferHighWatermark: expected a size in bytes (e.g. 262144 or 256Ki), got "
       "\"2MB\""},
      // Bad values.
      {kHead + ep + "policy: fastest\n",
       "test.yaml:4:9: policy: unknown policy \"fastest\" (expected least-conn, round-robin, "
       "random-two or first)"},
      {kHead + ep + "healthCheck:\n  mode: http\n",
       "test.yaml:5:9: healthCheck.mode: unknown mode \"http\" (expected https, tls, tcp or none)"},
      {kHead + ep + "logging:\n  format: xml\n",
       "test.yaml:5:11: logging.format: unknown format \"xml\" (expected text or json)"},
      {kHead + ep + "connectTimeout: 5\n",
       "test.yaml:4:17: connectTimeout: duration \"5\" is missing a unit (write e.g. 5s or 5ms)"},
      {kHead + ep + "connectTimeout: 1x\n", "test.yaml:4:17: connectTimeout: duration \"1x\" has "
                                            "unknown unit \"x\" (use ms, s, m or h)"},
      {kHead + ep + "connectTimeout: 0s\n",
       "test.yaml:4:17: connectTimeout: must be greater than 0"},
      {kHead + ep + "firstByteTimeout: 0\n",
       "test.yaml:4:19: firstByteTimeout: must be greater than 0"},
      {kHead + ep + "drainTimeout: -1s\n",
       "test.yaml:4:15: drainTimeout: duration \"-1s\" must not be negative"},
      {kHead + ep + "healthCheck:\n  timeout: -5s\n",
       "test.yaml:5:12: healthCheck.timeout: duration \"-5s\" must not be negative"},
      {kHead + ep + "healthCheck:\n  interval: 0s\n",
       "test.yaml:5:13: healthCheck.interval: must be greater than 0"},
      {kHead + ep + "healthCheck:\n  interval: [1s]\n",
       "test.yaml:5:13: healthCheck.interval: expected a duration such as \"1s\" or \"500ms\", got "
       "a list"},
      {kHead + ep + "healthCheck:\n  rise: 0\n",
       "test.yaml:5:9: healthCheck.rise: 0 is out of range (1-100)"},
      {kHead + ep + "healthCheck:\n  fall: 0\n",
       "test.yaml:5:9: healthCheck.fall: 0 is out of range (1-100)"},
      {kHead + ep + "healthCheck:\n  fall: -2\n",
       "test.yaml:5:9: healthCheck.fall: -2 is out of range (1-100)"},
      {kHead + ep + "healthCheck:\n  rise: 99999999999999999999\n",
       "test.yaml:5:9: healthCheck.rise: 99999999999999999999 is out of range (1-100)"},
      {kHead + ep + "healthCheck:\n  jitter: 1.5\n",
       "test.yaml:5:11: healthCheck.jitter: 1.5 is out of range (0 <= jitter < 1, e.g. 0.1 for "
       "+-10%)"},
      {kHead + ep + "healthCheck:\n  path: readyz\n",
       "test.yaml:5:9: healthCheck.path: \"readyz\" must start with '/'"},
      {kHead + ep + "healthCheck:\n  path: \"/ready z\"\n",
       "test.yaml:5:9: healthCheck.path: \"/ready z\" must not contain spaces or control "
       "characters"},
      {kHead + ep + "healthCheck:\n  clientCert: /c.pem\n",
       "test.yaml:5:15: healthCheck.clientCert is set but healthCheck.clientKey is not"},
      {kHead + ep + "healthCheck:\n  clientKey: /k.pem\n",
       "test.yaml:5:14: healthCheck.clientKey is set but healthCheck.clientCert is not"},
      {kHead + ep + "workers: 0\n", "test.yaml:4:10: workers: 0 is out of range (1-64)"},
      {kHead + ep + "workers: 65\n", "test.yaml:4:10: workers: 65 is out of range (1-64)"},
      {kHead + ep + "logging:\n  verbosity: 11\n",
       "test.yaml:5:14: logging.verbosity: 11 is out of range (0-10)"},
      {kHead + ep + "bufferHighWatermark: 100\n",
       "test.yaml:4:22: bufferHighWatermark: 100 is out of range (4096-1073741824 bytes)"},
      // Addresses.
      {kHead + "endpoints:\n  - 10.0.0.1:99999\n",
       "test.yaml:4:5: endpoints[0]: address \"10.0.0.1:99999\": port 99999 out of range "
       "(1-65535)"},
      {kHead + "endpoints:\n  - 10.0.0.1:0\n",
       "test.yaml:4:5: endpoints[0]: address \"10.0.0.1:0\": port 0 out of range (1-65535)"},
      {kHead + "endpoints:\n  - 10.0.0.1\n",
       "test.yaml:4:5: endpoints[0]: address \"10.0.0.1\": missing port (expected host:port)"},
      {kHead + "endpoints:\n  - fd00::1:6443\n",
       "test.yaml:4:5: endpoints[0]: address \"fd00::1:6443\": IPv6 addresses must be written in "
       "brackets, as [::1]:6443"},
      {kHead + "endpoints:\n  - 10.0.0.1:6443\n  - 10.0.0.2:6443\n  - 10.0.0.1:6443\n",
       "test.yaml:6:5: endpoints[2]: duplicate endpoint 10.0.0.1:6443 (first at line 4)"},
      {kHead + "endpoints: []\n",
       "test.yaml:3:12: endpoints: list is empty; give at least one endpoint"},
      {kHead + "workers: 1\n",
       "test.yaml:1:1: no endpoints: give at least one apiserver, e.g. \"endpoints: "
       "[\\\"10.0.0.1:6443\\\"]\""},
      {kHead + "endpoints:\n",
       "test.yaml:3:1: no endpoints: give at least one apiserver, e.g. \"endpoints: "
       "[\\\"10.0.0.1:6443\\\"]\""},
      {kHead + ep + "listen: []\n",
       "test.yaml:4:9: listen: list is empty; give at least one listen address"},
      {kHead + ep + "listen: [\"127.0.0.1:6443\", \"127.0.0.1:6443\"]\n",
       "test.yaml:4:28: listen[1]: duplicate listen address 127.0.0.1:6443 (first at line 4)"},
      {kHead + ep + "listen: [0.0.0.0:6443]\nadmin:\n  listen: [127.0.0.1:6443]\n",
       "test.yaml:6:12: admin.listen[0]: 127.0.0.1:6443 overlaps listen[0] 0.0.0.0:6443; use "
       "another port"},
      {kHead + ep + "admin:\n  healthzListen: [0.0.0.0:8081]\n",
       "test.yaml:5:19: admin.healthzListen[0]: 0.0.0.0:8081 overlaps admin.listen[0] (default) "
       "127.0.0.1:8081; use another port"},
  };
  for (const auto &c : cases) {
    CAPTURE(c.text);
    auto r = kal::parse_yaml_config(c.text, "test.yaml");
    REQUIRE_FALSE(r.ok());
    CHECK(r.error() == c.error);
  }
}

TEST_CASE("yaml: IPv4 and IPv6 wildcards on the same port do not overlap") {
  Config c = parse_ok(kHead + "endpoints: [a:1]\nadmin:\n  listen: [127.0.0.1:9090]\n"
                              "  healthzListen: [0.0.0.0:8081, \"[::]:8081\"]\n");
  CHECK(c.admin.healthz_listen.size() == 2);
}

TEST_CASE("yaml: to_yaml writes every field and round-trips odd values") {
  Config c;
  c.endpoints = {v4("10.0.0.1", 6443)};
  c.source = "x.yaml";
  std::string y = kal::to_yaml(c);
  const std::string health_timeout = "timeout: " + kal::format_duration(Config{}.health.timeout);
  for (const std::string &key :
       std::vector<std::string>{("apiVersion: kubeapilb.config.k8s.io/v1alpha1"),
                                "kind: KubeAPILBConfiguration",
                                "listen:",
                                "endpoints:",
                                "policy: least-conn",
                                "connectTimeout: 1s",
                                "firstByteTimeout: 2s",
                                "idleTimeout: 0s",
                                "halfClosedTimeout: 5m0s",
                                "shutdownGrace: 10s",
                                "drainTimeout: 30s",
                                "tcpUserTimeout: 30s",
                                "keepaliveIdle: 15s",
                                "workers: 2",
                                "bufferHighWatermark: 262144",
                                "replayBufferLimit: 65536",
                                "healthCheck:",
                                "mode: https",
                                "path: /readyz",
                                "interval: 1s",
                                "fastInterval: 250ms",
                                "downInterval: 500ms",
                                health_timeout,
                                "rise: 2",
                                "fall: 2",
                                "jitter: 0.1",
                                "caFile: \"\"",
                                "clientCert: \"\"",
                                "clientKey: \"\"",
                                "serverName: \"\"",
                                "slowStart: 0s",
                                "admin:",
                                "healthzListen: []",
                                "logging:",
                                "format: text",
                                "verbosity: 0",
                                "# effective configuration; source: x.yaml"}) {
    CAPTURE(key);
    CHECK(y.find(key) != std::string::npos);
  }
  auto back = kal::parse_yaml_config(y, "x.yaml");
  REQUIRE_MESSAGE(back.ok(), back.error());
  CHECK(*back == c);

  c.health.ca_file = "null";
  c.health.server_name = "true";
  c.health.client_cert = "# not a comment";
  c.health.client_key = "key: with colon";
  c.health.jitter = 0.123456789;
  c.admin.listen = {};
  c.connect_timeout = Millis{1234};
  c.idle_timeout = Millis{3723004};
  c.half_closed_timeout = Millis{61000};
  back = kal::parse_yaml_config(kal::to_yaml(c), "x.yaml");
  REQUIRE_MESSAGE(back.ok(), back.error());
  CHECK(*back == c);
}

TEST_CASE("yaml: listen localhost means 127.0.0.1; other host names are errors") {
  Config c = parse_ok(kHead + "endpoints: [cp1.example:6443]\nlisten: [\"localhost:6443\"]\n"
                              "admin:\n  listen: [localhost:9090]\n"
                              "  healthzListen: [localhost:8081]\n");
  CHECK(c.listen == std::vector<HostPort>{v4("127.0.0.1", 6443)});
  CHECK(c.admin.listen == std::vector<HostPort>{v4("127.0.0.1", 9090)});
  CHECK(c.admin.healthz_listen == std::vector<HostPort>{v4("127.0.0.1", 8081)});
  CHECK(c.endpoints == std::vector<HostPort>{HostPort{"cp1.example", 6443, HostPort::Kind::Name}});
  const std::string ep = "endpoints: [10.0.0.1:6443]\n";
  struct Case {
    std::string text;
    std::string error;
  };
  const Case cases[] = {
      {kHead + ep + "listen: [\"127.0.0.1:6443\", cp1.example:6443]\n",
       "test.yaml:4:28: listen[1]: cp1.example:6443 is not an IP address (listen addresses must "
       "be IP addresses or localhost)"},
      {kHead + ep + "admin:\n  healthzListen: [node1:8081]\n",
       "test.yaml:5:19: admin.healthzListen[0]: node1:8081 is not an IP address (listen addresses "
       "must be IP addresses or localhost)"},
      {kHead + ep + "listen: [\"127.0.0.1:6443\", localhost:6443]\n",
       "test.yaml:4:28: listen[1]: duplicate listen address 127.0.0.1:6443 (first at line 4)"},
  };
  for (const auto &k : cases) {
    CAPTURE(k.text);
    auto r = kal::parse_yaml_config(k.text, "test.yaml");
    REQUIRE_FALSE(r.ok());
    CHECK(r.error() == k.error);
  }
}

TEST_CASE("yaml: the HTTP/2 liveness settings are read, written and checked") {
  Config c = parse_ok(kHead + "endpoints: [\"10.0.0.1:6443\"]\n"
                              "healthCheck:\n  readyzInterval: 20s\n  http2: false\n"
                              "  flapWindow: 45s\n"
                              "  recheckGap: 2s\n");
  CHECK(c.health.readyz_interval == Millis{20000});
  CHECK_FALSE(c.health.http2);
  CHECK(c.health.flap_window == Millis{45000});
  CHECK(c.health.recheck_gap == Millis{2000});
  const std::string text = kal::to_yaml(c);
  CHECK(text.find("readyzInterval: 20s") != std::string::npos);
  CHECK(text.find("http2: false") != std::string::npos);
  CHECK(text.find("flapWindow: 45s") != std::string::npos);
  CHECK(text.find("recheckGap: 2s") != std::string::npos);
  Config back = parse_ok(text);
  CHECK(back.health == c.health);
  auto bad = kal::parse_yaml_config(kHead + "endpoints: [\"10.0.0.1:6443\"]\n"
                                            "healthCheck:\n  http2: yes-please\n",
                                    "test.yaml");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error() == "test.yaml:5:10: healthCheck.http2: \"yes-please\" is not true or false");
}

TEST_CASE("yaml: the discovery section is read, written and checked") {
  Config c = parse_ok(kHead + "endpoints: [\"10.0.0.1:6443\"]\n"
                              "discovery:\n  mode: endpointslices\n  kubeconfig: /etc/k/kc\n"
                              "  stateFile: /var/lib/k/s.json\n  debounce: 2s\n  grace: 10m\n");
  CHECK(c.discovery.mode == kal::DiscoveryMode::EndpointSlices);
  CHECK(c.discovery.kubeconfig == "/etc/k/kc");
  CHECK(c.discovery.state_file == "/var/lib/k/s.json");
  CHECK(c.discovery.debounce == Millis{2000});
  CHECK(c.discovery.grace == Millis{600000});
  const std::string text = kal::to_yaml(c);
  CHECK(text.find("mode: endpointslices") != std::string::npos);
  CHECK(parse_ok(text).discovery == c.discovery);
  struct Bad {
    std::string body;
    const char *error;
  };
  const Bad bad[] = {
      {"discovery:\n  mode: endpoints\n",
       "test.yaml:5:9: discovery.mode: unknown mode \"endpoints\" (expected none or "
       "endpointslices)"},
      {"discovery:\n  mode: endpointslices\n",
       "test.yaml:5:9: discovery.mode: endpointslices needs discovery.kubeconfig (or "
       "--discovery-kubeconfig=FILE): the kubelet's own credentials cannot list EndpointSlices "
       "(docs/discovery.md)"},
      {"discovery:\n  stateFile: /x\n",
       "test.yaml:5:14: discovery.stateFile is set but discovery.mode is none (add \"mode: "
       "endpointslices\")"},
      {"discovery:\n  mode: none\n  kubeconfig: /k\n  stateFile: /x\n",
       "test.yaml:6:15: discovery.kubeconfig is set but discovery.mode is none (add \"mode: "
       "endpointslices\")"},
      {"discovery:\n  kubeconfg: /x\n",
       "test.yaml:5:3: unknown field \"kubeconfg\" in discovery (did you mean \"kubeconfig\"?)"},
  };
  for (const auto &b : bad) {
    CAPTURE(b.body);
    auto r =
        kal::parse_yaml_config(kHead + "endpoints: [\"10.0.0.1:6443\"]\n" + b.body, "test.yaml");
    REQUIRE_FALSE(r.ok());
    CHECK(r.error() == b.error);
  }
}
