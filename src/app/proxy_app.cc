#include "app/proxy_app.h"
#include "admin/status_page.h"
#include "app/endpoint_discovery.h"
#include "app/settings.h"
#include "kube_api_lb/version.h"
#include "sys/resident.h"

#include "health/checker.h"
#include "kube_api_lb/config/load.h"
#include "kube_api_lb/log/logger.h"
#include "uvx/sockaddr.h"

#include <sys/resource.h>

#include <chrono>
#include <csignal>
#include <cstdio>

namespace kal {
namespace {

// Start-up is over once the first health checks have run (rise 2 at the 250 ms fast interval,
// TLS handshakes included); 5 s leaves room for slow apiservers.
constexpr uint64_t kReleasePagesAfterMs = 5000;
// While shutting down, how often the open connections are counted.
constexpr uint64_t kShutdownTickMs = 50;

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// An endpoint's Upstream, its address filled in when it is an IP literal (names are resolved by
// the NameRefresher).
std::shared_ptr<Upstream> make_upstream(const HostPort &ep) {
  auto up = std::make_shared<Upstream>(ep);
  // Unknown since now, on the monotonic base the checker's transitions use (uvx/time_source.h).
  up->health_counters.health_since_ms.store(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                std::chrono::steady_clock::now().time_since_epoch())
                                                .count(),
                                            std::memory_order_relaxed);
  sockaddr_storage ss;
  if (uvx::literal_sockaddr(ep, ss)) {
    up->set_addrs({ss});
  }
  return up;
}

template <class List> std::string joined(const List &items) {
  std::string s;
  for (const auto &i : items) {
    s += s.empty() ? "" : ",";
    s += i.str();
  }
  return s;
}

} // namespace

void raise_fd_limit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

ProxyApp::ProxyApp(uv_loop_t *loop, Config config, ConfigLoader loader, std::string watch_path)
    : config_(std::move(config)), loader_(std::move(loader)), watch_path_(std::move(watch_path)),
      loop_(loop), time_(loop), upstreams_(make_upstream), names_(loop), pool_(loop, time_) {}

ProxyApp::~ProxyApp() = default;

void ProxyApp::signal_cb(uv_signal_t *h, int signum) noexcept {
  if (auto *self = uvx::owner_of<ProxyApp>(h)) {
    self->on_signal(signum);
  }
}

void ProxyApp::shutdown_tick_cb(uv_timer_t *t) noexcept {
  if (auto *self = uvx::owner_of<ProxyApp>(t)) {
    self->on_shutdown_tick();
  }
}

void ProxyApp::drain_cb(uv_timer_t *t) noexcept {
  if (auto *self = uvx::owner_of<ProxyApp>(t)) {
    self->on_drain_timer();
  }
}

void ProxyApp::release_pages_cb(uv_timer_t *t) noexcept {
  if (auto *self = uvx::owner_of<ProxyApp>(t)) {
    self->on_release_pages();
  }
}

// uv_now: the loop's monotonic milliseconds, on the same clock as steady_clock (CLOCK_MONOTONIC).
UpstreamSet::TimePoint ProxyApp::loop_now() const {
  return UpstreamSet::TimePoint(std::chrono::milliseconds(uv_now(loop_)));
}

// Not ready once shutting down, as kube-apiserver's /readyz: the process is going away.
bool ProxyApp::ready() const {
  return !shutting_down_ &&
         any_usable(*upstreams_.active(), config_.health.mode != HealthMode::None);
}

ProcessStats ProxyApp::process_stats() const {
  ProcessStats ps;
  ps.ready = ready();
  ps.workers = config_.workers;
  ps.reloads = reloads_;
  ps.reload_failures = reload_failures_;
  ps.last_reload_ok = last_reload_ok_;
  ps.config_hash = config_hash_;
  ps.config_source = config_.source;
  ps.start_time_seconds = start_time_;
  ps.health_mode = to_string(config_.health.mode);
  ps.policy = to_string(config_.policy);
  for (const auto &l : config_.listen) {
    ps.listeners.push_back(l.str());
  }
  for (const auto &l : config_.admin.listen) {
    ps.admin_listeners.push_back(l.str());
  }
  ps.readiness = ps.ready         ? std::string("ready")
                 : shutting_down_ ? std::string("not ready: shutting down")
                                  : std::string("not ready: no apiserver endpoint is ready");
  ps.now_unix = unix_now();
  ps.now_mono_ms = static_cast<int64_t>(uv_now(loop_));
  ps.events = events_.newest_first(EventLog::kCapacity);
  if (discovery_) {
    ps.discovery = discovery_->status();
  }
  for (const auto &u : upstreams_.counted()) {
    ps.drained += u->counters.drained.load(std::memory_order_relaxed);
    ps.closed_on_down += u->counters.closed_on_down.load(std::memory_order_relaxed);
  }
  auto t = pool_.totals();
  ps.accepted = t.accepted;
  ps.active = t.active;
  ps.spliced_bytes = t.spliced_bytes;
  ps.out_of_resources = t.out_of_resources;
  ps.handed_over = t.handed_over;
  return ps;
}

