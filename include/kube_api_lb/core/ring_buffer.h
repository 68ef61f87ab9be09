#pragma once
// A ring buffer of fixed capacity: pushing into a full one drops the oldest element. The storage
// is allocated once, at construction, so what the status page draws (check latencies, the event
// list) costs a bounded amount of memory however long the proxy runs. Single-threaded; callers
// that share one across threads guard it themselves (core/check_history.h).
#include <cstddef>
#include <cstdint>
#include <vector>

namespace kal {

template <class T> class RingBuffer {
public:
  // `capacity` 0 keeps nothing (every push is dropped at once).
  explicit RingBuffer(size_t capacity) : slots_(capacity) {}

  size_t capacity() const { return slots_.size(); }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  // Elements pushed ever, and of those the ones dropped to make room.
  uint64_t pushed() const { return pushed_; }
  uint64_t dropped() const { return pushed_ - size_; }

  void push(T v) {
    ++pushed_;
    if (slots_.empty()) {
      return;
    }
    slots_[next_] = std::move(v);
    next_ = (next_ + 1) % slots_.size();
    if (size_ < slots_.size()) {
      ++size_;
    }
  }

  // The i-th element, oldest first (0 <= i < size()).
  const T &at(size_t i) const {
    const size_t oldest = (next_ + slots_.size() - size_) % slots_.size();
    return slots_[(oldest + i) % slots_.size()];
  }
  const T &newest() const { return at(size_ - 1); }

  // Copies of the elements, oldest first.
  std::vector<T> items() const {
    std::vector<T> out;
    out.reserve(size_);
    for (size_t i = 0; i < size_; i++) {
      out.push_back(at(i));
    }
    return out;
  }

  void clear() {
    size_ = 0;
    next_ = 0;
  }

private:
  std::vector<T> slots_;
  size_t next_ = 0; // where the next push goes
  size_t size_ = 0;
  uint64_t pushed_ = 0;
};

} // namespace kal
