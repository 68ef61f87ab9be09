// A worker stopping (shutdown): connections the kernel completed before the listener closed are
// served, not reset; connections between exchanges are closed by the shutdown drain.
#include "kube_api_lb/core/upstream.h"
#include "proxy/worker.h"
#include "silent_upstream.h"
#include "test_sockets.h"
#include "uv_test_loop.h"
#include "uvx/uv_time_source.h"

#include <doctest/doctest.h>

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
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

struct OneWorker {
  SilentUpstream upstream;
  Loop loop;
  kal::uvx::UvTimeSource time{&loop.loop};
  kal::ProxySettings settings = [] {
    kal::ProxySettings s;
    s.health_checks = false;
    return s;
  }();
  uint16_t port = free_port();
  std::unique_ptr<kal::Worker> w;
  std::vector<int> clients;

  OneWorker() {
    w = std::make_unique<kal::Worker>(&loop.loop, time, 0, settings, upstream.list());
    REQUIRE(w->listen({loopback(port)}));
  }
  ~OneWorker() {
    for (int c : clients) {
      close(c);
    }
    w->stop_accepting();
    w.reset();
    loop.run_for(10ms);
  }
  // Connections the kernel completes into the listen queue while the loop does not run.
  void queue_clients(size_t n) {
    for (size_t i = 0; i < n; ++i) {
      int c = connect_to(port);
      REQUIRE(c >= 0);
      clients.push_back(c);
    }
  }
  // Clients whose connection was reset or closed by the proxy.
  size_t ended_clients() const {
    size_t ended = 0;
    for (int c : clients) {
      char ch;
      ssize_t n = recv(c, &ch, 1, MSG_DONTWAIT);
      ended += (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) ? 1 : 0;
    }
    return ended;
  }
};

} // namespace

TEST_CASE("worker: stopping takes the connections queued on the listener instead of resetting") {
  OneWorker f;
  f.queue_clients(5);
  // The stop signal arrives before the loop has accepted them.
  f.w->stop_accepting();
  CHECK(f.w->accepted_total() == 5);
  CHECK(f.w->session_count() == 5);
  f.loop.run_for(50ms);
  CHECK(f.ended_clients() == 0);
  // Nothing listens any more: a new client is refused.
  CHECK(connect_to(f.port) < 0);
}

TEST_CASE("worker: the shutdown drain closes a silent connection, then nothing is left") {
  OneWorker f;
  f.queue_clients(2);
  REQUIRE(f.loop.run_until([&] { return f.w->session_count() == 2; }, 5s));
  f.w->stop_accepting();
  // Accepted a moment ago and silent: its ClientHello may be on its way, so it stays.
  CHECK(f.w->close_quiet_sessions() == 0);
  CHECK(f.w->session_count() == 2);
  // Silent for longer than a request may wait (core/shutdown_drain.h): closed.
  f.loop.run_for(std::chrono::milliseconds(kal::DrainRule{}.request_wait_ms + 50));
  CHECK(f.w->close_quiet_sessions() == 2);
  f.loop.run_for(20ms);
  CHECK(f.w->session_count() == 0);
  CHECK(f.ended_clients() == 2);
}
