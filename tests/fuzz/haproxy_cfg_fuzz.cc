// kal::parse_haproxy_cfg (Kubespray's haproxy.cfg drop-in) on arbitrary bytes. Properties: an
// accepted file is valid and renders (check-config's YAML) to text that parses back to the same
// configuration; a rejection is one line "FILE:LINE:COL: message" with LINE inside the file (a
// problem of the whole configuration points at the block it was built from); reading with
// ReaderChecks::FieldsOnly agrees (config_properties.h, check_checks_agree).
#include "config_properties.h"
#include "kube_api_lb/config/haproxy_cfg.h"

KAL_FUZZ_TARGET(haproxy_cfg) {
  const std::string_view text(reinterpret_cast<const char *>(data), size);
  std::vector<std::string> notes;
  auto all = kal::parse_haproxy_cfg(text, "fuzz.cfg", {}, &notes);
  kal::fuzz::check_reader_outcome(all, text, "fuzz.cfg");
  kal::fuzz::check_checks_agree(all, [&](kal::ReaderChecks checks) {
    return kal::parse_haproxy_cfg(text, "fuzz.cfg", {}, nullptr, checks);
  });
}
