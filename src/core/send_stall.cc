#include "kube_api_lb/core/send_stall.h"

namespace kal {

void SendStall::sample(TimePoint now, const SendSample &s) {
  const bool same = s.connection != 0 && s.connection == last_.connection;
  const bool progress = !same || s.acked != last_.acked;
  if (s.connection == 0 || s.outstanding == 0) {
    stuck_ = false;
    reported_ = false;
  } else if (progress || !stuck_) {
    // Bytes are outstanding from here on (or the peer took some): the clock starts now.
    stuck_ = true;
    stuck_since_ = now;
    reported_ = false;
  }
  last_ = s;
}

bool SendStall::stalled(TimePoint now, std::chrono::milliseconds timeout) const {
  return stuck_ && now - stuck_since_ >= timeout;
}

bool SendStall::take_new(TimePoint now, std::chrono::milliseconds timeout) {
  if (!stalled(now, timeout) || reported_) {
    return false;
  }
  reported_ = true;
  return true;
}

std::chrono::milliseconds SendStall::stuck_for(TimePoint now) const {
  if (!stuck_) {
    return std::chrono::milliseconds(0);
  }
  return std::chrono::duration_cast<std::chrono::milliseconds>(now - stuck_since_);
}

} // namespace kal
