#pragma once
// The running proxy as wiring: it owns the rooms of the main loop and connects them, and decides
// nothing they can decide themselves.
//
//   UpstreamSet    (core)  which endpoints are active, draining or retired after a reload
//   WorkerPool             the workers, their loops and threads
//   HealthChecker          the endpoints' health; a hard failure closes their sessions everywhere
//   NameRefresher          the addresses of host-name endpoints
//   ConfigWatcher          a change of the configuration file (a reload)
//   AdminServer            /healthz, /readyz, /metrics, /stats from ProxyApp's figures
//
// ProxyApp itself holds the lifecycle (start, signals, graceful shutdown), the reload sequence
// (what a new configuration changes, in which order, and what is rejected), the one drain timer,
// and the process-wide figures. Everything here runs on the main loop's thread.
#include "admin/admin_server.h"
#include "admin/metrics.h"
#include "app/config_watcher.h"
#include "app/name_refresher.h"
#include "app/worker_pool.h"
#include "kube_api_lb/config/config.h"
#include "kube_api_lb/core/event_log.h"
#include "kube_api_lb/core/upstream_set.h"
#include "uvx/uv_time_source.h"

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace kal {

class HealthChecker;
class EndpointDiscovery;

class ProxyApp {
public:
  // `reload_config`: produces the configuration to switch to on SIGHUP or a file change (re-reads
  // the file and re-applies flags); null when the config came from flags only.
  using ConfigLoader = std::function<Result<Config>()>;

  // Runs on `loop` (not owned; it must outlive the ProxyApp).
  ProxyApp(uv_loop_t *loop, Config config, ConfigLoader reload_config, std::string watch_path);
  ~ProxyApp();
  ProxyApp(const ProxyApp &) = delete;
  ProxyApp &operator=(const ProxyApp &) = delete;

  // Binds everything and runs until SIGTERM/SIGINT and the grace period are over. Returns the
  // process exit code (0 after a clean shutdown, 1 when start-up failed; the error is logged and
  // printed).
  int run();

  // Re-reads the configuration and applies it without dropping connections (SIGHUP, file change).
  void reload(const char *trigger);

private:
  static void signal_cb(uv_signal_t *h, int signum) noexcept;
  static void shutdown_tick_cb(uv_timer_t *t) noexcept;
  static void drain_cb(uv_timer_t *t) noexcept;
  static void release_pages_cb(uv_timer_t *t) noexcept;

  Result<bool> start();
  Result<bool> start_admin(const Config &c);
  Result<bool> install_signals();
  // The reload's endpoint step: the new active set, drains started or dropped, logged.
  void apply_endpoints(const std::vector<HostPort> &endpoints, Millis drain_timeout);
  // The endpoints to run with under `c`: its seed, or discovery's usable set.
  std::vector<HostPort> desired_endpoints(const Config &c) const;
  // Discovery changed the usable set: the reload's endpoint step, then workers, names, checks.
  void apply_discovered(const std::vector<HostPort> &endpoints);
  // Starts, reconfigures or stops discovery for `c` (start-up and reload).
  void setup_discovery(const Config &c);
  void arm_drain_timer();
  // The status page's event list.
  void note_event(EventKind kind, std::string subject, std::string text);
  void note_health_event(const Upstream &u, Health old_h, Health new_h, CheckResult why);
  UpstreamSet::TimePoint loop_now() const;

  void on_signal(int signum);
  void begin_shutdown(int signum);
  void on_shutdown_tick();
  void finish_shutdown();
  void on_drain_timer();
  void on_release_pages();

  bool ready() const;
  ProcessStats process_stats() const;

  Config config_;
  ConfigLoader loader_;
  std::string watch_path_;
  uv_loop_t *loop_;
  uvx::UvTimeSource time_; // of the main loop: the checker's and worker 0's; outlives both
  UpstreamSet upstreams_;
  NameRefresher names_;
  WorkerPool pool_;
  std::unique_ptr<HealthChecker> checker_;
  std::unique_ptr<EndpointDiscovery> discovery_; // with --discovery=endpointslices
  std::vector<std::unique_ptr<AdminServer>> admin_;
  std::unique_ptr<ConfigWatcher> watcher_; // when the configuration came from a file
  std::vector<uvx::Handle<uv_signal_t>> signals_;
  uvx::Timer shutdown_timer_;
  uvx::Timer drain_timer_;
  uvx::Timer release_timer_;
  uint64_t shutdown_deadline_ = 0;
  bool shutting_down_ = false;
  uint64_t reloads_ = 0;
  uint64_t reload_failures_ = 0;
  bool last_reload_ok_ = true;
  EventLog events_; // bounded: EventLog::kCapacity
  std::string config_hash_;
  double start_time_ = 0;
  int exit_code_ = 0;
};

// Raises RLIMIT_NOFILE's soft limit to the hard limit (thousands of watches and probes need it).
void raise_fd_limit();

} // namespace kal
