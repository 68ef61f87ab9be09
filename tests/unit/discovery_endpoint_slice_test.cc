#include "discovery/endpoint_slice.h"

#include <doctest/doctest.h>

#include <string>

using namespace kal;

namespace {

std::string describe(const std::vector<DiscoveredEndpoint> &eps) {
  std::string s;
  for (const auto &e : eps) {
    s += (s.empty() ? "" : " ") + e.address.str() + (e.ready ? "" : "(not ready)");
  }
  return s;
}

const char *kSlice =
    R"({"kind":"EndpointSlice","metadata":{"name":"kubernetes","resourceVersion":"7"},
  "addressType":"IPv4","ports":[{"name":"https","port":6443,"protocol":"TCP"}],
  "endpoints":[{"addresses":["10.0.0.11"],"conditions":{"ready":true}},
               {"addresses":["10.0.0.12"]},
               {"addresses":["10.0.0.13"],"conditions":{"ready":false}}]})";

} // namespace

TEST_CASE("EndpointSlice list: endpoints, ports, ready conditions, skipped parts, errors") {
  struct Row {
    const char *name;
    std::string json;
    const char *want; // endpoints, or the error's start
    bool ok;
    size_t skipped;
  };
  const std::string list =
      std::string(R"({"kind":"EndpointSliceList","metadata":{"resourceVersion":"42"},"items":[)") +
      kSlice + "]}";
  const Row rows[] = {
      {"no ready condition counts as ready; ready:false is kept as not ready", list,
       "10.0.0.11:6443 10.0.0.12:6443 10.0.0.13:6443(not ready)", true, 0},
      {"an empty list",
       R"({"kind":"EndpointSliceList","metadata":{"resourceVersion":"1"},"items":[]})", "", true,
       0},
      {"IPv6 addresses are bracketed",
       R"({"kind":"EndpointSliceList","metadata":{"resourceVersion":"1"},"items":[{"metadata":{"name":"k6"},"addressType":"IPv6","ports":[{"port":443}],"endpoints":[{"addresses":["fd00::1"]}]}]})",
       "[fd00::1]:443", true, 0},
      {"the https port among several",
       R"({"kind":"EndpointSliceList","metadata":{"resourceVersion":"1"},"items":[{"metadata":{"name":"k"},"addressType":"IPv4","ports":[{"name":"x","port":1},{"name":"https","port":6443}],"endpoints":[{"addresses":["10.0.0.1"]}]}]})",
       "10.0.0.1:6443", true, 0},
      {"an FQDN slice is skipped, not an error",
       R"({"kind":"EndpointSliceList","metadata":{"resourceVersion":"1"},"items":[{"metadata":{"name":"k"},"addressType":"FQDN","ports":[{"port":1}],"endpoints":[{"addresses":["a.b"]}]}]})",
       "", true, 1},
      {"a slice with no usable port is skipped",
       R"({"kind":"EndpointSliceList","metadata":{"resourceVersion":"1"},"items":[{"metadata":{"name":"k"},"addressType":"IPv4","ports":[{"port":1,"protocol":"UDP"}],"endpoints":[{"addresses":["10.0.0.1"]}]}]})",
       "", true, 1},
      {"not JSON", "{\"kind\":", "the list answer is not JSON", false, 0},
      {"a Status instead of a list", R"({"kind":"Status","code":403})",
       "the list answer's kind is \"Status\"", false, 0},
      {"no resourceVersion", R"({"kind":"EndpointSliceList","items":[]})",
       "the list answer has no metadata.resourceVersion", false, 0},
      {"an address that is not a string",
       R"({"kind":"EndpointSliceList","metadata":{"resourceVersion":"1"},"items":[{"metadata":{"name":"k"},"addressType":"IPv4","ports":[{"port":1}],"endpoints":[{"addresses":[5]}]}]})",
       "slice k: an address is not a string", false, 0},
  };
  for (const auto &r : rows) {
    CAPTURE(r.name);
    auto l = parse_endpoint_slice_list(r.json);
    REQUIRE(l.ok() == r.ok);
    if (!r.ok) {
      CHECK(l.error().rfind(r.want, 0) == 0);
      continue;
    }
    EndpointSliceSet set;
    set.reset(*l);
    CHECK(describe(set.endpoints()) == r.want);
    size_t skipped = 0;
    for (const auto &s : l->slices) {
      skipped += s.skipped.size();
    }
    CHECK(skipped == r.skipped);
  }
}

TEST_CASE("watch events: added, modified, deleted, bookmark, error; the set follows them") {
  EndpointSliceSet set;
  auto apply = [&](const std::string &json) {
    auto ev = parse_watch_event(json);
    REQUIRE(ev);
    set.apply(*ev);
    return *ev;
  };
  auto ev = apply(std::string(R"({"type":"ADDED","object":)") + kSlice + "}");
  CHECK(ev.resource_version == "7");
  CHECK(describe(set.endpoints()) == "10.0.0.11:6443 10.0.0.12:6443 10.0.0.13:6443(not ready)");
  apply(
      R"({"type":"ADDED","object":{"metadata":{"name":"k2","resourceVersion":"8"},"addressType":"IPv4","ports":[{"port":6443}],"endpoints":[{"addresses":["10.0.0.13"]},{"addresses":["10.0.0.14"]}]}})");
  // Ready in any slice is ready (slices in name order: k2, kubernetes).
  CHECK(describe(set.endpoints()) == "10.0.0.13:6443 10.0.0.14:6443 10.0.0.11:6443 10.0.0.12:6443");
  apply(
      R"({"type":"DELETED","object":{"metadata":{"name":"kubernetes","resourceVersion":"9"},"addressType":"IPv4","ports":[{"port":6443}]}})");
  CHECK(describe(set.endpoints()) == "10.0.0.13:6443 10.0.0.14:6443");
  auto bm = apply(
      R"({"type":"BOOKMARK","object":{"kind":"EndpointSlice","metadata":{"resourceVersion":"12"}}})");
  CHECK(bm.type == WatchEvent::Type::Bookmark);
  CHECK(bm.resource_version == "12");
  auto err = apply(
      R"({"type":"ERROR","object":{"kind":"Status","code":410,"reason":"Expired","message":"too old"}})");
  CHECK(err.type == WatchEvent::Type::Error);
  CHECK(err.code == 410);
  CHECK(set.size() == 1);

  struct Bad {
    const char *json;
    const char *error;
  };
  const Bad bad[] = {
      {R"({"type":"MODIFIED","object":nope})", "a watch event is not a JSON object"},
      {R"([1])", "a watch event is not a JSON object"},
      {R"({"type":"SURPRISE","object":{}})", "a watch event has type \"SURPRISE\""},
      {R"({"type":"ADDED"})", "a ADDED event without an object"},
      {R"({"type":"BOOKMARK","object":{"metadata":{}}})", "a BOOKMARK event without"},
      {R"({"type":"ADDED","object":{"kind":"Pod","metadata":{"name":"p"}}})",
       "object p is a Pod, not an EndpointSlice"},
  };
  for (const auto &b : bad) {
    CAPTURE(b.json);
    auto e = parse_watch_event(b.json);
    REQUIRE(!e);
    CHECK(e.error().rfind(b.error, 0) == 0);
  }
}
