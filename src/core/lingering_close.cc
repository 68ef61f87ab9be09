#include "kube_api_lb/core/lingering_close.h"

#include <algorithm>

namespace kal {

void LingeringClose::start(uint64_t now_ms) {
  active_ = true;
  owed_ = SIZE_MAX;
  start_ms_ = progress_ms_ = now_ms;
}

bool LingeringClose::should_close(size_t owed, bool answer_ended, uint64_t last_activity_ms,
                                  uint64_t now_ms) {
  if (owed == 0 && answer_ended) {
    return true; // all of it, FIN included, is in the client's hands
  }
  if (owed < owed_) {
    progress_ms_ = now_ms;
  }
  owed_ = owed;
  uint64_t quiet_since = std::max(progress_ms_, last_activity_ms);
  return now_ms - quiet_since >= kQuietMs || now_ms - start_ms_ >= kMaxMs;
}

} // namespace kal
