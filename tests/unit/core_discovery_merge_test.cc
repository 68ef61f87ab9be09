#include "kube_api_lb/core/discovery_merge.h"

#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <vector>

using namespace kal;
using std::chrono::milliseconds;

namespace {

// Endpoints by letter: S, T seed; A..F learned. "A-" in an observation: listed, not ready.
HostPort hp(char c) {
  return HostPort{"10.0.0." + std::to_string(c - 'A' + 1), 6443, HostPort::Kind::IPv4};
}
std::vector<HostPort> list(const std::string &s) {
  std::vector<HostPort> v;
  for (char c : s) {
    if (c != '-' && c != ' ') {
      v.push_back(hp(c));
    }
  }
  return v;
}
std::vector<DiscoveredEndpoint> slice(const std::string &s) {
  std::vector<DiscoveredEndpoint> v;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '-' || s[i] == ' ') {
      continue;
    }
    v.push_back({hp(s[i]), !(i + 1 < s.size() && s[i + 1] == '-')});
  }
  return v;
}
std::string letters(const std::vector<HostPort> &v) {
  std::string s;
  for (const auto &h : v) {
    s += static_cast<char>('A' + std::stoi(h.host.substr(h.host.rfind('.') + 1)) - 1);
  }
  return s;
}

using TP = DiscoveryMerge::TimePoint;
TP at(int ms) { return TP(milliseconds(ms)); }

enum class Op { Observe, Decide };
constexpr auto OBS = Op::Observe;
constexpr auto DEC = Op::Decide;
constexpr const char *ANY = "?";

struct Step {
  Op op;
  int at_ms;
  const char *arg;       // observe: the slice; decide: the usable (Up) endpoints
  const char *result;    // observe: pending/unchanged/empty/toomany; decide: "none" or
                         // "+added -removed" and " save"
  const char *endpoints; // the usable set after the step
  const char *withdrawn; // after the step
};

const char *name_of(DiscoveryMerge::Observed o) {
  switch (o) {
  case DiscoveryMerge::Observed::Pending:
    return "pending";
  case DiscoveryMerge::Observed::Unchanged:
    return "unchanged";
  case DiscoveryMerge::Observed::Empty:
    return "empty";
  case DiscoveryMerge::Observed::TooMany:
    return "toomany";
  }
  return "?";
}

std::string describe(const std::optional<DiscoveryMerge::Decision> &d) {
  if (!d) {
    return "none";
  }
  std::string s = "+" + letters(d->added) + " -" + letters(d->removed);
  if (d->save) {
    s += " save";
  }
  return s;
}

struct Row {
  const char *name;
  const char *seed;
  const char *saved;
  std::vector<Step> steps;
};

} // namespace