Result<bool> ProxyApp::start_admin(const Config &c) {
  admin_.clear();
  AdminHandlers h;
  h.ready = [this] { return ready(); };
  h.metrics = [this] { return render_prometheus(upstreams_.visible(), process_stats()); };
  h.stats = [this] { return render_stats_json(upstreams_.visible(), process_stats()); };
  h.stats_compact = [this] { return render_stats_json(upstreams_.visible(), process_stats(), -1); };
  h.status_page = [this] { return render_status_page(upstreams_.visible(), process_stats()); };
  h.status_page_csp = status_page_csp();
  h.not_ready_reason = [this] {
    return std::string(shutting_down_ ? "shutting down\n" : "no apiserver endpoint is ready\n");
  };
  h.readiness_detail = [this] {
    std::string s = shutting_down_ ? "[-]shutdown in progress\n" : "";
    for (const auto &u : *upstreams_.active()) {
      // Appended piece by piece: operator+ chains here draw a false -Wrestrict from GCC 12.
      s += u->health() == Health::Up ? "[+]endpoint " : "[-]endpoint ";
      s += u->name();
      s += ' ';
      s += to_string(u->health());
      s += " source=";
      s += source_name(u->sources());
      if (u->withdrawn()) {
        s += " withdrawn";
      }
      s += health_rtt_detail(*u);
      s += '\n';
    }
    return s;
  };
  for (bool healthz_only : {false, true}) {
    const auto &addrs = healthz_only ? c.admin.healthz_listen : c.admin.listen;
    if (addrs.empty()) {
      continue;
    }
    auto a = std::make_unique<AdminServer>(loop_, h, healthz_only);
    for (const auto &addr : addrs) {
      if (auto r = a->listen(addr); !r) {
        return r;
      }
    }
    admin_.push_back(std::move(a));
  }
  return true;
}

Result<bool> ProxyApp::install_signals() {
  for (int signum : {SIGTERM, SIGINT, SIGHUP}) {
    uvx::Handle<uv_signal_t> h;
    auto *s = h.make(this);
    if (uv_signal_init(loop_, s) != 0) {
      h.abandon();
      return Err{"cannot install signal handler"};
    }
    uv_signal_start(s, signal_cb, signum);
    uv_unref(h.base());
    signals_.push_back(std::move(h));
  }
  return true;
}

