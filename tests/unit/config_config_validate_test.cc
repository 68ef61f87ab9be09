// The checks every source shares: kal::validate() and the flags that feed it.
#include "kube_api_lb/config/config.h"
#include "kube_api_lb/config/flags.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <vector>

using kal::Config;
using kal::HostPort;

namespace {

Config valid() {
  Config c;
  c.endpoints = {HostPort{"cp1.example", 6443, HostPort::Kind::Name}};
  return c;
}

kal::Result<Config> from_flags(std::vector<std::string> args) {
  CLI::App app;
  kal::FlagValues fv;
  kal::add_config_flags(app, fv);
  std::reverse(args.begin(), args.end()); // CLI11 takes the vector back to front
  app.parse(args);
  return kal::apply_flags(fv, valid());
}

} // namespace

TEST_CASE("validate: listen addresses must be IP addresses") {
  REQUIRE(kal::validate(valid()).ok()); // endpoints may be names
  const HostPort name{"node1", 6443, HostPort::Kind::Name};
  Config c = valid();
  c.listen = {name};
  CHECK(kal::validate(c).error() ==
        "listen address node1:6443 is not an IP address (listen addresses must be IP addresses)");
  c = valid();
  c.admin.listen = {name};
  CHECK(kal::validate(c).error() == "admin listen address node1:6443 is not an IP address (listen "
                                    "addresses must be IP addresses)");
  c = valid();
  c.admin.healthz_listen = {name};
  CHECK(kal::validate(c).error() == "healthz listen address node1:6443 is not an IP address "
                                    "(listen addresses must be IP addresses)");
}

TEST_CASE("validate: listeners of every kind must not overlap (flags get what the YAML says)") {
  // The fuzzer found flags accepted that check-config's YAML then refused.
  auto r = from_flags({"--endpoints=10.0.0.1:6443", "--healthz-listen=0.0.0.0:8081"});
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().find("healthz listen address 0.0.0.0:8081 overlaps admin listen address "
                       "127.0.0.1:8081; use another port") != std::string::npos);
  Config c = valid();
  c.listen = {HostPort{"::", 6443, HostPort::Kind::IPv6}};
  c.admin.listen = {HostPort{"::1", 6443, HostPort::Kind::IPv6}};
  CHECK(kal::validate(c).error() ==
        "admin listen address [::1]:6443 overlaps listen address [::]:6443; use another port");
  c.admin.listen = {HostPort{"::1", 6444, HostPort::Kind::IPv6}};
  CHECK(kal::validate(c).ok());
}

TEST_CASE("validate: the health-check path goes into the request line as it is") {
  struct Case {
    std::string path;
    std::string error; // empty: valid
  };
  const Case cases[] = {
      {"/readyz", ""},
      {"/readyz?verbose=1&exclude=etcd", ""},
      {"/readyz x", "health path \"/readyz x\" must not contain spaces or control characters"},
      {"/readyz\tx", "health path \"/readyz\tx\" must not contain spaces or control characters"},
      {"/readyz\r\nX-Evil: 1",
       "health path \"/readyz\r\nX-Evil: 1\" must not contain spaces or control characters"},
      {"/a\x7f", "health path \"/a\x7f\" must not contain spaces or control characters"},
      {"readyz", "health path \"readyz\" must start with '/'"},
      {"", "health path \"\" must start with '/'"},
  };
  for (const auto &k : cases) {
    CAPTURE(k.path);
    Config c = valid();
    c.health.path = k.path;
    auto r = kal::validate(c);
    if (k.error.empty()) {
      CHECK(r.ok());
    } else {
      REQUIRE_FALSE(r.ok());
      CHECK(r.error() == k.error);
    }
  }
}

TEST_CASE("flags: --health-path and listen host names") {
  auto bad_path = from_flags({"--health-path=/readyz x"});
  REQUIRE_FALSE(bad_path.ok());
  CHECK(bad_path.error() ==
        "--health-path: \"/readyz x\" must not contain spaces or control characters");
  auto local = from_flags({"--listen=localhost:7443", "--admin-listen=localhost:9090"});
  REQUIRE_MESSAGE(local.ok(), local.error());
  CHECK(local->listen == std::vector<HostPort>{HostPort{"127.0.0.1", 7443, HostPort::Kind::IPv4}});
  CHECK(local->admin.listen ==
        std::vector<HostPort>{HostPort{"127.0.0.1", 9090, HostPort::Kind::IPv4}});
  auto name = from_flags({"--listen=node1:6443"});
  REQUIRE_FALSE(name.ok());
  CHECK(name.error() == "--listen: node1:6443 is not an IP address (listen addresses must be IP "
                        "addresses or localhost)");
}

