// kal::parse_yaml_config on arbitrary bytes. Properties: an accepted file is valid and renders
// (check-config's YAML) to text that parses back to the same configuration; a rejection is one
// line "FILE:LINE:COL: message" whose LINE lies inside the file (docs/configuration.md, Errors);
// reading with ReaderChecks::FieldsOnly agrees (config_properties.h, check_checks_agree).
#include "config_properties.h"

KAL_FUZZ_TARGET(yaml_config) {
  const std::string_view text(reinterpret_cast<const char *>(data), size);
  auto all = kal::parse_yaml_config(text, "fuzz.yaml");
  kal::fuzz::check_reader_outcome(all, text, "fuzz.yaml");
  kal::fuzz::check_checks_agree(all, [&](kal::ReaderChecks checks) {
    return kal::parse_yaml_config(text, "fuzz.yaml", {}, checks);
  });
}
