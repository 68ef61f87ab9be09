#pragma once
// The proxy's command-line flags, Kubernetes style (--flag=value), shared by the proxy itself,
// `check-config` and `manifest`. Registration and application are split so that flags given on the
// command line override a config file read in between.
#include "kube_api_lb/config/config.h"
#include "kube_api_lb/core/result.h"

#include <CLI/CLI.hpp>

#include <map>
#include <string>
#include <vector>

namespace kal {

struct FlagValues {
  // Raw text of each flag by long name without dashes ("connect-timeout"); repeatable flags
  // collect every value. Only flags that were given are applied.
  std::map<std::string, std::vector<std::string>> raw;
  std::map<std::string, CLI::Option *> options;
  std::string config_path;   // --config
  std::string config_format; // --config-format

  bool given(const std::string &name) const;
};

// Registers every configuration flag on `app` (not --help/--version/subcommands).
void add_config_flags(CLI::App &app, FlagValues &v);

// Applies the flags that were given over `base` and validates the result. Errors name the flag:
// "--connect-timeout: invalid duration \"1x\": unknown unit \"x\"".
Result<Config> apply_flags(const FlagValues &v, Config base);

// Rewrites klog-style "-v=N"/"-v N" into the long form CLI11 parses ("--v=N"). Returns new argv.
std::vector<std::string> normalize_args(int argc, char **argv);

} // namespace kal
