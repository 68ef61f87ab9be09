#pragma once
// The per-endpoint state of HealthChecker (health/checker.h), shared by the files that implement
// it: checker.cc (targets, TLS files, scheduling, check results) and checker_verdict.cc (verdicts,
// PINGs, the close gate). Private to the checker.
#include "health/checker.h"
#include "health/probe.h"
#include "kube_api_lb/core/check_budget.h"
#include "kube_api_lb/core/rtt_estimator.h"
#include "kube_api_lb/core/send_stall.h"
#include "kube_api_lb/core/verdict.h"

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

namespace kal {

struct HealthChecker::Target {
  HealthChecker *owner = nullptr;
  std::shared_ptr<Upstream> up;
  Verdict verdict;
  CheckBudget budget;
  RttEstimator rtt;
  SendStall stall; // the check connection's send queue (core/send_stall.h)
  std::unique_ptr<Probe> probe;
  std::unique_ptr<Timer> timer; // the budget's next wake-up, or the oldest PING's deadline
  TimePoint started;
  bool in_flight = false;
  bool auth_warned = false;
  bool retired = false;
  bool http1_logged = false; // "no h2, HTTP/1.1 checks" said once for this endpoint
  bool last_refused = false; // the last check's connect was refused: nothing listens there
  uint64_t bytes_seen = 0;   // Upstream::counters.bytes_to_client at the last sample
  uint64_t prevented_published = 0;
  std::string outside_why; // set_outside_not_ready()'s source while held

  Target(const Verdict &v, BudgetConfig b, RttConfig r, uint64_t seed)
      : verdict(v), budget(b, seed), rtt(r) {}
};

// What a check outcome, a verdict's observation and a duration mean in the checker's terms.
// What a check's outcome says, in the verdict's terms. `h2`: liveness comes from PINGs, so a
// request that times out is a slow apiserver, not a dead one; without them an answer that never
// comes on a kept connection is the only sign of a hang there is (today's hard failure).
// `stalled`: the check connection's send queue made no progress for the timeout (the checker's
// SendStall): a timeout then says the path stopped taking our bytes, whatever the protocol.
inline Observation observation_of(const ProbeOutcome &o, bool h2, bool stalled = false) {
  if (stalled && (o.result == CheckResult::L7Tout || o.result == CheckResult::L6Tout)) {
    return Observation::Stalled;
  }
  switch (o.result) {
  case CheckResult::Ok:
    return Observation::ReadyzOk;
  case CheckResult::L7Sts:
    return Observation::ReadyzFailed;
  case CheckResult::L7Auth:
    return Observation::ReadyzUnauthorized;
  case CheckResult::L7Tout:
    return h2 ? Observation::ReadyzTimedOut : Observation::NoAnswer;
  case CheckResult::L7Rsp:
    return Observation::ReadyzMalformed;
  case CheckResult::L4Con:
    return o.refused ? Observation::ConnectRefused : Observation::Reset;
  case CheckResult::L4Tout:
    return Observation::ConnectTimedOut;
  case CheckResult::L6Rsp:
    return Observation::HandshakeFailed;
  case CheckResult::L6Tout:
    return Observation::HandshakeTimedOut;
  }
  return Observation::ReadyzMalformed;
}

// A hard CheckResult for an observation that is dead evidence, handed to the owner with a close.
inline CheckResult hard_result_of(Observation o) {
  switch (o) {
  case Observation::ConnectTimedOut:
    return CheckResult::L4Tout;
  case Observation::Reset:
  case Observation::ConnectRefused:
    return CheckResult::L4Con;
  case Observation::HandshakeTimedOut:
    return CheckResult::L6Tout;
  default:
    return CheckResult::L7Tout;
  }
}

inline uint64_t micros(std::chrono::microseconds d) { return static_cast<uint64_t>(d.count()); }

// HAProxy-style reason: "L7OK" / "L6OK" / "L4OK" for passes, else the failure's own name.
inline std::string reason_of(CheckResult r, HealthMode mode) {
  if (r == CheckResult::Ok) {
    return std::string(layer_of(r, mode)) + "OK";
  }
  return to_string(r);
}

} // namespace kal
