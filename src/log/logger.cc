#include "kube_api_lb/log/logger.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>

namespace kal::log {
namespace {

std::atomic<LogFormat> g_format{LogFormat::Text};
std::atomic<int> g_verbosity{0};

const char *level_name(Level l) {
  switch (l) {
  case Level::Debug:
    return "debug";
  case Level::Info:
    return "info";
  case Level::Warn:
    return "warn";
  case Level::Error:
    return "error";
  }
  return "?";
}

std::string timestamp() {
  auto now = std::chrono::system_clock::now();
  auto t = std::chrono::system_clock::to_time_t(now);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()) % 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[80]; // room for any int the compiler imagines; the real stamp is 24 bytes
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(ms.count()));
  return buf;
}

void append_json_string(std::string &out, std::string_view s) {
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
    case '"':
      out += "\\\"";
      break;
    case '\\':
      out += "\\\\";
      break;
    case '\n':
      out += "\\n";
      break;
    case '\t':
      out += "\\t";
      break;
    default:
      if (c < 0x20) {
        char b[8];
        std::snprintf(b, sizeof b, "\\u%04x", c);
        out += b;
      } else {
        out += static_cast<char>(c);
      }
    }
  }
  out += '"';
}

bool needs_quotes(std::string_view s) {
  if (s.empty()) {
    return true;
  }
  for (unsigned char c : s) {
    if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c >= 0x7f) {
      return true;
    }
  }
  return false;
}

} // namespace

void set_format(LogFormat f) { g_format.store(f); }
void set_verbosity(int v) { g_verbosity.store(v); }
int verbosity() { return g_verbosity.load(std::memory_order_relaxed); }

Line::Line(Level level, std::string_view msg) : json_(g_format.load() == LogFormat::Json) {
  buf_.reserve(160);
  if (json_) {
    buf_ += '{';
    buf_ += "\"ts\":\"" + timestamp() + "\",\"level\":\"" + level_name(level) + "\",\"msg\":";
    append_json_string(buf_, msg);
  } else {
    buf_ += "ts=" + timestamp() + " level=" + level_name(level) + " msg=";
    if (needs_quotes(msg)) {
      append_json_string(buf_, msg);
    } else {
      buf_ += msg;
    }
  }
}

Line::~Line() {
  buf_ += json_ ? "}\n" : "\n";
  // One write per line; a short write on stderr is not worth retrying for logs.
  ssize_t r = ::write(STDERR_FILENO, buf_.data(), buf_.size());
  (void)r;
}

void Line::raw(std::string_view key, std::string_view value, bool quote_json) {
  if (json_) {
    buf_ += ',';
    append_json_string(buf_, key);
    buf_ += ':';
    if (quote_json) {
      append_json_string(buf_, value);
    } else {
      buf_ += value;
    }
  } else {
    buf_ += ' ';
    buf_ += key;
    buf_ += '=';
    if (needs_quotes(value)) {
      append_json_string(buf_, value);
    } else {
      buf_ += value;
    }
  }
}

Line &Line::kv(std::string_view key, std::string_view value) {
  raw(key, value, true);
  return *this;
}
Line &Line::kv(std::string_view key, int64_t value) {
  raw(key, std::to_string(value), false);
  return *this;
}
Line &Line::kv(std::string_view key, uint64_t value) {
  raw(key, std::to_string(value), false);
  return *this;
}
Line &Line::kv(std::string_view key, double value) {
  char b[32];
  std::snprintf(b, sizeof b, "%.3f", value);
  raw(key, b, false);
  return *this;
}

} // namespace kal::log
