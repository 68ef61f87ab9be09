#pragma once
// splice(2) for one direction of a session once it carries bulk data: source socket -> pipe ->
// destination socket inside the kernel, no copy through user space. libuv allows one watcher per
// descriptor and owns the sockets, so the pipe polls duplicates of them (which share the sockets);
// reading through libuv is stopped on the source while the pipe is open.
//
// The pipe is that direction's buffer: pump() moves bytes until the source has none, the
// destination is full (then it watches the one it waits for) or a fair share was moved, and says
// what stopped it; what an end or an error means is the session's business.
#include "uvx/handle.h"

#include <uv.h>

#include <sys/types.h>

#include <cstddef>
#include <cstdint>

namespace kal {

class SplicePipe {
public:
  // splice(2) moves up to a chunk per call through a pipe of the same size.
  static constexpr size_t kChunk = 256 * 1024;

  SplicePipe() = default;
  SplicePipe(const SplicePipe &) = delete;
  SplicePipe &operator=(const SplicePipe &) = delete;
  ~SplicePipe() { close(); }

  bool active() const { return pipe_r_ >= 0; }
  // Opens the pipe, duplicates `src_fd` and `dst_fd` and makes a watcher for each on `loop` whose
  // callback `cb` finds `owner` in the handle's data. False (nothing left open) when any step
  // fails.
  bool open(uv_loop_t *loop, int src_fd, int dst_fd, void *owner, uv_poll_cb cb);
  // Closes the pipe, the watchers and the duplicates. Idempotent.
  void close();
  // Whether `h` is one of this pipe's watchers.
  bool owns(const uv_poll_t *h) const { return h == src_poll_.get() || h == dst_poll_.get(); }

  // A session moves at most this much per loop turn before it lets other connections run.
  static constexpr size_t kFairShare = 1024 * 1024;

  struct Pumped {
    enum class Stop : uint8_t {
      Waiting,      // for the source's bytes or the destination's room (a watcher is armed)
      SourceEnded,  // the source's FIN, every byte before it delivered
      SourceFailed, // the source's error (a reset), every byte before it delivered
      DestFailed,   // the destination failed (reset, broken pipe)
    };
    Stop stop = Stop::Waiting;
    size_t read = 0; // bytes taken from the source during this pump
  };
  // Pipe -> destination first, then source -> pipe, until something stops it (see Pumped).
  Pumped pump();
  // Bytes in the pipe, owed to the destination.
  size_t held() const { return held_; }

private:
  uv_loop_t *loop_ = nullptr;
  size_t held_ = 0;
  uv_poll_cb cb_ = nullptr;
  int pipe_r_ = -1;
  int pipe_w_ = -1;
  int src_fd_ = -1; // dup of the source socket, polled for reading
  int dst_fd_ = -1; // dup of the destination socket, polled for writing when it is full
  uvx::Handle<uv_poll_t> src_poll_;
  uvx::Handle<uv_poll_t> dst_poll_;
};

} // namespace kal
