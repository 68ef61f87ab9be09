#pragma once
// The running proxy: owns the main loop's parts (workers, health checker, admin servers, signals)
// and wires them together. Everything here runs on the main loop thread.
#include "admin/admin_server.h"
#include "admin/metrics.h"
#include "app/name_resolver.h"
#include "kube_api_lb/config/config.h"
#include "proxy/worker.h"
#include "uvx/uv_time_source.h"

#include <atomic>
#include <map>
#include <memory>
#include <thread>
#include <vector>

namespace kal {

class HealthChecker;

class ProxyApp {
public:
  // `reload_config`: produces the configuration to switch to on SIGHUP or a file change (re-reads
  // the file and re-applies flags); null when the config came from flags only.
  using ConfigLoader = std::function<Result<Config>()>;

  // Runs on `loop` (not owned; it must outlive the ProxyApp).
  ProxyApp(uv_loop_t *loop, Config config, ConfigLoader reload_config, std::string watch_path);
  ~ProxyApp();

  // Binds everything and runs until SIGTERM/SIGINT and the grace period are over. Returns the
  // process exit code (0 after a clean shutdown, 1 when start-up failed; the error is logged and
  // printed).
  int run();

  // Re-reads the configuration and applies it without dropping connections (SIGHUP, file change).
  void reload(const char *trigger);

  // Internal, reached from C callbacks.
  void on_signal(int signum);
  void on_shutdown_tick();
  void on_watch_event(const char *filename);
  void on_watch_debounced();
  void on_drain_timer();
  void on_resolve_tick();
  void on_resolved(NameResolver::Answer &&a);
  void on_release_pages();

private:
  struct Thread {
    uv_loop_t loop;
    std::unique_ptr<uvx::UvTimeSource> time; // of `loop`; outlives the worker
    std::unique_ptr<Worker> worker;
    std::thread thread;
  };

  Result<bool> start();
  // Resolves host-name endpoints before anything listens (waiting a second at most). A name that
  // does not resolve leaves its endpoint unresolved (down) and is retried by the resolve timer.
  void resolve_names_at_start();
  // Starts lookups (NameResolver): unresolved names, and resolved ones due again (all: every name
  // not being looked up already).
  void resolve_names(bool all);
  std::shared_ptr<const UpstreamList> build_upstreams(const Config &c,
                                                      const UpstreamList *previous);
  Result<bool> start_admin(const Config &c);
  void begin_shutdown(int signum);
  void finish_shutdown();
  void for_each_worker(const std::function<void(Worker &)> &fn);
  void close_killed_everywhere();
  ProcessStats process_stats() const;
  // Endpoints shown in /metrics and /stats: the active ones, then those still draining.
  std::vector<std::shared_ptr<Upstream>> visible_upstreams() const;
  void arm_drain_timer();
  bool ready() const;

  Config config_;
  ConfigLoader loader_;
  std::string watch_path_;
  uv_loop_t *loop_;
  uvx::UvTimeSource time_; // of the main loop: the checker's and worker 0's; outlives both
  std::shared_ptr<const UpstreamList> ups_;
  struct Draining {
    std::shared_ptr<Upstream> up;
    uint64_t deadline_ms; // loop time at which its remaining connections are closed
  };
  std::vector<Draining> draining_;
  // Endpoints removed by reloads, kept (bounded) so process-wide totals never go backwards.
  std::vector<std::shared_ptr<Upstream>> retired_;
  // Host-name endpoints by name (host:port): their lookups, main loop only.
  struct NameState {
    bool in_flight = false; // one lookup at a time
    bool failing = false;   // the last lookup failed (logged once per failing run)
    uint64_t last_ms = 0;   // loop time the last lookup ended
  };
  std::map<std::string, NameState> names_;
  std::unique_ptr<NameResolver> resolver_;
  WorkerGroup group_; // outlives the workers below
  std::unique_ptr<Worker> main_worker_;
  std::vector<std::unique_ptr<Thread>> threads_;
  std::unique_ptr<HealthChecker> checker_;
  std::vector<std::unique_ptr<AdminServer>> admin_;
  std::vector<uvx::Handle<uv_signal_t>> signals_;
  uvx::Timer shutdown_timer_;
  uvx::Timer drain_timer_;
  uvx::Timer watch_debounce_;
  uvx::Timer resolve_timer_;
  uvx::Timer release_timer_;
  std::atomic<uint64_t> pick_cursor_{0}; // shared by every worker's picker
  uvx::Handle<uv_fs_event_t> watch_;
  uint64_t shutdown_deadline_ = 0;
  bool shutting_down_ = false;
  uint64_t reloads_ = 0;
  uint64_t reload_failures_ = 0;
  std::string config_hash_;
  std::string last_file_content_;
  double start_time_ = 0;
  int exit_code_ = 0;
};

// Raises RLIMIT_NOFILE's soft limit to the hard limit (thousands of watches and probes need it).
void raise_fd_limit();

} // namespace kal
