#pragma once
// Which open connections a stopping kube-api-lb closes at once, so that the pod that replaces it
// starts within moments instead of after the whole shutdown grace.
//
// kubelet replaces a static pod by stopping the old container, waiting for it to exit, and only
// then starting the new one on the same host port: every moment the old process lingers is a
// moment in which 127.0.0.1:6443 refuses kubelet and kube-proxy. Watches never end by themselves,
// so waiting for them means waiting for the grace. What is safe to close is a connection between
// exchanges: nothing queued either way, nothing received for a moment, and no request of the
// client's still waiting for its answer. Its client sees the connection end cleanly between two
// answers and reconnects (to the new process), as client-go does after any watch ends. A transfer
// in progress, or a request still owed its answer, is left to finish within the grace.
//
// The proxy relays TLS and cannot see requests, so "owed an answer" is read from the direction of
// the last bytes: the client spoke last and the upstream has been silent since. A client's own
// control frames (an HTTP/2 WINDOW_UPDATE after a large answer) look the same, so that wait is
// bounded by `request_wait_ms`: a request that takes longer than that to start its answer is the
// one case that may be cut (kube-apiserver starts answering ordinary requests within milliseconds;
// a watch answers its headers at once).
//
// Polled every few tens of milliseconds during shutdown with the loop's clock. Table:
// tests/unit/core_shutdown_drain_test.cc.
#include "kube_api_lb/core/session_policy.h"

#include <cstddef>
#include <cstdint>

namespace kal {

struct DrainFacts {
  SessionPhase phase = SessionPhase::Dialing;
  size_t queued = 0;                  // bytes handed on and not yet written, both directions
  bool client_sent = false;           // the client has sent at least one byte
  uint64_t accepted_ms = 0;           // when the client connection was accepted
  uint64_t last_from_client_ms = 0;   // the latest byte read from the client (0: none)
  uint64_t last_from_upstream_ms = 0; // the latest byte read from the upstream (0: none)
};

struct DrainRule {
  uint64_t quiet_ms = 100;         // no byte either way for this long: between exchanges
  uint64_t request_wait_ms = 1000; // how long a client's last bytes may wait for an answer
};

// True: close the connection now (it is between exchanges).
bool quiet_enough_to_close(const DrainFacts &f, uint64_t now_ms, const DrainRule &rule = {});

} // namespace kal
