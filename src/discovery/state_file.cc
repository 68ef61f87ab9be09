#include "discovery/state_file.h"
#include "sys/small_file.h"

#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>

namespace kal {
namespace {

using json = nlohmann::json;

constexpr const char *kKind = "KubeAPILBDiscoveryState";
constexpr size_t kMaxStateBytes = 1024 * 1024;

json addresses(const std::vector<HostPort> &v) {
  json a = json::array();
  for (const auto &hp : v) {
    a.push_back(hp.str());
  }
  return a;
}

Result<std::vector<HostPort>> addresses_of(const json &j, const char *key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_array()) {
    return Err{std::string(key) + " is missing or not a list"};
  }
  std::vector<HostPort> out;
  for (size_t i = 0; i < it->size(); ++i) {
    const auto &a = (*it)[i];
    const std::string at = std::string(key) + "[" + std::to_string(i) + "]";
    if (!a.is_string()) {
      return Err{at + " is not a string"};
    }
    auto hp = parse_host_port(a.get<std::string>());
    if (!hp) {
      return Err{at + ": " + hp.error()};
    }
    out.push_back(*hp);
  }
  return out;
}

std::string errno_text(const std::string &what, const std::string &path) {
  return what + " " + path + ": " + std::strerror(errno);
}

std::string dir_of(const std::string &path) {
  auto slash = path.rfind('/');
  if (slash == std::string::npos) {
    return ".";
  }
  return slash == 0 ? "/" : path.substr(0, slash);
}

} // namespace

std::string encode_discovery_state(const DiscoveryState &s) {
  json j;
  j["kind"] = kKind;
  j["formatVersion"] = DiscoveryState::kFormatVersion;
  j["seed"] = addresses(s.seed);
  j["endpoints"] = addresses(s.endpoints);
  j["savedAt"] = s.saved_at;
  return j.dump(2) + "\n";
}

Result<DiscoveryState> decode_discovery_state(std::string_view text) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) {
    return Err{"not JSON"};
  }
  if (!j.is_object()) {
    return Err{"not a JSON object"};
  }
  auto kind = j.find("kind");
  if (kind == j.end() || !kind->is_string() || kind->get<std::string>() != kKind) {
    return Err{std::string("kind is not ") + kKind};
  }
  auto v = j.find("formatVersion");
  if (v == j.end() || !v->is_number_integer()) {
    return Err{"formatVersion is missing"};
  }
  if (v->get<int64_t>() != DiscoveryState::kFormatVersion) {
    return Err{"formatVersion " + std::to_string(v->get<int64_t>()) +
               " is not supported (this kube-api-lb reads " +
               std::to_string(DiscoveryState::kFormatVersion) + ")"};
  }
  DiscoveryState s;
  auto seed = addresses_of(j, "seed");
  if (!seed) {
    return Err{seed.error()};
  }
  auto eps = addresses_of(j, "endpoints");
  if (!eps) {
    return Err{eps.error()};
  }
  if (eps->empty()) {
    return Err{"no endpoints (an empty state is never written)"};
  }
  if (eps->size() > kMaxEndpoints) {
    return Err{"more than " + std::to_string(kMaxEndpoints) + " endpoints"};
  }
  s.seed = std::move(*seed);
  s.endpoints = std::move(*eps);
  if (auto at = j.find("savedAt"); at != j.end() && at->is_string()) {
    s.saved_at = at->get<std::string>();
  }
  return s;
}

Result<DiscoveryState> load_discovery_state(const std::string &path, bool *missing) {
  if (missing) {
    *missing = false;
  }
  SmallFile file = read_small_file(path, kMaxStateBytes);
  switch (file.status) {
  case SmallFile::Status::Ok:
    break;
  case SmallFile::Status::Missing:
    if (missing) {
      *missing = true;
    }
    [[fallthrough]];
  case SmallFile::Status::OpenFailed:
    return Err{"cannot open state file " + path + ": " + std::strerror(file.err)};
  case SmallFile::Status::ReadFailed:
    return Err{"cannot read state file " + path + ": " + std::strerror(file.err)};
  case SmallFile::Status::NotRegular:
    return Err{"state file " + path + " is not a regular file"};
  case SmallFile::Status::TooLarge:
    return Err{"state file " + path + " is larger than 1 MiB"};
  }
  const std::string &text = file.text;
  auto s = decode_discovery_state(text);
  if (!s) {
    return Err{"state file " + path + ": " + s.error()};
  }
  return s;
}

Result<bool> save_discovery_state(const std::string &path, const DiscoveryState &s) {
  const std::string text = encode_discovery_state(s);
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    return Err{errno_text("cannot create", tmp)};
  }
  size_t off = 0;
  while (off < text.size()) {
    ssize_t n = ::write(fd, text.data() + off, text.size() - off);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      std::string e = errno_text("cannot write", tmp);
      ::close(fd);
      ::unlink(tmp.c_str());
      return Err{e};
    }
    off += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    std::string e = errno_text("cannot fsync", tmp);
    ::close(fd);
    ::unlink(tmp.c_str());
    return Err{e};
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    std::string e = errno_text("cannot rename " + tmp + " to", path);
    ::unlink(tmp.c_str());
    return Err{e};
  }
  // The rename itself is durable once the directory is.
  int dfd = ::open(dir_of(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return true;
}

} // namespace kal
