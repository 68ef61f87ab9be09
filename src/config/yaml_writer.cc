// The writing half of the YAML configuration format: to_yaml() (declared in yaml_config.h next to
// the reader it round-trips with) emits every field of a Config, for check-config and the config
// hash. Apart from the reader (yaml_config.cc) because it shares nothing with it but the field
// names; a field added to Config is added to both, and the round-trip test holds them together.
#include "kube_api_lb/config/duration.h"
#include "kube_api_lb/config/yaml_config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <set>
#include <string>

namespace kal {
namespace {

// Strings that a YAML reader would not read back as the same string when written plain.
bool needs_quotes(const std::string &s) {
  static const std::set<std::string> special = {"",      "~",    "null", "Null",  "NULL",
                                                "true",  "True", "TRUE", "false", "False",
                                                "FALSE", "yes",  "no",   "on",    "off"};
  return special.count(s) > 0;
}

void emit_string(YAML::Emitter &e, const std::string &s) {
  if (needs_quotes(s)) {
    e << YAML::DoubleQuoted;
  }
  e << s;
}

void emit_addresses(YAML::Emitter &e, const char *key, const std::vector<HostPort> &list) {
  e << YAML::Key << key << YAML::Value;
  if (list.empty()) {
    e << YAML::Flow;
  }
  e << YAML::BeginSeq;
  for (const auto &hp : list) {
    e << YAML::DoubleQuoted << hp.str();
  }
  e << YAML::EndSeq;
}

void emit_duration(YAML::Emitter &e, const char *key, Millis d) {
  e << YAML::Key << key << YAML::Value << format_duration(d);
}

std::string shortest(double v) {
  char buf[64];
  auto [ptr, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, ec == std::errc() ? ptr : buf);
}

} // namespace

std::string to_yaml(const Config &c) {
  YAML::Emitter e;
  e << YAML::BeginMap;
  e << YAML::Key << "apiVersion" << YAML::Value << kConfigApiVersion;
  e << YAML::Key << "kind" << YAML::Value << kConfigKind;
  emit_addresses(e, "listen", c.listen);
  emit_addresses(e, "endpoints", c.endpoints);
  e << YAML::Key << "policy" << YAML::Value << to_string(c.policy);
  emit_duration(e, "connectTimeout", c.connect_timeout);
  emit_duration(e, "firstByteTimeout", c.first_byte_timeout);
  emit_duration(e, "idleTimeout", c.idle_timeout);
  emit_duration(e, "halfClosedTimeout", c.half_closed_timeout);
  emit_duration(e, "shutdownGrace", c.shutdown_grace);
  emit_duration(e, "drainTimeout", c.drain_timeout);
  emit_duration(e, "tcpUserTimeout", c.tcp_user_timeout);
  emit_duration(e, "keepaliveIdle", c.keepalive_idle);
  e << YAML::Key << "workers" << YAML::Value << c.workers;
  e << YAML::Key << "bufferHighWatermark" << YAML::Value
    << static_cast<unsigned long long>(c.buffer_high_watermark);
  e << YAML::Key << "replayBufferLimit" << YAML::Value
    << static_cast<unsigned long long>(c.replay_buffer_limit);

  const HealthConfig &h = c.health;
  e << YAML::Key << "healthCheck" << YAML::Value << YAML::BeginMap;
  e << YAML::Key << "mode" << YAML::Value << to_string(h.mode);
  e << YAML::Key << "path" << YAML::Value;
  emit_string(e, h.path);
  emit_duration(e, "interval", h.interval);
  emit_duration(e, "readyzInterval", h.readyz_interval);
  e << YAML::Key << "http2" << YAML::Value << (h.http2 ? "true" : "false");
  emit_duration(e, "flapWindow", h.flap_window);
  emit_duration(e, "recheckGap", h.recheck_gap);
  emit_duration(e, "fastInterval", h.fast_interval);
  emit_duration(e, "downInterval", h.down_interval);
  emit_duration(e, "timeout", h.timeout);
  e << YAML::Key << "rise" << YAML::Value << h.rise;
  e << YAML::Key << "fall" << YAML::Value << h.fall;
  e << YAML::Key << "jitter" << YAML::Value << shortest(h.jitter);
  e << YAML::Key << "caFile" << YAML::Value;
  emit_string(e, h.ca_file);
  e << YAML::Key << "clientCert" << YAML::Value;
  emit_string(e, h.client_cert);
  e << YAML::Key << "clientKey" << YAML::Value;
  emit_string(e, h.client_key);
  e << YAML::Key << "serverName" << YAML::Value;
  emit_string(e, h.server_name);
  emit_duration(e, "slowStart", h.slow_start);
  e << YAML::EndMap;

  const DiscoveryConfig &d = c.discovery;
  e << YAML::Key << "discovery" << YAML::Value << YAML::BeginMap;
  e << YAML::Key << "mode" << YAML::Value << to_string(d.mode);
  e << YAML::Key << "kubeconfig" << YAML::Value;
  emit_string(e, d.kubeconfig);
  e << YAML::Key << "stateFile" << YAML::Value;
  emit_string(e, d.state_file);
  emit_duration(e, "debounce", d.debounce);
  emit_duration(e, "grace", d.grace);
  e << YAML::EndMap;

  e << YAML::Key << "admin" << YAML::Value << YAML::BeginMap;
  emit_addresses(e, "listen", c.admin.listen);
  emit_addresses(e, "healthzListen", c.admin.healthz_listen);
  e << YAML::EndMap;

  e << YAML::Key << "logging" << YAML::Value << YAML::BeginMap;
  e << YAML::Key << "format" << YAML::Value << to_string(c.log_format);
  e << YAML::Key << "verbosity" << YAML::Value << c.verbosity;
  e << YAML::EndMap;
  e << YAML::EndMap;
  std::string header;
  if (!c.source.empty()) {
    std::string source = c.source;
    std::replace(source.begin(), source.end(), '\n', ' ');
    header = "# effective configuration; source: " + source + "\n";
  }
  return header + e.c_str() + "\n";
}

} // namespace kal
