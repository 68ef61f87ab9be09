#include "discovery/kubeconfig.h"

#include <doctest/doctest.h>

#include <map>
#include <string>

using namespace kal;

namespace {

// Files by path, for the reader; anything else is "No such file or directory".
FileReader files(std::map<std::string, std::string> m) {
  return [m](const std::string &p) -> Result<std::string> {
    auto it = m.find(p);
    if (it == m.end()) {
      return Err{"No such file or directory"};
    }
    return it->second;
  };
}

std::string config(const std::string &cluster, const std::string &user) {
  return "apiVersion: v1\nkind: Config\ncurrent-context: c\ncontexts:\n- name: c\n  context:\n"
         "    cluster: k\n    user: u\nclusters:\n- name: k\n  cluster:\n" +
         cluster + "users:\n- name: u\n  user:\n" + user;
}

} // namespace

TEST_CASE("kubeconfig: certificates or tokens, files or inline data, and clear errors") {
  const auto fs = files({{"/etc/kal/ca.crt", "CA"},
                         {"/etc/kal/client.crt", "CERT"},
                         {"/etc/kal/client.key", "KEY"},
                         {"/etc/kal/token", "s3cr3t\n"},
                         {"/etc/kal/empty-token", "\n"}});
  const std::string server =
      "    server: https://127.0.0.1:6443\n    certificate-authority: ca.crt\n";
  struct Row {
    const char *name;
    std::string text;
    const char *error; // "" when it loads
    const char *cert, *key, *token, *verify;
    int port;
  };
  const Row rows[] = {
      {"client certificate files, relative to the kubeconfig",
       config(server, "    client-certificate: client.crt\n    client-key: /etc/kal/client.key\n"),
       "", "CERT", "KEY", "", "127.0.0.1", 6443},
      {"inline data (base64)",
       config("    server: https://[fd00::1]\n    certificate-authority-data: Q0E=\n"
              "    tls-server-name: kubernetes.default.svc\n",
              "    client-certificate-data: Q0VSVA==\n    client-key-data: S0VZ\n"),
       "", "CERT", "KEY", "", "kubernetes.default.svc", 443},
      {"a token", config(server, "    token: abc.def\n"), "", "", "", "abc.def", "127.0.0.1", 6443},
      {"a token file (newline trimmed)", config(server, "    tokenFile: token\n"), "", "", "",
       "s3cr3t", "127.0.0.1", 6443},
      {"no credentials", config(server, "    username: x\n"),
       "kubeconfig /etc/kal/d.conf: user \"u\": no credentials", "", "", "", "", 0},
      {"a missing certificate file",
       config(server, "    client-certificate: gone.crt\n"
                      "    client-key: client.key\n"),
       "kubeconfig /etc/kal/d.conf: user \"u\": client-certificate /etc/kal/gone.crt: No such file",
       "", "", "", "", 0},
      {"certificate without key", config(server, "    client-certificate: client.crt\n"),
       "kubeconfig /etc/kal/d.conf: user \"u\": client-certificate without client-key", "", "", "",
       "", 0},
      {"bad base64",
       config(server, "    client-certificate-data: '*'\n    client-key-data: S0VZ\n"),
       "kubeconfig /etc/kal/d.conf: user \"u\": client-certificate-data is not valid base64", "",
       "", "", "", 0},
      {"an empty token file", config(server, "    tokenFile: empty-token\n"),
       "kubeconfig /etc/kal/d.conf: user \"u\": tokenFile /etc/kal/empty-token is empty", "", "",
       "", "", 0},
      {"no CA", config("    server: https://127.0.0.1:6443\n", "    token: t\n"),
       "kubeconfig /etc/kal/d.conf: cluster \"k\": no certificate-authority", "", "", "", "", 0},
      {"not https", config("    server: http://127.0.0.1:6443\n", "    token: t\n"),
       "kubeconfig /etc/kal/d.conf: cluster \"k\": server \"http://127.0.0.1:6443\" is not an "
       "https:// URL",
       "", "", "", "", 0},
      {"no current context", "apiVersion: v1\nkind: Config\n",
       "kubeconfig /etc/kal/d.conf: no current-context", "", "", "", "", 0},
      {"YAML syntax", "a: [", "kubeconfig /etc/kal/d.conf: line ", "", "", "", "", 0},
  };
  for (const auto &r : rows) {
    CAPTURE(r.name);
    auto k = parse_kubeconfig(r.text, "/etc/kal/d.conf", fs);
    if (*r.error) {
      REQUIRE(!k);
      CHECK(k.error().rfind(r.error, 0) == 0);
      continue;
    }
    REQUIRE_MESSAGE(k, k.error());
    CHECK(k->cert_pem == r.cert);
    CHECK(k->key_pem == r.key);
    CHECK(k->token == r.token);
    CHECK(k->verify_name == r.verify);
    CHECK(k->server_port == r.port);
  }
}
