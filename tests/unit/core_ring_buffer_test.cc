// Table for core/ring_buffer: what a ring of a given capacity holds after a run of pushes.
#include "kube_api_lb/core/ring_buffer.h"

#include <doctest/doctest.h>

#include <vector>

using namespace kal;

TEST_CASE("ring buffer keeps the newest `capacity` elements, oldest first") {
  struct Row {
    size_t capacity;
    int pushes; // pushes 1, 2, ..., pushes
    std::vector<int> want;
    uint64_t dropped;
  };
  const Row rows[] = {
      {3, 0, {}, 0},           {3, 1, {1}, 0}, {3, 3, {1, 2, 3}, 0}, {3, 4, {2, 3, 4}, 1},
      {3, 7, {5, 6, 7}, 4},    {1, 5, {5}, 4}, {0, 4, {}, 4}, // keeps nothing, never crashes
      {4, 9, {6, 7, 8, 9}, 5},
  };
  for (const auto &r : rows) {
    CAPTURE(r.capacity);
    CAPTURE(r.pushes);
    RingBuffer<int> ring(r.capacity);
    for (int i = 1; i <= r.pushes; i++) {
      ring.push(i);
    }
    CHECK(ring.items() == r.want);
    CHECK(ring.size() == r.want.size());
    CHECK(ring.capacity() == r.capacity);
    CHECK(ring.pushed() == static_cast<uint64_t>(r.pushes));
    CHECK(ring.dropped() == r.dropped);
    if (!r.want.empty()) {
      CHECK(ring.newest() == r.want.back());
      CHECK(ring.at(0) == r.want.front());
    }
  }
}

TEST_CASE("ring buffer: clear empties it, pushes go on from there") {
  RingBuffer<int> ring(2);
  ring.push(1);
  ring.push(2);
  ring.push(3);
  ring.clear();
  CHECK(ring.empty());
  ring.push(4);
  CHECK(ring.items() == std::vector<int>{4});
}
