// HealthChecker against real local TLS servers (127.0.0.1, port 0): its sockets on a real libuv
// loop, its clock and timers on a ManualTimeSource. Time moves only when a test steps it, so no
// test waits for an interval, a timeout or a file-watch tick to pass: step_until() lets the
// sockets finish what they are doing (real I/O, in real time) and then jumps to the next timer.
// Durations a test measures (kill -> down, hang -> down) are in that manual time.
#include "health/checker.h"
#include "health_test_server.h"
#include "manual_time_source.h"
#include "tls_test_certs.h"
#include "uv_test_loop.h"
#include "uvx/sockaddr.h"
#include "uvx/uv_time_source.h"

#include <doctest/doctest.h>

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using kal::CheckResult;
using kal::Health;
using kal::HealthChecker;
using kal::HealthConfig;
using kal::HealthMode;
using kal::Upstream;
using kal::testing::Loop;
using kal::testing::ManualTimeSource;
using kal::testing::TestPki;
using kal::testing::TestTlsServer;

namespace {

std::shared_ptr<Upstream> upstream_for(uint16_t port) {
  auto up = std::make_shared<Upstream>(kal::HostPort{"127.0.0.1", port, kal::HostPort::Kind::IPv4});
  sockaddr_storage sa;
  REQUIRE(kal::uvx::literal_sockaddr(up->address(), sa));
  up->set_addrs({sa});
  return up;
}

// Fast settings so tests run in well under a second each.
HealthConfig fast_config(const TestPki &pki) {
  HealthConfig c;
  c.interval = 100ms;
  c.fast_interval = 30ms;
  c.down_interval = 50ms;
  c.timeout = 300ms;
  c.ca_file = pki.ca_crt();
  return c;
}

struct Event {
  Health old_h, new_h;
  CheckResult why;
};

// How long (real time) step_until() lets a running check wait on its socket before it moves the
// manual time on (towards that check's timeout). Only a check against a server that never answers
// (hang) waits this long; every other one ends as soon as its real I/O does.
constexpr auto kSettle = 250ms;
// The same when the test has made its server hang on purpose (it answers neither handshakes nor
// requests): just long enough for the connect to complete and the request to go out, so the
// timeout names the right phase. (A body that never ends is not such a hint: the check that meets
// it first needs a fresh connection and a handshake from the server, which take real time.)
constexpr auto kStalled = 100ms;
// How long the loop runs on after a check ended, for the peer's next move to arrive.
constexpr auto kQuiet = 2ms;

struct Fixture {
  TestPki pki;
  std::shared_ptr<kal::TlsContext> sctx;
  Loop loop;
  ManualTimeSource time;
  std::vector<HealthChecker *> checkers; // whose running checks step_until() waits for
  std::function<bool()> stalled = [] { return false; }; // the server hangs on purpose
  std::vector<Event> events;

  Fixture() {
    auto s = kal::TlsContext::server(pki.server_crt(), pki.server_key());
    REQUIRE(s.ok());
    sctx = *s;
    time.set_read_step(1us); // a check's duration is never 0, as on a real clock
  }
  HealthChecker::TransitionFn recorder() {
    return [this](Upstream &, Health o, Health n, CheckResult why) {
      events.push_back({o, n, why});
    };
  }
  HealthChecker &watch(HealthChecker &hc) {
    checkers.push_back(&hc);
    return hc;
  }
  bool busy() const {
    for (const HealthChecker *c : checkers) {
      if (c->in_flight() > 0) {
        return true;
      }
    }
    return false;
  }
  // Runs the loop (real I/O) and fires due timers until no check is running and the sockets are
  // quiet: after a check ends the loop runs kQuiet longer, so that what the peer does right after
  // answering (closing the connection) is seen before time moves on, as it would be in real time.
  // A check still running after kSettle is left to its timeout.
  void settle() {
    const auto give_up = std::chrono::steady_clock::now() + (stalled() ? kStalled : kSettle);
    bool checked = false;
    for (int round = 0; round < 1000; round++) {
      uv_run(&loop.loop, UV_RUN_NOWAIT);
      time.fire_due();
      if (busy()) {
        checked = true;
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            give_up - std::chrono::steady_clock::now());
        if (left <= 0ms || !loop.run_until(
                               [&] {
                                 time.fire_due();
                                 return !busy();
                               },
                               left)) {
          return;
        }
        continue;
      }
      if (!checked) {
        return;
      }
      checked = false;
      loop.run_for(kQuiet);
    }
  }
  // Until `pred` holds: settle, then move the manual time to the next timer's deadline. False when
  // `limit` of manual time passed first.
  bool step_until(const std::function<bool()> &pred, std::chrono::milliseconds limit) {
    const kal::TimePoint end = time.now() + limit;
    for (int round = 0; round < 100000; round++) {
      settle();
      if (pred()) {
        return true;
      }
      const kal::TimePoint now = time.now();
      if (now >= end) {
        // The manual time is up. What the test waits for may still be on its way through a real
        // socket or a server thread (a connection the server has yet to accept): give it the
        // real time that takes, without moving the manual time.
        return loop.run_until(
            [&] {
              time.fire_due();
              return pred();
            },
            kSettle);
      }
      const auto next = time.next_due();
      const kal::TimePoint to = next && *next < end ? std::max(*next, now) : end;
      time.advance(to - now);
    }
    return false;
  }
  void step_for(std::chrono::milliseconds d) {
    const kal::TimePoint end = time.now() + d;
    for (int round = 0; round < 100000 && time.now() < end; round++) {
      settle();
      const auto next = time.next_due();
      const kal::TimePoint now = time.now();
      time.advance((next && *next < end ? std::max(*next, now) : end) - now);
    }
    settle();
  }
};

