#include "kube_api_lb/core/http_response_parser.h"

#include <doctest/doctest.h>

#include <string>

using kal::HttpResponseParser;
using State = HttpResponseParser::State;

namespace {

// Feeds `text` one byte at a time and in one piece; both must agree.
State feed_both_ways(const std::string &text, HttpResponseParser &whole) {
  HttpResponseParser bytewise;
  State s1 = State::Incomplete;
  for (char c : text) {
    s1 = bytewise.feed(std::string_view(&c, 1));
  }
  State s2 = whole.feed(text);
  CHECK(s1 == s2);
  CHECK(bytewise.status() == whole.status());
  CHECK(bytewise.keep_alive() == whole.keep_alive());
  return s2;
}

} // namespace

TEST_CASE("http: 200 with Content-Length keeps the connection") {
  HttpResponseParser p;
  CHECK(feed_both_ways("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok",
                       p) == State::Done);
  CHECK(p.status() == 200);
  CHECK(p.keep_alive());
  CHECK(p.body_bytes() == 2);
}

TEST_CASE("http: apiserver-style 500 with a longer body") {
  std::string body = "[+]ping ok\n[-]shutdown failed: reason withheld\nreadyz check failed\n";
  HttpResponseParser p;
  CHECK(feed_both_ways("HTTP/1.1 500 Internal Server Error\r\nContent-Length: " +
                           std::to_string(body.size()) + "\r\n\r\n" + body,
                       p) == State::Done);
  CHECK(p.status() == 500);
  CHECK(p.keep_alive());
}

TEST_CASE("http: chunked body with extensions and trailers") {
  HttpResponseParser p;
  CHECK(feed_both_ways("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "2;ext=1\r\nok\r\nA\r\n0123456789\r\n0\r\nX-Trailer: y\r\n\r\n",
                       p) == State::Done);
  CHECK(p.status() == 200);
  CHECK(p.body_bytes() == 12);
  CHECK(p.keep_alive());
}

TEST_CASE("http: Connection: close and HTTP/1.0") {
  HttpResponseParser a;
  CHECK(feed_both_ways("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", a) ==
        State::Done);
  CHECK_FALSE(a.keep_alive());
  HttpResponseParser b;
  CHECK(feed_both_ways("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", b) == State::Done);
  CHECK_FALSE(b.keep_alive());
  HttpResponseParser c;
  CHECK(feed_both_ways("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n",
                       c) == State::Done);
  CHECK(c.keep_alive());
}

TEST_CASE("http: body until close completes on finish()") {
  HttpResponseParser p;
  CHECK(p.feed("HTTP/1.1 403 Forbidden\r\n\r\nforbidden") == State::Incomplete);
  CHECK(p.head_done());
  CHECK(p.status() == 403);
  CHECK(p.finish() == State::Done);
  CHECK_FALSE(p.keep_alive());
}

TEST_CASE("http: interim 100 Continue is skipped; 204 has no body") {
  HttpResponseParser p;
  CHECK(feed_both_ways("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n", p) ==
        State::Done);
  CHECK(p.status() == 204);
}

TEST_CASE("http: malformed and truncated answers are errors") {
  const char *bad[] = {
      "HTTP/2 200\r\n\r\n",
      "SSH-2.0-OpenSSH_9.2\r\n\r\n",
      "HTTP/1.1 2x0 OK\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
      "HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokX\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n",
  };
  for (const char *b : bad) {
    CAPTURE(b);
    HttpResponseParser p;
    CHECK(p.feed(b) == State::Error);
    CHECK_FALSE(p.error().empty());
    CHECK_FALSE(p.keep_alive());
  }
  HttpResponseParser trunc;
  CHECK(trunc.feed("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nok") == State::Incomplete);
  CHECK(trunc.finish() == State::Error);
  HttpResponseParser empty;
  CHECK(empty.finish() == State::Error);
  CHECK(empty.error() == "connection closed before any response");
  HttpResponseParser huge;
  CHECK(huge.feed(std::string(20000, 'x')) == State::Error);
}

TEST_CASE("http: unexpected bytes after the response forbid reuse; reset() allows the next") {
  HttpResponseParser p;
  CHECK(p.feed("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200") == State::Done);
  CHECK_FALSE(p.keep_alive());
  p.reset();
  CHECK(p.status() == 0);
  CHECK(p.feed("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n") == State::Done);
  CHECK(p.keep_alive());
}

TEST_CASE("http: the status is known as soon as the status line is complete") {
  HttpResponseParser p;
  CHECK(p.status_line_status() == 0);
  p.feed("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 50");
  CHECK(p.status_line_status() == 0); // interim, then an incomplete line
  p.feed("0 Internal Server Error\r");
  CHECK(p.status_line_status() == 0);
  p.feed("\nContent-Type: text/plain\r\n");
  CHECK(p.status_line_status() == 500); // the headers are still coming
  CHECK(p.status() == 0);
  p.feed("Content-Length: 100\r\n\r\n[-]shutdown");
  CHECK(p.state() == State::Incomplete); // the body never finishes
  CHECK(p.status_line_status() == 500);
  CHECK(p.status() == 500);

  HttpResponseParser bad;
  bad.feed("HTTP/1.1 5x0 Nope\r\nContent-Type: text/plain\r\n");
  CHECK(bad.status_line_status() == 0);
  HttpResponseParser other;
  other.feed("SSH-2.0-OpenSSH_9.2\r\n");
  CHECK(other.status_line_status() == 0);
}

TEST_CASE("http response parser: kept body bytes, de-chunked, with its own limit") {
  struct Row {
    const char *name;
    std::string head_and_body;
    size_t max_body;
    const char *want_body;
    HttpResponseParser::State want;
  };
  const Row rows[] = {
      {"content-length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 100, "hello",
       HttpResponseParser::State::Done},
      {"chunked, de-chunked",
       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n2\r\n\"}\r\n0\r\n\r\n",
       100, "{\"a\"}", HttpResponseParser::State::Done},
      {"a watch stream has no body limit (0); its events are bounded by the framer",
       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + std::string("fff\r\n") +
           std::string(0xfff, 'x') + "\r\n",
       0, nullptr, HttpResponseParser::State::Incomplete},
      {"over the kept limit", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 4, "",
       HttpResponseParser::State::Error},
  };
  for (const auto &r : rows) {
    CAPTURE(r.name);
    HttpResponseParser p;
    p.keep_body(r.max_body);
    std::string body;
    // Byte by byte: the body is kept whatever the reads.
    HttpResponseParser::State st = HttpResponseParser::State::Incomplete;
    for (char c : r.head_and_body) {
      st = p.feed(std::string_view(&c, 1));
      p.take_body(body);
    }
    CHECK(st == r.want);
    if (r.want_body) {
      CHECK(body == r.want_body);
    } else {
      CHECK(body.size() == 0xfff);
    }
  }
  // Without keep_body() nothing is kept (a /readyz answer is only counted).
  HttpResponseParser q;
  q.feed("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  std::string none;
  q.take_body(none);
  CHECK(none.empty());
  CHECK(q.body_bytes() == 2);
}
