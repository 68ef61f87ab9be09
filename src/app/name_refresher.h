#pragma once
// Keeps the addresses of host-name endpoints current: looks every name up at start-up (waiting a
// second at most before anything listens), retries an unresolved name every second, looks a
// resolved one up again every 30 s to follow an apiserver that moved, and at once after a reload.
// One lookup per name at a time (NameResolver, off the loop thread), so a resolver that hangs never
// piles up lookup threads. A name's addresses are written into its Upstream (set_addrs), which the
// workers and the health checker read. Lives on the main loop; every method runs on its thread.
#include "app/name_resolver.h"
#include "kube_api_lb/core/upstream.h"
#include "uvx/handle.h"

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace kal {

class NameRefresher {
public:
  using List = std::vector<std::shared_ptr<Upstream>>;

  // Unresolved names are retried every kTickMs; resolved ones looked up again every kReResolveMs.
  static constexpr uint64_t kTickMs = 1000;
  static constexpr uint64_t kReResolveMs = 30000;
  // start() waits this long for the first lookups.
  static constexpr uint64_t kStartWaitMs = 1000;

  // `loop` is not owned and must outlive the refresher.
  explicit NameRefresher(uv_loop_t *loop);
  // Abandons the lookups still running (the process never waits for DNS) and closes the timer.
  ~NameRefresher();
  NameRefresher(const NameRefresher &) = delete;
  NameRefresher &operator=(const NameRefresher &) = delete;

  // Looks up every host-name endpoint of `ups` and runs the loop until they have answered,
  // kStartWaitMs at most: a name that does not resolve, or a DNS server that does not answer, is
  // no reason to keep the node's kubelet from the endpoints that do. Those still unresolved stay
  // down ("unresolved") and are retried every tick; the lookups still running end in the
  // background. Then starts the (unreferenced) tick timer. Before anything else uses the loop.
  void start(const List &ups);
  // The endpoints are now `ups` (a reload): names no endpoint uses any more are forgotten (a lookup
  // still running for one is ignored when it ends) and every name not being looked up already is
  // looked up now. New names resolve in the background; the loop never waits for DNS.
  void set_upstreams(const List &ups);
  // Stops the timer and abandons the running lookups; nothing is looked up any more.
  void stop();

private:
  static void tick_cb(uv_timer_t *t) noexcept;
  // Starts lookups: unresolved names, and resolved ones due again (all: every name not being
  // looked up already).
  void refresh(bool all);
  void on_resolved(NameResolver::Answer &&a);

  // Host-name endpoints by name (host:port).
  struct NameState {
    bool in_flight = false; // one lookup at a time
    bool failing = false;   // the last lookup failed (logged once per failing run)
    uint64_t last_ms = 0;   // loop time the last lookup ended
  };

  uv_loop_t *loop_;
  List ups_;
  std::map<std::string, NameState> names_;
  std::unique_ptr<NameResolver> resolver_;
  uvx::Timer timer_;
};

} // namespace kal
