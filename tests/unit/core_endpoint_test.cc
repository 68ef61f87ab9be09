#include "kube_api_lb/core/endpoint.h"

#include <doctest/doctest.h>

using namespace kal;

TEST_CASE("parse_host_port accepts IPv4, bracketed IPv6 and names") {
  auto a = parse_host_port("192.168.10.11:6443");
  REQUIRE(a);
  CHECK(a->host == "192.168.10.11");
  CHECK(a->port == 6443);
  CHECK(a->kind == HostPort::Kind::IPv4);
  auto b = parse_host_port("[fd00::11]:6443");
  REQUIRE(b);
  CHECK(b->host == "fd00::11");
  CHECK(b->kind == HostPort::Kind::IPv6);
  CHECK(b->str() == "[fd00::11]:6443");
  // One spelling per address, so that duplicates are found: [0:0::1] and [0000::0001] are [::1].
  for (const char *same : {"[0:0::1]:6443", "[0000::0001]:6443", "[::1]:6443"}) {
    CAPTURE(same);
    auto e = parse_host_port(same);
    REQUIRE(e);
    CHECK(e->str() == "[::1]:6443");
  }
  CHECK(parse_host_port("[FD00:0:0::11]:6443")->host == "fd00::11");
  auto c = parse_host_port("cp1.example.com:443");
  REQUIRE(c);
  CHECK(c->kind == HostPort::Kind::Name);
  auto d = parse_host_port("localhost", 6443);
  REQUIRE(d);
  CHECK(d->port == 6443);
}

TEST_CASE("parse_host_port rejects bad input with a message naming it") {
  struct Case {
    const char *in;
    const char *msg;
  } cases[] = {
      {"10.0.0.1:99999", "port 99999 out of range"},
      {"10.0.0.1:0", "port 0 out of range"},
      {"10.0.0.1:http", "is not a number"},
      {"10.0.0.1", "missing port"},
      {"10.0.0.1:", "missing port number"},
      {"fd00::1:6443", "must be written in brackets"},
      {"[fd00::1:6443", "missing ']'"},
      {"[10.0.0.1]:6443", "is not an IPv6 address"},
      {"[fe80::1%lo]:6443", "IPv6 zone indexes (%interface) are not supported"},
      {"300.1.1.1:6443", "is not a valid IPv4 address"},
      {"bad_host!:6443", "is not a valid host name"},
      {":6443", "missing host"},
      {"", "empty address"},
  };
  for (const auto &c : cases) {
    CAPTURE(c.in);
    auto r = parse_host_port(c.in);
    REQUIRE_FALSE(r);
    CHECK(r.error().find(c.msg) != std::string::npos);
  }
  // A NUL ends the C string inet_pton reads: the bytes after it must not ride along (fuzzer).
  for (std::string_view in :
       {std::string_view("10.0.0.1\0junk:6443", 18), std::string_view("[::1\0junk]:6443", 16),
        std::string_view("name\0junk:6443", 15)}) {
    CAPTURE(std::string(in));
    CHECK_FALSE(is_ip_literal(in.substr(0, in.rfind(':'))));
    auto r = parse_host_port(in);
    REQUIRE_FALSE(r);
    CHECK(r.error().find("is not") != std::string::npos);
  }
}

TEST_CASE("parse_endpoint_list splits, trims and rejects duplicates and empties") {
  auto l = parse_endpoint_list("10.0.0.1:6443, 10.0.0.2:6443 ,[::1]:6443");
  REQUIRE(l);
  CHECK(l->size() == 3);
  auto dup = parse_endpoint_list("10.0.0.1:6443,10.0.0.1:6443");
  REQUIRE_FALSE(dup);
  CHECK(dup.error() == "duplicate endpoint 10.0.0.1:6443");
  auto empty = parse_endpoint_list("10.0.0.1:6443,,10.0.0.2:6443");
  REQUIRE_FALSE(empty);
  CHECK(empty.error().find("empty endpoint") != std::string::npos);
  auto bad = parse_endpoint_list("10.0.0.1:6443,10.0.0.2");
  REQUIRE_FALSE(bad);
  CHECK(bad.error().find("10.0.0.2") != std::string::npos);
}

TEST_CASE("to_listen_address keeps IP literals, maps localhost and refuses other names") {
  CHECK(*to_listen_address(*parse_host_port("10.0.0.1:6443")) ==
        HostPort{"10.0.0.1", 6443, HostPort::Kind::IPv4});
  CHECK(*to_listen_address(*parse_host_port("[::]:6443")) ==
        HostPort{"::", 6443, HostPort::Kind::IPv6});
  CHECK(*to_listen_address(*parse_host_port("localhost:6443")) ==
        HostPort{"127.0.0.1", 6443, HostPort::Kind::IPv4});
  auto r = to_listen_address(*parse_host_port("cp1.example:6443"));
  REQUIRE_FALSE(r);
  CHECK(r.error() == "cp1.example:6443 is not an IP address (listen addresses must be IP addresses "
                     "or localhost)");
}
