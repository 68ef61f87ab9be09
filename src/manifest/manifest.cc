#include "kube_api_lb/manifest/manifest.h"

#include "kube_api_lb/config/duration.h"
#include "kube_api_lb/config/yaml_config.h"

#include <yaml-cpp/yaml.h>

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <charconv>

namespace kal {
namespace {

std::string join_host_ports(const std::vector<HostPort> &v) {
  std::string out;
  for (const auto &hp : v) {
    if (!out.empty()) {
      out += ',';
    }
    out += hp.str();
  }
  return out;
}

// DNS-1123 label: lower-case letters, digits and '-', 1..63 chars, alphanumeric at both ends.
bool is_dns_label(std::string_view s) {
  if (s.empty() || s.size() > 63 || s.front() == '-' || s.back() == '-') {
    return false;
  }
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) {
      return false;
    }
  }
  return true;
}

// The host kubelet must probe for an admin server bound to `admin`, or "" for kubelet's default,
// the pod IP (the node IP with hostNetwork). The IPv4 wildcard answers there. The IPv6 wildcard
// does not on an IPv4-primary node, because listeners are bound IPv6-only, so its probe goes to
// ::1, which it always answers. Any other address must be named.
std::string probe_host(const HostPort &admin) {
  if (admin.kind == HostPort::Kind::IPv4 && admin.host == "0.0.0.0") {
    return "";
  }
  in6_addr a6{};
  if (admin.kind == HostPort::Kind::IPv6 && inet_pton(AF_INET6, admin.host.c_str(), &a6) == 1 &&
      IN6_IS_ADDR_UNSPECIFIED(&a6)) {
    return "::1";
  }
  return admin.host;
}

// `p` without trailing slashes, or an error starting with `what` (which names the option and
// its value) if `p` is relative, the root directory, or has a "." or ".." component (a hostPath
// must not).
Result<std::string> clean_hostpath(std::string p, const std::string &what) {
  if (p.empty() || p.front() != '/') {
    return Err{what + ": must be an absolute path"};
  }
  while (p.size() > 1 && p.back() == '/') {
    p.pop_back();
  }
  if (p == "/") {
    return Err{what + ": refusing to mount the host's root directory"};
  }
  for (size_t i = 0; i <= p.size();) {
    size_t j = p.find('/', i);
    if (j == std::string::npos) {
      j = p.size();
    }
    std::string_view part(p.data() + i, j - i);
    if (part == "." || part == "..") {
      return Err{what + ": must not contain \".\" or \"..\""};
    }
    i = j + 1;
  }
  return p;
}

bool under_dir(const std::string &file, const std::string &dir) {
  return file.size() > dir.size() + 1 && file.compare(0, dir.size(), dir) == 0 &&
         file[dir.size()] == '/';
}

void emit_probe(YAML::Emitter &out, const char *key, const HostPort &admin, const char *path) {
  out << YAML::Key << key << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "httpGet" << YAML::Value << YAML::BeginMap;
  if (const std::string host = probe_host(admin); !host.empty()) {
    out << YAML::Key << "host" << YAML::Value << host;
  }
  out << YAML::Key << "path" << YAML::Value << path;
  out << YAML::Key << "port" << YAML::Value << admin.port;
  out << YAML::EndMap;
  out << YAML::EndMap;
}

struct DirMount {
  std::string volume; // volume name
  std::string path;   // same on host and in the container
};

} // namespace

