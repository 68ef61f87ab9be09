#include "kube_api_lb/core/upstream_set.h"

#include <doctest/doctest.h>

#include <chrono>
#include <map>
#include <sstream>
#include <string>
#include <vector>

using kal::HostPort;
using kal::Upstream;
using kal::UpstreamSet;
using std::chrono::milliseconds;

namespace {

// Endpoints by letter, so that a row fits on a line. An object is shown as its letter and the
// number the set's factory gave it ("C3": endpoint C, third Upstream made): a row that expects
// "A1" after a reload says the very object of the first apply() was kept, with its connections,
// counters and health.
const std::map<char, const char *> kEndpoints = {
    {'A', "10.0.0.1:6443"},   {'B', "10.0.0.2:6443"},    {'C', "10.0.0.3:6443"},
    {'D', "[fd00::1]:6443"},  {'N', "cp1.example:6443"}, // a host name
    {'P', "cp1.example:443"}, // the same name on another port: another endpoint
};

enum class Op { Apply, Expire };
constexpr auto APPLY = Op::Apply;
constexpr auto EXPIRE = Op::Expire;
constexpr int NONE = -1;

struct Step {
  Op op;
  int at_ms;             // now, from an arbitrary origin
  const char *endpoints; // apply(): the new configuration's list, by letter
  int drain_ms;          // apply(): drain_timeout
  // Expected, objects as "<letter><number>" separated by spaces.
  const char *kept;     // apply()
  const char *added;    // apply()
  const char *restored; // apply()
  const char *gone;     // apply(): removed (now draining); expire(): the drains that ended
  const char *active;
  const char *draining;
  const char *retired;
  int next_deadline_ms; // NONE: nothing drains
};

struct Row {
  const char *name;
  std::vector<Step> steps;
};

using TP = UpstreamSet::TimePoint;
TP at(int ms) { return TP(milliseconds(ms)); }

class Harness {
public:
  Harness()
      : set_([this](const HostPort &hp) {
          auto up = std::make_shared<Upstream>(hp);
          ids_[up.get()] = ++made_;
          return up;
        }) {}

  std::string show(const UpstreamSet::List &l) const {
    std::string s;
    for (const auto &u : l) {
      s += s.empty() ? "" : " ";
      s += letter_of(u->address());
      s += std::to_string(ids_.at(u.get()));
    }
    return s;
  }

  void run(const Step &s) {
    if (s.op == Op::Apply) {
      std::vector<HostPort> eps;
      for (const char *c = s.endpoints; *c; ++c) {
        eps.push_back(*kal::parse_host_port(kEndpoints.at(*c)));
      }
      auto ch = set_.apply(eps, at(s.at_ms), milliseconds(s.drain_ms));
      CHECK(show(ch.kept) == s.kept);
      CHECK(show(ch.added) == s.added);
      CHECK(show(ch.restored) == s.restored);
      CHECK(show(ch.removed) == s.gone);
    } else {
      CHECK(show(set_.expire(at(s.at_ms))) == s.gone);
    }
    CHECK(show(*set_.active()) == s.active);
    CHECK(show(set_.draining()) == s.draining);
    CHECK(show(set_.retired()) == s.retired);
    auto next = set_.next_deadline();
    CHECK((next ? static_cast<int>(next->time_since_epoch() / milliseconds(1)) : NONE) ==
          s.next_deadline_ms);
    // Invariants: the workers skip exactly the draining endpoints; /metrics shows active then
    // draining; totals count those and the retired ones.
    for (const auto &u : *set_.active()) {
      CHECK_FALSE(u->removed());
    }
    for (const auto &u : set_.draining()) {
      CHECK(u->removed());
    }
    std::string visible = s.active;
    visible += *s.active && *s.draining ? " " : "";
    visible += s.draining;
    CHECK(show(set_.visible()) == visible);
    CHECK(set_.counted().size() ==
          set_.active()->size() + set_.draining().size() + set_.retired().size());
  }

  UpstreamSet &set() { return set_; }

private:
  static char letter_of(const HostPort &hp) {
    for (const auto &[letter, text] : kEndpoints) {
      if (*kal::parse_host_port(text) == hp) {
        return letter;
      }
    }
    return '?';
  }

