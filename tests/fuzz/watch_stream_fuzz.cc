// The discovery watch stream (issue 18): kal::WatchStreamFramer cutting a watch response body
// into JSON events, kal::parse_watch_event / parse_endpoint_slice_list reading them, and
// kal::EndpointSliceSet applying them. The first input byte picks how the rest is cut into reads.
// Properties: the framer gives the same events and verdict whether the bytes arrive at once or in
// pieces, and no event is larger than its limit; every endpoint read from an EndpointSlice has a
// port and an address that renders and parses back to itself; the set's endpoints hold each
// address once; a rejection says what is wrong.
#include "discovery/endpoint_slice.h"
#include "fuzz_target.h"
#include "kube_api_lb/core/watch_stream.h"

#include <string>
#include <vector>

namespace {

constexpr size_t kMaxEvent = 64 * 1024;

void check_endpoints(const std::vector<kal::DiscoveredEndpoint> &eps) {
  for (const auto &e : eps) {
    KAL_FUZZ_CHECK(e.address.port != 0, "port 0: " + e.address.str());
    auto back = kal::parse_host_port(e.address.str());
    KAL_FUZZ_CHECK(back.ok() && *back == e.address, "does not parse back: " + e.address.str());
  }
}

} // namespace

KAL_FUZZ_TARGET(watch_stream) {
  if (size == 0) {
    return;
  }
  unsigned seed = data[0];
  const std::string_view body(reinterpret_cast<const char *>(data + 1), size - 1);

  kal::WatchStreamFramer whole(kMaxEvent);
  kal::WatchStreamFramer pieces(kMaxEvent);
  std::vector<std::string> a;
  std::vector<std::string> b;
  whole.feed(body, a);
  for (size_t at = 0; at < body.size() && pieces.state() == kal::WatchStreamFramer::State::Ok;) {
    seed = seed * 1103515245u + 12345u;
    const size_t n = 1 + (seed >> 16) % 64;
    pieces.feed(body.substr(at, n), b);
    at += n;
  }
  KAL_FUZZ_CHECK(whole.state() == pieces.state() && whole.error() == pieces.error(),
                 "at once: \"" + whole.error() + "\", in pieces: \"" + pieces.error() + "\"");
  if (whole.state() == kal::WatchStreamFramer::State::Ok) {
    KAL_FUZZ_CHECK(a == b, std::to_string(a.size()) + " events at once, " +
                               std::to_string(b.size()) + " in pieces");
  } else {
    KAL_FUZZ_CHECK(!whole.error().empty(), "failed without a message");
  }

  kal::EndpointSliceSet set;
  if (auto list = kal::parse_endpoint_slice_list(body)) {
    for (const auto &s : list->slices) {
      check_endpoints(s.endpoints);
    }
    set.reset(*list);
  } else {
    KAL_FUZZ_CHECK(!list.error().empty(), "list rejected without a message");
  }
  for (const auto &text : a) {
    KAL_FUZZ_CHECK(text.size() <= kMaxEvent, std::to_string(text.size()) + " bytes");
    auto ev = kal::parse_watch_event(text);
    if (!ev) {
      KAL_FUZZ_CHECK(!ev.error().empty(), "event rejected without a message");
      continue;
    }
    check_endpoints(ev->slice.endpoints);
    set.apply(*ev);
  }
  const auto all = set.endpoints();
  check_endpoints(all);
  for (size_t i = 0; i < all.size(); ++i) {
    for (size_t j = i + 1; j < all.size(); ++j) {
      KAL_FUZZ_CHECK(!(all[i].address == all[j].address), "twice: " + all[i].address.str());
    }
  }
}
