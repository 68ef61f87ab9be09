#pragma once
// The request budget of one endpoint's checks: when its next HTTP/2 PING and its next `GET /readyz`
// are due. Pure: `now` is an argument, jitter comes from a seeded RNG, nothing here reads a clock
// or touches a socket.
//
// Why two checks: a /readyz passes the apiserver's authentication, audit, authorization and
// metrics, and at 5,000 nodes one per second per node is ~5,000 requests/s on every apiserver
// (issue 21). An HTTP/2 PING is answered by Go's HTTP/2 server itself, with none of that, yet a
// stopped, starved or cut-off apiserver does not answer it. So on an h2 check connection:
//
//   PING      every ping_interval (1 s)        liveness: hang and blackhole detection
//   /readyz   every readyz_interval (10 s)     readiness: draining, etcd, post-start hooks
//             (jittered upwards only: 10-12 s, so the interval is a floor and the budget a ceiling)
//
// i.e. at most one request per ~10 s per apiserver per node (≤ ~500/s at 5,000 nodes), while the
// PINGs keep hang detection within 2 s on a LAN. Everything else keeps today's cadences:
//  - while the ready verdict is changing (Cadence::Fast) /readyz runs every fast_interval, while it
//    is fully not ready (Cadence::Down) every down_interval, as HAProxy's fastinter/downinter do:
//    a transition is confirmed or an apiserver's recovery seen within a second, at the price of
//    more requests only while something is wrong. On an h2 connection, though, a not-ready
//    apiserver is alive (its PINGs are answered, or the connection would be gone) and merely
//    overloaded or draining (set_alive(): the dead verdict says so): there the Down delay doubles
//    with each /readyz (0.5, 1, 2, 4, 8 s) up to readyz_interval, so a fleet does not ask an
//    overloaded apiserver 2 times a second per node (10,000 requests/s at 5,000 nodes) while it is
//    least able to answer. Its recovery is seen within one readyz_interval; a restart breaks the
//    connection (Unknown: 500 ms again);
//  - when the apiserver did not negotiate h2 (or before the first connection said), no PING can be
//    sent, so /readyz itself is the liveness check and runs every http1_interval (1 s, today's
//    default interval) in the Normal cadence.
// Intervals are start to start and never in the past, as in CheckSchedule. A /readyz answer
// (any status) proves the connection alive, so it pushes the next PING a full interval away.
//
// Passive evidence from client sessions (a refused or timed-out dial, a reset, a first-byte
// timeout, a GOAWAY, the apiserver closing the idle check connection) brings the next /readyz
// forward to `now`, but at most once per trigger_min_gap (1 s) per endpoint: a thousand clients
// failing at once against one apiserver must cost it one request, not a thousand. Evidence the
// checker found itself (a PING timeout, a stalled check connection) uses recheck_now(), which is
// not rate limited: there is at most one such event per PING.
//
// One CheckBudget per endpoint; the integrator (the health checker) owns it next to the endpoint's
// timer, Verdict (core/verdict.h), RttEstimator (core/rtt_estimator.h) and, on an h2 connection,
// H2Liveness (health/h2_liveness.h). One endpoint's loop, all on the checker's loop thread:
//
//   add:        budget.start(now, schedule.initial_offset())
//   timer:      switch (budget.due(now)):
//                 Readyz: budget.on_readyz_started(now); h2 ? h2.request(now) : probe.start();
//                         a fresh connection's check times out after
//                         rtt.first_check_timeout(3), a kept one's after rtt.timeout()
//                 Ping:   h2.send_ping(now); budget.on_ping_sent(now)
//               n = h2.expire_pings(now - rtt.timeout()): n x verdict.record(PingTimedOut), then
//               budget.recheck_now(now) (confirm on a fresh connection)
//   connected:  budget.set_way(tls.alpn() == "h2" ? Http2 : Http1, now)
//   answers:    rtt.add_sample(Ping | Request, rtt); verdict.record(...);
//               budget.on_readyz_finished(now, cadence_of(verdict.tracker()), answered)
//   passive:    budget.on_passive(evidence, now)  (rate limited)
//   then:       arm the timer for the earliest of budget.next_wakeup(),
//               h2.oldest_ping() + rtt.timeout() and h2.oldest_request() + rtt.timeout()
#include "kube_api_lb/core/check_schedule.h"
#include "kube_api_lb/core/upstream.h"

#include <chrono>
#include <cstdint>

