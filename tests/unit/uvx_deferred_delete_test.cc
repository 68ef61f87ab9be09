#include "uv_test_loop.h"
#include "uvx/deferred_delete.h"

#include <doctest/doctest.h>

using namespace std::chrono_literals;

namespace {
struct Obj {
  explicit Obj(int *deleted) : deleted(deleted) {}
  ~Obj() { ++*deleted; }
  int *deleted;
};
} // namespace

TEST_CASE("DeferredDelete frees what is queued at the end of the loop iteration, not before") {
  kal::testing::Loop l;
  int deleted = 0;
  {
    kal::uvx::DeferredDelete<Obj> dd(&l.loop);
    // Queued from inside a callback, as a session closes inside its own read callback.
    uv_idle_t idle;
    struct Ctx {
      kal::uvx::DeferredDelete<Obj> *dd;
      int *deleted;
      int seen_after_push = -1;
    } ctx{&dd, &deleted};
    idle.data = &ctx;
    uv_idle_init(&l.loop, &idle);
    uv_idle_start(&idle, [](uv_idle_t *h) {
      auto *c = static_cast<Ctx *>(h->data);
      c->dd->push(std::make_unique<Obj>(c->deleted));
      c->seen_after_push = *c->deleted; // still alive inside the callback that queued it
      uv_idle_stop(h);
    });
    CHECK(l.run_until([&] { return deleted == 1; }, 2s));
    CHECK(ctx.seen_after_push == 0);
    CHECK(dd.pending() == 0);
    uv_close(reinterpret_cast<uv_handle_t *>(&idle), nullptr);
    // What is still queued when the owner goes away is freed with it.
    dd.push(std::make_unique<Obj>(&deleted));
    CHECK(deleted == 1);
  }
  CHECK(deleted == 2);
}

TEST_CASE("DeferredDelete without a loop frees on flush") {
  int deleted = 0;
  kal::uvx::DeferredDelete<Obj> dd(nullptr);
  dd.push(std::make_unique<Obj>(&deleted));
  CHECK(deleted == 0);
  dd.flush();
  CHECK(deleted == 1);
}
