#pragma once
// The part of Config the data path reads, copied per worker so a reload can swap it in place.
#include "config/config.h"

namespace kal {

struct ProxySettings {
  Policy policy = Policy::LeastConn;
  uint64_t connect_timeout_ms = 1000;
  uint64_t first_byte_timeout_ms = 2000;
  uint64_t idle_timeout_ms = 0;
  uint64_t half_closed_timeout_ms = 300000;
  uint64_t slow_start_ms = 0;
  unsigned keepalive_idle_s = 15;
  unsigned tcp_user_timeout_ms = 30000;
  size_t high_watermark = 256 * 1024;
  size_t replay_limit = 64 * 1024;
  bool health_checks = true;

  static ProxySettings from(const Config &c) {
    ProxySettings s;
    s.policy = c.policy;
    s.connect_timeout_ms = static_cast<uint64_t>(c.connect_timeout.count());
    s.first_byte_timeout_ms = static_cast<uint64_t>(c.first_byte_timeout.count());
    s.idle_timeout_ms = static_cast<uint64_t>(c.idle_timeout.count());
    s.half_closed_timeout_ms = static_cast<uint64_t>(c.half_closed_timeout.count());
    s.slow_start_ms = static_cast<uint64_t>(c.health.slow_start.count());
    s.keepalive_idle_s = static_cast<unsigned>(c.keepalive_idle.count() / 1000);
    s.tcp_user_timeout_ms = static_cast<unsigned>(c.tcp_user_timeout.count());
    s.high_watermark = c.buffer_high_watermark;
    s.replay_limit = c.replay_buffer_limit;
    s.health_checks = c.health.mode != HealthMode::None;
    return s;
  }
};

} // namespace kal
