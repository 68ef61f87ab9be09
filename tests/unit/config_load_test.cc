#include "kube_api_lb/config/load.h"

#include "kube_api_lb/config/yaml_config.h"

#include "temp_dir.h"

#include <CLI/CLI.hpp>
#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

using kal::Config;
using kal::ConfigFormat;

namespace {

const std::string kData = std::string(KAL_SOURCE_DIR) + "/tests/data/";

using kal::testing::TempDir;

const std::string kYaml = "apiVersion: kubeapilb.config.k8s.io/v1alpha1\n"
                          "kind: KubeAPILBConfiguration\nendpoints: [10.0.0.1:6443]\n";

// The configuration of the command line `args` (as main() builds it: defaults, file, flags).
kal::Result<Config> effective(std::vector<std::string> args) {
  CLI::App app;
  kal::FlagValues fv;
  kal::add_config_flags(app, fv);
  std::reverse(args.begin(), args.end()); // CLI11 takes the vector back to front
  app.parse(args);
  return kal::effective_config(fv);
}

} // namespace

TEST_CASE("load: formats by name") {
  CHECK(kal::config_format_from_string("yaml") == ConfigFormat::Yaml);
  CHECK(kal::config_format_from_string("nginx") == ConfigFormat::Nginx);
  CHECK(kal::config_format_from_string("haproxy") == ConfigFormat::Haproxy);
  CHECK_FALSE(kal::config_format_from_string("toml").has_value());
  CHECK(std::string(kal::to_string(ConfigFormat::Haproxy)) == "haproxy");
  CHECK(std::string(kal::to_string(std::optional<ConfigFormat>{})) == "unknown");
}

TEST_CASE("load: format detection by content, then by name") {
  struct Case {
    const char *path;
    std::string text;
    std::optional<ConfigFormat> want;
  };
  const Case cases[] = {
      {"/x/config", kYaml, ConfigFormat::Yaml},
      {"/x/weird.conf", "# c\n---\n" + kYaml, ConfigFormat::Yaml},
      {"/x/config", "# c\nglobal\n  maxconn 1\n", ConfigFormat::Haproxy},
      {"/x/lb.conf", "frontend f\n  bind :1\n", ConfigFormat::Haproxy},
      {"/x/config", "error_log stderr;\nstream {\n}\n", ConfigFormat::Nginx},
      {"/x/config", "events{}\n", ConfigFormat::Nginx},
      {"/etc/nginx/nginx.conf", "", ConfigFormat::Nginx},
      {"/usr/local/etc/haproxy/haproxy.cfg", "", ConfigFormat::Haproxy},
      {"/etc/kube-api-lb/config.yaml", "", ConfigFormat::Yaml},
      {"/x/a.yml", "endpoints: []\n", ConfigFormat::Yaml},
      {"/x/config", "endpoints: []\n", std::nullopt},
      {"/x/config", "", std::nullopt},
  };
  for (const auto &c : cases) {
    CAPTURE(c.path);
    CAPTURE(c.text);
    CHECK(kal::detect_config_format(c.path, c.text) == c.want);
  }
}

TEST_CASE("load: reads and dispatches the test data files") {
  struct Case {
    const char *file;
    ConfigFormat want;
  };
  for (auto c : {Case{"kubespray/nginx.conf", ConfigFormat::Nginx},
                 Case{"kubespray/haproxy.cfg", ConfigFormat::Haproxy},
                 Case{"nginx/dualstack.conf", ConfigFormat::Nginx},
                 Case{"haproxy/tls.cfg", ConfigFormat::Haproxy},
                 Case{"config/full.yaml", ConfigFormat::Yaml}}) {
    CAPTURE(c.file);
    ConfigFormat used{};
    std::vector<std::string> notes;
    auto r = kal::load_config_file(kData + c.file, std::nullopt, {}, &used, &notes);
    REQUIRE_MESSAGE(r.ok(), r.error());
    CHECK(used == c.want);
    CHECK(r->source == kData + c.file);
    CHECK_FALSE(r->endpoints.empty());
  }
}

TEST_CASE("load: the documented example file parses") {
  auto r = kal::load_config_file(kData + "config/full.yaml", ConfigFormat::Yaml);
  REQUIRE_MESSAGE(r.ok(), r.error());
  CHECK(r->endpoints.size() == 3);
  CHECK(r->health.path == "/readyz");
}

