#pragma once
// Endpoint discovery as the running proxy uses it (issue 18): the merge rules
// (core/discovery_merge.h), the discovery client (discovery/discovery_client.h) and the
// last-known-good state file (discovery/state_file.h), on the main loop. It decides nothing the
// merge does not; it hands the usable set to ProxyApp (`apply`), which feeds it into the reload
// path (UpstreamSet: new endpoints checked before traffic, removed ones drained), and it marks the
// active Upstreams' sources and the withdrawn ones (issue 21's drain signal: no new connections,
// nothing closed) at once.
#include "admin/metrics.h"
#include "discovery/discovery_client.h"
#include "kube_api_lb/config/config.h"
#include "kube_api_lb/core/discovery_merge.h"
#include "kube_api_lb/core/upstream.h"
#include "uvx/time_source.h"

#include <uv.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace kal {

class EndpointDiscovery {
public:
  using List = std::vector<std::shared_ptr<Upstream>>;
  struct Hooks {
    // A new usable set to apply (the reload path).
    std::function<void(const std::vector<HostPort> &)> apply;
    // The active endpoints now (to pick a healthy one, to mark sources and withdrawn ones).
    std::function<std::shared_ptr<const List>()> active;
    // An endpoint's withdrawn state, told after every change of the set (idempotent): the health
    // checker holds a withdrawn endpoint not ready (HealthChecker::set_outside_not_ready), so its
    // verdict, the close gate and /readyz see the drain signal too. Optional.
    std::function<void(const Upstream &, bool withdrawn)> withdrawn;
  };

  // `c.discovery.mode` must be EndpointSlices. Reads the state file now (a warning when it cannot
  // be used; see saved_state()). Starts nothing until start().
  EndpointDiscovery(uv_loop_t *loop, TimeSource &time, const Config &c, Hooks hooks);
  ~EndpointDiscovery();
  EndpointDiscovery(const EndpointDiscovery &) = delete;
  EndpointDiscovery &operator=(const EndpointDiscovery &) = delete;

  // The usable set before discovery has said anything: the seed ∪ the saved state.
  std::vector<HostPort> endpoints() const { return merge_.endpoints(); }

  void start();
  void stop();
  // A reload: new seed, merge settings; a new kubeconfig restarts the client.
  void reconfigure(const Config &c);
  // Marks sources and withdrawn flags on `active` (after every apply).
  void annotate(const List &active) const;
  // A health transition (a kept endpoint may go now; discovery leaves an apiserver going down).
  void on_health_change(Upstream &u, Health new_h);

  DiscoveryStatus status() const;

private:
  void on_endpoints(const std::vector<DiscoveredEndpoint> &eps);
  void decide();
  void arm();
  std::shared_ptr<Upstream> pick(const Upstream *avoid);
  void save();

  uv_loop_t *loop_;
  TimeSource &time_;
  DiscoveryConfig cfg_;
  std::vector<HostPort> seed_;
  Hooks hooks_;
  std::string saved_state_ = "none"; // before merge_: its constructor reads the state file
  DiscoveryMerge merge_;
  std::unique_ptr<DiscoveryClient> client_;
  std::unique_ptr<Timer> timer_;
  size_t next_pick_ = 0;
  uint64_t applied_ = 0, ignored_ = 0, writes_ = 0, write_failures_ = 0;
  bool stopped_ = true;
};

} // namespace kal
