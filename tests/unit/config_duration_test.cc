#include "kube_api_lb/config/duration.h"

#include <doctest/doctest.h>

using kal::Millis;

TEST_CASE("parse_duration accepts Kubernetes-style durations") {
  struct Case {
    const char *text;
    int64_t ms;
  };
  const Case cases[] = {
      {"0", 0},
      {"0s", 0},
      {"0ms", 0},
      {"1ms", 1},
      {"500ms", 500},
      {"1s", 1000},
      {"2s", 2000},
      {"1.5s", 1500},
      {"0.25s", 250},
      {"1m", 60000},
      {"1m30s", 90000},
      {"1h", 3600000},
      {"1h0m0s", 3600000},
      {"2h3m4.5s", 7384500},
      {"1500us", 2},
      {"1500000ns", 2},
      {"999us", 1},
      {"+3s", 3000},
      {"1s500ms", 1500},
      {".5s", 500},
      {"8760h", int64_t{8760} * 3600000},
      {"1\xC2\xB5s", -1},
  };
  for (const auto &c : cases) {
    CAPTURE(c.text);
    auto r = kal::parse_duration(c.text);
    if (c.ms < 0) {
      CHECK_FALSE(r.ok());
      continue;
    }
    REQUIRE_MESSAGE(r.ok(), r.error());
    CHECK(r->count() == c.ms);
  }
}

TEST_CASE("parse_duration rejects bad durations with a precise message") {
  struct Case {
    const char *text;
    const char *error;
  };
  const Case cases[] = {
      {"", "empty duration (expected e.g. 500ms, 2s, 1m30s)"},
      {"-1s", "duration \"-1s\" must not be negative"},
      {"5", "duration \"5\" is missing a unit (write e.g. 5s or 5ms)"},
      {"1m30", "duration \"1m30\" is missing a unit (write e.g. 30s or 30ms)"},
      {"5sec", "duration \"5sec\" has unknown unit \"sec\" (use ms, s, m or h)"},
      {"1d", "duration \"1d\" has unknown unit \"d\" (use ms, s, m or h)"},
      {"abc", "duration \"abc\" is not a duration (expected e.g. 500ms, 2s, 1m30s)"},
      {"s", "duration \"s\" is not a duration (expected e.g. 500ms, 2s, 1m30s)"},
      {"+", "duration \"+\" is not a duration (expected e.g. 500ms, 2s, 1m30s)"},
      {"1.s.", "duration \"1.s.\" is not a duration (expected e.g. 500ms, 2s, 1m30s)"},
      {"100us", "duration \"100us\" is below the 1ms resolution (write 0 for none)"},
      {"8761h", "duration \"8761h\" is too large (maximum 8760h)"},
      {"99999999999999999999999s",
       "duration \"99999999999999999999999s\" is too large (maximum 8760h)"},
      {"1 s", "duration \"1 s\" has unknown unit \" s\" (use ms, s, m or h)"},
  };
  for (const auto &c : cases) {
    CAPTURE(c.text);
    auto r = kal::parse_duration(c.text);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error() == c.error);
  }
}

TEST_CASE("format_duration writes the shortest form and round-trips") {
  CHECK(kal::format_duration(Millis{0}) == "0s");
  CHECK(kal::format_duration(Millis{1}) == "1ms");
  CHECK(kal::format_duration(Millis{250}) == "250ms");
  CHECK(kal::format_duration(Millis{1000}) == "1s");
  CHECK(kal::format_duration(Millis{1500}) == "1.5s");
  CHECK(kal::format_duration(Millis{1050}) == "1.05s");
  CHECK(kal::format_duration(Millis{1001}) == "1.001s");
  CHECK(kal::format_duration(Millis{90000}) == "1m30s");
  CHECK(kal::format_duration(Millis{60000}) == "1m0s");
  CHECK(kal::format_duration(Millis{3600000}) == "1h0m0s");
  CHECK(kal::format_duration(Millis{7384500}) == "2h3m4.5s");
  CHECK(kal::format_duration(Millis{-1500}) == "-1.5s");
  for (int64_t ms : {0, 1, 7, 999, 1000, 1001, 59999, 60000, 61001, 3599999, 3600000, 86400123}) {
    CAPTURE(ms);
    auto r = kal::parse_duration(kal::format_duration(Millis{ms}));
    REQUIRE(r.ok());
    CHECK(r->count() == ms);
  }
}