Result<double> parse_quantity(std::string_view text) {
  // Kubernetes quantities: a non-negative decimal number and an optional SI or binary suffix.
  // (Exponent forms like "1e3" are valid too but nobody writes them in a static pod.)
  size_t i = 0;
  bool digits = false, dot = false;
  while (i < text.size()) {
    char c = text[i];
    if (c >= '0' && c <= '9') {
      digits = true;
    } else if (c == '.' && !dot) {
      dot = true;
    } else {
      break;
    }
    ++i;
  }
  const std::string quoted = "\"" + std::string(text) + "\"";
  if (!digits) {
    return Err{"quantity " + quoted + ": expected a number with an optional unit (e.g. 64Mi)"};
  }
  double number = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + i, number);
  if (ec != std::errc{} || ptr != text.data() + i) {
    return Err{"quantity " + quoted + ": bad number"};
  }
  struct Unit {
    const char *suffix;
    double factor;
  };
  static const Unit units[] = {
      {"", 1},
      {"m", 1e-3},
      {"k", 1e3},
      {"M", 1e6},
      {"G", 1e9},
      {"T", 1e12},
      {"P", 1e15},
      {"E", 1e18},
      {"Ki", 1024.0},
      {"Mi", 1048576.0},
      {"Gi", 1073741824.0},
      {"Ti", 1099511627776.0},
      {"Pi", 1125899906842624.0},
      {"Ei", 1152921504606846976.0},
  };
  std::string_view suffix = text.substr(i);
  for (const auto &u : units) {
    if (suffix == u.suffix) {
      return number * u.factor;
    }
  }
  return Err{"quantity " + quoted + ": unknown unit \"" + std::string(suffix) +
             "\" (use m, k, M, G, Ki, Mi, Gi, ...)"};
}

std::vector<std::string> config_to_args(const Config &c) {
  const Config d;
  std::vector<std::string> a;
  auto dur = [&](const char *flag, Millis v, Millis def) {
    if (v != def) {
      a.push_back(std::string("--") + flag + "=" + format_duration(v));
    }
  };
  auto num = [&](const char *flag, auto v, auto def) {
    if (v != def) {
      a.push_back(std::string("--") + flag + "=" + std::to_string(v));
    }
  };
  auto str = [&](const char *flag, const std::string &v, const std::string &def) {
    if (v != def) {
      a.push_back(std::string("--") + flag + "=" + v);
    }
  };
  auto list = [&](const char *flag, const std::vector<HostPort> &v,
                  const std::vector<HostPort> &def) {
    if (v == def) {
      return;
    }
    if (v.empty()) {
      a.push_back(std::string("--") + flag + "=");
    }
    for (const auto &hp : v) {
      a.push_back(std::string("--") + flag + "=" + hp.str());
    }
  };

  if (!c.endpoints.empty()) {
    a.push_back("--endpoints=" + join_host_ports(c.endpoints));
  }
  list("listen", c.listen, d.listen);
  if (c.policy != d.policy) {
    a.push_back(std::string("--policy=") + to_string(c.policy));
  }
  dur("connect-timeout", c.connect_timeout, d.connect_timeout);
  dur("first-byte-timeout", c.first_byte_timeout, d.first_byte_timeout);
  dur("idle-timeout", c.idle_timeout, d.idle_timeout);
  dur("half-closed-timeout", c.half_closed_timeout, d.half_closed_timeout);
  dur("shutdown-grace", c.shutdown_grace, d.shutdown_grace);
  dur("drain-timeout", c.drain_timeout, d.drain_timeout);
  dur("tcp-user-timeout", c.tcp_user_timeout, d.tcp_user_timeout);
  dur("keepalive-idle", c.keepalive_idle, d.keepalive_idle);
  num("workers", c.workers, d.workers);

  const HealthConfig &h = c.health, &hd = d.health;
  if (h.mode != hd.mode) {
    a.push_back(std::string("--health-check=") + to_string(h.mode));
  }
  str("health-path", h.path, hd.path);
  dur("health-interval", h.interval, hd.interval);
  dur("health-readyz-interval", h.readyz_interval, hd.readyz_interval);
  if (h.http2 != hd.http2) {
    a.push_back(std::string("--health-http2=") + (h.http2 ? "true" : "false"));
  }
  dur("health-flap-window", h.flap_window, hd.flap_window);
  dur("health-recheck-gap", h.recheck_gap, hd.recheck_gap);
  dur("health-fast-interval", h.fast_interval, hd.fast_interval);
  dur("health-down-interval", h.down_interval, hd.down_interval);
  dur("health-timeout", h.timeout, hd.timeout);
  num("health-rise", h.rise, hd.rise);
  num("health-fall", h.fall, hd.fall);
  str("health-ca-file", h.ca_file, hd.ca_file);
  str("health-client-cert", h.client_cert, hd.client_cert);
  str("health-client-key", h.client_key, hd.client_key);
  str("health-server-name", h.server_name, hd.server_name);
  dur("health-slow-start", h.slow_start, hd.slow_start);

  if (c.discovery.mode != d.discovery.mode) {
    a.push_back(std::string("--discovery=") + to_string(c.discovery.mode));
  }
  str("discovery-kubeconfig", c.discovery.kubeconfig, d.discovery.kubeconfig);
  str("state-file", c.discovery.state_file, d.discovery.state_file);
  dur("discovery-debounce", c.discovery.debounce, d.discovery.debounce);
  dur("discovery-grace", c.discovery.grace, d.discovery.grace);

  list("admin-listen", c.admin.listen, d.admin.listen);
  list("healthz-listen", c.admin.healthz_listen, d.admin.healthz_listen);
  if (c.log_format != d.log_format) {
    a.push_back(std::string("--log-format=") + to_string(c.log_format));
  }
  if (c.verbosity != d.verbosity) {
    a.push_back("--v=" + std::to_string(c.verbosity));
  }
  return a;
}

