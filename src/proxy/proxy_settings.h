#pragma once
// The part of the configuration the data path reads, copied per worker so a reload can swap it in
// place. Plain values: the app layer fills it from Config (app/settings.h), so the proxy never
// depends on the config model.
#include "kube_api_lb/core/picker.h"

#include <cstddef>
#include <cstdint>

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
};

} // namespace kal