  int made_ = 0;
  std::map<const Upstream *, int> ids_;
  UpstreamSet set_;
};

// clang-format off
const std::vector<Row> kTable = {
  {"unchanged: every object kept, nothing drains", {
    //  op     at    eps    drain  kept        added       restored gone  active      draining retired next
    {APPLY,    0,    "ABC", 30000, "",         "A1 B2 C3", "",      "",   "A1 B2 C3", "",      "",     NONE},
    {APPLY, 1000,    "ABC", 30000, "A1 B2 C3", "",         "",      "",   "A1 B2 C3", "",      "",     NONE},
  }},
  {"added: a new object, the others kept", {
    {APPLY,    0,    "AB",  30000, "",         "A1 B2",    "",      "",   "A1 B2",    "",      "",     NONE},
    {APPLY, 1000,    "ABC", 30000, "A1 B2",    "C3",       "",      "",   "A1 B2 C3", "",      "",     NONE},
  }},
  {"removed: drains until now + drain_timeout, then retires", {
    {APPLY,    0,    "ABC", 30000, "",         "A1 B2 C3", "",      "",   "A1 B2 C3", "",      "",     NONE},
    {APPLY,  1000,   "AB",  30000, "A1 B2",    "",         "",      "C3", "A1 B2",    "C3",    "",     31000},
    {EXPIRE, 30999,  "",    0,     "",         "",         "",      "",   "A1 B2",    "C3",    "",     31000},
    {EXPIRE, 31000,  "",    0,     "",         "",         "",      "C3", "A1 B2",    "",      "C3",   NONE},
  }},
  {"re-added while draining: the same object, its deadline dropped", {
    {APPLY,    0,    "ABC", 30000, "",         "A1 B2 C3", "",      "",   "A1 B2 C3", "",      "",     NONE},
    {APPLY,  1000,   "AB",  30000, "A1 B2",    "",         "",      "C3", "A1 B2",    "C3",    "",     31000},
    {APPLY,  2000,   "ABC", 30000, "A1 B2",    "",         "C3",    "",   "A1 B2 C3", "",      "",     NONE},
    {EXPIRE, 31000,  "",    0,     "",         "",         "",      "",   "A1 B2 C3", "",      "",     NONE},
  }},
  {"re-added after its drain ended: a fresh object, the old one stays retired", {
    {APPLY,    0,    "AB",  1000,  "",         "A1 B2",    "",      "",   "A1 B2",    "",      "",     NONE},
    {APPLY,    0,    "A",   1000,  "A1",       "",         "",      "B2", "A1",       "B2",    "",     1000},
    {EXPIRE, 1000,   "",    0,     "",         "",         "",      "B2", "A1",       "",      "B2",   NONE},
    {APPLY,  2000,   "AB",  1000,  "A1",       "B3",       "",      "",   "A1 B3",    "",      "B2",   NONE},
  }},
  {"reordered: the new order, the same objects", {
    {APPLY,    0,    "ABC", 30000, "",         "A1 B2 C3", "",      "",   "A1 B2 C3", "",      "",     NONE},
    {APPLY, 1000,    "CAB", 30000, "C3 A1 B2", "",         "",      "",   "C3 A1 B2", "",      "",     NONE},
  }},
  {"host-name endpoints: the name and port are the endpoint, never what it resolves to", {
    {APPLY,    0,    "AN",  30000, "",         "A1 N2",    "",      "",   "A1 N2",    "",      "",     NONE},
    {APPLY, 1000,    "ANP", 30000, "A1 N2",    "P3",       "",      "",   "A1 N2 P3", "",      "",     NONE},
    {APPLY, 2000,    "DP",  30000, "P3",       "D4",       "",      "A1 N2", "D4 P3", "A1 N2", "",     32000},
    {APPLY, 3000,    "DPN", 30000, "D4 P3",    "",         "N2",    "",   "D4 P3 N2", "A1",    "",     32000},
  }},
  {"duplicate: counts once, at its first place", {
    {APPLY,    0,    "ABA", 30000, "",         "A1 B2",    "",      "",   "A1 B2",    "",      "",     NONE},
    {APPLY, 1000,    "AA",  30000, "A1",       "",         "",      "B2", "A1",       "B2",    "",     31000},
  }},
  {"drain deadline reached: each drain keeps its own deadline", {
    {APPLY,    0,    "ABC", 5000,  "",         "A1 B2 C3", "",      "",   "A1 B2 C3", "",      "",     NONE},
    {APPLY, 1000,    "AB",  5000,  "A1 B2",    "",         "",      "C3", "A1 B2",    "C3",    "",     6000},
    // A later reload with a shorter timeout neither postpones nor advances C's drain.
    {APPLY, 2000,    "A",   1000,  "A1",       "",         "",      "B2", "A1",       "C3 B2", "",     3000},
    {EXPIRE, 2999,   "",    0,     "",         "",         "",      "",   "A1",       "C3 B2", "",     3000},
    {EXPIRE, 3000,   "",    0,     "",         "",         "",      "B2", "A1",       "C3",    "B2",   6000},
    {EXPIRE, 9000,   "",    0,     "",         "",         "",      "C3", "A1",       "",      "B2 C3", NONE},
  }},
  {"negative or zero drain timeout: due at once", {
    {APPLY,    0,    "AB",  -5,    "",         "A1 B2",    "",      "",   "A1 B2",    "",      "",     NONE},
    {APPLY,  700,    "A",   -5,    "A1",       "",         "",      "B2", "A1",       "B2",    "",     700},
    {EXPIRE, 700,    "",    0,     "",         "",         "",      "B2", "A1",       "",      "B2",   NONE},
    {APPLY,  800,    "",    0,     "",         "",         "",      "A1", "",         "A1",    "B2",   800},
  }},
};
// clang-format on

} // namespace

