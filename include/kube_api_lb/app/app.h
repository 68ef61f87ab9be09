#pragma once
// The running proxy as a program embeds it: construct with a validated Config, run() until a
// signal ends it. Everything behind this facade (workers, sessions, the health checker, the admin
// servers, signal and file watching) is private to the library (src/app/proxy_app.h).
#include "kube_api_lb/config/config.h"
#include "kube_api_lb/core/result.h"

#include <functional>
#include <memory>
#include <string>

struct uv_loop_s;

namespace kal {

class ProxyApp;

class App {
public:
  // Produces the configuration to switch to on SIGHUP or a change of `watch_path` (re-reads the
  // file and re-applies the flags); null when the configuration came from flags only.
  using ConfigLoader = std::function<Result<Config>()>;

  // `loop`: the libuv loop the proxy's main thread runs (null: libuv's default loop). Not owned;
  // it must outlive the App. Nothing starts before run().
  App(Config config, ConfigLoader reload_config, std::string watch_path, uv_loop_s *loop = nullptr);
  ~App();
  App(const App &) = delete;
  App &operator=(const App &) = delete;

  // Binds everything and runs until SIGTERM/SIGINT and the grace period are over. Returns the
  // process exit code: 0 after a clean shutdown, 1 when start-up failed (the error is logged).
  int run();

private:
  std::unique_ptr<ProxyApp> impl_;
};

// What validate() cannot see from the text alone: that the health checker's CA, client
// certificate and key files load and match (https and tls modes). An error names the file.
// Start-up, check-config and every reload call it.
Result<bool> check_runtime_files(const Config &c);

} // namespace kal
