#include "kube_api_lb/config/config.h"
#include "config/reader_common.h"
#include "kube_api_lb/config/duration.h"

#include <cctype>
#include <set>
#include <string_view>
#include <tuple>
#include <utility>

namespace kal {

const char *to_string(Policy p) {
  switch (p) {
  case Policy::LeastConn:
    return "least-conn";
  case Policy::RoundRobin:
    return "round-robin";
  case Policy::RandomTwo:
    return "random-two";
  case Policy::First:
    return "first";
  }
  return "?";
}

std::optional<Policy> policy_from_string(std::string_view s) {
  for (auto p : {Policy::LeastConn, Policy::RoundRobin, Policy::RandomTwo, Policy::First}) {
    if (s == to_string(p)) {
      return p;
    }
  }
  return std::nullopt;
}

const char *to_string(HealthMode m) {
  switch (m) {
  case HealthMode::Https:
    return "https";
  case HealthMode::Tls:
    return "tls";
  case HealthMode::Tcp:
    return "tcp";
  case HealthMode::None:
    return "none";
  }
  return "?";
}

std::optional<HealthMode> health_mode_from_string(std::string_view s) {
  for (auto m : {HealthMode::Https, HealthMode::Tls, HealthMode::Tcp, HealthMode::None}) {
    if (s == to_string(m)) {
      return m;
    }
  }
  return std::nullopt;
}

const char *to_string(DiscoveryMode m) {
  return m == DiscoveryMode::EndpointSlices ? "endpointslices" : "none";
}

std::optional<DiscoveryMode> discovery_mode_from_string(std::string_view s) {
  for (auto m : {DiscoveryMode::None, DiscoveryMode::EndpointSlices}) {
    if (s == to_string(m)) {
      return m;
    }
  }
  return std::nullopt;
}

const char *to_string(LogFormat f) { return f == LogFormat::Json ? "json" : "text"; }

std::optional<LogFormat> log_format_from_string(std::string_view s) {
  if (s == "text") {
    return LogFormat::Text;
  }
  if (s == "json") {
    return LogFormat::Json;
  }
  return std::nullopt;
}

namespace {

// A health-check name or file path goes to OpenSSL and open() as a C string and into
// check-config's YAML: a NUL would cut it short there, other control bytes and invalid UTF-8 do
// not survive the YAML (the fuzzer found `check-sni ku\x04..\x00..bernetes` in a haproxy.cfg
// accepted, and rendered to a different name). Returns what is wrong, or "" if nothing.
std::string bad_text(std::string_view s, bool host_name) {
  for (size_t i = 0; i < s.size(); ++i) {
    const auto b = static_cast<unsigned char>(s[i]);
    const bool host_char = std::isalnum(b) || b == '-' || b == '.' || b == '_' || b == ':';
    if (host_name && !host_char) {
      return "is not a host name or IP address (byte " + std::to_string(i + 1) +
             " is not a letter, digit, '-', '.', '_' or ':')";
    }
    if (b < 0x20 || b == 0x7f) {
      return "contains a control character (byte " + std::to_string(i + 1) + ")";
    }
    if (b >= 0x80) {
      // One UTF-8 sequence: a lead byte, then its continuation bytes (0x80-0xbf).
      const size_t n = b >= 0xc2 && b <= 0xdf   ? 1
                       : b >= 0xe0 && b <= 0xef ? 2
                       : b >= 0xf0 && b <= 0xf4 ? 3
                                                : 0;
      bool ok = n != 0 && i + n < s.size();
      for (size_t k = 1; ok && k <= n; ++k) {
        ok = (static_cast<unsigned char>(s[i + k]) & 0xc0) == 0x80;
      }
      if (!ok) {
        return "is not valid UTF-8 (byte " + std::to_string(i + 1) + ")";
      }
      i += n;
    }
  }
  return {};
}

} // namespace

Result<bool> validate(const Config &c) {
  if (c.endpoints.empty()) {
    return Err{"no endpoints: give at least one apiserver (e.g. --endpoints=10.0.0.1:6443)"};
  }
  if (c.endpoints.size() > kMaxEndpoints) {
    return Err{"too many endpoints: " + std::to_string(c.endpoints.size()) + " (at most " +
               std::to_string(kMaxEndpoints) + ")"};
  }
  if (c.listen.empty()) {
    return Err{"no listen address"};
  }
  std::set<std::string> seen;
  for (const auto &e : c.endpoints) {
    if (!seen.insert(e.str()).second) {
      return Err{"duplicate endpoint " + e.str()};
    }
  }
  seen.clear();
  for (const auto &l : c.listen) {
    if (!seen.insert(l.str()).second) {
      return Err{"duplicate listen address " + l.str()};
    }
  }
  for (const auto &[what, list] :
       {std::pair<const char *, const std::vector<HostPort> *>{"listen address ", &c.listen},
        {"admin listen address ", &c.admin.listen},
        {"healthz listen address ", &c.admin.healthz_listen}}) {
    for (const auto &l : *list) {
      if (l.kind == HostPort::Kind::Name) {
        return Err{what + l.str() +
                   " is not an IP address (listen addresses must be IP addresses)"};
      }
    }
  }
  // Every listener of every kind must be bindable at the same time (the YAML reader says the
  // same with positions; flags and the drop-in readers get it here).
  {
    std::vector<std::pair<const char *, const HostPort *>> all;
    for (const auto &l : c.listen) {
      all.emplace_back("listen address", &l);
    }
    for (const auto &l : c.admin.listen) {
      all.emplace_back("admin listen address", &l);
    }
    for (const auto &l : c.admin.healthz_listen) {
      all.emplace_back("healthz listen address", &l);
    }
    if (auto o = first_overlap(all, [](const auto &named) { return *named.second; })) {
      const auto &[i, j] = *o;
      return Err{std::string(all[i].first) + " " + all[i].second->str() + " overlaps " +
                 all[j].first + " " + all[j].second->str() + "; use another port"};
    }
  }
  auto positive = [](Millis m) { return m.count() > 0; };
  if (!positive(c.connect_timeout)) {
    return Err{"connect timeout must be > 0"};
  }
  if (!positive(c.first_byte_timeout)) {
    return Err{"first-byte timeout must be > 0"};
  }
  if (c.idle_timeout.count() < 0 || c.half_closed_timeout.count() < 0 ||
      c.shutdown_grace.count() < 0 || c.drain_timeout.count() < 0) {
    return Err{"timeouts must not be negative"};
  }
  if (c.tcp_user_timeout.count() > kMaxTcpUserTimeoutMs) {
    return Err{"tcp user timeout " + format_duration(c.tcp_user_timeout) +
               " is too large (the kernel takes at most " +
               format_duration(Millis{kMaxTcpUserTimeoutMs}) + ")"};
  }
  if (c.keepalive_idle.count() / 1000 > kMaxKeepaliveIdleS) {
    return Err{"keepalive idle " + format_duration(c.keepalive_idle) +
               " is too large (the kernel takes at most " +
               format_duration(Millis{kMaxKeepaliveIdleS * 1000}) + ")"};
  }
  if (c.health.rise < 1 || c.health.rise > 100) {
    return Err{"health rise must be between 1 and 100"};
  }
  if (c.health.fall < 1 || c.health.fall > 100) {
    return Err{"health fall must be between 1 and 100"};
  }
  if (!positive(c.health.interval) || !positive(c.health.fast_interval) ||
      !positive(c.health.down_interval) || !positive(c.health.timeout) ||
      !positive(c.health.readyz_interval) || !positive(c.health.flap_window) ||
      !positive(c.health.recheck_gap)) {
    return Err{"health intervals and timeout must be > 0"};
  }
  if (c.health.jitter < 0 || c.health.jitter >= 1) {
    return Err{"health jitter must be in [0, 1)"};
  }
  if (auto p = check_health_path(c.health.path); !p) {
    return Err{"health path " + p.error()};
  }
  for (const auto &[what, text, host] :
       {std::tuple<const char *, const std::string *, bool>{"health server name",
                                                            &c.health.server_name, true},
        {"health CA file", &c.health.ca_file, false},
        {"health client certificate", &c.health.client_cert, false},
        {"health client key", &c.health.client_key, false}}) {
    if (auto bad = bad_text(*text, host); !bad.empty()) {
      return Err{std::string(what) + " " + bad};
    }
  }
  if (c.health.client_cert.empty() != c.health.client_key.empty()) {
    return Err{"health client certificate and key must be given together"};
  }
  if (c.discovery.mode == DiscoveryMode::EndpointSlices && c.discovery.kubeconfig.empty()) {
    return Err{"discovery endpointslices needs a kubeconfig (--discovery-kubeconfig=FILE): the "
               "kubelet's own credentials cannot list EndpointSlices (docs/discovery.md)"};
  }
  if (c.discovery.mode == DiscoveryMode::None &&
      (!c.discovery.kubeconfig.empty() || !c.discovery.state_file.empty())) {
    return Err{"a discovery kubeconfig or state file is set but discovery is none (add "
               "--discovery=endpointslices)"};
  }
  if (c.discovery.debounce.count() < 0 || c.discovery.grace.count() < 0) {
    return Err{"discovery debounce and grace must not be negative"};
  }
  if (c.workers < 1 || c.workers > 64) {
    return Err{"workers must be between 1 and 64"};
  }
  if (c.verbosity < 0 || c.verbosity > 10) {
    return Err{"verbosity must be between 0 and 10"};
  }
  return true;
}

Result<bool> check_health_path(std::string_view path) {
  // Built by appending: GCC 12 warns falsely (-Wrestrict) on `"\"" + std::string(s)` once inlined.
  std::string quoted = "\"";
  quoted += path;
  quoted += '"';
  if (path.empty() || path.front() != '/') {
    return Err{quoted + " must start with '/'"};
  }
  for (char ch : path) {
    if (static_cast<unsigned char>(ch) < 0x21 || ch == 0x7f) {
      return Err{quoted + " must not contain spaces or control characters"};
    }
  }
  return true;
}

} // namespace kal
