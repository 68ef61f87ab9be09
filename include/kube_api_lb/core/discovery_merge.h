#pragma once
// What endpoint discovery may change, as values and a `now` (issue 18). The usable set is the
// seed (flags or file) ∪ the endpoints discovery found ∪ the last-known-good state saved on disk,
// and these rules decide how it moves; each rule exists because a peer's users were hurt without
// it (docs/discovery.md cites the reports):
//
//  - Seed entries are never removed by discovery: the operator wrote them, and they are the way
//    back when everything learned turns out wrong.
//  - An empty discovery result (no ready endpoint) is never applied: counted as ignored, nothing
//    changes. The last apiserver removing itself while it shuts down, or a list read from a
//    cluster in trouble, must not empty a node's list.
//  - A change is applied only after it has held for `debounce`: an apiserver that is joining adds,
//    removes and re-adds itself within seconds, and every applied change costs checks and drains.
//  - An endpoint that leaves discovery is kept until it has been absent for `grace` *and* it is
//    not the last usable endpoint (usable: the health checker says Up). A control plane being
//    replaced, or a list that is briefly wrong, does not take away the endpoint that still works.
//  - Saved endpoints count as discovered ones from the past: they serve at once at start-up (every
//    seed endpoint may be gone), and leave, by the same grace rule, once discovery no longer lists
//    them, so a stale file cannot pin a node to wrong servers.
//  - Withdrawn (issue 21's drain signal): an endpoint seen in discovery that left it, or turned not
//    ready in it, is withdrawn at once, without the debounce: it gets no new connections while a
//    ready endpoint is left (the picker ranks it after Up and Unknown ones, before Down ones), and
//    nothing of it is closed. Back in discovery and ready, it is not withdrawn any more, at once.
//    A seed entry is withdrawn only if discovery has listed it before: a seed that names a VIP or
//    a DNS name discovery never lists is not touched.
//
// Pure: no clock, no I/O. The shell feeds observe() with what the apiserver said, calls decide()
// at next_wakeup() (and after health changes, which can let a kept endpoint go), applies the list
// decide() returns to the UpstreamSet, and saves discovered() when decide() says so.
#include "kube_api_lb/core/endpoint.h"

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kal {

// Where an endpoint of the usable set came from. An endpoint may have several; primary_source()
// names the one shown: seed, else discovered, else saved.
enum class EndpointSource : uint8_t { None = 0, Seed = 1, Discovered = 2, Saved = 4 };
constexpr uint8_t kSourceSeed = 1, kSourceDiscovered = 2, kSourceSaved = 4;
// "seed", "discovered", "saved", or "none".
const char *source_name(uint8_t sources);

// One endpoint as discovery reported it: an address and whether its slice says it is ready (an
// endpoint without a `ready` condition is ready).
struct DiscoveredEndpoint {
  HostPort address;
  bool ready = true;
  bool operator==(const DiscoveredEndpoint &) const = default;
};

struct DiscoveryMergeSettings {
  std::chrono::milliseconds debounce{5000};
  std::chrono::milliseconds grace{300000};
  // How often an endpoint kept past its grace (it was the last usable one) is looked at again.
  std::chrono::milliseconds recheck{1000};
};

class DiscoveryMerge {
public:
  using TimePoint = std::chrono::steady_clock::time_point;

  // `seed`: never removed. `saved`: the last-known-good state (empty: none); usable at once.
  DiscoveryMerge(std::vector<HostPort> seed, std::vector<HostPort> saved, DiscoveryMergeSettings s);

  enum class Observed {
    Pending,   // differs from what is applied: decide() applies it once it held for `debounce`
    Unchanged, // what is applied already (a pending change that came back to it is dropped)
    Empty,     // no ready endpoint: ignored, nothing changes
    TooMany,   // more than kMaxEndpoints together with the seed: ignored
  };
  // What discovery says now (the union of the slices: every endpoint, ready or not). Updates the
  // withdrawn set at once (see withdrawn()), unless the result is ignored.
  Observed observe(const std::vector<DiscoveredEndpoint> &eps, TimePoint now);

  struct Decision {
    std::vector<HostPort> endpoints; // the usable set to apply: seed first, then the others
    std::vector<HostPort> added, removed;
    bool save = false; // discovered() changed (non-empty): write the state file
  };
  // Applies a pending change that held for `debounce` and lets go of endpoints absent for `grace`
  // (`usable`: the addresses the health checker has Up now). nullopt when the usable set stays as
  // it is (save may still be due: then a Decision with no added/removed and save set).
  std::optional<Decision> decide(TimePoint now, const std::vector<HostPort> &usable);

  // When decide() has something to do next; nullopt: nothing until the next observe().
  std::optional<TimePoint> next_wakeup(TimePoint now) const;

  // The usable set now (seed first, in seed order; then the others in the order they came).
  std::vector<HostPort> endpoints() const;
  // The endpoints discovery listed ready, as last applied (the state file's content).
  const std::vector<HostPort> &discovered() const { return discovered_; }
  // Endpoints that left discovery or turned not ready in it: no new connections while another is
  // ready. Only members of endpoints().
  std::vector<HostPort> withdrawn() const;
  // Bits of kSourceSeed / kSourceDiscovered / kSourceSaved for a member of endpoints(), else 0.
  uint8_t sources(const HostPort &hp) const;
  // Absent from discovery since (for /stats); nullopt when listed, or never discovered.
  std::optional<TimePoint> absent_since(const HostPort &hp) const;

  // A reload changed the seed. New entries join at once. An old entry that discovery lists (in
  // the applied set, or in a list still waiting out its debounce) stays as a discovered one; one
  // it does not list leaves at the next decide() (the operator removed it; it drains as in any
  // reload), unless it is the last usable endpoint.
  void set_seed(std::vector<HostPort> seed, TimePoint now);
  void set_settings(DiscoveryMergeSettings s) { s_ = s; }

private:
  struct Entry {
    HostPort address;
    bool seed = false;
    bool discovered = false; // in the applied discovered set
    bool saved = false;      // from the state file, not listed by discovery since
    bool seen = false;       // discovery has listed it (ready or not) at least once
    bool withdrawn = false;
    std::optional<TimePoint> absent_since; // not in the applied discovered set since
    // An old seed entry, dropped from the seed by a reload, that only a list still waiting out
    // its debounce names: it belongs to discovery (set_seed), and has no flag of its own.
    bool kept_by_pending() const { return !seed && !discovered && !saved && !absent_since; }
  };
  Entry *find(const HostPort &hp);
  const Entry *find(const HostPort &hp) const;

  DiscoveryMergeSettings s_;
  std::vector<Entry> entries_; // seed first
  std::vector<HostPort> discovered_;
  std::optional<std::vector<HostPort>> pending_;
  TimePoint pending_since_{};
  bool save_due_ = false;
};

// The delay before the next list after `failures` consecutive failed attempts (1, 2, ...):
// exponential from `base` doubling to `cap`, then scaled by `jitter01` in [0, 1) to between half
// and all of it (full jitter would let many nodes retry at once after a shared outage).
std::chrono::milliseconds
discovery_backoff(int failures, double jitter01,
                  std::chrono::milliseconds base = std::chrono::milliseconds(500),
                  std::chrono::milliseconds cap = std::chrono::milliseconds(30000));

} // namespace kal
