#include "app/settings.h"

namespace kal {

ProxySettings proxy_settings_from(const Config &c) {
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

} // namespace kal
