#include "health/h2_check.h"

namespace kal {

std::unique_ptr<H2Check> H2Check::create(std::string authority, std::string path) {
  H2Liveness::Options o;
  o.authority = std::move(authority);
  o.path = std::move(path);
  // Only the status counts: the verbose body is for people, not for the verdict.
  o.max_body = 4096;
  auto h2 = H2Liveness::create(std::move(o));
  if (!h2.ok()) {
    return nullptr;
  }
  return std::unique_ptr<H2Check>(new H2Check(std::move(*h2)));
}

H2Check::Fed H2Check::feed(std::string_view plain, TimePoint now) {
  Fed f;
  if (!plain.empty() && !h2_->feed(plain, now)) {
    f.ok = false;
  }
  for (auto &e : h2_->take_events()) {
    switch (e.kind) {
    case H2Liveness::EventKind::PingAck:
      f.ping_acks.push_back(e.rtt);
      break;
    case H2Liveness::EventKind::Response:
      if (stream_ && *stream_ == e.stream_id) {
        stream_.reset();
        f.answer = Answer{e.status, false, "", e.rtt};
      }
      break;
    case H2Liveness::EventKind::StreamFailed:
      if (stream_ && *stream_ == e.stream_id) {
        stream_.reset();
        f.answer =
            Answer{e.status, true,
                   "HTTP/2 stream reset (error code " + std::to_string(e.error_code) + ")", e.rtt};
      }
      break;
    case H2Liveness::EventKind::GoAway:
      if (!goaway_reported_) {
        goaway_reported_ = true;
        f.goaway = true;
      }
      break;
    }
  }
  return f;
}

bool H2Check::request(TimePoint now) {
  if (stream_ || !usable()) {
    return false;
  }
  stream_ = h2_->request(now);
  return stream_.has_value();
}

void H2Check::cancel_request() {
  if (stream_) {
    // Everything sent up to now: the one request in flight is the only stream there is.
    h2_->expire_requests(TimePoint::max());
    stream_.reset();
  }
}

bool H2Check::ping(TimePoint now) { return h2_->send_ping(now).has_value(); }

} // namespace kal
