#pragma once
// Slow start: an endpoint that has just come up gets a growing share of new connections instead of
// all of its share at once (HAProxy's `slowstart`, Envoy's slow_start_config). Its picker weight
// grows linearly from 5% to 100% over the slow-start window. Table:
// tests/unit/core_slow_start_test.cc.
#include <cstdint>

namespace kal {

// The picker weight of an endpoint: 1.0, or less while it is Up and came up less than
// `slow_start_ms` ago. `up_since_ms` 0 means it did not come up from Down (start-up: the proxy's
// first endpoints are not slow-started); `now_ms` and `up_since_ms` are on one clock.
// `slow_start_ms` 0 turns slow start off.
double slow_start_weight(bool up, int64_t up_since_ms, int64_t now_ms, uint64_t slow_start_ms);

} // namespace kal
