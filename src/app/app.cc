#include "kube_api_lb/app/app.h"

#include "app/proxy_app.h"
#include "health/checker.h"

namespace kal {

App::App(Config config, ConfigLoader reload_config, std::string watch_path, uv_loop_s *loop)
    : impl_(std::make_unique<ProxyApp>(loop ? loop : uv_default_loop(), std::move(config),
                                       std::move(reload_config), std::move(watch_path))) {}

App::~App() = default;

int App::run() { return impl_->run(); }

Result<bool> check_runtime_files(const Config &c) {
  if (c.health.mode == HealthMode::Https || c.health.mode == HealthMode::Tls) {
    if (auto tls = HealthChecker::make_tls_context(c.health); !tls) {
      return Err{tls.error()};
    }
  }
  return true;
}

} // namespace kal