namespace kal {

// From HealthConfig: readyz_interval, interval (as http1_interval), fast_interval, down_interval,
// jitter, recheck_gap (as trigger_min_gap). ping_interval follows interval.
struct BudgetConfig {
  std::chrono::milliseconds ping_interval{1000};
  // /readyz in the Normal cadence on an h2 connection. 10 s: what Cluster API's and kops' load
  // balancers use, and well inside a 15 s --shutdown-delay-duration for a drain to be seen.
  std::chrono::milliseconds readyz_interval{10000};
  std::chrono::milliseconds fast_interval{250};   // Cadence::Fast (HAProxy's fastinter)
  std::chrono::milliseconds down_interval{500};   // Cadence::Down (HAProxy's downinter)
  std::chrono::milliseconds http1_interval{1000}; // Normal cadence without h2: today's interval
  // At most one passive-evidence-triggered /readyz per endpoint per this long (recheckGap). 1 s:
  // the apiserver refreshes its own etcd probe about once a second, so asking faster learns
  // nothing.
  std::chrono::milliseconds trigger_min_gap{1000};
  double jitter = 0.1; // each delay scaled by a uniform factor in [1 - jitter, 1 + jitter]
};

// Passive evidence, seen by the proxy's sessions or on the idle check connection.
enum class PassiveEvidence : uint8_t {
  DialRefused,      // a client dial was refused
  DialTimedOut,     // a client dial timed out
  Reset,            // a session or the check connection was reset
  FirstByteTimeout, // the apiserver accepted a client's request and sent nothing back in time
  GoAway,           // the apiserver sent GOAWAY on the check connection
  IdleClose,        // the apiserver closed the idle check connection
};
const char *to_string(PassiveEvidence e);

// What due() says to run now.
enum class CheckKind : uint8_t { None, Ping, Readyz };
const char *to_string(CheckKind k); // "none", "ping", "readyz"

class CheckBudget {
public:
  // `seed` feeds the jitter RNG: the checker seeds from std::random_device, tests with a constant.
  // Nothing is due until start().
  CheckBudget(BudgetConfig cfg, uint64_t seed);

  const BudgetConfig &config() const { return cfg_; }

  // The endpoint starts being checked: the first /readyz is due at now + offset (pass
  // CheckSchedule::initial_offset(), so endpoints added together are not checked in lockstep).
  void start(TimePoint now, std::chrono::milliseconds offset = std::chrono::milliseconds(0));

  // How liveness is learnt from now on (Upstream's Liveness, core/upstream.h): the check connection
  // negotiated h2 (Http2) or not (Http1), or it broke and no new one is up yet (Unknown, treated
  // as Http1: today's cadence). Http2: the first PING is due one jittered ping_interval from now.
  // Anything else: no PINGs, and the next /readyz comes no later than one http1_interval after the
  // last one started.
  void set_way(Liveness way, TimePoint now);
  Liveness way() const { return way_; }

  // What to run at `now`: Readyz if one is due and none is in flight (its answer is liveness
  // evidence too, so a PING due at the same moment waits), else Ping if one is due, else None.
  // The caller then reports it with on_readyz_started() or on_ping_sent().
  CheckKind due(TimePoint now) const;
  // When the caller must look again (arm the timer for it): the earlier of the next PING and the
  // next /readyz (that one ignored while a /readyz is in flight). TimePoint::max() when nothing is
  // due (before start(), or only a /readyz in flight on a non-h2 connection).
  TimePoint next_wakeup() const;

  void on_ping_sent(TimePoint now);
  void on_readyz_started(TimePoint now);
  // The /readyz started last finished at `now`. `cadence`: cadence_of() the ready verdict's
  // tracker after recording this result. `answered`: an HTTP answer arrived (any status), which
  // proves the connection alive and defers the next PING.
  void on_readyz_finished(TimePoint now, Cadence cadence, bool answered);

  // Whether the dead verdict (core/verdict.h) holds the apiserver alive; call it before
  // on_readyz_finished(). The Down backoff on h2 applies only while it is alive: a hung apiserver
  // keeps its h2 connection but answers no PING, and its recovery must be seen at once.
  void set_alive(bool alive);

  // The ready verdict changed cadence between two /readyz (a PING timeout dented it): the next
  // /readyz comes no later than the new cadence's delay after the last one started.
  void on_cadence(TimePoint now, Cadence cadence);

  // Passive evidence at `now`. Returns true if it brought a /readyz forward (due now, or right
  // after the one in flight), false if rate limited (counted in suppressed()).
  bool on_passive(PassiveEvidence e, TimePoint now);
  // The checker's own evidence (a PING timed out, the check connection stopped taking bytes):
  // a /readyz is due now (or right after the one in flight). Not rate limited.
  void recheck_now(TimePoint now);

  TimePoint ping_due() const { return ping_due_; }     // TimePoint::max() without h2
  TimePoint readyz_due() const { return readyz_due_; } // TimePoint::max() before start()
  bool readyz_in_flight() const { return in_flight_; }
  uint64_t triggered() const { return triggered_; }   // passive evidence that brought one forward
  uint64_t suppressed() const { return suppressed_; } // passive evidence the rate limit absorbed

private:
  // The delay after a /readyz in cadence c (Down on h2: backed off by down_streak_).
  std::chrono::milliseconds readyz_delay(Cadence c) const;
  // readyz_delay(c) jittered; in the Normal cadence on h2 jittered upwards only (see the .cc).
  std::chrono::milliseconds readyz_jittered(Cadence c);
  void bring_readyz_forward(TimePoint now);

  BudgetConfig cfg_;
  CheckSchedule jitter_; // only for its jittered(): the same RNG and rule as today's checks
  Liveness way_ = Liveness::Unknown;
  Cadence cadence_ = Cadence::Fast; // Unknown health is "changing", as in cadence_of()
  TimePoint ping_due_ = TimePoint::max();
  TimePoint readyz_due_ = TimePoint::max();
  TimePoint readyz_started_{};
  bool started_ = false;
  bool in_flight_ = false;
  bool pending_ = false; // evidence arrived during the /readyz in flight: run the next one at once
  bool triggered_once_ = false;
  unsigned down_streak_ = 0; // /readyz finished in a row in Cadence::Down on h2, alive (backoff)
  bool alive_ = true;
  TimePoint last_trigger_{};
  uint64_t triggered_ = 0;
  uint64_t suppressed_ = 0;
};

} // namespace kal
