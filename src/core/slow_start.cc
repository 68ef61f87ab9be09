#include "kube_api_lb/core/slow_start.h"

namespace kal {

double slow_start_weight(bool up, int64_t up_since_ms, int64_t now_ms, uint64_t slow_start_ms) {
  if (slow_start_ms == 0 || !up || up_since_ms <= 0) {
    return 1.0;
  }
  int64_t since = now_ms - up_since_ms;
  if (since < 0 || static_cast<uint64_t>(since) >= slow_start_ms) {
    return 1.0;
  }
  return 0.05 + 0.95 * static_cast<double>(since) / static_cast<double>(slow_start_ms);
}

} // namespace kal
