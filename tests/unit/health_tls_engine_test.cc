#include "health/tls_engine.h"
#include "tls_test_certs.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using kal::TlsContext;
using kal::TlsEngine;
using kal::testing::TestPki;

namespace {

// Shuttles bytes between two engines until both handshakes finish or one fails.
bool pump_handshake(TlsEngine &c, TlsEngine &s) {
  for (int i = 0; i < 20; i++) {
    auto hc = c.handshake();
    std::string buf;
    c.take_output(buf);
    s.feed(buf);
    auto hs = s.handshake();
    buf.clear();
    s.take_output(buf);
    c.feed(buf);
    if (hc == TlsEngine::Handshake::Failed || hs == TlsEngine::Handshake::Failed) {
      return false;
    }
    if (hc == TlsEngine::Handshake::Done && hs == TlsEngine::Handshake::Done && !buf.size()) {
      return true;
    }
  }
  return false;
}

// Sends plaintext one way and returns what arrived.
std::string transfer(TlsEngine &from, TlsEngine &to, const std::string &text) {
  REQUIRE(from.write(text));
  std::string wire;
  from.take_output(wire);
  if (text.size() >= 8) {
    CHECK(wire.find(text) == std::string::npos); // encrypted on the wire
  }
  to.feed(wire);
  std::string got;
  CHECK(to.read(got) == TlsEngine::ReadStatus::Ok);
  // Post-handshake messages (TLS 1.3 tickets) travel back, as on a real socket.
  std::string back;
  to.take_output(back);
  from.feed(back);
  return got;
}

struct Pair {
  std::unique_ptr<TlsEngine> client, server;
};

} // namespace

TEST_CASE("tls engine: handshake, verify by IP, exchange data, close_notify") {
  TestPki pki;
  auto sctx = TlsContext::server(pki.server_crt(), pki.server_key());
  REQUIRE_MESSAGE(sctx.ok(), sctx.error());
  auto cctx = TlsContext::client({pki.ca_crt(), "", ""});
  REQUIRE_MESSAGE(cctx.ok(), cctx.error());
  auto c = TlsEngine::client(*cctx, "", "127.0.0.1", nullptr);
  auto s = TlsEngine::server(*sctx);
  REQUIRE(pump_handshake(*c, *s));
  CHECK_FALSE(c->resumed());
  CHECK(transfer(*c, *s, "GET /readyz HTTP/1.1\r\n\r\n") == "GET /readyz HTTP/1.1\r\n\r\n");
  CHECK(transfer(*s, *c, "HTTP/1.1 200 OK\r\n\r\n") == "HTTP/1.1 200 OK\r\n\r\n");
  s->shutdown();
  std::string wire;
  s->take_output(wire);
  c->feed(wire);
  std::string got;
  CHECK(c->read(got) == TlsEngine::ReadStatus::Closed);
}

TEST_CASE("tls engine: verify by DNS name via SNI; wrong name, IP or CA fails") {
  TestPki pki;
  auto sctx = TlsContext::server(pki.server_crt(), pki.server_key());
  REQUIRE(sctx.ok());
  auto cctx = TlsContext::client({pki.ca_crt(), "", ""});
  REQUIRE(cctx.ok());
  {
    auto c = TlsEngine::client(*cctx, "localhost", "localhost", nullptr);
    auto s = TlsEngine::server(*sctx);
    CHECK(pump_handshake(*c, *s));
  }
  {
    auto c = TlsEngine::client(*cctx, "evil.example", "evil.example", nullptr);
    auto s = TlsEngine::server(*sctx);
    CHECK_FALSE(pump_handshake(*c, *s));
    CHECK(c->error().find("certificate verify failed") != std::string::npos);
    CHECK(c->error().find("hostname mismatch") != std::string::npos);
  }
  {
    auto c = TlsEngine::client(*cctx, "", "127.0.0.99", nullptr);
    auto s = TlsEngine::server(*sctx);
    CHECK_FALSE(pump_handshake(*c, *s));
    CHECK(c->error().find("IP address mismatch") != std::string::npos);
  }
  {
    auto other = TlsContext::client({pki.other_ca_crt(), "", ""});
    REQUIRE(other.ok());
    auto c = TlsEngine::client(*other, "", "127.0.0.1", nullptr);
    auto s = TlsEngine::server(*sctx);
    CHECK_FALSE(pump_handshake(*c, *s));
    CHECK(c->error().find("certificate verify failed") != std::string::npos);
  }
  {
    // No CA file: no verification (the name does not matter).
    auto noverify = TlsContext::client({});
    REQUIRE(noverify.ok());
    auto c = TlsEngine::client(*noverify, "evil.example", "evil.example", nullptr);
    auto s = TlsEngine::server(*sctx);
    CHECK(pump_handshake(*c, *s));
  }
}

