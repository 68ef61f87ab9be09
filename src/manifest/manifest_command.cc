#include "kube_api_lb/manifest/manifest_command.h"
#include "kube_api_lb/version.h"

#include "kube_api_lb/config/config.h"
#include "kube_api_lb/config/flags.h"
#include "kube_api_lb/config/load.h"
#include "kube_api_lb/manifest/manifest.h"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <iostream>
#include <string>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace kal {
namespace {

constexpr const char *kDefaultImage = "kube-api-lb:" KAL_VERSION;

int fail(const std::string &msg, int code) {
  std::cerr << "kube-api-lb: error: " << msg << "\n";
  return code;
}

// Writes all of `data` to `fd`; false with errno set on failure.
bool write_all(int fd, const std::string &data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return false;
    }
    off += static_cast<size_t>(n);
  }
  return true;
}

// Writes `data` to `path` so that a reader never sees a partial file: a hidden temporary file
// in the same directory (kubelet ignores dot-files in its manifest directory), fsync, rename.
// A path that exists and is not a regular file (/dev/stdout, /dev/null, a FIFO) is written as it
// is: renaming over it would replace the device or pipe with a file.
Result<bool> write_file_atomic(const std::string &path, const std::string &data, mode_t mode) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
    if (S_ISDIR(st.st_mode)) {
      return Err{"\"" + path + "\": is a directory, not a file"};
    }
    int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0 || !write_all(fd, data)) {
      int e = errno;
      if (fd >= 0) {
        ::close(fd);
      }
      return Err{"cannot write \"" + path + "\": " + std::strerror(e)};
    }
    ::close(fd);
    return true;
  }
  const auto slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash + 1);
  const std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  if (base.empty()) {
    return Err{"\"" + path + "\": is a directory name, not a file name"};
  }
  const std::string tmp = (slash == std::string::npos ? std::string() : dir) + "." + base +
                          ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) {
    return Err{"cannot write \"" + path + "\": " + std::strerror(errno)};
  }
  if (!write_all(fd, data)) {
    int e = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    return Err{"cannot write \"" + path + "\": " + std::strerror(e)};
  }
  // The umask may have narrowed the mode; the config must stay readable by the pod's non-root user.
  if (::fchmod(fd, mode) != 0 || ::fsync(fd) != 0) {
    int e = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    return Err{"cannot write \"" + path + "\": " + std::strerror(e)};
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    return Err{"cannot write \"" + path + "\": " + std::strerror(e)};
  }
  return true;
}

std::string shell_quote(const std::string &s) {
  bool plain = !s.empty();
  for (char c : s) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || std::strchr("-_=.,:/@[]+%", c))) {
      plain = false;
    }
  }
  if (plain) {
    return s;
  }
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

// The canonical command that regenerates this manifest, one flag per comment line.
std::vector<std::string> header_for(const Config &c, const ManifestOptions &o) {
  const ManifestOptions d;
  std::vector<std::string> flags = config_to_args(c);
  auto opt = [&](const char *flag, const std::string &v, const std::string &def) {
    if (v != def) {
      flags.push_back(std::string("--") + flag + "=" + v);
    }
  };
  opt("image", o.image, kDefaultImage);
  opt("name", o.name, d.name);
  opt("namespace", o.pod_namespace, d.pod_namespace);
  opt("config-hostpath", o.config_hostpath, d.config_hostpath);
  opt("cpu-request", o.cpu_request, d.cpu_request);
  opt("memory-request", o.memory_request, d.memory_request);
  opt("cpu-limit", o.cpu_limit, d.cpu_limit);
  opt("memory-limit", o.memory_limit, d.memory_limit);
  opt("image-pull-policy", o.image_pull_policy, d.image_pull_policy);

  std::vector<std::string> lines{
      "Static Pod for kube-api-lb, the node-local apiserver load balancer.",
      "Generated; do not edit. Regenerate with:"};
  std::string line = "  kube-api-lb manifest";
  for (const auto &f : flags) {
    lines.push_back(line + " \\");
    line = "      " + shell_quote(f);
  }
  lines.push_back(line);
  return lines;
}

// The configuration the manifest describes, combined exactly as the proxy combines it: defaults,
// then --config (kube-api-lb YAML, or a Kubespray nginx.conf / haproxy.cfg to migrate from), then
// the flags. Endpoints given as a flag also seed the file's base, so a file without endpoints is
// valid when --endpoints supplies them.
Result<Config> load_config(const FlagValues &v) {
  if (v.config_path.empty() && !v.given("endpoints")) {
    return Err{"--endpoints is required (e.g. --endpoints=10.0.0.11:6443,10.0.0.12:6443) unless "
               "--config names a config file"};
  }
  return effective_config(v);
}

} // namespace

int manifest_main(int argc, char **argv) {
  CLI::App app{"Print the static Pod manifest that runs kube-api-lb on a node.", "manifest"};
  app.set_help_flag("-h,--help", "print this help and exit");
  app.option_defaults()->delimiter('\0');

  FlagValues fv;
  add_config_flags(app, fv);

  ManifestOptions o;
  o.image = kDefaultImage;
  std::string write_config, output = "-";
  app.add_option("--image", o.image, "container image")->capture_default_str();
  app.add_option("--name", o.name, "pod and container name")->capture_default_str();
  app.add_option("--namespace", o.pod_namespace, "pod namespace")->capture_default_str();
  app.add_option("--config-hostpath", o.config_hostpath,
                 "host directory with config.yaml, mounted read-only (default: config as args)");
  app.add_option("--cpu-request", o.cpu_request, "CPU request")->capture_default_str();
  app.add_option("--memory-request", o.memory_request, "memory request")->capture_default_str();
  app.add_option("--cpu-limit", o.cpu_limit, "CPU limit (default: none)");
  app.add_option("--memory-limit", o.memory_limit, "memory limit (empty: none)")
      ->capture_default_str();
  app.add_option("--image-pull-policy", o.image_pull_policy, "Always|IfNotPresent|Never")
      ->capture_default_str();
  app.add_option("--write-config", write_config,
                 "also write the matching config file to PATH (mode 0644)");
  app.add_option("-o,--output", output, "write the manifest to PATH instead of stdout")
      ->capture_default_str();

  // klog-style -v=N becomes --v=N, as for the proxy; CLI11 wants the arguments without argv[0].
  std::vector<std::string> args = normalize_args(argc, argv);
  if (!args.empty()) {
    args.erase(args.begin());
  }
  std::reverse(args.begin(), args.end());
  try {
    app.parse(args);
  } catch (const CLI::CallForHelp &) {
    std::cout << app.help();
    return 0;
  } catch (const CLI::ParseError &e) {
    return fail(std::string("manifest: ") + e.what(), 2);
  }

  auto config = load_config(fv);
  if (!config) {
    return fail("manifest: " + config.error(), 2);
  }
  o.header_comments = header_for(*config, o);
  auto manifest = render_manifest(*config, o);
  if (!manifest) {
    return fail("manifest: " + manifest.error(), 2);
  }

  if (!write_config.empty()) {
    if (auto r = write_file_atomic(write_config, render_config_file(*config), 0644); !r) {
      return fail("manifest: --write-config: " + r.error(), 1);
    }
  }
  if (output.empty() || output == "-") {
    std::cout << *manifest << std::flush;
    if (!std::cout) {
      return fail("manifest: cannot write to stdout", 1);
    }
  } else if (auto r = write_file_atomic(output, *manifest, 0644); !r) {
    return fail("manifest: --output: " + r.error(), 1);
  }
  return 0;
}

} // namespace kal
