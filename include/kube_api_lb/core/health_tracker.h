#pragma once
// Rise/fall hysteresis of one endpoint: the decision half of health checking, free of I/O.
//
// HAProxy's single-counter model (src/check.c, set_server_check_status): one counter in
// 0..rise+fall-1; 0..rise-1 means down, rise..rise+fall-1 means up. A pass adds one and, on
// reaching `rise`, jumps to the top (fully up); a failure takes one and, on dropping below `rise`,
// falls to 0 (fully down). So a fully up endpoint goes down after `fall` consecutive failures and a
// fully down one comes up after `rise` consecutive passes, and a single odd result in a stable
// state only dents the counter.
//
// Differences from HAProxy, on purpose:
//  - The initial state is Unknown and the first result decides at once (pass: fully up, failure:
//    fully down), so a freshly started proxy knows every endpoint within one check instead of
//    waiting `rise` checks or trusting a dead endpoint for `fall` checks.
//  - L7Auth (401/403) is not the apiserver's fault: it counts as a pass at layer 6 (the server is
//    alive and speaks HTTP) so it never takes an endpoint down, and is flagged for a warning.
//  - Passive evidence (client dials that failed) is applied with record_passive_failures(), which
//    dents the counter but never crosses the up/down threshold: the final word belongs to the
//    active re-check the caller runs at once, so a burst of unlucky client dials cannot by itself
//    close every connection to a healthy apiserver.
#include "kube_api_lb/core/health.h"

#include <cstdint>
#include <string>

namespace kal {

enum class Transition : uint8_t {
  Unchanged,     // the counter did not move (a pass while fully up, a failure while fully down)
  ChangePending, // the counter moved but the state did not (e.g. "1/2 up" after one failure)
  Changed,       // the state changed (including Unknown -> Up/Down on the first result)
};
const char *to_string(Transition t); // "unchanged", "pending", "changed"

// What one recorded result did, for logs, counters and the caller's side effects.
struct TrackerUpdate {
  Transition transition = Transition::Unchanged;
  Health old_health = Health::Unknown;
  Health new_health = Health::Unknown;
  CheckResult result = CheckResult::Ok;
  bool first = false; // this was the first result ever recorded
};

class HealthTracker {
public:
  // rise and fall are clamped to >= 1 (config validation rejects smaller values anyway).
  HealthTracker(int rise, int fall);

  // This tracker's state under new thresholds (a reload changed rise or fall): Unknown stays
  // Unknown, Up stays Up and Down stays Down. Progress carries over as far as it fits: failures
  // seen while up (at most fall-1 under the new `fall`), passes seen while down (at most rise-1).
  HealthTracker with_thresholds(int rise, int fall) const;

  // Records one active check result and returns what it did.
  TrackerUpdate record(CheckResult r);

  // Records `n` passive failures (client dials that failed against this endpoint) as failures of
  // layer `r`, without ever crossing the up/down threshold; see the file comment. Unknown stays
  // Unknown. Returns Unchanged or ChangePending.
  TrackerUpdate record_passive_failures(uint32_t n, CheckResult r = CheckResult::L4Con);

  Health health() const { return health_; }
  int counter() const { return counter_; }
  int rise() const { return rise_; }
  int fall() const { return fall_; }
  bool checked() const { return health_ != Health::Unknown; }

  // Fully up (counter at the top) or fully down (counter 0): HAProxy uses `inter` / `downinter`
  // then; anything in between (and Unknown) is "changing state" and gets `fastinter`.
  bool fully_up() const { return health_ == Health::Up && counter_ == rise_ + fall_ - 1; }
  bool fully_down() const { return health_ == Health::Down && counter_ == 0; }
  bool changing() const { return !fully_up() && !fully_down(); }

  // HAProxy's "x/y" progress: while up, passes left before going down out of `fall`
  // (counter - rise + 1)/fall, e.g. "2/2" fully up, "1/2" after one failure; while down, passes
  // so far out of `rise`, counter/rise, e.g. "0/2" fully down. Unknown: "0/<rise>".
  std::string progress() const;

private:
  int rise_;
  int fall_;
  int counter_ = 0;
  Health health_ = Health::Unknown;
};

} // namespace kal
