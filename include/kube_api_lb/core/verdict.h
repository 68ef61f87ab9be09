#pragma once
// The two verdicts about one endpoint, kept apart (issue 21), and when a dead verdict may close the
// connections bound to it. Pure: every input is a value with its time; no clock, no I/O.
//
//   ready   may new connections go there?   HAProxy rise/fall (HealthTracker) over /readyz and
//                                            connection-level results. Not ready closes nothing.
//   alive   may bound connections stay?      dead only on evidence the process or the path is
//                                            dead; dead may close them, through the close gate.
//
// Why: a slow or failed /readyz is a readiness signal (an overloaded apiserver answers /readyz in
// 600 ms while it serves everything else; a draining one answers 500 on purpose). Closing its
// watches for that makes every client relist against apiservers that are already overloaded: the
// checker causing the storm. Only a process or path that stopped answering altogether (no PING
// answer, connects or handshakes that time out, resets, a check connection that stopped taking
// bytes) may have its connections closed, and even then not when bytes are still arriving from it
// on those connections, not twice within a flap window, and not when no other endpoint is ready.
//
// What each observation does (the checker maps its I/O results onto these):
//
//   observation          ready tracker      liveness
//   ReadyzOk             pass (L7OK)        alive
//   ReadyzFailed         fail (L7STS)       alive   answered: draining or not ready, not dead
//   ReadyzUnauthorized   pass (L7AUTH)      alive   the checker is misconfigured (see tracker)
//   ReadyzTimedOut       fail (L7TOUT)      -       slow is not dead: PINGs decide that
//   ReadyzMalformed      fail (L7RSP)       -
//   ConnectRefused       fail (L4CON)       dead evidence (nothing listens: crashed, or shut
//                                                   its listener). A kube-apiserver closes its
//                                                   listener on SIGTERM while it still serves its
//                                                   watches: the close gate holds their close
//                                                   while bytes still arrive on them
//   ConnectTimedOut      fail (L4TOUT)      dead evidence
//   Reset                fail (L4CON)       dead evidence (reset, host or network unreachable)
//   HandshakeFailed      fail (L6RSP)       -
//   HandshakeTimedOut    fail (L6TOUT)      dead evidence (the kernel accepted, nothing answers)
//   PingAnswered         -                  alive
//   PingTimedOut         fail (L7TOUT)      dead evidence
//   Stalled              fail (L7TOUT)      dead evidence (our bytes stopped leaving: the check
//                                                   connection's send queue made no progress for
//                                                   the timeout, core/send_stall.h)
//   NoAnswer             fail (L7TOUT)      dead evidence (HTTP/1.1 only: no answer on a kept
//                                                   connection; the only liveness signal there)
//   GoAway               -                  alive   a graceful goodbye; the budget re-checks
//
// Outside of the table, another room may hold an endpoint not ready (set_outside_not_ready: e.g.
// discovery seeing an apiserver leave the `kubernetes` EndpointSlice, a drain signal): not ready
// while held, whatever /readyz says; closes nothing; life is untouched.
//
// Alive/dead hysteresis: `dead_after` consecutive pieces of dead evidence (default 2, as fall)
// make the endpoint dead; any alive evidence makes it alive at once. Dead implies not ready.
//
// The checker calls record() for each observation, on_traffic() whenever it sees bytes arriving
// from the endpoint on the proxy's sessions, and, while dead(), decide_close() after each record()
// (and whenever it likes, e.g. on each PING tick): only Close means "bump the kill epoch now".
#include "kube_api_lb/core/check_schedule.h"
#include "kube_api_lb/core/health.h"
#include "kube_api_lb/core/health_tracker.h"

#include <chrono>
#include <cstdint>

