#pragma once
// The libuv stream plumbing the TLS clients (the health probe, the discovery client) share: a
// read buffer the owner keeps and libuv fills, reads handed to the owner, and writes of owned
// bytes whose failure goes back to the owner. The owner is the stream handle's `data`; an owner
// that let go sets it to nullptr first, and the callbacks then only free what they must.
//
// Template arguments name the owner's members, so private members work when the owner itself
// calls read_start() / write_owned():
//   uvx::read_start<Probe, &Probe::readbuf_, &Probe::on_read>(stream);
//   uvx::write_owned<Probe, &Probe::on_io_error>(stream, std::move(bytes));
#include <uv.h>

#include <string>
#include <vector>

namespace kal::uvx {

// A write request that owns its bytes and frees itself in the callback.
struct OwnedWrite {
  uv_write_t req{};
  std::string bytes;
};

template <class T, std::vector<char> T::*Buf, void (T::*OnRead)(ssize_t, const char *)>
struct StreamReader {
  static void alloc(uv_handle_t *h, size_t, uv_buf_t *buf) noexcept {
    auto *self = static_cast<T *>(h->data);
    if (!self) {
      *buf = uv_buf_init(nullptr, 0); // the read callback gets UV_ENOBUFS and ignores it
      return;
    }
    auto &b = self->*Buf;
    *buf = uv_buf_init(b.data(), static_cast<unsigned>(b.size()));
  }
  static void read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) noexcept {
    auto *self = static_cast<T *>(s->data);
    if (!self || nread == 0) {
      return;
    }
    (self->*OnRead)(nread, buf->base);
  }
};

// Starts reading `s` into the owner's buffer; OnRead gets each read (bytes, or a negative libuv
// status such as UV_EOF). Returns uv_read_start's result.
template <class T, std::vector<char> T::*Buf, void (T::*OnRead)(ssize_t, const char *)>
int read_start(uv_stream_t *s) {
  using R = StreamReader<T, Buf, OnRead>;
  return uv_read_start(s, &R::alloc, &R::read);
}

template <class T, void (T::*OnError)(int)> void owned_write_done(uv_write_t *req, int status) {
  auto *w = reinterpret_cast<OwnedWrite *>(req);
  auto *self = static_cast<T *>(req->handle->data);
  delete w;
  if (!self || status == 0 || status == UV_ECANCELED) {
    return;
  }
  (self->*OnError)(status);
}

// Writes `bytes` (not empty) to `s`; a write that fails later calls OnError with its status.
// Returns uv_write's result: on an error nothing was queued and OnError is not called.
template <class T, void (T::*OnError)(int)> int write_owned(uv_stream_t *s, std::string bytes) {
  auto *w = new OwnedWrite{};
  w->bytes = std::move(bytes);
  uv_buf_t b = uv_buf_init(w->bytes.data(), static_cast<unsigned>(w->bytes.size()));
  const int rc = uv_write(&w->req, s, &b, 1, [](uv_write_t *req, int status) noexcept {
    owned_write_done<T, OnError>(req, status);
  });
  if (rc != 0) {
    delete w;
  }
  return rc;
}

} // namespace kal::uvx