TEST_CASE("load: forced format, base values and errors") {
  TempDir dir;
  SUBCASE("forcing a format overrides detection") {
    std::string p = dir.write("nginx.conf", kYaml);
    auto r = kal::load_config_file(p, ConfigFormat::Yaml);
    REQUIRE_MESSAGE(r.ok(), r.error());
    auto wrong = kal::load_config_file(p, ConfigFormat::Nginx);
    REQUIRE_FALSE(wrong.ok());
    CHECK(wrong.error().rfind(p + ":", 0) == 0);
  }
  SUBCASE("base values survive where the file is silent") {
    Config base;
    base.workers = 3;
    std::string p = dir.write("c.yaml", kYaml);
    auto r = kal::load_config_file(p, std::nullopt, base);
    REQUIRE(r.ok());
    CHECK(r->workers == 3);
  }
  SUBCASE("a missing file names the path and the errno text") {
    auto r = kal::load_config_file(dir.path + "/nope.yaml", std::nullopt);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error() ==
          "cannot read config file " + dir.path + "/nope.yaml: No such file or directory");
  }
  SUBCASE("a directory is not a config file") {
    auto r = kal::load_config_file(dir.path, std::nullopt);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error() == "config file " + dir.path + " is not a regular file");
  }
  SUBCASE("an unreadable file") {
    std::string p = dir.write("secret.yaml", kYaml);
    chmod(p.c_str(), 0);
    auto r = kal::load_config_file(p, std::nullopt);
    if (geteuid() != 0) { // root reads anything
      REQUIRE_FALSE(r.ok());
      CHECK(r.error() == "cannot read config file " + p + ": Permission denied");
    }
  }
  SUBCASE("undetectable format") {
    std::string p = dir.write("config", "endpoints: []\n");
    auto r = kal::load_config_file(p, std::nullopt);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error() == "cannot tell the format of config file " + p +
                           " (use --config-format=yaml|nginx|haproxy)");
  }
  SUBCASE("binary junk") {
    std::string p = dir.write("c.yaml", std::string("a\0b", 3));
    auto r = kal::load_config_file(p, std::nullopt);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error() == "config file " + p + " is not a text file (it contains NUL bytes)");
  }
  SUBCASE("too large") {
    std::string p = dir.write("big.yaml", std::string(5 * 1024 * 1024, '#'));
    auto r = kal::load_config_file(p, std::nullopt);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error() == "config file " + p + " is larger than 4 MiB");
  }
}

TEST_CASE("load: search path and default config discovery") {
  CHECK(kal::default_config_search_path() ==
        std::vector<std::string>{"/etc/kube-api-lb/config.yaml", "/etc/nginx/nginx.conf",
                                 "/usr/local/etc/haproxy/haproxy.cfg"});
  CHECK(kal::config_search_path(nullptr) == kal::default_config_search_path());
  CHECK(kal::config_search_path("") == kal::default_config_search_path());
  CHECK(kal::config_search_path("/a::/b:") == std::vector<std::string>{"/a", "/b"});

  TempDir dir;
  std::string a = dir.path + "/a.yaml", b = dir.path + "/b.conf", sub = dir.path + "/sub";
  mkdir(sub.c_str(), 0700);
  CHECK_FALSE(kal::find_default_config({a, b, sub}).has_value());
  dir.write("b.conf", "x");
  CHECK(kal::find_default_config({a, sub, b}) == b);
  dir.write("a.yaml", "x");
  CHECK(kal::find_default_config({a, sub, b}) == a);
  CHECK_FALSE(kal::find_default_config({}).has_value());
}

TEST_CASE("load: config hash") {
  Config c;
  c.endpoints = {kal::HostPort{"10.0.0.1", 6443, kal::HostPort::Kind::IPv4}};
  std::string h = kal::config_hash(c);
  CHECK(h.size() == 16);
  CHECK(h.find_first_not_of("0123456789abcdef") == std::string::npos);
  CHECK(kal::config_hash(c) == h);
  Config moved = c;
  moved.source = "/elsewhere.yaml";
  CHECK(kal::config_hash(moved) == h);
  Config changed = c;
  changed.health.rise = 3;
  CHECK(kal::config_hash(changed) != h);
  changed = c;
  changed.endpoints.push_back(kal::HostPort{"10.0.0.2", 6443, kal::HostPort::Kind::IPv4});
  CHECK(kal::config_hash(changed) != h);
}

