// uvx/stream_io.h on a real libuv stream (one end of a socketpair): reads reach the owner's
// member, owned writes arrive and free themselves, a failed write reaches the owner's error
// member, and an owner that let go (data = nullptr) gets nothing while everything is still freed
// (the ASan run checks for leaks).
#include "uv_test_loop.h"
#include "uvx/stream_io.h"

#include <doctest/doctest.h>

#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using kal::testing::Loop;

namespace {

struct Owner {
  std::vector<char> buf = std::vector<char>(7); // small: a long message arrives in several reads
  std::string got;
  int reads = 0;
  bool eof = false;
  int write_error = 0;
  void on_read(ssize_t n, const char *data) {
    if (n == UV_EOF) {
      eof = true;
      return;
    }
    REQUIRE(n > 0);
    ++reads;
    got.append(data, static_cast<size_t>(n));
  }
  void on_error(int status) { write_error = status; }
};

struct Pair {
  uv_pipe_t pipe{}; // first: the close callback finds the Pair from the handle
  uv_loop_t *loop;
  int other = -1;
  bool closed = false;
  explicit Pair(uv_loop_t *l, Owner *owner) : loop(l) {
    int fds[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
    REQUIRE(uv_pipe_init(loop, &pipe, 0) == 0);
    REQUIRE(uv_pipe_open(&pipe, fds[0]) == 0);
    pipe.data = owner;
    other = fds[1];
  }
  uv_stream_t *stream() { return reinterpret_cast<uv_stream_t *>(&pipe); }
  ~Pair() {
    if (other >= 0) {
      close(other);
    }
    // The handle's memory lives here: finish the close (and the pending writes' cancellation)
    // before it goes.
    uv_close(reinterpret_cast<uv_handle_t *>(&pipe),
             [](uv_handle_t *h) { reinterpret_cast<Pair *>(h)->closed = true; });
    for (int i = 0; i < 1000 && !closed; ++i) {
      uv_run(loop, UV_RUN_NOWAIT);
    }
    REQUIRE(closed);
  }
};

} // namespace

TEST_CASE("stream io: reads reach the owner, owned writes arrive, a failed write reaches it too") {
  Loop l;
  Owner o;
  {
    Pair p(&l.loop, &o);
    REQUIRE(kal::uvx::read_start<Owner, &Owner::buf, &Owner::on_read>(p.stream()) == 0);
    const std::string msg = "a message longer than the buffer";
    REQUIRE(write(p.other, msg.data(), msg.size()) == static_cast<ssize_t>(msg.size()));
    CHECK(l.run_until([&] { return o.got == msg; }, 2000ms));
    CHECK(o.reads >= 5); // 7-byte buffer
    REQUIRE(kal::uvx::write_owned<Owner, &Owner::on_error>(p.stream(), "reply") == 0);
    std::string back(5, '\0');
    CHECK(l.run_until(
        [&] { return recv(p.other, back.data(), back.size(), MSG_DONTWAIT | MSG_PEEK) == 5; },
        2000ms));
    CHECK(recv(p.other, back.data(), back.size(), 0) == 5);
    CHECK(back == "reply");
    CHECK(o.write_error == 0);
    // The peer goes: EOF on the read side, and a write then fails back to the owner.
    close(p.other);
    p.other = -1;
    CHECK(l.run_until([&] { return o.eof; }, 2000ms));
    auto old = std::signal(SIGPIPE, SIG_IGN);
    int rc = kal::uvx::write_owned<Owner, &Owner::on_error>(p.stream(), "lost");
    if (rc == 0) {
      CHECK(l.run_until([&] { return o.write_error != 0; }, 2000ms));
    } else {
      CHECK(o.write_error == 0); // refused at once: the caller has the status, no callback
    }
    std::signal(SIGPIPE, old);
  }
  l.run_for(10ms);
}

TEST_CASE("stream io: an owner that let go gets no callback, and the write is still freed") {
  Loop l;
  Owner o;
  {
    Pair p(&l.loop, &o);
    REQUIRE(kal::uvx::read_start<Owner, &Owner::buf, &Owner::on_read>(p.stream()) == 0);
    REQUIRE(kal::uvx::write_owned<Owner, &Owner::on_error>(p.stream(), "queued") == 0);
    p.pipe.data = nullptr; // the owner is gone; its handle closes below with the write pending
    REQUIRE(write(p.other, "late", 4) == 4);
    l.run_for(20ms);
    CHECK(o.got.empty());
  }
  l.run_for(20ms);
  CHECK(o.write_error == 0);
  CHECK(o.reads == 0);
}
