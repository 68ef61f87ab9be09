// H2Liveness against a real libnghttp2 server session, in memory: the bytes the client produces
// go to the server's mem_recv and back, with a fake clock stamping every exchange.
#include "health/h2_liveness.h"
#include "health/tls_engine.h"
#include "tls_test_certs.h"

#include <doctest/doctest.h>
#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <map>
#include <random>
#include <string>
#include <vector>

// The data-provider API this test uses has a successor in libnghttp2 >= 1.61; Debian 12 has 1.52.
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

using namespace std::chrono_literals;
using kal::H2Liveness;
using kal::TimePoint;
using Kind = H2Liveness::EventKind;

namespace {

TimePoint at(int64_t ms) { return TimePoint{} + std::chrono::milliseconds(ms); }

// A tiny HTTP/2 server: answers every request with `status` and `body` (or resets it, or never
// answers), acks PINGs (nghttp2 does), and counts what it saw.
class H2Server {
public:
  enum class Mode { Answer, Reset, Hang };
  Mode mode = Mode::Answer;
  int status = 200;
  std::string body = "ok";
  int pings = 0, settings = 0, resets_received = 0, requests = 0;
  std::map<int32_t, std::map<std::string, std::string>> headers; // per stream

  H2Server() {
    nghttp2_session_callbacks *cbs = nullptr;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_header_callback(cbs, &H2Server::on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, &H2Server::on_frame_recv);
    nghttp2_session_server_new(&s_, cbs, this);
    nghttp2_session_callbacks_del(cbs);
    const nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100}};
    nghttp2_submit_settings(s_, NGHTTP2_FLAG_NONE, iv, 1);
  }
  ~H2Server() { nghttp2_session_del(s_); }
  nghttp2_session *session() { return s_; }

  // Bytes from the client; false on a server-side protocol error.
  bool recv(const std::string &in) {
    return nghttp2_session_mem_recv(s_, reinterpret_cast<const uint8_t *>(in.data()), in.size()) ==
           static_cast<ssize_t>(in.size());
  }
  std::string send() {
    std::string out;
    const uint8_t *p = nullptr;
    ssize_t n;
    while ((n = nghttp2_session_mem_send(s_, &p)) > 0) {
      out.append(reinterpret_cast<const char *>(p), static_cast<size_t>(n));
    }
    return out;
  }

private:
  static int on_header(nghttp2_session *, const nghttp2_frame *f, const uint8_t *n, size_t nl,
                       const uint8_t *v, size_t vl, uint8_t, void *ud) {
    auto *self = static_cast<H2Server *>(ud);
    self->headers[f->hd.stream_id][std::string(reinterpret_cast<const char *>(n), nl)] =
        std::string(reinterpret_cast<const char *>(v), vl);
    return 0;
  }
  static ssize_t read_body(nghttp2_session *, int32_t, uint8_t *buf, size_t len, uint32_t *flags,
                           nghttp2_data_source *src, void *) {
    auto *left = static_cast<std::string *>(src->ptr);
    const size_t n = std::min(len, left->size());
    std::copy_n(left->data(), n, buf);
    left->erase(0, n);
    if (left->empty()) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
    }
    return static_cast<ssize_t>(n);
  }
  static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *ud) {
    auto *self = static_cast<H2Server *>(ud);
    switch (f->hd.type) {
    case NGHTTP2_PING:
      self->pings += (f->hd.flags & NGHTTP2_FLAG_ACK) ? 0 : 1;
      break;
    case NGHTTP2_SETTINGS:
      self->settings += (f->hd.flags & NGHTTP2_FLAG_ACK) ? 0 : 1;
      break;
    case NGHTTP2_RST_STREAM:
      self->resets_received++;
      break;
    case NGHTTP2_HEADERS:
      if ((f->hd.flags & NGHTTP2_FLAG_END_STREAM) == 0) {
        break;
      }
      self->requests++;
      if (self->mode == Mode::Reset) {
        nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, f->hd.stream_id, NGHTTP2_REFUSED_STREAM);
      } else if (self->mode == Mode::Answer) {
        self->left_[f->hd.stream_id] = self->body;
        const std::string st = std::to_string(self->status);
        nghttp2_nv nv[] = {
            {(uint8_t *)":status", (uint8_t *)st.data(), 7, st.size(), NGHTTP2_NV_FLAG_NONE},
            {(uint8_t *)"content-type", (uint8_t *)"text/plain", 12, 10, NGHTTP2_NV_FLAG_NONE}};
        nghttp2_data_provider dp;
        dp.source.ptr = &self->left_[f->hd.stream_id];
        dp.read_callback = &H2Server::read_body;
        nghttp2_submit_response(s, f->hd.stream_id, nv, 2, &dp);
      }
      break;
    default:
      break;
    }
    return 0;
  }

  nghttp2_session *s_ = nullptr;
  std::map<int32_t, std::string> left_; // body bytes still to send, per stream
};

