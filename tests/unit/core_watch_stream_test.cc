#include "kube_api_lb/core/watch_stream.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using kal::WatchStreamFramer;

TEST_CASE("watch stream framing: whole events whatever the reads, bounded, garbage rejected") {
  struct Row {
    const char *name;
    std::vector<std::string> reads;
    size_t max;
    std::vector<std::string> want;
    bool error;
    const char *error_has;
    size_t partial; // bytes of an unfinished event at the end
  };
  const std::string ev1 = R"({"type":"ADDED","object":{"a":[1,2]}})";
  const std::string ev2 = R"({"type":"BOOKMARK","object":{"s":"x}y\"{"}})";
  const Row rows[] = {
      {"one event, newline framed", {ev1 + "\n"}, 1024, {ev1}, false, "", 0},
      {"two in one read, no newline between", {ev1 + ev2}, 1024, {ev1, ev2}, false, "", 0},
      {"split at every byte boundary is tested below", {ev2}, 1024, {ev2}, false, "", 0},
      {"braces inside strings and escaped quotes do not count",
       {ev2 + "\r\n"},
       1024,
       {ev2},
       false,
       "",
       0},
      {"cut mid-event: nothing handed out, the partial bytes known",
       {ev1.substr(0, 10)},
       1024,
       {},
       false,
       "",
       10},
      {"an event exactly at the limit passes", {ev1}, ev1.size(), {ev1}, false, "", 0},
      {"one byte over the limit is an error", {ev1}, ev1.size() - 1, {}, true, "larger than", 0},
      {"the limit holds across reads (no unbounded buffer)",
       {"{\"a\":\"" + std::string(600, 'x'), std::string(600, 'x')},
       1000,
       {},
       true,
       "larger than 1000",
       0},
      {"garbage between events",
       {ev1 + "\nHTTP/1.1 200 OK\r\n"},
       1024,
       {ev1},
       true,
       "unexpected byte 0x48",
       0},
      {"not a watch at all", {"[1,2,3]"}, 1024, {}, true, "0x5b", 0},
      {"after an error nothing more is taken", {"x", ev1}, 1024, {}, true, "0x78", 0},
  };
  for (const auto &r : rows) {
    CAPTURE(r.name);
    WatchStreamFramer f(r.max);
    std::vector<std::string> got;
    for (const auto &d : r.reads) {
      f.feed(d, got);
    }
    CHECK(got == r.want);
    CHECK((f.state() == WatchStreamFramer::State::Error) == r.error);
    CHECK(f.error().find(r.error_has) != std::string::npos);
    if (!r.error) {
      CHECK(f.partial_bytes() == r.partial);
    }
  }
}

TEST_CASE("watch stream framing: any split of a stream gives the same events") {
  const std::string stream = R"({"type":"ADDED","object":{"k":"{"}})"
                             "\n"
                             R"({"type":"MODIFIED","object":{"k":"\\\"}"}})"
                             "\n";
  WatchStreamFramer whole(4096);
  std::vector<std::string> want;
  whole.feed(stream, want);
  REQUIRE(want.size() == 2);
  for (size_t cut = 0; cut <= stream.size(); ++cut) {
    for (size_t cut2 = cut; cut2 <= stream.size(); cut2 += 7) {
      WatchStreamFramer f(4096);
      std::vector<std::string> got;
      f.feed(std::string_view(stream).substr(0, cut), got);
      f.feed(std::string_view(stream).substr(cut, cut2 - cut), got);
      f.feed(std::string_view(stream).substr(cut2), got);
      CAPTURE(cut);
      CAPTURE(cut2);
      CHECK(got == want);
    }
  }
}
