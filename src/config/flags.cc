#include "kube_api_lb/config/flags.h"

#include "kube_api_lb/config/duration.h"

#include <charconv>

namespace kal {
namespace {

struct FlagSpec {
  const char *name;
  const char *help;
  bool repeatable;
};

// Every configuration flag, in the order --help lists them.
const FlagSpec kFlags[] = {
    {"endpoints", "Comma-separated apiserver endpoints HOST:PORT (IPv4, [IPv6] or DNS name)",
     false},
    {"listen", "Address to accept clients on (repeatable)", true},
    {"policy", "Balancing policy: least-conn, round-robin, random-two or first", false},
    {"connect-timeout", "Per-attempt upstream connect timeout", false},
    {"first-byte-timeout",
     "Re-dial another endpoint if the upstream has not answered this long after the client's "
     "latest bytes",
     false},
    {"idle-timeout", "Close connections idle this long; 0 = never", false},
    {"half-closed-timeout",
     "Close a connection one side has ended (FIN) once nothing moves this long; 0 = never", false},
    {"shutdown-grace", "On SIGTERM, keep serving open connections up to this long", false},
    {"drain-timeout", "Close connections to endpoints removed by a reload after this", false},
    {"tcp-user-timeout", "TCP_USER_TIMEOUT on both sides", false},
    {"keepalive-idle", "TCP keepalive idle time on both sides; 0 disables", false},
    {"workers", "Event loops accepting connections (threads sharing the listening sockets)", false},
    {"admin-listen",
     "Address of the status page (/) and /healthz /readyz /metrics /stats (repeatable; \"\" "
     "disables)",
     true},
    {"healthz-listen", "Extra address serving only /healthz (repeatable)", true},
    {"health-check", "Active check: https (GET path, expect 200), tls, tcp or none", false},
    {"health-path", "Path of the https check", false},
    {"health-interval",
     "Interval between liveness checks of a stable endpoint (HTTP/2 PING, else GET path)", false},
    {"health-readyz-interval", "With HTTP/2 liveness, interval between GET path checks", false},
    {"health-http2", "Offer HTTP/2 on the check connection and use PINGs: true or false", false},
    {"health-flap-window", "At most one mass close per endpoint within this window", false},
    {"health-recheck-gap",
     "At most one re-check brought forward by passive evidence per endpoint within this gap",
     false},
    {"health-fast-interval", "Interval while an endpoint changes state", false},
    {"health-down-interval", "Interval while an endpoint is down", false},
    {"health-timeout", "Timeout of one check", false},
    {"health-rise", "Consecutive passes to mark an endpoint up", false},
    {"health-fall", "Consecutive failures to mark an endpoint down", false},
    {"health-slow-start", "Ramp a recovered endpoint's share of new connections over this", false},
    {"health-ca-file", "CA bundle to verify apiserver certificates", false},
    {"health-client-cert",
     "Client certificate (PEM) for checks of apiservers without anonymous auth", false},
    {"health-client-key", "Key of --health-client-cert", false},
    {"health-server-name", "SNI and verified name for checks", false},
    {"discovery",
     "Endpoint discovery: none, or endpointslices (the default/kubernetes EndpointSlices)", false},
    {"discovery-kubeconfig", "Kubeconfig of the discovery client (CA, client cert or token)",
     false},
    {"state-file", "Where discovery keeps its last-known-good endpoints (atomic writes)", false},
    {"discovery-debounce", "Apply a discovered change once it has held this long", false},
    {"discovery-grace",
     "Keep an endpoint gone from discovery this long (and while it is the last usable one)", false},
    {"log-format", "Log format: text (key=value) or json", false},
    {"v", "Log verbosity (klog style -v=N)", false},
};

std::string join(const std::vector<HostPort> &v) {
  std::string out;
  for (const auto &hp : v) {
    out += (out.empty() ? "" : ",") + hp.str();
  }
  return out;
}

// The default shown by --help for a flag, read from a default Config so help never drifts from
// the real defaults.
std::string default_text(const std::string &name) {
  static const Config d;
  static const std::map<std::string, std::string> m = {
      {"listen", join(d.listen)},
      {"policy", to_string(d.policy)},
      {"connect-timeout", format_duration(d.connect_timeout)},
      {"first-byte-timeout", format_duration(d.first_byte_timeout)},
      {"idle-timeout", format_duration(d.idle_timeout)},
      {"half-closed-timeout", format_duration(d.half_closed_timeout)},
      {"shutdown-grace", format_duration(d.shutdown_grace)},
      {"drain-timeout", format_duration(d.drain_timeout)},
      {"tcp-user-timeout", format_duration(d.tcp_user_timeout)},
      {"keepalive-idle", format_duration(d.keepalive_idle)},
      {"workers", std::to_string(d.workers)},
      {"admin-listen", join(d.admin.listen)},
      {"health-check", to_string(d.health.mode)},
      {"health-path", d.health.path},
      {"health-interval", format_duration(d.health.interval)},
      {"health-readyz-interval", format_duration(d.health.readyz_interval)},
      {"health-http2", d.health.http2 ? "true" : "false"},
      {"health-flap-window", format_duration(d.health.flap_window)},
      {"health-recheck-gap", format_duration(d.health.recheck_gap)},
      {"health-fast-interval", format_duration(d.health.fast_interval)},
      {"health-down-interval", format_duration(d.health.down_interval)},
      {"health-timeout", format_duration(d.health.timeout)},
      {"health-rise", std::to_string(d.health.rise)},
      {"health-fall", std::to_string(d.health.fall)},
      {"health-slow-start", format_duration(d.health.slow_start)},
      {"discovery", to_string(d.discovery.mode)},
      {"discovery-debounce", format_duration(d.discovery.debounce)},
      {"discovery-grace", format_duration(d.discovery.grace)},
      {"log-format", to_string(d.log_format)},
      {"v", std::to_string(d.verbosity)},
  };
  auto it = m.find(name);
  return it == m.end() ? "" : it->second;
}

Result<Millis> duration_flag(const std::string &name, const std::string &text) {
  auto d = parse_duration(text);
  if (!d) {
    return Err{"--" + name + ": " + d.error()};
  }
  return *d;
}

Result<int> int_flag(const std::string &name, const std::string &text, int lo, int hi) {
  int v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || p != text.data() + text.size()) {
    return Err{"--" + name + ": \"" + text + "\" is not a whole number"};
  }
  if (v < lo || v > hi) {
    return Err{"--" + name + ": " + text + " out of range (" + std::to_string(lo) + "-" +
               std::to_string(hi) + ")"};
  }
  return v;
}

Result<std::vector<HostPort>> address_list(const std::string &name,
                                           const std::vector<std::string> &values) {
  std::vector<HostPort> out;
  for (const auto &v : values) {
    if (v.empty()) {
      continue; // --admin-listen="" disables
    }
    // Each value may itself be a comma-separated list.
    size_t start = 0;
    while (start <= v.size()) {
      auto comma = v.find(',', start);
      auto item = v.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
      auto parsed = parse_host_port(item);
      if (!parsed) {
        return Err{"--" + name + ": " + parsed.error()};
      }
      auto hp = to_listen_address(*parsed);
      if (!hp) {
        return Err{"--" + name + ": " + hp.error()};
      }
      for (const auto &seen : out) {
        if (seen == *hp) {
          return Err{"--" + name + ": duplicate address " + hp->str()};
        }
      }
      out.push_back(*hp);
      if (comma == std::string::npos) {
        break;
      }
      start = comma + 1;
    }
  }
  return out;
}

} // namespace

