// Endpoint lists and HOST:PORT (kal::parse_endpoint_list, parse_host_port, to_listen_address) on
// arbitrary text. Properties: an accepted list has 1..kMaxEndpoints entries, each with a port and
// a host of the kind it says, and its rendering (HostPort::str() joined by ',') parses back to
// the same list; the same for one HOST:PORT; a listen address is an IP literal.
#include "fuzz_target.h"
#include "kube_api_lb/core/endpoint.h"

namespace {

void check_host_port(const kal::HostPort &hp) {
  KAL_FUZZ_CHECK(!hp.host.empty(), "empty host");
  KAL_FUZZ_CHECK((hp.kind == kal::HostPort::Kind::Name) != kal::is_ip_literal(hp.host),
                 "kind disagrees with is_ip_literal for " + hp.host);
  auto back = kal::parse_host_port(hp.str());
  KAL_FUZZ_CHECK(back.ok(), hp.str() + " does not parse back: " + back.error());
  KAL_FUZZ_CHECK(*back == hp, hp.str() + " parses back as " + back->str());
}

} // namespace

KAL_FUZZ_TARGET(endpoint) {
  const std::string_view text(reinterpret_cast<const char *>(data), size);
  if (auto list = kal::parse_endpoint_list(text)) {
    KAL_FUZZ_CHECK(!list->empty() && list->size() <= kal::kMaxEndpoints,
                   std::to_string(list->size()) + " endpoints");
    std::string joined;
    for (const auto &hp : *list) {
      KAL_FUZZ_CHECK(hp.port != 0, "port 0 in " + hp.str());
      check_host_port(hp);
      joined += (joined.empty() ? "" : ",") + hp.str();
    }
    auto back = kal::parse_endpoint_list(joined);
    KAL_FUZZ_CHECK(back.ok() && *back == *list, joined + " does not parse back the same");
  } else {
    KAL_FUZZ_CHECK(!list.error().empty(), "rejected without a message");
  }
  for (uint16_t default_port : {uint16_t{0}, uint16_t{6443}}) {
    if (auto hp = kal::parse_host_port(text, default_port)) {
      check_host_port(*hp);
      if (auto l = kal::to_listen_address(*hp)) {
        KAL_FUZZ_CHECK(l->kind != kal::HostPort::Kind::Name && kal::is_ip_literal(l->host),
                       "listen address " + l->str() + " is not an IP literal");
        KAL_FUZZ_CHECK(l->port == hp->port, "listen address changed the port");
      }
    }
  }
}
