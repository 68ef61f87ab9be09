#pragma once
// The proxy's last notable events (health transitions, connections closed for a dead endpoint,
// reloads and rejected reloads, start-up) for the status page: a bounded ring, newest last.
// Written and read on the main loop only.
#include "kube_api_lb/core/ring_buffer.h"

#include <cstdint>
#include <string>
#include <vector>

namespace kal {

enum class EventKind : uint8_t {
  Start,        // the process started
  Transition,   // an endpoint's health changed
  Close,        // an endpoint's connections were closed (dead verdict)
  Reload,       // a configuration reload was applied
  ReloadFailed, // a configuration reload was rejected; the running one stays
  Added,        // an endpoint joined the active set (reload or discovery)
  Removed,      // an endpoint left the active set; its connections drain
};
const char *to_string(EventKind k); // "start", "transition", "close", "reload", ...

struct Event {
  int64_t unix_ms = 0; // wall-clock time, for people
  EventKind kind = EventKind::Start;
  std::string subject; // the endpoint, or the reload's trigger
  std::string text;    // what happened, in words ("up -> down (L4CON)", the reload's error)
  friend bool operator==(const Event &, const Event &) = default;
};

class EventLog {
public:
  static constexpr size_t kCapacity = 50;
  // Longer texts (a reload error quoting a file) are cut to this many bytes, ending in "...".
  static constexpr size_t kMaxText = 300;

  explicit EventLog(size_t capacity = kCapacity) : ring_(capacity) {}

  void add(Event e);
  // Newest first, at most `max`.
  std::vector<Event> newest_first(size_t max) const;
  uint64_t total() const { return ring_.pushed(); }

private:
  RingBuffer<Event> ring_;
};

} // namespace kal