TEST_CASE("load: every fixture converts to kube-api-lb YAML and back unchanged") {
  for (const char *file :
       {"kubespray/nginx.conf", "kubespray/haproxy.cfg", "nginx/dualstack.conf",
        "nginx/other-port.conf", "nginx/no-health.conf", "nginx/comments.conf", "nginx/crlf.conf",
        "haproxy/dualstack.cfg", "haproxy/other-port.cfg", "haproxy/no-check.cfg",
        "haproxy/tls.cfg", "haproxy/comments.cfg", "config/full.yaml"}) {
    CAPTURE(file);
    auto r = kal::load_config_file(kData + file, std::nullopt);
    REQUIRE_MESSAGE(r.ok(), r.error());
    auto back = kal::parse_yaml_config(kal::to_yaml(*r), r->source);
    REQUIRE_MESSAGE(back.ok(), back.error());
    CHECK(*back == *r);
  }
}

TEST_CASE("load: a YAML config whose first key is listen is YAML, not HAProxy") {
  const std::string listen_first = "listen: [\"127.0.0.1:6443\"]\n" + kYaml;
  struct Case {
    const char *path;
    std::string text;
    std::optional<ConfigFormat> want;
  };
  const Case cases[] = {
      // An explicit extension decides.
      {"/x/lb.yaml", listen_first, ConfigFormat::Yaml},
      {"/x/lb.yml", "listen:\n  - 127.0.0.1:6443\n", ConfigFormat::Yaml},
      {"/x/lb.yaml", "frontend f\n  bind :1\n", ConfigFormat::Yaml},
      // Without one, "listen:" is a YAML key (HAProxy's listen never ends in a colon), and
      // apiVersion further down says YAML.
      {"/x/config", listen_first, ConfigFormat::Yaml},
      {"/x/lb.cfg", listen_first, ConfigFormat::Yaml},
      {"/x/config", "listen stats\n  bind :9000\n", ConfigFormat::Haproxy},
      {"/x/config", "listen:\n", std::nullopt},
  };
  for (const auto &c : cases) {
    CAPTURE(c.path);
    CAPTURE(c.text);
    CHECK(kal::detect_config_format(c.path, c.text) == c.want);
  }
  TempDir dir;
  std::string p = dir.write("lb.yaml", listen_first);
  ConfigFormat used{};
  auto r = kal::load_config_file(p, std::nullopt, {}, &used);
  REQUIRE_MESSAGE(r.ok(), r.error());
  CHECK(used == ConfigFormat::Yaml);
}

