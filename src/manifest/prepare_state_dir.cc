#include "kube_api_lb/manifest/prepare_state_dir.h"

#include <CLI/CLI.hpp>

#include <dirent.h>
#include <fcntl.h>
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

// An absolute path in plain form: no empty, "." or ".." component, no trailing '/' (a trailing
// slash makes lstat() and lchown() follow a symlink), not "/" itself. Empty when fine.
std::string bad_dir_path(const std::string &dir) {
  if (dir.empty() || dir.front() != '/') {
    return "must be an absolute path, got \"" + dir + "\"";
  }
  if (dir == "/" || dir.back() == '/') {
    return "must name a directory without a trailing '/', got \"" + dir + "\"";
  }
  size_t start = 1;
  while (start <= dir.size()) {
    const size_t slash = dir.find('/', start);
    const std::string_view part = std::string_view(dir).substr(
        start, slash == std::string::npos ? std::string::npos : slash - start);
    if (part.empty() || part == "." || part == "..") {
      return "must be a plain absolute path (no empty, \".\" or \"..\" component), got \"" + dir +
             "\"";
    }
    if (slash == std::string::npos) {
      break;
    }
    start = slash + 1;
  }
  return {};
}

// The root-owned directory behind `fd`, handed over if it is empty: a directory that holds
// anything is shared with something else (a --state-file in /var/lib or /etc/kubernetes would
// otherwise give that whole directory to the proxy's user), and is refused.
Result<bool> hand_over(int fd, const std::string &dir, uid_t uid, gid_t gid) {
  const int list_fd = ::dup(fd);
  if (list_fd < 0) {
    return Err{failed(dir, "dup", errno)};
  }
  DIR *d = ::fdopendir(list_fd);
  if (!d) {
    const int err = errno;
    ::close(list_fd);
    return Err{failed(dir, "opendir", err)};
  }
  std::string first;
  while (const dirent *e = ::readdir(d)) {
    const std::string_view name = e->d_name;
    if (name != "." && name != "..") {
      first = name;
      break;
    }
  }
  ::closedir(d);
  if (!first.empty()) {
    return Err{dir + " is root's and holds other files (\"" + first +
               "\"): refusing to give a shared directory to " + owner_text(uid, gid) +
               "; give --state-file a directory of its own, e.g. "
               "/var/lib/kube-api-lb/discovery.json"};
  }
  // The mode first, while root still owns it; then the owner.
  if (::fchmod(fd, 0750) != 0) {
    return Err{failed(dir, "chmod 0750", errno)};
  }
  if (::fchown(fd, uid, gid) != 0) {
    return Err{failed(dir, ("chown " + owner_text(uid, gid)).c_str(), errno) +
               " (the init container needs CAP_CHOWN)"};
  }
  return true;
}

} // namespace

Result<std::string> prepare_state_dir(const std::string &dir, uid_t uid, gid_t gid) {
  if (auto bad = bad_dir_path(dir); !bad.empty()) {
    return Err{"--dir: " + bad};
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
  if (st.st_uid == uid && st.st_gid == gid) {
    // A later start. Group or others able to write could plant the state the proxy starts from.
    if ((st.st_mode & 07777) == 0750) {
      return std::string("already owned by ") + owner_text(uid, gid);
    }
    if (::chmod(dir.c_str(), 0750) != 0) {
      return Err{failed(dir, "chmod 0750", errno) + " (the init container needs CAP_FOWNER)"};
    }
    return std::string("already owned by ") + owner_text(uid, gid) + ", mode set to 0750";
  }
  if (st.st_uid != 0) {
    return Err{dir + " is owned by " + owner_text(st.st_uid, st.st_gid) +
               ", neither root (as kubelet creates it) nor " + owner_text(uid, gid) +
               ": refusing to take it over"};
  }
  // Root's, as kubelet's DirectoryOrCreate makes it. Everything on the descriptor from here: what
  // was checked is what is changed.
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    return Err{failed(dir, "open", errno)};
  }
  auto result = hand_over(fd, dir, uid, gid);
  ::close(fd);
  if (!result) {
    return Err{result.error()};
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
  if (auto bad = bad_dir_path(dir); !bad.empty()) {
    std::fprintf(stderr, "kube-api-lb: error: prepare-state-dir: --dir: %s\n", bad.c_str());
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
