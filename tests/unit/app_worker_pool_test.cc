// The worker pool with two workers (the main loop's and one thread's) on a shared listening socket:
// both accept, the totals add them up, a reload's new listening set reaches both, and shutdown
// closes the sessions and joins the thread.
#include "app/worker_pool.h"
#include "kube_api_lb/core/upstream.h"
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
using kal::testing::Watchdog;

namespace {

kal::ProxySettings settings() {
  kal::ProxySettings s;
  s.health_checks = false;
  return s;
}

// Whether nothing is bound to 127.0.0.1:port any more (a connect would start a session).
bool port_free(uint16_t port) {
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_storage ss;
  kal::uvx::literal_sockaddr(loopback(port), ss);
  bool ok = bind(s, reinterpret_cast<sockaddr *>(&ss), sizeof(sockaddr_in)) == 0;
  close(s);
  return ok;
}

} // namespace

TEST_CASE("worker pool: two workers accept, totals add up, a reload moves both, shutdown joins") {
  Watchdog dog(20s, "worker pool test");
  SilentUpstream upstream;
  Loop loop;
  kal::uvx::UvTimeSource time{&loop.loop};
  std::vector<int> clients;
  {
    kal::WorkerPool pool(&loop.loop, time);
    uint16_t port = free_port();
    REQUIRE(pool.start(2, {loopback(port)}, settings(), upstream.list()));
    int posted = 0;
    pool.post_to_all([&posted](kal::Worker &w) {
      if (w.index() == 0) {
        ++posted; // worker 0 runs it at once, on this thread
      }
    });
    CHECK(posted == 1);
    pool.run();
    for (int i = 0; i < 8; ++i) {
      int c = connect_to(port);
      REQUIRE(c >= 0);
      clients.push_back(c);
    }
    REQUIRE(loop.run_until([&] { return pool.totals().active == clients.size(); }, 5s));
    CHECK(pool.totals().accepted == clients.size());

    // A reload's listening set: the new address on both workers, the old one closed.
    uint16_t port2 = free_port();
    REQUIRE(pool.listen({loopback(port2)}));
    REQUIRE(loop.run_until([&] { return port_free(port); }, 5s));
    int c = connect_to(port2);
    REQUIRE(c >= 0);
    clients.push_back(c);
    REQUIRE(loop.run_until([&] { return pool.totals().active == clients.size(); }, 5s));

    pool.close_all();
    REQUIRE(loop.run_until([&] { return pool.totals().active == 0; }, 5s));
    loop.run_for(20ms);
    pool.join();
    CHECK(pool.totals().accepted == 0); // no workers left
  }
  for (int c : clients) {
    close(c);
  }
}

TEST_CASE("worker pool: an address that cannot be bound fails start() and reload alike") {
  Loop loop;
  kal::uvx::UvTimeSource time{&loop.loop};
  SilentUpstream upstream;
  const uint16_t taken = upstream.port; // listening already
  {
    kal::WorkerPool pool(&loop.loop, time);
    CHECK_FALSE(pool.start(2, {loopback(taken)}, settings(), upstream.list()));
    pool.join();
  }
  {
    kal::WorkerPool pool(&loop.loop, time);
    uint16_t port = free_port();
    REQUIRE(pool.start(2, {loopback(port)}, settings(), upstream.list()));
    pool.run();
    CHECK_FALSE(pool.listen({loopback(taken)}));
    CHECK_FALSE(port_free(port)); // nothing changed
    pool.close_all();
    loop.run_for(20ms);
    pool.join();
  }
}
