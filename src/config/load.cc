#include "kube_api_lb/config/load.h"

#include "kube_api_lb/config/haproxy_cfg.h"
#include "kube_api_lb/config/nginx_conf.h"
#include "kube_api_lb/config/yaml_config.h"
#include "sys/small_file.h"

#include <openssl/evp.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace kal {
namespace {

constexpr size_t kMaxConfigBytes = 4 * 1024 * 1024;

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

std::string_view base_name(std::string_view path) {
  auto slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

// The first word of a line that is not blank or a comment, and whether a colon ends it (as in a
// YAML key "listen:"; no HAProxy or nginx keyword is written that way).
struct FirstWord {
  std::string_view word;
  bool colon = false;
};

std::vector<FirstWord> first_words(std::string_view text) {
  std::vector<FirstWord> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    std::string_view line =
        text.substr(start, nl == std::string_view::npos ? text.size() - start : nl - start);
    start = nl == std::string_view::npos ? text.size() : nl + 1;
    size_t b = line.find_first_not_of(" \t\r");
    if (b == std::string_view::npos || line[b] == '#') {
      continue;
    }
    size_t e = line.find_first_of(" \t\r:{;", b);
    out.push_back(
        FirstWord{line.substr(b, e == std::string_view::npos ? std::string_view::npos : e - b),
                  e != std::string_view::npos && line[e] == ':'});
  }
  return out;
}

} // namespace

const char *to_string(ConfigFormat f) {
  switch (f) {
  case ConfigFormat::Yaml:
    return "yaml";
  case ConfigFormat::Nginx:
    return "nginx";
  case ConfigFormat::Haproxy:
    return "haproxy";
  }
  return "?";
}

const char *to_string(std::optional<ConfigFormat> f) { return f ? to_string(*f) : "unknown"; }

std::optional<ConfigFormat> config_format_from_string(std::string_view s) {
  for (auto f : {ConfigFormat::Yaml, ConfigFormat::Nginx, ConfigFormat::Haproxy}) {
    if (s == to_string(f)) {
      return f;
    }
  }
  return std::nullopt;
}

std::optional<ConfigFormat> detect_config_format(const std::string &path, std::string_view text) {
  const std::string_view name = base_name(path);
  // An explicit YAML extension decides: a YAML file may well start with a key named like an
  // HAProxy section ("listen:").
  if (ends_with(name, ".yaml") || ends_with(name, ".yml")) {
    return ConfigFormat::Yaml;
  }
  auto words = first_words(text);
  for (const auto &x : words) {
    if ((x.word == "apiVersion" || x.word == "kind") && x.colon) {
      return ConfigFormat::Yaml;
    }
  }
  if (!words.empty()) {
    const FirstWord &w = words.front();
    if (w.word == "---") {
      return ConfigFormat::Yaml;
    }
    if (!w.colon && (w.word == "global" || w.word == "defaults" || w.word == "frontend" ||
                     w.word == "backend" || w.word == "listen")) {
      return ConfigFormat::Haproxy;
    }
    for (const auto &x : words) {
      if (!x.colon && (x.word == "stream" || x.word == "http" || x.word == "events")) {
        return ConfigFormat::Nginx;
      }
    }
  }
  if (ends_with(name, ".cfg") || name.rfind("haproxy", 0) == 0) {
    return ConfigFormat::Haproxy;
  }
  if (ends_with(name, ".conf") || name.rfind("nginx", 0) == 0) {
    return ConfigFormat::Nginx;
  }
  return std::nullopt;
}

