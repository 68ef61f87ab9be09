#pragma once
// Active health checking of every endpoint, on one libuv loop: per endpoint a Probe (I/O), a
// Verdict (ready: rise/fall over /readyz; alive: dead evidence, and the close gate), a CheckBudget
// (when the next PING and the next /readyz are due), an RttEstimator (the timeouts) and one timer.
// Applies verdicts to the shared Upstream objects the proxy workers read, and tells the owner.
//
// In https mode with HealthConfig::http2 the probe's kept-alive connection offers ALPN h2; when the
// apiserver takes it, liveness is an HTTP/2 PING every `interval` and /readyz runs every
// `readyz_interval` (jittered), sooner on passive evidence (client dial failures, GOAWAY, the
// check connection closed); see core/check_budget.h. Without h2 (or in tls/tcp mode) every check
// is today's request every `interval`, and an answer that times out on a kept connection counts as
// dead evidence, as it did before (it is the only liveness signal there is). Only a Close from
// Verdict::decide_close() bumps the kill epoch; not ready (slow or failed /readyz) closes nothing.
//
// Lives on the loop it was given: every method but poke() must be called on that loop's thread.
//
// Time. The checker never reads a clock or std::random_device: everything that waits or measures
// goes through the TimeSource it is given (uvx/time_source.h), so a test drives it with a
// ManualTimeSource and fires its timers by hand while the probes' sockets stay real:
//  - `now`: time_.now(), on the one time base (CLOCK_MONOTONIC as a steady_clock TimePoint). Check
//    start times, the idle-close re-check limit, and Upstream::set_up_since_ms(mono_ms(now)), which
//    the workers compare with their own TimeSource's now;
//  - timers: one per endpoint (the next check, CheckSchedule's delay), each probe's timeout, the
//    reaper (a zero-delay timer that frees retired endpoints on a later turn), the TLS file watch
//    (Background: it never keeps a stopping loop alive). All are time_.create_timer() objects,
//    owned by what they serve and destroyed with it; none fires after stop();
//  - randomness: CheckSchedule's jitter is seeded from time_.seed() (at construction and at each
//    reconfigure()).
// A new per-endpoint check (an HTTP/2 PING liveness check with its RTT estimate, check budget and
// verdict, all pure core objects over TimePoint) plugs in the same way: take `now` from time_.now()
// when it sends and when the answer arrives, arm its deadline and its next round on a Timer made
// by time_.create_timer() and owned by the endpoint's Target (so retire() and stop() drop it), and
// leave the sockets on loop_. Its tests then advance a ManualTimeSource instead of sleeping.
#include "health/probe.h"
#include "health/tls_engine.h"
#include "kube_api_lb/config/config.h"
#include "kube_api_lb/core/check_budget.h"
#include "kube_api_lb/core/check_schedule.h"
#include "kube_api_lb/core/health_tracker.h"
#include "kube_api_lb/core/rtt_estimator.h"
#include "kube_api_lb/core/upstream.h"
#include "kube_api_lb/core/verdict.h"
#include "uvx/handle.h"
#include "uvx/time_source.h"

#include <uv.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace kal {

class HealthChecker {
public:
  // Called on the loop after every change of an endpoint's health, once the Upstream was updated
  // (set_health, set_up_since_ms), and after every mass close (the kill epoch was bumped: the
  // verdict is dead and the close gate let it through): then old_h == new_h == Down and `why` is
  // a hard failure (is_hard_failure()), so the owner closes the sessions bound to it. A health
  // change without a close always has old_h != new_h.
  using TransitionFn = std::function<void(Upstream &, Health old_h, Health new_h, CheckResult why)>;