// One endpoint on a local TLS server and a checker for it. A test changes `srv` and `cfg` first if
// it needs to; build() makes the checker, start() also gives it the endpoint, and start_up() also
// waits for the first verdict to be Up. Members go in reverse: checker, config, endpoint, server,
// then the loop.
struct Checked : Fixture {
  TestTlsServer srv{sctx};
  std::shared_ptr<Upstream> up = upstream_for(srv.port());
  HealthConfig cfg = fast_config(pki);
  // A second endpoint that stays ready (with_ready_peer()): a dead verdict closes connections only
  // while another endpoint is ready (core/verdict.h), so tests of the close path need one. Its
  // transitions are not recorded in `events`.
  std::optional<TestTlsServer> peer_srv;
  std::shared_ptr<Upstream> peer;
  std::optional<HealthChecker> hc;

  Checked &with_ready_peer() {
    peer_srv.emplace(sctx);
    peer = upstream_for(peer_srv->port());
    return *this;
  }

  Checked() {
    stalled = [this] { return srv.hang.load(); };
  }
  HealthChecker &build() {
    auto record = recorder();
    hc.emplace(&loop.loop, time, cfg,
               [this, record](Upstream &u, Health o, Health n, CheckResult w) {
                 if (&u != peer.get()) {
                   record(u, o, n, w);
                 }
               });
    return watch(*hc);
  }
  HealthChecker &start() {
    if (!hc) {
      build();
    }
    if (peer) {
      hc->set_upstreams({up, peer});
    } else {
      hc->set_upstreams({up});
    }
    return *hc;
  }
  HealthChecker &start_up() {
    start();
    REQUIRE(step_until(
        [&] { return up->health() == Health::Up && (!peer || peer->health() == Health::Up); }, 2s));
    return *hc;
  }
};

std::string slurp(const std::string &path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Puts a copy of `from` at `to` the way cert-manager and kubeadm do: written beside it, then
// renamed over it (a new inode; the old one stays intact for whoever still has it open).
void replace_by_rename(const std::string &from, const std::string &to) {
  const std::string tmp = to + ".tmp";
  std::filesystem::copy_file(from, tmp, std::filesystem::copy_options::overwrite_existing);
  std::filesystem::rename(tmp, to);
}

size_t count_of(const std::string &text, const std::string &what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) {
    n++;
  }
  return n;
}

// Sends what the process writes to stderr (the log) to a file while it lives.
class StderrCapture {
public:
  explicit StderrCapture(std::string path) : path_(std::move(path)) {
    std::fflush(stderr);
    const int fd = open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    REQUIRE(fd >= 0);
    saved_ = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    close(fd);
  }
  ~StderrCapture() {
    dup2(saved_, STDERR_FILENO);
    close(saved_);
  }
  StderrCapture(const StderrCapture &) = delete;
  StderrCapture &operator=(const StderrCapture &) = delete;
  std::string text() const { return slurp(path_); }

private:
  std::string path_;
  int saved_ = -1;
};

} // namespace

TEST_CASE("checker: up on 200, and N checks over one kept-alive TLS connection") {
  Checked f;
  HealthChecker &hc = f.build();
  CHECK(hc.tls_error().empty());
  f.start();
  const auto t0 = f.time.now();
  REQUIRE(f.step_until([&] { return f.up->health() == Health::Up; }, 2s));
  CHECK(f.time.now() - t0 < 500ms); // a fresh proxy knows within one check
  REQUIRE(f.events.size() == 1);
  CHECK(f.events[0].old_h == Health::Unknown);
  CHECK(f.events[0].new_h == Health::Up);
  CHECK(f.up->up_since_ms() == 0); // slow start never applies to the first up (HAProxy's rule)

  REQUIRE(f.step_until([&] { return f.up->health_counters.checks >= 10; }, 3s));
  CHECK(f.up->health() == Health::Up);
  CHECK(f.srv.connections == 1);
  CHECK(f.srv.handshakes == 1);
  CHECK(f.srv.requests >= 10);
  CHECK(f.up->health_counters.handshakes == 1);
  CHECK(f.up->health_counters.handshakes_last_minute == 1);
  CHECK(f.up->health_counters.resumed_handshakes == 0);
  CHECK(f.up->health_counters.last_result == static_cast<uint8_t>(CheckResult::Ok));
  CHECK(f.up->health_counters.last_check_micros > 0);
  CHECK(f.up->kill_epoch() == 0);
  hc.stop();
}

TEST_CASE("checker: 500 is a soft down (kill epoch kept), 200 brings it back") {
  Checked f;
  HealthChecker &hc = f.start_up();
  f.srv.status = 500;
  REQUIRE(f.step_until([&] { return f.up->health() == Health::Down; }, 2s));
  CHECK(f.events.back().why == CheckResult::L7Sts);
  CHECK(f.up->kill_epoch() == 0); // draining apiservers keep their connections
  CHECK(f.up->health_counters.failures[static_cast<size_t>(CheckResult::L7Sts)] >= 2);
  CHECK(f.up->health_counters.transitions == 2);
  f.srv.status = 200;
  REQUIRE(f.step_until([&] { return f.up->health() == Health::Up; }, 2s));
  CHECK(f.srv.handshakes == 1); // non-200 answers keep the connection too
  hc.stop();
}

