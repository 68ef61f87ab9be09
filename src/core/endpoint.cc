#include "kube_api_lb/core/endpoint.h"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>

namespace kal {
namespace {

// inet_pton reads a C string: a NUL inside `s` would end the address early and let the bytes
// after it through (the fuzzer found "10.0.0.1\0<garbage>" accepted as an IPv4 endpoint).
bool is_ipv4(const std::string &s) {
  in_addr a;
  return s.find('\0') == std::string::npos && inet_pton(AF_INET, s.c_str(), &a) == 1;
}

bool is_ipv6(const std::string &s) {
  in6_addr a;
  return s.find('\0') == std::string::npos && inet_pton(AF_INET6, s.c_str(), &a) == 1;
}

// inet_ntop's form (RFC 5952: lower case, longest zero run as "::") of a valid IPv6 literal.
std::string canonical_ipv6(const std::string &s) {
  in6_addr a;
  char buf[INET6_ADDRSTRLEN];
  if (inet_pton(AF_INET6, s.c_str(), &a) != 1 ||
      inet_ntop(AF_INET6, &a, buf, sizeof buf) == nullptr) {
    return s;
  }
  return buf;
}

// RFC 1123 host name: labels of letters, digits and '-', not starting or ending with '-'.
bool is_dns_name(std::string_view s) {
  if (s.empty() || s.size() > 253) {
    return false;
  }
  size_t label = 0;
  char prev = '.';
  for (char c : s) {
    if (c == '.') {
      if (label == 0 || prev == '-') {
        return false;
      }
      label = 0;
    } else if (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_') {
      if (label == 0 && c == '-') {
        return false;
      }
      if (++label > 63) {
        return false;
      }
    } else {
      return false;
    }
    prev = c;
  }
  return prev != '-';
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) {
    s.remove_prefix(1);
  }
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) {
    s.remove_suffix(1);
  }
  return s;
}

} // namespace

bool is_ip_literal(std::string_view s) {
  const std::string z(s);
  return is_ipv4(z) || is_ipv6(z);
}

std::string HostPort::str() const {
  if (kind == Kind::IPv6) {
    return "[" + host + "]:" + std::to_string(port);
  }
  return host + ":" + std::to_string(port);
}

Result<HostPort> parse_host_port(std::string_view text, uint16_t default_port) {
  const std::string quoted = "\"" + std::string(text) + "\"";
  if (text.empty()) {
    return Err{"empty address"};
  }
  HostPort hp;
  std::string_view port_text;
  bool have_port = false;
  if (text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos) {
      return Err{"address " + quoted + ": missing ']' after IPv6 address"};
    }
    hp.host = std::string(text.substr(1, close - 1));
    auto rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') {
        return Err{"address " + quoted + ": expected ':' after ']'"};
      }
      port_text = rest.substr(1);
      have_port = true;
    }
    if (hp.host.find('%') != std::string::npos) {
      return Err{"address " + quoted + ": \"" + hp.host +
                 "\": IPv6 zone indexes (%interface) are not supported"};
    }
    if (!is_ipv6(hp.host)) {
      return Err{"address " + quoted + ": \"" + hp.host + "\" is not an IPv6 address"};
    }
    // One spelling per address ([0:0::1] is [::1]), so that duplicates are found and names match.
    hp.host = canonical_ipv6(hp.host);
    hp.kind = HostPort::Kind::IPv6;
  } else {
    auto colon = text.rfind(':');
    if (colon != std::string_view::npos && text.find(':') != colon) {
      return Err{"address " + quoted +
                 ": IPv6 addresses must be written in brackets, as [::1]:6443"};
    }
    if (colon != std::string_view::npos) {
      hp.host = std::string(text.substr(0, colon));
      port_text = text.substr(colon + 1);
      have_port = true;
    } else {
      hp.host = std::string(text);
    }
    if (hp.host.empty()) {
      return Err{"address " + quoted + ": missing host"};
    }
    if (is_ipv4(hp.host)) {
      hp.kind = HostPort::Kind::IPv4;
    } else if (std::all_of(hp.host.begin(), hp.host.end(),
                           [](char c) { return std::isdigit((unsigned char)c) || c == '.'; })) {
      return Err{"address " + quoted + ": \"" + hp.host + "\" is not a valid IPv4 address"};
    } else if (is_dns_name(hp.host)) {
      hp.kind = HostPort::Kind::Name;
    } else {
      return Err{"address " + quoted + ": \"" + hp.host + "\" is not a valid host name"};
    }
  }
  if (!have_port) {
    if (default_port == 0) {
      return Err{"address " + quoted + ": missing port (expected host:port)"};
    }
    hp.port = default_port;
    return hp;
  }
  if (port_text.empty()) {
    return Err{"address " + quoted + ": missing port number after ':'"};
  }
  unsigned long port = 0;
  auto [ptr, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec == std::errc::result_out_of_range ||
      (ec == std::errc() && ptr == port_text.data() + port_text.size() &&
       (port == 0 || port > 65535))) {
    return Err{"address " + quoted + ": port " + std::string(port_text) +
               " out of range (1-65535)"};
  }
  if (ec != std::errc() || ptr != port_text.data() + port_text.size()) {
    return Err{"address " + quoted + ": port \"" + std::string(port_text) + "\" is not a number"};
  }
  hp.port = static_cast<uint16_t>(port);
  return hp;
}

Result<HostPort> to_listen_address(const HostPort &hp) {
  if (hp.kind != HostPort::Kind::Name) {
    return hp;
  }
  if (hp.host == "localhost") {
    return HostPort{"127.0.0.1", hp.port, HostPort::Kind::IPv4};
  }
  return Err{hp.str() +
             " is not an IP address (listen addresses must be IP addresses or localhost)"};
}

Result<std::vector<HostPort>> parse_endpoint_list(std::string_view text) {
  std::vector<HostPort> out;
  size_t start = 0;
  while (start <= text.size()) {
    auto comma = text.find(',', start);
    auto item = trim(text.substr(start, comma == std::string_view::npos ? std::string_view::npos
                                                                        : comma - start));
    if (item.empty()) {
      return Err{"empty endpoint in list \"" + std::string(text) + "\""};
    }
    auto hp = parse_host_port(item);
    if (!hp) {
      return Err{"endpoint " + hp.error().substr(hp.error().find('"'))};
    }
    for (const auto &seen : out) {
      if (seen == *hp) {
        return Err{"duplicate endpoint " + hp->str()};
      }
    }
    out.push_back(*hp);
    if (comma == std::string_view::npos) {
      break;
    }
    start = comma + 1;
  }
  return out;
}

} // namespace kal
