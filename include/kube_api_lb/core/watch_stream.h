#pragma once
// Frames a Kubernetes watch stream: the body of `GET ...?watch=1` is a sequence of JSON objects,
// one per event (kube-apiserver writes each followed by a newline; a json.Decoder on the other
// side does not need it). The framer cuts the bytes into whole objects by tracking brace depth
// outside strings, so an event split across reads or chunks is put together, and hands out each
// object's text for a JSON parser. Pure: bytes in, events out, no I/O.
//
// Bounded: an event larger than `max_event_bytes` is an error the moment it passes the limit,
// never a growing buffer, and so is any byte outside an object that is not whitespace (garbage,
// or a stream that is not a watch at all). After an error the framer takes nothing more: the
// caller drops the connection and lists again.
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace kal {

class WatchStreamFramer {
public:
  enum class State { Ok, Error };

  explicit WatchStreamFramer(size_t max_event_bytes) : max_(max_event_bytes) {}

  // Feeds received body bytes; appends every object completed by them to `events` (in order).
  // Returns Error (see error()) on garbage or an oversize event; the events completed before the
  // bad byte are still appended.
  State feed(std::string_view data, std::vector<std::string> &events);

  State state() const { return state_; }
  const std::string &error() const { return error_; }
  // Bytes of an event begun but not finished (a stream cut now was cut mid-event).
  size_t partial_bytes() const { return cur_.size(); }
  size_t max_event_bytes() const { return max_; }

private:
  State fail(std::string msg);

  size_t max_;
  State state_ = State::Ok;
  std::string error_;
  std::string cur_;
  int depth_ = 0;
  bool in_string_ = false;
  bool escape_ = false;
};

} // namespace kal