TEST_CASE("checker: a killed server goes down fast; refused connects are dead evidence, held "
          "while no other endpoint is ready") {
  Checked f;
  f.cfg.interval = 1000ms; // the default: the closed connection, not the interval, must drive it
  f.cfg.fast_interval = 250ms;
  HealthChecker &hc = f.start_up();
  f.step_for(50ms);
  const auto killed = f.time.now();
  f.srv.stop(); // listener closed, connections closed: like kill -9
  REQUIRE(f.step_until([&] { return f.up->health() == Health::Down; }, 3s));
  const auto took = f.time.now() - killed;
  MESSAGE("kill -> down in " << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                             << " ms");
  CHECK(took < 700ms);
  CHECK(f.events.back().why == CheckResult::L4Con);
  REQUIRE(f.step_until([&] { return !f.up->health_counters.alive.load(); }, 2s));
  // Dead, but the only endpoint: clients would have nowhere else to go (none_ready).
  CHECK(f.up->kill_epoch() == 0);
  CHECK(f.up->counters.closes_prevented == 1);
  CHECK(f.up->health_counters.dead_by ==
        static_cast<uint8_t>(kal::Observation::ConnectRefused) + 1);
  CHECK(f.up->health_counters.failures[static_cast<size_t>(CheckResult::L4Con)] >= 2);
  hc.stop();
}

TEST_CASE("checker: defaults take a server that accepts but never answers down within 2 s") {
  Checked f;
  f.with_ready_peer();
  f.cfg = HealthConfig{}; // shipped defaults
  f.cfg.ca_file = f.pki.ca_crt();
  f.cfg.http2 = false; // the test server speaks HTTP/1.1 only: no ALPN
  HealthChecker &hc = f.start_up();
  // Hang right after a check answered: the worst phase.
  const int before = f.srv.requests;
  REQUIRE(f.step_until([&] { return f.srv.requests > before; }, 2s));
  f.step_for(5ms);
  f.srv.hang = true;
  const auto hung = f.time.now();
  REQUIRE(f.step_until([&] { return f.up->health() == Health::Down; }, 4s));
  const auto took = f.time.now() - hung;
  MESSAGE("hang -> down in " << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                             << " ms");
  CHECK(took < 2000ms);
  CHECK(kal::is_hard_failure(f.events.back().why));
  CHECK(f.up->kill_epoch() == 1);
  CHECK(f.up->health_counters.failures[static_cast<size_t>(CheckResult::L7Tout)] >= 1);
  f.srv.hang = false;
  hc.stop();
}

TEST_CASE("checker: 401 keeps the endpoint in service and flags the misconfiguration") {
  Checked f;
  f.srv.status = 401;
  HealthChecker &hc = f.start();
  REQUIRE(f.step_until([&] { return f.up->health_counters.checks >= 5; }, 3s));
  CHECK(f.up->health() != Health::Down);
  CHECK(f.up->health_counters.auth_misconfigured);
  CHECK(f.up->kill_epoch() == 0);
  CHECK(f.up->health_counters.failures[static_cast<size_t>(CheckResult::L7Auth)] >= 5);
  f.srv.status = 200;
  REQUIRE(f.step_until([&] { return !f.up->health_counters.auth_misconfigured; }, 2s));
  hc.stop();
}

TEST_CASE("checker: a broken connection is re-established with TLS session resumption") {
  Checked f;
  HealthChecker &hc = f.start();
  REQUIRE(f.step_until([&] { return f.up->health_counters.checks >= 3; }, 2s));
  for (int i = 0; i < 3; i++) {
    const int conns = f.srv.connections;
    f.srv.drop_connections();
    REQUIRE(f.step_until([&] { return f.srv.connections > conns; }, 2s));
    f.step_for(50ms);
  }
  REQUIRE(f.step_until([&] { return f.srv.resumed >= 3; }, 2s));
  CHECK(f.up->health_counters.handshakes == 4);
  CHECK(f.up->health_counters.resumed_handshakes == 3);
  CHECK(f.up->health() == Health::Up); // a server closing idle connections is not a failure
  CHECK(f.events.size() == 1);
  hc.stop();
}

TEST_CASE("checker: a kept-alive connection closed under the request is retried, not failed") {
  Checked f;
  HealthChecker &hc = f.start();
  REQUIRE(f.step_until([&] { return f.up->health_counters.checks >= 2; }, 2s));
  f.srv.close_next_requests = 1;
  const int requests = f.srv.requests;
  REQUIRE(f.step_until([&] { return f.srv.requests >= requests + 4; }, 2s));
  CHECK(f.srv.close_next_requests == 0);
  CHECK(f.srv.connections == 2);
  CHECK(f.up->health_counters.failures[static_cast<size_t>(CheckResult::L7Rsp)] == 0);
  CHECK(f.up->health() == Health::Up);
  CHECK(f.up->health_counters.resumed_handshakes == 1);

  // Twice in a row within one check is a real failure (L7RSP), counted once.
  f.srv.close_next_requests = 2;
  REQUIRE(f.step_until([&] { return f.srv.close_next_requests == 0; }, 2s));
  REQUIRE(f.step_until(
      [&] { return f.up->health_counters.failures[static_cast<size_t>(CheckResult::L7Rsp)] == 1; },
      2s));
  hc.stop();
}

