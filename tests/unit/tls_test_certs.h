#pragma once
// Throwaway PKI for unit tests, made with OpenSSL APIs at test time (P-256 keys, 1 day validity):
// a CA, a server certificate for 127.0.0.1 / ::1 / localhost, and a client certificate, written as
// PEM files into a fresh temporary directory that is removed when the object dies.
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>

namespace kal::testing {

class TestPki {
public:
  // `server_sans` in OpenSSL's subjectAltName syntax.
  explicit TestPki(const std::string &server_sans = "IP:127.0.0.1,IP:::1,DNS:localhost") {
    char tmpl[] = "/tmp/kal-pki-XXXXXX";
    if (!mkdtemp(tmpl)) {
      throw std::runtime_error("mkdtemp failed");
    }
    dir = tmpl;
    EVP_PKEY *ca_key = EVP_EC_gen("P-256");
    X509 *ca = make_cert(ca_key, "kal-test-ca", nullptr, ca_key, true, "");
    write(ca_key, ca, "ca");
    EVP_PKEY *srv_key = EVP_EC_gen("P-256");
    X509 *srv = make_cert(srv_key, "kal-test-apiserver", ca, ca_key, false, server_sans);
    write(srv_key, srv, "server");
    EVP_PKEY *cli_key = EVP_EC_gen("P-256");
    X509 *cli = make_cert(cli_key, "kube-api-lb-health", ca, ca_key, false, "");
    write(cli_key, cli, "client");
    // A second, unrelated CA: verifying the server against it must fail.
    EVP_PKEY *other_key = EVP_EC_gen("P-256");
    X509 *other = make_cert(other_key, "kal-other-ca", nullptr, other_key, true, "");
    write(other_key, other, "other-ca");
    for (X509 *x : {ca, srv, cli, other}) {
      X509_free(x);
    }
    for (EVP_PKEY *k : {ca_key, srv_key, cli_key, other_key}) {
      EVP_PKEY_free(k);
    }
  }
  ~TestPki() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  TestPki(const TestPki &) = delete;
  TestPki &operator=(const TestPki &) = delete;

  std::string path(const std::string &name) const { return dir + "/" + name; }
  std::string ca_crt() const { return path("ca.crt"); }
  std::string other_ca_crt() const { return path("other-ca.crt"); }
  std::string server_crt() const { return path("server.crt"); }
  std::string server_key() const { return path("server.key"); }
  std::string client_crt() const { return path("client.crt"); }
  std::string client_key() const { return path("client.key"); }

  std::string dir;

private:
  static void add_ext(X509 *cert, X509 *issuer, int nid, const std::string &value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer ? issuer : cert, cert, nullptr, nullptr, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
    if (!ext) {
      throw std::runtime_error("bad extension " + value);
    }
    X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
  }

  X509 *make_cert(EVP_PKEY *key, const std::string &cn, X509 *issuer, EVP_PKEY *issuer_key,
                  bool is_ca, const std::string &sans) {
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), ++serial_);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, key);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char *>(cn.c_str()), -1, -1, 0);
    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
    if (is_ca) {
      add_ext(x, issuer, NID_basic_constraints, "critical,CA:TRUE");
      add_ext(x, issuer, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
      add_ext(x, issuer, NID_basic_constraints, "critical,CA:FALSE");
      add_ext(x, issuer, NID_key_usage, "critical,digitalSignature");
      add_ext(x, issuer, NID_ext_key_usage, "serverAuth,clientAuth");
    }
    if (!sans.empty()) {
      add_ext(x, issuer, NID_subject_alt_name, sans);
    }
    if (X509_sign(x, issuer_key, EVP_sha256()) == 0) {
      throw std::runtime_error("X509_sign failed");
    }
    return x;
  }

  void write(EVP_PKEY *key, X509 *cert, const std::string &base) {
    FILE *f = std::fopen(path(base + ".key").c_str(), "w");
    PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr);
    std::fclose(f);
    f = std::fopen(path(base + ".crt").c_str(), "w");
    PEM_write_X509(f, cert);
    std::fclose(f);
  }

  long serial_ = 0;
};

} // namespace kal::testing
