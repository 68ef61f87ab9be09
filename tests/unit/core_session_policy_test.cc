// Tables for core/session_policy: each row names the integration test (tests/integration/...)
// that proves the same case end to end on real sockets.
#include "kube_api_lb/core/session_policy.h"

#include <doctest/doctest.h>

#include <netinet/tcp.h>

#include <string>

using namespace kal;

namespace {

using P = SessionPhase;

// A session still dialling or waiting for its first byte, holding `held` client bytes.
ExchangeFacts fresh(P phase, size_t held, bool client_eof = false) {
  ExchangeFacts f;
  f.phase = phase;
  f.replay_bytes = held;
  f.client_eof = client_eof;
  return f;
}

// A session relaying after the upstream's first byte.
ExchangeFacts answered(bool upstream_eof = false, bool client_eof = false) {
  ExchangeFacts f;
  f.phase = P::Relaying;
  f.got_first_byte = true;
  f.replay_bytes = 0;
  f.upstream_eof = upstream_eof;
  f.client_eof = client_eof;
  return f;
}

// Past the replay limit before any answer: bytes were sent and are no longer held.
ExchangeFacts outgrown() {
  ExchangeFacts f = fresh(P::AwaitFirstByte, 0);
  f.replay_ok = false;
  return f;
}

} // namespace

TEST_CASE("an upstream's early end: re-dial or pass on") {
  struct Row {
    const char *mirrors;
    ExchangeFacts facts;
    UpstreamEnd want;
  };
  const Row rows[] = {
      {"test_core_retry: test_early_close_after_client_bytes_replays",
       fresh(P::AwaitFirstByte, 517), UpstreamEnd::Redial},
      {"test_core_retry: test_early_close_before_client_bytes_redials", fresh(P::AwaitFirstByte, 0),
       UpstreamEnd::Redial},
      {"test_core_retry: test_a_client_that_closes_without_a_byte_is_no_endpoint_failure",
       fresh(P::AwaitFirstByte, 0, true), UpstreamEnd::PassOn},
      {"a client that sent its bytes and its FIN is still replayed (test_core_bulk: "
       "test_client_half_close_echo on a re-dial)",
       fresh(P::AwaitFirstByte, 12, true), UpstreamEnd::Redial},
      {"test_core_retry: test_reset_upstream_still_passes_on_its_last_bytes", answered(),
       UpstreamEnd::PassOn},
      {"test_core_bulk: test_server_half_close", answered(false, false), UpstreamEnd::PassOn},
      {"past the replay limit the failure is no longer hidden", outgrown(), UpstreamEnd::PassOn},
  };
  for (const auto &r : rows) {
    CAPTURE(std::string(r.mirrors));
    CHECK(on_upstream_end(r.facts) == r.want);
  }
}

TEST_CASE("a failed write: re-dial, keep passing the answer on, or close") {
  struct Row {
    const char *mirrors;
    Direction dir;
    ExchangeFacts facts;
    bool upstream_open;
    WriteFailure want;
  };
  const Row rows[] = {
      {"test_core_retry: test_write_to_a_reset_upstream_replays", Direction::ToUpstream,
       fresh(P::AwaitFirstByte, 6), true, WriteFailure::Redial},
      {"test_core_retry: test_answer_survives_an_upstream_that_closed_while_the_client_uploads",
       Direction::ToUpstream, answered(true), true, WriteFailure::UpstreamTakesNoMore},
      {"test_core_retry: test_slow_client_still_uploading_gets_the_whole_answer",
       Direction::ToUpstream, answered(), true, WriteFailure::UpstreamTakesNoMore},
      {"no upstream socket left to read from", Direction::ToUpstream, answered(), false,
       WriteFailure::Close},
      {"test_core_retry: test_client_reset_closes_upstream", Direction::ToClient, answered(), true,
       WriteFailure::Close},
      {"a client gone before the answer", Direction::ToClient, fresh(P::AwaitFirstByte, 6), true,
       WriteFailure::Close},
  };
  for (const auto &r : rows) {
    CAPTURE(std::string(r.mirrors));
    CHECK(on_write_failure(r.dir, r.facts, r.upstream_open) == r.want);
  }
}

