#include "discovery/endpoint_slice.h"

#include <nlohmann/json.hpp>

#include <algorithm>

namespace kal {
namespace {

using json = nlohmann::json;

std::string str_at(const json &j, const char *key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

Result<EndpointSliceInfo> slice_of(const json &obj) {
  if (!obj.is_object()) {
    return Err{"the object is not a JSON object"};
  }
  EndpointSliceInfo s;
  if (auto m = obj.find("metadata"); m != obj.end() && m->is_object()) {
    s.name = str_at(*m, "name");
    s.resource_version = str_at(*m, "resourceVersion");
  }
  if (s.name.empty()) {
    return Err{"EndpointSlice without metadata.name"};
  }
  const std::string kind = str_at(obj, "kind");
  if (!kind.empty() && kind != "EndpointSlice") {
    return Err{"object " + s.name + " is a " + kind + ", not an EndpointSlice"};
  }
  const std::string type = str_at(obj, "addressType");
  if (type != "IPv4" && type != "IPv6") {
    s.skipped.push_back("slice " + s.name + ": addressType \"" + type + "\" (only IPv4 and IPv6)");
    return s;
  }
  int port = 0;
  if (auto ports = obj.find("ports"); ports != obj.end() && ports->is_array()) {
    const json *only = ports->size() == 1 ? &(*ports)[0] : nullptr;
    for (const auto &p : *ports) {
      if (p.is_object() && str_at(p, "name") == "https") {
        only = &p;
      }
    }
    if (only && only->is_object()) {
      const std::string proto = str_at(*only, "protocol");
      auto pn = only->find("port");
      if ((proto.empty() || proto == "TCP") && pn != only->end() && pn->is_number_integer()) {
        port = pn->get<int>();
      }
    }
  }
  if (port <= 0 || port > 65535) {
    s.skipped.push_back("slice " + s.name + ": no TCP port named \"https\" (or single port)");
    return s;
  }
  auto eps = obj.find("endpoints");
  if (eps == obj.end() || eps->is_null()) {
    return s; // a slice with no endpoints (every apiserver gone from it)
  }
  if (!eps->is_array()) {
    return Err{"slice " + s.name + ": endpoints is not a list"};
  }
  for (const auto &e : *eps) {
    if (!e.is_object()) {
      return Err{"slice " + s.name + ": an endpoint is not an object"};
    }
    bool ready = true;
    if (auto c = e.find("conditions"); c != e.end() && c->is_object()) {
      if (auto r = c->find("ready"); r != c->end() && r->is_boolean()) {
        ready = r->get<bool>();
      }
    }
    auto addrs = e.find("addresses");
    if (addrs == e.end() || !addrs->is_array() || addrs->empty()) {
      s.skipped.push_back("slice " + s.name + ": an endpoint without addresses");
      continue;
    }
    for (const auto &a : *addrs) {
      if (!a.is_string()) {
        return Err{"slice " + s.name + ": an address is not a string"};
      }
      const std::string host = a.get<std::string>();
      if (!is_ip_literal(host)) {
        s.skipped.push_back("slice " + s.name + ": address \"" + host + "\" is not an IP");
        continue;
      }
      const bool v6 = host.find(':') != std::string::npos;
      auto hp = parse_host_port((v6 ? "[" + host + "]" : host) + ":" + std::to_string(port));
      if (!hp) {
        s.skipped.push_back("slice " + s.name + ": " + hp.error());
        continue;
      }
      s.endpoints.push_back({*hp, ready});
    }
  }
  return s;
}

} // namespace

const char *to_string(WatchEvent::Type t) {
  switch (t) {
  case WatchEvent::Type::Added:
    return "ADDED";
  case WatchEvent::Type::Modified:
    return "MODIFIED";
  case WatchEvent::Type::Deleted:
    return "DELETED";
  case WatchEvent::Type::Bookmark:
    return "BOOKMARK";
  case WatchEvent::Type::Error:
    return "ERROR";
  }
  return "?";
}

Result<EndpointSliceList> parse_endpoint_slice_list(std::string_view text) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) {
    return Err{"the list answer is not JSON"};
  }
  if (!j.is_object()) {
    return Err{"the list answer is not a JSON object"};
  }
  const std::string kind = str_at(j, "kind");
  if (kind != "EndpointSliceList") {
    return Err{"the list answer's kind is \"" + kind + "\", not EndpointSliceList"};
  }
  EndpointSliceList out;
  if (auto m = j.find("metadata"); m != j.end() && m->is_object()) {
    out.resource_version = str_at(*m, "resourceVersion");
  }
  if (out.resource_version.empty()) {
    return Err{"the list answer has no metadata.resourceVersion to watch from"};
  }
  auto items = j.find("items");
  if (items == j.end() || items->is_null()) {
    return out;
  }
  if (!items->is_array()) {
    return Err{"the list answer's items is not a list"};
  }
  for (const auto &it : *items) {
    auto s = slice_of(it);
    if (!s) {
      return Err{s.error()};
    }
    out.slices.push_back(std::move(*s));
  }
  return out;
}

