#include "proxy/endpoint_binding.h"

#include "kube_api_lb/core/slow_start.h"

#include <algorithm>
#include <span>

namespace kal {

Upstream *EndpointBinding::bind_next(Picker &picker, const ProxySettings &s, int64_t now_ms) {
  const auto &list = *list_;
  Candidate cands[kMaxEndpoints];
  uint64_t epochs[kMaxEndpoints];
  size_t n = std::min(list.size(), kMaxEndpoints); // validate() rejects more
  for (size_t i = 0; i < n; ++i) {
    const auto &u = *list[i];
    // The kill epoch before the health: the checker sets Down before it bumps the epoch, so an
    // endpoint seen healthy here is bound with an epoch from before any kill that follows, and
    // close_killed_sessions() still catches the session.
    epochs[i] = u.kill_epoch();
    cands[i].health = s.health_checks ? u.health() : Health::Unknown;
    cands[i].active = u.counters.active.load(std::memory_order_relaxed);
    cands[i].excluded = (tried_ >> i) & 1 || u.removed();
    cands[i].withdrawn = u.withdrawn();
    cands[i].weight =
        slow_start_weight(cands[i].health == Health::Up, u.up_since_ms(), now_ms, s.slow_start_ms);
  }
  auto choice = picker.pick(std::span<const Candidate>(cands, n));
  if (!choice) {
    return nullptr;
  }
  tried_ |= uint64_t{1} << *choice;
  ++attempts_;
  up_ = list[*choice];
  bound_epoch_ = epochs[*choice];
  up_->counters.active.fetch_add(1, std::memory_order_relaxed);
  up_->counters.total.fetch_add(1, std::memory_order_relaxed);
  return up_.get();
}

void EndpointBinding::count_failure(std::atomic<uint64_t> UpstreamCounters::*what, bool passive,
                                    const std::function<void()> &wake) {
  count(what);
  count(&UpstreamCounters::retries);
  if (passive) {
    up_->add_passive_failure();
    if (wake) {
      wake();
    }
  }
}

void EndpointBinding::unbind() {
  if (up_) {
    up_->counters.active.fetch_sub(1, std::memory_order_relaxed);
    up_.reset();
  }
}

} // namespace kal
