#pragma once
// The kubeconfig of the discovery client (--discovery-kubeconfig): the current context's cluster
// (server URL, CA, tls-server-name) and user (client certificate and key, or a bearer token; each
// as a file or inline data), read with yaml-cpp. Relative file paths are relative to the
// kubeconfig's directory, as client-go reads them. Every error names the kubeconfig and what is
// wrong in it ("kubeconfig /etc/kal/discovery.conf: user \"kal\": client-certificate
// /x/y.crt: No such file or directory").
#include "kube_api_lb/core/result.h"

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace kal {

struct Kubeconfig {
  std::string path;
  std::string context, cluster, user; // the names the current context picked
  std::string server;                 // the URL as written
  std::string server_host;            // its host (no brackets)
  uint16_t server_port = 443;
  // The name the apiserver's certificate is verified against (and sent as SNI unless it is an IP
  // literal): the cluster's tls-server-name, else the server URL's host. Discovery dials the
  // apiservers' own addresses, and verifies them against the name its kubeconfig would.
  std::string verify_name;
  bool insecure_skip_verify = false;
  std::string ca_pem;   // empty: no verification (only with insecure-skip-tls-verify)
  std::string cert_pem; // client certificate chain, or empty
  std::string key_pem;  // its key
  std::string token;    // bearer token, or empty
};

// Reads a file's whole content or returns an error text (the OS's reason).
using FileReader = std::function<Result<std::string>(const std::string &path)>;

// Parses kubeconfig `text` (read from `path`, for messages and relative paths); files it names
// are read with `read`.
Result<Kubeconfig> parse_kubeconfig(std::string_view text, const std::string &path,
                                    const FileReader &read);
// Reads `path` and the files it names from the file system.
Result<Kubeconfig> load_kubeconfig(const std::string &path);

} // namespace kal
