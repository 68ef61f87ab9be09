#include "kube_api_lb/core/event_log.h"

namespace kal {

const char *to_string(EventKind k) {
  switch (k) {
  case EventKind::Start:
    return "start";
  case EventKind::Transition:
    return "transition";
  case EventKind::Close:
    return "close";
  case EventKind::Reload:
    return "reload";
  case EventKind::ReloadFailed:
    return "reload-failed";
  case EventKind::Added:
    return "added";
  case EventKind::Removed:
    return "removed";
  }
  return "unknown";
}

void EventLog::add(Event e) {
  if (e.text.size() > kMaxText) {
    size_t cut = kMaxText - 3;
    // Never split a UTF-8 sequence: back up over continuation bytes.
    while (cut > 0 && (static_cast<unsigned char>(e.text[cut]) & 0xC0) == 0x80) {
      --cut;
    }
    e.text.resize(cut);
    e.text += "...";
  }
  ring_.push(std::move(e));
}

std::vector<Event> EventLog::newest_first(size_t max) const {
  std::vector<Event> out;
  for (size_t i = ring_.size(); i > 0 && out.size() < max; i--) {
    out.push_back(ring_.at(i - 1));
  }
  return out;
}

} // namespace kal
