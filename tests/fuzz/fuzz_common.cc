#include "fuzz_target.h"

#include <cstdio>
#include <cstdlib>

namespace kal::fuzz {

std::vector<Target> &targets() {
  static std::vector<Target> all;
  return all;
}

bool register_target(const char *name, TargetFn fn) {
  targets().push_back({name, fn});
  return true;
}

std::string current_input;

void property_failed(const char *file, int line, const char *what, const std::string &detail) {
  std::fprintf(stderr, "%s:%d: property failed: %s\n  %s\n", file, line, what, detail.c_str());
  if (!current_input.empty()) {
    std::fprintf(stderr, "  input: %s\n", current_input.c_str());
  }
  std::fflush(stderr);
  __builtin_trap();
}

std::vector<std::string> split(std::string_view s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    size_t p = s.find(sep, start);
    if (p == std::string_view::npos) {
      out.emplace_back(s.substr(start));
      return out;
    }
    out.emplace_back(s.substr(start, p - start));
    start = p + 1;
  }
}

namespace {

// Reads a positive decimal at s[*i], advancing *i; false if none (or absurdly long).
bool positive(const std::string &s, size_t *i, long *out) {
  size_t start = *i;
  long v = 0;
  while (*i < s.size() && s[*i] >= '0' && s[*i] <= '9' && *i - start < 9) {
    v = v * 10 + (s[*i] - '0');
    ++*i;
  }
  *out = v;
  return *i > start && v > 0;
}

} // namespace

bool has_file_line_col(const std::string &error, const std::string &file, int max_line, int *line) {
  if (error.rfind(file + ":", 0) != 0) {
    return false;
  }
  size_t i = file.size() + 1;
  long l = 0;
  long c = 0;
  if (!positive(error, &i, &l) || i >= error.size() || error[i] != ':') {
    return false;
  }
  ++i;
  if (!positive(error, &i, &c) || error.compare(i, 2, ": ") != 0) {
    return false;
  }
  if (line) {
    *line = static_cast<int>(l);
  }
  return l <= max_line;
}

} // namespace kal::fuzz
