#include "config/reader_common.h"

#include <algorithm>
#include <cctype>

namespace kal {
namespace {

std::string fold(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c != '-' && c != '_') {
      out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
  }
  return out;
}

// Levenshtein distance; names are short, so the quadratic table is fine.
size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) {
    prev[j] = j;
  }
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t sub = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

bool is_wildcard(const HostPort &h) {
  return (h.kind == HostPort::Kind::IPv4 && h.host == "0.0.0.0") ||
         (h.kind == HostPort::Kind::IPv6 && (h.host == "::" || h.host == "0:0:0:0:0:0:0:0"));
}

} // namespace

bool listeners_overlap(const HostPort &a, const HostPort &b) {
  if (a.port != b.port) {
    return false;
  }
  if (a.kind == b.kind && a.host == b.host) {
    return true;
  }
  if (a.kind != b.kind || a.kind == HostPort::Kind::Name) {
    return false;
  }
  return is_wildcard(a) || is_wildcard(b);
}

void drop_default_admin_for_dropin(Config &c, std::vector<std::string> *notes,
                                   const std::string &file_name) {
  for (const auto &a : c.admin.listen) {
    std::string where = c.admin.healthz_listen.empty()
                            ? "this file has no health port, so there is no /metrics"
                            : "/readyz, /metrics and /stats are served on the health port " +
                                  c.admin.healthz_listen.front().str() + " to loopback clients";
    reader_note(notes, file_name, nullptr,
                "admin listener " + a.str() +
                    " not opened: a drop-in binds only the ports its file names; " + where +
                    " (set admin.listen in a kube-api-lb config file for a separate one)");
  }
  c.admin.listen.clear();
}

std::vector<size_t> covered_by_wildcard(const std::vector<HostPort> &list) {
  std::vector<size_t> out;
  for (size_t i = 0; i < list.size(); ++i) {
    for (size_t j = 0; j < list.size(); ++j) {
      if (i != j && !(list[i] == list[j]) && is_wildcard(list[j]) &&
          listeners_overlap(list[i], list[j])) {
        out.push_back(i);
        break;
      }
    }
  }
  return out;
}

std::optional<std::string> closest_name(std::string_view word,
                                        const std::vector<std::string> &known) {
  const std::string folded = fold(word);
  for (const auto &k : known) {
    if (fold(k) == folded) {
      return k;
    }
  }
  std::optional<std::string> best;
  size_t best_d = 0;
  for (const auto &k : known) {
    size_t d = edit_distance(folded, fold(k));
    if (!best || d < best_d) {
      best = k;
      best_d = d;
    }
  }
  // Allow one edit in short names, two in longer ones, and never more than a third of the word.
  size_t limit = folded.size() <= 4 ? 1 : 2;
  if (best && best_d <= limit && best_d * 3 <= std::max<size_t>(folded.size(), 3)) {
    return best;
  }
  return std::nullopt;
}

} // namespace kal
