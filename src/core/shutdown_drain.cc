#include "kube_api_lb/core/shutdown_drain.h"

#include <algorithm>

namespace kal {

bool quiet_enough_to_close(const DrainFacts &f, uint64_t now_ms, const DrainRule &rule) {
  if (f.queued > 0) {
    return false; // bytes still on their way: a transfer in progress
  }
  auto since = [now_ms](uint64_t t) { return now_ms >= t ? now_ms - t : 0; };
  if (f.phase != SessionPhase::Relaying) {
    // The first exchange: a client that has sent something is owed an answer (or a replay) and
    // keeps its connection. One that has sent nothing for a while (a port probe, a client that
    // never started its handshake) has nothing to lose.
    return !f.client_sent && since(f.accepted_ms) >= rule.request_wait_ms;
  }
  uint64_t last = std::max({f.accepted_ms, f.last_from_client_ms, f.last_from_upstream_ms});
  if (since(last) < rule.quiet_ms) {
    return false; // bytes moved a moment ago: mid-answer or mid-request
  }
  if (f.last_from_client_ms > f.last_from_upstream_ms &&
      since(f.last_from_client_ms) < rule.request_wait_ms) {
    return false; // the client spoke last: its request may still be owed its answer
  }
  return true;
}

} // namespace kal
