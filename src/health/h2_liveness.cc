#include "health/h2_liveness.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <array>

namespace kal {
namespace {

using std::chrono::microseconds;

// libnghttp2 1.61 renamed the byte-level calls (the old ones are deprecated there); Debian 12 has
// 1.52. Both return a negative nghttp2_error or a byte count.
int64_t mem_recv(nghttp2_session *s, std::string_view in) {
  const auto *p = reinterpret_cast<const uint8_t *>(in.data());
#if NGHTTP2_VERSION_NUM >= 0x013d00
  return nghttp2_session_mem_recv2(s, p, in.size());
#else
  return nghttp2_session_mem_recv(s, p, in.size());
#endif
}

int64_t mem_send(nghttp2_session *s, const uint8_t **out) {
#if NGHTTP2_VERSION_NUM >= 0x013d00
  return nghttp2_session_mem_send2(s, out);
#else
  return nghttp2_session_mem_send(s, out);
#endif
}

std::array<uint8_t, 8> opaque_of(uint64_t id) {
  std::array<uint8_t, 8> b{};
  for (int i = 7; i >= 0; i--) {
    b[static_cast<size_t>(i)] = static_cast<uint8_t>(id & 0xff);
    id >>= 8;
  }
  return b;
}

uint64_t id_of(const uint8_t *opaque) {
  uint64_t id = 0;
  for (int i = 0; i < 8; i++) {
    id = (id << 8) | opaque[i];
  }
  return id;
}

nghttp2_nv header(std::string_view name, std::string_view value) {
  // nghttp2 copies names and values (no NO_COPY flags), so views of temporaries are fine.
  return nghttp2_nv{const_cast<uint8_t *>(reinterpret_cast<const uint8_t *>(name.data())),
                    const_cast<uint8_t *>(reinterpret_cast<const uint8_t *>(value.data())),
                    name.size(), value.size(), NGHTTP2_NV_FLAG_NONE};
}

microseconds since(TimePoint from, TimePoint to) {
  return to > from ? std::chrono::duration_cast<microseconds>(to - from) : microseconds(0);
}

} // namespace

// The nghttp2 C callbacks: tiny, noexcept, and they only record into the H2Liveness they belong
// to. Returning 0 everywhere: no error here is fatal to the session by our choice; nghttp2
// decides what breaks the protocol.
struct H2LivenessCallbacks {
  static H2Liveness *self(void *user_data) { return static_cast<H2Liveness *>(user_data); }

  static int on_frame_recv(nghttp2_session *, const nghttp2_frame *frame, void *ud) noexcept {
    H2Liveness *h = self(ud);
    switch (frame->hd.type) {
    case NGHTTP2_PING: {
      if ((frame->hd.flags & NGHTTP2_FLAG_ACK) == 0) {
        break; // the server's own PING: nghttp2 acks it
      }
      const uint64_t id = id_of(frame->ping.opaque_data);
      auto it = std::find_if(h->pings_.begin(), h->pings_.end(),
                             [id](const auto &p) { return p.first == id; });
      if (it == h->pings_.end()) {
        break; // expired already, or never ours
      }
      H2Liveness::Event e;
      e.kind = H2Liveness::EventKind::PingAck;
      e.ping_id = id;
      e.rtt = since(it->second, h->now_);
      h->pings_.erase(it);
      h->events_.push_back(std::move(e));
      break;
    }
    case NGHTTP2_HEADERS: {
      auto it = h->streams_.find(frame->hd.stream_id);
      if (it != h->streams_.end() && frame->headers.cat == NGHTTP2_HCAT_RESPONSE &&
          it->second.headers_at == TimePoint{}) {
        it->second.headers_at = h->now_;
      }
      break;
    }
    case NGHTTP2_GOAWAY: {
      h->goaway_ = true;
      H2Liveness::Event e;
      e.kind = H2Liveness::EventKind::GoAway;
      e.error_code = frame->goaway.error_code;
      e.last_stream_id = frame->goaway.last_stream_id;
      h->events_.push_back(std::move(e));
      break;
    }
    default:
      break;
    }
    return 0;
  }

