#include "kube_api_lb/core/picker.h"

#include <vector>

namespace kal {

std::optional<size_t> Picker::pick(std::span<const Candidate> cands) {
  constexpr int kNone = 4;
  int best_tier = kNone;
  for (const auto &c : cands) {
    if (!c.excluded) {
      best_tier = std::min(best_tier, tier_of(c.health, c.withdrawn));
    }
  }
  if (best_tier == kNone) {
    return std::nullopt;
  }
  // Indices of the eligible endpoints, in configured order. Endpoint lists are tiny (3-7), so
  // a small vector beats anything cleverer.
  size_t idx[64];
  size_t n = 0;
  for (size_t i = 0; i < cands.size() && n < 64; ++i) {
    if (!cands[i].excluded && tier_of(cands[i].health, cands[i].withdrawn) == best_tier) {
      idx[n++] = i;
    }
  }
  auto load = [&](size_t i) {
    // Slow start: a ramping endpoint looks busier than it is. +1 so an idle endpoint's weight
    // still matters.
    double w = cands[i].weight > 0.01 ? cands[i].weight : 0.01;
    return (static_cast<double>(cands[i].active) + 1.0) / w;
  };
  switch (policy_) {
  case Policy::First:
    return idx[0];
  case Policy::RoundRobin: {
    return idx[ticket() % n];
  }
  case Policy::RandomTwo: {
    if (n == 1) {
      return idx[0];
    }
    std::uniform_int_distribution<size_t> d(0, n - 1);
    size_t a = d(rng_);
    size_t b = d(rng_);
    while (b == a) {
      b = d(rng_);
    }
    return load(idx[a]) <= load(idx[b]) ? idx[a] : idx[b];
  }
  case Policy::LeastConn: {
    // Ties go round-robin (start the scan at a rotating offset) so that idle endpoints share
    // short connections instead of the first one taking them all.
    size_t start = ticket() % n;
    size_t best = idx[start];
    double best_load = load(best);
    for (size_t k = 1; k < n; ++k) {
      size_t i = idx[(start + k) % n];
      double l = load(i);
      if (l < best_load) {
        best = i;
        best_load = l;
      }
    }
    return best;
  }
  }
  return idx[0];
}

} // namespace kal
