#pragma once
// Whether the check connection has stopped taking bytes (issue 21's "a check connection that
// stops taking bytes" as dead evidence, core/verdict.h Observation::Stalled). Pure: the checker
// samples the socket (kernel send queue, libuv's write queue, TLS output not yet handed on) and
// passes each sample with its time; no clock, no I/O.
//
// A sample says how many bytes are outstanding (written by the checker, not yet acknowledged by
// the peer's TCP) and how many the peer has acknowledged in total on this connection. The queue
// is stalled when bytes have been outstanding, with no acknowledgement progress, for at least the
// RTT-derived timeout: our PINGs and requests are not leaving (a one-way blackhole towards the
// apiserver, a peer whose receive window stays closed, a dead path). A healthy connection's
// outstanding bytes are acknowledged within one round trip, far below the timeout.
//
// Why acknowledgements and not the queue length: PINGs keep adding bytes, so the length alone can
// stay the same while the peer acknowledges every one of them. `acked` only grows while the peer
// takes bytes.
//
// A new connection (another `connection` id) starts afresh. The stall is reported once per stall
// period (take_new()), as one piece of dead evidence; progress or an empty queue ends the period.
#include "kube_api_lb/core/check_schedule.h"

#include <chrono>
#include <cstdint>

namespace kal {

struct SendSample {
  uint64_t connection = 0;  // identifies the check connection; 0: none (nothing outstanding)
  uint64_t outstanding = 0; // bytes written but not yet acknowledged (queued anywhere)
  uint64_t acked = 0;       // bytes the peer acknowledged on this connection, in total
};

class SendStall {
public:
  // Records a sample taken at `now` (samples must come in time order).
  void sample(TimePoint now, const SendSample &s);
  // Bytes have been outstanding without acknowledgement progress for at least `timeout`.
  bool stalled(TimePoint now, std::chrono::milliseconds timeout) const;
  // True once per stall period, the first time it is asked while stalled(now, timeout).
  bool take_new(TimePoint now, std::chrono::milliseconds timeout);
  // How long bytes have been outstanding without progress (0 when none are).
  std::chrono::milliseconds stuck_for(TimePoint now) const;
  uint64_t outstanding() const { return last_.outstanding; }

private:
  SendSample last_{};
  bool stuck_ = false; // bytes outstanding and no progress since stuck_since_
  TimePoint stuck_since_{};
  bool reported_ = false; // take_new() said so for this stall period
};

} // namespace kal
