#include "app/worker_pool.h"

#include "kube_api_lb/log/logger.h"

namespace kal {

WorkerPool::WorkerPool(uv_loop_t *main_loop, TimeSource &main_time)
    : main_loop_(main_loop), main_time_(main_time) {}

WorkerPool::~WorkerPool() { join(); }

Result<bool> WorkerPool::start(int count, const std::vector<HostPort> &listen,
                               const ProxySettings &settings,
                               std::shared_ptr<const UpstreamList> ups) {
  main_ = std::make_unique<Worker>(main_loop_, main_time_, 0, settings, ups);
  main_->share_pick_cursor(&pick_cursor_);
  reuseport_ = Worker::reuseport_for(count);
  if (auto r = main_->listen(listen, nullptr, reuseport_); !r) {
    return r;
  }
  for (int i = 1; i < count; ++i) {
    auto t = std::make_unique<Thread>();
    uv_loop_init(&t->loop);
    t->time = std::make_unique<uvx::UvTimeSource>(&t->loop);
    t->worker = std::make_unique<Worker>(&t->loop, *t->time, i, settings, ups);
    t->worker->share_pick_cursor(&pick_cursor_);
    ListenFds shared;
    if (!reuseport_) {
      main_->dup_listen_fds(shared);
    }
    if (auto r = t->worker->listen(listen, &shared, reuseport_); !r) {
      t->worker.reset();
      uv_run(&t->loop, UV_RUN_DEFAULT);
      uv_loop_close(&t->loop);
      return r;
    }
    threads_.push_back(std::move(t));
  }
  return true;
}

void WorkerPool::on_passive_failure(const std::function<void()> &fn) {
  if (main_) {
    main_->on_passive_failure = fn;
  }
  for (auto &t : threads_) {
    t->worker->on_passive_failure = fn;
  }
}

void WorkerPool::run() {
  if (!reuseport_ && !threads_.empty()) {
    // Loops polling one shared socket even out what they accept (see WorkerGroup).
    // The thread loops do not run yet: set directly.
    group_.add(main_.get());
    main_->join(&group_);
    for (auto &t : threads_) {
      group_.add(t->worker.get());
      t->worker->join(&group_);
    }
  }
  for (auto &t : threads_) {
    uv_loop_t *l = &t->loop;
    t->thread = std::thread([l] { uv_run(l, UV_RUN_DEFAULT); });
  }
}

void WorkerPool::post_to_all(const std::function<void(Worker &)> &fn) {
  if (main_) {
    fn(*main_);
  }
  for (auto &t : threads_) {
    Worker *w = t->worker.get();
    w->post([w, fn] { fn(*w); });
  }
}

Result<bool> WorkerPool::listen(const std::vector<HostPort> &addrs) {
  // Unchanged addresses keep their sockets (and pending connections); only the difference is
  // bound or closed. If a new address cannot be bound nothing changes.
  if (auto r = main_->listen(addrs, nullptr, reuseport_); !r) {
    return r;
  }
  for (auto &t : threads_) {
    Worker *w = t->worker.get();
    // Duplicated now, on this thread, while the main worker's sockets are certainly open.
    auto shared = std::make_shared<ListenFds>();
    if (!reuseport_) {
      main_->dup_listen_fds(*shared);
    }
    w->post([w, addrs, shared, reuseport = reuseport_] {
      if (auto r = w->listen(addrs, shared.get(), reuseport); !r) {
        log::error("worker could not bind new listeners").kv("error", r.error());
      }
    });
  }
  return true;
}

void WorkerPool::update(const ProxySettings &settings, std::shared_ptr<const UpstreamList> ups) {
  post_to_all([settings, ups](Worker &w) {
    w.set_settings(settings);
    w.set_upstreams(ups);
  });
}

void WorkerPool::stop_accepting() {
  group_.close();
  post_to_all([](Worker &w) { w.stop_accepting(); });
}

void WorkerPool::close_all() {
  group_.close();
  post_to_all([](Worker &w) {
    w.stop_accepting();
    w.close_all(Session::CloseReason::Shutdown);
  });
}

void WorkerPool::close_quiet() {
  post_to_all([](Worker &w) { w.close_quiet_sessions(); });
}

WorkerPool::Totals WorkerPool::totals() const {
  Totals t;
  auto add = [&t](const Worker &w) {
    t.accepted += w.accepted_total();
    t.active += w.session_count();
    t.spliced_bytes += w.spliced_total();
    t.handed_over += w.handed_over_total();
    t.out_of_resources += w.out_of_resources_total();
  };
  if (main_) {
    add(*main_);
  }
  for (const auto &th : threads_) {
    add(*th->worker);
  }
  return t;
}

void WorkerPool::join() {
  for (auto &t : threads_) {
    if (t->thread.joinable()) {
      t->thread.join();
    }
    int index = t->worker ? t->worker->index() : -1;
    t->worker.reset();
    uv_run(&t->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&t->loop) != 0) {
      log::warn("worker loop did not close cleanly").kv("worker", index);
    }
  }
  threads_.clear();
  main_.reset();
}

} // namespace kal