TEST_CASE("validate: limits the kernel and the session impose") {
  // A session tracks the endpoints it tried in 64 bits: a 65th would never be dialled.
  Config c = valid();
  c.endpoints.clear();
  for (uint16_t i = 0; i < 64; ++i) {
    c.endpoints.push_back(
        HostPort{"10.0.0.1", static_cast<uint16_t>(6000 + i), HostPort::Kind::IPv4});
  }
  CHECK(kal::validate(c).ok());
  c.endpoints.push_back(HostPort{"10.0.0.1", 7000, HostPort::Kind::IPv4});
  CHECK(kal::validate(c).error() == "too many endpoints: 65 (at most 64)");
  // Larger values used to wrap (1193h2m47.297s became 1 ms) or were refused by setsockopt and
  // silently left unset.
  c = valid();
  c.tcp_user_timeout = kal::Millis{kal::kMaxTcpUserTimeoutMs};
  c.keepalive_idle = kal::Millis{kal::kMaxKeepaliveIdleS * 1000 + 999};
  CHECK(kal::validate(c).ok());
  c.tcp_user_timeout = kal::Millis{int64_t{1193} * 3600000 + 2 * 60000 + 47297};
  CHECK(kal::validate(c).error() == "tcp user timeout 1193h2m47.297s is too large (the kernel "
                                    "takes at most 596h31m23.647s)");
  c = valid();
  c.keepalive_idle = kal::Millis{int64_t{10} * 3600000};
  CHECK(kal::validate(c).error() ==
        "keepalive idle 10h0m0s is too large (the kernel takes at most 9h6m7s)");
}

TEST_CASE("flags: --half-closed-timeout") {
  auto dflt = from_flags({});
  REQUIRE_MESSAGE(dflt.ok(), dflt.error());
  CHECK(dflt->half_closed_timeout == kal::Millis{300000});
  auto off = from_flags({"--half-closed-timeout=0"});
  REQUIRE_MESSAGE(off.ok(), off.error());
  CHECK(off->half_closed_timeout == kal::Millis{0});
  auto set = from_flags({"--half-closed-timeout=90s"});
  REQUIRE_MESSAGE(set.ok(), set.error());
  CHECK(set->half_closed_timeout == kal::Millis{90000});
  auto bad = from_flags({"--half-closed-timeout=soon"});
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().find("--half-closed-timeout") != std::string::npos);
  Config c = valid();
  c.half_closed_timeout = kal::Millis{-1};
  auto r = kal::validate(c);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error() == "timeouts must not be negative");
}

TEST_CASE("flags: the HTTP/2 liveness settings") {
  auto dflt = from_flags({});
  REQUIRE_MESSAGE(dflt.ok(), dflt.error());
  CHECK(dflt->health.readyz_interval == kal::Millis{10000});
  CHECK(dflt->health.http2);
  CHECK(dflt->health.flap_window == kal::Millis{30000});
  CHECK(dflt->health.recheck_gap == kal::Millis{1000});
  auto set = from_flags({"--health-readyz-interval=15s", "--health-http2=false",
                         "--health-flap-window=1m", "--health-recheck-gap=3s"});
  REQUIRE_MESSAGE(set.ok(), set.error());
  CHECK(set->health.readyz_interval == kal::Millis{15000});
  CHECK_FALSE(set->health.http2);
  CHECK(set->health.flap_window == kal::Millis{60000});
  CHECK(set->health.recheck_gap == kal::Millis{3000});
  CHECK_FALSE(from_flags({"--health-recheck-gap=0s"}).ok());
  auto bad = from_flags({"--health-http2=maybe"});
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error() == "--health-http2: \"maybe\" is not true or false");
  auto zero = from_flags({"--health-readyz-interval=0"});
  REQUIRE_FALSE(zero.ok());
  CHECK(zero.error().find("health") != std::string::npos);
}

// Found by the haproxy_cfg fuzzer: a check-sni with a NUL and control bytes was accepted.
TEST_CASE("validate: health-check names and paths are plain text") {
  Config c = valid();
  c.health.server_name = std::string("ku\x04\0bernetes", 11);
  auto r = kal::validate(c);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().find("health server name is not a host name") != std::string::npos);
  c.health.server_name = "kubernetes.default.svc";
  CHECK(kal::validate(c).ok());
  c.health.server_name = "fd00::1";
  CHECK(kal::validate(c).ok());
  c.health.ca_file = "/etc/pki/ca\n.crt";
  CHECK(kal::validate(c).error().find("health CA file contains a control character") !=
        std::string::npos);
  c.health.ca_file = "/etc/pki/\xff.crt";
  CHECK(kal::validate(c).error().find("health CA file is not valid UTF-8") != std::string::npos);
  c.health.ca_file = "/etc/pki/cé.crt";
  CHECK(kal::validate(c).ok());
}
