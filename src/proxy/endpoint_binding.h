#pragma once
// Which endpoint a session is bound to, and which it has tried: the endpoint list snapshot taken at
// accept, the set of endpoints already dialled for this client, and the bound endpoint with its
// kill epoch and its `active`/`total` counters. A session re-dials by binding the next pick; an
// endpoint is never dialled twice for one client.
#include "kube_api_lb/core/picker.h"
#include "kube_api_lb/core/upstream.h"
#include "proxy/proxy_settings.h"

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

namespace kal {

using UpstreamList = std::vector<std::shared_ptr<Upstream>>;

class EndpointBinding {
public:
  // The endpoints this client may use, for the whole life of the session.
  void set_list(std::shared_ptr<const UpstreamList> list) { list_ = std::move(list); }

  // Picks an endpoint not tried yet (health, load and slow-start weight as `s` says, at the loop's
  // `now_ms`) and binds to it. Null when none is left.
  Upstream *bind_next(Picker &picker, const ProxySettings &s, int64_t now_ms);
  // Leaves the bound endpoint (its `active` count drops). Nothing when unbound.
  void unbind();

  // The bound endpoint failed this client, which moves on to another: `what` and a retry are
  // counted; with `passive` also a passive failure (the health checker is woken through `wake`).
  // The endpoint stays bound until unbind().
  void count_failure(std::atomic<uint64_t> UpstreamCounters::*what, bool passive,
                     const std::function<void()> &wake);
  // Adds `n` to one of the bound endpoint's counters (nothing when unbound).
  void count(std::atomic<uint64_t> UpstreamCounters::*what, uint64_t n = 1) {
    if (up_) {
      (up_->counters.*what).fetch_add(n, std::memory_order_relaxed);
    }
  }

  Upstream *get() const { return up_.get(); }
  // The bound endpoint was marked down for a hard failure since the session bound to it.
  bool killed() const { return up_ && up_->kill_epoch() != bound_epoch_; }
  int attempts() const { return attempts_; }
  size_t size() const { return list_ ? list_->size() : 0; }

private:
  std::shared_ptr<const UpstreamList> list_;
  std::shared_ptr<Upstream> up_;
  uint64_t bound_epoch_ = 0;
  uint64_t tried_ = 0; // bit i: (*list_)[i] tried for this client
  int attempts_ = 0;
};

} // namespace kal
