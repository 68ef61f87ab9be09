#pragma once
// The last-known-good state of endpoint discovery on disk (--state-file, a hostPath directory in
// the static pod: the root filesystem stays read-only). JSON:
//
//   {"kind": "KubeAPILBDiscoveryState", "formatVersion": 1,
//    "seed": ["10.0.0.11:6443", ...],       the seed it was learned with
//    "endpoints": ["10.0.0.21:6443", ...],  what discovery listed ready, last applied
//    "savedAt": "2026-12-07T05:00:00Z"}
//
// Written only after a non-empty change, atomically: a temporary file in the same directory,
// fsync, rename over the old one, fsync of the directory; a crash leaves the old file or the new
// one, never half of one. Every failure (missing, unreadable, corrupt, another format version,
// unwritable) is an error value the caller logs as a warning: the state file never stops the
// proxy and never empties its list.
#include "kube_api_lb/core/endpoint.h"
#include "kube_api_lb/core/result.h"

#include <string>
#include <string_view>
#include <vector>

namespace kal {

struct DiscoveryState {
  static constexpr int kFormatVersion = 1;
  std::vector<HostPort> seed;
  std::vector<HostPort> endpoints;
  std::string saved_at; // RFC 3339, informative

  bool operator==(const DiscoveryState &) const = default;
};

// The file's text for `s` (one JSON object and a newline).
std::string encode_discovery_state(const DiscoveryState &s);
// The state in `text`; errors say what is wrong ("not JSON", "formatVersion 2 is not supported
// (this kube-api-lb reads 1)", "endpoints[1]: ...", "no endpoints").
Result<DiscoveryState> decode_discovery_state(std::string_view text);

// Reads and decodes `path`; errors name the file. A missing file is an error too (the caller
// tells it apart with `missing`).
Result<DiscoveryState> load_discovery_state(const std::string &path, bool *missing = nullptr);
// Writes `s` to `path` atomically (see above); errors name the file and the step that failed.
Result<bool> save_discovery_state(const std::string &path, const DiscoveryState &s);

} // namespace kal
