#pragma once
// Loading a configuration file from disk in any of the three formats, finding one in the drop-in
// mode (no arguments), and fingerprinting the effective configuration.
#include "kube_api_lb/config/config.h"
#include "kube_api_lb/config/flags.h"
#include "kube_api_lb/core/result.h"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kal {

enum class ConfigFormat { Yaml, Nginx, Haproxy };

const char *to_string(ConfigFormat f);                // "yaml", "nginx", "haproxy"
const char *to_string(std::optional<ConfigFormat> f); // as above, "unknown" for nullopt
std::optional<ConfigFormat> config_format_from_string(std::string_view s);

// Guesses the format of `text` read from `path`: a *.yaml or *.yml name means YAML; then decisive
// content (a line starting with the YAML key apiVersion: or kind:, or a first line "---"; a first
// line starting with an HAProxy section keyword such as global, defaults, frontend, backend,
// listen, never followed by a colon, so a YAML key "listen:" is not one; nginx's stream/http/events
// blocks), then the rest of the name (*.cfg or haproxy*; *.conf or nginx*). nullopt when neither
// tells.
std::optional<ConfigFormat> detect_config_format(const std::string &path, std::string_view text);

// Reads `path` and parses it in format `forced`, or in the detected format. Values the file does
// not set keep `base`; the result has `source = path` and has passed kal::validate(). Never
// throws. Errors are one line:
//   "cannot read config file /etc/x.yaml: No such file or directory"
//   "config file /etc/x is not a regular file" / "... is larger than 4 MiB"
//   "cannot tell the format of config file /etc/x (use --config-format=yaml|nginx|haproxy)"
//   or the reader's own "FILE:LINE:COL: what is wrong".
// If `format_used` is given it receives the format that was applied; if `notes` is given, the
// nginx/haproxy readers append one line per ignored or reinterpreted directive (for debug logs).
// `checks` as in ReaderChecks (FieldsOnly: the result has not passed kal::validate()).
Result<Config> load_config_file(const std::string &path, std::optional<ConfigFormat> forced,
                                Config base = {}, ConfigFormat *format_used = nullptr,
                                std::vector<std::string> *notes = nullptr,
                                ReaderChecks checks = ReaderChecks::All);

// The search list of the no-argument drop-in mode: /etc/kube-api-lb/config.yaml,
// /etc/nginx/nginx.conf, /usr/local/etc/haproxy/haproxy.cfg.
std::vector<std::string> default_config_search_path();

// The search list from the value of KUBE_API_LB_CONFIG_SEARCH_PATH (colon-separated; empty items
// skipped). A null or empty value gives default_config_search_path().
std::vector<std::string> config_search_path(const char *env_value);

// The first entry of `search_path` that exists and is not a directory (even if unreadable, so that
// a permission problem is reported rather than skipped), or nullopt.
std::optional<std::string> find_default_config(const std::vector<std::string> &search_path);

// The configuration the command line asks for: defaults, then the config file of `v` (if any),
// then the flags of `v`. Endpoints given as a flag also seed the file's base, so a file without
// endpoints is valid when --endpoints supplies them. A file that is wrong only as a whole (a
// client certificate without its key, discovery without a kubeconfig, in a YAML file two
// listeners on one port) is taken when the flags put that right (--health-client-key,
// --discovery-kubeconfig, --listen); when they leave that problem as it is, the error is the
// file's, with its position, else the flags' own (a bad flag, or a new conflict). Validated
// (kal::validate()); errors are the
// one-line messages of parse_endpoint_list ("--endpoints: ..."), load_config_file and
// apply_flags. `notes` receives load_config_file's notes on ignored directives. Pure: reads the
// file, nothing else (the TLS files are checked by the app layer, see app/app.h).
Result<Config> effective_config(const FlagValues &v, std::vector<std::string> *notes = nullptr);

// The SHA-256 of to_yaml(c) with `source` left out, in lower-case hex (64 digits): the same
// settings digest the same wherever they came from. Empty only if OpenSSL fails to allocate.
// It is the sha256sum of the config file `manifest --write-config` writes.
std::string config_checksum(const Config &c);

// A short fingerprint of the effective settings: the first 16 hex digits of config_checksum(c).
std::string config_hash(const Config &c);

} // namespace kal
