#include "health/checker.h"
#include "health/checker_target.h"

#include "kube_api_lb/log/logger.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <optional>

namespace kal {
namespace {

using std::chrono::milliseconds;

ScheduleConfig schedule_config(const HealthConfig &c) {
  return ScheduleConfig{c.interval, c.fast_interval, c.down_interval, c.jitter};
}

BudgetConfig budget_config(const HealthConfig &c) {
  BudgetConfig b;
  b.ping_interval = c.interval;
  b.readyz_interval = c.readyz_interval;
  b.fast_interval = c.fast_interval;
  b.down_interval = c.down_interval;
  b.http1_interval = c.interval;
  b.jitter = c.jitter;
  b.trigger_min_gap = c.recheck_gap;
  return b;
}

RttConfig rtt_config(const HealthConfig &c) {
  RttConfig r;
  r.floor = c.timeout;
  return r;
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

Result<std::shared_ptr<TlsContext>> HealthChecker::make_tls_context(const HealthConfig &cfg) {
  return TlsContext::client(
      {cfg.ca_file, cfg.client_cert, cfg.client_key, cfg.mode == HealthMode::Https && cfg.http2});
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
    Verdict verdict(verdict_config());
    std::optional<RttEstimator> rtt;
    std::string outside_why;
    for (auto &t : old) {
      if (t && t->up == u) {
        // New thresholds keep the verdict: an up endpoint still needs `fall` failures to go down,
        // and a dead one whose connections were closed is not closed a second time.
        verdict = t->verdict.with_config(verdict_config());
        rtt = t->rtt;
        outside_why = t->outside_why;
        retire(std::move(t));
      }
    }
    auto t = make_target(u, verdict, rtt ? &*rtt : nullptr);
    t->outside_why = outside_why;
    t->budget.start(time_.now());
    arm(*t);
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

VerdictConfig HealthChecker::verdict_config() const {
  VerdictConfig v;
  v.rise = cfg_.rise;
  v.fall = cfg_.fall;
  v.dead_after = cfg_.fall;
  v.flap_window = cfg_.flap_window;
  return v;
}

std::unique_ptr<HealthChecker::Target> HealthChecker::make_target(std::shared_ptr<Upstream> up,
                                                                  const Verdict &verdict,
                                                                  const RttEstimator *rtt) {
  auto t = std::make_unique<Target>(verdict, budget_config(cfg_), rtt_config(cfg_), time_.seed());
  if (rtt) {
    t->rtt = rtt->with_config(rtt_config(cfg_));
  }
  t->owner = this;
  t->up = up;
  t->bytes_seen = up->counters.bytes_to_client.load(std::memory_order_relaxed);
  Target *tp = t.get();
  t->timer = time_.create_timer([this, tp] { on_timer(*tp); });
  ProbeOptions po;
  po.mode = cfg_.mode;
  po.path = cfg_.path;
  po.timeout = cfg_.timeout;
  po.tls = tls_;
  po.server_name = cfg_.server_name;
  t->probe = std::make_unique<Probe>(loop_, time_, std::move(up), std::move(po),
                                     [this, tp] { on_idle_close(*tp); });
  t->probe->set_on_event([this, tp](const ProbeEvent &e) { on_probe_event(*tp, e); });
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
      const Verdict verdict = (*found)->verdict;
      const RttEstimator rtt = (*found)->rtt;
      const std::string outside_why = (*found)->outside_why;
      retire(std::move(*found));
      u->set_health(verdict.health());
      u->health_counters.outside_not_ready.store(verdict.outside_not_ready());
      auto t = make_target(u, verdict, &rtt);
      t->outside_why = outside_why;
      t->budget.start(time_.now());
      arm(*t);
      next.push_back(std::move(t));
      continue;
    }
    auto t = make_target(u, Verdict(verdict_config()));
    t->budget.start(time_.now(), schedule_.initial_offset());
    arm(*t);
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

void HealthChecker::arm(Target &t) {
  if (t.retired || stopped_ || !t.timer) {
    return;
  }
  TimePoint at = t.budget.next_wakeup();
  if (auto p = t.probe->oldest_ping()) {
    at = std::min(at, *p + t.rtt.timeout());
  }
  if (at == TimePoint::max()) {
    t.timer->disable(); // only an HTTP/1.1 check in flight: its end re-arms
    return;
  }
  schedule_in(t, std::chrono::ceil<milliseconds>(at - time_.now()));
}

void HealthChecker::on_timer(Target &t) {
  if (t.retired || stopped_) {
    return;
  }
  if (!tls_ && needs_tls(cfg_)) {
    // The TLS files could not be loaded at construction (the owner refuses to start then): a
    // local setup error says nothing about the endpoint, so nothing is checked or recorded.
    return;
  }
  const TimePoint now = time_.now();
  sample_traffic(t, now);
  expire_pings(t, now);
  if (!t.retired && !stopped_) {
    switch (t.budget.due(now)) {
    case CheckKind::Readyz:
      if (!t.in_flight) {
        t.budget.on_readyz_started(now);
        run_check(t);
      }
      break;
    case CheckKind::Ping:
      if (t.probe->ping(now)) {
        t.up->health_counters.pings.fetch_add(1, std::memory_order_relaxed);
      }
      t.budget.on_ping_sent(now);
      break;
    case CheckKind::None:
      if (t.verdict.dead()) {
        try_close(t, CheckResult::L7Tout, now); // a close held for traffic may be due now
      }
      break;
    }
    if (!t.retired && !stopped_) {
      // What was just written starts the send queue's clock (core/send_stall.h).
      sample_send_queue(t, now);
    }
    arm(t);
  }
  notify_all();
}

void HealthChecker::run_check(Target &t) {
  t.started = time_.now();
  t.in_flight = true;
  // A kept connection needs one round trip; a new one a TCP and a TLS handshake first (the very
  // first check of an endpoint, before any sample: RttConfig::initial).
  const milliseconds timeout =
      t.probe->connected() ? t.rtt.timeout() : t.rtt.first_check_timeout(3);
  t.up->health_counters.timeout_micros.store(
      micros(std::chrono::duration_cast<std::chrono::microseconds>(t.rtt.timeout())),
      std::memory_order_relaxed);
  Target *tp = &t;
  t.probe->start([this, tp](const ProbeOutcome &o) { on_result(*tp, o); }, timeout);
}

void HealthChecker::on_result(Target &t, const ProbeOutcome &o) {
  t.in_flight = false;
  Upstream &up = *t.up;
  auto &hc = up.health_counters;
  const TimePoint now = time_.now();
  hc.checks.fetch_add(1, std::memory_order_relaxed);
  hc.last_check_micros.store(micros(o.duration), std::memory_order_relaxed);
  hc.last_result.store(static_cast<uint8_t>(o.result), std::memory_order_relaxed);
  up.check_history.add(
      CheckSample{mono_ms(now), static_cast<uint32_t>(micros(o.duration)), o.result, false});
  if (o.result != CheckResult::Ok) {
    hc.failures[static_cast<size_t>(o.result)].fetch_add(1, std::memory_order_relaxed);
  }
  if (cfg_.mode == HealthMode::Https && (o.established || o.status != 0)) {
    hc.requests.fetch_add(1, std::memory_order_relaxed);
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
  // The kernel's RTT measures the path to whatever terminates TCP, which is not the apiserver
  // behind a local relay, a VPN endpoint or a TCP proxy (a loopback RTT in front of a 400 ms
  // link). It counts only when this check's request round trip agrees with it (within 4x plus
  // 100 ms of handler time); otherwise the request's round trip stands until the first PING ack,
  // a network sample from the apiserver itself, replaces it (RttEstimator).
  if (o.rtt.count() > 0) {
    t.rtt.add_sample(RttSource::Request, o.rtt);
  }
  if (o.kernel_rtt.count() > 0 &&
      (o.rtt.count() == 0 || o.rtt <= 4 * o.kernel_rtt + std::chrono::milliseconds(100))) {
    t.rtt.add_sample(RttSource::Kernel, o.kernel_rtt);
  }
  t.last_refused = o.result == CheckResult::L4Con && o.refused;
  note_way(t, o, now);
  // A timeout with our bytes stuck in the check connection's send queue (sampled by the probe
  // just before it closed the connection) is a stall: the path stopped taking bytes.
  bool stalled = false;
  if (o.send_queue.connection != 0) {
    t.stall.sample(now, o.send_queue);
    // Stuck for at least half the check's (RTT-derived) timeout and still stuck at its end: a
    // healthy path acknowledges within a round trip, far less than that.
    const auto half =
        std::max(std::chrono::duration_cast<milliseconds>(o.duration) / 2, milliseconds(1));
    stalled = t.stall.stalled(now, half);
    if (stalled && t.stall.take_new(now, half)) {
      note_stall(t, now);
    }
  }
  // On h2 the PINGs carry liveness (a stall names their timeouts, checker_verdict.cc): a /readyz
  // that timed out stays a readiness result, so one stall is not counted twice.
  apply(t, observation_of(o, o.h2, stalled && !o.h2), o.result, now, &o);
  if (!t.retired && !stopped_) {
    t.budget.set_alive(!t.verdict.dead());
    t.budget.on_readyz_finished(now, cadence_of(t.verdict.tracker()), o.status != 0);
    arm(t);
  }
  notify_all(); // last: the owner may reload (set_upstreams) or stop() from here
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
  const TimePoint now = time_.now();
  for (auto &tp : targets_) {
    Target &t = *tp;
    const uint32_t n = t.up->take_passive_failures();
    if (n == 0 || cfg_.mode == HealthMode::None) {
      continue;
    }
    // Client dials failed against it: counted against the ready tracker (never crossing its
    // threshold alone), and /readyz asked now, at most once per second per endpoint (a thousand
    // clients failing at once must cost the apiserver one request). The answer decides.
    const TrackerUpdate u = t.verdict.record_passive(n);
    if (u.transition != Transition::Unchanged) {
      log::info("health passive failure")
          .kv("endpoint", t.up->name())
          .kv("failures", static_cast<uint64_t>(n))
          .kv("health", to_string(t.verdict.tracker().health()))
          .kv("progress", t.verdict.tracker().progress());
    }
    if (t.verdict.tracker().health() == Health::Down) {
      continue; // already out of rotation: the down cadence will see it come back
    }
    // The rate limit keeps a thousand failing clients from costing the apiserver a thousand
    // requests. Without a check connection (it broke: refused, reset, closed) there is no request
    // to save: a re-check is a connect, refused or reset at once where nothing listens, and it
    // confirms a crash at once rather than a fast interval later.
    bool forward = true;
    if (t.last_refused || !t.probe->connected()) {
      t.budget.recheck_now(now);
    } else {
      forward = t.budget.on_passive(PassiveEvidence::DialRefused, now);
    }
    if (log::v(1)) {
      log::debug("health passive failure")
          .kv("endpoint", t.up->name())
          .kv("failures", static_cast<uint64_t>(n))
          .kv("recheck_now", forward);
    }
    if (forward && !t.in_flight) {
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