// Debounce 1 s, grace 10 s, recheck 1 s. Seed S T (the letters S=19, T=20 in 10.0.0.x).
TEST_CASE("discovery merge: seed, discovered and saved; debounce, grace, never empty") {
  const Row rows[] = {
      {"a fourth control plane joins after the debounce",
       "ST",
       "",
       {{OBS, 0, "STA", "pending", "ST", ""},
        {DEC, 999, "ST", "none", "ST", ""},
        {DEC, 1000, "ST", "+A - save", "STA", ""}}},
      {"an apiserver joining adds, removes and re-adds itself: nothing applied",
       "ST",
       "",
       {{OBS, 0, "ST", "pending", "ST", ""},
        {DEC, 1000, "ST", "+ - save", "ST", ""},
        {OBS, 2000, "STA", "pending", "ST", ""},
        {OBS, 2400, "ST", "unchanged", "ST", ""},
        {OBS, 2800, "STA", "pending", "ST", ""},
        {DEC, 3000, "ST", "none", "ST", ""},
        {DEC, 3800, "ST", "+A - save", "STA", ""}}},
      {"the list comes back empty: ignored, nothing dropped, nothing withdrawn",
       "S",
       "",
       {{OBS, 0, "SA", "pending", "S", ""},
        {DEC, 1000, "SA", "+A - save", "SA", ""},
        {OBS, 2000, "", "empty", "SA", ""},
        {OBS, 2100, "A-", "empty", "SA", ""},
        {DEC, 60000, "SA", "none", "SA", ""}}},
      {"an endpoint that leaves is withdrawn at once, removed after the grace period",
       "S",
       "",
       {{OBS, 0, "SAB", "pending", "S", ""},
        {DEC, 1000, "SAB", "+AB - save", "SAB", ""},
        {OBS, 2000, "SA", "pending", "SAB", "B"},
        {DEC, 3000, "SAB", "+ - save", "SAB", "B"},
        {DEC, 12999, "SAB", "none", "SAB", "B"},
        {DEC, 13000, "SAB", "+ -B", "SA", ""}}},
      {"not ready in the slice: withdrawn at once, back at once when ready again",
       "S",
       "",
       {{OBS, 0, "SAB", "pending", "S", ""},
        {DEC, 1000, "SAB", "+AB - save", "SAB", ""},
        {OBS, 2000, "SAB-", "pending", "SAB", "B"},
        {OBS, 2500, "SAB", "unchanged", "SAB", ""}}},
      {"a seed endpoint is never removed, but withdrawn when discovery listed it and it left",
       "ST",
       "",
       {{OBS, 0, "STA", "pending", "ST", ""},
        {DEC, 1000, "STA", "+A - save", "STA", ""},
        {OBS, 2000, "SA", "pending", "STA", "T"},
        {DEC, 3000, "SA", "+ - save", "STA", "T"},
        {DEC, 99000, "SA", "none", "STA", "T"}}},
      {"a seed that discovery never lists (a VIP, a name) is not withdrawn",
       "S",
       "",
       {{OBS, 0, "AB", "pending", "S", ""}, {DEC, 1000, "AB", "+AB - save", "SAB", ""}}},
      {"the last usable endpoint stays past its grace period, and goes once another is usable",
       "S",
       "",
       {{OBS, 0, "SA", "pending", "S", ""},
        {DEC, 1000, "A", "+A - save", "SA", ""},
        {OBS, 2000, "SB", "pending", "SA", "A"},
        {DEC, 3000, "A", "+B - save", "SAB", "A"},
        {DEC, 13000, "A", "none", "SAB", "A"},
        {DEC, 14000, "AB", "+ -A", "SB", ""}}},
      {"saved endpoints serve at once; confirmed ones become discovered without a save",
       "S",
       "AB",
       {{DEC, 0, "AB", "none", "SAB", ""},
        {OBS, 100, "AB", "unchanged", "SAB", ""},
        {DEC, 5000, "AB", "none", "SAB", ""},
        {OBS, 6000, "SAB", "pending", "SAB", ""},
        {DEC, 7000, "AB", "+ - save", "SAB", ""}}},
      {"a stale saved endpoint is withdrawn at the first list and leaves after the grace period",
       "S",
       "AB",
       {{OBS, 100, "SAC", "pending", "SAB", "B"},
        {DEC, 1100, "SAB", "+C - save", "SABC", "B"},
        {DEC, 11099, "SAC", "none", "SABC", "B"},
        {DEC, 11100, "SAC", "+ -B", "SAC", ""}}},
      {"every seed replaced one at a time by new addresses (the k3s/RKE2 sequence)",
       "STU",
       "",
       {{OBS, 0, "STU", "pending", "STU", ""},
        {DEC, 1000, "STU", "+ - save", "STU", ""},
        {OBS, 2000, "TUA", "pending", "STU", "S"},
        {DEC, 3000, "TUA", "+A - save", "STUA", "S"},
        {OBS, 4000, "UAB", "pending", "STUA", "ST"},
        {DEC, 5000, "UAB", "+B - save", "STUAB", "ST"},
        {OBS, 6000, "ABC", "pending", "STUAB", "STU"},
        {DEC, 7000, "ABC", "+C - save", "STUABC", "STU"}}},
  };
  for (const auto &r : rows) {
    const std::string row = r.name;
    CAPTURE(row);
    DiscoveryMergeSettings s;
    s.debounce = milliseconds(1000);
    s.grace = milliseconds(10000);
    s.recheck = milliseconds(1000);
    auto seed_of = [](const char *x) {
      std::vector<HostPort> v;
      for (const char *p = x; *p; ++p) {
        v.push_back(hp(*p));
      }
      return v;
    };
    DiscoveryMerge m(seed_of(r.seed), list(r.saved), s);
    int i = 0;
    for (const auto &st : r.steps) {
      CAPTURE(i++);
      std::string got;
      if (st.op == OBS) {
        got = name_of(m.observe(slice(st.arg), at(st.at_ms)));
      } else {
        got = describe(m.decide(at(st.at_ms), list(st.arg)));
      }
      if (std::string(st.result) != ANY) {
        CHECK(got == std::string(st.result));
      }
      CHECK(letters(m.endpoints()) == st.endpoints);
      CHECK(letters(m.withdrawn()) == st.withdrawn);
    }
  }
}

