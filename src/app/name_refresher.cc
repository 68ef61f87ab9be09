#include "app/name_refresher.h"

#include "kube_api_lb/log/logger.h"
#include "uvx/sockaddr.h"

#include <algorithm>
#include <cstring>

namespace kal {
namespace {

bool same_addrs(const std::vector<sockaddr_storage> &a, const std::vector<sockaddr_storage> &b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](const auto &x, const auto &y) {
           return std::memcmp(&x, &y, sizeof x) == 0; // both zero-filled past the address
         });
}

} // namespace

NameRefresher::NameRefresher(uv_loop_t *loop) : loop_(loop) {}

NameRefresher::~NameRefresher() = default;

void NameRefresher::tick_cb(uv_timer_t *t) noexcept {
  if (auto *self = uvx::owner_of<NameRefresher>(t)) {
    self->refresh(false);
  }
}

void NameRefresher::start(const List &ups) {
  ups_ = ups;
  resolver_ = std::make_unique<NameResolver>(
      loop_, [this](NameResolver::Answer &&a) { on_resolved(std::move(a)); });
  refresh(true);
  auto pending = [this] {
    return std::any_of(names_.begin(), names_.end(),
                       [](const auto &kv) { return kv.second.in_flight; });
  };
  if (pending()) {
    uv_timer_t wait;
    uv_timer_init(loop_, &wait);
    uv_timer_start(
        &wait, [](uv_timer_t *) noexcept {}, kStartWaitMs, 0);
    while (pending() && uv_is_active(reinterpret_cast<uv_handle_t *>(&wait))) {
      uv_run(loop_, UV_RUN_ONCE);
    }
    uv_close(reinterpret_cast<uv_handle_t *>(&wait), nullptr);
    uv_run(loop_, UV_RUN_NOWAIT); // runs the close
    for (const auto &[name, st] : names_) {
      if (st.in_flight) {
        log::warn("endpoint host name not resolved yet, serving without it until it is")
            .kv("endpoint", name)
            .kv("waited_ms", kStartWaitMs);
      }
    }
  }
  // The timer does nothing when every endpoint is an IP.
  timer_.init(loop_, this);
  timer_.start(tick_cb, kTickMs, kTickMs);
  timer_.unref();
}

void NameRefresher::set_upstreams(const List &ups) {
  ups_ = ups;
  for (auto it = names_.begin(); it != names_.end();) {
    bool used = std::any_of(ups_.begin(), ups_.end(),
                            [&](const auto &u) { return u->name() == it->first; });
    it = used ? std::next(it) : names_.erase(it);
  }
  refresh(true);
}

void NameRefresher::stop() {
  timer_.reset();
  resolver_.reset(); // lookups still running are abandoned: the process does not wait for DNS
}

void NameRefresher::refresh(bool all) {
  // Unresolved names are retried at every tick; resolved ones are re-resolved every
  // kReResolveMs (or now, on a reload) so a moved apiserver is followed.
  const uint64_t now = uv_now(loop_);
  for (const auto &up : ups_) {
    if (up->address().kind != HostPort::Kind::Name) {
      continue;
    }
    NameState &st = names_[up->name()];
    if (st.in_flight) {
      continue;
    }
    sockaddr_storage any;
    bool resolved = up->first_addr(any);
    if (resolved && !all && now - st.last_ms < kReResolveMs) {
      continue;
    }
    if (!resolver_ || !resolver_->lookup(up->name(), up->address().host, up->address().port)) {
      continue;
    }
    st.in_flight = true;
  }
}

void NameRefresher::on_resolved(NameResolver::Answer &&a) {
  auto it = names_.find(a.key);
  if (it == names_.end()) {
    return; // removed by a reload while its lookup ran
  }
  NameState &st = it->second;
  st.in_flight = false;
  st.last_ms = uv_now(loop_);
  auto u =
      std::find_if(ups_.rbegin(), ups_.rend(), [&](const auto &x) { return x->name() == a.key; });
  if (u == ups_.rend()) {
    return;
  }
  Upstream &up = **u;
  if (!a.error.empty()) {
    if (!st.failing) {
      st.failing = true;
      bool had = !up.addrs().empty();
      log::warn(had ? "re-resolving endpoint failed, keeping previous addresses"
                    : "cannot resolve endpoint host name, retrying every second")
          .kv("endpoint", up.name())
          .kv("error", a.error);
    }
    return;
  }
  bool changed = !same_addrs(a.addrs, up.addrs());
  if (changed || st.failing) {
    log::info("resolved endpoint")
        .kv("endpoint", up.name())
        .kv("address", uvx::to_string(reinterpret_cast<sockaddr *>(&a.addrs.front())));
  }
  st.failing = false;
  if (changed) {
    up.set_addrs(std::move(a.addrs));
  }
}

} // namespace kal
