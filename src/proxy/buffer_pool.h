#pragma once
// Fixed-size read buffers recycled per event loop, so the hot path does not allocate per read.
// Buffers exist only while data is in flight: an idle connection holds none. The free list is
// capped, so memory goes back to the allocator after a burst. Not thread-safe: one pool per loop.
#include <cstddef>
#include <vector>

namespace kal {

class BufferPool {
public:
  static constexpr size_t kBufferSize = 64 * 1024;
  explicit BufferPool(size_t max_free = 16) : max_free_(max_free) {}
  BufferPool(const BufferPool &) = delete;
  ~BufferPool() {
    for (char *b : free_) {
      delete[] b;
    }
  }
  // A kBufferSize buffer owned by the caller until put() back.
  char *get() {
    if (free_.empty()) {
      ++outstanding_;
      return new char[kBufferSize];
    }
    char *b = free_.back();
    free_.pop_back();
    ++outstanding_;
    return b;
  }
  void put(char *b) {
    --outstanding_;
    if (free_.size() < max_free_) {
      free_.push_back(b);
    } else {
      delete[] b;
    }
  }
  size_t outstanding() const { return outstanding_; }
  size_t free_count() const { return free_.size(); }
  // Gives all cached buffers back to the allocator (after a burst, so RSS returns to idle).
  void release_free() {
    for (char *b : free_) {
      delete[] b;
    }
    free_.clear();
    free_.shrink_to_fit();
  }

private:
  size_t max_free_;
  size_t outstanding_ = 0;
  std::vector<char *> free_;
};

} // namespace kal
