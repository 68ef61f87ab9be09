#include "kube_api_lb/core/watch_stream.h"

namespace kal {

WatchStreamFramer::State WatchStreamFramer::fail(std::string msg) {
  error_ = std::move(msg);
  state_ = State::Error;
  cur_.clear();
  return state_;
}

WatchStreamFramer::State WatchStreamFramer::feed(std::string_view data,
                                                 std::vector<std::string> &events) {
  if (state_ == State::Error) {
    return state_;
  }
  size_t start = 0; // where the current object's bytes begin inside `data`
  for (size_t i = 0; i < data.size(); ++i) {
    const char c = data[i];
    if (depth_ == 0) {
      if (c == ' ' || c == '\n' || c == '\r' || c == '\t') {
        continue;
      }
      if (c != '{') {
        return fail("watch stream: unexpected byte 0x" +
                    std::string(1, "0123456789abcdef"[(static_cast<unsigned char>(c) >> 4)]) +
                    std::string(1, "0123456789abcdef"[static_cast<unsigned char>(c) & 15]) +
                    " between events (expected a JSON object)");
      }
      depth_ = 1;
      start = i;
      continue;
    }
    if (in_string_) {
      if (escape_) {
        escape_ = false;
      } else if (c == '\\') {
        escape_ = true;
      } else if (c == '"') {
        in_string_ = false;
      }
    } else if (c == '"') {
      in_string_ = true;
    } else if (c == '{' || c == '[') {
      ++depth_;
    } else if (c == '}' || c == ']') {
      --depth_;
    }
    if (cur_.size() + (i + 1 - start) > max_) {
      return fail("watch stream: event larger than " + std::to_string(max_) + " bytes");
    }
    if (depth_ == 0) {
      cur_.append(data.substr(start, i + 1 - start));
      events.push_back(std::move(cur_));
      cur_.clear();
      in_string_ = escape_ = false;
    }
  }
  if (depth_ > 0) {
    cur_.append(data.substr(start));
  }
  return state_;
}

} // namespace kal
