#include "kube_api_lb/config/duration.h"

#include <cstdint>

namespace kal {
namespace {

constexpr int64_t kNsPerMs = 1000000;
constexpr int64_t kMaxNs = int64_t{8760} * 3600 * 1000000000; // 8760h

// Nanoseconds per unit, or 0 if the unit is unknown.
int64_t unit_ns(std::string_view u) {
  if (u == "ns") {
    return 1;
  }
  if (u == "us" || u == "\xC2\xB5s" || u == "\xCE\xBCs") { // "µs" (micro sign or Greek mu)
    return 1000;
  }
  if (u == "ms") {
    return kNsPerMs;
  }
  if (u == "s") {
    return 1000 * kNsPerMs;
  }
  if (u == "m") {
    return 60 * 1000 * kNsPerMs;
  }
  if (u == "h") {
    return 3600 * 1000 * kNsPerMs;
  }
  return 0;
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

} // namespace

Result<Millis> parse_duration(std::string_view text) {
  const std::string quoted = "\"" + std::string(text) + "\"";
  if (text.empty()) {
    return Err{"empty duration (expected e.g. 500ms, 2s, 1m30s)"};
  }
  if (text.front() == '-') {
    return Err{"duration " + quoted + " must not be negative"};
  }
  std::string_view s = text;
  if (s.front() == '+') {
    s.remove_prefix(1);
  }
  if (s == "0") {
    return Millis{0};
  }
  if (s.empty()) {
    return Err{"duration " + quoted + " is not a duration (expected e.g. 500ms, 2s, 1m30s)"};
  }
  __int128 total = 0;
  while (!s.empty()) {
    // <digits>[.<digits>]
    size_t i = 0;
    __int128 whole = 0;
    bool any_digit = false;
    while (i < s.size() && is_digit(s[i])) {
      whole = whole * 10 + (s[i] - '0');
      if (whole > kMaxNs) {
        return Err{"duration " + quoted + " is too large (maximum 8760h)"};
      }
      any_digit = true;
      ++i;
    }
    __int128 frac = 0;
    __int128 frac_scale = 1;
    if (i < s.size() && s[i] == '.') {
      ++i;
      while (i < s.size() && is_digit(s[i])) {
        if (frac_scale < 1000000000000000000) { // beyond 18 digits nothing changes in ns
          frac = frac * 10 + (s[i] - '0');
          frac_scale *= 10;
        }
        any_digit = true;
        ++i;
      }
    }
    if (!any_digit) {
      return Err{"duration " + quoted + " is not a duration (expected e.g. 500ms, 2s, 1m30s)"};
    }
    size_t u = i;
    while (u < s.size() && !is_digit(s[u]) && s[u] != '.') {
      ++u;
    }
    auto unit = s.substr(i, u - i);
    if (unit.empty()) {
      return Err{"duration " + quoted + " is missing a unit (write e.g. " +
                 std::string(s.substr(0, i)) + "s or " + std::string(s.substr(0, i)) + "ms)"};
    }
    int64_t per = unit_ns(unit);
    if (per == 0) {
      return Err{"duration " + quoted + " has unknown unit \"" + std::string(unit) +
                 "\" (use ms, s, m or h)"};
    }
    total += whole * per + frac * per / frac_scale;
    if (total > kMaxNs) {
      return Err{"duration " + quoted + " is too large (maximum 8760h)"};
    }
    s.remove_prefix(u);
  }
  int64_t ns = static_cast<int64_t>(total);
  int64_t ms = (ns + kNsPerMs / 2) / kNsPerMs;
  if (ms == 0 && ns != 0) {
    return Err{"duration " + quoted + " is below the 1ms resolution (write 0 for none)"};
  }
  return Millis{ms};
}

std::string format_duration(Millis d) {
  int64_t ms = d.count();
  if (ms == 0) {
    return "0s";
  }
  std::string sign;
  if (ms < 0) {
    sign = "-";
    ms = -ms;
  }
  if (ms < 1000) {
    return sign + std::to_string(ms) + "ms";
  }
  int64_t h = ms / 3600000;
  int64_t m = (ms / 60000) % 60;
  int64_t s = (ms / 1000) % 60;
  int64_t frac = ms % 1000;
  std::string secs = std::to_string(s);
  if (frac != 0) {
    std::string f = std::to_string(frac);
    f.insert(0, 3 - f.size(), '0');
    while (f.back() == '0') {
      f.pop_back();
    }
    secs += "." + f;
  }
  std::string out = sign;
  if (h > 0) {
    out += std::to_string(h) + "h" + std::to_string(m) + "m";
  } else if (m > 0) {
    out += std::to_string(m) + "m";
  }
  return out + secs + "s";
}

} // namespace kal