TEST_CASE("checker: passive failures trigger an immediate re-check") {
  Checked f;
  f.cfg.interval = 5000ms; // without the poke, no check would run during the test
  HealthChecker &hc = f.start_up();
  const uint64_t checks = f.up->health_counters.checks;
  f.up->add_passive_failure();
  f.up->add_passive_failure();
  hc.poke();
  REQUIRE(f.step_until([&] { return f.up->health_counters.checks > checks; }, 1s));
  CHECK(f.up->health() == Health::Up); // passive evidence alone never takes it down
  CHECK(f.up->take_passive_failures() == 0);

  // Against a dead server, passive evidence + one failing re-check takes it down at once.
  f.srv.hang = true;
  const uint64_t c2 = f.up->health_counters.checks;
  f.step_for(1000ms); // passive evidence brings a check forward at most once a second
  f.up->add_passive_failure();
  hc.poke();
  const auto t0 = f.time.now();
  REQUIRE(f.step_until([&] { return f.up->health() == Health::Down; }, 2s));
  CHECK(f.up->health_counters.checks == c2 + 1);
  CHECK(f.time.now() - t0 < 600ms);
  f.srv.hang = false;
  hc.stop();
}

TEST_CASE("checker: unresolved endpoint is down with L4CON") {
  Fixture f;
  auto up =
      std::make_shared<Upstream>(kal::HostPort{"cp.invalid", 6443, kal::HostPort::Kind::Name});
  HealthChecker hc(&f.loop.loop, f.time, fast_config(f.pki), f.recorder());
  f.watch(hc);
  hc.set_upstreams({up});
  REQUIRE(f.step_until([&] { return up->health() == Health::Down; }, 2s));
  CHECK(f.events.back().why == CheckResult::L4Con);
  hc.stop();
}

TEST_CASE("checker: tcp and tls modes use fresh connections") {
  for (HealthMode mode : {HealthMode::Tcp, HealthMode::Tls}) {
    CAPTURE(kal::to_string(mode));
    Checked f;
    f.cfg.mode = mode;
    HealthChecker &hc = f.start();
    REQUIRE(f.step_until([&] { return f.up->health_counters.checks >= 3; }, 3s));
    CHECK(f.up->health() == Health::Up);
    CHECK(f.step_until([&] { return f.srv.connections >= 3; }, 1s));
    CHECK(f.srv.requests == 0);
    if (mode == HealthMode::Tls) {
      CHECK(f.up->health_counters.resumed_handshakes >= 1);
    } else {
      CHECK(f.up->health_counters.handshakes == 0);
    }
    f.srv.stop();
    REQUIRE(f.step_until([&] { return f.up->health() == Health::Down; }, 2s));
    CHECK(f.events.back().why == CheckResult::L4Con);
    CHECK(f.up->kill_epoch() == 0); // refused is dead evidence, but no other endpoint is ready
    hc.stop();
  }
}

TEST_CASE("checker: wrong CA is an L6 failure; bad CA file is reported") {
  Checked f;
  f.cfg.ca_file = f.pki.other_ca_crt();
  HealthChecker &hc = f.start();
  REQUIRE(f.step_until([&] { return f.up->health() == Health::Down; }, 2s));
  CHECK(f.events.back().why == CheckResult::L6Rsp);
  hc.stop();

  HealthConfig bad = fast_config(f.pki);
  bad.ca_file = "/nonexistent/ca.crt";
  auto ctx = HealthChecker::make_tls_context(bad);
  REQUIRE_FALSE(ctx.ok());
  CHECK(ctx.error().find("/nonexistent/ca.crt") != std::string::npos);
  HealthChecker hc2(&f.loop.loop, f.time, bad, f.recorder());
  CHECK(hc2.tls_error().find("/nonexistent/ca.crt") != std::string::npos);
  hc2.stop();
}

TEST_CASE("checker: set_upstreams keeps, adds and drops; mode none never checks") {
  Checked f; // its server and endpoint are `a`
  TestTlsServer b(f.sctx);
  auto ub = upstream_for(b.port());
  HealthChecker &hc = f.start_up();
  hc.set_upstreams({f.up, ub});
  CHECK(hc.size() == 2);
  REQUIRE(f.step_until([&] { return ub->health() == Health::Up; }, 2s));
  CHECK(f.srv.handshakes == 1); // kept its connection and state
  hc.set_upstreams({ub});
  CHECK(hc.size() == 1);
  const uint64_t checks_a = f.up->health_counters.checks;
  f.step_for(300ms);
  CHECK(f.up->health_counters.checks == checks_a);
  // A reload that builds a new Upstream object for the same endpoint keeps the verdict.
  auto ub2 = upstream_for(b.port());
  hc.set_upstreams({ub2});
  CHECK(ub2->health() == Health::Up);
  REQUIRE(f.step_until([&] { return ub2->health_counters.checks >= 1; }, 2s));
  hc.stop();

  HealthConfig none = fast_config(f.pki);
  none.mode = HealthMode::None;
  auto un = upstream_for(f.srv.port());
  un->set_health(Health::Down);
  HealthChecker hn(&f.loop.loop, f.time, none, f.recorder());
  f.watch(hn);
  hn.set_upstreams({un});
  CHECK(un->health() == Health::Unknown);
  f.step_for(200ms);
  CHECK(un->health_counters.checks == 0);
  hn.stop();
}