TEST_CASE("effective config: flags put right what a file gets wrong only as a whole") {
  TempDir dir;
  SUBCASE("discovery switched on in the file, its kubeconfig given by flag") {
    std::string p = dir.write("c.yaml", kYaml + "discovery:\n  mode: endpointslices\n");
    auto alone = effective({"--config=" + p});
    REQUIRE_FALSE(alone.ok());
    CHECK(alone.error() == p + ":5:9: discovery.mode: endpointslices needs discovery.kubeconfig "
                               "(or --discovery-kubeconfig=FILE): the kubelet's own credentials "
                               "cannot list EndpointSlices (docs/discovery.md)");
    auto r = effective({"--config=" + p, "--discovery-kubeconfig=/etc/kal/kubeconfig"});
    REQUIRE_MESSAGE(r.ok(), r.error());
    CHECK(r->discovery.mode == kal::DiscoveryMode::EndpointSlices);
    CHECK(r->discovery.kubeconfig == "/etc/kal/kubeconfig");
    CHECK(r->source == p);
  }
  SUBCASE("a client certificate in the file, its key by flag") {
    std::string p = dir.write("c.yaml", kYaml + "healthCheck:\n  clientCert: /pki/c.crt\n");
    auto alone = effective({"--config=" + p});
    REQUIRE_FALSE(alone.ok());
    CHECK(alone.error() ==
          p + ":5:15: healthCheck.clientCert is set but healthCheck.clientKey is not");
    auto r = effective({"--config=" + p, "--health-client-key=/pki/c.key"});
    REQUIRE_MESSAGE(r.ok(), r.error());
    CHECK(r->health.client_cert == "/pki/c.crt");
    CHECK(r->health.client_key == "/pki/c.key");
  }
  SUBCASE("two listeners of the file on one port, one moved by flag") {
    std::string p = dir.write("c.yaml", kYaml + "listen: [\"127.0.0.1:9000\"]\n"
                                                "admin:\n  listen: [\"127.0.0.1:9000\"]\n");
    auto alone = effective({"--config=" + p});
    REQUIRE_FALSE(alone.ok());
    CHECK(alone.error().rfind(p + ":6:12: admin.listen[0]: 127.0.0.1:9000 overlaps", 0) == 0);
    auto r = effective({"--config=" + p, "--listen=127.0.0.1:9001"});
    REQUIRE_MESSAGE(r.ok(), r.error());
    CHECK(r->listen.front().port == 9001);
  }
  SUBCASE("flags that do not put it right leave the file's error, with its position") {
    std::string p = dir.write("c.yaml", kYaml + "healthCheck:\n  clientCert: /pki/c.crt\n");
    auto r = effective({"--config=" + p, "--workers=3", "--discovery-kubeconfig=/k"});
    REQUIRE_FALSE(r.ok());
    CHECK(r.error() == p + ":5:15: healthCheck.clientCert is set but healthCheck.clientKey is not");
  }
  SUBCASE("a field wrong by itself is the file's error whatever the flags say") {
    std::string p = dir.write("c.yaml", kYaml + "healthCheck:\n  fall: 0\n");
    auto r = effective({"--config=" + p, "--health-fall=2"});
    REQUIRE_FALSE(r.ok());
    CHECK(r.error() == p + ":5:9: healthCheck.fall: 0 is out of range (1-100)");
  }
  SUBCASE("the drop-in readers too: an nginx.conf's 65 servers replaced by --endpoints") {
    std::string servers;
    for (int i = 1; i <= 65; ++i) {
      servers += "    server 10.0.0." + std::to_string(i) + ":6443;\n";
    }
    std::string p = dir.write("nginx.conf", "stream {\n  upstream kube_apiserver {\n" + servers +
                                                "  }\n  server {\n    listen 127.0.0.1:6443;\n"
                                                "    proxy_pass kube_apiserver;\n  }\n}\n");
    auto alone = effective({"--config=" + p});
    REQUIRE_FALSE(alone.ok());
    CHECK(alone.error().rfind(p + ":2:3: too many endpoints: 65", 0) == 0);
    auto r = effective({"--config=" + p, "--endpoints=10.0.0.1:6443,10.0.0.2:6443"});
    REQUIRE_MESSAGE(r.ok(), r.error());
    CHECK(r->endpoints.size() == 2);
  }
  SUBCASE("a state file without discovery, in the file") {
    std::string p = dir.write("c.yaml", kYaml + "discovery:\n  stateFile: /var/lib/kal/s.json\n");
    auto r = effective({"--config=" + p});
    REQUIRE_FALSE(r.ok());
    CHECK(r.error() == p + ":5:14: discovery.stateFile is set but discovery.mode is none (add "
                           "\"mode: endpointslices\")");
    auto on =
        effective({"--config=" + p, "--discovery=endpointslices", "--discovery-kubeconfig=/k"});
    REQUIRE_MESSAGE(on.ok(), on.error());
  }
}

TEST_CASE("effective config: when the flags fix the file's problem but bring another, theirs is "
          "said") {
  TempDir dir;
  // clientCert without its key, and discovery without a kubeconfig: the key by flag fixes the
  // first problem the file reports; the second is then the one to say (no position: it is the
  // whole's, after the flags).
  std::string p = dir.write("c.yaml", kYaml + "healthCheck:\n  clientCert: /pki/c.crt\n");
  auto bad_flag = effective({"--config=" + p, "--health-client-key=/pki/c.key", "--workers=0"});
  REQUIRE_FALSE(bad_flag.ok());
  CHECK(bad_flag.error().find("workers") != std::string::npos);
  CHECK(bad_flag.error().find("clientKey") == std::string::npos);
  auto unfixed = effective({"--config=" + p, "--workers=3"});
  REQUIRE_FALSE(unfixed.ok());
  CHECK(unfixed.error() ==
        p + ":5:15: healthCheck.clientCert is set but healthCheck.clientKey is not");
}
