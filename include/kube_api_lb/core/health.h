#pragma once
// Health of one endpoint as the proxy sees it. Pure values; the tracker that drives them lives in
// core/health_tracker.h and the I/O that feeds it in health/.
#include <cstdint>

namespace kal {

enum class Health : uint8_t {
  Unknown, // not checked yet (or checks disabled): usable, after healthy endpoints
  Up,      // passing checks: preferred
  Down,    // failing checks: used only when nothing else is left (fail open)
};

// Why a check failed, in HAProxy's layered terms. Hard failures (connect refused/reset/unreachable/
// timeout, TLS or HTTP timeout, connection dropped) may mean the apiserver is crashed, hung or cut
// off; whether its connections are closed is core/verdict.h's dead verdict and close gate. A soft
// failure (/readyz answered non-200: the apiserver is draining) leaves existing connections to the
// apiserver's own graceful close.
enum class CheckResult : uint8_t {
  Ok,     // L7OK / L6OK / L4OK depending on the mode
  L4Con,  // TCP connect refused / reset / unreachable, or the name is unresolved
  L4Tout, // TCP connect timed out
  L6Rsp,  // TLS handshake failed
  L6Tout, // TLS handshake timed out
  L7Rsp,  // malformed HTTP answer, or connection closed mid-answer
  L7Tout, // HTTP answer timed out
  L7Sts,  // HTTP status not 200 (soft: draining / not ready)
  L7Auth, // 401/403: the check is misconfigured, not the apiserver; never takes it down
};

const char *to_string(Health h);      // "unknown", "up", "down"
const char *to_string(CheckResult r); // "L7OK", "L4CON", "L4TOUT", ... as HAProxy prints them
// Whether `r` is a failure of the hard kind (every layer-4/6 failure, L7RSP and L7TOUT).
inline bool is_hard_failure(CheckResult r) {
  return r != CheckResult::Ok && r != CheckResult::L7Sts && r != CheckResult::L7Auth;
}

} // namespace kal
