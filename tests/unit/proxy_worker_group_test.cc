// Workers polling one shared listening socket: the loop that wakes first accepts everything
// queued, so without the group one loop would hold a whole burst of connections. Here only the
// first worker's loop runs while the clients connect, which is the worst case made certain.
#include "kube_api_lb/core/upstream.h"
#include "proxy/worker.h"
#include "silent_upstream.h"
#include "test_sockets.h"
#include "uv_test_loop.h"
#include "uvx/sockaddr.h"
#include "uvx/uv_time_source.h"

#include <doctest/doctest.h>

#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <vector>

using namespace std::chrono_literals;
using kal::testing::connect_to;
using kal::testing::free_port;
using kal::testing::Loop;
using kal::testing::loopback;
using kal::testing::SilentUpstream;

namespace {

constexpr size_t kClients = 20;

struct TwoWorkers {
  SilentUpstream upstream;
  Loop la, lb;
  kal::uvx::UvTimeSource ta{&la.loop}, tb{&lb.loop};
  kal::ProxySettings settings = [] {
    kal::ProxySettings s;
    s.health_checks = false;
    return s;
  }();
  uint16_t port = free_port();
  kal::WorkerGroup group;
  std::unique_ptr<kal::Worker> a, b;
  std::vector<int> clients;

  TwoWorkers() {
    a = std::make_unique<kal::Worker>(&la.loop, ta, 0, settings, upstream.list());
    b = std::make_unique<kal::Worker>(&lb.loop, tb, 1, settings, upstream.list());
    REQUIRE(a->listen({loopback(port)}));
    kal::ListenFds shared;
    a->dup_listen_fds(shared);
    REQUIRE(b->listen({loopback(port)}, &shared));
    group.add(a.get());
    group.add(b.get());
    a->join(&group);
    b->join(&group);
  }
  ~TwoWorkers() {
    group.close();
    for (int c : clients) {
      close(c);
    }
    a->stop_accepting();
    b->stop_accepting();
    a.reset();
    b.reset();
    la.run_for(10ms);
    lb.run_for(10ms);
  }
  // Connects the clients while only `a`'s loop runs: `a` accepts every one of them.
  void burst_on_a() {
    for (size_t i = 0; i < kClients; ++i) {
      int c = connect_to(port);
      REQUIRE(c >= 0);
      clients.push_back(c);
    }
    REQUIRE(la.run_until([&] { return a->accepted_total() == kClients; }, 5s));
    CHECK(b->accepted_total() == 0);
  }
};

} // namespace

TEST_CASE("worker group: a burst one worker accepted ends up spread over both") {
  TwoWorkers w;
  w.burst_on_a();
  // b's loop starts what a handed over.
  REQUIRE(w.lb.run_until([&] { return w.b->load() == w.b->session_count(); }, 5s));
  size_t na = w.a->session_count();
  size_t nb = w.b->session_count();
  INFO("a holds " << na << ", b holds " << nb);
  CHECK(na + nb == kClients);
  CHECK(nb == w.a->handed_over_total());
  CHECK(na <= 2 * nb + kal::WorkerGroup::kSlack + 1);
  CHECK(nb > 0);
  CHECK(w.b->handed_over_total() == 0);
}

TEST_CASE("worker group: once closed (shutdown), each worker keeps what it accepts") {
  TwoWorkers w;
  w.group.close();
  w.burst_on_a();
  w.lb.run_for(20ms);
  CHECK(w.a->session_count() == kClients);
  CHECK(w.b->session_count() == 0);
  CHECK(w.a->handed_over_total() == 0);
  CHECK(w.b->load() == 0); // no reservation left behind by the refused hand-overs
}

TEST_CASE("worker group: a connection handed to a worker that stopped accepting is closed") {
  TwoWorkers w;
  w.b->stop_accepting(); // b shuts down; the group is still open (a's view lags)
  w.burst_on_a();
  REQUIRE(w.lb.run_until([&] { return w.b->load() == 0; }, 5s));
  CHECK(w.b->session_count() == 0);
  size_t handed = w.a->handed_over_total();
  CHECK(handed > 0);
  CHECK(w.a->session_count() == kClients - handed);
  // The handed-over clients see their connection closed, as if it had stayed in the listen queue.
  size_t closed = 0;
  for (int c : w.clients) {
    char ch;
    ssize_t n = recv(c, &ch, 1, MSG_DONTWAIT);
    closed += n == 0 ? 1 : 0;
  }
  CHECK(closed == handed);
}
