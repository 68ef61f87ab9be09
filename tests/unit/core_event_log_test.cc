// Table for core/event_log: bounded, newest first, long texts cut on a character boundary.
#include "kube_api_lb/core/event_log.h"

#include <doctest/doctest.h>

#include <string>

using namespace kal;

TEST_CASE("event log: newest first, bounded, `max` respected") {
  struct Row {
    size_t capacity;
    int events; // events with unix_ms 1..events
    size_t max;
    std::vector<int64_t> want; // their unix_ms, newest first
  };
  const Row rows[] = {
      {3, 0, 10, {}},    {3, 2, 10, {2, 1}}, {3, 5, 10, {5, 4, 3}},
      {3, 5, 2, {5, 4}}, {50, 60, 1, {60}},
  };
  for (const auto &r : rows) {
    CAPTURE(r.events);
    EventLog log(r.capacity);
    for (int i = 1; i <= r.events; i++) {
      log.add(Event{i, EventKind::Transition, "127.0.0.1:6443", "up -> down (L4CON)"});
    }
    std::vector<int64_t> got;
    for (const auto &e : log.newest_first(r.max)) {
      got.push_back(e.unix_ms);
    }
    CHECK(got == r.want);
    CHECK(log.total() == static_cast<uint64_t>(r.events));
  }
}

TEST_CASE("event log: a long text is cut to kMaxText bytes without splitting a character") {
  struct Row {
    std::string text;
    size_t want_size;
    bool cut;
  };
  const std::string euro = "\xE2\x82\xAC"; // 3 bytes
  std::string euros;
  for (int i = 0; i < 200; i++) {
    euros += euro;
  }
  const Row rows[] = {
      {"short", 5, false},
      {std::string(EventLog::kMaxText, 'x'), EventLog::kMaxText, false},
      {std::string(EventLog::kMaxText + 1, 'x'), EventLog::kMaxText, true},
      // 297 bytes would end inside the 100th euro sign: cut back to 99 whole ones (297) + "...".
      {euros, 99 * 3 + 3, true},
  };
  for (const auto &r : rows) {
    EventLog log;
    log.add(Event{1, EventKind::ReloadFailed, "SIGHUP", r.text});
    const std::string got = log.newest_first(1).at(0).text;
    CAPTURE(r.text.size());
    CHECK(got.size() == r.want_size);
    CHECK((got.size() >= 3 && got.substr(got.size() - 3) == "...") == r.cut);
  }
}

TEST_CASE("event kinds have names") {
  CHECK(std::string(to_string(EventKind::ReloadFailed)) == "reload-failed");
  CHECK(std::string(to_string(EventKind::Transition)) == "transition");
  CHECK(std::string(to_string(EventKind::Close)) == "close");
}
