#include "admin/metrics.h"
#include "kube_api_lb/core/discovery_merge.h"
#include "kube_api_lb/core/verdict.h"
#include "kube_api_lb/version.h"

#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include <sstream>

namespace kal {
namespace {

const CheckResult kResults[] = {CheckResult::L4Con,  CheckResult::L4Tout, CheckResult::L6Rsp,
                                CheckResult::L6Tout, CheckResult::L7Rsp,  CheckResult::L7Tout,
                                CheckResult::L7Sts,  CheckResult::L7Auth};

uint64_t get(const std::atomic<uint64_t> &a) { return a.load(std::memory_order_relaxed); }
int64_t get_i(const std::atomic<int64_t> &a) { return a.load(std::memory_order_relaxed); }

double round_to(double v, double per_unit) { return std::round(v * per_unit) / per_unit; }

// A monotonic instant (mono_ms base) as Unix seconds, by its age now.
double unix_of(int64_t mono_ms, const ProcessStats &ps) {
  if (mono_ms == 0) {
    return round_to(ps.start_time_seconds, 1000);
  }
  return round_to(ps.now_unix - static_cast<double>(ps.now_mono_ms - mono_ms) / 1000.0, 1000);
}

// [[ageSeconds, milliseconds, "L7OK", ping?1:0], ...] oldest first (a passed check named by its
// layer, as HAProxy's stats page does): compact, since the status page
// asks for it every 1.5 s.
nlohmann::json history_json(const std::vector<CheckSample> &samples, const ProcessStats &ps) {
  auto a = nlohmann::json::array();
  for (const auto &s : samples) {
    a.push_back({round_to(static_cast<double>(ps.now_mono_ms - s.mono_ms) / 1000.0, 10),
                 round_to(static_cast<double>(s.micros) / 1000.0, 1000),
                 s.result != CheckResult::Ok ? to_string(s.result)
                 : ps.health_mode == "tcp"   ? "L4OK"
                 : ps.health_mode == "tls"   ? "L6OK"
                                             : "L7OK",
                 s.ping ? 1 : 0});
  }
  return a;
}

// Label values are endpoint addresses: no quotes or backslashes can occur, but escape anyway.
std::string label(const std::string &v) {
  std::string out;
  for (char c : v) {
    if (c == '"' || c == '\\') {
      out += '\\';
    }
    out += c;
  }
  return out;
}

} // namespace

bool any_usable(const std::vector<std::shared_ptr<Upstream>> &ups, bool checks_enabled) {
  for (const auto &u : ups) {
    if (u->removed() || u->withdrawn()) {
      continue;
    }
    Health h = u->health();
    if (h == Health::Up || (!checks_enabled && h == Health::Unknown)) {
      return true;
    }
  }
  return false;
}

std::string render_prometheus(const std::vector<std::shared_ptr<Upstream>> &ups,
                              const ProcessStats &ps) {
  std::ostringstream o;
  auto family = [&](const char *name, const char *type, const char *help) {
    o << "# HELP " << name << ' ' << help << "\n# TYPE " << name << ' ' << type << '\n';
  };
  family("kube_api_lb_build_info", "gauge", "Build information.");
  o << "kube_api_lb_build_info{version=\"" << KAL_VERSION << "\"} 1\n";
  family("kube_api_lb_start_time_seconds", "gauge", "Unix time the process started.");
  o << "kube_api_lb_start_time_seconds " << static_cast<uint64_t>(ps.start_time_seconds) << '\n';
  family("kube_api_lb_ready", "gauge",
         "1 while at least one endpoint is usable and no shutdown is in progress.");
  o << "kube_api_lb_ready " << (ps.ready ? 1 : 0) << '\n';
  family("kube_api_lb_workers", "gauge", "Event loops accepting connections.");
  o << "kube_api_lb_workers " << ps.workers << '\n';
  family("kube_api_lb_accepted_connections_total", "counter", "Client connections accepted.");
  o << "kube_api_lb_accepted_connections_total " << ps.accepted << '\n';
  family("kube_api_lb_active_connections", "gauge", "Client connections open now.");
  o << "kube_api_lb_active_connections " << ps.active << '\n';
  family("kube_api_lb_handed_over_connections_total", "counter",
         "Client connections accepted by one worker and handed to a worker holding fewer.");
  o << "kube_api_lb_handed_over_connections_total " << ps.handed_over << '\n';
  family("kube_api_lb_resource_exhausted_connections_total", "counter",
         "Client connections closed because the process had no descriptor (or memory) left for "
         "their upstream socket (RLIMIT_NOFILE reached); no endpoint is blamed for them.");
  o << "kube_api_lb_resource_exhausted_connections_total " << ps.out_of_resources << '\n';
  family("kube_api_lb_spliced_bytes_total", "counter",
         "Bytes relayed by splice(2) inside the kernel (bulk transfers), both directions.");
  o << "kube_api_lb_spliced_bytes_total " << ps.spliced_bytes << '\n';
  family("kube_api_lb_drained_connections_total", "counter",
         "Connections closed at the drain timeout of endpoints removed by reloads (all endpoints, "
         "including removed ones).");
  o << "kube_api_lb_drained_connections_total " << ps.drained << '\n';
  family("kube_api_lb_closed_on_down_connections_total", "counter",
         "Connections closed because their endpoint went down (all endpoints).");
  o << "kube_api_lb_closed_on_down_connections_total " << ps.closed_on_down << '\n';
  family("kube_api_lb_config_reloads_total", "counter", "Successful configuration reloads.");
  o << "kube_api_lb_config_reloads_total " << ps.reloads << '\n';
  family("kube_api_lb_config_reload_failures_total", "counter",
         "Rejected configuration reloads (the running configuration stayed).");
  o << "kube_api_lb_config_reload_failures_total " << ps.reload_failures << '\n';
  family("kube_api_lb_config_last_reload_successful", "gauge",
         "0 while the last reload attempt was rejected (the file on disk is not what runs).");
  o << "kube_api_lb_config_last_reload_successful " << (ps.last_reload_ok ? 1 : 0) << '\n';
  family("kube_api_lb_config_info", "gauge", "Hash and source of the running configuration.");
  o << "kube_api_lb_config_info{hash=\"" << label(ps.config_hash) << "\",source=\""
    << label(ps.config_source) << "\"} 1\n";

  const DiscoveryStatus &d = ps.discovery;
  family("kube_api_lb_discovery_enabled", "gauge",
         "1 when endpoints are discovered from the default/kubernetes EndpointSlices.");
  o << "kube_api_lb_discovery_enabled " << (d.enabled ? 1 : 0) << '\n';
  // Exported with discovery off too (0), so alert rules and dashboards name a series that exists
  // on every node (deploy/prometheus: KubeApiLbDiscoveryStuck guards on _enabled).
  family("kube_api_lb_discovery_last_sync_timestamp_seconds", "gauge",
         "Unix time of the last successful list or watch event (0: never, or discovery off).");
  o << "kube_api_lb_discovery_last_sync_timestamp_seconds "
    << static_cast<uint64_t>(d.enabled ? d.last_sync_unix : 0) << '\n';
  if (d.enabled) {
    family("kube_api_lb_discovery_state", "gauge", "Discovery's state (1 for the current one).");
    for (const char *st : {"starting", "connecting", "listing", "watching", "backoff", "waiting",
                           "unauthorized", "error"}) {
      o << "kube_api_lb_discovery_state{state=\"" << st << "\"} " << (d.state == st ? 1 : 0)
        << '\n';
    }
    struct DCounter {
      const char *name;
      const char *type;
      const char *help;
      uint64_t value;
    };
    const DCounter dc[] = {
        {"kube_api_lb_discovery_lists_total", "counter", "Successful lists of the EndpointSlices.",
         d.lists},
        {"kube_api_lb_discovery_failures_total", "counter",
         "Lists or watches that failed and were retried after a backoff.", d.list_failures},
        {"kube_api_lb_discovery_watch_restarts_total", "counter",
         "Watches started again (server timeout, 410 Gone, ERROR event, cut stream, ...).",
         d.watch_restarts},
        {"kube_api_lb_discovery_events_total", "counter", "Watch events received (bookmarks too).",
         d.events},
        {"kube_api_lb_discovery_auth_failures_total", "counter",
         "Answers 401/403: the discovery identity lacks get/list/watch on endpointslices in "
         "default (manifests/kube-api-lb-discovery-rbac.yaml).",
         d.auth_failures},
        {"kube_api_lb_discovery_malformed_events_total", "counter",
         "Answers or watch events that were not usable JSON.", d.malformed_events},
        {"kube_api_lb_discovery_oversize_events_total", "counter",
         "Watch events larger than the limit (the watch was dropped).", d.oversize_events},
        {"kube_api_lb_discovery_applied_updates_total", "counter",
         "Changes of the endpoint list made by discovery.", d.applied_updates},
        {"kube_api_lb_discovery_ignored_updates_total", "counter",
         "Discovery results never applied (empty, or too many endpoints).", d.ignored_updates},
        {"kube_api_lb_discovery_connections_total", "counter",
         "Connections opened by discovery (never counted as client connections).", d.connections},
        {"kube_api_lb_discovery_connection_open", "gauge",
         "1 while a discovery connection is open.", d.connected ? 1u : 0u},
        {"kube_api_lb_discovery_received_bytes_total", "counter",
         "Bytes received on discovery connections.", d.received_bytes},
        {"kube_api_lb_discovery_state_writes_total", "counter",
         "Last-known-good state files written.", d.state_writes},
        {"kube_api_lb_discovery_state_write_failures_total", "counter",
         "State files that could not be written (a warning; the proxy serves on).",
         d.state_write_failures},
    };
    for (const auto &c : dc) {
      family(c.name, c.type, c.help);
      o << c.name << ' ' << c.value << '\n';
    }
  }

  struct Counter {
    const char *name;
    const char *type;
    const char *help;
    uint64_t (*read)(const Upstream &);
  };
  static const Counter per_endpoint[] = {
      {"kube_api_lb_endpoint_up", "gauge", "1 when the endpoint passes its health checks.",
       [](const Upstream &u) -> uint64_t { return u.health() == Health::Up ? 1 : 0; }},
      {"kube_api_lb_endpoint_active_connections", "gauge", "Client connections bound now.",
       [](const Upstream &u) { return get(u.counters.active); }},
      {"kube_api_lb_endpoint_connections_total", "counter", "Client connections bound ever.",
       [](const Upstream &u) { return get(u.counters.total); }},
      {"kube_api_lb_endpoint_sent_bytes_total", "counter", "Bytes sent to the endpoint.",
       [](const Upstream &u) { return get(u.counters.bytes_to_upstream); }},
      {"kube_api_lb_endpoint_received_bytes_total", "counter", "Bytes received from the endpoint.",
       [](const Upstream &u) { return get(u.counters.bytes_to_client); }},
      {"kube_api_lb_endpoint_connect_failures_total", "counter",
       "Connects for clients that failed or timed out.",
       [](const Upstream &u) { return get(u.counters.connect_failures); }},
      {"kube_api_lb_endpoint_retries_total", "counter",
       "Client connections moved from this endpoint to another (connect failure, early close, "
       "first-byte timeout).",
       [](const Upstream &u) { return get(u.counters.retries); }},
      {"kube_api_lb_endpoint_first_byte_timeouts_total", "counter",
       "Upstreams silent past the first-byte timeout (client re-dialled and replayed).",
       [](const Upstream &u) { return get(u.counters.first_byte_timeouts); }},
      {"kube_api_lb_endpoint_early_closes_total", "counter",
       "Upstreams that closed before their first byte (client re-dialled and replayed).",
       [](const Upstream &u) { return get(u.counters.early_closes); }},
      {"kube_api_lb_endpoint_closed_on_down_total", "counter",
       "Client connections closed because the endpoint went down.",
       [](const Upstream &u) { return get(u.counters.closed_on_down); }},
      {"kube_api_lb_endpoint_closes_prevented_total", "counter",
       "Connection closes a dead verdict did not make: live traffic from the endpoint "
       "contradicted it, or its connections were closed once already within the flap window.",
       [](const Upstream &u) { return get(u.counters.closes_prevented); }},
      {"kube_api_lb_endpoint_alive", "gauge",
       "0 while the checker holds a dead verdict (refused or reset connects, no PING answer); "
       "only then are the endpoint's connections closed.",
       [](const Upstream &u) -> uint64_t {
         return u.health_counters.alive.load(std::memory_order_relaxed) ? 1 : 0;
       }},
      {"kube_api_lb_endpoint_health_requests_total", "counter",
       "GET requests (the check path) sent by the health checker.",
       [](const Upstream &u) { return get(u.health_counters.requests); }},
      {"kube_api_lb_endpoint_health_pings_total", "counter",
       "HTTP/2 PING frames sent by the health checker.",
       [](const Upstream &u) { return get(u.health_counters.pings); }},
      {"kube_api_lb_endpoint_health_stalls_total", "counter",
       "Times the check connection stopped taking bytes: bytes outstanding with no "
       "acknowledgement for the derived timeout (dead evidence).",
       [](const Upstream &u) { return get(u.health_counters.stalls); }},
      {"kube_api_lb_endpoint_health_send_queue_bytes", "gauge",
       "Bytes of the check connection not yet acknowledged by the apiserver at the last sample.",
       [](const Upstream &u) { return get(u.health_counters.send_queue_bytes); }},
      {"kube_api_lb_endpoint_drained_total", "counter",
       "Client connections closed after the drain timeout of a removed endpoint.",
       [](const Upstream &u) { return get(u.counters.drained); }},
      {"kube_api_lb_endpoint_health_checks_total", "counter", "Active health checks run.",
       [](const Upstream &u) { return get(u.health_counters.checks); }},
      {"kube_api_lb_endpoint_health_transitions_total", "counter", "Health state changes.",
       [](const Upstream &u) { return get(u.health_counters.transitions); }},
      {"kube_api_lb_endpoint_health_handshakes_total", "counter",
       "TLS handshakes made by health checks (full and resumed).",
       [](const Upstream &u) { return get(u.health_counters.handshakes); }},
      {"kube_api_lb_endpoint_health_handshakes_per_minute", "gauge",
       "TLS handshakes made by health checks in the last minute.",
       [](const Upstream &u) { return get(u.health_counters.handshakes_last_minute); }},
      {"kube_api_lb_endpoint_health_check_misconfigured", "gauge",
       "1 when the last check was answered 401/403: give the checker a client certificate.",
       [](const Upstream &u) -> uint64_t {
         return u.health_counters.auth_misconfigured.load(std::memory_order_relaxed) ? 1 : 0;
       }},
  };
  for (const auto &c : per_endpoint) {
    family(c.name, c.type, c.help);
    for (const auto &u : ups) {
      o << c.name << "{endpoint=\"" << label(u->name()) << "\"} " << c.read(*u) << '\n';
    }
  }
  family("kube_api_lb_endpoint_source", "gauge",
         "Where the endpoint came from: seed (flags or file), discovered, or saved (the "
         "last-known-good state); 1 for its source.");
  for (const auto &u : ups) {
    o << "kube_api_lb_endpoint_source{endpoint=\"" << label(u->name()) << "\",source=\""
      << source_name(u->sources()) << "\"} 1\n";
  }
  family("kube_api_lb_endpoint_withdrawn", "gauge",
         "1 while discovery says the endpoint left (or is not ready in) the kubernetes "
         "EndpointSlice: no new connections while another is ready, nothing closed.");
  for (const auto &u : ups) {
    o << "kube_api_lb_endpoint_withdrawn{endpoint=\"" << label(u->name()) << "\"} "
      << (u->withdrawn() ? 1 : 0) << '\n';
  }
  family("kube_api_lb_endpoint_health_state", "gauge",
         "Health state of the endpoint (1 for the current state).");
  for (const auto &u : ups) {
    for (auto h : {Health::Unknown, Health::Up, Health::Down}) {
      o << "kube_api_lb_endpoint_health_state{endpoint=\"" << label(u->name()) << "\",state=\""
        << to_string(h) << "\"} " << (u->health() == h ? 1 : 0) << '\n';
    }
  }
  family("kube_api_lb_endpoint_health_check_duration_seconds", "gauge",
         "Duration of the last completed health check.");
  for (const auto &u : ups) {
    o << "kube_api_lb_endpoint_health_check_duration_seconds{endpoint=\"" << label(u->name())
      << "\"} " << static_cast<double>(get(u->health_counters.last_check_micros)) / 1e6 << '\n';
  }
  family("kube_api_lb_endpoint_health_rtt_seconds", "gauge",
         "Smoothed round-trip time of the check connection (0: no sample yet).");
  for (const auto &u : ups) {
    o << "kube_api_lb_endpoint_health_rtt_seconds{endpoint=\"" << label(u->name()) << "\"} "
      << static_cast<double>(get(u->health_counters.rtt_micros)) / 1e6 << '\n';
  }
  family("kube_api_lb_endpoint_health_timeout_seconds", "gauge",
         "Check timeout derived from the round-trip time (never below the configured timeout).");
  for (const auto &u : ups) {
    o << "kube_api_lb_endpoint_health_timeout_seconds{endpoint=\"" << label(u->name()) << "\"} "
      << static_cast<double>(get(u->health_counters.timeout_micros)) / 1e6 << '\n';
  }
  family("kube_api_lb_endpoint_health_liveness", "gauge",
         "How the checker learns the endpoint is alive (1 for the current way).");
  for (const auto &u : ups) {
    const auto l = static_cast<Liveness>(u->health_counters.liveness.load());
    for (auto k : {Liveness::Unknown, Liveness::Http2, Liveness::Http1}) {
      o << "kube_api_lb_endpoint_health_liveness{endpoint=\"" << label(u->name()) << "\",via=\""
        << to_string(k) << "\"} " << (l == k ? 1 : 0) << '\n';
    }
  }
  family("kube_api_lb_endpoint_health_check_failures_total", "counter",
         "Failed health checks by layer and reason (HAProxy's L4CON, L6TOUT, L7STS, ...).");
  for (const auto &u : ups) {
    for (auto r : kResults) {
      o << "kube_api_lb_endpoint_health_check_failures_total{endpoint=\"" << label(u->name())
        << "\",reason=\"" << to_string(r) << "\"} "
        << get(u->health_counters.failures[static_cast<size_t>(r)]) << '\n';
    }
  }
  return o.str();
}

std::string health_rtt_detail(const Upstream &u) {
  const auto &hc = u.health_counters;
  const uint64_t timeout = hc.timeout_micros.load(std::memory_order_relaxed);
  if (timeout == 0) {
    return "";
  }
  char buf[128];
  std::snprintf(buf, sizeof buf, " liveness=%s rtt_ms=%.2f timeout_ms=%.0f",
                to_string(static_cast<Liveness>(hc.liveness.load(std::memory_order_relaxed))),
                static_cast<double>(hc.rtt_micros.load(std::memory_order_relaxed)) / 1000.0,
                static_cast<double>(timeout) / 1000.0);
  std::string out = buf;
  if (const uint8_t by = hc.dead_by.load(std::memory_order_relaxed); by != 0) {
    // What made the dead verdict: stalled (the check connection's send queue), ping_timeout, ...
    out += std::string(" dead_by=") + to_string(static_cast<Observation>(by - 1));
  }
  if (hc.outside_not_ready.load(std::memory_order_relaxed)) {
    out += " held_not_ready=outside";
  }
  return out;
}

nlohmann::json stats_json(const std::vector<std::shared_ptr<Upstream>> &ups,
                          const ProcessStats &ps) {
  nlohmann::json j;
  j["version"] = KAL_VERSION;
  j["ready"] = ps.ready;
  j["startTimeSeconds"] = static_cast<uint64_t>(ps.start_time_seconds);
  j["workers"] = ps.workers;
  j["acceptedConnections"] = ps.accepted;
  j["activeConnections"] = ps.active;
  j["splicedBytes"] = ps.spliced_bytes;
  j["handedOverConnections"] = ps.handed_over;
  j["resourceExhaustedConnections"] = ps.out_of_resources;
  j["drainedConnections"] = ps.drained;
  j["closedOnDownConnections"] = ps.closed_on_down;
  j["config"] = {{"hash", ps.config_hash},
                 {"source", ps.config_source},
                 {"reloads", ps.reloads},
                 {"reloadFailures", ps.reload_failures},
                 {"lastReloadSuccessful", ps.last_reload_ok}};
  j["healthCheck"] = ps.health_mode;
  j["policy"] = ps.policy;
  j["listeners"] = ps.listeners;
  j["adminListeners"] = ps.admin_listeners;
  j["readiness"] = ps.readiness;
  j["nowSeconds"] = round_to(ps.now_unix, 1000);
  j["uptimeSeconds"] = round_to(ps.now_unix - ps.start_time_seconds, 10);
  j["historyCapacity"] = CheckHistory::kCapacity;
  j["historyWindowSeconds"] = 240; // what the page's charts span (the ring holds about that)
  auto &events = j["events"] = nlohmann::json::array();
  for (const auto &e : ps.events) {
    events.push_back({{"time", round_to(static_cast<double>(e.unix_ms) / 1000.0, 1000)},
                      {"kind", to_string(e.kind)},
                      {"subject", e.subject},
                      {"text", e.text}});
  }
  {
    const DiscoveryStatus &d = ps.discovery;
    nlohmann::json dj = {{"enabled", d.enabled}};
    if (d.enabled) {
      dj.update({{"state", d.state},
                 {"endpoint", d.endpoint},
                 {"lastError", d.last_error},
                 {"lastSyncSeconds", static_cast<uint64_t>(d.last_sync_unix)},
                 {"lists", d.lists},
                 {"failures", d.list_failures},
                 {"watchRestarts", d.watch_restarts},
                 {"events", d.events},
                 {"authFailures", d.auth_failures},
                 {"malformedEvents", d.malformed_events},
                 {"oversizeEvents", d.oversize_events},
                 {"appliedUpdates", d.applied_updates},
                 {"ignoredUpdates", d.ignored_updates},
                 {"connections", d.connections},
                 {"connectionOpen", d.connected},
                 {"receivedBytes", d.received_bytes},
                 {"stateFile", d.state_file},
                 {"savedState", d.saved_state},
                 {"stateWrites", d.state_writes},
                 {"stateWriteFailures", d.state_write_failures}});
    }
    j["discovery"] = dj;
  }
  auto &eps = j["endpoints"] = nlohmann::json::array();
  for (const auto &u : ups) {
    nlohmann::json failures = nlohmann::json::object();
    for (auto r : kResults) {
      failures[to_string(r)] = get(u->health_counters.failures[static_cast<size_t>(r)]);
    }
    eps.push_back({
        {"endpoint", u->name()},
        {"health", to_string(u->health())},
        {"removed", u->removed()},
        {"source", source_name(u->sources())},
        {"withdrawn", u->withdrawn()},
        {"activeConnections", get(u->counters.active)},
        {"connectionsTotal", get(u->counters.total)},
        {"sentBytes", get(u->counters.bytes_to_upstream)},
        {"receivedBytes", get(u->counters.bytes_to_client)},
        {"connectFailures", get(u->counters.connect_failures)},
        {"retries", get(u->counters.retries)},
        {"firstByteTimeouts", get(u->counters.first_byte_timeouts)},
        {"earlyCloses", get(u->counters.early_closes)},
        {"closedOnDown", get(u->counters.closed_on_down)},
        {"drained", get(u->counters.drained)},
        {"closesPrevented", get(u->counters.closes_prevented)},
        {"alive", u->health_counters.alive.load()},
        {"liveness", to_string(static_cast<Liveness>(u->health_counters.liveness.load()))},
        {"rttSeconds", static_cast<double>(get(u->health_counters.rtt_micros)) / 1e6},
        {"checkTimeoutSeconds", static_cast<double>(get(u->health_counters.timeout_micros)) / 1e6},
        {"healthRequests", get(u->health_counters.requests)},
        {"healthPings", get(u->health_counters.pings)},
        {"healthStalls", get(u->health_counters.stalls)},
        {"deadBy", u->health_counters.dead_by.load() == 0
                       ? std::string()
                       : std::string(to_string(
                             static_cast<Observation>(u->health_counters.dead_by.load() - 1)))},
        {"outsideNotReady", u->health_counters.outside_not_ready.load()},
        {"healthChecks", get(u->health_counters.checks)},
        {"healthTransitions", get(u->health_counters.transitions)},
        {"healthHandshakes", get(u->health_counters.handshakes)},
        {"healthHandshakesLastMinute", get(u->health_counters.handshakes_last_minute)},
        {"lastCheckSeconds", static_cast<double>(get(u->health_counters.last_check_micros)) / 1e6},
        {"lastCheckResult",
         to_string(static_cast<CheckResult>(u->health_counters.last_result.load()))},
        {"healthCheckMisconfigured", u->health_counters.auth_misconfigured.load()},
        {"checkFailures", failures},
        {"healthSinceSeconds", unix_of(get_i(u->health_counters.health_since_ms), ps)},
        {"checks", history_json(u->check_history.samples(), ps)},
    });
  }
  return j;
}

std::string render_stats_json(const std::vector<std::shared_ptr<Upstream>> &ups,
                              const ProcessStats &ps, int indent) {
  return stats_json(ups, ps).dump(indent) + "\n";
}

} // namespace kal
