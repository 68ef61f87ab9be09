// An example user of the kal library that sees only its public surface (include/kube_api_lb/):
// builds a Config the way a program embedding kube-api-lb would, renders the static-pod manifest
// and its config file, and checks what the documentation promises about them. It is a CTest
// (example_manifest); building it at all proves that include/ is enough.
#include "kube_api_lb/config/config.h"
#include "kube_api_lb/config/load.h"
#include "kube_api_lb/config/yaml_config.h"
#include "kube_api_lb/core/endpoint.h"
#include "kube_api_lb/manifest/manifest.h"
#include "kube_api_lb/version.h"

#include <cstdio>
#include <string>

namespace {

int failures = 0;

void expect(bool ok, const char *what) {
  if (!ok) {
    std::fprintf(stderr, "example_manifest: FAILED: %s\n", what);
    ++failures;
  }
}

} // namespace

int main() {
  kal::Config c;
  auto eps = kal::parse_endpoint_list("127.0.0.11:6443,127.0.0.12:6443,127.0.0.13:6443");
  expect(static_cast<bool>(eps), "three loopback endpoints parse");
  if (!eps) {
    return 1;
  }
  c.endpoints = *eps;
  expect(static_cast<bool>(kal::validate(c)), "the example configuration validates");

  kal::ManifestOptions o;
  o.image = std::string("kube-api-lb:") + kal::kVersion;
  o.config_hostpath = "/etc/kube-api-lb";
  auto m = kal::render_manifest(c, o);
  expect(static_cast<bool>(m), "render_manifest succeeds");
  if (!m) {
    std::fprintf(stderr, "example_manifest: %s\n", m.error().c_str());
    return 1;
  }
  expect(m->find("kind: Pod") != std::string::npos, "the manifest is a Pod");
  expect(m->find(o.image) != std::string::npos, "the manifest names the image");
  const std::string sum = kal::config_checksum(c);
  expect(sum.size() == 64, "config_checksum is 64 hex digits");
  expect(m->find(sum) != std::string::npos, "the manifest carries the config checksum");
  expect(kal::config_hash(c) == sum.substr(0, 16), "config_hash is the checksum's first 16");

  // The config file the manifest mounts reads back as the same configuration.
  const std::string file = kal::render_config_file(c);
  auto back = kal::parse_yaml_config(file, "config.yaml");
  expect(static_cast<bool>(back), "the rendered config file parses");
  if (back) {
    expect(kal::config_checksum(*back) == sum, "the config file reads back to the same settings");
  }
  if (failures == 0) {
    std::printf("example_manifest: %zu bytes of manifest for %zu endpoints, checksum %s\n",
                m->size(), c.endpoints.size(), sum.substr(0, 16).c_str());
  }
  return failures == 0 ? 0 : 1;
}