TEST_CASE("checker: reconfigure applies new settings in place and keeps verdicts") {
  Checked f;
  HealthConfig &cfg = f.cfg;
  HealthChecker &hc = f.build();
  CHECK(hc.reconfigure(cfg).ok()); // equal: no-op
  f.start_up();
  CHECK(f.events.size() == 1);

  // A path that answers 500 on this server is not modelled; switch the mode instead.
  cfg.mode = HealthMode::Tls;
  CHECK(hc.reconfigure(cfg).ok());
  const uint64_t checks = f.up->health_counters.checks;
  REQUIRE(f.step_until([&] { return f.up->health_counters.checks > checks + 2; }, 2s));
  CHECK(f.up->health() == Health::Up);
  CHECK(f.events.size() == 1); // verdict kept: no transition
  const int requests = f.srv.requests;
  f.step_for(200ms);
  CHECK(f.srv.requests == requests); // tls mode sends no HTTP

  // New thresholds keep the verdict; `fall` failures take it down.
  cfg.rise = 3;
  cfg.fall = 3;
  cfg.mode = HealthMode::Https;
  CHECK(hc.reconfigure(cfg).ok());
  f.srv.status = 500;
  REQUIRE(f.step_until([&] { return f.up->health() == Health::Down; }, 2s));
  CHECK(f.events.back().old_h == Health::Up);
  CHECK(f.up->health_counters.failures[static_cast<size_t>(CheckResult::L7Sts)] >= 3);
  f.srv.status = 200;

  // Bad TLS files are rejected (see below); none stops checking.
  cfg.ca_file = "/nonexistent/ca.crt";
  CHECK_FALSE(hc.reconfigure(cfg).ok());
  cfg.mode = HealthMode::None;
  CHECK(hc.reconfigure(cfg).ok()); // no TLS in this mode: its files are not loaded
  CHECK(f.up->health() == Health::Unknown);
  CHECK(hc.size() == 0);
  cfg.mode = HealthMode::Https;
  cfg.ca_file = f.pki.ca_crt();
  CHECK(hc.reconfigure(cfg).ok());
  REQUIRE(f.step_until([&] { return f.up->health() == Health::Up; }, 2s));
  f.up->add_passive_failure();
  hc.poke();
  REQUIRE(f.step_until([&] { return f.up->take_passive_failures() == 0; }, 1s));
  hc.stop();
}

TEST_CASE("checker: a server closing every idle connection gets one immediate re-check per "
          "interval, not one per round trip") {
  Checked f;
  f.srv.close_after_answer = true;  // answers 200 without `Connection: close`, then closes
  HealthChecker &hc = f.start_up(); // interval 100 ms
  const uint64_t checks = f.up->health_counters.checks;
  f.step_for(1000ms);
  const uint64_t n = f.up->health_counters.checks - checks;
  MESSAGE(n << " checks in 1 s against a server closing after every answer");
  // The scheduled check and at most one immediate re-check after its close, per interval
  // (>= 90 ms with jitter): about 20 a second, against hundreds back to back.
  CHECK(n <= 25);
  CHECK(n >= 8);
  CHECK(f.up->health() == Health::Up);
  CHECK(f.events.size() == 1);
  hc.stop();
}

TEST_CASE("checker: TLS files that cannot be loaded never count against the endpoints") {
  Checked f;
  f.cfg.ca_file = "/nonexistent/ca.crt";
  HealthChecker &hc = f.build();
  CHECK(hc.tls_error().find("/nonexistent/ca.crt") != std::string::npos);
  f.start();
  f.step_for(300ms);
  // A local setup error: no check runs, the endpoint is not taken down (the owner refuses to
  // start with tls_error() set).
  CHECK(f.up->health() == Health::Unknown);
  CHECK(f.up->health_counters.checks == 0);
  CHECK(f.up->kill_epoch() == 0);
  CHECK(f.events.empty());
  hc.stop();
}

TEST_CASE("checker: reconfigure with unloadable TLS files is rejected; the running checks stay") {
  for (int which = 0; which < 3; which++) {
    CAPTURE(which);
    Checked f;
    HealthChecker &hc = f.start_up();
    HealthConfig bad = f.cfg;
    bad.path = "/livez"; // a change that alone would be applied
    const std::string missing = f.pki.path("missing.pem");
    if (which == 0) {
      bad.ca_file = missing;
    } else if (which == 1) {
      bad.client_cert = missing;
      bad.client_key = f.pki.client_key();
    } else {
      bad.client_cert = f.pki.client_crt();
      bad.client_key = f.pki.server_key(); // does not match the certificate
    }
    auto r = hc.reconfigure(bad);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().find(which == 2 ? f.pki.server_key() : missing) != std::string::npos);
    const uint64_t checks = f.up->health_counters.checks;
    REQUIRE(f.step_until([&] { return f.up->health_counters.checks >= checks + 3; }, 2s));
    CHECK(f.up->health() == Health::Up);
    CHECK(f.up->kill_epoch() == 0);
    CHECK(f.up->health_counters.failures[static_cast<size_t>(CheckResult::L6Rsp)] == 0);
    CHECK(f.srv.handshakes == 1); // the old probe and its connection kept running
    CHECK(f.events.size() == 1);
    // The rejected settings were not taken: the same good settings are still a no-op, and a
    // fixed file is accepted.
    CHECK(hc.reconfigure(f.cfg).ok());
    CHECK(f.srv.handshakes == 1);
    bad.ca_file = f.cfg.ca_file;
    bad.client_cert = f.pki.client_crt();
    bad.client_key = f.pki.client_key();
    CHECK(hc.reconfigure(bad).ok());
    hc.stop();
  }
}

