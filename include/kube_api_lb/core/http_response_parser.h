#pragma once
// Incremental parser of one HTTP/1.1 response (status line, headers, body framed by
// Content-Length, chunked encoding or connection close), enough to read an apiserver's /readyz
// answer on a kept-alive connection and know whether that connection can carry the next request.
// Pure: bytes in, state out; no I/O.
#include <cstddef>
#include <string>
#include <string_view>

namespace kal {

class HttpResponseParser {
public:
  enum class State { Incomplete, Done, Error };

  // Limits against a misbehaving peer: a larger head or body is an Error.
  static constexpr size_t kMaxHeadBytes = 16 * 1024;
  static constexpr size_t kMaxBodyBytes = 1024 * 1024;

  // Feeds received bytes. Returns Done once a complete response was read (bytes after it are
  // ignored and make keep_alive() false, since they cannot belong to a request we sent), Error on
  // malformed input (see error()), otherwise Incomplete. Feeding after Done/Error is a no-op.
  State feed(std::string_view data);

  // The peer closed the connection: completes a body delimited by close, else an Error if the
  // response was not complete yet.
  State finish();

  State state() const { return state_; }
  int status() const { return status_; } // valid once the head was parsed, else 0
  // The final response's status as soon as its status line is complete, even while the rest of
  // the head or the body is still missing; 0 if no well-formed final (>= 200) status line yet.
  int status_line_status() const;
  bool head_done() const { return phase_ > Phase::Head; }
  bool keep_alive() const { return state_ == State::Done && keep_alive_; }
  const std::string &error() const { return error_; }
  size_t body_bytes() const { return body_bytes_; }

  // Keeps the body's bytes (de-chunked) for take_body() instead of only counting them, with
  // `max_body` as the body limit instead of kMaxBodyBytes (0: none, for a watch stream whose
  // events are bounded by their own framer, core/watch_stream.h). Call before feeding; reset()
  // turns it off again.
  void keep_body(size_t max_body) {
    keep_body_ = true;
    max_body_ = max_body;
  }
  // Appends the body bytes received since the last call to `out` (nothing unless keep_body()).
  void take_body(std::string &out) {
    out.append(body_);
    body_.clear();
  }

  // Ready for the next response on the same connection.
  void reset() { *this = HttpResponseParser(); }

private:
  enum class Phase { Head, Body, ChunkSize, ChunkData, ChunkDataEnd, Trailers, UntilClose, End };
  State fail(std::string msg);
  State parse_head(std::string_view head);
  State complete();
  bool take_line(std::string_view &data, std::string &line);
  // Takes up to remaining_ body bytes off the front of `data` (kept if keep_body_); returns what
  // remains of the body or chunk after them.
  size_t take_body(std::string_view &data);

  State state_ = State::Incomplete;
  Phase phase_ = Phase::Head;
  std::string buf_; // head bytes, or a partial chunk-size / trailer line
  std::string error_;
  int status_ = 0;
  bool keep_alive_ = true;
  size_t remaining_ = 0; // body or chunk bytes still to read
  size_t body_bytes_ = 0;
  bool extra_ = false;
  bool keep_body_ = false;
  size_t max_body_ = kMaxBodyBytes; // 0: no limit
  std::string body_;                // kept body bytes not taken yet
};

} // namespace kal
