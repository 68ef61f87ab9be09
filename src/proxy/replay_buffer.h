#pragma once
// The client's bytes a session holds until its upstream answers: while they fit the replay limit,
// every byte the client sent, so that an upstream that fails before its first byte is replaced by
// another one transparently (core/session_policy.h decides when). Once the limit is passed, a
// failure is no longer hidden; bytes that arrive while the session is still dialling are kept
// here all the same, as the data to send on connect.
#include "kube_api_lb/core/session_policy.h"

#include <cstddef>
#include <string>

namespace kal {

class ReplayBuffer {
public:
  bool answered() const { return answered_; }
  bool replayable() const { return ok_; }
  bool empty() const { return bytes_.empty(); }
  size_t size() const { return bytes_.size(); }
  const char *data() const { return bytes_.data(); }

  // New client bytes; `facts` is the session's view before them, `connected` whether an upstream
  // connection is open to send them on (otherwise they wait here).
  void take(const ExchangeFacts &facts, const char *p, size_t len, size_t limit, bool connected) {
    switch (on_client_bytes(facts, len, limit)) {
    case ReplayStep::Hold:
      bytes_.append(p, len);
      return;
    case ReplayStep::GiveUp:
      ok_ = false;
      if (connected) {
        release();
        return;
      }
      break;
    case ReplayStep::None:
      if (connected || ok_) {
        return;
      }
      break;
    }
    bytes_.append(p, len); // not replayable and not yet connected: the data to send on connect
  }
  // The upstream's first byte: nothing is replayed from now on.
  void on_answer() {
    answered_ = true;
    release();
  }
  // Frees the bytes (sent and no longer needed for a replay, or the session is done).
  void release() {
    bytes_.clear();
    bytes_.shrink_to_fit();
  }

private:
  std::string bytes_;
  bool ok_ = true;
  bool answered_ = false;
};

} // namespace kal
