#pragma once
// Reads the nginx.conf that Kubespray renders for its nginx-proxy static pod (the drop-in mode):
//
//   stream {
//     upstream kube_apiserver { least_conn; server 10.0.0.11:6443; ... }
//     server { listen 127.0.0.1:6443; proxy_pass kube_apiserver; proxy_timeout 10m;
//              proxy_connect_timeout 1s; }
//   }
//   http { server { listen 8081; location /healthz { return 200; } } }
//
// The full nginx syntax is tokenized (blocks, quoted strings with escapes, comments, any
// whitespace); what a TCP proxy cares about is mapped, what does not matter is ignored with a note,
// and anything whose meaning kube-api-lb would change is an error naming the directive and line.
// docs/configuration.md has the mapping table.
#include "kube_api_lb/config/config.h"
#include "kube_api_lb/core/result.h"

#include <string>
#include <string_view>
#include <vector>

namespace kal {

// Parses `text` (the contents of `file_name`) over `base`. Sets listen, endpoints, policy,
// connect_timeout (proxy_connect_timeout), idle_timeout (proxy_timeout), shutdown_grace
// (worker_shutdown_timeout) and admin.healthz_listen (the http servers' listen addresses; a bare
// port means 0.0.0.0). Admin listeners of `base` that would collide with a health listener are
// dropped (with a note). Health checks keep `base` values. The result has `source = file_name` and
// has passed kal::validate(). Never throws.
//
// Errors: "FILE:LINE:COL: what is wrong", e.g.
//   nginx.conf:21:5: "ssl_preread" is not supported: kube-api-lb does not route on TLS SNI
// If `notes` is given, one line per ignored or reinterpreted directive is appended to it, e.g.
//   nginx.conf:3:1: ignored "worker_processes" (nginx process setting)
// With ReaderChecks::FieldsOnly the result is not validated as a whole (see ReaderChecks).
Result<Config> parse_nginx_conf(std::string_view text, const std::string &file_name,
                                Config base = {}, std::vector<std::string> *notes = nullptr,
                                ReaderChecks checks = ReaderChecks::All);

// nginx time syntax ("10m", "1s", "500ms", "1h 30m", a bare number is seconds). Exposed for tests.
Result<Millis> parse_nginx_time(std::string_view text);

} // namespace kal
