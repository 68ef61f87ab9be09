#include "health/checker.h"

#include "kube_api_lb/log/logger.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>

namespace kal {
namespace {

using std::chrono::milliseconds;

bool is_timeout(CheckResult r) {
  return r == CheckResult::L4Tout || r == CheckResult::L6Tout || r == CheckResult::L7Tout;
}

// HAProxy-style reason: "L7OK" / "L6OK" / "L4OK" for passes, else the failure's own name.
std::string reason_of(CheckResult r, HealthMode mode) {
  if (r == CheckResult::Ok) {
    return std::string(layer_of(r, mode)) + "OK";
  }
  return to_string(r);
}

ScheduleConfig schedule_config(const HealthConfig &c) {
  return ScheduleConfig{c.interval, c.fast_interval, c.down_interval, c.jitter};
}

} // namespace

const char *layer_of(CheckResult r, HealthMode mode) {
  switch (r) {
  case CheckResult::L4Con:
  case CheckResult::L4Tout:
    return "L4";
  case CheckResult::L6Rsp:
  case CheckResult::L6Tout:
    return "L6";
  case CheckResult::L7Rsp:
  case CheckResult::L7Tout:
  case CheckResult::L7Sts:
  case CheckResult::L7Auth:
    return "L7";
  case CheckResult::Ok:
    break;
  }
  return mode == HealthMode::Tcp ? "L4" : mode == HealthMode::Tls ? "L6" : "L7";
}

struct HealthChecker::Target {
  HealthChecker *owner = nullptr;
  std::shared_ptr<Upstream> up;
  HealthTracker tracker;
  std::unique_ptr<Probe> probe;
  std::unique_ptr<Timer> timer; // the next check
  TimePoint started;
  bool in_flight = false;
  bool recheck_now = false; // passive evidence arrived during a check: run the next one at once
  bool auth_warned = false;
  bool killed = false; // kill epoch bumped during the current down period
  bool retired = false;
  // When an idle close last brought a check forward (none yet: the epoch of the clock).
  TimePoint idle_recheck_at{};

