#include "app/config_watcher.h"

#include "kube_api_lb/log/logger.h"
#include "sys/small_file.h"

#include <filesystem>

namespace kal {
namespace {

// What the watcher compares: the content, or why there is none (a file replaced by something that
// cannot be read is a change; the reload then says what is wrong with it). Bounded like the
// loader, so a huge or endless file cannot fill memory here first.
std::string read_file(const std::string &path) {
  SmallFile f = read_small_file(path, 4 * 1024 * 1024 + 1);
  return f.ok() ? std::move(f.text)
                : "\x01unreadable:" + std::to_string(static_cast<int>(f.status));
}

} // namespace

ConfigWatcher::ConfigWatcher(uv_loop_t *loop, std::string path, std::function<void()> changed)
    : loop_(loop), path_(std::move(path)), changed_(std::move(changed)) {}

ConfigWatcher::~ConfigWatcher() = default;

void ConfigWatcher::event_cb(uv_fs_event_t *h, const char *filename, int, int) noexcept {
  if (auto *self = uvx::owner_of<ConfigWatcher>(h)) {
    self->on_event(filename);
  }
}

void ConfigWatcher::debounce_cb(uv_timer_t *t) noexcept {
  if (auto *self = uvx::owner_of<ConfigWatcher>(t)) {
    self->on_settled();
  }
}

bool ConfigWatcher::start() {
  remember_content();
  debounce_.init(loop_, this);
  auto dir = std::filesystem::path(path_).parent_path().string();
  auto *w = watch_.make(this);
  if (uv_fs_event_init(loop_, w) != 0) {
    watch_.abandon();
    return false;
  }
  if (uv_fs_event_start(w, event_cb, dir.empty() ? "." : dir.c_str(), 0) != 0) {
    watch_.reset();
    log::warn("cannot watch the config file; reload with SIGHUP").kv("path", path_);
    return false;
  }
  return true;
}

void ConfigWatcher::remember_content() { content_ = read_file(path_); }

void ConfigWatcher::stop() {
  debounce_.reset();
  watch_.reset();
}

void ConfigWatcher::on_event(const char *filename) {
  // The directory is watched (atomic renames replace the inode); other files in it are not ours.
  // A rename into place reports the target's name.
  if (filename && std::filesystem::path(path_).filename() != filename) {
    return;
  }
  // Editors and kubelet produce bursts of events; settle first.
  debounce_.start(debounce_cb, kDebounceMs);
}

void ConfigWatcher::on_settled() {
  std::error_code ec;
  if (!std::filesystem::exists(path_, ec)) {
    return; // between unlink and rename: the next event brings the new file
  }
  if (read_file(path_) == content_) {
    return;
  }
  changed_();
}

} // namespace kal
