#pragma once
// RAII ownership of libuv handles.
//
// A uv handle must not move while libuv knows it and its memory must live until its close callback
// has run. Handle<T> heap-allocates the handle; the destructor (or reset()) clears `data` — so late
// callbacks find no owner — and calls uv_close with a callback that frees the memory.
#include <uv.h>

#include <utility>

namespace kal::uvx {

template <class T> class Handle {
public:
  Handle() = default;
  Handle(const Handle &) = delete;
  Handle &operator=(const Handle &) = delete;
  Handle(Handle &&o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
  Handle &operator=(Handle &&o) noexcept {
    if (this != &o) {
      reset();
      h_ = std::exchange(o.h_, nullptr);
    }
    return *this;
  }
  ~Handle() { reset(); }

  // Allocates a fresh, uninitialised handle whose `data` is `owner`; the caller runs uv_*_init.
  T *make(void *owner) {
    reset();
    h_ = new T{};
    h_->data = owner;
    return h_;
  }

  // Closes the handle (if the init succeeded) and gives the memory back after the close callback.
  // If init failed, call abandon() instead.
  void reset() {
    if (!h_) {
      return;
    }
    auto *base = reinterpret_cast<uv_handle_t *>(h_);
    base->data = nullptr;
    if (!uv_is_closing(base)) {
      uv_close(base, [](uv_handle_t *x) { delete reinterpret_cast<T *>(x); });
    }
    h_ = nullptr;
  }

  // Frees a handle whose uv_*_init failed (libuv never saw it).
  void abandon() {
    delete h_;
    h_ = nullptr;
  }

  T *get() const { return h_; }
  T *operator->() const { return h_; }
  explicit operator bool() const { return h_ != nullptr; }
  uv_handle_t *base() const { return reinterpret_cast<uv_handle_t *>(h_); }
  uv_stream_t *stream() const { return reinterpret_cast<uv_stream_t *>(h_); }

private:
  T *h_ = nullptr;
};

// A one-shot or repeating timer owned by an object; callbacks get the owner via data.
class Timer {
public:
  Timer() = default;
  bool init(uv_loop_t *loop, void *owner) {
    auto *t = h_.make(owner);
    if (uv_timer_init(loop, t) != 0) {
      h_.abandon();
      return false;
    }
    return true;
  }
  void start(uv_timer_cb cb, uint64_t timeout_ms, uint64_t repeat_ms = 0) {
    if (h_) {
      uv_timer_start(h_.get(), cb, timeout_ms, repeat_ms);
    }
  }
  void stop() {
    if (h_) {
      uv_timer_stop(h_.get());
    }
  }
  bool active() const { return h_ && uv_is_active(h_.base()); }
  void unref() {
    if (h_) {
      uv_unref(h_.base());
    }
  }
  void reset() { h_.reset(); }
  uv_timer_t *get() const { return h_.get(); }

private:
  Handle<uv_timer_t> h_;
};

// Owner of `T` recovered from a handle's data in a C callback; null when the owner is gone.
template <class Owner, class H> Owner *owner_of(H *h) { return static_cast<Owner *>(h->data); }

} // namespace kal::uvx
