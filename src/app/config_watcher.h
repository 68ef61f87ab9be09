#pragma once
// Notices that the configuration file changed: watches the file's directory (kubelet and Ansible
// replace the file by an atomic rename, which a watch on the old inode would miss), lets a burst
// of events settle for kDebounceMs, and reports a change only when the file's content differs from
// what the running configuration was read from (an editor saving the same bytes, or a touch, is no
// reload). Owns its fs-event handle and debounce timer. Lives on the loop it is given; every
// method runs on that loop's thread.
#include "uvx/handle.h"

#include <cstdint>
#include <functional>
#include <string>

namespace kal {

class ConfigWatcher {
public:
  static constexpr uint64_t kDebounceMs = 200;

  // `changed` runs on the loop's thread when the file's content differs from the last one
  // remembered; it typically reloads (and so calls remember_content()). `loop` must outlive the
  // watcher.
  ConfigWatcher(uv_loop_t *loop, std::string path, std::function<void()> changed);
  ~ConfigWatcher();
  ConfigWatcher(const ConfigWatcher &) = delete;
  ConfigWatcher &operator=(const ConfigWatcher &) = delete;

  // Remembers the content and starts watching. If the directory cannot be watched, logs a warning
  // (reloads then come from SIGHUP only) and returns false.
  bool start();
  // Remembers the file's content now: the configuration about to be loaded is read from it.
  void remember_content();
  // Closes the handles; no event is reported after it.
  void stop();

private:
  static void event_cb(uv_fs_event_t *h, const char *filename, int events, int status) noexcept;
  static void debounce_cb(uv_timer_t *t) noexcept;
  void on_event(const char *filename);
  void on_settled();

  uv_loop_t *loop_;
  std::string path_;
  std::function<void()> changed_;
  std::string content_; // what the running configuration was read from
  uvx::Handle<uv_fs_event_t> watch_;
  uvx::Timer debounce_;
};

} // namespace kal
