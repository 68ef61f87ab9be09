// Listening sockets whose accept() fails: the proxy worker and the admin server must pause and
// retry, not spin inside libuv's accept loop (which never returns to the event loop). A listening
// socket that is shut down makes accept() fail with EINVAL until it listens again, which is what
// the retry does. Also: admin connections end with their server.
#include "admin/admin_server.h"
#include "proxy/worker.h"
#include "test_sockets.h"
#include "uv_test_loop.h"
#include "uvx/uv_time_source.h"

#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <memory>
#include <string>

using namespace std::chrono_literals;
using kal::testing::Loop;
using kal::testing::Watchdog;

using kal::testing::connect_to;
using kal::testing::drain;
using kal::testing::free_port;
using kal::testing::listening_fd;
using kal::testing::loopback;

TEST_CASE("worker: a listener whose accept() fails is paused and resumed, the loop never spins") {
  Loop l;
  uint16_t port = free_port();
  {
    kal::uvx::UvTimeSource time(&l.loop);
    kal::Worker w(&l.loop, time, 0, kal::ProxySettings{},
                  std::make_shared<const kal::UpstreamList>());
    REQUIRE(w.listen({loopback(port)}));
    int fd = listening_fd(port);
    REQUIRE(fd >= 0);
    REQUIRE(shutdown(fd, SHUT_RDWR) == 0); // accept() now fails with EINVAL
    {
      Watchdog dog(10s, "worker accept loop after an accept error");
      // The error, a pause, a retry that listens again.
      CHECK(l.run_until([&] { return listening_fd(port) >= 0; }, 5s));
    }
    int c = connect_to(port);
    REQUIRE_MESSAGE(c >= 0, "the listener did not listen again after the pause");
    CHECK(l.run_until([&] { return w.accepted_total() == 1; }, 2s));
    close(c);
    w.stop_accepting();
  }
  l.run_for(10ms);
}

TEST_CASE("admin: a listener whose accept() fails is paused and resumed, the loop never spins") {
  Loop l;
  uint16_t port = free_port();
  kal::AdminHandlers h;
  h.ready = [] { return true; };
  {
    kal::AdminServer s(&l.loop, h, false);
    REQUIRE(s.listen(loopback(port)));
    int fd = listening_fd(port);
    REQUIRE(fd >= 0);
    REQUIRE(shutdown(fd, SHUT_RDWR) == 0);
    {
      Watchdog dog(10s, "admin accept loop after an accept error");
      CHECK(l.run_until([&] { return listening_fd(port) >= 0; }, 5s));
    }
    int c = connect_to(port);
    REQUIRE_MESSAGE(c >= 0, "the admin listener did not listen again after the pause");
    std::string req = "GET /healthz HTTP/1.1\r\n\r\n";
    REQUIRE(send(c, req.data(), req.size(), 0) == static_cast<ssize_t>(req.size()));
    std::string got;
    bool eof = false;
    l.run_until(
        [&] {
          got += drain(c, eof);
          return eof;
        },
        2s);
    CHECK(got.rfind("HTTP/1.1 200 OK", 0) == 0);
    close(c);
  }
  l.run_for(10ms);
}

TEST_CASE("admin: an open connection ends with its server (reload, shutdown)") {
  Loop l;
  uint16_t port = free_port();
  kal::AdminHandlers h;
  h.ready = [] { return true; };
  auto s = std::make_unique<kal::AdminServer>(&l.loop, h, false);
  REQUIRE(s->listen(loopback(port)));
  int c = connect_to(port);
  REQUIRE(c >= 0);
  std::string part = "GET /readyz HTTP/1.1\r\n";
  REQUIRE(send(c, part.data(), part.size(), 0) > 0);
  REQUIRE(l.run_until([&] { return s->connections() == 1; }, 2s)); // accepted
  l.run_for(20ms);                                                 // the first half read
  s.reset(); // a reload that replaces the admin server, or the shutdown
  bool eof = false;
  CHECK(l.run_until(
      [&] {
        drain(c, eof);
        return eof;
      },
      1s));
  // The rest of the request reaches no one (before, it was answered by the freed server).
  send(c, "\r\n", 2, MSG_NOSIGNAL);
  l.run_for(50ms);
  close(c);
}

TEST_CASE("admin: a client that never reads its answer is cut after the 5 s limit") {
  Loop l;
  uint16_t port = free_port();
  kal::AdminHandlers h;
  h.metrics = [] { return std::string(64 << 20, 'm'); }; // far more than the socket buffers
  kal::AdminServer s(&l.loop, h, false);
  REQUIRE(s.listen(loopback(port)));
  int c = connect_to(port);
  REQUIRE(c >= 0);
  std::string req = "GET /metrics HTTP/1.1\r\n\r\n";
  REQUIRE(send(c, req.data(), req.size(), 0) > 0);
  l.run_for(5500ms); // the answer stalls in the socket buffers; the limit ends the connection
  bool eof = false;
  size_t total = 0;
  bool ok = l.run_until(
      [&] {
        total += drain(c, eof).size(); // reads what was buffered, then the close
        return eof;
      },
      3s);
  CHECK_MESSAGE(ok, "still open after reading " << total << " bytes");
  CHECK(total < (64u << 20)); // cut, not finished
  close(c);
}
