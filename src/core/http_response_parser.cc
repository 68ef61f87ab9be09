#include "kube_api_lb/core/http_response_parser.h"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <vector>

namespace kal {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto &c : out) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

// Comma-separated tokens of a header value, lower-cased and trimmed.
std::vector<std::string> tokens(std::string_view v) {
  std::vector<std::string> out;
  while (true) {
    auto comma = v.find(',');
    auto t = trim(v.substr(0, comma));
    if (!t.empty()) {
      out.push_back(lower(t));
    }
    if (comma == std::string_view::npos) {
      break;
    }
    v.remove_prefix(comma + 1);
  }
  return out;
}

bool parse_decimal(std::string_view s, size_t &out) {
  if (s.empty() || s.size() > 18) {
    return false;
  }
  size_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') {
      return false;
    }
    v = v * 10 + static_cast<size_t>(c - '0');
  }
  out = v;
  return true;
}

bool parse_hex(std::string_view s, size_t &out) {
  s = trim(s.substr(0, s.find(';'))); // chunk extensions are ignored
  if (s.empty() || s.size() > 15) {
    return false;
  }
  size_t v = 0;
  for (char c : s) {
    int d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      d = c - 'a' + 10;
    } else if (c >= 'A' && c <= 'F') {
      d = c - 'A' + 10;
    } else {
      return false;
    }
    v = v * 16 + static_cast<size_t>(d);
  }
  out = v;
  return true;
}

} // namespace

HttpResponseParser::State HttpResponseParser::fail(std::string msg) {
  error_ = std::move(msg);
  state_ = State::Error;
  keep_alive_ = false;
  return state_;
}

HttpResponseParser::State HttpResponseParser::complete() {
  phase_ = Phase::End;
  state_ = State::Done;
  buf_.clear();
  return state_;
}

size_t HttpResponseParser::take_body(std::string_view &data) {
  const size_t n = std::min(remaining_, data.size());
  if (keep_body_) {
    body_.append(data.substr(0, n));
  }
  remaining_ -= n;
  body_bytes_ += n;
  data.remove_prefix(n);
  return remaining_;
}

bool HttpResponseParser::take_line(std::string_view &data, std::string &line) {
  auto nl = data.find('\n');
  if (nl == std::string_view::npos) {
    buf_.append(data);
    data = {};
    if (buf_.size() > 4096) {
      fail("chunk framing line too long");
    }
    return false;
  }
  line = buf_;
  line.append(data.substr(0, nl));
  buf_.clear();
  data.remove_prefix(nl + 1);
  if (!line.empty() && line.back() == '\r') {
    line.pop_back();
  }
  return true;
}

HttpResponseParser::State HttpResponseParser::parse_head(std::string_view head) {
  // Status line: HTTP/1.x SP 3DIGIT [SP reason]
  auto eol = head.find("\r\n");
  std::string_view line = head.substr(0, eol);
  if (line.size() < 12 || line.substr(0, 7) != "HTTP/1." || line[8] != ' ' ||
      (line.size() > 12 && line[12] != ' ')) {
    return fail("malformed status line");
  }
  const bool http10 = line[7] == '0';
  if (!http10 && line[7] != '1') {
    return fail("unsupported HTTP version");
  }
  size_t status = 0;
  if (!parse_decimal(line.substr(9, 3), status) || status < 100) {
    return fail("malformed status code");
  }
  status_ = static_cast<int>(status);
  keep_alive_ = !http10;

  bool chunked = false;
  bool have_length = false;
  size_t length = 0;
  head.remove_prefix(eol == std::string_view::npos ? head.size() : eol + 2);
  while (!head.empty()) {
    eol = head.find("\r\n");
    line = head.substr(0, eol);
    head.remove_prefix(eol == std::string_view::npos ? head.size() : eol + 2);
    if (line.empty()) {
      break;
    }
    auto colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) {
      return fail("malformed header line");
    }
    const std::string name = lower(line.substr(0, colon));
    const std::string_view value = trim(line.substr(colon + 1));
    if (name == "content-length") {
      size_t v = 0;
      if (!parse_decimal(value, v) || (have_length && v != length)) {
        return fail("bad Content-Length");
      }
      have_length = true;
      length = v;
    } else if (name == "transfer-encoding") {
      auto t = tokens(value);
      chunked = !t.empty() && t.back() == "chunked";
      if (!chunked) {
        return fail("unsupported Transfer-Encoding");
      }
    } else if (name == "connection") {
      for (const auto &t : tokens(value)) {
        if (t == "close") {
          keep_alive_ = false;
        } else if (t == "keep-alive" && http10) {
          keep_alive_ = true;
        }
      }
    }
  }

  if (status_ < 200 && status_ != 101) {
    // Interim response (100 Continue, 103 Early Hints): the real one follows.
    const bool ka = keep_alive_;
    status_ = 0;
    keep_alive_ = ka;
    phase_ = Phase::Head;
    return State::Incomplete;
  }
  if (status_ == 204 || status_ == 304 || status_ == 101) {
    return complete();
  }
  if (chunked) {
    phase_ = Phase::ChunkSize;
    return State::Incomplete;
  }
  if (have_length) {
    if (max_body_ != 0 && length > max_body_) {
      return fail("response body too large");
    }
    if (length == 0) {
      return complete();
    }
    remaining_ = length;
    phase_ = Phase::Body;
    return State::Incomplete;
  }
  keep_alive_ = false; // the body ends when the server closes
  phase_ = Phase::UntilClose;
  return State::Incomplete;
}

