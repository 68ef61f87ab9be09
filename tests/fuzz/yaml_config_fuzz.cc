// kal::parse_yaml_config on arbitrary bytes. Properties: an accepted file is valid and renders
// (check-config's YAML) to text that parses back to the same configuration; a rejection is one
// line "FILE:LINE:COL: message" whose LINE lies inside the file (docs/configuration.md, Errors).
#include "config_properties.h"

KAL_FUZZ_TARGET(yaml_config) {
  const std::string_view text(reinterpret_cast<const char *>(data), size);
  auto c = kal::parse_yaml_config(text, "fuzz.yaml");
  if (c) {
    KAL_FUZZ_CHECK(c->source == "fuzz.yaml", c->source);
    kal::fuzz::check_accepted_config(*c);
    return;
  }
  KAL_FUZZ_CHECK(kal::fuzz::has_file_line_col(c.error(), "fuzz.yaml", kal::fuzz::last_line(text)),
                 "rejection without a FILE:LINE:COL inside the file: " + c.error());
  KAL_FUZZ_CHECK(c.error().find('\n') == std::string::npos, "multi-line error: " + c.error());
}