bool FlagValues::given(const std::string &name) const {
  auto it = options.find(name);
  return it != options.end() && it->second->count() > 0;
}

void add_config_flags(CLI::App &app, FlagValues &v) {
  for (const auto &f : kFlags) {
    auto &slot = v.raw[f.name];
    CLI::Option *o = app.add_option("--" + std::string(f.name), slot, f.help);
    // One value per occurrence ("--flag=value" or "--flag value"); a stray word after it is an
    // error, not a second value. An empty value is allowed (--admin-listen="" disables).
    o->expected(0, 1);
    o->allow_extra_args(false);
    o->multi_option_policy(f.repeatable ? CLI::MultiOptionPolicy::TakeAll
                                        : CLI::MultiOptionPolicy::TakeLast);
    // CLI11 fills a value-less occurrence with the default string, so list flags (where an
    // empty value means "none") show their default in the help text instead.
    if (auto def = default_text(f.name); !def.empty()) {
      if (f.repeatable) {
        o->description(o->get_description() + " (default " + def + ")");
      } else {
        o->default_str(def);
      }
    }
    v.options[f.name] = o;
  }
  app.add_option("--config", v.config_path,
                 "Configuration file: kube-api-lb YAML, nginx.conf or haproxy.cfg (flags override "
                 "it)");
  app.add_option("--config-format", v.config_format, "Format of --config: yaml, nginx or haproxy")
      ->check(CLI::IsMember({"yaml", "nginx", "haproxy"}));
}

