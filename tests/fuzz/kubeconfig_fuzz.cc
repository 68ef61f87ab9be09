// kal::parse_kubeconfig (discovery's --discovery-kubeconfig, issue 18) on arbitrary bytes, with the
// files it names served from memory: "ca.crt", "client.crt", "client.key" hold PEM blocks, "token"
// a token, "empty" nothing; any other name does not exist. Properties: a rejection is one line
// naming the kubeconfig ("kubeconfig fuzz.kubeconfig: ..."); an accepted one has an https server
// with a host, a name to verify it against, a CA unless verification is skipped, and credentials:
// a client certificate with its key, or a token without spaces or control characters.
#include "discovery/kubeconfig.h"
#include "fuzz_target.h"

#include <string>

namespace {

const std::string kPem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
const std::string kKey = "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n";

kal::Result<std::string> read_file(const std::string &path) {
  const std::string name = path.substr(path.rfind('/') + 1);
  if (name == "ca.crt" || name == "client.crt") {
    return kPem;
  }
  if (name == "client.key") {
    return kKey;
  }
  if (name == "token") {
    return std::string("abc.def\n");
  }
  if (name == "empty") {
    return std::string();
  }
  return kal::Err{"No such file or directory"};
}

} // namespace

KAL_FUZZ_TARGET(kubeconfig) {
  const std::string_view text(reinterpret_cast<const char *>(data), size);
  const std::string path = "/etc/kal/fuzz.kubeconfig";
  auto k = kal::parse_kubeconfig(text, path, read_file);
  if (!k) {
    const std::string &e = k.error();
    KAL_FUZZ_CHECK(e.rfind("kubeconfig " + path + ": ", 0) == 0,
                   "an error that does not name the kubeconfig: " + e);
    KAL_FUZZ_CHECK(e.find('\n') == std::string::npos, "multi-line error: " + e);
    return;
  }
  KAL_FUZZ_CHECK(!k->server_host.empty() && k->server_port != 0, "no server host/port");
  KAL_FUZZ_CHECK(k->server.rfind("https://", 0) == 0, "server not https: " + k->server);
  KAL_FUZZ_CHECK(!k->verify_name.empty(), "nothing to verify the server against");
  KAL_FUZZ_CHECK(!k->ca_pem.empty() || k->insecure_skip_verify, "no CA and verification on");
  KAL_FUZZ_CHECK(k->cert_pem.empty() == k->key_pem.empty(), "a certificate without its key");
  KAL_FUZZ_CHECK(!k->cert_pem.empty() || !k->token.empty(), "no credentials");
  for (char c : k->token) {
    KAL_FUZZ_CHECK(static_cast<unsigned char>(c) > 0x20 && c != 0x7f,
                   "a token with spaces or control characters");
  }
}