  explicit Target(HealthTracker t) : tracker(t) {}
};

Result<std::shared_ptr<TlsContext>> HealthChecker::make_tls_context(const HealthConfig &cfg) {
  return TlsContext::client({cfg.ca_file, cfg.client_cert, cfg.client_key});
}

HealthChecker::HealthChecker(uv_loop_t *loop, TimeSource &time, HealthConfig cfg,
                             TransitionFn on_transition)
    : loop_(loop), time_(time), cfg_(std::move(cfg)), on_transition_(std::move(on_transition)),
      schedule_(schedule_config(cfg_), time_.seed()) {
  load_tls();
  reaper_ = time_.create_timer([this] { retired_.clear(); });
  tls_watch_ = time_.create_timer([this] { on_tls_watch(); }, TimerKind::Background);
  watch_tls();
  auto *a = async_.make(this);
  if (uv_async_init(loop_, a, &HealthChecker::async_cb) != 0) {
    async_.abandon();
  }
}

HealthChecker::~HealthChecker() { stop(); }

bool HealthChecker::needs_tls(const HealthConfig &cfg) {
  return cfg.mode == HealthMode::Https || cfg.mode == HealthMode::Tls;
}

std::vector<std::string> HealthChecker::tls_files(const HealthConfig &cfg) {
  std::vector<std::string> out;
  for (const std::string *f : {&cfg.ca_file, &cfg.client_cert, &cfg.client_key}) {
    if (!f->empty() && std::find(out.begin(), out.end(), *f) == out.end()) {
      out.push_back(*f);
    }
  }
  return out;
}

std::vector<HealthChecker::FileStamp>
HealthChecker::stamp_files(const std::vector<std::string> &files) {
  std::vector<FileStamp> out;
  for (const auto &f : files) {
    FileStamp s;
    struct stat st {};
    if (::stat(f.c_str(), &st) != 0) { // follows symlinks: a swapped link shows a new inode
      s.err = errno;
    } else {
      s.dev = static_cast<uint64_t>(st.st_dev);
      s.ino = static_cast<uint64_t>(st.st_ino);
      s.size = static_cast<int64_t>(st.st_size);
      s.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
    }
    out.push_back(s);
  }
  return out;
}

void HealthChecker::load_tls() {
  tls_.reset();
  tls_error_.clear();
  tls_reload_error_.clear();
  if (needs_tls(cfg_)) {
    // Stamped before loading: a file replaced in between looks changed at the next tick and is
    // loaded again, rather than a change going unnoticed.
    auto stamps = stamp_files(tls_files(cfg_));
    auto ctx = make_tls_context(cfg_);
    if (ctx.ok()) {
      tls_ = *ctx;
      tls_stamps_ = std::move(stamps);
    } else {
      tls_error_ = ctx.error();
      log::error("health checks cannot use TLS; no endpoint is checked").kv("error", tls_error_);
    }
  }
}

Result<bool> HealthChecker::reconfigure(HealthConfig cfg) {
  if (stopped_ || (cfg == cfg_ && tls_error_.empty())) {
    return true;
  }
  // Load the new files before touching anything: a local mistake (a missing or mismatched file)
  // must never fail the checks of healthy apiservers, so the running settings stay.
  std::shared_ptr<TlsContext> tls;
  std::vector<FileStamp> stamps;
  if (needs_tls(cfg)) {
    stamps = stamp_files(tls_files(cfg));
    auto ctx = make_tls_context(cfg);
    if (!ctx.ok()) {
      return Err{ctx.error()};
    }
    tls = *ctx;
  }
  const bool thresholds = cfg.rise != cfg_.rise || cfg.fall != cfg_.fall;
  cfg_ = std::move(cfg);
  schedule_ = CheckSchedule(schedule_config(cfg_), time_.seed());
  tls_ = std::move(tls);
  tls_error_.clear();
  tls_stamps_ = std::move(stamps);
  tls_reload_error_.clear();
  watch_tls();
  std::vector<std::unique_ptr<Target>> old = std::move(targets_);
  targets_.clear();
  if (cfg_.mode == HealthMode::None) {
    for (auto &t : old) {
      retire(std::move(t));
    }
    set_upstreams(ups_);
    return true;
  }
  for (const auto &u : ups_) {
    bool seen = !u;
    for (const auto &t : targets_) {
      seen = seen || t->up->name() == u->name();
    }
    if (seen) {
      continue; // null or duplicate, as set_upstreams() skips them
    }
    HealthTracker tracker(cfg_.rise, cfg_.fall);
    bool killed = false;
    for (auto &t : old) {
      if (t && t->up == u) {
        // New thresholds keep the verdict: an up endpoint still needs `fall` failures to go down.
        tracker = thresholds ? t->tracker.with_thresholds(cfg_.rise, cfg_.fall) : t->tracker;
        killed = t->killed; // its connections were closed already: no second "escalation"
        retire(std::move(t));
      }
    }
    auto t = make_target(u, tracker);
    t->killed = killed;
    schedule_in(*t, milliseconds(0));
    targets_.push_back(std::move(t));
  }
  for (auto &t : old) {
    if (t) {
      retire(std::move(t));
    }
  }
  return true;
}

void HealthChecker::set_tls_watch_interval(std::chrono::milliseconds d) {
  tls_watch_interval_ = d;
  watch_tls();
}

void HealthChecker::watch_tls() {
  if (!tls_watch_) {
    return; // stopped
  }
  if (stopped_ || !tls_ || tls_files(cfg_).empty()) {
    tls_watch_->disable();
    return;
  }
  tls_watch_->enable(std::max(tls_watch_interval_, milliseconds(1)));
}

void HealthChecker::on_tls_watch() {
  if (stopped_ || !tls_) {
    return;
  }
  watch_tls(); // the next tick, whatever this one finds
  const std::vector<std::string> files = tls_files(cfg_);
  std::vector<FileStamp> stamps = stamp_files(files);
  if (stamps == tls_stamps_) {
    return;
  }
  std::string changed;
  for (size_t i = 0; i < files.size(); i++) {
    if (i >= tls_stamps_.size() || stamps[i] != tls_stamps_[i]) {
      changed += (changed.empty() ? "" : ",") + files[i];
    }
  }
  auto ctx = make_tls_context(cfg_);
  if (!ctx.ok()) {
    // Mid-rotation (a file half written, the certificate renamed in before its key): the old
    // files still work until the old certificate expires, so keep them and look again next tick.
    // The stamps stay those of the running context, so every tick retries until one loads.
    if (ctx.error() != tls_reload_error_) {
      tls_reload_error_ = ctx.error();
      log::warn(
          "health-check TLS files changed but cannot be loaded; still using the previous ones")
          .kv("files", changed)
          .kv("error", ctx.error());
    }
    return;
  }
  tls_ = *ctx;
  tls_stamps_ = std::move(stamps);
  tls_reload_error_.clear();
  for (auto &t : targets_) {
    t->probe->set_tls(tls_); // a check in flight keeps the old context through its TlsEngine
  }
  log::info("health-check TLS files changed; reloaded").kv("files", changed);
}

std::unique_ptr<HealthChecker::Target> HealthChecker::make_target(std::shared_ptr<Upstream> up,
                                                                  HealthTracker tracker) {
  auto t = std::make_unique<Target>(tracker);
  t->owner = this;
  t->up = up;
  Target *tp = t.get();
  t->timer = time_.create_timer([this, tp] { on_timer(*tp); });
  ProbeOptions po;
  po.mode = cfg_.mode;
  po.path = cfg_.path;
  po.timeout = cfg_.timeout;
  po.tls = tls_;
  po.server_name = cfg_.server_name;
  t->probe = std::make_unique<Probe>(loop_, time_, std::move(up), std::move(po), [this, tp] {
    // The apiserver closed our idle check connection: it may be going away. Look now; the
    // re-check's own result (refused, or fine on a fresh connection) is what counts. At most once
    // per interval: a server that closes every kept-alive connection after its answer (or sends a
    // stray byte) would otherwise be checked back to back at round-trip speed, each check on a new
    // TLS connection. Otherwise the check already scheduled stands.
    if (tp->in_flight || tp->retired || stopped_) {
      return;
    }
    const TimePoint now = time_.now();
    const bool recheck =
        tp->idle_recheck_at == TimePoint{} || now - tp->idle_recheck_at >= cfg_.interval;
    if (log::v(1)) {
      log::debug("health check connection closed by peer")
          .kv("endpoint", tp->up->name())
          .kv("recheck_now", recheck);
    }
    if (recheck) {
      tp->idle_recheck_at = now;
      schedule_in(*tp, milliseconds(0));
    }
  });
  return t;
}

void HealthChecker::set_upstreams(const std::vector<std::shared_ptr<Upstream>> &ups) {
  if (stopped_) {
    return;
  }
  if (&ups != &ups_) {
    ups_ = ups;
  }
  if (cfg_.mode == HealthMode::None) {
    for (const auto &u : ups) {
      u->set_health(Health::Unknown);
    }
    for (auto &t : targets_) {
      retire(std::move(t));
    }
    targets_.clear();
    return;
  }
  std::vector<std::unique_ptr<Target>> next;
  for (const auto &u : ups) {
    if (!u) {
      continue;
    }
    bool duplicate = false;
    for (const auto &n : next) {
      duplicate = duplicate || n->up->name() == u->name();
    }
    if (duplicate) {
      continue;
    }
    std::unique_ptr<Target> *found = nullptr;
    for (auto &t : targets_) {
      if (t && t->up == u) {
        found = &t;
        break;
      }
    }
    for (auto &t : targets_) {
      if (!found && t && t->up->name() == u->name()) {
        found = &t;
      }
    }
    if (found && (*found)->up == u) {
      next.push_back(std::move(*found));
      continue;
    }
    if (found) {
      // Same endpoint, new Upstream object: carry the verdict over, re-check on a new probe.
      HealthTracker tracker = (*found)->tracker;
      const bool killed = (*found)->killed;
      retire(std::move(*found));
      u->set_health(tracker.health());
      auto t = make_target(u, tracker);
      t->killed = killed;
      schedule_in(*t, milliseconds(0));
      next.push_back(std::move(t));
      continue;
    }
    auto t = make_target(u, HealthTracker(cfg_.rise, cfg_.fall));
    schedule_in(*t, schedule_.initial_offset());
    next.push_back(std::move(t));
  }
  for (auto &t : targets_) {
    if (t) {
      retire(std::move(t));
    }
  }
  targets_ = std::move(next);
}

void HealthChecker::retire(std::unique_ptr<Target> t) {
  t->retired = true;
  t->timer.reset();
  t->probe->cancel();
  retired_.push_back(std::move(t));
  if (reaper_) {
    reaper_->enable(milliseconds(0));
  }
}

void HealthChecker::schedule_in(Target &t, milliseconds d) {
  if (t.timer) {
    t.timer->enable(std::max(d, milliseconds(0)));
  }
}

void HealthChecker::on_timer(Target &t) {
  if (t.retired || t.in_flight || stopped_) {
    return;
  }
  run_check(t);
}

void HealthChecker::run_check(Target &t) {
  if (!tls_ && needs_tls(cfg_)) {
    // The TLS files could not be loaded at construction (the owner refuses to start then): a
    // local setup error says nothing about the endpoint, so nothing is checked or recorded.
    return;
  }
  t.started = time_.now();
  t.in_flight = true;
  Target *tp = &t;
  t.probe->start([this, tp](const ProbeOutcome &o) { on_result(*tp, o); });
}

void HealthChecker::on_result(Target &t, const ProbeOutcome &o) {
  t.in_flight = false;
  Upstream &up = *t.up;
  auto &hc = up.health_counters;
  hc.checks.fetch_add(1, std::memory_order_relaxed);
  hc.last_check_micros.store(static_cast<uint64_t>(o.duration.count()), std::memory_order_relaxed);
  hc.last_result.store(static_cast<uint8_t>(o.result), std::memory_order_relaxed);
  if (o.result != CheckResult::Ok) {
    hc.failures[static_cast<size_t>(o.result)].fetch_add(1, std::memory_order_relaxed);
  }
  hc.auth_misconfigured.store(o.result == CheckResult::L7Auth, std::memory_order_relaxed);
  if (o.result == CheckResult::L7Auth && !t.auth_warned) {
    t.auth_warned = true;
    log::warn("health check not authorized: endpoint kept in service, draining cannot be seen")
        .kv("endpoint", up.name())
        .kv("path", cfg_.path)
        .kv("status", o.status)
        .kv("fix", "give the checker a client certificate (--health-client-cert and "
                   "--health-client-key) or let anonymous users read /readyz (kube-apiserver "
                   "--anonymous-auth=true with the default system:public-info-viewer binding)");
  } else if (o.result == CheckResult::Ok) {
    t.auth_warned = false;
  }

  // What the proxy saw before, which differs from the tracker's old state only when the tracker
  // was restarted (reconfigure with new thresholds, a reload that re-created the Upstream).
  const Health before = up.health();
  const TrackerUpdate u = t.tracker.record(o.result);
  const TimePoint now = time_.now();
  bool notify = false;
  bool escalated = false;
  if (u.transition == Transition::Changed && before != u.new_health) {
    up.set_health(u.new_health);
    hc.transitions.fetch_add(1, std::memory_order_relaxed);
    if (u.new_health == Health::Up) {
      // Slow start ramps only an endpoint seen failed before (as HAProxy: never at start-up,
      // when every endpoint comes up at once and none should be starved).
      up.set_up_since_ms(before == Health::Down ? mono_ms(now) : 0);
      t.killed = false;
    } else if (u.new_health == Health::Down && closes_connections(o.result, o.refused)) {
      // Crashed, hung or cut off: sessions bound to it will not recover, close them now.
      up.bump_kill_epoch();
      t.killed = true;
    }
    notify = true;
  } else if (u.new_health == Health::Down && !t.killed && is_timeout(o.result)) {
    // Down for draining or a refused connect (soft) and now not even answering: a drain or
    // shutdown that turned into a hang or a cut-off. Its connections will not be closed
    // gracefully any more. (A refused connect is the normal end of a drain and does not
    // escalate.)
    up.bump_kill_epoch();
    t.killed = true;
    notify = escalated = true;
  }

  if (u.transition != Transition::Unchanged || escalated || log::v(2)) {
    const char *msg = u.first                               ? "health first check"
                      : escalated                           ? "health escalated to hard failure"
                      : u.transition == Transition::Changed ? "health transition"
                      : u.transition == Transition::ChangePending ? "health check"
                                                                  : "health check unchanged";
    auto line =
        u.transition == Transition::Unchanged && !escalated ? log::debug(msg) : log::info(msg);
    line.kv("endpoint", up.name())
        .kv("health", to_string(u.new_health))
        .kv("progress", t.tracker.progress())
        .kv("reason", reason_of(o.result, cfg_.mode))
        .kv("layer", layer_of(o.result, cfg_.mode));
    if (o.status != 0) {
      line.kv("status", o.status);
    }
    if (!o.detail.empty()) {
      line.kv("detail", o.detail);
    }
    line.kv("check_ms", static_cast<double>(o.duration.count()) / 1000.0);
    if (u.transition == Transition::Changed && !u.first) {
      line.kv("was", to_string(u.old_health));
    }
    if (t.killed && (escalated || u.transition == Transition::Changed)) {
      line.kv("close_connections", true);
    }
  }

  if (!t.retired && !stopped_) {
    const TimePoint due = t.recheck_now ? now : schedule_.next_due(t.started, now, t.tracker);
    t.recheck_now = false;
    schedule_in(t, std::chrono::ceil<milliseconds>(due - now));
  }
  // Last: the owner may reload (set_upstreams) or stop() from here.
  if (notify && on_transition_) {
    on_transition_(up, escalated ? Health::Down : before, u.new_health, o.result);
  }
}

size_t HealthChecker::in_flight() const {
  if (stopped_) {
    return 0; // stop() cancelled them: none will end
  }
  return static_cast<size_t>(std::count_if(targets_.begin(), targets_.end(),
                                           [](const auto &t) { return t && t->in_flight; }));
}

void HealthChecker::poke() {
  std::lock_guard lock(async_mu_);
  if (async_) {
    uv_async_send(async_.get());
  }
}

void HealthChecker::async_cb(uv_async_t *a) noexcept {
  auto *self = static_cast<HealthChecker *>(a->data);
  if (!self) {
    return;
  }
  self->on_passive();
}

void HealthChecker::on_passive() {
  if (stopped_) {
    return;
  }
  for (auto &tp : targets_) {
    Target &t = *tp;
    const uint32_t n = t.up->take_passive_failures();
    if (n == 0 || cfg_.mode == HealthMode::None) {
      continue;
    }
    const TrackerUpdate u = t.tracker.record_passive_failures(n, CheckResult::L4Con);
    if (u.transition != Transition::Unchanged || log::v(1)) {
      auto line = u.transition != Transition::Unchanged ? log::info("health passive failure")
                                                        : log::debug("health passive failure");
      line.kv("endpoint", t.up->name())
          .kv("failures", static_cast<uint64_t>(n))
          .kv("health", to_string(t.tracker.health()))
          .kv("progress", t.tracker.progress());
    }
    if (t.tracker.health() == Health::Down) {
      continue; // already out of rotation: the down_interval checks will see it come back
    }
    if (t.in_flight) {
      t.recheck_now = true;
    } else {
      schedule_in(t, milliseconds(0));
    }
  }
}

void HealthChecker::stop() {
  if (stopped_) {
    return;
  }
  stopped_ = true;
  for (auto *list : {&targets_, &retired_}) {
    for (auto &t : *list) {
      if (t) {
        t->retired = true;
        t->timer.reset();
        t->probe->cancel();
      }
    }
  }
  reaper_.reset();
  tls_watch_.reset();
  std::lock_guard lock(async_mu_);
  async_.reset();
}

} // namespace kal