Result<Config> apply_flags(const FlagValues &v, Config c) {
  auto one = [&](const char *name) -> const std::string & { return v.raw.at(name).back(); };
  auto set_duration = [&](const char *name, Millis &dst) -> Result<bool> {
    if (!v.given(name)) {
      return true;
    }
    auto d = duration_flag(name, one(name));
    if (!d) {
      return Err{d.error()};
    }
    dst = *d;
    return true;
  };
  auto set_int = [&](const char *name, int &dst, int lo, int hi) -> Result<bool> {
    if (!v.given(name)) {
      return true;
    }
    auto i = int_flag(name, one(name), lo, hi);
    if (!i) {
      return Err{i.error()};
    }
    dst = *i;
    return true;
  };
  auto set_string = [&](const char *name, std::string &dst) {
    if (v.given(name)) {
      dst = one(name);
    }
  };

  if (v.given("endpoints")) {
    auto eps = parse_endpoint_list(one("endpoints"));
    if (!eps) {
      return Err{"--endpoints: " + eps.error()};
    }
    c.endpoints = *eps;
  }
  for (auto [name, dst] : {std::pair<const char *, std::vector<HostPort> *>{"listen", &c.listen},
                           {"admin-listen", &c.admin.listen},
                           {"healthz-listen", &c.admin.healthz_listen}}) {
    if (v.given(name)) {
      auto l = address_list(name, v.raw.at(name));
      if (!l) {
        return Err{l.error()};
      }
      *dst = *l;
    }
  }
  if (v.given("policy")) {
    auto p = policy_from_string(one("policy"));
    if (!p) {
      return Err{"--policy: unknown policy \"" + one("policy") +
                 "\" (expected least-conn, round-robin, random-two or first)"};
    }
    c.policy = *p;
  }
  if (v.given("health-check")) {
    auto m = health_mode_from_string(one("health-check"));
    if (!m) {
      return Err{"--health-check: unknown mode \"" + one("health-check") +
                 "\" (expected https, tls, tcp or none)"};
    }
    c.health.mode = *m;
  }
  if (v.given("discovery")) {
    auto m = discovery_mode_from_string(one("discovery"));
    if (!m) {
      return Err{"--discovery: unknown mode \"" + one("discovery") +
                 "\" (expected none or endpointslices)"};
    }
    c.discovery.mode = *m;
  }
  if (v.given("log-format")) {
    auto f = log_format_from_string(one("log-format"));
    if (!f) {
      return Err{"--log-format: unknown format \"" + one("log-format") +
                 "\" (expected text or json)"};
    }
    c.log_format = *f;
  }
  for (auto r : {set_duration("connect-timeout", c.connect_timeout),
                 set_duration("first-byte-timeout", c.first_byte_timeout),
                 set_duration("idle-timeout", c.idle_timeout),
                 set_duration("half-closed-timeout", c.half_closed_timeout),
                 set_duration("shutdown-grace", c.shutdown_grace),
                 set_duration("drain-timeout", c.drain_timeout),
                 set_duration("tcp-user-timeout", c.tcp_user_timeout),
                 set_duration("keepalive-idle", c.keepalive_idle),
                 set_duration("health-interval", c.health.interval),
                 set_duration("health-readyz-interval", c.health.readyz_interval),
                 set_duration("health-flap-window", c.health.flap_window),
                 set_duration("health-recheck-gap", c.health.recheck_gap),
                 set_duration("health-fast-interval", c.health.fast_interval),
                 set_duration("health-down-interval", c.health.down_interval),
                 set_duration("health-timeout", c.health.timeout),
                 set_duration("health-slow-start", c.health.slow_start),
                 set_duration("discovery-debounce", c.discovery.debounce),
                 set_duration("discovery-grace", c.discovery.grace),
                 set_int("workers", c.workers, 1, 64),
                 set_int("health-rise", c.health.rise, 1, 100),
                 set_int("health-fall", c.health.fall, 1, 100),
                 set_int("v", c.verbosity, 0, 10)}) {
    if (!r) {
      return Err{r.error()};
    }
  }
  if (v.given("health-http2")) {
    const std::string b = one("health-http2");
    if (b != "true" && b != "false") {
      return Err{"--health-http2: \"" + b + "\" is not true or false"};
    }
    c.health.http2 = b == "true";
  }
  if (v.given("health-path")) {
    if (auto p = check_health_path(one("health-path")); !p) {
      return Err{"--health-path: " + p.error()};
    }
    c.health.path = one("health-path");
  }
  set_string("health-ca-file", c.health.ca_file);
  set_string("health-client-cert", c.health.client_cert);
  set_string("health-client-key", c.health.client_key);
  set_string("health-server-name", c.health.server_name);
  set_string("discovery-kubeconfig", c.discovery.kubeconfig);
  set_string("state-file", c.discovery.state_file);
  if (auto ok = validate(c); !ok) {
    return Err{ok.error()};
  }
  return c;
}

std::vector<std::string> normalize_args(int argc, char **argv) {
  std::vector<std::string> out;
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("-v=", 0) == 0) {
      a = "--v=" + a.substr(3);
    } else if (a == "-v" && i + 1 < argc) {
      a = "--v=" + std::string(argv[++i]);
    } else if (a.size() > 2 && a[0] == '-' && a[1] == 'v' && std::isdigit((unsigned char)a[2])) {
      a = "--v=" + a.substr(2);
    }
    out.push_back(a);
  }
  return out;
}

} // namespace kal
