#pragma once
// A tiny TLS HTTP/1.1 server for health-checker tests: blocking OpenSSL on threads, bound to
// 127.0.0.1 (port 0 unless given). Answers every request with `status`; `hang` makes it accept TCP
// but answer nothing (neither handshakes nor requests), like a SIGSTOPped apiserver. Counts
// connections, handshakes (full / resumed) and requests, and keeps the last SNI it was sent.
#include "health/tls_engine.h"

#include <arpa/inet.h>
#include <csignal>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace kal::testing {

class TestTlsServer {
public:
  // `port` 0: any free port; else that one (to stand in for a restarted server).
  explicit TestTlsServer(std::shared_ptr<TlsContext> ctx, uint16_t port = 0)
      : ctx_(std::move(ctx)) {
    std::signal(SIGPIPE,
                SIG_IGN); // as the proxy does: a peer gone mid-write is an error, not death
    lfd_ = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(lfd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    bind(lfd_, reinterpret_cast<sockaddr *>(&a), sizeof a);
    socklen_t len = sizeof a;
    getsockname(lfd_, reinterpret_cast<sockaddr *>(&a), &len);
    port_ = ntohs(a.sin_port);
    listen(lfd_, 64);
    accept_thread_ = std::thread([this] { accept_loop(); });
  }
  ~TestTlsServer() { stop(); }

  uint16_t port() const { return port_; }

  // Stops accepting (new connects are refused) and closes every connection: a killed apiserver.
  void stop() {
    if (stopping_.exchange(true)) {
      return;
    }
    accept_thread_.join();
    close(lfd_);
    std::vector<std::thread> threads;
    {
      std::lock_guard lock(mu_);
      threads.swap(threads_);
    }
    for (auto &t : threads) {
      t.join();
    }
  }

  // Closes the established connections but keeps listening (the peer's connections break).
  void drop_connections() { drop_generation_++; }

  // The server name the last completed handshake was sent (SNI); empty: none was sent.
  std::string last_sni() {
    std::lock_guard lock(mu_);
    return last_sni_;
  }

  std::atomic<int> status{200};
  std::atomic<bool> hang{false};
  std::atomic<int> close_next_requests{0}; // drop the connection on receiving the next N requests
  // Close the connection right after each answer, without announcing it (`Connection: close`).
  std::atomic<bool> close_after_answer{false};
  // Send the head and only part of the body (Content-Length larger than what is sent), then keep
  // the connection open without another byte: a body that never finishes.
  std::atomic<bool> truncate_body{false};
  std::atomic<int> connections{0}, handshakes{0}, resumed{0}, requests{0};

private:
  void accept_loop() {
    while (!stopping_) {
      pollfd p{lfd_, POLLIN, 0};
      if (poll(&p, 1, 20) <= 0) {
        continue;
      }
      int fd = accept(lfd_, nullptr, nullptr);
      if (fd < 0) {
        continue;
      }
      connections++;
      // Non-blocking, so that every wait goes through wait_readable() and honours stop().
      fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
      std::lock_guard lock(mu_);
      threads_.emplace_back([this, fd] { serve(fd); });
    }
  }

  // Waits for `fd` to be readable while honouring stop/drop/hang; false: give up the connection.
  bool wait_readable(int fd, int generation) {
    while (!stopping_ && drop_generation_ == generation) {
      if (hang) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        continue;
      }
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, 20) > 0) {
        return true;
      }
    }
    return false;
  }

  void serve(int fd) {
    const int generation = drop_generation_;
    SSL *ssl = SSL_new(ctx_->get());
    SSL_set_fd(ssl, fd);
    bool ok = true;
    while (ok) {
      if (!wait_readable(fd, generation)) {
        ok = false;
        break;
      }
      int rc = SSL_accept(ssl);
      if (rc == 1) {
        break;
      }
      int err = SSL_get_error(ssl, rc);
      ok = err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE;
    }
    if (ok) {
      {
        const char *sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
        std::lock_guard lock(mu_);
        last_sni_ = sni ? sni : "";
      }
      handshakes++;
      if (SSL_session_reused(ssl)) {
        resumed++;
      }
      std::string in;
      char buf[4096];
      while (wait_readable(fd, generation)) {
        int n = SSL_read(ssl, buf, sizeof buf);
        if (n <= 0) {
          if (SSL_get_error(ssl, n) == SSL_ERROR_WANT_READ) {
            continue;
          }
          break;
        }
        in.append(buf, static_cast<size_t>(n));
        size_t end;
        while ((end = in.find("\r\n\r\n")) != std::string::npos) {
          in.erase(0, end + 4);
          requests++;
          if (close_next_requests > 0) {
            close_next_requests--;
            SSL_free(ssl);
            close(fd);
            return; // gone without an answer: the keep-alive race seen from the client
          }
          while (hang && !stopping_ && drop_generation_ == generation) {
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
          }
          const int st = status;
          const std::string body = st == 200 ? "ok" : "[-]shutdown failed: reason withheld\n";
          const bool truncate = truncate_body;
          std::string resp = "HTTP/1.1 " + std::to_string(st) +
                             " X\r\nContent-Type: text/plain\r\nContent-Length: " +
                             std::to_string(body.size() + (truncate ? 100 : 0)) + "\r\n\r\n" + body;
          SSL_write(ssl, resp.data(), static_cast<int>(resp.size()));
          if (close_after_answer) {
            SSL_free(ssl);
            close(fd);
            return;
          }
        }
      }
    }
    SSL_free(ssl);
    close(fd);
  }

  std::shared_ptr<TlsContext> ctx_;
  int lfd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> drop_generation_{0};
  std::thread accept_thread_;
  std::mutex mu_; // guards threads_ and last_sni_
  std::vector<std::thread> threads_;
  std::string last_sni_;
};

} // namespace kal::testing
