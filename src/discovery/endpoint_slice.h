#pragma once
// The `default/kubernetes` EndpointSlices as kube-api-lb reads them (discovery.k8s.io/v1): a list
// answer, the events of a watch, and the union of the slices they describe. Pure: JSON text in,
// values out (nlohmann/json; its exceptions never leave this file).
//
// Per slice: every address of every endpoint, with the port the slice names "https" (or its only
// port), ready unless its `conditions.ready` is false (no `ready` condition counts as ready, as
// the API says). FQDN slices, endpoints without an address and ports that are not TCP are
// skipped and named in `skipped`, never an error: one odd slice must not stop discovery.
#include "kube_api_lb/core/discovery_merge.h"
#include "kube_api_lb/core/result.h"

#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace kal {

struct EndpointSliceInfo {
  std::string name;
  std::string resource_version;
  std::vector<DiscoveredEndpoint> endpoints;
  std::vector<std::string> skipped; // what was left out, and why
};

struct EndpointSliceList {
  std::string resource_version; // of the list: the watch starts from it
  std::vector<EndpointSliceInfo> slices;
};

struct WatchEvent {
  enum class Type { Added, Modified, Deleted, Bookmark, Error };
  Type type = Type::Added;
  std::string resource_version; // of the object (Bookmark: where the watch has got to)
  EndpointSliceInfo slice;      // Added / Modified / Deleted
  int code = 0;                 // Error: the Status code (410: the resourceVersion is too old)
  std::string reason, message;  // Error
};

// An EndpointSliceList answer. Errors name what is wrong ("not JSON: ...", "kind is \"Status\"").
Result<EndpointSliceList> parse_endpoint_slice_list(std::string_view json);
// One watch event ({"type": ..., "object": ...}).
Result<WatchEvent> parse_watch_event(std::string_view json);
const char *to_string(WatchEvent::Type t); // "ADDED", ...

// The slices known now, by name; their union is what discovery says.
class EndpointSliceSet {
public:
  void reset(const EndpointSliceList &list);
  // Added/Modified replace the slice, Deleted drops it; Bookmark and Error change nothing.
  void apply(const WatchEvent &ev);
  // Every endpoint of every slice, once per address (ready if any slice says it is ready).
  std::vector<DiscoveredEndpoint> endpoints() const;
  size_t size() const { return slices_.size(); }

private:
  std::map<std::string, std::vector<DiscoveredEndpoint>> slices_;
};

} // namespace kal