TEST_CASE("checker: a client certificate renewed by rename is used without a reconfigure") {
  Fixture f;
  // The server trusts only client certificates from a second CA; the checker starts with one
  // from the first CA, as if its certificate had expired or the cluster's CA had been rotated.
  TestPki ca2;
  auto sctx = kal::TlsContext::server(f.pki.server_crt(), f.pki.server_key(), ca2.ca_crt());
  REQUIRE(sctx.ok());
  TestTlsServer srv(*sctx);
  auto up = upstream_for(srv.port());
  const std::string crt = f.pki.path("health.crt"), key = f.pki.path("health.key");
  replace_by_rename(f.pki.client_crt(), crt);
  replace_by_rename(f.pki.client_key(), key);
  HealthConfig cfg = fast_config(f.pki);
  cfg.client_cert = crt;
  cfg.client_key = key;
  StderrCapture log(f.pki.path("stderr.log"));
  HealthChecker hc(&f.loop.loop, f.time, cfg, f.recorder());
  f.watch(hc);
  REQUIRE(hc.tls_error().empty());
  hc.set_tls_watch_interval(50ms);
  hc.set_upstreams({up});
  REQUIRE(f.step_until([&] { return up->health() == Health::Down; }, 2s));
  CHECK(srv.handshakes == 0); // every handshake was refused
  f.step_for(200ms);          // ticks with unchanged files rebuild nothing
  CHECK(count_of(log.text(), "health-check TLS files") == 0);

  // The renewed pair, renamed into place.
  replace_by_rename(ca2.client_key(), key);
  replace_by_rename(ca2.client_crt(), crt);
  const auto t0 = f.time.now();
  REQUIRE(f.step_until([&] { return up->health() == Health::Up; }, 3s));
  MESSAGE("rename -> up in "
          << std::chrono::duration_cast<std::chrono::milliseconds>(f.time.now() - t0).count()
          << " ms");
  CHECK(srv.handshakes >= 1);
  const std::string text = log.text();
  CHECK_MESSAGE(count_of(text, "health-check TLS files changed; reloaded") == 1, text);
  CHECK_MESSAGE(text.find(crt) != std::string::npos, text);
  hc.stop();
}

TEST_CASE("checker: a half-written or mismatched rotation keeps the running TLS context and warns "
          "once per problem") {
  Checked f;
  const std::string crt = f.pki.path("health.crt"), key = f.pki.path("health.key");
  replace_by_rename(f.pki.client_crt(), crt);
  replace_by_rename(f.pki.client_key(), key);
  f.cfg.client_cert = crt;
  f.cfg.client_key = key;
  f.build().set_tls_watch_interval(20ms);
  StderrCapture log(f.pki.path("stderr.log"));
  HealthChecker &hc = f.start_up();
  REQUIRE(f.srv.handshakes == 1);
  const std::string warning = "health-check TLS files changed but cannot be loaded";

  // A new key renamed in before its certificate: it does not match the running certificate.
  replace_by_rename(f.pki.server_key(), key);
  uint64_t checks = f.up->health_counters.checks;
  f.step_for(300ms); // about 15 ticks
  std::string text = log.text();
  CHECK_MESSAGE(count_of(text, warning) == 1, text);
  CHECK_MESSAGE(text.find("error=\"health client key \\\"" + key) != std::string::npos, text);
  CHECK(f.up->health_counters.checks >= checks + 2); // checks go on with the old context
  CHECK(f.up->health() == Health::Up);
  CHECK(f.srv.handshakes == 1); // on the same connection

  // A certificate written in place and caught half way: another problem, one more warning.
  const std::string pem = slurp(f.pki.client_crt());
  std::ofstream(crt, std::ios::binary | std::ios::trunc) << pem.substr(0, pem.size() / 2);
  checks = f.up->health_counters.checks;
  f.step_for(300ms);
  text = log.text();
  CHECK_MESSAGE(count_of(text, warning) == 2, text);
  CHECK_MESSAGE(text.find("error=\"health client certificate \\\"" + crt) != std::string::npos,
                text);
  CHECK(f.up->health_counters.checks >= checks + 2);
  CHECK(f.up->health() == Health::Up);
  CHECK(f.srv.handshakes == 1);
  CHECK(count_of(text, "reloaded") == 0);

  // The rotation completes: loaded, and the next check handshakes again with the new files
  // instead of keeping (or resuming) the connection made with the old ones.
  replace_by_rename(f.pki.client_crt(), crt);
  replace_by_rename(f.pki.client_key(), key);
  REQUIRE(f.step_until([&] { return f.srv.handshakes == 2; }, 2s));
  f.step_for(100ms);
  text = log.text();
  CHECK_MESSAGE(count_of(text, "health-check TLS files changed; reloaded") == 1, text);
  CHECK(f.srv.resumed == 0);
  CHECK(f.up->health() == Health::Up);
  CHECK(f.events.size() == 1);
  CHECK(f.up->health_counters.failures[static_cast<size_t>(CheckResult::L6Rsp)] == 0);
  hc.stop();
}