Result<Config> load_config_file(const std::string &path, std::optional<ConfigFormat> forced,
                                Config base, ConfigFormat *format_used,
                                std::vector<std::string> *notes, ReaderChecks checks) {
  SmallFile file = read_small_file(path, kMaxConfigBytes);
  switch (file.status) {
  case SmallFile::Status::Ok:
    break;
  case SmallFile::Status::Missing:
  case SmallFile::Status::OpenFailed:
  case SmallFile::Status::ReadFailed:
    return Err{"cannot read config file " + path + ": " + std::strerror(file.err)};
  case SmallFile::Status::NotRegular:
    return Err{"config file " + path + " is not a regular file"};
  case SmallFile::Status::TooLarge:
    return Err{"config file " + path + " is larger than 4 MiB"};
  }
  const std::string &text = file.text;
  if (text.find('\0') != std::string::npos) {
    return Err{"config file " + path + " is not a text file (it contains NUL bytes)"};
  }
  auto format = forced ? forced : detect_config_format(path, text);
  if (!format) {
    return Err{"cannot tell the format of config file " + path +
               " (use --config-format=yaml|nginx|haproxy)"};
  }
  if (format_used) {
    *format_used = *format;
  }
  switch (*format) {
  case ConfigFormat::Yaml:
    return parse_yaml_config(text, path, std::move(base), checks);
  case ConfigFormat::Nginx:
    return parse_nginx_conf(text, path, std::move(base), notes, checks);
  case ConfigFormat::Haproxy:
    return parse_haproxy_cfg(text, path, std::move(base), notes, checks);
  }
  return Err{"unknown config format"};
}

std::vector<std::string> default_config_search_path() {
  return {"/etc/kube-api-lb/config.yaml", "/etc/nginx/nginx.conf",
          "/usr/local/etc/haproxy/haproxy.cfg"};
}

std::vector<std::string> config_search_path(const char *env_value) {
  if (!env_value || !*env_value) {
    return default_config_search_path();
  }
  std::vector<std::string> out;
  std::string_view s(env_value);
  size_t start = 0;
  while (start <= s.size()) {
    size_t colon = s.find(':', start);
    auto item =
        s.substr(start, colon == std::string_view::npos ? std::string_view::npos : colon - start);
    if (!item.empty()) {
      out.emplace_back(item);
    }
    if (colon == std::string_view::npos) {
      break;
    }
    start = colon + 1;
  }
  return out;
}

std::optional<std::string> find_default_config(const std::vector<std::string> &search_path) {
  for (const auto &p : search_path) {
    struct stat st {};
    if (::stat(p.c_str(), &st) == 0 && !S_ISDIR(st.st_mode)) {
      return p;
    }
  }
  return std::nullopt;
}

std::string config_checksum(const Config &c) {
  Config copy = c;
  copy.source.clear();
  const std::string text = to_yaml(copy);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(text.data(), text.size(), md, &len, EVP_sha256(), nullptr) != 1) {
    return {};
  }
  static const char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2);
  for (unsigned int i = 0; i < len; ++i) {
    out += hex[md[i] >> 4];
    out += hex[md[i] & 15];
  }
  return out;
}

std::string config_hash(const Config &c) { return config_checksum(c).substr(0, 16); }

Result<Config> effective_config(const FlagValues &v, std::vector<std::string> *notes) {
  Config base;
  if (v.given("endpoints")) {
    auto eps = parse_endpoint_list(v.raw.at("endpoints").back());
    if (!eps) {
      return Err{"--endpoints: " + eps.error()};
    }
    base.endpoints = *eps;
  }
  if (!v.config_path.empty()) {
    std::optional<ConfigFormat> forced;
    if (!v.config_format.empty()) {
      forced = config_format_from_string(v.config_format);
    }
    auto loaded = load_config_file(v.config_path, forced, base, nullptr, notes);
    if (!loaded) {
      // Flags override the file, so a file wrong only as a whole may be put right by them (its
      // clientCert with --health-client-key, its discovery mode with --discovery-kubeconfig).
      auto fields =
          load_config_file(v.config_path, forced, base, nullptr, notes, ReaderChecks::FieldsOnly);
      if (!fields) {
        return Err{loaded.error()}; // a field wrong by itself
      }
      auto merged = apply_flags(v, *fields);
      if (merged) {
        return merged;
      }
      // The flags did not help: the same problem is the file's (said with its position); another
      // one (a bad flag, or one the flags brought in after fixing the file's) is the flags'.
      auto alone = validate(*fields);
      return Err{!alone && alone.error() == merged.error() ? loaded.error() : merged.error()};
    }
    base = *loaded;
  }
  return apply_flags(v, base);
}

} // namespace kal
