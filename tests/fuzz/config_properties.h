// Properties every config reader's harness checks (yaml_config, nginx_conf, haproxy_cfg, flags).
#pragma once
#include "fuzz_target.h"
#include "kube_api_lb/config/config.h"
#include "kube_api_lb/config/load.h"
#include "kube_api_lb/config/yaml_config.h"

#include <algorithm>
#include <string>
#include <string_view>

namespace kal::fuzz {

// A configuration a reader accepted is valid, and check-config's YAML (to_yaml) parses back to
// the very same configuration (every field; the checksum the reload compares follows), and
// rendering that again gives the same text.
inline void check_accepted_config(const Config &c) {
  auto valid = validate(c);
  KAL_FUZZ_CHECK(valid.ok(), "accepted but invalid: " + valid.error());
  const std::string yaml = to_yaml(c);
  auto back = parse_yaml_config(yaml, "rendered.yaml");
  KAL_FUZZ_CHECK(back.ok(), "check-config's YAML does not parse back: " + back.error() +
                                "\n--- rendered:\n" + yaml);
  Config again = *back;
  again.source = c.source;
  KAL_FUZZ_CHECK(again == c, "check-config's YAML parses to another configuration:\n--- first:\n" +
                                 yaml + "--- second:\n" + to_yaml(again));
  KAL_FUZZ_CHECK(config_checksum(again) == config_checksum(c), "checksums differ");
  KAL_FUZZ_CHECK(to_yaml(again) == yaml, "rendering is not a fixed point");
}

// The last line an error may name: every line break (\n, \r, \r\n) counted, plus one.
inline int last_line(std::string_view text) {
  int n = 1;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\n' || (text[i] == '\r' && (i + 1 == text.size() || text[i + 1] != '\n'))) {
      ++n;
    }
  }
  return n;
}

// What a file reader (YAML, nginx.conf, haproxy.cfg) made of `text` read as `file`: accepted,
// the properties above; rejected, one line "FILE:LINE:COL: message" with LINE inside the file.
inline void check_reader_outcome(const Result<Config> &c, std::string_view text,
                                 const std::string &file) {
  if (c) {
    KAL_FUZZ_CHECK(c->source == file, c->source);
    check_accepted_config(*c);
    return;
  }
  const std::string &e = c.error();
  KAL_FUZZ_CHECK(has_file_line_col(e, file, last_line(text)),
                 "rejection without FILE:LINE:COL inside the file: " + e);
  KAL_FUZZ_CHECK(e.find('\n') == std::string::npos, "multi-line error: " + e);
}

// The two ways a reader checks (ReaderChecks) agree: read with FieldsOnly, a file is rejected
// only for what All rejects it for (the same error), and what it gives passes kal::validate()
// exactly when All accepts the file, as the same configuration. effective_config() relies on it
// when it lets flags complete a file. `read(checks)` parses the fuzz input with `checks`.
template <class Read> void check_checks_agree(const Result<Config> &all, Read read) {
  const Result<Config> fields = read(ReaderChecks::FieldsOnly);
  if (!fields) {
    KAL_FUZZ_CHECK(!all && all.error() == fields.error(),
                   "FieldsOnly rejects what All " +
                       (all ? std::string("accepts") : "rejects otherwise: " + all.error()) + ": " +
                       fields.error());
    return;
  }
  const bool valid = validate(*fields).ok();
  KAL_FUZZ_CHECK(valid == all.ok(),
                 valid
                     ? "All rejects what FieldsOnly reads to a valid configuration: " + all.error()
                     : "All accepts what FieldsOnly reads to an invalid configuration");
  if (valid) {
    KAL_FUZZ_CHECK(*fields == *all, "FieldsOnly and All read different configurations");
  }
}

} // namespace kal::fuzz