TEST_CASE("checker: a crashed apiserver (connects refused, nothing arriving) has its sessions "
          "closed once another endpoint is ready") {
  Checked f;
  f.with_ready_peer();
  HealthChecker &hc = f.start_up();
  const auto killed = f.time.now();
  f.srv.stop(); // crashed: nothing listens, nothing arrives on its sessions
  REQUIRE(f.step_until([&] { return f.up->kill_epoch() == 1; }, 2s));
  MESSAGE("crash -> closed in "
          << std::chrono::duration_cast<std::chrono::milliseconds>(f.time.now() - killed).count()
          << " ms");
  CHECK(f.events.back().old_h == Health::Down);
  CHECK(f.events.back().new_h == Health::Down);
  CHECK(f.events.back().why == CheckResult::L4Con);
  CHECK(f.up->counters.closes_prevented == 0);
  // More refused checks: closed once per dead period.
  f.step_for(500ms);
  CHECK(f.up->kill_epoch() == 1);
  hc.stop();
}

TEST_CASE("checker: a closed listener while bytes still arrive on its sessions is held "
          "(closes_prevented), closed once they stop") {
  Checked f;
  f.with_ready_peer();
  HealthChecker &hc = f.start_up();
  // The apiserver's SIGTERM with --shutdown-delay-duration=0: listener closed, watches streaming.
  f.srv.stop();
  for (int i = 0; i < 30; i++) {
    f.up->counters.bytes_to_client += 100; // what the workers count as a watch event arrives
    f.step_for(100ms);
    CHECK(f.up->kill_epoch() == 0);
  }
  CHECK(f.up->health() == Health::Down);
  CHECK_FALSE(f.up->health_counters.alive.load());
  CHECK(f.up->counters.closes_prevented == 1);
  // The watches ended (or went silent): nothing contradicts the dead verdict any more.
  REQUIRE(f.step_until([&] { return f.up->kill_epoch() == 1; }, 2s));
  CHECK(f.up->counters.closes_prevented == 1);
  hc.stop();
}

TEST_CASE("checker: an outside not-ready signal steers away without closing; lifting it restores "
          "the endpoint at once") {
  Checked f;
  f.with_ready_peer();
  HealthChecker &hc = f.start_up();
  const size_t n0 = f.events.size();
  CHECK_FALSE(hc.set_outside_not_ready("127.0.0.1:1", true, "endpointslice")); // not checked
  REQUIRE(hc.set_outside_not_ready(f.up->name(), true, "endpointslice"));
  CHECK(f.up->health() == Health::Down);
  CHECK(f.up->health_counters.outside_not_ready.load());
  REQUIRE(f.events.size() == n0 + 1);
  CHECK(f.events.back().new_h == Health::Down);
  CHECK_FALSE(kal::is_hard_failure(f.events.back().why)); // the owner closes nothing
  // /readyz keeps passing: the hold stays; nothing is closed.
  f.step_for(1s);
  CHECK(f.up->health() == Health::Down);
  CHECK(f.up->kill_epoch() == 0);
  CHECK(f.up->health_counters.alive.load());
  // Kept across a reload of the check settings.
  HealthConfig c2 = f.cfg;
  c2.fall = 3;
  REQUIRE(hc.reconfigure(c2).ok());
  f.step_for(300ms);
  CHECK(f.up->health() == Health::Down);
  CHECK(f.up->kill_epoch() == 0);
  // Lifted: up at once (its /readyz passes), no wait for `rise` more checks.
  REQUIRE(hc.set_outside_not_ready(f.up->name(), false, "endpointslice"));
  CHECK(f.up->health() == Health::Up);
  CHECK_FALSE(f.up->health_counters.outside_not_ready.load());
  CHECK(f.events.back().new_h == Health::Up);
  hc.stop();
}

TEST_CASE("checker: new rise/fall keep an up endpoint up until `fall` failures") {
  Checked f;
  HealthConfig &cfg = f.cfg;
  HealthChecker &hc = f.start_up();
  // The first check after the reload fails once (hard: closed before the answer).
  f.srv.close_next_requests = 1;
  cfg.rise = 3;
  cfg.fall = 3;
  REQUIRE(hc.reconfigure(cfg).ok());
  REQUIRE(f.step_until(
      [&] { return f.up->health_counters.failures[static_cast<size_t>(CheckResult::L7Rsp)] == 1; },
      2s));
  const uint64_t checks = f.up->health_counters.checks;
  REQUIRE(f.step_until([&] { return f.up->health_counters.checks >= checks + 3; }, 2s));
  CHECK(f.up->health() == Health::Up);
  CHECK(f.up->kill_epoch() == 0);
  CHECK(f.events.size() == 1);

  // A down endpoint stays down and needs `rise` passes.
  f.srv.status = 500;
  REQUIRE(f.step_until([&] { return f.up->health() == Health::Down; }, 2s));
  cfg.rise = 2;
  cfg.fall = 2;
  REQUIRE(hc.reconfigure(cfg).ok());
  f.step_for(100ms);
  CHECK(f.up->health() == Health::Down);
  const size_t n_events = f.events.size();
  f.srv.status = 200;
  REQUIRE(f.step_until([&] { return f.up->health() == Health::Up; }, 2s));
  CHECK(f.events.size() == n_events + 1);
  CHECK(f.up->health_counters.checks >= 2);
  hc.stop();
}

