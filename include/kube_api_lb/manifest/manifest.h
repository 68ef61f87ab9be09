#pragma once
// Renders the static Pod manifest that runs kube-api-lb on a worker node (the replacement for
// Kubespray's nginx-proxy manifest), and the config file that goes with it.
//
// The manifest is built with yaml-cpp's emitter from a validated Config, never from a text
// template, so every value is quoted as YAML needs it and the output is stable byte for byte
// (manifests/kube-api-lb.yaml is checked against it).
#include "kube_api_lb/config/config.h"
#include "kube_api_lb/config/load.h"
#include "kube_api_lb/core/result.h"

#include <string>
#include <vector>

namespace kal {

// Everything about the Pod that is not proxy configuration.
struct ManifestOptions {
  // Container image, e.g. "kube-api-lb:0.1.0" or "<your mirror>/kube-api-lb:0.1.0". Required.
  std::string image;
  // Pod and container name (a DNS-1123 label). kubelet appends "-<node name>" to static pods.
  std::string name = "kube-api-lb";
  std::string pod_namespace = "kube-system";
  // Host directory holding config.yaml. Empty: the configuration is passed as container args.
  // Otherwise it is mounted read-only at the same path and the container gets only
  // --config=<config_hostpath>/config.yaml.
  std::string config_hostpath;
  // Kubernetes quantities. An empty limit means "no limit". Requests default to Kubespray's
  // nginx-proxy requests. The memory limit is far above what the benchmarks measured (12 MiB RSS
  // with 9000 connections) because an OOM kill would cut every API connection of the node: each
  // stalled connection may buffer up to 2 x 256 KiB (bufferHighWatermark), so 256Mi holds 500 of
  // them. Kubespray's nginx-proxy has no limit at all.
  std::string cpu_request = "25m";
  std::string memory_request = "32M";
  std::string cpu_limit; // none by default: CPU throttling adds latency to every apiserver call
  std::string memory_limit = "256Mi";
  std::string image_pull_policy = "IfNotPresent"; // Always | IfNotPresent | Never
  // UID/GID the container runs as (non-root). 65532 is the conventional "nonroot" user.
  int64_t run_as_user = 65532;
  int64_t run_as_group = 65532;
  // Lines emitted as YAML comments at the top of the document (without the leading "# ").
  std::vector<std::string> header_comments;
};

// The annotation carrying config_checksum(); kubelet recreates the pod when it changes.
inline constexpr const char *kConfigChecksumAnnotation = "kube-api-lb.io/config-checksum";
// Name of the config file inside ManifestOptions::config_hostpath.
inline constexpr const char *kConfigFileName = "config.yaml";

// The command-line flags (--flag=value, in a stable order) that make the proxy run with `c`
// when given on their own: only fields that differ from a default Config are emitted (endpoints
// always differ), with the names src/config/flags.h registers, so that apply_flags() over a
// default Config gives `c` back. Durations are written with format_duration(); verbosity as
// "--v=N". Fields without a flag (see fields_without_flags()) and Config::source are not emitted.
std::vector<std::string> config_to_args(const Config &c);

// Config fields (by their YAML names) that differ from the defaults but have no command-line
// flag, so config_to_args() cannot carry them: bufferHighWatermark, replayBufferLimit,
// healthCheck.jitter. render_manifest() refuses args mode when this is not empty.
std::vector<std::string> fields_without_flags(const Config &c);

// The config file (YAML, as --config reads it) that describes `c`: kal::to_yaml() of `c` without
// its `source`, so the manifest and --write-config always agree on the bytes. Its sha256sum is
// kal::config_checksum(c) (config/load.h), whose first 16 digits are the running proxy's hash.
std::string render_config_file(const Config &c);

// The static Pod manifest as a YAML document. Errors (invalid config, malformed options such as
// a bad quantity, a request above its limit, a relative hostpath, no admin listener for the
// probes) are returned as a one-line message naming the offending option; nothing is thrown.
Result<std::string> render_manifest(const Config &c, const ManifestOptions &o);

// Checks a Kubernetes resource quantity ("25m", "32M", "64Mi", "0.5") and returns its value in
// base units (cores or bytes).
Result<double> parse_quantity(std::string_view text);

} // namespace kal
