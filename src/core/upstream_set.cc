#include "kube_api_lb/core/upstream_set.h"

#include <algorithm>

namespace kal {

UpstreamSet::UpstreamSet(Make make)
    : make_(make ? std::move(make)
                 : Make([](const HostPort &hp) { return std::make_shared<Upstream>(hp); })),
      active_(std::make_shared<const List>()) {}

UpstreamSet::Change UpstreamSet::apply(const std::vector<HostPort> &endpoints, TimePoint now,
                                       std::chrono::milliseconds drain_timeout) {
  Change ch;
  auto next = std::make_shared<List>();
  auto find = [](const auto &range, const HostPort &hp, auto key) {
    return std::find_if(range.begin(), range.end(),
                        [&](const auto &x) { return key(x)->address() == hp; });
  };
  auto up_of = [](const std::shared_ptr<Upstream> &u) { return u.get(); };
  auto up_of_drain = [](const Draining &d) { return d.up.get(); };
  for (const auto &ep : endpoints) {
    if (find(*next, ep, up_of) != next->end()) {
      continue; // a duplicate: the endpoint has its place already
    }
    if (auto it = find(*active_, ep, up_of); it != active_->end()) {
      ch.kept.push_back(*it);
      next->push_back(*it);
    } else if (auto d = find(draining_, ep, up_of_drain); d != draining_.end()) {
      // Removed by an earlier reload and still draining: the same endpoint, so its connections
      // stay instead of being closed at the deadline. Collected below in the draining order.
      next->push_back(d->up);
    } else {
      auto up = make_(ep);
      ch.added.push_back(up);
      next->push_back(up);
    }
  }
  auto in_next = [&](const Upstream *u) {
    return std::any_of(next->begin(), next->end(), [&](const auto &k) { return k.get() == u; });
  };
  std::erase_if(draining_, [&](const Draining &d) {
    if (!in_next(d.up.get())) {
      return false;
    }
    d.up->set_removed(false);
    ch.restored.push_back(d.up);
    return true;
  });
  const auto deadline = now + std::max(drain_timeout, std::chrono::milliseconds(0));
  for (const auto &u : *active_) {
    if (!in_next(u.get())) {
      u->set_removed();
      draining_.push_back({u, deadline});
      ch.removed.push_back(u);
    }
  }
  active_ = std::move(next);
  return ch;
}

UpstreamSet::List UpstreamSet::expire(TimePoint now) {
  List due;
  std::erase_if(draining_, [&](const Draining &d) {
    if (d.deadline > now) {
      return false;
    }
    due.push_back(d.up);
    return true;
  });
  retired_.insert(retired_.end(), due.begin(), due.end());
  if (retired_.size() > kRetiredMax) {
    retired_.erase(retired_.begin(), retired_.begin() + (retired_.size() - kRetiredMax));
  }
  return due;
}

std::optional<UpstreamSet::TimePoint> UpstreamSet::next_deadline() const {
  std::optional<TimePoint> next;
  for (const auto &d : draining_) {
    if (!next || d.deadline < *next) {
      next = d.deadline;
    }
  }
  return next;
}

UpstreamSet::List UpstreamSet::draining() const {
  List v;
  for (const auto &d : draining_) {
    v.push_back(d.up);
  }
  return v;
}

UpstreamSet::List UpstreamSet::visible() const {
  List v(active_->begin(), active_->end());
  for (const auto &d : draining_) {
    v.push_back(d.up);
  }
  return v;
}

UpstreamSet::List UpstreamSet::counted() const {
  List v = visible();
  v.insert(v.end(), retired_.begin(), retired_.end());
  return v;
}

} // namespace kal