  // Sockets and the poke() wake-up on `loop`; clock, timers and the jitter seed from `time` (see
  // above). Neither is owned; both must outlive the checker. Loads the TLS files of `cfg` now (see
  // tls_error()). Starts nothing until set_upstreams().
  HealthChecker(uv_loop_t *loop, TimeSource &time, HealthConfig cfg, TransitionFn on_transition);
  ~HealthChecker(); // stop()s; must run on the loop thread
  HealthChecker(const HealthChecker &) = delete;
  HealthChecker &operator=(const HealthChecker &) = delete;

  // The TLS client context for `cfg`'s CA / client cert / key files, or an error naming the file.
  // For https/tls modes only; main can call it to reject bad flags before starting (exit 2).
  static Result<std::shared_ptr<TlsContext>> make_tls_context(const HealthConfig &cfg);
  // Non-empty when the constructor could not load the TLS files (the error names the file): the
  // owner must treat it as fatal. Until a reconfigure() with loadable files no check runs, and no
  // endpoint's health changes: a local setup error never counts against the apiservers.
  const std::string &tls_error() const { return tls_error_; }

  // Certificates rotate under a running proxy (a renewed file renamed into place, kubelet's
  // symlink swapped), so once a TLS context is loaded its files are stat()ed (through symlinks)
  // this often. When one changed, the context is rebuilt with the same settings and swapped in:
  // checks from then on use it, one in flight finishes with the old context. If the new files do
  // not load (half written, a key not yet matching its certificate) the old context stays, a
  // warning names the file, and the next tick tries again.
  static constexpr std::chrono::milliseconds kTlsWatchInterval{30000};
  // Tests only: look at the TLS files every `d` instead of kTlsWatchInterval.
  void set_tls_watch_interval(std::chrono::milliseconds d);

  // Sets the endpoints to check (also for live reload). New ones start checking at once, in
  // parallel, each after a random offset in [0, min(interval, 100ms)]; removed ones stop (their
  // connections close); ones already present (same Upstream object, or same name) keep their
  // state and connection. With HealthMode::None every upstream is marked Unknown and never checked.
  void set_upstreams(const std::vector<std::shared_ptr<Upstream>> &ups);

  // Applies new check settings (live reload) without replacing the checker, so poke() callers on
  // other threads never see it change. Every endpoint gets a fresh probe (new TLS files, path,
  // mode) and is re-checked at once; each keeps its verdict, its counter (carried into new rise
  // and fall as far as it fits: an up endpoint still needs `fall` failures to go down) and
  // whether its connections were already closed. No-op if `cfg` is equal (and its files loaded).
  // An error (naming the file) if the TLS files of `cfg` cannot be loaded: then nothing changes,
  // the running settings, TLS context and checks stay.
  Result<bool> reconfigure(HealthConfig cfg);

  // Thread-safe: wakes the checker to take Upstream::take_passive_failures() of each endpoint,
  // count them against it (never crossing the up/down threshold by themselves) and re-check it at
  // once. Does nothing after stop().
  void poke();

  // An outside signal about one endpoint, from another room (discovery: the apiserver left the
  // `kubernetes` EndpointSlice, a drain signal; issue 21). `on`: hold `endpoint` (Upstream::name(),
  // "host:port") not ready: it gets no new connections, whatever /readyz says, and nothing bound to
  // it is closed (as for a draining apiserver); its checks go on, so a dead verdict still closes
  // its connections through the close gate. `on` false lifts the hold: readiness is /readyz's
  // again at once. `source` names the signal in the log ("endpointslice"). Kept across reloads
  // and set_upstreams() while the endpoint stays; dropped with it. Returns false when no endpoint
  // of that name is checked (mode none, or not in the list). Call on the loop thread.
  bool set_outside_not_ready(const std::string &endpoint, bool on, const std::string &source);

  // Closes every handle and connection so the loop can run dry. Idempotent.
  void stop();

