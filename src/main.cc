// kube-api-lb: command line, subcommands and process start-up. Everything else is in the library.
// It compiles against include/ alone (the library's public surface), so the compiler proves that
// surface is enough to build the product.
#include "kube_api_lb/app/app.h"
#include "kube_api_lb/config/flags.h"
#include "kube_api_lb/config/load.h"
#include "kube_api_lb/config/yaml_config.h"
#include "kube_api_lb/log/logger.h"
#include "kube_api_lb/manifest/manifest_command.h"
#include "kube_api_lb/manifest/prepare_state_dir.h"
#include "kube_api_lb/version.h"

#include <CLI/CLI.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>

namespace {

constexpr int kExitUsage = 2;

int fail(const std::string &msg, int code = kExitUsage) {
  std::fprintf(stderr, "kube-api-lb: error: %s\n", msg.c_str());
  return code;
}

std::vector<std::string> default_search_path() {
  return kal::config_search_path(std::getenv("KUBE_API_LB_CONFIG_SEARCH_PATH"));
}

// defaults -> config file -> flags (kal::effective_config), then the files the health checker
// will load: unreadable or mismatched CA, certificate or key files are configuration errors,
// caught here for start-up, check-config and reloads alike.
kal::Result<kal::Config> startup_config(const kal::FlagValues &v) {
  std::vector<std::string> notes;
  auto cfg = kal::effective_config(v, &notes);
  if (!cfg) {
    return cfg;
  }
  for (const auto &n : notes) {
    if (kal::log::v(1)) {
      kal::log::debug("config directive ignored").kv("file", v.config_path).kv("note", n);
    }
  }
  if (auto files = kal::check_runtime_files(*cfg); !files) {
    return kal::Err{files.error()};
  }
  return cfg;
}

int run_proxy(const kal::FlagValues &v, bool auto_detected) {
  auto cfg = startup_config(v);
  if (!cfg) {
    return fail(cfg.error());
  }
  kal::log::set_format(cfg->log_format);
  kal::log::set_verbosity(cfg->verbosity);
  if (auto_detected) {
    kal::log::info("no arguments: running from detected configuration")
        .kv("config", v.config_path)
        .kv("format", kal::to_string(kal::detect_config_format(v.config_path, "")))
        .kv("searched", std::getenv("KUBE_API_LB_CONFIG_SEARCH_PATH") ? "env" : "default");
  }
  kal::App::ConfigLoader loader;
  if (!v.config_path.empty()) {
    loader = [&v] { return startup_config(v); };
  }
  kal::App app(*cfg, loader, v.config_path);
  return app.run();
}

int run_check_config(const kal::FlagValues &v) {
  if (v.config_path.empty() && !v.given("endpoints")) {
    return fail("check-config: give --config=FILE (and/or flags) to check");
  }
  auto cfg = startup_config(v);
  if (!cfg) {
    std::fprintf(stderr, "kube-api-lb: configuration invalid: %s\n", cfg.error().c_str());
    return 1;
  }
  std::fputs(kal::to_yaml(*cfg).c_str(), stdout);
  std::fprintf(stderr, "kube-api-lb: configuration %s is valid (hash %s)\n", cfg->source.c_str(),
               kal::config_hash(*cfg).c_str());
  return 0;
}

} // namespace

int main(int argc, char **argv) {
  if (argc >= 2 && std::strcmp(argv[1], "manifest") == 0) {
    return kal::manifest_main(argc - 1, argv + 1);
  }
  if (argc >= 2 && std::strcmp(argv[1], "prepare-state-dir") == 0) {
    return kal::prepare_state_dir_main(argc - 1, argv + 1);
  }
  CLI::App app{"kube-api-lb: a node-local TCP load balancer for the Kubernetes API server.\n"
               "TLS passes through untouched; endpoints are health-checked (GET /readyz) and\n"
               "connections fail over in seconds.",
               "kube-api-lb"};
  app.get_formatter()->column_width(40);
  kal::FlagValues v;
  kal::add_config_flags(app, v);
  bool version = false;
  app.add_flag("--version", version, "Print the version and exit");
  auto *check =
      app.add_subcommand("check-config", "Validate the configuration and print it as YAML "
                                         "(exit 0 valid, 1 invalid, 2 usage)");
  kal::FlagValues cv;
  kal::add_config_flags(*check, cv);
  auto *ver = app.add_subcommand("version", "Print the version and exit");
  app.add_subcommand("manifest", "Print a static Pod manifest (see `kube-api-lb manifest --help`)");
  app.add_subcommand("prepare-state-dir",
                     "Give the discovery state directory to the proxy's user (the manifest's init "
                     "container; see `kube-api-lb prepare-state-dir --help`)");
  app.require_subcommand(0, 1);

  auto args = kal::normalize_args(argc, argv);
  std::vector<const char *> cargs;
  for (const auto &a : args) {
    cargs.push_back(a.c_str());
  }
  try {
    app.parse(static_cast<int>(cargs.size()), cargs.data());
  } catch (const CLI::CallForHelp &e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp &e) {
    return app.exit(e);
  } catch (const CLI::ParseError &e) {
    return fail(e.what());
  }
  if (version || ver->parsed()) {
    std::printf("kube-api-lb %s\n", KAL_VERSION);
    return 0;
  }
  if (check->parsed()) {
    return run_check_config(cv);
  }
  bool auto_detected = false;
  if (argc == 1) {
    auto found = kal::find_default_config(default_search_path());
    if (!found) {
      std::string list;
      for (const auto &p : default_search_path()) {
        list += (list.empty() ? "" : ", ") + p;
      }
      return fail("no --endpoints given and no configuration file found (looked for " + list +
                  "); see --help");
    }
    v.config_path = *found;
    auto_detected = true;
  } else if (!v.given("endpoints") && v.config_path.empty()) {
    return fail("--endpoints is required (or --config=FILE); e.g. "
                "--endpoints=10.0.0.11:6443,10.0.0.12:6443,10.0.0.13:6443");
  }
  return run_proxy(v, auto_detected);
}
