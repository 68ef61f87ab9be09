#pragma once
// One apiserver endpoint as the running proxy tracks it: address, health and counters.
//
// Shared between the health checker (which writes `health`), the proxy worker loops (which read it
// to pick an endpoint and bump counters) and the admin server (which reads everything). Fields that
// cross threads are atomics with relaxed ordering: they are statistics and hints, never used to
// publish other memory. Upstreams are owned by shared_ptr so that a reload can drop one from the
// active set while sessions bound to it still run.
#include "kube_api_lb/core/check_history.h"
#include "kube_api_lb/core/endpoint.h"
#include "kube_api_lb/core/health.h"

#include <sys/socket.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <vector>

namespace kal {

struct UpstreamCounters {
  std::atomic<uint64_t> active{0}; // client connections bound now
  std::atomic<uint64_t> total{0};  // client connections ever bound
  std::atomic<uint64_t> bytes_to_upstream{0};
  std::atomic<uint64_t> bytes_to_client{0};
  std::atomic<uint64_t> connect_failures{0}; // dials for clients that failed or timed out
  std::atomic<uint64_t> retries{0};          // client dials moved from this endpoint to another
  std::atomic<uint64_t> first_byte_timeouts{0};
  std::atomic<uint64_t> early_closes{0};   // closed/reset before its first byte: re-dialled
  std::atomic<uint64_t> closed_on_down{0}; // client connections closed because it went down
  std::atomic<uint64_t> drained{0};        // closed after drain-timeout once removed by reload
  // Closes a dead verdict would have made but did not: live traffic contradicted it, or the
  // endpoint's connections were already closed once within the flap window.
  std::atomic<uint64_t> closes_prevented{0};
};

// How the checker learns that an endpoint is alive (reported in /stats and metrics).
enum class Liveness : uint8_t {
  Unknown, // no check connection has been established yet
  Http2,   // HTTP/2 PINGs on the kept-alive check connection; /readyz every readyzInterval
  Http1,   // every check is a request (the apiserver did not negotiate h2, or http2 is off)
};
const char *to_string(Liveness l); // "unknown", "http2-ping", "http1"

struct HealthCounters {
  std::atomic<uint64_t> checks{0};
  // Failures by CheckResult value (index = static_cast<size_t>(CheckResult)).
  std::array<std::atomic<uint64_t>, 9> failures{};
  std::atomic<uint64_t> transitions{0};
  std::atomic<uint64_t> handshakes{0}; // full + resumed TLS handshakes of the checker
  std::atomic<uint64_t> resumed_handshakes{0};
  std::atomic<uint64_t> handshakes_last_minute{0};
  std::atomic<uint64_t> last_check_micros{0};  // duration of the last completed check
  std::atomic<bool> auth_misconfigured{false}; // last /readyz answered 401/403
  std::atomic<uint8_t> last_result{0};         // CheckResult
  std::atomic<uint64_t> requests{0};           // GET path requests sent by the checker
  std::atomic<uint64_t> pings{0};              // HTTP/2 PINGs sent by the checker
  std::atomic<uint64_t> rtt_micros{0};         // smoothed round trip of the check connection
  std::atomic<uint64_t> timeout_micros{0};     // the check timeout derived from it
  std::atomic<uint8_t> liveness{0};            // Liveness
  // false while the checker holds a dead verdict (process or path gone), see core/verdict.h
  std::atomic<bool> alive{true};
  // While dead: what completed the dead verdict (core/verdict.h Observation + 1; 0 when alive).
  std::atomic<uint8_t> dead_by{0};
  // Stall periods of the check connection's send queue (core/send_stall.h), and its bytes not
  // yet acknowledged at the last sample.
  std::atomic<uint64_t> stalls{0};
  std::atomic<uint64_t> send_queue_bytes{0};
  // Held not ready by an outside signal (HealthChecker::set_outside_not_ready).
  std::atomic<bool> outside_not_ready{false};
  // When the health last changed (mono_ms base; 0: never, Unknown since the endpoint was added).
  std::atomic<int64_t> health_since_ms{0};
};

class Upstream {
public:
  explicit Upstream(HostPort address) : address_(std::move(address)) {}
  Upstream(const Upstream &) = delete;
  Upstream &operator=(const Upstream &) = delete;

