// The command-line flags (add_config_flags, normalize_args, apply_flags) on arbitrary argument
// vectors: the input split at '\n', one argument each. Properties: CLI11 rejects with a
// ParseError and nothing else escapes; a configuration apply_flags accepts is valid and renders
// (check-config's YAML) to text that parses back to the same configuration; a rejection says
// what is wrong.
#include "config_properties.h"
#include "kube_api_lb/config/flags.h"

#include <CLI/CLI.hpp>

KAL_FUZZ_TARGET(flags) {
  const std::string_view text(reinterpret_cast<const char *>(data), size);
  std::vector<std::string> args = kal::fuzz::split(text, '\n');
  args.insert(args.begin(), "kube-api-lb");
  std::vector<char *> argv;
  for (auto &a : args) {
    argv.push_back(a.data());
  }
  auto normalized = kal::normalize_args(static_cast<int>(argv.size()), argv.data());
  std::vector<const char *> cargs;
  for (const auto &a : normalized) {
    cargs.push_back(a.c_str());
  }
  CLI::App app{"fuzz", "kube-api-lb"};
  kal::FlagValues v;
  kal::add_config_flags(app, v);
  try {
    app.parse(static_cast<int>(cargs.size()), cargs.data());
  } catch (const CLI::ParseError &) {
    return; // the binary prints it and exits 2 (or prints --help)
  }
  auto c = kal::apply_flags(v, kal::Config{});
  if (c) {
    kal::fuzz::check_accepted_config(*c);
    return;
  }
  KAL_FUZZ_CHECK(!c.error().empty(), "rejected without a message");
}
