#pragma once
// Deferred deletion (Envoy's Dispatcher::deferredDelete): an object that ends inside one of its
// own callbacks is queued here instead of deleted, and freed by a check handle at the end of the
// loop iteration, after every callback of that turn has returned. So no object is ever deleted
// while a frame of its own is still on the stack, and a callback that follows in the same turn
// finds a closed object rather than freed memory.
#include "uvx/handle.h"

#include <uv.h>

#include <memory>
#include <vector>

namespace kal::uvx {

template <class T> class DeferredDelete {
public:
  // Without a loop (or when the handle cannot be made) queued objects wait for flush() or the
  // destructor.
  explicit DeferredDelete(uv_loop_t *loop) {
    if (loop && uv_check_init(loop, check_.make(this)) != 0) {
      check_.abandon();
    }
  }
  DeferredDelete(const DeferredDelete &) = delete;
  DeferredDelete &operator=(const DeferredDelete &) = delete;
  // Frees what is still queued: the owner is going away, and nothing of it runs any more.
  ~DeferredDelete() { flush(); }

  // Queues `t` to be freed at the end of this loop iteration.
  void push(std::unique_ptr<T> t) {
    if (!t) {
      return;
    }
    queue_.push_back(std::move(t));
    if (check_ && queue_.size() == 1) {
      uv_check_start(check_.get(), check_cb);
    }
  }
  size_t pending() const { return queue_.size(); }

  // Frees everything queued now. Destructors may queue more: those are freed too.
  void flush() {
    while (!queue_.empty()) {
      auto dead = std::move(queue_);
      queue_.clear();
      dead.clear();
    }
    if (check_) {
      uv_check_stop(check_.get());
    }
  }

private:
  static void check_cb(uv_check_t *c) noexcept {
    if (auto *self = static_cast<DeferredDelete *>(c->data)) {
      self->flush();
    }
  }

  Handle<uv_check_t> check_;
  std::vector<std::unique_ptr<T>> queue_;
};

} // namespace kal::uvx