  size_t size() const { return targets_.size(); }
  // Endpoints whose check is running now (waiting on its socket or its timeout).
  size_t in_flight() const;

private:
  struct Target;
  // What stat() says about one TLS file: a rename, a symlink swap or an in-place rewrite changes
  // at least one field (the file's identity, size or modification time).
  struct FileStamp {
    int err = 0; // errno of a failed stat(), else 0
    uint64_t dev = 0, ino = 0;
    int64_t size = 0, mtime_ns = 0;
    bool operator==(const FileStamp &) const = default;
  };
  static void async_cb(uv_async_t *a) noexcept;

  // A new check of `up` that starts from `verdict` and, when given, the round-trip measurements of
  // the check it replaces (`rtt`).
  std::unique_ptr<Target> make_target(std::shared_ptr<Upstream> up, const Verdict &verdict,
                                      const RttEstimator *rtt = nullptr);
  VerdictConfig verdict_config() const;
  static bool needs_tls(const HealthConfig &cfg); // https and tls modes
  void load_tls();
  // The configured CA, client certificate and key files of `cfg`, each once; what stat() says.
  static std::vector<std::string> tls_files(const HealthConfig &cfg);
  static std::vector<FileStamp> stamp_files(const std::vector<std::string> &files);
  void watch_tls(); // (re)arms or stops the file watch for the running settings
  void on_tls_watch();
  void schedule_in(Target &t, std::chrono::milliseconds d);
  void arm(Target &t); // the timer for the budget's next wake-up or the oldest PING's deadline
  void on_timer(Target &t);
  void run_check(Target &t);
  void on_result(Target &t, const ProbeOutcome &o);
  void on_probe_event(Target &t, const ProbeEvent &e);
  void on_idle_close(Target &t);
  void expire_pings(Target &t, TimePoint now);
  // Samples the check connection's send queue; true when it is stalled now (core/send_stall.h).
  bool sample_send_queue(Target &t, TimePoint now);
  void note_stall(Target &t, TimePoint now); // counts and logs a new stall period
  void publish(Target &t);
  void sample_traffic(Target &t, TimePoint now);
  void note_way(Target &t, const ProbeOutcome &o, TimePoint now);
  // Records `o` in the verdict, publishes health and counters, runs the close gate.
  void apply(Target &t, Observation o, CheckResult why, TimePoint now, const ProbeOutcome *po);
  void try_close(Target &t, CheckResult why, TimePoint now);
  bool other_ready(const Target &t) const;
  void on_passive();
  void retire(std::unique_ptr<Target> t);

  // A transition to tell the owner about once the checker's own work for an event is done (the
  // owner may reload or stop from inside on_transition).
  struct Notice {
    std::shared_ptr<Upstream> up;
    Health old_h, new_h;
    CheckResult why;
  };
  void notify_all();

  uv_loop_t *loop_;
  TimeSource &time_;
  HealthConfig cfg_;
  TransitionFn on_transition_;
  std::shared_ptr<TlsContext> tls_;
  std::string tls_error_;
  std::vector<FileStamp> tls_stamps_; // of tls_files(cfg_), taken just before tls_ was loaded
  std::string tls_reload_error_;      // the last failed rebuild, warned about once
  std::chrono::milliseconds tls_watch_interval_ = kTlsWatchInterval;
  std::unique_ptr<Timer> tls_watch_; // Background: never keeps a stopping loop alive
  CheckSchedule schedule_;
  std::vector<std::unique_ptr<Target>> targets_;
  std::vector<std::shared_ptr<Upstream>> ups_;   // as last given to set_upstreams()
  std::vector<std::unique_ptr<Target>> retired_; // freed on a later loop turn, never in a callback
  std::unique_ptr<Timer> reaper_;                // a zero-delay timer: that later turn
  std::mutex async_mu_; // guards async_ against poke() from other threads racing stop()
  uvx::Handle<uv_async_t> async_;
  std::vector<Notice> notices_;
  bool stopped_ = false;
};

// "L4", "L6" or "L7": the layer a result belongs to (Ok: the layer the mode checks).
const char *layer_of(CheckResult r, HealthMode mode);

} // namespace kal
