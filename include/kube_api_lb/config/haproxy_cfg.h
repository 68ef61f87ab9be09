#pragma once
// Reads the haproxy.cfg that Kubespray renders for its haproxy static pod (the drop-in mode):
//
//   frontend healthz            bind 0.0.0.0:8081 / mode http / monitor-uri /healthz
//   frontend kube_api_frontend  bind 127.0.0.1:6443 / mode tcp / default_backend kube_api_backend
//   backend kube_api_backend    balance leastconn / default-server inter 15s ... /
//                               option httpchk GET /healthz / server n1 10.0.0.11:6443 check
//                               check-ssl
//
// HAProxy's line syntax is tokenized (comments, quotes, escapes, any indentation); what a TCP proxy
// with active health checks cares about is mapped, what does not matter is ignored with a note, and
// anything whose meaning kube-api-lb would change is an error naming the keyword and line.
// docs/configuration.md has the mapping table.
#include "kube_api_lb/config/config.h"
#include "kube_api_lb/core/result.h"

#include <string>
#include <string_view>
#include <vector>

namespace kal {

// Parses `text` (the contents of `file_name`) over `base`. Sets listen (the TCP frontends' binds),
// endpoints and policy (the backend's servers and `balance`), connect_timeout (`timeout connect`),
// the health check (`check`/`check-ssl`/`option httpchk` -> mode and path; `inter`, `fastinter`,
// `downinter`, `rise`, `fall`, `slowstart` from default-server or the servers, which must agree;
// `timeout check` -> timeout; `verify`/`ca-file`/`crt`/`check-sni`) and admin.healthz_listen (the
// binds of the frontend with `monitor-uri /healthz`). Admin listeners of `base` that would collide
// with those are dropped (with a note). Unset values keep `base`. The result has
// `source = file_name` and has passed kal::validate(). Never throws.
//
// Errors: "FILE:LINE:COL: what is wrong". Notes (if `notes` is given): one line per ignored or
// reinterpreted keyword, e.g. "haproxy.cfg:2:5: ignored \"maxconn\" in global".
// With ReaderChecks::FieldsOnly the result is not validated as a whole (see ReaderChecks).
Result<Config> parse_haproxy_cfg(std::string_view text, const std::string &file_name,
                                 Config base = {}, std::vector<std::string> *notes = nullptr,
                                 ReaderChecks checks = ReaderChecks::All);

// HAProxy time syntax: a number with an optional unit us, ms, s, m, h, d (default ms). Exposed for
// tests.
Result<Millis> parse_haproxy_time(std::string_view text);

} // namespace kal