std::vector<std::string> fields_without_flags(const Config &c) {
  const Config d;
  std::vector<std::string> out;
  if (c.buffer_high_watermark != d.buffer_high_watermark) {
    out.push_back("bufferHighWatermark");
  }
  if (c.replay_buffer_limit != d.replay_buffer_limit) {
    out.push_back("replayBufferLimit");
  }
  if (c.health.jitter != d.health.jitter) {
    out.push_back("healthCheck.jitter");
  }
  return out;
}

std::string render_config_file(const Config &c) {
  // `source` says where a running config came from; a generated file must not depend on it.
  // Without it to_yaml() is exactly what config_hash() digests, so the running proxy's hash is
  // the first 16 hex digits of this file's sha256sum (and of the manifest's annotation).
  Config copy = c;
  copy.source.clear();
  return to_yaml(copy);
}

Result<std::string> render_manifest(const Config &c, const ManifestOptions &o) {
  if (auto v = validate(c); !v) {
    return Err{"invalid configuration: " + v.error()};
  }
  if (o.image.empty()) {
    return Err{"--image: must not be empty"};
  }
  for (char ch : o.image) {
    if (std::isspace(static_cast<unsigned char>(ch)) ||
        std::iscntrl(static_cast<unsigned char>(ch))) {
      return Err{"--image \"" + o.image + "\": must not contain whitespace"};
    }
  }
  if (!is_dns_label(o.name)) {
    return Err{"--name \"" + o.name +
               "\": must be a DNS-1123 label (lower-case letters, digits and '-', at most 63)"};
  }
  if (!is_dns_label(o.pod_namespace)) {
    return Err{"--namespace \"" + o.pod_namespace + "\": must be a DNS-1123 label"};
  }
  if (o.image_pull_policy != "Always" && o.image_pull_policy != "IfNotPresent" &&
      o.image_pull_policy != "Never") {
    return Err{"--image-pull-policy \"" + o.image_pull_policy +
               "\": must be Always, IfNotPresent or Never"};
  }
  if (o.run_as_user <= 0 || o.run_as_group <= 0) {
    return Err{"runAsUser/runAsGroup must be a non-root id (> 0)"};
  }
  // Requests and limits: well-formed, and no request above its limit (the API server rejects it).
  struct Res {
    const char *flag;
    const std::string &request;
    const char *limit_flag;
    const std::string &limit;
  };
  for (const Res &r :
       {Res{"--cpu-request", o.cpu_request, "--cpu-limit", o.cpu_limit},
        Res{"--memory-request", o.memory_request, "--memory-limit", o.memory_limit}}) {
    std::optional<double> req, lim;
    if (!r.request.empty()) {
      auto q = parse_quantity(r.request);
      if (!q) {
        return Err{std::string(r.flag) + ": " + q.error()};
      }
      req = *q;
    }
    if (!r.limit.empty()) {
      auto q = parse_quantity(r.limit);
      if (!q) {
        return Err{std::string(r.limit_flag) + ": " + q.error()};
      }
      if (*q <= 0) {
        return Err{std::string(r.limit_flag) + " \"" + r.limit + "\": must be greater than 0"};
      }
      lim = *q;
    }
    if (req && lim && *req > *lim) {
      return Err{std::string(r.flag) + "=" + r.request + " is above " + r.limit_flag + "=" +
                 r.limit};
    }
  }
  if (c.admin.listen.empty()) {
    return Err{"the manifest needs an admin listener for its liveness probe on /healthz and "
               "readiness probe on /readyz (add e.g. --admin-listen=127.0.0.1:8082; a Kubespray "
               "nginx.conf or haproxy.cfg whose health port is 8081 leaves none)"};
  }

  std::string hostpath;
  if (!o.config_hostpath.empty()) {
    auto p = clean_hostpath(o.config_hostpath, "--config-hostpath \"" + o.config_hostpath + "\"");
    if (!p) {
      return Err{p.error()};
    }
    hostpath = *p;
  } else if (auto missing = fields_without_flags(c); !missing.empty()) {
    std::string names;
    for (const auto &m : missing) {
      names += (names.empty() ? "" : ", ") + m;
    }
    return Err{"the configuration sets " + names +
               ", which no command-line flag can express; use --config-hostpath to pass it as a "
               "config file"};
  }

  const std::string checksum = config_checksum(c);
  if (checksum.empty()) {
    return Err{"cannot compute the config checksum (OpenSSL SHA-256 failed)"};
  }

  // Files the health checker reads must exist inside the container too. Those outside the config
  // directory are reached through a read-only hostPath mount of their directory at the same path,
  // never of the file alone: a single-file mount keeps the inode it found when the pod started,
  // so a certificate renewed by rename (cert-manager, kubeadm) or a swapped symlink (kubelet's
  // kubelet-client-current.pem) would never reach the checker, which reloads rotated files.
  std::vector<std::string> dirs;
  for (const std::string *f : {&c.health.ca_file, &c.health.client_cert, &c.health.client_key}) {
    if (f->empty() || (!hostpath.empty() && under_dir(*f, hostpath))) {
      continue;
    }
    auto file = clean_hostpath(*f, "health file \"" + *f + "\"");
    if (!file) {
      return Err{file.error()};
    }
    const std::string dir = file->substr(0, file->rfind('/'));
    if (dir.empty()) {
      return Err{"health file \"" + *f +
                 "\": the pod mounts the directory of each health file, and not the host's root "
                 "directory; move the file into a directory"};
    }
    if (std::find(dirs.begin(), dirs.end(), dir) == dirs.end()) {
      dirs.push_back(dir);
    }
  }
  // One volume per directory; one inside another is already visible through the outer mount.
  std::vector<DirMount> health_dirs;
  for (const auto &d : dirs) {
    const bool nested = std::any_of(dirs.begin(), dirs.end(),
                                    [&](const std::string &e) { return under_dir(d, e); });
    if (!nested) {
      health_dirs.push_back(DirMount{"health-tls-" + std::to_string(health_dirs.size() + 1), d});
    }
  }

  // Discovery: the kubeconfig's directory read-only (the files it names belong there too, or
  // inline in it: docs/discovery.md), and the state file's directory writable, created by
  // kubelet if missing. The root filesystem stays read-only.
  std::vector<DirMount> discovery_ro, discovery_rw;
  auto dir_of_file = [&](const std::string &f, const char *what) -> Result<std::string> {
    auto file = clean_hostpath(f, std::string(what) + " \"" + f + "\"");
    if (!file) {
      return Err{file.error()};
    }
    const std::string dir = file->substr(0, file->rfind('/'));
    if (dir.empty()) {
      return Err{std::string(what) + " \"" + f +
                 "\": the pod mounts its directory, and not the host's root directory; move the "
                 "file into a directory"};
    }
    return dir;
  };
  if (c.discovery.mode == DiscoveryMode::EndpointSlices) {
    const std::string &kc = c.discovery.kubeconfig;
    if (!(!hostpath.empty() && under_dir(kc, hostpath))) {
      auto dir = dir_of_file(kc, "--discovery-kubeconfig");
      if (!dir) {
        return Err{dir.error()};
      }
      const bool seen = std::any_of(health_dirs.begin(), health_dirs.end(), [&](const DirMount &m) {
        return m.path == *dir || under_dir(*dir, m.path);
      });
      if (!seen) {
        discovery_ro.push_back(DirMount{"discovery-kubeconfig", *dir});
      }
    }
    if (!c.discovery.state_file.empty()) {
      auto dir = dir_of_file(c.discovery.state_file, "--state-file");
      if (!dir) {
        return Err{dir.error()};
      }
      if (!hostpath.empty() && (*dir == hostpath || under_dir(*dir, hostpath))) {
        return Err{"--state-file \"" + c.discovery.state_file +
                   "\": must not be inside --config-hostpath, which is mounted read-only"};
      }
      // The init container gives the state directory to the proxy's user: it must be the state
      // file's own, not one the credentials live in (prepare-state-dir refuses a directory that
      // holds files anyway; this says so before the pod exists).
      std::vector<std::string> shared;
      for (const auto &m : health_dirs) {
        shared.push_back(m.path);
      }
      for (const auto &m : discovery_ro) {
        shared.push_back(m.path);
      }
      for (const auto &other : shared) {
        if (*dir == other || under_dir(*dir, other) || under_dir(other, *dir)) {
          return Err{"--state-file \"" + c.discovery.state_file + "\": its directory " + *dir +
                     " is shared with the credentials in " + other +
                     "; give it a directory of its own (e.g. /var/lib/kube-api-lb/discovery.json), "
                     "which the pod hands to the proxy's user"};
        }
      }
      discovery_rw.push_back(DirMount{"discovery-state", *dir});
    }
  }

  // Enough time for the proxy's own graceful shutdown before kubelet sends SIGKILL.
  const auto grace_s =
      std::chrono::ceil<std::chrono::seconds>(c.shutdown_grace).count() + int64_t{5};

  YAML::Emitter out;
  out.SetIndent(2);
  for (const auto &line : o.header_comments) {
    out << YAML::Comment(line) << YAML::Newline;
  }
  out << YAML::BeginMap;
  out << YAML::Key << "apiVersion" << YAML::Value << "v1";
  out << YAML::Key << "kind" << YAML::Value << "Pod";

  out << YAML::Key << "metadata" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "name" << YAML::Value << o.name;
  out << YAML::Key << "namespace" << YAML::Value << o.pod_namespace;
  out << YAML::Key << "labels" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "addonmanager.kubernetes.io/mode" << YAML::Value << "Reconcile";
  out << YAML::Key << "k8s-app" << YAML::Value << "kube-api-lb";
  out << YAML::EndMap;
  out << YAML::Key << "annotations" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << kConfigChecksumAnnotation << YAML::Value << YAML::DoubleQuoted << checksum;
  out << YAML::EndMap;
  out << YAML::EndMap; // metadata

  out << YAML::Key << "spec" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "hostNetwork" << YAML::Value << true;
  // The node's resolver, not cluster DNS: CoreDNS is reached through kube-proxy, which reaches the
  // apiserver through this pod, so endpoint names must not depend on it.
  out << YAML::Key << "dnsPolicy" << YAML::Value << "Default";
  out << YAML::Key << "nodeSelector" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "kubernetes.io/os" << YAML::Value << "linux";
  out << YAML::EndMap;
  out << YAML::Key << "priorityClassName" << YAML::Value << "system-node-critical";
  out << YAML::Key << "terminationGracePeriodSeconds" << YAML::Value << grace_s;

  // The same requests and limits on every container: Kubernetes counts init containers when it
  // picks the pod's QoS class (a Guaranteed pod stays Guaranteed with its init container).
  auto emit_resources = [&] {
    out << YAML::Key << "resources" << YAML::Value << YAML::BeginMap;
    out << YAML::Key << "requests" << YAML::Value << YAML::BeginMap;
    if (!o.cpu_request.empty()) {
      out << YAML::Key << "cpu" << YAML::Value << o.cpu_request;
    }
    if (!o.memory_request.empty()) {
      out << YAML::Key << "memory" << YAML::Value << o.memory_request;
    }
    out << YAML::EndMap;
    if (!o.cpu_limit.empty() || !o.memory_limit.empty()) {
      out << YAML::Key << "limits" << YAML::Value << YAML::BeginMap;
      if (!o.cpu_limit.empty()) {
        out << YAML::Key << "cpu" << YAML::Value << o.cpu_limit;
      }
      if (!o.memory_limit.empty()) {
        out << YAML::Key << "memory" << YAML::Value << o.memory_limit;
      }
      out << YAML::EndMap;
    }
    out << YAML::EndMap; // resources
  };

  if (!discovery_rw.empty()) {
    // kubelet creates the state directory root-owned (0755) and fsGroup does not apply to
    // hostPath volumes: an init container gives it to the proxy's user once (`kube-api-lb
    // prepare-state-dir`, root with CAP_CHOWN and CAP_FOWNER only, nothing else).
    const DirMount &state = discovery_rw.front();
    out << YAML::Key << "initContainers" << YAML::Value << YAML::BeginSeq << YAML::BeginMap;
    out << YAML::Key << "name" << YAML::Value << "prepare-state-dir";
    out << YAML::Key << "image" << YAML::Value << o.image;
    out << YAML::Key << "imagePullPolicy" << YAML::Value << o.image_pull_policy;
    out << YAML::Key << "args" << YAML::Value << YAML::BeginSeq << "prepare-state-dir"
        << "--dir=" + state.path
        << "--owner=" + std::to_string(o.run_as_user) + ":" + std::to_string(o.run_as_group)
        << YAML::EndSeq;
    emit_resources();
    out << YAML::Key << "securityContext" << YAML::Value << YAML::BeginMap;
    out << YAML::Key << "allowPrivilegeEscalation" << YAML::Value << false;
    out << YAML::Key << "capabilities" << YAML::Value << YAML::BeginMap;
    out << YAML::Key << "add" << YAML::Value << YAML::BeginSeq << "CHOWN"
        << "FOWNER" << YAML::EndSeq;
    out << YAML::Key << "drop" << YAML::Value << YAML::BeginSeq << "ALL" << YAML::EndSeq;
    out << YAML::EndMap;
    out << YAML::Key << "readOnlyRootFilesystem" << YAML::Value << true;
    out << YAML::Key << "runAsGroup" << YAML::Value << 0;
    out << YAML::Key << "runAsNonRoot" << YAML::Value << false;
    out << YAML::Key << "runAsUser" << YAML::Value << 0;
    out << YAML::Key << "seccompProfile" << YAML::Value << YAML::BeginMap;
    out << YAML::Key << "type" << YAML::Value << "RuntimeDefault";
    out << YAML::EndMap;
    out << YAML::EndMap; // securityContext
    out << YAML::Key << "volumeMounts" << YAML::Value << YAML::BeginSeq << YAML::BeginMap;
    out << YAML::Key << "mountPath" << YAML::Value << state.path;
    out << YAML::Key << "name" << YAML::Value << state.volume;
    out << YAML::EndMap << YAML::EndSeq;
    out << YAML::EndMap << YAML::EndSeq; // initContainers
  }

  out << YAML::Key << "containers" << YAML::Value << YAML::BeginSeq << YAML::BeginMap;
  out << YAML::Key << "name" << YAML::Value << o.name;
  out << YAML::Key << "image" << YAML::Value << o.image;
  out << YAML::Key << "imagePullPolicy" << YAML::Value << o.image_pull_policy;
  out << YAML::Key << "args" << YAML::Value << YAML::BeginSeq;
  if (hostpath.empty()) {
    for (const auto &arg : config_to_args(c)) {
      out << arg;
    }
  } else {
    out << "--config=" + hostpath + "/" + kConfigFileName;
  }
  out << YAML::EndSeq;

  emit_resources();

  const HostPort &admin = c.admin.listen.front();
  emit_probe(out, "livenessProbe", admin, "/healthz");
  emit_probe(out, "readinessProbe", admin, "/readyz");

  out << YAML::Key << "securityContext" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "allowPrivilegeEscalation" << YAML::Value << false;
  out << YAML::Key << "capabilities" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "drop" << YAML::Value << YAML::BeginSeq << "ALL" << YAML::EndSeq;
  out << YAML::EndMap;
  out << YAML::Key << "readOnlyRootFilesystem" << YAML::Value << true;
  out << YAML::Key << "runAsGroup" << YAML::Value << o.run_as_group;
  out << YAML::Key << "runAsNonRoot" << YAML::Value << true;
  out << YAML::Key << "runAsUser" << YAML::Value << o.run_as_user;
  out << YAML::Key << "seccompProfile" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "type" << YAML::Value << "RuntimeDefault";
  out << YAML::EndMap;
  out << YAML::EndMap; // securityContext

  const bool any_volume =
      !hostpath.empty() || !health_dirs.empty() || !discovery_ro.empty() || !discovery_rw.empty();
  if (any_volume) {
    out << YAML::Key << "volumeMounts" << YAML::Value << YAML::BeginSeq;
    if (!hostpath.empty()) {
      out << YAML::BeginMap;
      out << YAML::Key << "mountPath" << YAML::Value << hostpath;
      out << YAML::Key << "name" << YAML::Value << "config";
      out << YAML::Key << "readOnly" << YAML::Value << true;
      out << YAML::EndMap;
    }
    for (const auto *list : {&health_dirs, &discovery_ro, &discovery_rw}) {
      for (const auto &d : *list) {
        out << YAML::BeginMap;
        out << YAML::Key << "mountPath" << YAML::Value << d.path;
        out << YAML::Key << "name" << YAML::Value << d.volume;
        if (list != &discovery_rw) {
          out << YAML::Key << "readOnly" << YAML::Value << true;
        }
        out << YAML::EndMap;
      }
    }
    out << YAML::EndSeq;
  }
  out << YAML::EndMap << YAML::EndSeq; // the container, containers

  if (any_volume) {
    out << YAML::Key << "volumes" << YAML::Value << YAML::BeginSeq;
    auto volume = [&](const std::string &name, const std::string &path,
                      const char *type = "Directory") {
      out << YAML::BeginMap;
      out << YAML::Key << "name" << YAML::Value << name;
      out << YAML::Key << "hostPath" << YAML::Value << YAML::BeginMap;
      out << YAML::Key << "path" << YAML::Value << path;
      out << YAML::Key << "type" << YAML::Value << type;
      out << YAML::EndMap;
      out << YAML::EndMap;
    };
    if (!hostpath.empty()) {
      volume("config", hostpath);
    }
    for (const auto &d : health_dirs) {
      volume(d.volume, d.path);
    }
    for (const auto &d : discovery_ro) {
      volume(d.volume, d.path);
    }
    for (const auto &d : discovery_rw) {
      volume(d.volume, d.path, "DirectoryOrCreate");
    }
    out << YAML::EndSeq;
  }
  out << YAML::EndMap; // spec
  out << YAML::EndMap;

  if (!out.good()) {
    return Err{std::string("internal error emitting the manifest: ") + out.GetLastError()};
  }
  std::string text = out.c_str();
  text += '\n';
  return text;
}

} // namespace kal
