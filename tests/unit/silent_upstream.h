#pragma once
// An apiserver stand-in that never answers: its listen backlog completes the proxy's connects,
// which is all a session needs to stay open. For the worker and worker-pool unit tests.
#include "kube_api_lb/core/upstream.h"
#include "test_sockets.h"
#include "uvx/sockaddr.h"

#include <doctest/doctest.h>

#include <sys/socket.h>
#include <unistd.h>

#include <memory>

namespace kal::testing {

struct SilentUpstream {
  uint16_t port = free_port();
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  SilentUpstream() {
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_storage ss;
    REQUIRE(kal::uvx::literal_sockaddr(loopback(port), ss));
    REQUIRE(bind(fd, reinterpret_cast<sockaddr *>(&ss), sizeof(sockaddr_in)) == 0);
    REQUIRE(::listen(fd, 128) == 0);
  }
  SilentUpstream(const SilentUpstream &) = delete;
  SilentUpstream &operator=(const SilentUpstream &) = delete;
  ~SilentUpstream() { close(fd); }
  std::shared_ptr<const kal::UpstreamList> list() const {
    auto up = std::make_shared<kal::Upstream>(loopback(port));
    sockaddr_storage ss;
    kal::uvx::literal_sockaddr(loopback(port), ss);
    up->set_addrs({ss});
    return std::make_shared<const kal::UpstreamList>(kal::UpstreamList{up});
  }
};

} // namespace kal::testing