// Moves bytes both ways until neither side has anything to say; the client sees time `now`.
void exchange(H2Liveness &c, H2Server &s, TimePoint now) {
  for (int i = 0; i < 100; i++) {
    std::string up;
    c.take_output(up);
    if (!up.empty()) {
      REQUIRE(s.recv(up));
    }
    const std::string down = s.send();
    if (!down.empty()) {
      c.feed(down, now);
    }
    if (up.empty() && down.empty()) {
      return;
    }
  }
  FAIL("the exchange did not settle");
}

std::unique_ptr<H2Liveness> client(H2Liveness::Options o = {}) {
  if (o.authority.empty()) {
    o.authority = "10.0.0.11:6443";
  }
  auto r = H2Liveness::create(o);
  REQUIRE_MESSAGE(r.ok(), r.error());
  return std::move(*r);
}

} // namespace

TEST_CASE("h2 liveness: client preface and SETTINGS, then a quiet connection") {
  auto c = client();
  std::string out;
  c->take_output(out);
  const std::string magic = NGHTTP2_CLIENT_MAGIC;
  REQUIRE(out.size() > magic.size());
  CHECK(out.compare(0, magic.size(), magic) == 0);
  CHECK(out[magic.size() + 3] == NGHTTP2_SETTINGS); // the frame type byte right after the magic
  H2Server s;
  REQUIRE(s.recv(out));
  exchange(*c, s, at(0));
  CHECK(s.settings == 1);
  CHECK_FALSE(c->failed());
  CHECK(c->take_events().empty());
  CHECK_FALSE(c->has_output());
  CHECK(c->pings_in_flight() == 0);
  CHECK(c->requests_in_flight() == 0);
}

TEST_CASE("h2 liveness: PING round trip with its opaque id") {
  auto c = client();
  H2Server s;
  exchange(*c, s, at(0));
  const auto id = c->send_ping(at(1000));
  REQUIRE(id);
  CHECK(*id == 1);
  CHECK(c->pings_in_flight() == 1);
  CHECK(c->oldest_ping() == at(1000));
  exchange(*c, s, at(1007));
  auto ev = c->take_events();
  REQUIRE(ev.size() == 1);
  CHECK(ev[0].kind == Kind::PingAck);
  CHECK(ev[0].ping_id == 1);
  CHECK(ev[0].rtt == 7ms);
  CHECK(s.pings == 1);
  CHECK(c->pings_in_flight() == 0);
  CHECK_FALSE(c->oldest_ping());
  // Two in flight, acked in order, each with its own round trip.
  CHECK(c->send_ping(at(2000)) == 2u);
  CHECK(c->send_ping(at(2001)) == 3u);
  exchange(*c, s, at(2010));
  ev = c->take_events();
  REQUIRE(ev.size() == 2);
  CHECK(ev[0].ping_id == 2);
  CHECK(ev[0].rtt == 10ms);
  CHECK(ev[1].ping_id == 3);
  CHECK(ev[1].rtt == 9ms);
}

TEST_CASE("h2 liveness: GET /readyz answers (table: 200, 500, verbose, a path with a query)") {
  struct Row {
    const char *name;
    std::string path;
    bool verbose;
    int status;
    std::string body;
    std::string want_path;
  };
  const std::vector<Row> rows = {
      {"ready", "/readyz", false, 200, "ok", "/readyz"},
      {"verbose", "/readyz", true, 200, "[+]ping ok\n[+]etcd ok\nreadyz check passed\n",
       "/readyz?verbose"},
      {"draining", "/readyz", false, 500, "[-]shutdown failed: reason withheld\n", "/readyz"},
      {"query", "/readyz?exclude=etcd", true, 200, "ok", "/readyz?exclude=etcd&verbose"},
      {"no body", "/livez", false, 503, "", "/livez"},
  };
  for (const auto &r : rows) {
    const std::string name = r.name;
    CAPTURE(name);
    H2Liveness::Options o;
    o.path = r.path;
    auto c = client(o);
    H2Server s;
    s.status = r.status;
    s.body = r.body;
    exchange(*c, s, at(0));
    const auto id = c->request(at(100), r.verbose);
    REQUIRE(id);
    CHECK(*id == 1);
    CHECK(c->requests_in_flight() == 1);
    CHECK(c->oldest_request() == at(100));
    exchange(*c, s, at(103));
    auto ev = c->take_events();
    REQUIRE(ev.size() == 1);
    CHECK(ev[0].kind == Kind::Response);
    CHECK(ev[0].stream_id == 1);
    CHECK(ev[0].status == r.status);
    CHECK(ev[0].body == r.body);
    CHECK_FALSE(ev[0].body_truncated);
    CHECK(ev[0].rtt == 3ms);
    CHECK(ev[0].duration == 3ms);
    CHECK(s.headers[1][":path"] == r.want_path);
    CHECK(s.headers[1][":method"] == "GET");
    CHECK(s.headers[1][":scheme"] == "https");
    CHECK(s.headers[1][":authority"] == "10.0.0.11:6443");
    CHECK(c->requests_in_flight() == 0);
    // The next request goes on the next stream of the same connection.
    CHECK(c->request(at(200)) == 3);
  }
}

