#pragma once
// Endpoint addresses as operators write them: "10.0.0.1:6443", "[fd00::1]:6443",
// "cp1.example:6443".
#include "kube_api_lb/core/result.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace kal {

// At most this many endpoints: a session remembers the endpoints it tried in a 64-bit mask.
constexpr size_t kMaxEndpoints = 64;

struct HostPort {
  std::string host; // IPv4 literal, IPv6 literal without brackets, or a DNS name
  uint16_t port = 0;
  enum class Kind { IPv4, IPv6, Name } kind = Kind::Name;

  // "host:port", with brackets around IPv6 literals; the canonical key of an endpoint.
  std::string str() const;
  bool operator==(const HostPort &) const = default;
};

// Parses "host:port". A port is required unless default_port is non-zero. IPv6 literals must be
// bracketed. Errors name the offending text, e.g. `endpoint "10.0.0.1:99999": port out of range`.
// True for an IPv4 or IPv6 address literal (no brackets, no port, no zone), false for a name.
bool is_ip_literal(std::string_view s);

Result<HostPort> parse_host_port(std::string_view text, uint16_t default_port = 0);

// The address a listener binds for `hp`, the one mapping every source of listen addresses (flags,
// YAML, nginx.conf, haproxy.cfg) applies: IP literals are returned as they are and "localhost" as
// 127.0.0.1. Any other host name is an error naming it ("cp1:6443 is not an IP address (listen
// addresses must be IP addresses or localhost)"): listeners are bound from literal addresses, and
// only endpoints are resolved.
Result<HostPort> to_listen_address(const HostPort &hp);

// Parses a comma-separated list (whitespace around items ignored), rejecting empty items and
// duplicates (after canonicalisation).
Result<std::vector<HostPort>> parse_endpoint_list(std::string_view text);

} // namespace kal