  static int on_header(nghttp2_session *, const nghttp2_frame *frame, const uint8_t *name,
                       size_t namelen, const uint8_t *value, size_t valuelen, uint8_t,
                       void *ud) noexcept {
    H2Liveness *h = self(ud);
    if (frame->hd.type != NGHTTP2_HEADERS) {
      return 0;
    }
    auto it = h->streams_.find(frame->hd.stream_id);
    const std::string_view n(reinterpret_cast<const char *>(name), namelen);
    if (it == h->streams_.end() || n != ":status" || valuelen != 3) {
      return 0; // nghttp2's HTTP messaging checks already rejected a malformed :status
    }
    int status = 0;
    for (size_t i = 0; i < valuelen; i++) {
      if (value[i] < '0' || value[i] > '9') {
        return 0;
      }
      status = status * 10 + (value[i] - '0');
    }
    // A 1xx is an interim answer; the final status replaces it.
    it->second.status = status;
    return 0;
  }

  static int on_data_chunk_recv(nghttp2_session *, uint8_t, int32_t stream_id, const uint8_t *data,
                                size_t len, void *ud) noexcept {
    H2Liveness *h = self(ud);
    auto it = h->streams_.find(stream_id);
    if (it == h->streams_.end()) {
      return 0;
    }
    H2Liveness::Stream &s = it->second;
    const size_t room = h->opts_.max_body > s.body.size() ? h->opts_.max_body - s.body.size() : 0;
    s.body.append(reinterpret_cast<const char *>(data), std::min(room, len));
    s.truncated = s.truncated || len > room;
    return 0;
  }

  static int on_stream_close(nghttp2_session *, int32_t stream_id, uint32_t error_code,
                             void *ud) noexcept {
    H2Liveness *h = self(ud);
    auto it = h->streams_.find(stream_id);
    if (it == h->streams_.end()) {
      return 0; // expired and cancelled by us
    }
    H2Liveness::Stream &s = it->second;
    H2Liveness::Event e;
    e.stream_id = stream_id;
    e.status = s.status;
    e.error_code = error_code;
    e.kind = error_code == NGHTTP2_NO_ERROR && s.status >= 200
                 ? H2Liveness::EventKind::Response
                 : H2Liveness::EventKind::StreamFailed;
    e.body = std::move(s.body);
    e.body_truncated = s.truncated;
    e.rtt = since(s.sent, s.headers_at == TimePoint{} ? h->now_ : s.headers_at);
    e.duration = since(s.sent, h->now_);
    h->streams_.erase(it);
    h->events_.push_back(std::move(e));
    return 0;
  }

  static int on_frame_send(nghttp2_session *, const nghttp2_frame *frame, void *ud) noexcept {
    H2Liveness *h = self(ud);
    // nghttp2 answers a connection error by sending GOAWAY with its code: that is the moment the
    // session is broken for good.
    if (frame->hd.type == NGHTTP2_GOAWAY && frame->goaway.error_code != NGHTTP2_NO_ERROR) {
      h->fail(std::string("HTTP/2 protocol error: ") +
              nghttp2_http2_strerror(frame->goaway.error_code));
    }
    return 0;
  }

  static int on_error(nghttp2_session *, int, const char *msg, size_t len, void *ud) noexcept {
    self(ud)->last_lib_error_.assign(msg, len);
    return 0;
  }
};

Result<std::unique_ptr<H2Liveness>> H2Liveness::create(Options opts) {
  std::unique_ptr<H2Liveness> h(new H2Liveness(std::move(opts)));
  nghttp2_session_callbacks *cbs = nullptr;
  if (nghttp2_session_callbacks_new(&cbs) != 0) {
    return Err{"HTTP/2: out of memory"};
  }
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, &H2LivenessCallbacks::on_frame_recv);
  nghttp2_session_callbacks_set_on_header_callback(cbs, &H2LivenessCallbacks::on_header);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(
      cbs, &H2LivenessCallbacks::on_data_chunk_recv);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs,
                                                         &H2LivenessCallbacks::on_stream_close);
  nghttp2_session_callbacks_set_on_frame_send_callback(cbs, &H2LivenessCallbacks::on_frame_send);
  nghttp2_session_callbacks_set_error_callback2(cbs, &H2LivenessCallbacks::on_error);
  const int rv = nghttp2_session_client_new(&h->session_, cbs, h.get());
  nghttp2_session_callbacks_del(cbs);
  if (rv != 0) {
    return Err{std::string("HTTP/2: ") + nghttp2_strerror(rv)};
  }
  // No server push: a checker wants nothing it did not ask for.
  const nghttp2_settings_entry settings[] = {{NGHTTP2_SETTINGS_ENABLE_PUSH, 0}};
  if (nghttp2_submit_settings(h->session_, NGHTTP2_FLAG_NONE, settings, 1) != 0 || !h->pump()) {
    return Err{"HTTP/2: cannot queue the client preface: " + h->error_};
  }
  return h;
}