TEST_CASE("h2 liveness: a body larger than max_body is read whole and kept truncated") {
  H2Liveness::Options o;
  o.max_body = 1000;
  auto c = client(o);
  H2Server s;
  s.body = std::string(200 * 1024, 'x'); // over the 64 KiB initial window: flow control works
  exchange(*c, s, at(0));
  REQUIRE(c->request(at(0)));
  exchange(*c, s, at(1));
  auto ev = c->take_events();
  REQUIRE(ev.size() == 1);
  CHECK(ev[0].kind == Kind::Response);
  CHECK(ev[0].body.size() == 1000);
  CHECK(ev[0].body_truncated);
}

TEST_CASE("h2 liveness: GOAWAY is reported and ends requests on this connection") {
  auto c = client();
  H2Server s;
  exchange(*c, s, at(0));
  REQUIRE(c->request(at(1)) == 1);
  exchange(*c, s, at(2));
  CHECK(c->take_events().size() == 1);
  nghttp2_submit_goaway(s.session(), NGHTTP2_FLAG_NONE, 1, NGHTTP2_NO_ERROR, nullptr, 0);
  exchange(*c, s, at(5));
  auto ev = c->take_events();
  REQUIRE(ev.size() == 1);
  CHECK(ev[0].kind == Kind::GoAway);
  CHECK(ev[0].error_code == NGHTTP2_NO_ERROR);
  CHECK(ev[0].last_stream_id == 1);
  CHECK(c->goaway_received());
  CHECK_FALSE(c->failed()); // a graceful goodbye, not an error
  CHECK_FALSE(c->request(at(6)));
}

TEST_CASE("h2 liveness: a stream reset by the server is a failed request, not a failed session") {
  auto c = client();
  H2Server s;
  s.mode = H2Server::Mode::Reset;
  exchange(*c, s, at(0));
  REQUIRE(c->request(at(10)));
  exchange(*c, s, at(12));
  auto ev = c->take_events();
  REQUIRE(ev.size() == 1);
  CHECK(ev[0].kind == Kind::StreamFailed);
  CHECK(ev[0].error_code == NGHTTP2_REFUSED_STREAM);
  CHECK(ev[0].status == 0);
  CHECK_FALSE(c->failed());
  CHECK(c->send_ping(at(20)));
}

TEST_CASE("h2 liveness: unanswered PINGs and requests expire; late answers are ignored") {
  auto c = client();
  H2Server s;
  s.mode = H2Server::Mode::Hang;
  exchange(*c, s, at(0));
  REQUIRE(c->send_ping(at(100)));
  REQUIRE(c->send_ping(at(600)));
  REQUIRE(c->request(at(100)));
  CHECK(c->expire_pings(at(100)) == 0); // sent at the deadline: not yet expired
  CHECK(c->expire_pings(at(500)) == 1);
  CHECK(c->oldest_ping() == at(600));
  CHECK(c->expire_requests(at(500)) == 1);
  CHECK(c->requests_in_flight() == 0);
  // The server acks both PINGs late; only the one still in flight is reported.
  exchange(*c, s, at(1000));
  auto ev = c->take_events();
  REQUIRE(ev.size() == 1);
  CHECK(ev[0].ping_id == 2);
  CHECK(s.resets_received == 1); // the expired request was cancelled
  CHECK_FALSE(c->failed());
}

