#pragma once
// The endpoints a running proxy knows and what a reload does to them, as values and a `now`: the
// active set the workers pick from, the endpoints a reload removed that still drain their
// connections (each with its own deadline), and a bounded list of retired ones whose counters
// keep process-wide totals from going backwards. No I/O and no clock: the shell (app/ProxyApp)
// passes the time, arms its one drain timer at next_deadline() and closes what expire() returns.
//
// An endpoint is its canonical address (HostPort): one that stays across a reload, or comes back
// while it still drains, keeps its Upstream object, and with it its connections, counters and
// health. A new address gets a fresh Upstream that is Unknown until health-checked, so it gets no
// traffic before its first check, exactly as at start-up.
#include "kube_api_lb/core/endpoint.h"
#include "kube_api_lb/core/upstream.h"

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

namespace kal {

class UpstreamSet {
public:
  using TimePoint = std::chrono::steady_clock::time_point;
  using List = std::vector<std::shared_ptr<Upstream>>;
  // Makes the Upstream of an address not known yet (the shell fills in literal addresses).
  using Make = std::function<std::shared_ptr<Upstream>(const HostPort &)>;

  // At most this many retired endpoints are remembered; the oldest beyond it are forgotten.
  static constexpr size_t kRetiredMax = 64;

  // Starts empty. `make` defaults to a bare std::make_shared<Upstream>(address).
  explicit UpstreamSet(Make make = {});

  // What one apply() did: kept and added in the new list's order, restored in the order they had
  // been removed, removed in the old active order.
  struct Change {
    List kept;     // active before and after: the same object
    List added;    // new objects, Unknown until their first health check
    List restored; // were draining and are active again: their deadline dropped, connections kept
    List removed;  // were active, now draining until now + drain_timeout
  };

  // Makes the active set exactly `endpoints`, in their order. A duplicate address counts once
  // (its first place; validate() rejects duplicates anyway). A negative `drain_timeout` counts as
  // zero: the next expire() closes at once. Sets removed() on the endpoints it starts draining and
  // clears it on those it restores.
  Change apply(const std::vector<HostPort> &endpoints, TimePoint now,
               std::chrono::milliseconds drain_timeout);

  // Ends the drains whose deadline is `now` or earlier: they leave the draining list and join the
  // retired one (returned in the order they were removed; the caller closes their connections).
  // Each drain keeps its own deadline: a later reload never postpones an earlier one.
  List expire(TimePoint now);

  // The earliest drain deadline; nullopt when nothing drains.
  std::optional<TimePoint> next_deadline() const;

  // The active endpoints, a snapshot the workers share: a new object after every apply(), never
  // changed once handed out. Never null (empty before the first apply()).
  std::shared_ptr<const List> active() const { return active_; }
  // Removed by a reload and still draining, in the order they were removed.
  List draining() const;
  // Drained and gone, oldest first, at most kRetiredMax.
  const List &retired() const { return retired_; }
  // What /metrics and /stats show: the active endpoints, then those still draining.
  List visible() const;
  // Every endpoint whose counters belong in process-wide totals: active, draining and retired.
  List counted() const;

private:
  struct Draining {
    std::shared_ptr<Upstream> up;
    TimePoint deadline; // its remaining connections are closed then
  };
  Make make_;
  std::shared_ptr<const List> active_;
  std::vector<Draining> draining_;
  List retired_;
};

} // namespace kal
