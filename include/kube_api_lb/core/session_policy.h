#pragma once
// What a proxied connection does when something happens to its upstream, decided from plain facts
// (no sockets, no loop): whether the client's bytes may still be replayed to another endpoint,
// what an upstream's early end, a failed write or its endpoint going down means for the session,
// and when the kernel's TCP state says the upstream's answer has already ended.
//
// The relay (src/proxy/session.cc) takes a snapshot of its facts on each event, asks one of these
// functions, and carries out the answer. Each function's cases are a table in
// tests/unit/core_session_policy_test.cc whose rows mirror the network-namespace tests that first
// proved them (tests/integration/test_core_retry.py, test_core_endpoint_down.py).
#include <cstddef>
#include <cstdint>

namespace kal {

// The two flows of a session: the client's bytes to the upstream, the upstream's to the client.
enum class Direction : uint8_t { ToUpstream, ToClient };

// Where a session stands with its current upstream: connecting, connected with the client's bytes
// owed an answer, or relaying after the upstream's first byte.
enum class SessionPhase : uint8_t { Dialing, AwaitFirstByte, Relaying };

// A session's facts, as the relay knows them at the moment of the event.
struct ExchangeFacts {
  SessionPhase phase = SessionPhase::Dialing;
  bool got_first_byte = false; // the upstream answered: nothing of it can be hidden any more
  bool replay_ok = true;       // every client byte so far fits the replay limit
  size_t replay_bytes = 0;     // client bytes held for a replay (all of them while replay_ok)
  bool client_eof = false;     // the client's FIN was read
  bool upstream_eof = false;   // the upstream's FIN (or reset) was read
};

// Nothing has reached the client from this upstream and every client byte is held: the session
// can move to another endpoint without the client noticing.
bool can_replay(const ExchangeFacts &f);

// The client closed without sending a byte (a TCP port probe): there is nothing to carry to any
// endpoint, so it is never re-dialled and no endpoint is blamed.
bool client_left_silent(const ExchangeFacts &f);

// The upstream ended (FIN, reset, or a failed shutdown(2) towards it) while the session still
// talks to it.
enum class UpstreamEnd : uint8_t {
  Redial, // before its answer: count a failure, dial another endpoint with the held bytes
  PassOn, // pass the end on to the client (as a FIN; a reset also stops the client's bytes)
};
UpstreamEnd on_upstream_end(const ExchangeFacts &f);

// A write failed (reset, broken pipe) in direction `d`; `upstream_open`: the session still holds
// an upstream socket.
enum class WriteFailure : uint8_t {
  Redial,              // to an upstream that has not answered: replay elsewhere
  UpstreamTakesNoMore, // to an upstream that answered: pass on what it sent, drop the client's
  Close,               // to the client (or no upstream left): the session ends
};
WriteFailure on_write_failure(Direction d, const ExchangeFacts &f, bool upstream_open);

// The bound endpoint was marked down for a hard failure.
enum class EndpointDown : uint8_t {
  CloseDone,    // the client left silent: nothing to carry elsewhere
  Redial,       // the endpoint has not answered: move to another one, replaying
  DeliverEnded, // its answer has ended (FIN or reset, read or not): write all of it, then close
  Close,        // established and still open: close so the client reconnects (closed-on-down)
};
// `upstream_ended_unread`: the kernel holds the upstream's FIN or reset that the session has not
// read yet (see peer_has_ended); only looked at when nothing else decides.
EndpointDown on_endpoint_down(const ExchangeFacts &f, bool upstream_ended_unread);

// The kernel's TCP state of the upstream socket (tcp_info.tcpi_state) says the peer's FIN or reset
// has arrived: every state past ESTABLISHED except the two FIN_WAITs, which only mean our own FIN
// went out (commit fe8e033).
bool peer_has_ended(uint8_t tcpi_state);

// What to do with `len` new client bytes while the session may still replay.
enum class ReplayStep : uint8_t {
  Hold,   // add them to the replay buffer
  GiveUp, // they would exceed `replay_limit`: from here on a failure is not hidden any more
  None,   // the upstream answered or replay was given up before: nothing is held
};
ReplayStep on_client_bytes(const ExchangeFacts &f, size_t len, size_t replay_limit);

// While dialling, the client's bytes are held in memory: stop reading the client once `held`
// reaches the high watermark or the replay limit.
bool pause_client_while_dialing(size_t held, size_t high_watermark, size_t replay_limit);

} // namespace kal