Result<WatchEvent> parse_watch_event(std::string_view text) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return Err{"a watch event is not a JSON object"};
  }
  WatchEvent ev;
  const std::string type = str_at(j, "type");
  if (type == "ADDED") {
    ev.type = WatchEvent::Type::Added;
  } else if (type == "MODIFIED") {
    ev.type = WatchEvent::Type::Modified;
  } else if (type == "DELETED") {
    ev.type = WatchEvent::Type::Deleted;
  } else if (type == "BOOKMARK") {
    ev.type = WatchEvent::Type::Bookmark;
  } else if (type == "ERROR") {
    ev.type = WatchEvent::Type::Error;
  } else {
    return Err{"a watch event has type \"" + type + "\""};
  }
  auto obj = j.find("object");
  if (obj == j.end() || !obj->is_object()) {
    return Err{std::string("a ") + to_string(ev.type) + " event without an object"};
  }
  if (ev.type == WatchEvent::Type::Error) {
    if (auto c = obj->find("code"); c != obj->end() && c->is_number_integer()) {
      ev.code = c->get<int>();
    }
    ev.reason = str_at(*obj, "reason");
    ev.message = str_at(*obj, "message");
    return ev;
  }
  if (auto m = obj->find("metadata"); m != obj->end() && m->is_object()) {
    ev.resource_version = str_at(*m, "resourceVersion");
  }
  if (ev.type == WatchEvent::Type::Bookmark) {
    if (ev.resource_version.empty()) {
      return Err{"a BOOKMARK event without metadata.resourceVersion"};
    }
    return ev;
  }
  auto s = slice_of(*obj);
  if (!s) {
    return Err{s.error()};
  }
  ev.slice = std::move(*s);
  return ev;
}

void EndpointSliceSet::reset(const EndpointSliceList &list) {
  slices_.clear();
  for (const auto &s : list.slices) {
    slices_[s.name] = s.endpoints;
  }
}

void EndpointSliceSet::apply(const WatchEvent &ev) {
  switch (ev.type) {
  case WatchEvent::Type::Added:
  case WatchEvent::Type::Modified:
    slices_[ev.slice.name] = ev.slice.endpoints;
    break;
  case WatchEvent::Type::Deleted:
    slices_.erase(ev.slice.name);
    break;
  case WatchEvent::Type::Bookmark:
  case WatchEvent::Type::Error:
    break;
  }
}

std::vector<DiscoveredEndpoint> EndpointSliceSet::endpoints() const {
  std::vector<DiscoveredEndpoint> out;
  for (const auto &[name, eps] : slices_) {
    for (const auto &e : eps) {
      auto it = std::find_if(out.begin(), out.end(),
                             [&](const DiscoveredEndpoint &o) { return o.address == e.address; });
      if (it == out.end()) {
        out.push_back(e);
      } else {
        it->ready = it->ready || e.ready;
      }
    }
  }
  return out;
}

} // namespace kal
