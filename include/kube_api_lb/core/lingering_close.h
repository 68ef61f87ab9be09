#pragma once
// The bounds of a lingering close (nginx's lingering_timeout and lingering_time). A session whose
// upstream takes no more bytes (it reset, or its endpoint went down after its answer ended) keeps
// the client connection open until everything owed to the client has been acknowledged, FIN
// included: a close then loses nothing, the bytes are in the client's receive queue. Meanwhile the
// client's bytes are read and dropped, since closing with them unread would reset the connection
// and throw away what is still owed. A client that neither takes nor sends anything for `quiet_ms`,
// or has not taken everything after `max_ms`, is closed anyway.
//
// Polled every kPollMs with the loop's millisecond clock as `now_ms`. Table:
// tests/unit/core_lingering_close_test.cc.
#include <cstddef>
#include <cstdint>

namespace kal {

class LingeringClose {
public:
  static constexpr uint64_t kQuietMs = 5000;
  static constexpr uint64_t kMaxMs = 30000;
  static constexpr uint64_t kPollMs = 100;

  // The linger begins (its bounds count from `now_ms`).
  void start(uint64_t now_ms);
  bool active() const { return active_; }

  // One poll. `owed`: bytes the client has not acknowledged plus those still queued in the proxy;
  // `answer_ended`: the upstream's FIN or reset has been passed on; `last_activity_ms`: the latest
  // byte the client sent (or write that completed). True: close the session now.
  bool should_close(size_t owed, bool answer_ended, uint64_t last_activity_ms, uint64_t now_ms);

private:
  bool active_ = false;
  size_t owed_ = SIZE_MAX;   // bytes owed at the previous poll
  uint64_t progress_ms_ = 0; // when that figure last went down
  uint64_t start_ms_ = 0;
};

} // namespace kal
