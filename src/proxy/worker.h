#pragma once
// A proxy worker: one event loop with its listening sockets and the sessions accepted on them.
//
// Worker 0 runs on the main loop (next to the health checker and the admin server); with
// --workers=N the others each run a loop on their own thread, polling duplicates of the same
// listening sockets, so whichever loop is free accepts (and a WorkerGroup evens out what they
// hold). Everything in a Worker is touched only from its own loop thread, except post(),
// take_handed_over() and the atomic figures, which any thread may use.
#include "kube_api_lb/core/intrusive_list.h"
#include "kube_api_lb/core/picker.h"
#include "kube_api_lb/core/result.h"
#include "proxy/buffer_pool.h"
#include "proxy/session.h"
#include "uvx/deferred_delete.h"
#include "uvx/handle.h"
#include "uvx/listener.h"
#include "uvx/time_source.h"

#include <atomic>
#include <functional>
#include <mutex>
#include <vector>

namespace kal {

// Duplicates of listening sockets handed from one worker to another; the ones not taken are
// closed with it.
class ListenFds {
public:
  ListenFds() = default;
  ListenFds(const ListenFds &) = delete;
  ListenFds &operator=(const ListenFds &) = delete;
  ~ListenFds();
  void add(const HostPort &hp, int fd) { fds_.emplace_back(hp, fd); }
  // The descriptor for `hp` (the caller owns it from now on), or -1.
  int take(const HostPort &hp);

private:
  std::vector<std::pair<HostPort, int>> fds_;
};

class Worker;

// The workers polling one shared listening socket, so that connections spread over them. The
// loop woken first accepts everything queued (libuv accepts until EAGAIN), so a burst of
// connections (kubelet and kube-proxy reconnecting after a restart, a benchmark's 50) could land
// on one loop while the other idles, and one core would then carry all of them for as long as
// they live. A worker about to take a connection while another holds less than half as many
// hands it over instead (the descriptor, through that worker's queue), as HAProxy's listener
// multi-queue does. The set is fixed once the loops run; workers never change without a restart.
class WorkerGroup {
public:
  // Hand over only when the accepting worker holds more than twice the lightest's connections
  // plus this many. A ratio, not a difference: with short connections (one per request) the
  // counts swing by a whole accept batch, and a difference of even 12 moved one connection in
  // seven (each hand-over costs four system calls and a wake-up of the other loop); with the
  // ratio about one in twenty moves, and a burst of 50 long-lived ones ends no worse than 34:16
  // instead of up to 50:0.
  static constexpr size_t kSlack = 2;

  // Before any loop runs.
  void add(Worker *w) { workers_.push_back(w); }
  // The worker that should take a connection `self` accepted, with one connection reserved on
  // it (see Worker::load), or nullptr when `self` should keep it. Any worker's thread.
  Worker *lighter_than(const Worker &self);
  // Queues `fd` on `to`. False once the group is closed or `to` cannot be woken: the caller
  // keeps the connection and drops the reservation.
  bool hand_over(Worker &to, int fd);
  // From here on every worker keeps what it accepts. Called before any worker is destroyed.
  void close();

private:
  std::mutex mu_;
  bool open_ = true;
  std::vector<Worker *> workers_;
};

class Worker {
public:
  // `time` is the TimeSource of `loop` (not owned; it outlives the worker): the worker's `now`,
  // on the one time base the health checker writes Upstream::up_since_ms() in.
  Worker(uv_loop_t *loop, TimeSource &time, int index, ProxySettings settings,
         std::shared_ptr<const UpstreamList> ups);
  ~Worker();
  Worker(const Worker &) = delete;
  Worker &operator=(const Worker &) = delete;

  // Makes the listening set exactly `addrs`: keeps sockets of addresses already bound (their
  // pending connections are untouched), binds new ones, closes the others. On error nothing
  // changes and the error names the address ("listen 127.0.0.1:6443: address already in use").
  // Safe to call before the loop runs, from the thread that created the loop.
  //
  // With `shared`, new addresses use the sockets in it (duplicates of another worker's) instead
  // of binding: every loop then polls the same listening socket and whichever is free first
  // accepts what is queued. With SO_REUSEPORT the kernel would hash each connection to one loop
  // whether it is busy or not (measured: 20% fewer new connections per second, p99 up to 2x).
  // With `reuseport` (and no `shared`) each worker binds its own SO_REUSEPORT socket instead: used
  // above kSharedAcceptMaxLoops loops, where waking every loop for each connection on one shared
  // socket would cost more than the kernel's hashing.
  Result<bool> listen(const std::vector<HostPort> &addrs, ListenFds *shared = nullptr,
                      bool reuseport = false);
  static constexpr int kSharedAcceptMaxLoops = 4;
  static bool reuseport_for(int workers) { return workers > kSharedAcceptMaxLoops; }
  // Duplicates of this worker's listening sockets, for the other workers.
  void dup_listen_fds(ListenFds &out) const;

  // Spread accepted connections over `group` (null: keep them all).
  void join(WorkerGroup *group) { group_ = group; }
  // Connections held or on their way here: the figure the group evens out. Thread-safe.
  size_t load() const {
    return session_count_.load(std::memory_order_relaxed) +
           inbound_.load(std::memory_order_relaxed);
  }
  uint64_t handed_over_total() const { return handed_over_.load(std::memory_order_relaxed); }
  // Client connections closed because the process had no descriptor (or memory) left for their
  // upstream socket. Thread-safe read.
  uint64_t out_of_resources_total() const {
    return out_of_resources_.load(std::memory_order_relaxed);
  }
  // A session could not open its upstream socket for lack of descriptors or memory (`uv_err`):
  // counted, and logged at most once per 10 s per worker.
  void note_out_of_resources(int uv_err);