  const HostPort &address() const { return address_; }
  std::string name() const { return address_.str(); }

  Health health() const { return health_.load(std::memory_order_relaxed); }
  void set_health(Health h) { health_.store(h, std::memory_order_relaxed); }

  // Bumped each time the endpoint is marked down for a hard failure. A session remembers the epoch
  // it was bound in; workers close sessions whose epoch is older than the upstream's. The checker
  // sets the health before it bumps (release); a worker reads the epoch (acquire) before the
  // health, so a healthy-looking endpoint is never bound with an epoch newer than its kill.
  uint64_t kill_epoch() const { return kill_epoch_.load(std::memory_order_acquire); }
  void bump_kill_epoch() { kill_epoch_.fetch_add(1, std::memory_order_acq_rel); }

  // When the endpoint last came up (0: never), for slow start: milliseconds on the one time base
  // of the process (CLOCK_MONOTONIC, see uvx/time_source.h mono_ms()), written by the health
  // checker from its TimeSource and compared with a worker's TimeSource now on another thread.
  int64_t up_since_ms() const { return up_since_ms_.load(std::memory_order_relaxed); }
  void set_up_since_ms(int64_t v) { up_since_ms_.store(v, std::memory_order_relaxed); }

  // Set while a reload has removed this endpoint: no new connections, existing ones drain.
  // Cleared if a later reload adds it back before its drain timeout.
  bool removed() const { return removed_.load(std::memory_order_relaxed); }
  void set_removed(bool v = true) { removed_.store(v, std::memory_order_relaxed); }

  // Set while endpoint discovery says the apiserver left the kubernetes EndpointSlice or is not
  // ready in it (core/discovery_merge.h): an outside not-ready signal. No new connections while
  // another endpoint is Up or Unknown (the picker ranks it just above Down ones); nothing is
  // closed, and the health checks go on as before.
  bool withdrawn() const { return withdrawn_.load(std::memory_order_relaxed); }
  void set_withdrawn(bool v) { withdrawn_.store(v, std::memory_order_relaxed); }

  // Where the endpoint came from: kSourceSeed | kSourceDiscovered | kSourceSaved bits
  // (core/discovery_merge.h); seed only without discovery.
  uint8_t sources() const { return sources_.load(std::memory_order_relaxed); }
  void set_sources(uint8_t s) { sources_.store(s, std::memory_order_relaxed); }

  // Passive evidence from client dials waiting for the checker (it re-checks at once).
  void add_passive_failure() { passive_failures_.fetch_add(1, std::memory_order_relaxed); }
  uint32_t take_passive_failures() { return passive_failures_.exchange(0); }

  // Resolved addresses: IP literals at construction, names by the resolver. Empty: unresolved.
  std::vector<sockaddr_storage> addrs() const {
    std::lock_guard lock(mu_);
    return addrs_;
  }
  // The address to dial, without allocating (hot path). False when unresolved.
  bool first_addr(sockaddr_storage &out) const {
    std::lock_guard lock(mu_);
    if (addrs_.empty()) {
      return false;
    }
    out = addrs_.front();
    return true;
  }
  void set_addrs(std::vector<sockaddr_storage> a) {
    std::lock_guard lock(mu_);
    addrs_ = std::move(a);
  }

  UpstreamCounters counters;
  HealthCounters health_counters;
  CheckHistory check_history; // the status page's latency chart (bounded)

private:
  const HostPort address_;
  std::atomic<Health> health_{Health::Unknown};
  std::atomic<uint64_t> kill_epoch_{0};
  std::atomic<int64_t> up_since_ms_{0};
  std::atomic<bool> removed_{false};
  std::atomic<bool> withdrawn_{false};
  std::atomic<uint8_t> sources_{1}; // kSourceSeed
  std::atomic<uint32_t> passive_failures_{0};
  mutable std::mutex mu_;
  std::vector<sockaddr_storage> addrs_;
};

} // namespace kal
