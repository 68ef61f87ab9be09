#include "app/name_resolver.h"

#include <netdb.h>

#include <cstring>
#include <system_error>
#include <thread>

namespace kal {
namespace {

void async_cb(uv_async_t *a) noexcept {
  if (auto *self = static_cast<NameResolver *>(a->data)) {
    self->on_async();
  }
}

NameResolver::Answer resolve(std::string key, const std::string &host, uint16_t port) {
  NameResolver::Answer a;
  a.key = std::move(key);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo *res = nullptr;
  const std::string service = std::to_string(port);
  int rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &res);
  if (rc != 0) {
    a.error = rc == EAI_SYSTEM ? std::strerror(errno) : gai_strerror(rc);
    return a;
  }
  for (auto *ai = res; ai; ai = ai->ai_next) {
    sockaddr_storage ss{};
    std::memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
    a.addrs.push_back(ss);
  }
  freeaddrinfo(res);
  if (a.addrs.empty()) {
    a.error = "no address";
  }
  return a;
}

} // namespace

NameResolver::NameResolver(uv_loop_t *loop, Done done)
    : shared_(std::make_shared<Shared>()), done_(std::move(done)) {
  auto *a = async_.make(this);
  if (uv_async_init(loop, a, async_cb) != 0) {
    async_.abandon();
    return;
  }
  uv_unref(async_.base()); // lookups in flight never keep the loop alive
  shared_->async = a;
}

NameResolver::~NameResolver() {
  {
    std::lock_guard lock(shared_->mu);
    shared_->alive = false;
    shared_->async = nullptr;
  }
  async_.reset();
}

bool NameResolver::lookup(std::string key, std::string host, uint16_t port) {
  if (!async_) {
    return false;
  }
  try {
    std::thread([shared = shared_, key = std::move(key), host = std::move(host), port]() mutable {
      Answer a = resolve(std::move(key), host, port);
      std::lock_guard lock(shared->mu);
      if (shared->alive) {
        shared->answers.push_back(std::move(a));
        uv_async_send(shared->async);
      }
    }).detach();
  } catch (const std::system_error &) {
    return false; // no thread (resource limits): the caller retries at its next tick
  }
  return true;
}

void NameResolver::on_async() {
  std::vector<Answer> answers;
  {
    std::lock_guard lock(shared_->mu);
    answers.swap(shared_->answers);
  }
  for (auto &a : answers) {
    done_(std::move(a));
  }
}

} // namespace kal
