#include "kube_api_lb/core/session_policy.h"

#include <netinet/tcp.h>

namespace kal {

bool can_replay(const ExchangeFacts &f) { return !f.got_first_byte && f.replay_ok; }

bool client_left_silent(const ExchangeFacts &f) {
  return f.client_eof && can_replay(f) && f.replay_bytes == 0;
}

UpstreamEnd on_upstream_end(const ExchangeFacts &f) {
  // Before its answer nothing reached the client: try elsewhere, unless the client has closed
  // without sending anything (the upstream only answered its FIN).
  return can_replay(f) && !client_left_silent(f) ? UpstreamEnd::Redial : UpstreamEnd::PassOn;
}

WriteFailure on_write_failure(Direction d, const ExchangeFacts &f, bool upstream_open) {
  if (d == Direction::ToClient) {
    return WriteFailure::Close;
  }
  // An apiserver killed with the connection in its accept queue resets it; the client's first
  // bytes can reach the proxy in the same loop turn and be written before the reset is read.
  if (can_replay(f)) {
    return WriteFailure::Redial;
  }
  return upstream_open ? WriteFailure::UpstreamTakesNoMore : WriteFailure::Close;
}

EndpointDown on_endpoint_down(const ExchangeFacts &f, bool upstream_ended_unread) {
  if (client_left_silent(f)) {
    return EndpointDown::CloseDone;
  }
  if (f.phase == SessionPhase::Dialing ||
      (can_replay(f) && f.phase == SessionPhase::AwaitFirstByte)) {
    return EndpointDown::Redial;
  }
  // Its answer is complete: nothing is stuck on the endpoint, only still owed to the client.
  if (f.upstream_eof || upstream_ended_unread) {
    return EndpointDown::DeliverEnded;
  }
  return EndpointDown::Close;
}

bool peer_has_ended(uint8_t tcpi_state) {
  switch (tcpi_state) {
  case TCP_CLOSE_WAIT:
  case TCP_LAST_ACK:
  case TCP_CLOSING:
  case TCP_TIME_WAIT:
  case TCP_CLOSE:
    return true;
  default:
    return false;
  }
}

ReplayStep on_client_bytes(const ExchangeFacts &f, size_t len, size_t replay_limit) {
  if (!can_replay(f)) {
    return ReplayStep::None;
  }
  return f.replay_bytes + len <= replay_limit ? ReplayStep::Hold : ReplayStep::GiveUp;
}

bool pause_client_while_dialing(size_t held, size_t high_watermark, size_t replay_limit) {
  return held >= high_watermark || held >= replay_limit;
}

} // namespace kal
