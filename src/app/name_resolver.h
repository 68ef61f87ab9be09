#pragma once
// Host-name lookups off the loop thread. Each lookup runs getaddrinfo(3) on a detached thread of
// its own and hands its result back to the loop through an async handle. Unlike the libuv thread
// pool, a lookup stuck on a DNS server that never answers holds nothing the process waits for:
// destroying the resolver abandons lookups still running (their results are dropped), so the loop
// ends and the process exits on time, and no other libuv work queues up behind them.
#include "uvx/handle.h"

#include <sys/socket.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace kal {

class NameResolver {
public:
  struct Answer {
    std::string key;   // the caller's name for the lookup
    std::string error; // empty on success
    std::vector<sockaddr_storage> addrs;
  };
  using Done = std::function<void(Answer &&)>;

  // `done` runs on the loop's thread, once per lookup that ends while the resolver lives.
  NameResolver(uv_loop_t *loop, Done done);
  ~NameResolver();
  NameResolver(const NameResolver &) = delete;
  NameResolver &operator=(const NameResolver &) = delete;

  // Starts a lookup of host (TCP, IPv4 and IPv6) with port. False if no thread could be started.
  bool lookup(std::string key, std::string host, uint16_t port);

  void on_async(); // internal: the async handle's callback

private:
  // Shared with the lookup threads; `alive` is cleared (under `mu`) before the async handle
  // closes, so no thread signals a handle that is gone.
  struct Shared {
    std::mutex mu;
    bool alive = true;
    uv_async_t *async = nullptr;
    std::vector<Answer> answers;
  };
  std::shared_ptr<Shared> shared_;
  uvx::Handle<uv_async_t> async_;
  Done done_;
};

} // namespace kal
