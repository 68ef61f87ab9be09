// H2Check, the probe's HTTP/2 side, fed server frames written by hand (RFC 9113 section 4.1: a
// 9-byte header, then the payload) on a fake clock: what each chunk of plaintext means for the
// check (the /readyz answer, PING acks, GOAWAY, a broken peer).
#include "health/h2_check.h"

#include <doctest/doctest.h>

#include <string>

using namespace std::chrono_literals;
using kal::H2Check;
using kal::TimePoint;

namespace {

TimePoint at(int64_t ms) { return TimePoint{} + std::chrono::milliseconds(ms); }

std::string frame(uint8_t type, uint8_t flags, uint32_t stream, const std::string &payload) {
  std::string f;
  const size_t n = payload.size();
  f += static_cast<char>((n >> 16) & 0xff);
  f += static_cast<char>((n >> 8) & 0xff);
  f += static_cast<char>(n & 0xff);
  f += static_cast<char>(type);
  f += static_cast<char>(flags);
  f += static_cast<char>((stream >> 24) & 0x7f);
  f += static_cast<char>((stream >> 16) & 0xff);
  f += static_cast<char>((stream >> 8) & 0xff);
  f += static_cast<char>(stream & 0xff);
  return f + payload;
}

constexpr uint8_t kHeaders = 1, kSettings = 4, kPing = 6, kGoAway = 7;
constexpr uint8_t kAck = 1, kEndStream = 1, kEndHeaders = 4;

const std::string kServerSettings = frame(kSettings, 0, 0, "");
// HPACK: static table entries 8 (":status: 200") and 14 (":status: 500"), indexed.
const std::string kStatus200 = std::string(1, static_cast<char>(0x88));
const std::string kStatus500 = std::string(1, static_cast<char>(0x8e));

// The 8 opaque bytes of the last PING (not an ack) in what the client sent.
std::string last_ping_opaque(const std::string &out) {
  std::string opaque;
  for (size_t i = 0; i + 9 <= out.size();) {
    const size_t len = (static_cast<uint8_t>(out[i]) << 16) |
                       (static_cast<uint8_t>(out[i + 1]) << 8) | static_cast<uint8_t>(out[i + 2]);
    if (i == 0 && out.compare(0, 3, "PRI") == 0) {
      i = 24; // the client preface
      continue;
    }
    if (static_cast<uint8_t>(out[i + 3]) == kPing && (out[i + 4] & kAck) == 0 && len == 8) {
      opaque = out.substr(i + 9, 8);
    }
    i += 9 + len;
  }
  return opaque;
}

std::unique_ptr<H2Check> connected() {
  auto c = H2Check::create("10.0.0.11:6443", "/readyz");
  REQUIRE(c);
  std::string out;
  REQUIRE(c->take_output(out) > 0);
  CHECK(out.rfind("PRI * HTTP/2.0", 0) == 0);
  const auto f = c->feed(kServerSettings, at(1));
  REQUIRE(f.ok);
  return c;
}

} // namespace

TEST_CASE("h2 check: /readyz answers by status, with the round trip to the headers") {
  struct Row {
    std::string status_block;
    int status;
  };
  for (const Row &r : {Row{kStatus200, 200}, Row{kStatus500, 500}}) {
    CAPTURE(r.status);
    auto c = connected();
    REQUIRE(c->request(at(10)));
    CHECK(c->request_in_flight());
    CHECK_FALSE(c->request(at(11))); // one at a time
    std::string out;
    c->take_output(out);
    const auto f = c->feed(frame(kHeaders, kEndStream | kEndHeaders, 1, r.status_block), at(35));
    REQUIRE(f.ok);
    REQUIRE(f.answer);
    CHECK(f.answer->status == r.status);
    CHECK_FALSE(f.answer->failed);
    CHECK(f.answer->rtt == 25ms);
    CHECK_FALSE(c->request_in_flight());
    CHECK(c->usable());
  }
}

TEST_CASE("h2 check: PING acks carry their round trip; unanswered ones expire") {
  auto c = connected();
  std::string out;
  c->take_output(out);
  out.clear();
  REQUIRE(c->ping(at(100)));
  c->take_output(out);
  const std::string opaque = last_ping_opaque(out);
  REQUIRE(opaque.size() == 8);
  auto f = c->feed(frame(kPing, kAck, 0, opaque), at(103));
  REQUIRE(f.ok);
  REQUIRE(f.ping_acks.size() == 1);
  CHECK(f.ping_acks[0] == 3ms);
  CHECK(c->pings_in_flight() == 0);

  REQUIRE(c->ping(at(1000)));
  CHECK(c->oldest_ping() == at(1000));
  CHECK(c->expire_pings(at(1400)) == 1); // sent before the deadline: timed out
  CHECK(c->pings_in_flight() == 0);
}

TEST_CASE("h2 check: a cancelled request leaves the connection usable; GOAWAY ends it") {
  auto c = connected();
  REQUIRE(c->request(at(10)));
  c->cancel_request(); // its timeout: RST_STREAM, the connection and its PINGs stay
  CHECK_FALSE(c->request_in_flight());
  CHECK(c->usable());
  std::string out;
  CHECK(c->take_output(out) > 0);
  // A late answer for the cancelled stream is no answer to anything.
  auto f = c->feed(frame(kHeaders, kEndStream | kEndHeaders, 1, kStatus200), at(900));
  CHECK(f.ok);
  CHECK_FALSE(f.answer);

  std::string goaway(8, '\0'); // last stream id 0, NO_ERROR
  f = c->feed(frame(kGoAway, 0, 0, goaway), at(950));
  REQUIRE(f.ok);
  CHECK(f.goaway);
  CHECK_FALSE(c->usable());
  CHECK_FALSE(c->request(at(960)));
  f = c->feed(frame(kGoAway, 0, 0, goaway), at(970));
  CHECK_FALSE(f.goaway); // reported once
}

TEST_CASE("h2 check: garbage from the peer is an error with a reason, never a crash") {
  for (const std::string &bad :
       {std::string("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"), std::string(64, '\xff'),
        frame(kHeaders, kEndHeaders, 0, kStatus200), frame(kPing, 0, 0, "short")}) {
    auto c = connected();
    REQUIRE(c->request(at(10)));
    const auto f = c->feed(bad, at(20));
    CHECK_FALSE(f.ok);
    CHECK_FALSE(c->error().empty());
    CHECK_FALSE(c->usable());
    CHECK_FALSE(c->request(at(30)));
    CHECK_FALSE(c->feed(kServerSettings, at(40)).ok); // stays failed
  }
}