  // Runs `fn` on this worker's loop thread (soon). Thread-safe.
  void post(std::function<void()> fn);

  // The following run on the worker's own thread.
  void stop_accepting();
  void close_all(Session::CloseReason why);
  // Shutdown: closes the sessions that are between exchanges (core/shutdown_drain.h) and returns
  // how many it closed. Called again and again while the process drains.
  size_t close_quiet_sessions();
  // Closes sessions bound to an endpoint that was marked down for a hard failure since.
  void close_killed_sessions();
  // Closes sessions bound to these endpoints (removed by a reload, drain timeout over).
  void close_sessions_of(const std::vector<std::shared_ptr<Upstream>> &ups);
  void set_upstreams(std::shared_ptr<const UpstreamList> ups);
  void set_settings(const ProxySettings &s);
  void share_pick_cursor(std::atomic<uint64_t> *cursor) { picker_.share_cursor(cursor); }
  // Passive evidence against an endpoint: hook that wakes the health checker. Thread-safe target.
  std::function<void()> on_passive_failure;

  size_t session_count() const { return session_count_.load(std::memory_order_relaxed); }
  uint64_t accepted_total() const { return accepted_.load(std::memory_order_relaxed); }
  uint64_t spliced_total() const { return spliced_.load(std::memory_order_relaxed); }
  int index() const { return index_; }

  // Upstream sockets get keepalive and TCP_USER_TIMEOUT once their connection has lived
  // kLivenessDelayMs: a FIFO in connect order, swept by a timer that runs only while it is not
  // empty. Saves four setsockopt calls on every short connection.
  static constexpr uint64_t kLivenessDelayMs = 1000;

private:
  friend class Session;     // the services below
  friend class WorkerGroup; // reservations and hand-overs

  // For sessions.
  uv_loop_t *loop() const { return loop_; }
  // Now on the one time base (uvx/time_source.h), e.g. to compare with up_since_ms().
  TimePoint now() const { return time_.now(); }
  BufferPool &pool() { return pool_; }
  const ProxySettings &settings() const { return settings_; }
  std::shared_ptr<const UpstreamList> upstreams() const { return ups_; }
  Picker &picker() { return picker_; }
  void add_spliced(uint64_t n) { spliced_.fetch_add(n, std::memory_order_relaxed); }
  void queue_liveness(Session &s);
  void dequeue_liveness(Session &s);
  // A closed session leaves the worker's list; it is freed at the end of this loop iteration.
  void retire(Session &s);

  // For the group.
  void reserve_inbound() { inbound_.fetch_add(1, std::memory_order_relaxed); }
  void drop_inbound() { inbound_.fetch_sub(1, std::memory_order_relaxed); }
  // Queues a connection another worker accepted; it starts on this loop soon. False when this
  // worker cannot be woken (the caller keeps `fd`). Thread-safe.
  bool take_handed_over(int fd);

  // A new session, owned by the worker's list.
  Session &new_session();
  // Accepts the pending connection and queues it on `to` (reserved by the group); false when it
  // could not be moved (the connection is still pending on `server`, the reservation dropped).
  bool hand_over(uv_stream_t *server, Worker &to);

  static void connection_cb(uv_stream_t *server, int status) noexcept;
  static void async_cb(uv_async_t *a) noexcept;
  static void trim_cb(uv_timer_t *t) noexcept;
  static void liveness_cb(uv_timer_t *t) noexcept;
  void on_connection(uv_stream_t *server, int status);
  void on_async();
  void on_trim_tick();
  void on_liveness_timer();

  uv_loop_t *loop_;
  TimeSource &time_;
  int index_;
  ProxySettings settings_;
  std::shared_ptr<const UpstreamList> ups_;
  Picker picker_;
  BufferPool pool_;
  struct Listener {
    HostPort addr;
    uvx::Listener sock;
  };
  std::vector<Listener> listeners_;
  uvx::Handle<uv_async_t> async_;
  uvx::Timer trim_timer_;
  uvx::Timer liveness_timer_;
  uint64_t closed_since_trim_ = 0;
  std::mutex mu_;
  std::vector<std::function<void()>> posted_;
  std::vector<int> handed_; // connections handed over by other workers, not yet started
  WorkerGroup *group_ = nullptr;
  bool accepting_ = true;
  // Closed sessions, freed at the end of the loop iteration they closed in; open ones on the list.
  uvx::DeferredDelete<Session> graveyard_;
  OwnedList<Session, AllSessions> sessions_;
  IntrusiveList<Session, LivenessQueue> live_;
  std::atomic<size_t> session_count_{0};
  std::atomic<uint64_t> accepted_{0};
  std::atomic<uint64_t> spliced_{0};
  std::atomic<size_t> inbound_{0};       // reserved by other workers' hand-overs
  std::atomic<uint64_t> handed_over_{0}; // connections this worker accepted and handed over
  std::atomic<uint64_t> out_of_resources_{0};
  uint64_t out_of_resources_warned_ms_ = 0;
};

} // namespace kal
