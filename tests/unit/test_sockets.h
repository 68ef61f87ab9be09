#pragma once
// Plain loopback sockets for unit tests that drive the proxy's listeners.
#include "kube_api_lb/config/config.h"

#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <string>

namespace kal::testing {

inline uint16_t free_port() {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(s, reinterpret_cast<sockaddr *>(&a), sizeof a) == 0);
  socklen_t len = sizeof a;
  getsockname(s, reinterpret_cast<sockaddr *>(&a), &len);
  close(s);
  return ntohs(a.sin_port);
}

// A descriptor of this process that is a socket listening on 127.0.0.1:port.
inline int listening_fd(uint16_t port) {
  for (int fd = 3; fd < 1024; ++fd) {
    sockaddr_in a{};
    socklen_t len = sizeof a;
    int listening = 0;
    socklen_t ilen = sizeof listening;
    if (getsockname(fd, reinterpret_cast<sockaddr *>(&a), &len) == 0 && a.sin_family == AF_INET &&
        ntohs(a.sin_port) == port &&
        getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &ilen) == 0 && listening) {
      return fd;
    }
  }
  return -1;
}

inline int connect_to(uint16_t port) {
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(s, reinterpret_cast<sockaddr *>(&a), sizeof a) != 0) {
    close(s);
    return -1;
  }
  return s;
}

// What the peer sent so far without blocking, and whether it closed.
inline std::string drain(int s, bool &eof) {
  std::string got;
  char buf[4096];
  eof = false;
  for (;;) {
    ssize_t n = recv(s, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) {
      got.append(buf, static_cast<size_t>(n));
      continue;
    }
    eof = n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
    return got;
  }
}

inline kal::HostPort loopback(uint16_t port) {
  return kal::HostPort{"127.0.0.1", port, kal::HostPort::Kind::IPv4};
}

} // namespace kal::testing
