#pragma once
// Socket address helpers shared by the listener, the dialer and the health checker.
#include "kube_api_lb/core/endpoint.h"

#include <sys/socket.h>

#include <string>
#include <string_view>

namespace kal::uvx {

// Fills `out` from an IPv4/IPv6 literal HostPort. Returns false for host names.
bool literal_sockaddr(const HostPort &hp, sockaddr_storage &out);

// "1.2.3.4:5" / "[::1]:5".
std::string to_string(const sockaddr *sa);

// Sets TCP_NODELAY, SO_KEEPALIVE (idle/interval; the count only without a user timeout) and
// TCP_USER_TIMEOUT on a connected socket.
void tune_tcp_socket(int fd, unsigned keepalive_idle_s, unsigned user_timeout_ms);
// The keepalive and TCP_USER_TIMEOUT part alone.
void tune_tcp_liveness(int fd, unsigned keepalive_idle_s, unsigned user_timeout_ms);

} // namespace kal::uvx
