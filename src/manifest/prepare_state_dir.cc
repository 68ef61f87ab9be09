#include "kube_api_lb/manifest/prepare_state_dir.h"

#include <CLI/CLI.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <string_view>

namespace kal {

namespace {

std::string failed(const std::string &dir, const char *call, int err) {
  return std::string(call) + " " + dir + ": " + std::strerror(err);
}

std::string owner_text(uid_t uid, gid_t gid) {
  return std::to_string(uid) + ":" + std::to_string(gid);
}

// "UID:GID", both decimal ids above 0 (the proxy must not run as root).
Result<std::pair<uid_t, gid_t>> parse_owner(std::string_view s) {
  const size_t colon = s.find(':');
  if (colon == std::string_view::npos) {
    return Err{"--owner: expected UID:GID (e.g. 65532:65532), got \"" + std::string(s) + "\""};
  }
  unsigned long ids[2] = {0, 0};
  const std::string_view parts[2] = {s.substr(0, colon), s.substr(colon + 1)};
  for (int i = 0; i < 2; i++) {
    const auto *b = parts[i].data();
    const auto *e = b + parts[i].size();
    auto [p, ec] = std::from_chars(b, e, ids[i]);
    if (parts[i].empty() || ec != std::errc() || p != e || ids[i] == 0 || ids[i] > 0x7fffffff) {
      return Err{"--owner: expected UID:GID with ids from 1 to 2147483647, got \"" +
                 std::string(s) + "\""};
    }
  }
  return std::pair{static_cast<uid_t>(ids[0]), static_cast<gid_t>(ids[1])};
}

} // namespace

Result<std::string> prepare_state_dir(const std::string &dir, uid_t uid, gid_t gid) {
  if (dir.empty() || dir.front() != '/') {
    return Err{"--dir: must be an absolute path, got \"" + dir + "\""};
  }
  std::string done = "handed over to";
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0) {
    if (errno != ENOENT) {
      return Err{failed(dir, "lstat", errno)};
    }
    if (::mkdir(dir.c_str(), 0750) != 0 && errno != EEXIST) {
      return Err{failed(dir, "mkdir", errno)};
    }
    if (::lstat(dir.c_str(), &st) != 0) {
      return Err{failed(dir, "lstat", errno)};
    }
    done = "created, owned by";
  }
  if (S_ISLNK(st.st_mode)) {
    return Err{dir + " is a symbolic link: refusing to hand over what it points to"};
  }
  if (!S_ISDIR(st.st_mode)) {
    return Err{dir + " exists and is not a directory"};
  }
  if (st.st_uid == uid && st.st_gid == gid && (st.st_mode & 0700) == 0700) {
    return std::string("already owned by ") + owner_text(uid, gid);
  }
  // The mode first, while root (kubelet made it) still owns it; CAP_FOWNER covers the rest.
  if (::chmod(dir.c_str(), 0750) != 0) {
    return Err{failed(dir, "chmod 0750", errno) + " (the init container needs CAP_FOWNER)"};
  }
  if (::lchown(dir.c_str(), uid, gid) != 0) {
    return Err{failed(dir, ("chown " + owner_text(uid, gid)).c_str(), errno) +
               " (the init container needs CAP_CHOWN)"};
  }
  return done + " " + owner_text(uid, gid) + ", mode 0750";
}

int prepare_state_dir_main(int argc, char **argv) {
  CLI::App app{"kube-api-lb prepare-state-dir: give the discovery state directory to the proxy's "
               "user (the static pod's init container runs it as root with CAP_CHOWN and "
               "CAP_FOWNER).",
               "prepare-state-dir"};
  std::string dir;
  std::string owner = "65532:65532";
  app.add_option("--dir", dir, "the state file's directory (a hostPath)")->required();
  app.add_option("--owner", owner, "UID:GID the proxy runs as")->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError &e) {
    if (e.get_exit_code() == 0) {
      return app.exit(e);
    }
    std::fprintf(stderr, "kube-api-lb: error: prepare-state-dir: %s\n", e.what());
    return 2;
  }
  if (dir.empty() || dir.front() != '/') {
    std::fprintf(stderr,
                 "kube-api-lb: error: prepare-state-dir: --dir: must be an absolute path, got "
                 "\"%s\"\n",
                 dir.c_str());
    return 2;
  }
  auto ids = parse_owner(owner);
  if (!ids) {
    std::fprintf(stderr, "kube-api-lb: error: prepare-state-dir: %s\n", ids.error().c_str());
    return 2;
  }
  auto r = prepare_state_dir(dir, ids->first, ids->second);
  if (!r) {
    std::fprintf(stderr, "kube-api-lb: error: prepare-state-dir: %s\n", r.error().c_str());
    return 1;
  }
  std::printf("kube-api-lb prepare-state-dir: %s %s\n", dir.c_str(), r->c_str());
  return 0;
}

} // namespace kal
