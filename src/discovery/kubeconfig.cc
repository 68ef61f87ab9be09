#include "discovery/kubeconfig.h"
#include "config/reader_common.h"
#include "sys/small_file.h"

#include <openssl/evp.h>
#include <yaml-cpp/yaml.h>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace kal {
namespace {

constexpr size_t kMaxFileBytes = 1024 * 1024;

std::string q(const std::string &s) { return "\"" + s + "\""; }

Result<std::string> read_file(const std::string &path) {
  SmallFile file = read_small_file(path, kMaxFileBytes);
  switch (file.status) {
  case SmallFile::Status::Ok:
    return std::move(file.text);
  case SmallFile::Status::Missing:
  case SmallFile::Status::OpenFailed:
  case SmallFile::Status::ReadFailed:
    return Err{std::strerror(file.err)};
  case SmallFile::Status::NotRegular:
    return Err{"not a regular file"};
  case SmallFile::Status::TooLarge:
    break;
  }
  return Err{"larger than 1 MiB"};
}

Result<std::string> base64(const std::string &in) {
  std::string clean;
  for (char c : in) {
    if (c != '\n' && c != '\r' && c != ' ' && c != '\t') {
      clean += c;
    }
  }
  if (clean.size() % 4 != 0) {
    return Err{"is not valid base64"};
  }
  std::string out(clean.size() / 4 * 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char *>(out.data()),
                          reinterpret_cast<const unsigned char *>(clean.data()),
                          static_cast<int>(clean.size()));
  if (n < 0) {
    return Err{"is not valid base64"};
  }
  size_t len = static_cast<size_t>(n);
  // EVP_DecodeBlock counts the padding as zero bytes.
  if (!clean.empty() && clean.back() == '=') {
    --len;
    if (clean.size() >= 2 && clean[clean.size() - 2] == '=') {
      --len;
    }
  }
  out.resize(len);
  return out;
}

// The named entry of a kubeconfig list ("clusters", "users", "contexts"): its inner mapping.
YAML::Node named(const YAML::Node &root, const char *list, const std::string &name) {
  const YAML::Node l = root[list];
  if (!l || !l.IsSequence()) {
    return YAML::Node();
  }
  for (const auto &item : l) {
    if (item.IsMap() && item["name"] && item["name"].IsScalar() && item["name"].Scalar() == name) {
      const char *inner = std::string(list) == "clusters" ? "cluster"
                          : std::string(list) == "users"  ? "user"
                                                          : "context";
      return item[inner];
    }
  }
  return YAML::Node();
}

std::string scalar(const YAML::Node &m, const char *key) {
  if (!m || !m.IsMap()) {
    return "";
  }
  const YAML::Node v = m[key];
  return v && v.IsScalar() ? v.Scalar() : "";
}

Result<Kubeconfig> parse_kubeconfig_lines(std::string_view text, const std::string &path,
                                          const FileReader &read) {
  const std::string where = "kubeconfig " + path + ": ";
  const std::string dir =
      path.find('/') == std::string::npos ? "." : path.substr(0, path.rfind('/'));
  auto abs = [&](const std::string &p) { return p.empty() || p[0] == '/' ? p : dir + "/" + p; };
  Kubeconfig k;
  k.path = path;
  try {
    YAML::Node root = YAML::Load(std::string(text));
    if (!root.IsMap()) {
      return Err{where + "not a YAML mapping (expected a kind: Config document)"};
    }
    k.context = scalar(root, "current-context");
    if (k.context.empty()) {
      return Err{where + "no current-context"};
    }
    YAML::Node ctx = named(root, "contexts", k.context);
    if (!ctx || !ctx.IsMap()) {
      return Err{where + "current-context " + q(k.context) + " is not in contexts"};
    }
    k.cluster = scalar(ctx, "cluster");
    k.user = scalar(ctx, "user");
    YAML::Node cluster = named(root, "clusters", k.cluster);
    if (!cluster || !cluster.IsMap()) {
      return Err{where + "context " + q(k.context) + ": cluster " + q(k.cluster) +
                 " is not in clusters"};
    }
    const std::string cw = where + "cluster " + q(k.cluster) + ": ";
    k.server = scalar(cluster, "server");
    std::string_view s = k.server;
    if (s.substr(0, 8) != "https://") {
      return Err{cw + "server " + q(k.server) + " is not an https:// URL"};
    }
    s.remove_prefix(8);
    s = s.substr(0, s.find('/'));
    std::string host;
    std::string port_text = "443";
    if (!s.empty() && s.front() == '[') {
      auto close = s.find(']');
      if (close == std::string_view::npos) {
        return Err{cw + "server " + q(k.server) + ": unclosed '['"};
      }
      host = std::string(s.substr(1, close - 1));
      if (close + 1 < s.size()) {
        if (s[close + 1] != ':') {
          return Err{cw + "server " + q(k.server) + ": bad port"};
        }
        port_text = std::string(s.substr(close + 2));
      }
    } else {
      auto colon = s.rfind(':');
      host = std::string(s.substr(0, colon));
      if (colon != std::string_view::npos) {
        port_text = std::string(s.substr(colon + 1));
      }
    }
    int port = 0;
    for (char c : port_text) {
      if (c < '0' || c > '9' || port > 65535) {
        port = -1;
        break;
      }
      port = port * 10 + (c - '0');
    }
    if (host.empty() || port <= 0 || port > 65535) {
      return Err{cw + "server " + q(k.server) + ": expected https://HOST[:PORT]"};
    }
    k.server_host = host;
    k.server_port = static_cast<uint16_t>(port);
    k.verify_name = scalar(cluster, "tls-server-name");
    if (k.verify_name.empty()) {
      k.verify_name = host;
    }
    k.insecure_skip_verify = scalar(cluster, "insecure-skip-tls-verify") == "true";
    if (auto data = scalar(cluster, "certificate-authority-data"); !data.empty()) {
      auto pem = base64(data);
      if (!pem) {
        return Err{cw + "certificate-authority-data " + pem.error()};
      }
      k.ca_pem = *pem;
    } else if (auto f = scalar(cluster, "certificate-authority"); !f.empty()) {
      auto pem = read(abs(f));
      if (!pem) {
        return Err{cw + "certificate-authority " + abs(f) + ": " + pem.error()};
      }
      k.ca_pem = *pem;
    } else if (!k.insecure_skip_verify) {
      return Err{cw + "no certificate-authority or certificate-authority-data (the apiservers' "
                      "certificates must be verified; insecure-skip-tls-verify: true turns that "
                      "off)"};
    }

    YAML::Node user = named(root, "users", k.user);
    if (!user || !user.IsMap()) {
      return Err{where + "context " + q(k.context) + ": user " + q(k.user) + " is not in users"};
    }
    const std::string uw = where + "user " + q(k.user) + ": ";
    struct Item {
      const char *data_key;
      const char *file_key;
      std::string *out;
    };
    for (const Item &it : {Item{"client-certificate-data", "client-certificate", &k.cert_pem},
                           Item{"client-key-data", "client-key", &k.key_pem}}) {
      if (auto data = scalar(user, it.data_key); !data.empty()) {
        auto pem = base64(data);
        if (!pem) {
          return Err{uw + it.data_key + " " + pem.error()};
        }
        *it.out = *pem;
      } else if (auto f = scalar(user, it.file_key); !f.empty()) {
        auto pem = read(abs(f));
        if (!pem) {
          return Err{uw + it.file_key + " " + abs(f) + ": " + pem.error()};
        }
        *it.out = *pem;
      }
    }
    if (k.cert_pem.empty() != k.key_pem.empty()) {
      return Err{uw + (k.cert_pem.empty() ? "client-key without client-certificate"
                                          : "client-certificate without client-key")};
    }
    if (auto t = scalar(user, "token"); !t.empty()) {
      k.token = t;
    } else if (auto f = scalar(user, "tokenFile"); !f.empty()) {
      auto t2 = read(abs(f));
      if (!t2) {
        return Err{uw + "tokenFile " + abs(f) + ": " + t2.error()};
      }
      k.token = *t2;
      while (!k.token.empty() &&
             (k.token.back() == '\n' || k.token.back() == '\r' || k.token.back() == ' ')) {
        k.token.pop_back();
      }
      if (k.token.empty()) {
        return Err{uw + "tokenFile " + abs(f) + " is empty"};
      }
    }
    for (char c : k.token) {
      if (static_cast<unsigned char>(c) < 0x21 || c == 0x7f) {
        return Err{uw + "the token holds spaces or control characters"};
      }
    }
    if (k.cert_pem.empty() && k.token.empty()) {
      return Err{uw + "no credentials: give client-certificate and client-key (or their -data) or "
                      "token / tokenFile (see docs/discovery.md)"};
    }
  } catch (const YAML::Exception &e) {
    return Err{where + "line " + std::to_string(e.mark.line + 1) + ": " + e.msg};
  }
  return k;
}

} // namespace

Result<Kubeconfig> parse_kubeconfig(std::string_view text, const std::string &path,
                                    const FileReader &read) {
  // An error is one log line: names and yaml-cpp's messages ("unknown escape character" quotes
  // the raw byte) may hold control characters, shown as \xNN (the fuzzer found a newline).
  auto k = parse_kubeconfig_lines(text, path, read);
  if (!k) {
    return Err{one_line(k.error())};
  }
  return k;
}

Result<Kubeconfig> load_kubeconfig(const std::string &path) {
  auto text = read_file(path);
  if (!text) {
    return Err{one_line("kubeconfig " + path + ": " + text.error())};
  }
  return parse_kubeconfig(*text, path, read_file);
}

} // namespace kal