TEST_CASE("discovery merge: sources, next wake-up, too many, seed changes") {
  DiscoveryMergeSettings s;
  s.debounce = milliseconds(1000);
  s.grace = milliseconds(10000);
  DiscoveryMerge m({hp('S')}, {hp('A')}, s);
  CHECK(std::string(source_name(m.sources(hp('S')))) == "seed");
  CHECK(std::string(source_name(m.sources(hp('A')))) == "saved");
  CHECK(m.sources(hp('B')) == 0);
  CHECK(!m.next_wakeup(at(0)));
  CHECK(m.observe(slice("SB"), at(0)) == DiscoveryMerge::Observed::Pending);
  CHECK(m.next_wakeup(at(0)) == at(1000));
  m.decide(at(1000), {});
  CHECK(std::string(source_name(m.sources(hp('B')))) == "discovered");
  CHECK(std::string(source_name(m.sources(hp('A')))) == "saved"); // absent, kept, never confirmed
  CHECK(m.absent_since(hp('A')) == at(1000));
  CHECK(m.next_wakeup(at(1000)) == at(11000));
  // Past the grace period and kept (the last usable): looked at again every `recheck`.
  m.decide(at(11000), {hp('A')});
  CHECK(m.next_wakeup(at(11500)) == at(12500));
  // More than kMaxEndpoints with the seed: ignored.
  std::vector<DiscoveredEndpoint> many;
  for (int i = 0; i < 64; ++i) {
    many.push_back({HostPort{"10.1.0." + std::to_string(i), 6443, HostPort::Kind::IPv4}, true});
  }
  CHECK(m.observe(many, at(12000)) == DiscoveryMerge::Observed::TooMany);
  // A reload drops seed S and adds T: S stays as a discovered endpoint (discovery lists it).
  m.set_seed({hp('T')}, at(13000));
  CHECK(letters(m.endpoints()) == "TSAB");
  CHECK(std::string(source_name(m.sources(hp('S')))) == "discovered");
  auto d = m.decide(at(13000), {hp('B')});
  REQUIRE(d);
  CHECK(letters(d->removed) == "A"); // A's grace is over and B is usable
  CHECK(letters(m.endpoints()) == "TSB");
  // Dropping T, which discovery never listed, removes it at the next decide().
  m.set_seed({hp('S')}, at(14000));
  d = m.decide(at(14000), {hp('B')});
  REQUIRE(d);
  CHECK(letters(d->removed) == "T");
  CHECK(letters(m.endpoints()) == "SB");
}

TEST_CASE("discovery merge: a seed entry dropped while a list naming it waits out its debounce") {
  DiscoveryMergeSettings s{.debounce = milliseconds(300), .grace = milliseconds(1000)};
  // The first list names the seed S: pending (nothing applied yet) when a reload swaps S for T.
  DiscoveryMerge m({hp('S')}, {}, s);
  CHECK(m.observe(slice("S"), at(0)) == DiscoveryMerge::Observed::Pending);
  m.set_seed({hp('T')}, at(100));
  CHECK(letters(m.endpoints()) == "TS");
  CHECK(std::string(source_name(m.sources(hp('S')))) == "discovered");
  CHECK(!m.decide(at(150), {hp('S'), hp('T')})); // S stays: discovery listed it
  auto d = m.decide(at(300), {hp('S'), hp('T')});
  REQUIRE(d);
  CHECK(d->removed.empty());
  CHECK(letters(m.endpoints()) == "TS");
  CHECK(std::string(source_name(m.sources(hp('S')))) == "discovered");
  // Discovery drops S later: it leaves by the grace rule, like any discovered endpoint.
  CHECK(m.observe(slice("A"), at(400)) == DiscoveryMerge::Observed::Pending);
  CHECK(!m.decide(at(700), {hp('S'), hp('T')})->removed.size());
  d = m.decide(at(1700), {hp('S'), hp('T')});
  REQUIRE(d);
  CHECK(letters(d->removed) == "S");

  // The pending list naming the old seed entry is replaced by one equal to what is applied: the
  // old entry leaves by the grace rule instead of staying forever.
  DiscoveryMerge n({hp('S')}, {hp('A')}, s);
  CHECK(n.observe(slice("SA"), at(0)) == DiscoveryMerge::Observed::Pending);
  n.set_seed({hp('T')}, at(100));
  CHECK(n.observe(slice("A"), at(200)) == DiscoveryMerge::Observed::Unchanged);
  CHECK(n.absent_since(hp('S')) == at(200));
  d = n.decide(at(1200), {hp('A'), hp('T')});
  REQUIRE(d);
  CHECK(letters(d->removed) == "S");
  CHECK(letters(n.endpoints()) == "TA");
}

TEST_CASE("discovery backoff: doubles to the cap, jittered between half and all") {
  struct Row {
    int failures;
    double jitter;
    int want_ms;
  };
  const Row rows[] = {{1, 0.0, 250},   {1, 0.999999, 500}, {2, 0.0, 500},     {3, 1.0, 2000},
                      {7, 1.0, 30000}, {8, 0.0, 15000},    {100, 1.0, 30000}, {0, 1.0, 500}};
  for (const auto &r : rows) {
    CAPTURE(r.failures);
    CAPTURE(r.jitter);
    CHECK(discovery_backoff(r.failures, r.jitter).count() == r.want_ms);
  }
}