TEST_CASE("tls engine: client certificate required by the server") {
  TestPki pki;
  auto sctx = TlsContext::server(pki.server_crt(), pki.server_key(), pki.ca_crt());
  REQUIRE(sctx.ok());
  {
    auto cctx = TlsContext::client({pki.ca_crt(), pki.client_crt(), pki.client_key()});
    REQUIRE_MESSAGE(cctx.ok(), cctx.error());
    auto c = TlsEngine::client(*cctx, "", "127.0.0.1", nullptr);
    auto s = TlsEngine::server(*sctx);
    REQUIRE(pump_handshake(*c, *s));
    // TLS 1.3 checks the client certificate after the client thinks it is done: the server's
    // verdict must be a success, seen by exchanging data.
    CHECK(transfer(*c, *s, "ping") == "ping");
  }
  {
    auto cctx = TlsContext::client({pki.ca_crt(), "", ""});
    REQUIRE(cctx.ok());
    auto c = TlsEngine::client(*cctx, "", "127.0.0.1", nullptr);
    auto s = TlsEngine::server(*sctx);
    pump_handshake(*c, *s);
    CHECK(s->handshake() == TlsEngine::Handshake::Failed);
  }
}

TEST_CASE("tls engine: session resumption with the session of the last handshake") {
  TestPki pki;
  auto sctx = TlsContext::server(pki.server_crt(), pki.server_key());
  auto cctx = TlsContext::client({pki.ca_crt(), "", ""});
  REQUIRE(sctx.ok());
  REQUIRE(cctx.ok());
  kal::SslSessionPtr session;
  {
    auto c = TlsEngine::client(*cctx, "", "127.0.0.1", nullptr);
    auto s = TlsEngine::server(*sctx);
    REQUIRE(pump_handshake(*c, *s));
    CHECK_FALSE(c->resumed());
    // TLS 1.3 tickets arrive after the handshake; reading delivers them.
    CHECK(transfer(*s, *c, "x") == "x");
    std::string dummy;
    c->read(dummy);
    session = c->take_new_session();
    REQUIRE(session != nullptr);
  }
  for (int i = 0; i < 3; i++) {
    auto c = TlsEngine::client(*cctx, "", "127.0.0.1", session.get());
    auto s = TlsEngine::server(*sctx);
    REQUIRE(pump_handshake(*c, *s));
    CHECK(c->resumed());
    CHECK(s->resumed());
    CHECK(transfer(*s, *c, "y") == "y");
    if (auto fresh = c->take_new_session()) {
      session = std::move(fresh);
    }
  }
}

TEST_CASE("tls engine: bad files give clear errors") {
  TestPki pki;
  auto a = TlsContext::client({"/nonexistent/ca.pem", "", ""});
  CHECK_FALSE(a.ok());
  CHECK(a.error().find("/nonexistent/ca.pem") != std::string::npos);
  auto b = TlsContext::client({"", pki.client_crt(), ""});
  CHECK_FALSE(b.ok());
  auto c = TlsContext::client({"", pki.client_crt(), pki.server_key()});
  CHECK_FALSE(c.ok());
  CHECK(c.error().find(pki.server_key()) != std::string::npos);
  auto d = TlsContext::server("/nonexistent.crt", pki.server_key());
  CHECK_FALSE(d.ok());
}

TEST_CASE("tls engine: garbage from the peer fails the handshake") {
  auto cctx = TlsContext::client({});
  REQUIRE(cctx.ok());
  auto c = TlsEngine::client(*cctx, "", "", nullptr);
  CHECK(c->handshake() == TlsEngine::Handshake::InProgress);
  std::string hello;
  CHECK(c->take_output(hello) > 0);
  c->feed("HTTP/1.1 400 Bad Request\r\n\r\n");
  CHECK(c->handshake() == TlsEngine::Handshake::Failed);
  CHECK_FALSE(c->error().empty());
  CHECK_FALSE(c->write("x"));
}

TEST_CASE("tls engine: ALPN h2 offered only when asked; the negotiated protocol is reported") {
  TestPki pki;
  struct Row {
    const char *name;
    bool offer_h2;
    std::vector<std::string> server; // the server's accepted protocols, its preference first
    const char *want;                // what both ends report
  };
  const std::vector<Row> rows = {
      {"default: no ALPN even if the server speaks h2", false, {"h2", "http/1.1"}, ""},
      {"apiserver-like server", true, {"h2", "http/1.1"}, "h2"},
      {"server preference wins", true, {"http/1.1", "h2"}, "http/1.1"},
      {"HTTP/1.1-only server", true, {"http/1.1"}, "http/1.1"},
      {"server without ALPN", true, {}, ""},
      {"nothing in common: no ALPN, handshake still succeeds", true, {"spdy/3"}, ""},
  };
  for (const auto &r : rows) {
    const std::string name = r.name;
    CAPTURE(name);
    auto sctx = TlsContext::server(pki.server_crt(), pki.server_key(), "", r.server);
    REQUIRE_MESSAGE(sctx.ok(), sctx.error());
    TlsContext::ClientOptions o{pki.ca_crt(), "", ""};
    o.offer_h2 = r.offer_h2;
    auto cctx = TlsContext::client(o);
    REQUIRE_MESSAGE(cctx.ok(), cctx.error());
    auto c = TlsEngine::client(*cctx, "", "127.0.0.1", nullptr);
    auto s = TlsEngine::server(*sctx);
    CHECK(c->alpn().empty()); // nothing before the handshake
    REQUIRE(pump_handshake(*c, *s));
    CHECK(c->alpn() == r.want);
    CHECK(s->alpn() == r.want);
    CHECK(transfer(*c, *s, "PRI * HTTP/2.0") == "PRI * HTTP/2.0");
  }
}
