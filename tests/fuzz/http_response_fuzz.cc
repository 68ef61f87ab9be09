// The health check's HTTP/1.1 response parser (kal::HttpResponseParser) on arbitrary bytes. The
// first input byte picks how the rest is cut into reads. Properties: the verdict (state, status,
// keep-alive, body length, error) is the same whether the bytes arrive at once or in pieces, and
// after finish(); an error says what is wrong; a complete answer has a 3-digit status and at most
// kMaxBodyBytes of body.
#include "fuzz_target.h"
#include "kube_api_lb/core/http_response_parser.h"

#include <string>

namespace {

using kal::HttpResponseParser;

std::string describe(const HttpResponseParser &p) {
  return "state " + std::to_string(static_cast<int>(p.state())) + " status " +
         std::to_string(p.status()) + " keep-alive " + std::to_string(p.keep_alive()) + " body " +
         std::to_string(p.body_bytes()) + " error \"" + p.error() + "\"";
}

bool same(const HttpResponseParser &a, const HttpResponseParser &b) {
  return a.state() == b.state() && a.status() == b.status() && a.keep_alive() == b.keep_alive() &&
         a.body_bytes() == b.body_bytes() && a.error() == b.error() &&
         a.head_done() == b.head_done();
}

void check_one(const HttpResponseParser &p) {
  KAL_FUZZ_CHECK((p.state() == HttpResponseParser::State::Error) == !p.error().empty(),
                 describe(p));
  if (p.state() == HttpResponseParser::State::Done) {
    KAL_FUZZ_CHECK(p.head_done() && p.status() >= 100 && p.status() <= 999, describe(p));
    KAL_FUZZ_CHECK(p.body_bytes() <= HttpResponseParser::kMaxBodyBytes, describe(p));
  }
}

} // namespace

KAL_FUZZ_TARGET(http_response) {
  if (size == 0) {
    return;
  }
  unsigned seed = data[0];
  const std::string_view bytes(reinterpret_cast<const char *>(data + 1), size - 1);
  HttpResponseParser whole;
  HttpResponseParser pieces;
  whole.feed(bytes);
  size_t at = 0;
  while (at < bytes.size()) {
    seed = seed * 1103515245u + 12345u;
    size_t n = 1 + (seed >> 16) % 64;
    pieces.feed(bytes.substr(at, n));
    at += n;
  }
  // Every piece is fed, even after a verdict: bytes after a complete answer end its keep-alive.
  KAL_FUZZ_CHECK(same(whole, pieces),
                 "at once: " + describe(whole) + "\nin pieces: " + describe(pieces));
  check_one(whole);
  whole.finish();
  pieces.finish();
  KAL_FUZZ_CHECK(same(whole, pieces),
                 "after finish, at once: " + describe(whole) + "\nin pieces: " + describe(pieces));
  KAL_FUZZ_CHECK(whole.state() != HttpResponseParser::State::Incomplete, describe(whole));
  check_one(whole);
}