TEST_CASE("an endpoint going down: what it means for one session") {
  struct Row {
    const char *mirrors;
    ExchangeFacts facts;
    bool ended_unread;
    EndpointDown want;
  };
  const Row rows[] = {
      {"a port probe on a down endpoint is just closed (test_core_retry: "
       "test_a_client_that_closes_without_a_byte_is_no_endpoint_failure)",
       fresh(P::Dialing, 0, true), false, EndpointDown::CloseDone},
      {"test_core_bulk: test_dead_endpoint_skipped_with_default_health_checks (still dialling)",
       fresh(P::Dialing, 517), false, EndpointDown::Redial},
      {"test_netns_failover: a hung apiserver before its answer is replaced",
       fresh(P::AwaitFirstByte, 517), false, EndpointDown::Redial},
      {"waiting for an answer that outgrew the replay limit is closed", outgrown(), false,
       EndpointDown::Close},
      {"test_core_endpoint_down: test_endpoint_down_after_its_answer_ended_delivers_all_of_it",
       answered(true), false, EndpointDown::DeliverEnded},
      {"test_core_endpoint_down: "
       "test_endpoint_down_after_its_answer_ended_unread_delivers_all_of_it (fe8e033)",
       answered(false), true, EndpointDown::DeliverEnded},
      {"test_core_endpoint_down: the watch still waiting on it is closed (closed-on-down)",
       answered(false), false, EndpointDown::Close},
      {"a half-closed client's watch is closed too", answered(false, true), false,
       EndpointDown::Close},
  };
  for (const auto &r : rows) {
    CAPTURE(std::string(r.mirrors));
    CHECK(on_endpoint_down(r.facts, r.ended_unread) == r.want);
  }
}

TEST_CASE("the kernel's TCP state: has the peer's FIN or reset arrived (fe8e033)") {
  struct Row {
    int state;
    bool ended;
  };
  const Row rows[] = {
      {TCP_ESTABLISHED, false}, {TCP_SYN_SENT, false},  {TCP_FIN_WAIT1, false},
      {TCP_FIN_WAIT2, false},   {TCP_CLOSE_WAIT, true}, {TCP_LAST_ACK, true},
      {TCP_CLOSING, true},      {TCP_TIME_WAIT, true},  {TCP_CLOSE, true},
  };
  for (const auto &r : rows) {
    CAPTURE(r.state);
    CHECK(peer_has_ended(static_cast<uint8_t>(r.state)) == r.ended);
  }
}

TEST_CASE("client bytes before the answer: held for a replay up to the limit") {
  struct Row {
    const char *mirrors;
    ExchangeFacts facts;
    size_t len;
    ReplayStep want;
  };
  constexpr size_t kLimit = 64 * 1024;
  const Row rows[] = {
      {"test_core_retry: test_silent_upstream_first_byte_timeout_replays (a ClientHello)",
       fresh(P::Dialing, 0), 517, ReplayStep::Hold},
      {"test_core_retry: test_first_byte_timeout_counts_from_the_clients_latest_bytes",
       fresh(P::AwaitFirstByte, 3), 1, ReplayStep::Hold},
      {"exactly the limit is still held", fresh(P::AwaitFirstByte, kLimit - 10), 10,
       ReplayStep::Hold},
      {"test_core_bulk: test_upload_256mib_and_client_half_close (past the limit)",
       fresh(P::AwaitFirstByte, kLimit - 10), 11, ReplayStep::GiveUp},
      {"once given up, nothing more is held", outgrown(), 100, ReplayStep::None},
      {"after the answer nothing is held", answered(), 100, ReplayStep::None},
  };
  for (const auto &r : rows) {
    CAPTURE(std::string(r.mirrors));
    CHECK(on_client_bytes(r.facts, r.len, kLimit) == r.want);
  }
}

TEST_CASE("can_replay and client_left_silent") {
  CHECK(can_replay(fresh(P::Dialing, 0)));
  CHECK_FALSE(can_replay(answered()));
  CHECK_FALSE(can_replay(outgrown()));
  CHECK(client_left_silent(fresh(P::Dialing, 0, true)));
  CHECK_FALSE(client_left_silent(fresh(P::Dialing, 1, true)));
  CHECK_FALSE(client_left_silent(fresh(P::Dialing, 0, false)));
  CHECK_FALSE(client_left_silent(answered(false, true)));
}

TEST_CASE("the client is paused while dialling once the held bytes reach a bound") {
  struct Row {
    size_t held, hw, limit;
    bool pause;
  };
  const Row rows[] = {
      {0, 256 * 1024, 64 * 1024, false},           {64 * 1024 - 1, 256 * 1024, 64 * 1024, false},
      {64 * 1024, 256 * 1024, 64 * 1024, true},    // the replay limit
      {16 * 1024, 16 * 1024, 64 * 1024, true},     // the high watermark
      {300 * 1024, 256 * 1024, 1024 * 1024, true}, // not replayable: held as the data to send
  };
  for (const auto &r : rows) {
    CAPTURE(r.held);
    CHECK(pause_client_while_dialing(r.held, r.hw, r.limit) == r.pause);
  }
}