namespace kal {

enum class Observation : uint8_t {
  ReadyzOk,           // 2xx
  ReadyzFailed,       // answered with another status (not 401/403)
  ReadyzUnauthorized, // 401 or 403
  ReadyzTimedOut,     // no complete answer within the timeout
  ReadyzMalformed,    // not HTTP, or closed mid-answer
  ConnectRefused,     // ECONNREFUSED
  ConnectTimedOut,    // no SYN-ACK within the timeout
  Reset,              // ECONNRESET, EHOSTUNREACH, ENETUNREACH on connect or the check connection
  HandshakeFailed,    // TLS alert or garbage during the handshake
  HandshakeTimedOut,  // no TLS handshake within the timeout
  PingAnswered,       // an HTTP/2 PING's ack arrived
  PingTimedOut,       // no ack within the RTT-derived timeout
  Stalled,            // the check connection stopped taking bytes (send queue not draining)
  GoAway,             // HTTP/2 GOAWAY on the check connection
  NoAnswer,           // HTTP/1.1: no answer on a kept connection within the timeout
};
const char *to_string(Observation o); // "readyz_ok", "ping_timeout", ...

// The alive/dead verdict (published as HealthCounters::alive). Not to be confused with Upstream's
// Liveness (core/upstream.h), which says *how* liveness is learnt (HTTP/2 PINGs or requests).
enum class Life : uint8_t { Unknown, Alive, Dead };
const char *to_string(Life l); // "unknown", "alive", "dead"

// What decide_close() answers. Everything but Close means "do not close now"; the Prevented ones
// mean a dead verdict was held back (counted, see prevented_closes()).
enum class CloseDecision : uint8_t {
  Close,         // close the connections bound to the endpoint now (bump its kill epoch)
  NotDead,       // not dead: nothing to close
  AlreadyClosed, // closed once in this dead period already
  TrafficSeen,   // prevented: bytes arrived from it within the traffic window
  FlapWindow,    // prevented: its last mass close was less than flap_window ago
  NoneReady,     // prevented: no other endpoint is ready; clients would only move to not-ready ones
};
const char *to_string(CloseDecision d); // "close", "not_dead", ..., "none_ready"
inline bool prevented(CloseDecision d) {
  return d == CloseDecision::TrafficSeen || d == CloseDecision::FlapWindow ||
         d == CloseDecision::NoneReady;
}

// From HealthConfig: rise, fall, flap_window.
struct VerdictConfig {
  int rise = 2;       // ready: consecutive passes to become ready (HealthTracker)
  int fall = 2;       // ready: consecutive failures to become not ready
  int dead_after = 2; // consecutive pieces of dead evidence to become dead (clamped to >= 1)
  // At most one mass close per endpoint per this long. 30 s: longer than a client-go relist
  // with backoff takes to settle, so a flapping path costs one relist per half minute at most.
  std::chrono::milliseconds flap_window{30000};
  // When no other endpoint is ready, hold the close (issue 21: keep serving through all of them,
  // close nothing). The cost: a hung endpoint's connections then wait for TCP_USER_TIMEOUT.
  bool hold_when_none_ready = true;
};

// What one record() did.
struct VerdictUpdate {
  TrackerUpdate ready; // the tracker's update; Unchanged for observations it does not see
  Life old_life = Life::Unknown;
  Life new_life = Life::Unknown;
  bool ready_before = false;
  bool ready_after = false;
  bool became_dead() const { return new_life == Life::Dead && old_life != new_life; }
  bool ready_changed() const { return ready_before != ready_after; }
};

class Verdict {
public:
  explicit Verdict(VerdictConfig cfg = {});

  const VerdictConfig &config() const { return cfg_; }
  // The same verdict under new settings (a live reload): the ready tracker keeps its state with the
  // new rise/fall (HealthTracker::with_thresholds), life, close history and traffic are kept.
  Verdict with_config(VerdictConfig cfg) const;

  // Records one observation (see the table above). Time plays no part: evidence is consecutive
  // until alive evidence interrupts it, and a PING answered every second interrupts it soon.
  VerdictUpdate record(Observation o);

  // `n` passive failures (client dials that failed against the endpoint) counted against the ready
  // tracker without crossing its threshold (HealthTracker::record_passive_failures), so the next
  // failed check confirms a failure the clients already saw. Life is untouched.
  TrackerUpdate record_passive(uint32_t n) {
    return tracker_.record_passive_failures(n, CheckResult::L4Con);
  }

  // Bytes arrived from the endpoint on the proxy's sessions at `at` (the checker may sample the
  // Upstream's byte counter and pass the sampling time when it moved). Never makes the endpoint
  // alive by itself: it only holds a close (see decide_close).
  void on_traffic(TimePoint at);

  // Whether the connections bound to the endpoint are to be closed now, for a check whose
  // timeout is `traffic_window` (pass RttEstimator::timeout(): traffic within the last timeout
  // window contradicts a timeout). `other_ready`: some other endpoint is ready now. On Close it
  // records the close (the flap window starts); the caller must then close (bump the kill epoch).
  // A dead period's first prevented decision counts in prevented_closes().
  CloseDecision decide_close(TimePoint now, std::chrono::milliseconds traffic_window,
                             bool other_ready);

  // An outside signal (another room: discovery's EndpointSlice, an operator) says the endpoint is
  // draining (`on`) or no longer says so. While held the endpoint is not ready and its health is
  // Down, whatever /readyz says; nothing is closed and life is untouched. The update says whether
  // readiness changed.
  VerdictUpdate set_outside_not_ready(bool on);
  bool outside_not_ready() const { return outside_not_ready_; }

  // Steer new connections here: the tracker is up, the endpoint is not dead and not held.
  bool ready() const {
    return tracker_.health() == Health::Up && life_ != Life::Dead && !outside_not_ready_;
  }
  // The health to publish in Upstream::set_health(): Down when dead or held, else the tracker's.
  Health health() const {
    return life_ == Life::Dead || outside_not_ready_ ? Health::Down : tracker_.health();
  }
  // The observation that completed the current dead period (meaningful while dead()).
  Observation dead_by() const { return dead_by_; }
  Life life() const { return life_; }
  bool dead() const { return life_ == Life::Dead; }
  const HealthTracker &tracker() const { return tracker_; }
  // Consecutive pieces of dead evidence so far (0 after any alive evidence).
  int dead_evidence() const { return dead_evidence_; }

  uint64_t mass_closes() const { return mass_closes_; }
  uint64_t prevented_closes() const { return prevented_closes_; }

private:
  VerdictConfig cfg_;
  HealthTracker tracker_;
  Life life_ = Life::Unknown;
  int dead_evidence_ = 0;
  bool outside_not_ready_ = false;
  Observation dead_by_ = Observation::PingTimedOut;
  bool closed_this_period_ = false;
  bool prevented_this_period_ = false;
  bool closed_once_ = false;
  TimePoint last_close_{};
  bool traffic_seen_ = false;
  TimePoint last_traffic_{};
  uint64_t mass_closes_ = 0;
  uint64_t prevented_closes_ = 0;
};

} // namespace kal
