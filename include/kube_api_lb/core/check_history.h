#pragma once
// The recent health checks of one endpoint, for the status page's latency chart: a bounded ring of
// samples written by the health checker when a check ends or a PING is answered or lost (events it
// handles anyway: nothing here runs per connection or per byte) and copied out by the admin server.
// The checker and the admin server run on the main loop today; the mutex keeps it correct if an
// Upstream is ever read from a worker (it is shared by shared_ptr), and costs one uncontended lock
// per check.
#include "kube_api_lb/core/health.h"
#include "kube_api_lb/core/ring_buffer.h"

#include <cstdint>
#include <mutex>
#include <vector>

namespace kal {

struct CheckSample {
  int64_t mono_ms = 0; // when it ended, on the process's monotonic base (uvx mono_ms)
  uint32_t micros = 0; // how long it took (a PING: its round trip); 0 for a lost PING
  CheckResult result = CheckResult::Ok;
  bool ping = false; // an HTTP/2 PING, not a GET of the check path
  friend bool operator==(const CheckSample &, const CheckSample &) = default;
};

class CheckHistory {
public:
  // 240 samples: four minutes of PINGs at the default 1 s interval (plus the /readyz checks
  // between them), 16 bytes each, under 4 KiB per endpoint.
  static constexpr size_t kCapacity = 240;

  CheckHistory() : ring_(kCapacity) {}
  CheckHistory(const CheckHistory &) = delete;
  CheckHistory &operator=(const CheckHistory &) = delete;

  void add(const CheckSample &s) {
    std::lock_guard lock(mu_);
    ring_.push(s);
  }
  // Oldest first.
  std::vector<CheckSample> samples() const {
    std::lock_guard lock(mu_);
    return ring_.items();
  }
  uint64_t recorded() const {
    std::lock_guard lock(mu_);
    return ring_.pushed();
  }

private:
  mutable std::mutex mu_;
  RingBuffer<CheckSample> ring_;
};

} // namespace kal