Result<bool> ProxyApp::start() {
  start_time_ = unix_now();
  note_event(EventKind::Start, "", std::string("kube-api-lb ") + KAL_VERSION + " started");
  config_hash_ = config_hash(config_);
  setup_discovery(config_);
  upstreams_.apply(desired_endpoints(config_), loop_now(), config_.drain_timeout);
  // Host names are looked up before anything listens (a second at most).
  names_.start(*upstreams_.active());
  if (auto r = pool_.start(config_.workers, config_.listen, proxy_settings_from(config_),
                           upstreams_.active());
      !r) {
    return r;
  }
  if (auto r = start_admin(config_); !r) {
    return r;
  }
  checker_ = std::make_unique<HealthChecker>(
      loop_, time_, config_.health,
      [this](Upstream &u, Health old_h, Health new_h, CheckResult why) {
        note_health_event(u, old_h, new_h, why);
        if (new_h == Health::Down && is_hard_failure(why)) {
          pool_.post_to_all([](Worker &w) { w.close_killed_sessions(); });
        }
        if (discovery_ && old_h != new_h) {
          discovery_->on_health_change(u, new_h);
        }
      });
  if (!checker_->tls_error().empty()) {
    return Err{checker_->tls_error()}; // names the file; never a reason to fail the endpoints
  }
  pool_.on_passive_failure([this] { checker_->poke(); });
  checker_->set_upstreams(*upstreams_.active());
  if (discovery_) {
    discovery_->annotate(*upstreams_.active());
    discovery_->start();
  }
  if (auto r = install_signals(); !r) {
    return r;
  }
  shutdown_timer_.init(loop_, this);
  drain_timer_.init(loop_, this);
  // Code that ran once (flags, config readers, the first TLS handshakes of the health checks) is
  // handed back to the kernel now and again once the first checks have settled; see
  // sys/resident.h. A page still in use costs one minor fault to map again.
  release_timer_.init(loop_, this);
  release_timer_.start(release_pages_cb, kReleasePagesAfterMs);
  release_timer_.unref();
  if (!watch_path_.empty()) {
    watcher_ =
        std::make_unique<ConfigWatcher>(loop_, watch_path_, [this] { reload("file change"); });
    watcher_->start();
  }
  pool_.run();
  log::info("kube-api-lb started")
      .kv("version", KAL_VERSION)
      .kv("listen", joined(config_.listen))
      .kv("endpoints", joined(desired_endpoints(config_)))
      .kv("discovery", to_string(config_.discovery.mode))
      .kv("policy", to_string(config_.policy))
      .kv("health_check", to_string(config_.health.mode))
      .kv("admin", joined(config_.admin.listen))
      .kv("workers", config_.workers)
      .kv("config", config_.source)
      .kv("config_hash", config_hash_);
  return true;
}

int ProxyApp::run() {
  signal(SIGPIPE, SIG_IGN);
  raise_fd_limit();
  auto started = start();
  if (!started) {
    std::fprintf(stderr, "kube-api-lb: error: %s\n", started.error().c_str());
    exit_code_ = 1;
    finish_shutdown();
  } else {
    on_release_pages();
  }
  uv_run(loop_, UV_RUN_DEFAULT);
  pool_.join();
  uv_run(loop_, UV_RUN_DEFAULT);
  int rc = uv_loop_close(loop_);
  if (rc != 0) {
    log::warn("main loop did not close cleanly").kv("error", uv_err_name(rc));
  }
  if (exit_code_ == 0) {
    log::info("kube-api-lb stopped");
  }
  return exit_code_;
}

void ProxyApp::on_signal(int signum) {
  if (signum == SIGHUP) {
    reload("SIGHUP");
    return;
  }
  if (shutting_down_) {
    if (signum == SIGINT) {
      log::info("second interrupt: closing every connection now");
      finish_shutdown();
    }
    return;
  }
  begin_shutdown(signum);
}

void ProxyApp::begin_shutdown(int signum) {
  shutting_down_ = true;
  log::info("shutting down: no new connections, serving open ones")
      .kv("signal", signum == SIGTERM ? "SIGTERM" : "SIGINT")
      .kv("grace", static_cast<int64_t>(config_.shutdown_grace.count()))
      .kv("open_connections", process_stats().active);
  pool_.stop_accepting();
  shutdown_deadline_ = uv_now(loop_) + static_cast<uint64_t>(config_.shutdown_grace.count());
  shutdown_timer_.start(shutdown_tick_cb, 0, kShutdownTickMs);
}

void ProxyApp::on_shutdown_tick() {
  // Connections between exchanges (idle watches, idle keep-alives) end now so that their clients
  // reconnect to the process that replaces this one; the rest finish within the grace.
  pool_.close_quiet();
  auto active = process_stats().active;
  if (active == 0 || uv_now(loop_) >= shutdown_deadline_) {
    if (active > 0) {
      log::info("grace period over, closing open connections").kv("open_connections", active);
    }
    finish_shutdown();
  }
}

void ProxyApp::finish_shutdown() {
  if (discovery_) {
    discovery_->stop();
  }
  pool_.close_all();
  if (checker_) {
    checker_->stop();
  }
  admin_.clear();
  signals_.clear();
  shutdown_timer_.reset();
  drain_timer_.reset();
  if (watcher_) {
    watcher_->stop();
  }
  names_.stop();
  release_timer_.reset();
}

