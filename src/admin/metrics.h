#pragma once
// Renders the proxy's state as Prometheus text (/metrics) and JSON (/stats). Pure functions over
// a snapshot, so they are unit-tested without sockets.
#include "kube_api_lb/core/event_log.h"
#include "kube_api_lb/core/upstream.h"

#include <nlohmann/json_fwd.hpp>

#include <memory>
#include <string>
#include <vector>

namespace kal {

// Endpoint discovery's figures (issue 18), filled by app/ from the discovery client and the merge.
struct DiscoveryStatus {
  bool enabled = false;
  std::string state;         // starting, connecting, listing, watching, backoff, waiting, ...
  std::string endpoint;      // the apiserver discovery talks to now
  std::string last_error;    // empty after a successful list
  double last_sync_unix = 0; // wall clock of the last list or watch event (0: never)
  uint64_t lists = 0, list_failures = 0, watch_restarts = 0, events = 0, auth_failures = 0;
  uint64_t connections = 0; // discovery's own connections, ever (never client sessions)
  bool connected = false;
  uint64_t received_bytes = 0, oversize_events = 0, malformed_events = 0;
  uint64_t applied_updates = 0; // changes of the usable set made by discovery
  uint64_t ignored_updates = 0; // results never applied (empty, too many endpoints)
  uint64_t state_writes = 0, state_write_failures = 0;
  std::string state_file;
  std::string saved_state; // "loaded", "none", "ignored: ...", "error: ..."
};

struct ProcessStats {
  uint64_t accepted = 0;         // client connections accepted, all workers
  uint64_t active = 0;           // client connections open now
  uint64_t spliced_bytes = 0;    // bytes moved by splice(2), both directions, all workers
  uint64_t handed_over = 0;      // connections one worker accepted and another served
  uint64_t out_of_resources = 0; // connections closed: no descriptor left for their upstream
  uint64_t drained = 0;          // connections closed at a removed endpoint's drain timeout, ever
  uint64_t closed_on_down = 0;   // connections closed because their endpoint went down, ever
  uint64_t reloads = 0;          // successful configuration reloads
  uint64_t reload_failures = 0;  // rejected reloads (the running config stayed)
  bool last_reload_ok = true;    // the last reload attempt was applied (true before any)
  std::string config_hash;
  std::string config_source;
  double start_time_seconds = 0; // Unix time the process started
  int workers = 1;
  bool ready = false;
  std::string health_mode;
  std::string policy;
  std::vector<std::string> listeners;
  std::vector<std::string> admin_listeners;
  std::string readiness;     // the /readyz verdict in words ("ready", "not ready: ...")
  double now_unix = 0;       // wall clock now, seconds
  int64_t now_mono_ms = 0;   // monotonic now (the base of health_since_ms and CheckSample)
  std::vector<Event> events; // newest first
  DiscoveryStatus discovery;
};

// True when at least one endpoint can take connections: Up, or Unknown while checks are off.
bool any_usable(const std::vector<std::shared_ptr<Upstream>> &ups, bool checks_enabled);

std::string render_prometheus(const std::vector<std::shared_ptr<Upstream>> &ups,
                              const ProcessStats &ps);
// " liveness=http2-ping rtt_ms=0.21 timeout_ms=400" for one endpoint's line in /readyz?verbose: how
// the checker learns it is alive, the check connection's smoothed round trip and the check timeout
// derived from it (empty before the first check).
std::string health_rtt_detail(const Upstream &u);

// `indent` -1: one line (the status page's refresh asks for /stats?compact).
std::string render_stats_json(const std::vector<std::shared_ptr<Upstream>> &ups,
                              const ProcessStats &ps, int indent = 2);
// The same document as a value (the status page renders from it).
nlohmann::json stats_json(const std::vector<std::shared_ptr<Upstream>> &ups,
                          const ProcessStats &ps);

} // namespace kal
