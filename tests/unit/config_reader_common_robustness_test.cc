// Every reader must turn any input into a Config or an error, never a crash or an exception:
// feed them every prefix of the fixtures and a deterministic stream of byte-level mutations.
#include "kube_api_lb/config/haproxy_cfg.h"
#include "kube_api_lb/config/nginx_conf.h"
#include "kube_api_lb/config/yaml_config.h"

#include <doctest/doctest.h>

#include <fstream>
#include <functional>
#include <random>
#include <sstream>
#include <string>

namespace {

std::string data(const std::string &rel) {
  std::ifstream in(std::string(KAL_SOURCE_DIR) + "/tests/data/" + rel, std::ios::binary);
  REQUIRE_MESSAGE(in.good(), "missing test data " << rel);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

using Reader = std::function<bool(const std::string &)>;

void hammer(const std::string &seed_text, const Reader &read) {
  REQUIRE(read(seed_text)); // the fixture itself is valid
  for (size_t n = 0; n < seed_text.size(); ++n) {
    (void)read(seed_text.substr(0, n));
  }
  std::mt19937 rng(12345);
  const std::string alphabet = "{};#\"'\\ \t\n:[],-0123456789abcxyz@\x01\xff";
  for (int i = 0; i < 1000; ++i) {
    std::string s = seed_text;
    int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits && !s.empty(); ++e) {
      size_t at = rng() % s.size();
      switch (rng() % 3) {
      case 0:
        s[at] = alphabet[rng() % alphabet.size()];
        break;
      case 1:
        s.erase(at, 1 + rng() % 8);
        break;
      default:
        s.insert(at, 1, alphabet[rng() % alphabet.size()]);
      }
    }
    (void)read(s);
  }
}

} // namespace

TEST_CASE("robustness: nginx reader survives truncation and mutation") {
  auto read = [](const std::string &t) {
    std::vector<std::string> notes;
    auto r = kal::parse_nginx_conf(t, "n.conf", {}, &notes);
    if (!r) {
      CHECK(r.error().rfind("n.conf:", 0) == 0);
    }
    return r.ok();
  };
  hammer(data("kubespray/nginx.conf"), read);
  hammer(data("nginx/dualstack.conf"), read);
}

TEST_CASE("robustness: haproxy reader survives truncation and mutation") {
  auto read = [](const std::string &t) {
    std::vector<std::string> notes;
    auto r = kal::parse_haproxy_cfg(t, "h.cfg", {}, &notes);
    if (!r) {
      CHECK(r.error().rfind("h.cfg:", 0) == 0);
    }
    return r.ok();
  };
  hammer(data("kubespray/haproxy.cfg"), read);
  hammer(data("haproxy/tls.cfg"), read);
}

TEST_CASE("robustness: YAML reader survives truncation and mutation") {
  auto read = [](const std::string &t) {
    auto r = kal::parse_yaml_config(t, "c.yaml");
    if (!r) {
      CHECK(r.error().rfind("c.yaml:", 0) == 0);
    }
    return r.ok();
  };
  hammer(data("config/full.yaml"), read);
}

TEST_CASE("robustness: deeply nested nginx blocks are an error, not a stack overflow") {
  // 100,000 levels fit in the 4 MiB file limit; one stack frame per level used to crash.
  std::string deep;
  for (int i = 0; i < 100000; ++i) {
    deep += "a{";
  }
  auto r = kal::parse_nginx_conf(deep, "n.conf");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error() == "n.conf:1:65: block \"a\" is nested more than 32 levels deep (nginx "
                     "configurations need 3 or 4)");
  // 32 levels are still read (and fail later for what they mean, not for their depth).
  std::string ok;
  for (int i = 0; i < 32; ++i) {
    ok += "a{";
  }
  ok += std::string(32, '}');
  auto r32 = kal::parse_nginx_conf(ok, "n.conf");
  REQUIRE_FALSE(r32.ok());
  CHECK(r32.error().find("nested") == std::string::npos);
}

// Found by the nginx_conf and yaml_config fuzzers: errors quoted input bytes raw, so a newline in
// the file made a multi-line error (a forged log line). Control characters show as \xNN.
TEST_CASE("robustness: an error is one line whatever the input quotes") {
  auto n = kal::parse_nginx_conf("stream {\n upstream u {\n  \x01\x0b;\n }\n}\n", "n.conf");
  REQUIRE_FALSE(n.ok());
  CHECK(n.error().find('\x01') == std::string::npos);
  CHECK(n.error().find("\\x01\\x0b") != std::string::npos);
  auto y = kal::parse_yaml_config("a: \"\\\x01\"\n", "c.yaml");
  REQUIRE_FALSE(y.ok());
  CHECK(y.error().find('\x01') == std::string::npos);
  CHECK(y.error().find('\n') == std::string::npos);
}