TEST_CASE("upstream set: the reload diff and drains, by table") {
  for (const auto &row : kTable) {
    CAPTURE(row.name);
    Harness h;
    int i = 0;
    for (const auto &step : row.steps) {
      CAPTURE(i);
      h.run(step);
      ++i;
    }
  }
}

TEST_CASE("upstream set: retired bound keeps the newest kRetiredMax") {
  // Endpoint B is removed and its drain ends kRetiredMax + 6 times, each time a fresh object
  // (B2, B3, ...): the retired list holds the newest 64 of them, oldest first.
  const int cycles = static_cast<int>(UpstreamSet::kRetiredMax) + 6;
  Harness h;
  h.run({APPLY, 0, "A", 0, "", "A1", "", "", "A1", "", "", NONE});
  std::string retired;
  for (int n = 0; n < cycles; ++n) {
    CAPTURE(n);
    const int t = 10 * (n + 1);
    const std::string b = "B" + std::to_string(n + 2);
    const std::string before = retired;
    retired += (retired.empty() ? "" : " ") + b;
    if (n >= static_cast<int>(UpstreamSet::kRetiredMax)) {
      retired.erase(0, retired.find(' ') + 1); // the oldest is forgotten
    }
    h.run({APPLY, t, "AB", 100, "A1", b.c_str(), "", "", ("A1 " + b).c_str(), "", before.c_str(),
           NONE});
    h.run({APPLY, t, "A", 0, "A1", "", "", b.c_str(), "A1", b.c_str(), before.c_str(), t});
    h.run({EXPIRE, t, "", 0, "", "", "", b.c_str(), "A1", "", retired.c_str(), NONE});
  }
  CHECK(h.set().retired().size() == UpstreamSet::kRetiredMax);
  CHECK(h.show({h.set().retired().front()}) == "B8");
}

TEST_CASE("upstream set: a kept object keeps its state; the snapshot handed out never changes") {
  Harness h;
  h.run({APPLY, 0, "AN", 0, "", "A1 N2", "", "", "A1 N2", "", "", NONE});
  auto first = h.set().active();
  auto n = first->at(1);
  sockaddr_storage ss{};
  ss.ss_family = AF_INET;
  n->set_addrs({ss}); // resolved by the shell
  n->set_health(kal::Health::Up);
  n->counters.total = 7;
  h.run({APPLY, 1000, "NB", 0, "N2", "B3", "", "A1", "N2 B3", "A1", "", 1000});
  CHECK(h.set().active()->front() == n);
  CHECK(n->addrs().size() == 1);
  CHECK(n->health() == kal::Health::Up);
  CHECK(n->counters.total == 7);
  CHECK(h.show(*first) == "A1 N2"); // workers still holding the old snapshot see it unchanged
}