TEST_CASE("checker: reconfigure keeps a hard-failed endpoint's kill: no second escalation") {
  Checked f;
  f.with_ready_peer();
  HealthChecker &hc = f.start_up();
  f.srv.hang = true;
  REQUIRE(f.step_until([&] { return f.up->health() == Health::Down; }, 3s));
  CHECK(f.up->kill_epoch() == 1);
  const size_t n_events = f.events.size();
  f.cfg.down_interval = 60ms;
  REQUIRE(hc.reconfigure(f.cfg).ok());
  const uint64_t checks = f.up->health_counters.checks;
  REQUIRE(f.step_until([&] { return f.up->health_counters.checks >= checks + 2; }, 3s));
  CHECK(f.up->kill_epoch() == 1);
  CHECK(f.events.size() == n_events);
  // Likewise when a reload re-creates the Upstream object of the same endpoint.
  auto up2 = upstream_for(f.srv.port());
  hc.set_upstreams({up2, f.peer});
  CHECK(up2->health() == Health::Down);
  REQUIRE(f.step_until([&] { return up2->health_counters.checks >= 2; }, 3s));
  CHECK(up2->kill_epoch() == 0);
  CHECK(f.events.size() == n_events);
  f.srv.hang = false;
  hc.stop();
}

TEST_CASE("checker: a non-200 head whose body never finishes is L7STS (soft), not L7TOUT") {
  Checked f;
  f.with_ready_peer();
  HealthChecker &hc = f.start_up();
  f.srv.status = 500;
  f.srv.truncate_body = true;
  REQUIRE(f.step_until([&] { return f.up->health() == Health::Down; }, 3s));
  CHECK(f.events.back().why == CheckResult::L7Sts);
  CHECK(f.up->kill_epoch() == 0);
  CHECK(f.up->health_counters.failures[static_cast<size_t>(CheckResult::L7Tout)] == 0);
  CHECK(f.up->health_counters.failures[static_cast<size_t>(CheckResult::L7Sts)] >= 2);

  // A 200 whose body never finishes proves nothing: still a timeout (hard).
  f.srv.status = 200;
  f.srv.truncate_body = false;
  REQUIRE(f.step_until([&] { return f.up->health() == Health::Up; }, 2s));
  f.srv.truncate_body = true;
  REQUIRE(f.step_until([&] { return f.up->health() == Health::Down; }, 3s));
  CHECK(f.events.back().why == CheckResult::L7Tout);
  CHECK(f.up->kill_epoch() == 1);
  hc.stop();
}

TEST_CASE("checker: --health-server-name as an IP literal is verified, never sent as SNI") {
  Checked f;
  HealthConfig &cfg = f.cfg;
  cfg.server_name = "127.0.0.1"; // in the certificate's IP SANs
  HealthChecker &hc = f.start_up();
  CHECK(f.srv.handshakes == 1);
  CHECK(f.srv.last_sni().empty());

  cfg.server_name = "::2"; // not in the certificate: verified as an IP, so it fails
  REQUIRE(hc.reconfigure(cfg).ok());
  REQUIRE(f.step_until([&] { return f.up->health() == Health::Down; }, 2s));
  CHECK(f.events.back().why == CheckResult::L6Rsp);

  cfg.server_name = "localhost"; // a DNS name is sent
  REQUIRE(hc.reconfigure(cfg).ok());
  REQUIRE(f.step_until([&] { return f.up->health() == Health::Up; }, 2s));
  CHECK(f.srv.last_sni() == "localhost");
  hc.stop();
}

TEST_CASE("checker: after stop() the loop runs dry and uv_loop_close returns 0") {
  // On the real time source: stop() must close its uv timers as well as its sockets.
  TestPki pki;
  auto sctx = kal::TlsContext::server(pki.server_crt(), pki.server_key());
  REQUIRE(sctx.ok());
  TestTlsServer srv(*sctx);
  uv_loop_t loop;
  uv_loop_init(&loop);
  {
    kal::uvx::UvTimeSource time(&loop);
    HealthChecker hc(&loop, time, fast_config(pki), nullptr);
    auto up = upstream_for(srv.port());
    auto dead = upstream_for(1); // refused
    hc.set_upstreams({up, dead});
    struct Stopper {
      HealthChecker *hc;
      Upstream *up, *dead;
      std::chrono::steady_clock::time_point give_up;
    } stopper{&hc, up.get(), dead.get(), std::chrono::steady_clock::now() + 5s};
    uv_prepare_t c; // runs after the timers, before the poll: right after checks started
    uv_prepare_init(&loop, &c);
    c.data = &stopper;
    // Stop in the middle of things, as soon as both verdicts are in and a check is running:
    // connections open, checks in flight, timers armed.
    uv_prepare_start(&c, [](uv_prepare_t *h) {
      auto *s = static_cast<Stopper *>(h->data);
      const bool verdicts = s->up->health() == Health::Up && s->dead->health() == Health::Down;
      if ((verdicts && s->hc->in_flight() > 0) || std::chrono::steady_clock::now() > s->give_up) {
        s->hc->stop();
        uv_close(reinterpret_cast<uv_handle_t *>(h), nullptr);
      }
    });
    uv_run(&loop, UV_RUN_DEFAULT); // returns only once every handle is closed
    CHECK(up->health() == Health::Up);
    CHECK(dead->health() == Health::Down);
    hc.poke(); // harmless after stop
  }
  CHECK(uv_loop_close(&loop) == 0);
}
