// Shared by the config readers' unit tests: endpoint literals and the files under tests/data/.
#pragma once

#include "kube_api_lb/core/endpoint.h"

#include <doctest/doctest.h>

#include <cstdint>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>

namespace kal_test {

inline kal::HostPort v4(const char *h, uint16_t p) {
  return kal::HostPort{h, p, kal::HostPort::Kind::IPv4};
}
inline kal::HostPort v6(const char *h, uint16_t p) {
  return kal::HostPort{h, p, kal::HostPort::Kind::IPv6};
}
inline kal::HostPort name(const char *h, uint16_t p) {
  return kal::HostPort{h, p, kal::HostPort::Kind::Name};
}

inline std::optional<std::string> slurp(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return std::nullopt;
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A file under tests/data/, or the test fails naming it.
inline std::string data(const std::string &rel) {
  auto text = slurp(std::string(KAL_SOURCE_DIR) + "/tests/data/" + rel);
  REQUIRE_MESSAGE(text.has_value(), "missing test data " << rel);
  return *text;
}

} // namespace kal_test
