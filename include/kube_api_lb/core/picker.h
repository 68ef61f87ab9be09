#pragma once
// Chooses the endpoint for a new client connection. Pure: no I/O, no clock, an injected seed.
//
// Endpoints are ranked in tiers — Up, then Unknown, then withdrawn by discovery (not Down), then
// Down (fail open: when nothing better is
// left a down endpoint is still tried, so the first apiserver to come back serves at once). The
// policy chooses inside the best non-empty tier; endpoints already tried for this client are
// excluded so a retry always moves on.
#include "kube_api_lb/core/health.h"

#include <atomic>
#include <cstdint>
#include <optional>
#include <random>
#include <span>

namespace kal {

// How a worker picks among the usable endpoints (names in flags and YAML: see config.h).
enum class Policy { LeastConn, RoundRobin, RandomTwo, First };

struct Candidate {
  Health health = Health::Unknown;
  uint64_t active = 0;   // connections bound now
  double weight = 1.0;   // (0, 1]: below 1 while slow-starting after recovery
  bool excluded = false; // already tried for this client, or removed by a reload
  // Discovery says it left (or is not ready in) the kubernetes EndpointSlice: ranked after Up and
  // Unknown endpoints, before Down ones (core/discovery_merge.h).
  bool withdrawn = false;
};

class Picker {
public:
  explicit Picker(Policy policy, uint64_t seed = 0x6b61706c62ULL) : policy_(policy), rng_(seed) {}

  // Index into `cands` of the endpoint to dial, or nullopt when every candidate is excluded.
  std::optional<size_t> pick(std::span<const Candidate> cands);

  Policy policy() const { return policy_; }
  void set_policy(Policy p) { policy_ = p; }
  // Pickers of the event loops of one process share one cursor, so round-robin rotates over
  // every new connection of the process, whichever loop accepted it.
  void share_cursor(std::atomic<uint64_t> *cursor) { shared_ = cursor; }

private:
  uint64_t ticket() { return shared_ ? shared_->fetch_add(1, std::memory_order_relaxed) : next_++; }

  Policy policy_;
  uint64_t next_ = 0; // round-robin cursor, also breaks least-conn ties fairly
  std::atomic<uint64_t> *shared_ = nullptr;
  std::mt19937_64 rng_;
};

// Tier of a health state: 0 best; a withdrawn endpoint that is not Down ranks 2, Down ones 3.
inline int tier_of(Health h, bool withdrawn) {
  if (h == Health::Down) {
    return 3;
  }
  return withdrawn ? 2 : (h == Health::Up ? 0 : 1);
}

// Tier of a health state alone: 0 best.
inline int tier_of(Health h) {
  switch (h) {
  case Health::Up:
    return 0;
  case Health::Unknown:
    return 1;
  case Health::Down:
    return 2;
  }
  return 2;
}

} // namespace kal
