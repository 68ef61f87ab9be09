#pragma once
// kube-api-lb's own configuration file: a versioned YAML document in the style of Kubernetes
// component configs.
//
//   apiVersion: kubeapilb.config.k8s.io/v1alpha1
//   kind: KubeAPILBConfiguration
//   endpoints: ["10.0.0.11:6443", "10.0.0.12:6443"]
//   healthCheck: {interval: 1s, rise: 2, fall: 2}
//
// Every field is optional except endpoints (unless `base` already has some); docs/configuration.md
// lists them all with their defaults.
#include "kube_api_lb/config/config.h"
#include "kube_api_lb/core/result.h"

#include <string>
#include <string_view>

namespace kal {

inline constexpr const char *kConfigApiVersion = "kubeapilb.config.k8s.io/v1alpha1";
inline constexpr const char *kConfigKind = "KubeAPILBConfiguration";

// Parses `text` (the contents of `file_name`) over `base`: fields present in the document replace
// the base values (lists are replaced, not appended); absent or null fields keep them. The result
// has `source = file_name` and has passed kal::validate(). Never throws. Errors are one line,
// "FILE:LINE:COL: what is wrong" with 1-based line and column, e.g.
//   config.yaml:7:3: unknown field "conectTimeout" (did you mean "connectTimeout"?)
//   config.yaml:4:5: endpoints[1]: duplicate endpoint 10.0.0.1:6443 (first at line 3)
// With ReaderChecks::FieldsOnly the result is not validated as a whole (see ReaderChecks).
Result<Config> parse_yaml_config(std::string_view text, const std::string &file_name,
                                 Config base = {}, ReaderChecks checks = ReaderChecks::All);

// The full effective configuration as a YAML document in the same schema, every field written out
// (for check-config and the config hash). parse_yaml_config(to_yaml(c), c.source) == c for every
// valid c. `source` is written as a leading comment only.
std::string to_yaml(const Config &c);

} // namespace kal
