#include "uvx/sockaddr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <cstring>

namespace kal::uvx {

bool literal_sockaddr(const HostPort &hp, sockaddr_storage &out) {
  std::memset(&out, 0, sizeof out);
  if (hp.kind == HostPort::Kind::IPv4) {
    auto *a = reinterpret_cast<sockaddr_in *>(&out);
    a->sin_family = AF_INET;
    a->sin_port = htons(hp.port);
    return inet_pton(AF_INET, hp.host.c_str(), &a->sin_addr) == 1;
  }
  if (hp.kind == HostPort::Kind::IPv6) {
    auto *a = reinterpret_cast<sockaddr_in6 *>(&out);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(hp.port);
    return inet_pton(AF_INET6, hp.host.c_str(), &a->sin6_addr) == 1;
  }
  return false;
}

std::string to_string(const sockaddr *sa) {
  char host[INET6_ADDRSTRLEN] = "?";
  if (sa->sa_family == AF_INET) {
    auto *a = reinterpret_cast<const sockaddr_in *>(sa);
    inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
    return std::string(host) + ":" + std::to_string(ntohs(a->sin_port));
  }
  if (sa->sa_family == AF_INET6) {
    auto *a = reinterpret_cast<const sockaddr_in6 *>(sa);
    inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
    std::string out = "[";
    out += host;
    out += "]:";
    out += std::to_string(ntohs(a->sin6_port));
    return out;
  }
  return "?";
}

void tune_tcp_socket(int fd, unsigned keepalive_idle_s, unsigned user_timeout_ms) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  tune_tcp_liveness(fd, keepalive_idle_s, user_timeout_ms);
}

void tune_tcp_liveness(int fd, unsigned keepalive_idle_s, unsigned user_timeout_ms) {
  int one = 1;
  if (keepalive_idle_s > 0) {
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    int idle = static_cast<int>(keepalive_idle_s);
    int intvl = idle / 3 > 0 ? idle / 3 : 1;
    int cnt = 3;
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
    // With TCP_USER_TIMEOUT set, it decides when unanswered probes kill the connection and the
    // probe count is not used (tcp(7)): one setsockopt less per upstream connection.
    if (user_timeout_ms == 0) {
      setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
    }
  }
  if (user_timeout_ms > 0) {
    setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout_ms, sizeof user_timeout_ms);
  }
}

} // namespace kal::uvx
