#pragma once
// Small pieces shared by the YAML, nginx.conf and haproxy.cfg readers.
#include "kube_api_lb/config/config.h"

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kal {

// Shared by the nginx.conf and haproxy.cfg readers: a position in the file and the one failure a
// reader reports. Readers throw ReaderFailure internally and turn it into
// "FILE:LINE:COL: message" at their boundary (reader_error); nothing escapes them.
struct ReaderPos {
  int line = 1;
  int col = 1;
};

struct ReaderFailure {
  ReaderPos pos;
  std::string message;
};

[[noreturn]] inline void reader_fail(ReaderPos pos, std::string message) {
  throw ReaderFailure{pos, std::move(message)};
}

// "FILE:LINE:COL: text", the one format of reader errors and notes.
// A message is one log line: the input bytes it quotes (a directive, a token, a YAML parser's
// "unknown escape character") are shown with control characters as \xNN. The fuzzer found a
// newline quoted raw from an nginx.conf and from YAML.
inline std::string one_line(std::string_view text) {
  static const char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(text.size());
  for (char ch : text) {
    const auto b = static_cast<unsigned char>(ch);
    if (b < 0x20 || b == 0x7f) {
      out += "\\x";
      out += hex[b >> 4];
      out += hex[b & 15];
    } else {
      out += ch;
    }
  }
  return out;
}

inline std::string reader_located(const std::string &file_name, ReaderPos pos,
                                  const std::string &text) {
  return one_line(file_name + ":" + std::to_string(pos.line) + ":" + std::to_string(pos.col) +
                  ": " + text);
}

inline std::string reader_error(const std::string &file_name, const ReaderFailure &f) {
  return reader_located(file_name, f.pos, f.message);
}

// Appends a note (an ignored directive, a default taken) for the caller's debug log; `notes` may
// be null when nobody asked for them. A null `pos` notes the whole file.
inline void reader_note(std::vector<std::string> *notes, const std::string &file_name,
                        const ReaderPos *pos, const std::string &text) {
  if (notes) {
    notes->push_back(pos ? reader_located(file_name, *pos, text)
                         : one_line(file_name + ": " + text));
  }
}

// The boundary every file reader shares: runs `parse(notes)` (which throws ReaderFailure on bad
// input), validates the Config it returns (unless `checks` is FieldsOnly), hands the collected
// notes over only on success, and turns every failure into one "FILE:LINE:COL: message" error.
// Never throws.
template <class Parse>
Result<Config> run_reader(const std::string &file_name, const char *what,
                          std::vector<std::string> *notes, ReaderChecks checks, Parse parse) {
  std::vector<std::string> local;
  try {
    Config c = parse(local);
    // The readers validate at the block the configuration came from; this is the last net
    // (the whole file: line 1).
    if (auto v = checks == ReaderChecks::All ? validate(c) : Result<bool>(true); !v) {
      return Err{reader_located(file_name, ReaderPos{}, v.error())};
    }
    if (notes) {
      notes->insert(notes->end(), local.begin(), local.end());
    }
    return c;
  } catch (const ReaderFailure &f) {
    return Err{reader_error(file_name, f)};
  } catch (const std::exception &e) {
    return Err{reader_located(file_name, ReaderPos{},
                              std::string("cannot read ") + what + ": " + e.what())};
  }
}

// `s` in double quotes, for messages.
// Built by appending: GCC 12 warns falsely (-Wrestrict) on `"\"" + std::string(s)` once inlined.
inline std::string quote(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  out += '"';
  out += s;
  out += '"';
  return out;
}

// True when binding both addresses at once would fail or be ambiguous: same port and the same host,
// or one of them the wildcard of the other's family (0.0.0.0 covers every IPv4 address, :: every
// IPv6 address; listeners are bound IPV6_V6ONLY so 0.0.0.0 and :: do not overlap). Host names are
// compared as written.
bool listeners_overlap(const HostPort &a, const HostPort &b);

// The first pair (i, j), j < i, of `items` whose addresses overlap, in the order they were written
// (i as small as it can be, then j); nullopt when they can all be bound at once. `address(item)`
// gives an item's HostPort.
template <class T, class Address>
std::optional<std::pair<size_t, size_t>> first_overlap(const std::vector<T> &items,
                                                       Address address) {
  for (size_t i = 0; i < items.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (listeners_overlap(address(items[i]), address(items[j]))) {
        return std::pair{i, j};
      }
    }
  }
  return std::nullopt;
}

// Indexes of entries of `list` that another entry, a wildcard on the same port, already covers
// (nginx and HAProxy accept "listen 8081; listen 127.0.0.1:8081"; only one socket can be bound).
std::vector<size_t> covered_by_wildcard(const std::vector<HostPort> &list);

// nginx.conf and haproxy.cfg say nothing of kube-api-lb's admin server. A drop-in binds exactly the
// ports its file names, as the nginx or HAProxy it replaces did: the default admin listener
// (127.0.0.1:8081) is dropped, so that it can neither clash with the file's own listeners nor with
// whatever else holds 8081 on a node whose health port was moved. The file's health port serves
// /readyz, /metrics and /stats to loopback peers instead. A note says which.
void drop_default_admin_for_dropin(Config &c, std::vector<std::string> *notes,
                                   const std::string &file_name);

// The closest of `known` to `word` if it is close enough to be a likely typo (same letters ignoring
// case, '-' and '_', or a small edit distance), for "did you mean" hints.
std::optional<std::string> closest_name(std::string_view word,
                                        const std::vector<std::string> &known);

} // namespace kal