void ProxyApp::on_release_pages() {
  std::size_t released = release_startup_pages();
  if (log::v(2)) {
    log::debug("start-up pages released").kv("mapped_bytes", released);
  }
}

void ProxyApp::reload(const char *trigger) {
  if (shutting_down_) {
    return;
  }
  if (!loader_) {
    log::warn("reload requested but the configuration came from flags only; nothing to re-read")
        .kv("trigger", trigger);
    return;
  }
  if (watcher_) {
    watcher_->remember_content();
  }
  auto next = loader_();
  if (!next) {
    ++reload_failures_;
    last_reload_ok_ = false;
    note_event(EventKind::ReloadFailed, trigger, next.error());
    log::error("configuration reload rejected; the running configuration stays")
        .kv("trigger", trigger)
        .kv("error", next.error());
    return;
  }
  Config &n = *next;
  auto hash = config_hash(n);
  if (hash == config_hash_) {
    last_reload_ok_ = true; // what the file says is what runs
    log::info("configuration unchanged").kv("trigger", trigger);
    return;
  }
  if (n.workers != config_.workers) {
    ++reload_failures_;
    last_reload_ok_ = false;
    note_event(EventKind::ReloadFailed, trigger, "changing workers needs a restart");
    log::error("configuration reload rejected: changing workers needs a restart")
        .kv("trigger", trigger);
    return;
  }
  // Listeners first: if a new address cannot be bound, nothing else changes.
  if (n.listen != config_.listen) {
    if (auto r = pool_.listen(n.listen); !r) {
      ++reload_failures_;
      last_reload_ok_ = false;
      note_event(EventKind::ReloadFailed, trigger, r.error());
      log::error("configuration reload rejected; the running configuration stays")
          .kv("trigger", trigger)
          .kv("error", r.error());
      return;
    }
  }
  if (n.admin != config_.admin) {
    if (auto r = start_admin(n); !r) {
      log::error("admin listeners not changed").kv("error", r.error());
      start_admin(config_);
      n.admin = config_.admin;
      hash = config_hash(n); // what runs: the same file again retries the admin change
    }
  }
  setup_discovery(n);
  apply_endpoints(desired_endpoints(n), n.drain_timeout);
  log::set_format(n.log_format);
  log::set_verbosity(n.verbosity);
  // Health first: a rejected change reverts n.health before the workers get their settings.
  bool health_rejected = false;
  if (n.health != config_.health) {
    // Same checker, new settings: unchanged endpoints keep their state and check connection.
    // Unloadable TLS files reject the new health settings; the running ones (and their TLS
    // context) stay, and config_hash_ is that of what runs, so the next reload tries again.
    if (auto r = checker_->reconfigure(n.health); !r) {
      ++reload_failures_;
      health_rejected = true;
      note_event(EventKind::ReloadFailed, trigger, "health-check settings: " + r.error());
      log::error("health-check settings of the reload rejected; the running ones stay")
          .kv("trigger", trigger)
          .kv("error", r.error());
      n.health = config_.health;
      hash = config_hash(n);
    }
  }
  pool_.update(proxy_settings_from(n), upstreams_.active());
  config_ = n;
  // Until a new name resolves its dials fail over to other endpoints and its checks report
  // "unresolved".
  names_.set_upstreams(*upstreams_.active());
  checker_->set_upstreams(*upstreams_.active());
  if (discovery_) {
    discovery_->annotate(*upstreams_.active());
  }
  config_hash_ = hash;
  ++reloads_;
  last_reload_ok_ = !health_rejected; // the rest applied, but the file is not all that runs
  note_event(EventKind::Reload, trigger, "configuration " + config_hash_ + " applied");
  log::info("configuration reloaded")
      .kv("trigger", trigger)
      .kv("config_hash", config_hash_)
      .kv("endpoints", static_cast<uint64_t>(upstreams_.active()->size()));
}

std::vector<HostPort> ProxyApp::desired_endpoints(const Config &c) const {
  return discovery_ && c.discovery.mode == DiscoveryMode::EndpointSlices ? discovery_->endpoints()
                                                                         : c.endpoints;
}