H2Liveness::~H2Liveness() { nghttp2_session_del(session_); }

void H2Liveness::fail(std::string why) {
  if (failed_) {
    return;
  }
  failed_ = true;
  error_ = std::move(why);
  if (!last_lib_error_.empty()) {
    error_ += " (" + last_lib_error_ + ")";
  }
}

bool H2Liveness::pump() {
  while (true) {
    const uint8_t *data = nullptr;
    const int64_t n = mem_send(session_, &data);
    if (n < 0) {
      fail(std::string("HTTP/2: ") + nghttp2_strerror(static_cast<int>(n)));
      return false;
    }
    if (n == 0) {
      return true;
    }
    out_.append(reinterpret_cast<const char *>(data), static_cast<size_t>(n));
  }
}

bool H2Liveness::feed(std::string_view bytes, TimePoint now) {
  if (failed_) {
    return false;
  }
  now_ = now;
  last_lib_error_.clear(); // only what these bytes caused explains a failure they cause
  const int64_t n = mem_recv(session_, bytes);
  if (n < 0) {
    fail(std::string("HTTP/2: ") + nghttp2_strerror(static_cast<int>(n)));
  }
  // Acks of the server's SETTINGS and PINGs, window updates, or our GOAWAY after an error.
  pump();
  return !failed_;
}

size_t H2Liveness::take_output(std::string &out) {
  const size_t n = out_.size();
  out += out_;
  out_.clear();
  return n;
}

std::optional<uint64_t> H2Liveness::send_ping(TimePoint now) {
  if (failed_) {
    return std::nullopt;
  }
  const uint64_t id = next_ping_id_++;
  const auto opaque = opaque_of(id);
  const int rv = nghttp2_submit_ping(session_, NGHTTP2_FLAG_NONE, opaque.data());
  if (rv != 0) {
    fail(std::string("HTTP/2 PING: ") + nghttp2_strerror(rv));
    return std::nullopt;
  }
  pings_.emplace_back(id, now);
  if (!pump()) {
    return std::nullopt;
  }
  return id;
}

std::optional<int32_t> H2Liveness::request(TimePoint now, bool verbose) {
  if (failed_ || goaway_) {
    return std::nullopt;
  }
  std::string path = opts_.path;
  if (verbose) {
    path += path.find('?') == std::string::npos ? "?verbose" : "&verbose";
  }
  const nghttp2_nv nva[] = {
      header(":method", "GET"),
      header(":scheme", "https"),
      header(":authority", opts_.authority),
      header(":path", path),
      header("user-agent", opts_.user_agent),
      header("accept", "text/plain, */*"),
  };
  const int32_t id =
      nghttp2_submit_request(session_, nullptr, nva, sizeof nva / sizeof nva[0], nullptr, nullptr);
  if (id < 0) {
    // Invalid header values (a bad authority) or stream ids exhausted: either way this
    // connection can ask no more.
    fail(std::string("HTTP/2 request: ") + nghttp2_strerror(id));
    return std::nullopt;
  }
  streams_[id].sent = now;
  if (!pump()) {
    return std::nullopt;
  }
  return id;
}

std::vector<H2Liveness::Event> H2Liveness::take_events() {
  std::vector<Event> out;
  out.swap(events_);
  return out;
}

size_t H2Liveness::expire_pings(TimePoint deadline) {
  const size_t before = pings_.size();
  std::erase_if(pings_, [deadline](const auto &p) { return p.second < deadline; });
  return before - pings_.size();
}

size_t H2Liveness::expire_requests(TimePoint deadline) {
  size_t n = 0;
  for (auto it = streams_.begin(); it != streams_.end();) {
    if (it->second.sent < deadline) {
      if (!failed_) {
        nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, it->first, NGHTTP2_CANCEL);
      }
      it = streams_.erase(it);
      n++;
    } else {
      ++it;
    }
  }
  if (n > 0 && !failed_) {
    pump();
  }
  return n;
}

std::optional<TimePoint> H2Liveness::oldest_ping() const {
  if (pings_.empty()) {
    return std::nullopt;
  }
  return pings_.front().second;
}

std::optional<TimePoint> H2Liveness::oldest_request() const {
  std::optional<TimePoint> out;
  for (const auto &[id, s] : streams_) {
    if (!out || s.sent < *out) {
      out = s.sent;
    }
  }
  return out;
}

} // namespace kal