int HttpResponseParser::status_line_status() const {
  if (status_ != 0 || phase_ != Phase::Head) {
    return status_;
  }
  const auto eol = buf_.find("\r\n");
  if (eol == std::string::npos) {
    return 0;
  }
  // The same checks as parse_head()'s on the status line.
  const std::string_view line(buf_.data(), eol);
  size_t status = 0;
  if (line.size() < 12 || line.substr(0, 7) != "HTTP/1." || (line[7] != '0' && line[7] != '1') ||
      line[8] != ' ' || (line.size() > 12 && line[12] != ' ') ||
      !parse_decimal(line.substr(9, 3), status) || status < 200) {
    return 0;
  }
  return static_cast<int>(status);
}

HttpResponseParser::State HttpResponseParser::feed(std::string_view data) {
  std::string rest; // storage for bytes after a head that arrived in the same read
  while (!data.empty() && state_ == State::Incomplete) {
    switch (phase_) {
    case Phase::Head: {
      const size_t from = buf_.size() >= 3 ? buf_.size() - 3 : 0;
      buf_.append(data);
      data = {};
      auto end = buf_.find("\r\n\r\n", from);
      if (end == std::string::npos) {
        if (buf_.size() > kMaxHeadBytes) {
          return fail("response head too large");
        }
        break;
      }
      rest = buf_.substr(end + 4);
      std::string head = buf_.substr(0, end + 2);
      buf_.clear();
      data = rest;
      if (parse_head(head) == State::Error) {
        return state_;
      }
      break;
    }
    case Phase::Body:
      if (take_body(data) == 0) {
        complete();
      }
      break;
    case Phase::ChunkSize: {
      std::string line;
      if (!take_line(data, line)) {
        break;
      }
      size_t size = 0;
      if (!parse_hex(line, size)) {
        return fail("malformed chunk size");
      }
      if (size == 0) {
        phase_ = Phase::Trailers;
      } else if (max_body_ != 0 && body_bytes_ + size > max_body_) {
        return fail("response body too large");
      } else {
        remaining_ = size;
        phase_ = Phase::ChunkData;
      }
      break;
    }
    case Phase::ChunkData:
      if (take_body(data) == 0) {
        phase_ = Phase::ChunkDataEnd;
      }
      break;
    case Phase::ChunkDataEnd: {
      std::string line;
      if (!take_line(data, line)) {
        break;
      }
      if (!line.empty()) {
        return fail("missing CRLF after chunk data");
      }
      phase_ = Phase::ChunkSize;
      break;
    }
    case Phase::Trailers: {
      std::string line;
      if (!take_line(data, line)) {
        break;
      }
      if (line.empty()) {
        complete();
      }
      break;
    }
    case Phase::UntilClose:
      body_bytes_ += data.size();
      if (keep_body_) {
        body_.append(data);
      }
      data = {};
      if (max_body_ != 0 && body_bytes_ > max_body_) {
        return fail("response body too large");
      }
      break;
    case Phase::End:
      data = {};
      break;
    }
  }
  if (state_ == State::Done && !data.empty()) {
    extra_ = true;
    keep_alive_ = false;
  }
  return state_;
}

HttpResponseParser::State HttpResponseParser::finish() {
  if (state_ != State::Incomplete) {
    return state_;
  }
  if (phase_ == Phase::UntilClose) {
    keep_alive_ = false;
    return complete();
  }
  return fail(phase_ == Phase::Head && buf_.empty() ? "connection closed before any response"
                                                    : "connection closed mid-response");
}

} // namespace kal