void ProxyApp::setup_discovery(const Config &c) {
  if (c.discovery.mode != DiscoveryMode::EndpointSlices) {
    if (discovery_) {
      discovery_->stop();
      discovery_.reset();
      log::info("discovery: off; the endpoints are the configured ones");
      for (const auto &u : *upstreams_.active()) {
        u->set_withdrawn(false);
        u->set_sources(kSourceSeed);
        if (checker_) {
          checker_->set_outside_not_ready(u->name(), false, "discovery");
        }
      }
    }
    return;
  }
  if (discovery_) {
    discovery_->reconfigure(c);
    return;
  }
  EndpointDiscovery::Hooks hooks;
  hooks.apply = [this](const std::vector<HostPort> &eps) { apply_discovered(eps); };
  hooks.active = [this] { return upstreams_.active(); };
  hooks.withdrawn = [this](const Upstream &u, bool on) {
    if (checker_) {
      checker_->set_outside_not_ready(u.name(), on, "discovery");
    }
  };
  discovery_ = std::make_unique<EndpointDiscovery>(loop_, time_, c, hooks);
  if (checker_) {
    discovery_->start(); // enabled by a reload: the checker runs already
  }
}

void ProxyApp::apply_discovered(const std::vector<HostPort> &endpoints) {
  if (shutting_down_ || !checker_) {
    return;
  }
  apply_endpoints(endpoints, config_.drain_timeout);
  pool_.update(proxy_settings_from(config_), upstreams_.active());
  names_.set_upstreams(*upstreams_.active());
  checker_->set_upstreams(*upstreams_.active());
  if (discovery_) {
    discovery_->annotate(*upstreams_.active());
  }
}

void ProxyApp::apply_endpoints(const std::vector<HostPort> &endpoints, Millis drain_timeout) {
  auto ch = upstreams_.apply(endpoints, loop_now(), drain_timeout);
  for (const auto &u : ch.restored) {
    log::info("removed endpoint added back before its drain timeout; its connections stay")
        .kv("endpoint", u->name())
        .kv("connections", u->counters.active.load());
  }
  for (const auto &u : ch.removed) {
    note_event(EventKind::Removed, u->name(), "removed; its connections drain");
    log::info("endpoint removed; draining its connections")
        .kv("endpoint", u->name())
        .kv("connections", u->counters.active.load())
        .kv("drain_timeout", static_cast<int64_t>(drain_timeout.count()));
  }
  for (const auto &u : ch.added) {
    note_event(EventKind::Added, u->name(), "added; checked before it gets traffic");
    log::info("endpoint added; health-checked before it gets traffic").kv("endpoint", u->name());
  }
  arm_drain_timer();
}

void ProxyApp::note_event(EventKind kind, std::string subject, std::string text) {
  events_.add(
      Event{static_cast<int64_t>(unix_now() * 1000), kind, std::move(subject), std::move(text)});
}

void ProxyApp::note_health_event(const Upstream &u, Health old_h, Health new_h, CheckResult why) {
  if (old_h == new_h) {
    note_event(EventKind::Close, u.name(),
               std::string("connections closed: dead (") + to_string(why) + ")");
    return;
  }
  std::string text = to_string(old_h);
  text += " -> ";
  text += to_string(new_h);
  text += " (";
  // A passed check named by its layer, as HAProxy does (and the status page's "last check").
  text += why != CheckResult::Ok                   ? to_string(why)
          : config_.health.mode == HealthMode::Tcp ? "L4OK"
          : config_.health.mode == HealthMode::Tls ? "L6OK"
                                                   : "L7OK";
  text += ')';
  note_event(EventKind::Transition, u.name(), std::move(text));
}

void ProxyApp::arm_drain_timer() {
  auto next = upstreams_.next_deadline();
  if (!next) {
    drain_timer_.stop();
    return;
  }
  auto now = loop_now();
  auto delay = *next > now ? std::chrono::ceil<std::chrono::milliseconds>(*next - now).count() : 0;
  drain_timer_.start(drain_cb, static_cast<uint64_t>(delay));
}

void ProxyApp::on_drain_timer() {
  auto due = upstreams_.expire(loop_now());
  if (!due.empty()) {
    pool_.post_to_all([due](Worker &w) { w.close_sessions_of(due); });
    for (const auto &u : due) {
      log::info("drain timeout over; closing remaining connections")
          .kv("endpoint", u->name())
          .kv("connections", u->counters.active.load());
    }
  }
  arm_drain_timer();
}

} // namespace kal
