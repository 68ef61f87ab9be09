#include "kube_api_lb/core/picker.h"

#include <doctest/doctest.h>

#include <map>
#include <vector>

using namespace kal;

namespace {
std::vector<Candidate> three(Health a = Health::Up, Health b = Health::Up, Health c = Health::Up) {
  return {Candidate{a}, Candidate{b}, Candidate{c}};
}
} // namespace

TEST_CASE("round-robin cycles through the healthy tier") {
  Picker p(Policy::RoundRobin);
  auto c = three();
  std::map<size_t, int> hits;
  for (int i = 0; i < 300; ++i) {
    hits[*p.pick(c)]++;
  }
  CHECK(hits[0] == 100);
  CHECK(hits[1] == 100);
  CHECK(hits[2] == 100);
}

TEST_CASE("round-robin rotates over the whole process when workers share the cursor") {
  std::atomic<uint64_t> cursor{0};
  Picker a(Policy::RoundRobin, 1);
  Picker b(Policy::RoundRobin, 2);
  a.share_cursor(&cursor);
  b.share_cursor(&cursor);
  auto c = three();
  // Connections landing on the two loops in an uneven pattern still rotate 0, 1, 2, 0, ...
  std::vector<size_t> seq;
  for (int i = 0; i < 9; ++i) {
    seq.push_back(*((i % 3 == 1) ? b : a).pick(c));
  }
  CHECK(seq == std::vector<size_t>{0, 1, 2, 0, 1, 2, 0, 1, 2});
  // Unshared pickers keep their own rotation.
  Picker d(Policy::RoundRobin);
  CHECK(*d.pick(c) == 0);
}

TEST_CASE("healthy endpoints before unknown before down; down still tried when alone (fail open)") {
  for (auto pol : {Policy::LeastConn, Policy::RoundRobin, Policy::RandomTwo, Policy::First}) {
    Picker p(pol);
    auto c = three(Health::Down, Health::Unknown, Health::Up);
    for (int i = 0; i < 20; ++i) {
      CHECK(*p.pick(c) == 2);
    }
    c[2].excluded = true;
    CHECK(*p.pick(c) == 1);
    c[1].excluded = true;
    CHECK(*p.pick(c) == 0);
    c[0].excluded = true;
    CHECK_FALSE(p.pick(c).has_value());
  }
}

TEST_CASE("first keeps the configured order") {
  Picker p(Policy::First);
  auto c = three();
  CHECK(*p.pick(c) == 0);
  CHECK(*p.pick(c) == 0);
  c[0].health = Health::Down;
  CHECK(*p.pick(c) == 1);
}

TEST_CASE("least-conn picks the least loaded and spreads ties") {
  Picker p(Policy::LeastConn);
  auto c = three();
  c[0].active = 5;
  c[1].active = 2;
  c[2].active = 9;
  CHECK(*p.pick(c) == 1);
  c[0].active = c[1].active = c[2].active = 0;
  std::map<size_t, int> hits;
  for (int i = 0; i < 30; ++i) {
    hits[*p.pick(c)]++;
  }
  CHECK(hits[0] == 10);
  CHECK(hits[1] == 10);
  CHECK(hits[2] == 10);
}

TEST_CASE("least-conn honours slow-start weight") {
  Picker p(Policy::LeastConn);
  auto c = three();
  c[0].active = 4;
  c[1].active = 4;
  c[2].active = 1;
  c[2].weight = 0.1; // ramping: (1+1)/0.1 = 20 > (4+1)/1
  CHECK(*p.pick(c) != 2);
}

TEST_CASE("random-two prefers the less loaded of two and is deterministic for a seed") {
  Picker a(Policy::RandomTwo, 42), b(Policy::RandomTwo, 42);
  auto c = three();
  c[0].active = 100;
  std::map<size_t, int> hits;
  for (int i = 0; i < 600; ++i) {
    auto x = *a.pick(c);
    CHECK(x == *b.pick(c));
    hits[x]++;
  }
  // Endpoint 0 only wins when both draws land on it, which random-two forbids.
  CHECK(hits[0] == 0);
  CHECK(hits[1] > 200);
  CHECK(hits[2] > 200);
}

TEST_CASE("withdrawn by discovery: after Up and Unknown, before Down; never closed, still a "
          "last resort") {
  struct Row {
    const char *name;
    std::vector<Candidate> cands;
    size_t want; // with Policy::First over the best tier
  };
  auto c = [](Health h, bool w) {
    Candidate x{h};
    x.withdrawn = w;
    return x;
  };
  const Row rows[] = {
      {"an Up endpoint that left the slice gives way to another Up",
       {c(Health::Up, true), c(Health::Up, false)},
       1},
      {"and to an Unknown one (a newcomer not checked yet)",
       {c(Health::Up, true), c(Health::Unknown, false)},
       1},
      {"but goes before a Down one", {c(Health::Down, false), c(Health::Up, true)}, 1},
      {"the only apiserver left, withdrawn while it shuts down, still serves",
       {c(Health::Up, true)},
       0},
      {"withdrawn and Down is Down", {c(Health::Down, true), c(Health::Down, false)}, 0},
  };
  for (const auto &r : rows) {
    CAPTURE(r.name);
    Picker p(Policy::First);
    CHECK(p.pick(r.cands) == r.want);
  }
}
