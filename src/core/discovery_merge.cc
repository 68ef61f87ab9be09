#include "kube_api_lb/core/discovery_merge.h"

#include <algorithm>
#include <cmath>

namespace kal {
namespace {

bool contains(const std::vector<HostPort> &v, const HostPort &hp) {
  return std::find(v.begin(), v.end(), hp) != v.end();
}

// The ready addresses of an observation, once each, sorted by their canonical text so that the
// same set listed in another order is the same set.
std::vector<HostPort> ready_set(const std::vector<DiscoveredEndpoint> &eps) {
  std::vector<HostPort> out;
  for (const auto &e : eps) {
    if (e.ready && !contains(out, e.address)) {
      out.push_back(e.address);
    }
  }
  std::sort(out.begin(), out.end(),
            [](const HostPort &a, const HostPort &b) { return a.str() < b.str(); });
  return out;
}

} // namespace

const char *source_name(uint8_t sources) {
  if (sources & kSourceSeed) {
    return "seed";
  }
  if (sources & kSourceDiscovered) {
    return "discovered";
  }
  if (sources & kSourceSaved) {
    return "saved";
  }
  return "none";
}

DiscoveryMerge::DiscoveryMerge(std::vector<HostPort> seed, std::vector<HostPort> saved,
                               DiscoveryMergeSettings s)
    : s_(s) {
  for (auto &hp : seed) {
    if (!find(hp)) {
      entries_.push_back(Entry{.address = std::move(hp), .seed = true});
    }
  }
  for (auto &hp : saved) {
    if (Entry *e = find(hp)) {
      e->saved = true;
    } else if (entries_.size() < kMaxEndpoints) {
      entries_.push_back(Entry{.address = hp, .saved = true});
    }
  }
  // What the file says was discovered is what the next save compares with.
  discovered_ = ready_set([&] {
    std::vector<DiscoveredEndpoint> v;
    for (const auto &e : entries_) {
      if (e.saved) {
        v.push_back({e.address, true});
      }
    }
    return v;
  }());
}

DiscoveryMerge::Entry *DiscoveryMerge::find(const HostPort &hp) {
  auto it = std::find_if(entries_.begin(), entries_.end(),
                         [&](const Entry &e) { return e.address == hp; });
  return it == entries_.end() ? nullptr : &*it;
}

const DiscoveryMerge::Entry *DiscoveryMerge::find(const HostPort &hp) const {
  return const_cast<DiscoveryMerge *>(this)->find(hp);
}

DiscoveryMerge::Observed DiscoveryMerge::observe(const std::vector<DiscoveredEndpoint> &eps,
                                                 TimePoint now) {
  auto ready = ready_set(eps);
  if (ready.empty()) {
    return Observed::Empty;
  }
  size_t total = ready.size();
  for (const auto &e : entries_) {
    if (e.seed && !contains(ready, e.address)) {
      ++total;
    }
  }
  if (total > kMaxEndpoints) {
    return Observed::TooMany;
  }
  // The drain signal, at once: listed and ready, or not.
  for (auto &e : entries_) {
    auto it = std::find_if(eps.begin(), eps.end(),
                           [&](const DiscoveredEndpoint &d) { return d.address == e.address; });
    if (it != eps.end()) {
      e.seen = true;
    }
    const bool listed_ready = contains(ready, e.address);
    e.withdrawn = (e.seen || e.saved || e.discovered) && !listed_ready;
  }
  if (ready == discovered_) {
    pending_.reset();
    // A saved set that discovery confirms is discovered now (nothing to apply).
    for (auto &e : entries_) {
      if (contains(ready, e.address)) {
        e.discovered = true;
        e.saved = false;
        e.absent_since.reset();
      } else if (e.kept_by_pending()) {
        e.absent_since = now; // the pending list that named it is dropped: its grace starts
      }
    }
    return Observed::Unchanged;
  }
  if (!pending_ || *pending_ != ready) {
    pending_ = std::move(ready);
    pending_since_ = now;
  }
  return Observed::Pending;
}

std::optional<DiscoveryMerge::Decision>
DiscoveryMerge::decide(TimePoint now, const std::vector<HostPort> &usable) {
  Decision d;
  if (pending_ && now - pending_since_ >= s_.debounce) {
    const std::vector<HostPort> next = std::move(*pending_);
    pending_.reset();
    for (auto &e : entries_) {
      const bool listed = contains(next, e.address);
      if (listed) {
        e.discovered = true;
        e.saved = false;
        e.absent_since.reset();
      } else if (!e.seed && !e.absent_since) {
        // Discovered, saved, or an old seed entry kept because a pending list named it.
        e.discovered = false;
        e.absent_since = now;
      }
    }
    for (const auto &hp : next) {
      if (!find(hp)) {
        entries_.push_back(Entry{.address = hp, .discovered = true, .seen = true});
        d.added.push_back(hp);
      }
    }
    discovered_ = next;
    save_due_ = true;
  }
  // Let go of what has been absent for the grace period, never the last usable endpoint.
  auto is_usable = [&](const Entry &e) { return contains(usable, e.address); };
  for (size_t i = 0; i < entries_.size();) {
    Entry &e = entries_[i];
    const bool expired =
        !e.seed && !e.discovered && e.absent_since && now - *e.absent_since >= s_.grace;
    if (!expired) {
      ++i;
      continue;
    }
    const bool other_usable = std::any_of(entries_.begin(), entries_.end(),
                                          [&](const Entry &o) { return &o != &e && is_usable(o); });
    if (is_usable(e) && !other_usable) {
      ++i; // the last usable one stays; looked at again every `recheck`
      continue;
    }
    d.removed.push_back(e.address);
    entries_.erase(entries_.begin() + static_cast<std::ptrdiff_t>(i));
  }
  d.save = std::exchange(save_due_, false);
  if (d.added.empty() && d.removed.empty() && !d.save) {
    return std::nullopt;
  }
  d.endpoints = endpoints();
  return d;
}

std::optional<DiscoveryMerge::TimePoint> DiscoveryMerge::next_wakeup(TimePoint now) const {
  std::optional<TimePoint> next;
  auto consider = [&](TimePoint t) {
    if (t < now) {
      t = now + s_.recheck; // overdue and kept (the last usable one): look again later
    }
    if (!next || t < *next) {
      next = t;
    }
  };
  if (pending_) {
    consider(std::max(pending_since_ + s_.debounce, now));
  }
  for (const auto &e : entries_) {
    if (!e.seed && !e.discovered && e.absent_since) {
      consider(*e.absent_since + s_.grace);
    }
  }
  return next;
}

std::vector<HostPort> DiscoveryMerge::endpoints() const {
  std::vector<HostPort> out;
  for (const auto &e : entries_) {
    out.push_back(e.address);
  }
  return out;
}

std::vector<HostPort> DiscoveryMerge::withdrawn() const {
  std::vector<HostPort> out;
  for (const auto &e : entries_) {
    if (e.withdrawn) {
      out.push_back(e.address);
    }
  }
  return out;
}

uint8_t DiscoveryMerge::sources(const HostPort &hp) const {
  const Entry *e = find(hp);
  if (!e) {
    return 0;
  }
  uint8_t s = 0;
  if (e->seed) {
    s |= kSourceSeed;
  }
  // An entry kept by a pending list is there because discovery listed it.
  if (e->discovered || (e->absent_since && !e->saved) || e->kept_by_pending()) {
    s |= kSourceDiscovered;
  }
  if (e->saved) {
    s |= kSourceSaved;
  }
  return s;
}

std::optional<DiscoveryMerge::TimePoint> DiscoveryMerge::absent_since(const HostPort &hp) const {
  const Entry *e = find(hp);
  return e ? e->absent_since : std::nullopt;
}

void DiscoveryMerge::set_seed(std::vector<HostPort> seed, TimePoint now) {
  for (auto &e : entries_) {
    if (e.seed && !contains(seed, e.address)) {
      e.seed = false;
      // A list still in its debounce that names it counts as discovery listing it: it stays, and
      // leaves by the grace rule if the list that is finally applied does not name it.
      const bool listed = e.discovered || (pending_ && contains(*pending_, e.address));
      if (!listed && !e.absent_since) {
        // Removed by the operator and not listed by discovery: eligible at once.
        e.absent_since = now - s_.grace;
        e.saved = false;
      }
    }
  }
  std::vector<Entry> next;
  for (const auto &hp : seed) {
    if (const Entry *e = find(hp)) {
      Entry copy = *e;
      copy.seed = true;
      copy.absent_since.reset();
      next.push_back(copy);
    } else {
      next.push_back(Entry{.address = hp, .seed = true});
    }
  }
  for (const auto &e : entries_) {
    if (!contains(seed, e.address)) {
      next.push_back(e);
    }
  }
  entries_ = std::move(next);
}

std::chrono::milliseconds discovery_backoff(int failures, double jitter01,
                                            std::chrono::milliseconds base,
                                            std::chrono::milliseconds cap) {
  double d = static_cast<double>(base.count());
  for (int i = 1; i < failures && d < static_cast<double>(cap.count()); ++i) {
    d *= 2;
  }
  d = std::min(d, static_cast<double>(cap.count()));
  const double j = std::clamp(jitter01, 0.0, 1.0);
  return std::chrono::milliseconds(static_cast<int64_t>(std::llround(d * (0.5 + 0.5 * j))));
}

} // namespace kal
