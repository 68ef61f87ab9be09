#pragma once
// The proxy workers: worker 0 on the main loop, workers 1..N-1 each on a loop and thread of their
// own, all polling the same listening sockets (or SO_REUSEPORT ones above
// Worker::kSharedAcceptMaxLoops), sharing one pick cursor and, on a shared socket, one WorkerGroup.
// The pool owns the workers, their loops and threads; its methods run on the main loop's thread.
#include "proxy/worker.h"
#include "uvx/uv_time_source.h"

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

namespace kal {

class WorkerPool {
public:
  // Process-wide figures summed over the workers (atomics, read from any thread).
  struct Totals {
    uint64_t accepted = 0;
    uint64_t active = 0;
    uint64_t spliced_bytes = 0;
    uint64_t handed_over = 0;
    uint64_t out_of_resources = 0;
  };

  // Worker 0 will run on `main_loop` with `main_time`, that loop's TimeSource (neither owned; both
  // must outlive the pool). Each other worker gets a loop and a UvTimeSource of its own.
  WorkerPool(uv_loop_t *main_loop, TimeSource &main_time);
  // Stops nothing: call join() after the main loop has run dry.
  ~WorkerPool();
  WorkerPool(const WorkerPool &) = delete;
  WorkerPool &operator=(const WorkerPool &) = delete;

  // Makes `count` workers with `settings` and `ups`, and binds `listen` on each: worker 0 binds,
  // the others poll duplicates of its sockets (or bind their own SO_REUSEPORT ones). Nothing runs
  // yet. On error (naming the address) the workers made so far stay until join().
  Result<bool> start(int count, const std::vector<HostPort> &listen, const ProxySettings &settings,
                     std::shared_ptr<const UpstreamList> ups);
  // Passive evidence against an endpoint from any worker: `fn` runs on that worker's thread.
  // Before run().
  void on_passive_failure(const std::function<void()> &fn);
  // Starts the threads' loops; on a shared socket the workers first join one WorkerGroup.
  void run();

  // Runs `fn` on every worker's own loop thread: worker 0 now, the others soon.
  void post_to_all(const std::function<void(Worker &)> &fn);
  // Makes every worker's listening set exactly `addrs` (a reload): worker 0 binds now, and if it
  // cannot, nothing changes and the error is returned; the others follow on their threads.
  Result<bool> listen(const std::vector<HostPort> &addrs);
  // Hands new settings and endpoints to every worker (a reload).
  void update(const ProxySettings &settings, std::shared_ptr<const UpstreamList> ups);
  // No new connections anywhere from now on (shutdown): the group stops handing over, every
  // worker closes its listeners.
  void stop_accepting();
  // stop_accepting(), and every worker closes all its sessions.
  void close_all();
  // Every worker closes the sessions that are between exchanges (shutdown; see
  // core/shutdown_drain.h). Asynchronous for the threads' workers.
  void close_quiet();

  Totals totals() const;

  // After the main loop has run dry: joins the threads, destroys their workers and closes their
  // loops (logging a loop that does not close cleanly), then destroys worker 0. Idempotent.
  void join();

private:
  struct Thread {
    uv_loop_t loop;
    std::unique_ptr<uvx::UvTimeSource> time; // of `loop`; outlives the worker
    std::unique_ptr<Worker> worker;
    std::thread thread;
  };

  uv_loop_t *main_loop_;
  TimeSource &main_time_;
  bool reuseport_ = false;
  std::atomic<uint64_t> pick_cursor_{0}; // shared by every worker's picker
  WorkerGroup group_;                    // outlives the workers below
  std::unique_ptr<Worker> main_;
  std::vector<std::unique_ptr<Thread>> threads_;
};

} // namespace kal
