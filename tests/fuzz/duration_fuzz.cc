// Durations (kal::parse_duration, the Kubernetes way; nginx's and HAProxy's time syntaxes) on
// arbitrary text. Properties: an accepted duration is 0 or within [1ms, 8760h]
// (docs/configuration.md, Durations) and format_duration renders it to text that parses back to
// the same value; nginx's and HAProxy's times are never negative.
#include "fuzz_target.h"
#include "kube_api_lb/config/duration.h"
#include "kube_api_lb/config/haproxy_cfg.h"
#include "kube_api_lb/config/nginx_conf.h"

#include <chrono>

KAL_FUZZ_TARGET(duration) {
  const std::string_view text(reinterpret_cast<const char *>(data), size);
  using namespace std::chrono_literals;
  if (auto d = kal::parse_duration(text)) {
    KAL_FUZZ_CHECK(d->count() == 0 || (*d >= 1ms && *d <= std::chrono::hours(8760)),
                   std::to_string(d->count()) + " ms out of range");
    const std::string shown = kal::format_duration(*d);
    auto back = kal::parse_duration(shown);
    KAL_FUZZ_CHECK(back.ok(), "\"" + shown + "\" does not parse back: " + back.error());
    KAL_FUZZ_CHECK(*back == *d, "\"" + shown + "\" parses to " + std::to_string(back->count()) +
                                    " ms, not " + std::to_string(d->count()));
  } else {
    KAL_FUZZ_CHECK(!d.error().empty(), "rejected without a message");
  }
  if (auto n = kal::parse_nginx_time(text)) {
    KAL_FUZZ_CHECK(n->count() >= 0, "negative nginx time");
  }
  if (auto h = kal::parse_haproxy_time(text)) {
    KAL_FUZZ_CHECK(h->count() >= 0, "negative haproxy time");
  }
}
