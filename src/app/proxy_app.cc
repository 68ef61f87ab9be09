#include "app/proxy_app.h"
#include "app/settings.h"
#include "kube_api_lb/version.h"
#include "sys/resident.h"

#include "health/checker.h"
#include "kube_api_lb/config/load.h"
#include "kube_api_lb/log/logger.h"
#include "uvx/sockaddr.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

namespace kal {
namespace {

// Start-up is over once the first health checks have run (rise 2 at the 250 ms fast interval,
// TLS handshakes included); 5 s leaves room for slow apiservers.
constexpr uint64_t kReleasePagesAfterMs = 5000;

// Host-name endpoints: an unresolved name is retried at every tick, a resolved one looked up again
// every kReResolveMs to follow an apiserver that moved.
constexpr uint64_t kResolveTickMs = 1000;
constexpr uint64_t kReResolveMs = 30000;
// Start-up waits this long for the first lookups before it listens.
constexpr uint64_t kStartResolveWaitMs = 1000;

void signal_cb(uv_signal_t *h, int signum) noexcept {
  if (auto *self = static_cast<ProxyApp *>(h->data)) {
    self->on_signal(signum);
  }
}

void shutdown_tick_cb(uv_timer_t *t) noexcept {
  if (auto *self = static_cast<ProxyApp *>(t->data)) {
    self->on_shutdown_tick();
  }
}

void drain_cb(uv_timer_t *t) noexcept {
  if (auto *self = static_cast<ProxyApp *>(t->data)) {
    self->on_drain_timer();
  }
}

void debounce_cb(uv_timer_t *t) noexcept {
  if (auto *self = static_cast<ProxyApp *>(t->data)) {
    self->on_watch_debounced();
  }
}

void resolve_tick_cb(uv_timer_t *t) noexcept {
  if (auto *self = static_cast<ProxyApp *>(t->data)) {
    self->on_resolve_tick();
  }
}

void release_pages_cb(uv_timer_t *t) noexcept {
  if (auto *self = static_cast<ProxyApp *>(t->data)) {
    self->on_release_pages();
  }
}

void fs_event_cb(uv_fs_event_t *h, const char *filename, int, int) noexcept {
  if (auto *self = static_cast<ProxyApp *>(h->data)) {
    self->on_watch_event(filename);
  }
}

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string read_file(const std::string &path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

bool same_addrs(const std::vector<sockaddr_storage> &a, const std::vector<sockaddr_storage> &b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](const auto &x, const auto &y) {
           return std::memcmp(&x, &y, sizeof x) == 0; // both zero-filled past the address
         });
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
      loop_(loop), time_(loop) {}

ProxyApp::~ProxyApp() = default;

std::shared_ptr<const UpstreamList> ProxyApp::build_upstreams(const Config &c,
                                                              const UpstreamList *previous) {
  auto list = std::make_shared<UpstreamList>();
  for (const auto &ep : c.endpoints) {
    std::shared_ptr<Upstream> up;
    if (previous) {
      for (const auto &old : *previous) {
        if (old->address() == ep) {
          up = old; // unchanged endpoint: keeps its connections, counters and health
        }
      }
    }
    if (!up) {
      up = std::make_shared<Upstream>(ep);
      sockaddr_storage ss;
      if (uvx::literal_sockaddr(ep, ss)) {
        up->set_addrs({ss});
      }
    }
    list->push_back(up);
  }
  return list;
}

void ProxyApp::resolve_names_at_start() {
  resolver_ = std::make_unique<NameResolver>(
      loop_, [this](NameResolver::Answer &&a) { on_resolved(std::move(a)); });
  resolve_names(true);
  // Before anything listens, the loop waits for the lookups, kStartResolveWaitMs at most: a
  // name that does not resolve, or a DNS server that does not answer, is no reason to keep the
  // node's kubelet from the endpoints that do. Those still unresolved stay down ("unresolved")
  // and are retried every tick; the lookups still running end in the background.
  auto pending = [this] {
    return std::any_of(names_.begin(), names_.end(),
                       [](const auto &kv) { return kv.second.in_flight; });
  };
  if (!pending()) {
    return;
  }
  uv_timer_t wait;
  uv_timer_init(loop_, &wait);
  uv_timer_start(
      &wait, [](uv_timer_t *) noexcept {}, kStartResolveWaitMs, 0);
  while (pending() && uv_is_active(reinterpret_cast<uv_handle_t *>(&wait))) {
    uv_run(loop_, UV_RUN_ONCE);
  }
  uv_close(reinterpret_cast<uv_handle_t *>(&wait), nullptr);
  uv_run(loop_, UV_RUN_NOWAIT); // runs the close
  for (const auto &[name, st] : names_) {
    if (st.in_flight) {
      log::warn("endpoint host name not resolved yet, serving without it until it is")
          .kv("endpoint", name)
          .kv("waited_ms", kStartResolveWaitMs);
    }
  }
}

void ProxyApp::on_resolve_tick() { resolve_names(false); }

void ProxyApp::resolve_names(bool all) {
  // Unresolved names are retried at every tick; resolved ones are re-resolved every
  // kReResolveMs (or now, on a reload) so a moved apiserver is followed. One lookup per name
  // at a time: a resolver that hangs never piles up lookup threads.
  const uint64_t now = uv_now(loop_);
  for (const auto &up : *ups_) {
    if (up->address().kind != HostPort::Kind::Name) {
      continue;
    }
    NameState &st = names_[up->name()];
    if (st.in_flight) {
      continue;
    }
    sockaddr_storage any;
    bool resolved = up->first_addr(any);
    if (resolved && !all && now - st.last_ms < kReResolveMs) {
      continue;
    }
    if (!resolver_ || !resolver_->lookup(up->name(), up->address().host, up->address().port)) {
      continue;
    }
    st.in_flight = true;
  }
}

void ProxyApp::on_resolved(NameResolver::Answer &&a) {
  auto it = names_.find(a.key);
  if (it == names_.end()) {
    return; // removed by a reload while its lookup ran
  }
  NameState &st = it->second;
  st.in_flight = false;
  st.last_ms = uv_now(loop_);
  std::shared_ptr<Upstream> up;
  for (const auto &u : *ups_) {
    if (u->name() == a.key) {
      up = u;
    }
  }
  if (!up) {
    return;
  }
  if (!a.error.empty()) {
    if (!st.failing) {
      st.failing = true;
      bool had = !up->addrs().empty();
      log::warn(had ? "re-resolving endpoint failed, keeping previous addresses"
                    : "cannot resolve endpoint host name, retrying every second")
          .kv("endpoint", up->name())
          .kv("error", a.error);
    }
    return;
  }
  bool changed = !same_addrs(a.addrs, up->addrs());
  if (changed || st.failing) {
    log::info("resolved endpoint")
        .kv("endpoint", up->name())
        .kv("address", uvx::to_string(reinterpret_cast<sockaddr *>(&a.addrs.front())));
  }
  st.failing = false;
  if (changed) {
    up->set_addrs(std::move(a.addrs));
  }
}

// Not ready once shutting down, as kube-apiserver's /readyz: the process is going away.
bool ProxyApp::ready() const {
  return !shutting_down_ && any_usable(*ups_, config_.health.mode != HealthMode::None);
}

ProcessStats ProxyApp::process_stats() const {
  ProcessStats ps;
  ps.ready = ready();
  ps.workers = config_.workers;
  ps.reloads = reloads_;
  ps.reload_failures = reload_failures_;
  ps.config_hash = config_hash_;
  ps.config_source = config_.source;
  ps.start_time_seconds = start_time_;
  ps.health_mode = to_string(config_.health.mode);
  for (const auto *list : {ups_.get(), &retired_}) {
    for (const auto &u : *list) {
      ps.drained += u->counters.drained.load(std::memory_order_relaxed);
      ps.closed_on_down += u->counters.closed_on_down.load(std::memory_order_relaxed);
    }
  }
  for (const auto &d : draining_) {
    ps.drained += d.up->counters.drained.load(std::memory_order_relaxed);
    ps.closed_on_down += d.up->counters.closed_on_down.load(std::memory_order_relaxed);
  }
  ps.accepted = main_worker_ ? main_worker_->accepted_total() : 0;
  ps.active = main_worker_ ? main_worker_->session_count() : 0;
  ps.spliced_bytes = main_worker_ ? main_worker_->spliced_total() : 0;
  ps.handed_over = main_worker_ ? main_worker_->handed_over_total() : 0;
  for (const auto &t : threads_) {
    ps.accepted += t->worker->accepted_total();
    ps.active += t->worker->session_count();
    ps.spliced_bytes += t->worker->spliced_total();
    ps.handed_over += t->worker->handed_over_total();
  }
  return ps;
}

Result<bool> ProxyApp::start_admin(const Config &c) {
  admin_.clear();
  AdminHandlers h;
  h.ready = [this] { return ready(); };
  h.metrics = [this] { return render_prometheus(visible_upstreams(), process_stats()); };
  h.stats = [this] { return render_stats_json(visible_upstreams(), process_stats()); };
  h.not_ready_reason = [this] {
    return std::string(shutting_down_ ? "shutting down\n" : "no apiserver endpoint is ready\n");
  };
  h.readiness_detail = [this] {
    std::string s = shutting_down_ ? "[-]shutdown in progress\n" : "";
    for (const auto &u : *ups_) {
      // Appended piece by piece: operator+ chains here draw a false -Wrestrict from GCC 12.
      s += u->health() == Health::Up ? "[+]endpoint " : "[-]endpoint ";
      s += u->name();
      s += ' ';
      s += to_string(u->health());
      s += '\n';
    }
    return s;
  };
  if (!c.admin.listen.empty()) {
    auto a = std::make_unique<AdminServer>(loop_, h, false);
    for (const auto &addr : c.admin.listen) {
      if (auto r = a->listen(addr); !r) {
        return r;
      }
    }
    admin_.push_back(std::move(a));
  }
  if (!c.admin.healthz_listen.empty()) {
    auto a = std::make_unique<AdminServer>(loop_, h, true);
    for (const auto &addr : c.admin.healthz_listen) {
      if (auto r = a->listen(addr); !r) {
        return r;
      }
    }
    admin_.push_back(std::move(a));
  }
  return true;
}

void ProxyApp::for_each_worker(const std::function<void(Worker &)> &fn) {
  if (main_worker_) {
    fn(*main_worker_);
  }
  for (auto &t : threads_) {
    Worker *w = t->worker.get();
    w->post([w, fn] { fn(*w); });
  }
}

void ProxyApp::close_killed_everywhere() {
  for_each_worker([](Worker &w) { w.close_killed_sessions(); });
}

Result<bool> ProxyApp::start() {
  start_time_ = unix_now();
  config_hash_ = config_hash(config_);
  ups_ = build_upstreams(config_, nullptr);
  resolve_names_at_start();
  auto settings = proxy_settings_from(config_);
  main_worker_ = std::make_unique<Worker>(loop_, time_, 0, settings, ups_);
  main_worker_->share_pick_cursor(&pick_cursor_);
  bool reuseport = Worker::reuseport_for(config_.workers);
  if (auto r = main_worker_->listen(config_.listen, nullptr, reuseport); !r) {
    return r;
  }
  for (int i = 1; i < config_.workers; ++i) {
    auto t = std::make_unique<Thread>();
    uv_loop_init(&t->loop);
    t->time = std::make_unique<uvx::UvTimeSource>(&t->loop);
    t->worker = std::make_unique<Worker>(&t->loop, *t->time, i, settings, ups_);
    t->worker->share_pick_cursor(&pick_cursor_);
    ListenFds shared;
    if (!reuseport) {
      main_worker_->dup_listen_fds(shared);
    }
    if (auto r = t->worker->listen(config_.listen, &shared, reuseport); !r) {
      t->worker.reset();
      uv_run(&t->loop, UV_RUN_DEFAULT);
      uv_loop_close(&t->loop);
      return r;
    }
    threads_.push_back(std::move(t));
  }
  if (auto r = start_admin(config_); !r) {
    return r;
  }
  checker_ = std::make_unique<HealthChecker>(
      loop_, time_, config_.health,
      [this](Upstream &u, Health old_h, Health new_h, CheckResult why) {
        if (new_h == Health::Down && is_hard_failure(why)) {
          close_killed_everywhere();
        }
      });
  if (!checker_->tls_error().empty()) {
    return Err{checker_->tls_error()}; // names the file; never a reason to fail the endpoints
  }
  auto poke = [this] { checker_->poke(); };
  main_worker_->on_passive_failure = poke;
  for (auto &t : threads_) {
    t->worker->on_passive_failure = poke;
  }
  checker_->set_upstreams(*ups_);

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
  shutdown_timer_.init(loop_, this);
  drain_timer_.init(loop_, this);
  watch_debounce_.init(loop_, this);
  resolve_timer_.init(loop_, this);
  // Unresolved names are retried every tick, the others re-resolved every kReResolveMs (the timer
  // does nothing when every endpoint is an IP).
  resolve_timer_.start(resolve_tick_cb, kResolveTickMs, kResolveTickMs);
  resolve_timer_.unref();
  // Code that ran once (flags, config readers, the first TLS handshakes of the health checks) is
  // handed back to the kernel now and again once the first checks have settled; see
  // sys/resident.h. A page still in use costs one minor fault to map again.
  release_timer_.init(loop_, this);
  release_timer_.start(release_pages_cb, kReleasePagesAfterMs);
  release_timer_.unref();
  if (!watch_path_.empty()) {
    last_file_content_ = read_file(watch_path_);
    // Watch the directory: kubelet and Ansible replace the file by an atomic rename, which a
    // watch on the old inode would miss.
    auto dir = std::filesystem::path(watch_path_).parent_path().string();
    auto *w = watch_.make(this);
    if (uv_fs_event_init(loop_, w) != 0) {
      watch_.abandon();
    } else if (uv_fs_event_start(w, fs_event_cb, dir.empty() ? "." : dir.c_str(), 0) != 0) {
      watch_.reset();
      log::warn("cannot watch the config file; reload with SIGHUP").kv("path", watch_path_);
    }
  }
  if (!reuseport && !threads_.empty()) {
    // Loops polling one shared socket even out what they accept (see WorkerGroup).
    // The thread loops do not run yet: set directly.
    group_.add(main_worker_.get());
    main_worker_->join(&group_);
    for (auto &t : threads_) {
      group_.add(t->worker.get());
      t->worker->join(&group_);
    }
  }
  for (auto &t : threads_) {
    uv_loop_t *l = &t->loop;
    t->thread = std::thread([l] { uv_run(l, UV_RUN_DEFAULT); });
  }
  std::string listen;
  for (const auto &l : config_.listen) {
    listen += (listen.empty() ? "" : ",") + l.str();
  }
  std::string eps;
  for (const auto &e : config_.endpoints) {
    eps += (eps.empty() ? "" : ",") + e.str();
  }
  std::string admin;
  for (const auto &a : config_.admin.listen) {
    admin += (admin.empty() ? "" : ",") + a.str();
  }
  log::info("kube-api-lb started")
      .kv("version", KAL_VERSION)
      .kv("listen", listen)
      .kv("endpoints", eps)
      .kv("policy", to_string(config_.policy))
      .kv("health_check", to_string(config_.health.mode))
      .kv("admin", admin)
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
  for (auto &t : threads_) {
    if (t->thread.joinable()) {
      t->thread.join();
    }
    int index = t->worker ? t->worker->index() : -1;
    t->worker.reset();
    uv_run(&t->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&t->loop) != 0) {
      log::warn("worker loop did not close cleanly").kv("worker", index);
    }
  }
  threads_.clear();
  main_worker_.reset();
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
  group_.close();
  for_each_worker([](Worker &w) { w.stop_accepting(); });
  shutdown_deadline_ = uv_now(loop_) + static_cast<uint64_t>(config_.shutdown_grace.count());
  shutdown_timer_.start(shutdown_tick_cb, 0, 50);
}

void ProxyApp::on_shutdown_tick() {
  auto active = process_stats().active;
  if (active == 0 || uv_now(loop_) >= shutdown_deadline_) {
    if (active > 0) {
      log::info("grace period over, closing open connections").kv("open_connections", active);
    }
    finish_shutdown();
  }
}

void ProxyApp::finish_shutdown() {
  group_.close();
  for_each_worker([](Worker &w) {
    w.stop_accepting();
    w.close_all(Session::CloseReason::Shutdown);
  });
  if (checker_) {
    checker_->stop();
  }
  admin_.clear();
  signals_.clear();
  shutdown_timer_.reset();
  drain_timer_.reset();
  watch_debounce_.reset();
  resolve_timer_.reset();
  resolver_.reset(); // lookups still running are abandoned: the process does not wait for DNS
  release_timer_.reset();
  watch_.reset();
}

void ProxyApp::on_release_pages() {
  std::size_t released = release_startup_pages();
  if (log::v(2)) {
    log::debug("start-up pages released").kv("mapped_bytes", released);
  }
}

void ProxyApp::on_watch_event(const char *filename) {
  // The directory is watched (atomic renames replace the inode); other files in it are not ours.
  // A rename into place reports the target's name.
  if (filename && std::filesystem::path(watch_path_).filename() != filename) {
    return;
  }
  // Editors and kubelet produce bursts of events; settle for 200 ms.
  watch_debounce_.start(debounce_cb, 200);
}

void ProxyApp::on_watch_debounced() {
  std::error_code ec;
  if (!std::filesystem::exists(watch_path_, ec)) {
    return; // between unlink and rename: the next event brings the new file
  }
  auto content = read_file(watch_path_);
  if (content == last_file_content_) {
    return;
  }
  reload("file change");
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
  if (!watch_path_.empty()) {
    last_file_content_ = read_file(watch_path_);
  }
  auto next = loader_();
  if (!next) {
    ++reload_failures_;
    log::error("configuration reload rejected; the running configuration stays")
        .kv("trigger", trigger)
        .kv("error", next.error());
    return;
  }
  Config &n = *next;
  auto hash = config_hash(n);
  if (hash == config_hash_) {
    log::info("configuration unchanged").kv("trigger", trigger);
    return;
  }
  // Listeners first: if a new address cannot be bound, nothing else changes.
  bool listen_changed = n.listen != config_.listen || n.workers != config_.workers;
  if (n.workers != config_.workers) {
    ++reload_failures_;
    log::error("configuration reload rejected: changing workers needs a restart")
        .kv("trigger", trigger);
    return;
  }
  if (listen_changed) {
    // Unchanged addresses keep their sockets (and pending connections); only the difference is
    // bound or closed. If a new address cannot be bound nothing changes.
    bool reuseport = Worker::reuseport_for(n.workers);
    if (auto r = main_worker_->listen(n.listen, nullptr, reuseport); !r) {
      ++reload_failures_;
      log::error("configuration reload rejected; the running configuration stays")
          .kv("trigger", trigger)
          .kv("error", r.error());
      return;
    }
    for (auto &t : threads_) {
      Worker *w = t->worker.get();
      auto addrs = n.listen;
      // Duplicated now, on this thread, while the main worker's sockets are certainly open.
      auto shared = std::make_shared<ListenFds>();
      if (!reuseport) {
        main_worker_->dup_listen_fds(*shared);
      }
      w->post([w, addrs, shared, reuseport] {
        if (auto r = w->listen(addrs, shared.get(), reuseport); !r) {
          log::error("worker could not bind new listeners").kv("error", r.error());
        }
      });
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
  auto old = ups_;
  // An endpoint removed by an earlier reload and still draining is the same endpoint if this one
  // adds it back: its connections stay (its drain deadline is dropped) instead of being closed.
  UpstreamList known(old->begin(), old->end());
  for (const auto &d : draining_) {
    known.push_back(d.up);
  }
  auto next_ups = build_upstreams(n, &known);
  std::erase_if(draining_, [&](const Draining &d) {
    for (const auto &k : *next_ups) {
      if (k.get() == d.up.get()) {
        d.up->set_removed(false);
        log::info("removed endpoint added back before its drain timeout; its connections stay")
            .kv("endpoint", d.up->name())
            .kv("connections", d.up->counters.active.load());
        return true;
      }
    }
    return false;
  });
  for (const auto &u : *old) {
    bool kept = false;
    for (const auto &k : *next_ups) {
      kept |= k.get() == u.get();
    }
    if (!kept) {
      u->set_removed();
      draining_.push_back({u, uv_now(loop_) + static_cast<uint64_t>(
                                                  std::max<int64_t>(0, n.drain_timeout.count()))});
      log::info("endpoint removed; draining its connections")
          .kv("endpoint", u->name())
          .kv("connections", u->counters.active.load())
          .kv("drain_timeout", static_cast<int64_t>(n.drain_timeout.count()));
    }
  }
  for (const auto &u : *next_ups) {
    bool existed = false;
    for (const auto &o : known) {
      existed |= o.get() == u.get();
    }
    if (!existed) {
      log::info("endpoint added; health-checked before it gets traffic").kv("endpoint", u->name());
    }
  }
  ups_ = next_ups;
  arm_drain_timer();
  log::set_format(n.log_format);
  log::set_verbosity(n.verbosity);
  // Health first: a rejected change reverts n.health before the workers get their settings.
  if (n.health != config_.health) {
    // Same checker, new settings: unchanged endpoints keep their state and check connection.
    // Unloadable TLS files reject the new health settings; the running ones (and their TLS
    // context) stay, and config_hash_ is that of what runs, so the next reload tries again.
    if (auto r = checker_->reconfigure(n.health); !r) {
      ++reload_failures_;
      log::error("health-check settings of the reload rejected; the running ones stay")
          .kv("trigger", trigger)
          .kv("error", r.error());
      n.health = config_.health;
      hash = config_hash(n);
    }
  }
  auto settings = proxy_settings_from(n);
  auto list = ups_;
  main_worker_->set_settings(settings);
  main_worker_->set_upstreams(list);
  for (auto &t : threads_) {
    Worker *w = t->worker.get();
    w->post([w, settings, list] {
      w->set_settings(settings);
      w->set_upstreams(list);
    });
  }
  config_ = n;
  // New names resolve in the background; until then their dials fail over to other endpoints
  // and their checks report "unresolved". The loop never waits for DNS. Names no endpoint uses
  // any more are forgotten (a lookup still running for one is then ignored when it ends).
  for (auto it = names_.begin(); it != names_.end();) {
    bool used = std::any_of(ups_->begin(), ups_->end(),
                            [&](const auto &u) { return u->name() == it->first; });
    it = used ? std::next(it) : names_.erase(it);
  }
  resolve_names(true);
  checker_->set_upstreams(*ups_);
  config_hash_ = hash;
  ++reloads_;
  log::info("configuration reloaded")
      .kv("trigger", trigger)
      .kv("config_hash", config_hash_)
      .kv("endpoints", static_cast<uint64_t>(ups_->size()));
}

void ProxyApp::arm_drain_timer() {
  if (draining_.empty()) {
    drain_timer_.stop();
    return;
  }
  uint64_t next = UINT64_MAX;
  for (const auto &d : draining_) {
    next = std::min(next, d.deadline_ms);
  }
  uint64_t now = uv_now(loop_);
  drain_timer_.start(drain_cb, next > now ? next - now : 0);
}

void ProxyApp::on_drain_timer() {
  // Each removed endpoint keeps its own deadline: a later reload never postpones an earlier drain.
  uint64_t now = uv_now(loop_);
  std::vector<std::shared_ptr<Upstream>> due;
  std::erase_if(draining_, [&](const Draining &d) {
    if (d.deadline_ms > now) {
      return false;
    }
    due.push_back(d.up);
    return true;
  });
  if (!due.empty()) {
    for_each_worker([due](Worker &w) { w.close_sessions_of(due); });
    for (const auto &u : due) {
      log::info("drain timeout over; closing remaining connections")
          .kv("endpoint", u->name())
          .kv("connections", u->counters.active.load());
      retired_.push_back(u);
    }
    if (retired_.size() > 64) {
      retired_.erase(retired_.begin(), retired_.begin() + (retired_.size() - 64));
    }
  }
  arm_drain_timer();
}

std::vector<std::shared_ptr<Upstream>> ProxyApp::visible_upstreams() const {
  std::vector<std::shared_ptr<Upstream>> v(ups_->begin(), ups_->end());
  for (const auto &d : draining_) {
    v.push_back(d.up);
  }
  return v;
}

} // namespace kal