TEST_CASE("h2 liveness: garbage from the peer is an error, never a crash") {
  struct Row {
    const char *name;
    std::string bytes;
  };
  // A frame header: 24-bit length, type, flags, 31-bit stream id.
  auto frame = [](uint32_t len, uint8_t type, uint8_t flags, uint32_t stream) {
    std::string f;
    f += static_cast<char>(len >> 16);
    f += static_cast<char>(len >> 8);
    f += static_cast<char>(len);
    f += static_cast<char>(type);
    f += static_cast<char>(flags);
    for (int i = 3; i >= 0; i--) {
      f += static_cast<char>(stream >> (8 * i));
    }
    return f;
  };
  const std::vector<Row> rows = {
      {"an HTTP/1.1 answer", "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"},
      {"DATA before SETTINGS", frame(0, NGHTTP2_DATA, 0, 1)},
      {"SETTINGS with a bad length", frame(5, NGHTTP2_SETTINGS, 0, 0) + "12345"},
      {"SETTINGS on a stream", frame(0, NGHTTP2_SETTINGS, 0, 3)},
  };
  for (const auto &r : rows) {
    const std::string name = r.name;
    CAPTURE(name);
    auto c = client();
    std::string out;
    c->take_output(out);
    CHECK_FALSE(c->feed(r.bytes, at(1)));
    CHECK(c->failed());
    CHECK(c->error().find("HTTP/2") != std::string::npos);
    CHECK_FALSE(c->send_ping(at(2)));
    CHECK_FALSE(c->request(at(2)));
    CHECK_FALSE(c->feed("more", at(3)));
  }
  // After a good start: a DATA frame on stream 0 is a connection error.
  {
    auto c = client();
    H2Server s;
    exchange(*c, s, at(0));
    CHECK_FALSE(c->feed(frame(0, NGHTTP2_DATA, 0, 0), at(1)));
    CHECK(c->failed());
    std::string goaway;
    c->take_output(goaway); // the GOAWAY nghttp2 queued to tell the server why
    CHECK(goaway.size() >= 9);
    CHECK(goaway[3] == NGHTTP2_GOAWAY);
  }
  // Random bytes, after the server's preface and without: feed() only ever says yes or no.
  std::mt19937_64 rng(21);
  for (int i = 0; i < 500; i++) {
    auto c = client();
    H2Server s;
    if (i % 2 == 0) {
      exchange(*c, s, at(0));
    }
    std::string junk(rng() % 200, '\0');
    for (auto &ch : junk) {
      ch = static_cast<char>(rng());
    }
    c->feed(junk, at(1));
    std::string out;
    c->take_output(out);
    c->take_events();
    c->send_ping(at(2));
  }
}

TEST_CASE("h2 liveness: over TLS with ALPN h2, as the checker will drive it") {
  kal::testing::TestPki pki;
  auto sctx = kal::TlsContext::server(pki.server_crt(), pki.server_key(), "", {"h2", "http/1.1"});
  REQUIRE(sctx.ok());
  kal::TlsContext::ClientOptions co{pki.ca_crt(), "", ""};
  co.offer_h2 = true;
  auto cctx = kal::TlsContext::client(co);
  REQUIRE(cctx.ok());
  auto ct = kal::TlsEngine::client(*cctx, "", "127.0.0.1", nullptr);
  auto st = kal::TlsEngine::server(*sctx);
  // The handshake, bytes shuttled by hand as the socket would.
  for (int i = 0; i < 10 && !(ct->handshake_done() && st->handshake_done()); i++) {
    REQUIRE(ct->handshake() != kal::TlsEngine::Handshake::Failed);
    std::string wire;
    ct->take_output(wire);
    st->feed(wire);
    REQUIRE(st->handshake() != kal::TlsEngine::Handshake::Failed);
    wire.clear();
    st->take_output(wire);
    ct->feed(wire);
  }
  REQUIRE(ct->handshake() == kal::TlsEngine::Handshake::Done);
  REQUIRE(ct->alpn() == "h2");
  auto c = client();
  H2Server s;
  REQUIRE(c->send_ping(at(0)));
  REQUIRE(c->request(at(0), true));
  // Plaintext HTTP/2 through both TLS engines until nothing moves.
  for (int i = 0; i < 20; i++) {
    std::string plain, wire, back;
    c->take_output(plain);
    if (!plain.empty()) {
      REQUIRE(ct->write(plain));
    }
    ct->take_output(wire);
    st->feed(wire);
    std::string got;
    REQUIRE(st->read(got) == kal::TlsEngine::ReadStatus::Ok);
    if (!got.empty()) {
      REQUIRE(s.recv(got));
    }
    const std::string answer = s.send();
    if (!answer.empty()) {
      REQUIRE(st->write(answer));
    }
    st->take_output(back);
    ct->feed(back);
    std::string down;
    REQUIRE(ct->read(down) == kal::TlsEngine::ReadStatus::Ok);
    if (!down.empty()) {
      REQUIRE(c->feed(down, at(4)));
    }
    if (plain.empty() && wire.empty() && answer.empty() && back.empty()) {
      break;
    }
  }
  auto ev = c->take_events();
  REQUIRE(ev.size() == 2);
  CHECK(ev[0].kind == Kind::PingAck);
  CHECK(ev[0].rtt == 4ms);
  CHECK(ev[1].kind == Kind::Response);
  CHECK(ev[1].status == 200);
  CHECK(s.pings == 1);
  CHECK(s.requests == 1);
}
