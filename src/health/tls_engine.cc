#include "health/tls_engine.h"

#include "kube_api_lb/core/endpoint.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

namespace kal {
namespace {

// All queued OpenSSL errors, oldest first, as one string; clears the queue.
std::string drain_errors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) {
      out += "; ";
    }
    out += buf;
  }
  return out;
}

// RFC 7301 wire format: each protocol name preceded by its length byte. Names longer than 255
// bytes cannot be encoded and are skipped.
std::string alpn_wire(const std::vector<std::string> &protocols) {
  std::string out;
  for (const auto &p : protocols) {
    if (!p.empty() && p.size() <= 255) {
      out += static_cast<char>(p.size());
      out += p;
    }
  }
  return out;
}

int engine_index() {
  static int idx = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return idx;
}

} // namespace

TlsContext::~TlsContext() { SSL_CTX_free(ctx_); }

Result<std::shared_ptr<TlsContext>> TlsContext::client(const ClientOptions &o) {
  ERR_clear_error();
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) {
    return Err{"TLS: cannot create client context: " + drain_errors()};
  }
  std::shared_ptr<TlsContext> out(new TlsContext(ctx, !o.ca_file.empty()));
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  if (!o.ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(ctx, o.ca_file.c_str(), nullptr) != 1) {
      return Err{"health CA file \"" + o.ca_file + "\": " + drain_errors()};
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  } else {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  }
  if (o.client_cert.empty() != o.client_key.empty()) {
    return Err{"health client certificate and key must be given together"};
  }
  if (!o.client_cert.empty()) {
    if (SSL_CTX_use_certificate_chain_file(ctx, o.client_cert.c_str()) != 1) {
      return Err{"health client certificate \"" + o.client_cert + "\": " + drain_errors()};
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, o.client_key.c_str(), SSL_FILETYPE_PEM) != 1) {
      return Err{"health client key \"" + o.client_key + "\": " + drain_errors()};
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
      return Err{"health client key \"" + o.client_key + "\" does not match certificate \"" +
                 o.client_cert + "\""};
    }
  }
  if (o.offer_h2) {
    const std::string wire = alpn_wire({"h2", "http/1.1"});
    // The one OpenSSL call that returns 0 on success.
    if (SSL_CTX_set_alpn_protos(ctx, reinterpret_cast<const unsigned char *>(wire.data()),
                                static_cast<unsigned>(wire.size())) != 0) {
      return Err{"TLS: cannot offer ALPN: " + drain_errors()};
    }
  }
  // Sessions are kept by the caller per endpoint (see take_new_session), not in OpenSSL's cache.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(ctx, &TlsEngine::new_session_cb);
  return out;
}

Result<std::shared_ptr<TlsContext>> TlsContext::client_pem(const std::string &what,
                                                           const std::string &ca_pem,
                                                           const std::string &cert_pem,
                                                           const std::string &key_pem) {
  ERR_clear_error();
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) {
    return Err{what + "cannot create a TLS client context: " + drain_errors()};
  }
  std::shared_ptr<TlsContext> out(new TlsContext(ctx, !ca_pem.empty()));
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  using BioPtr = std::unique_ptr<BIO, decltype(&BIO_free)>;
  auto bio = [](const std::string &pem) {
    return BioPtr(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
  };
  if (!ca_pem.empty()) {
    BioPtr b = bio(ca_pem);
    X509_STORE *store = SSL_CTX_get_cert_store(ctx);
    int n = 0;
    while (X509 *x = PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr)) {
      X509_STORE_add_cert(store, x);
      X509_free(x);
      ++n;
    }
    ERR_clear_error(); // the read that ended the loop (no more PEM) is not an error
    if (n == 0) {
      return Err{what + "the CA holds no PEM certificate"};
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  } else {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  }
  if (cert_pem.empty() != key_pem.empty()) {
    return Err{what + "a client certificate and key must be given together"};
  }
  if (!cert_pem.empty()) {
    BioPtr b = bio(cert_pem);
    X509 *leaf = PEM_read_bio_X509_AUX(b.get(), nullptr, nullptr, nullptr);
    if (!leaf || SSL_CTX_use_certificate(ctx, leaf) != 1) {
      X509_free(leaf);
      return Err{what + "the client certificate is not a PEM certificate: " + drain_errors()};
    }
    X509_free(leaf);
    SSL_CTX_clear_chain_certs(ctx);
    while (X509 *x = PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr)) {
      if (SSL_CTX_add0_chain_cert(ctx, x) != 1) {
        X509_free(x);
        break;
      }
    }
    ERR_clear_error();
    BioPtr kb = bio(key_pem);
    EVP_PKEY *key = PEM_read_bio_PrivateKey(kb.get(), nullptr, nullptr, nullptr);
    if (!key || SSL_CTX_use_PrivateKey(ctx, key) != 1) {
      EVP_PKEY_free(key);
      return Err{what + "the client key is not a PEM private key: " + drain_errors()};
    }
    EVP_PKEY_free(key);
    if (SSL_CTX_check_private_key(ctx) != 1) {
      return Err{what + "the client key does not match the client certificate"};
    }
  }
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(ctx, &TlsEngine::new_session_cb);
  return out;
}

Result<std::shared_ptr<TlsContext>> TlsContext::server(const std::string &cert_file,
                                                       const std::string &key_file,
                                                       const std::string &client_ca_file,
                                                       const std::vector<std::string> &alpn) {
  ERR_clear_error();
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx) {
    return Err{"TLS: cannot create server context: " + drain_errors()};
  }
  std::shared_ptr<TlsContext> out(new TlsContext(ctx, !client_ca_file.empty()));
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  if (SSL_CTX_use_certificate_chain_file(ctx, cert_file.c_str()) != 1) {
    return Err{"certificate \"" + cert_file + "\": " + drain_errors()};
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    return Err{"key \"" + key_file + "\": " + drain_errors()};
  }
  if (!client_ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(ctx, client_ca_file.c_str(), nullptr) != 1) {
      return Err{"client CA file \"" + client_ca_file + "\": " + drain_errors()};
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  }
  out->alpn_wire_ = alpn_wire(alpn);
  if (!out->alpn_wire_.empty()) {
    // `out` owns the context, so the callback's argument outlives every use of it.
    SSL_CTX_set_alpn_select_cb(ctx, &TlsContext::alpn_select_cb, out.get());
  }
  static const unsigned char sid_ctx[] = "kube-api-lb";
  SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof sid_ctx - 1);
  return out;
}

int TlsContext::alpn_select_cb(SSL *, const unsigned char **out, unsigned char *outlen,
                               const unsigned char *in, unsigned int inlen, void *arg) {
  const auto *self = static_cast<const TlsContext *>(arg);
  const auto *ours = reinterpret_cast<const unsigned char *>(self->alpn_wire_.data());
  unsigned char *chosen = nullptr;
  // The server's list first: the server's preference wins, as RFC 7301 has it.
  if (SSL_select_next_proto(&chosen, outlen, ours, static_cast<unsigned>(self->alpn_wire_.size()),
                            in, inlen) != OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_NOACK; // nothing in common: carry on without ALPN
  }
  *out = chosen;
  return SSL_TLSEXT_ERR_OK;
}

TlsEngine::TlsEngine(std::shared_ptr<TlsContext> ctx, SSL *ssl)
    : ctx_(std::move(ctx)), ssl_(ssl), rbio_(BIO_new(BIO_s_mem())), wbio_(BIO_new(BIO_s_mem())) {
  // An empty read BIO means "no bytes yet", never EOF: the socket owner reports EOF itself.
  BIO_set_mem_eof_return(rbio_, -1);
  SSL_set_bio(ssl_, rbio_, wbio_);
  SSL_set_ex_data(ssl_, engine_index(), this);
}

TlsEngine::~TlsEngine() {
  // OpenSSL marks the session of a connection freed without a close_notify as not resumable. The
  // probe drops connections that broke at the TCP level (apiserver restart, timeout) and still
  // wants to resume with the session of the last good handshake: a stale ticket only costs a full
  // handshake, which is what not resuming would cost anyway.
  if (handshake_done()) {
    SSL_set_shutdown(ssl_, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
  }
  SSL_free(ssl_);
}

std::unique_ptr<TlsEngine> TlsEngine::client(std::shared_ptr<TlsContext> ctx, std::string_view sni,
                                             std::string_view verify_name, SSL_SESSION *resume) {
  SSL *ssl = SSL_new(ctx->get());
  if (!ssl) {
    return nullptr;
  }
  std::unique_ptr<TlsEngine> e(new TlsEngine(std::move(ctx), ssl));
  SSL_set_connect_state(ssl);
  if (!sni.empty()) {
    SSL_set_tlsext_host_name(ssl, std::string(sni).c_str());
  }
  if (e->ctx_->verifies_peer() && !verify_name.empty()) {
    X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
    std::string name(verify_name);
    if (is_ip_literal(name)) {
      X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str());
    } else {
      X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
      X509_VERIFY_PARAM_set1_host(param, name.c_str(), name.size());
    }
  }
  if (resume) {
    SSL_set_session(ssl, resume);
  }
  return e;
}

std::unique_ptr<TlsEngine> TlsEngine::server(std::shared_ptr<TlsContext> ctx) {
  SSL *ssl = SSL_new(ctx->get());
  if (!ssl) {
    return nullptr;
  }
  std::unique_ptr<TlsEngine> e(new TlsEngine(std::move(ctx), ssl));
  SSL_set_accept_state(ssl);
  return e;
}

std::string_view TlsEngine::alpn() const {
  const unsigned char *p = nullptr;
  unsigned int len = 0;
  SSL_get0_alpn_selected(ssl_, &p, &len);
  return p ? std::string_view(reinterpret_cast<const char *>(p), len) : std::string_view();
}

int TlsEngine::new_session_cb(SSL *ssl, SSL_SESSION *sess) {
  auto *self = static_cast<TlsEngine *>(SSL_get_ex_data(ssl, engine_index()));
  if (!self) {
    return 0; // not ours: OpenSSL keeps ownership
  }
  self->new_session_.reset(sess);
  return 1; // we took the reference
}

void TlsEngine::feed(const char *data, size_t len) {
  if (len > 0) {
    BIO_write(rbio_, data, static_cast<int>(len));
  }
}

size_t TlsEngine::take_output(std::string &out) {
  const size_t pending = BIO_ctrl_pending(wbio_);
  if (pending == 0) {
    return 0;
  }
  const size_t old = out.size();
  out.resize(old + pending);
  const int n = BIO_read(wbio_, out.data() + old, static_cast<int>(pending));
  out.resize(old + (n > 0 ? static_cast<size_t>(n) : 0));
  return n > 0 ? static_cast<size_t>(n) : 0;
}

bool TlsEngine::has_output() const { return BIO_ctrl_pending(wbio_) > 0; }

void TlsEngine::set_error(const char *what, int ssl_error) {
  std::string why = drain_errors();
  const long vr = SSL_get_verify_result(ssl_);
  if (vr != X509_V_OK) {
    why = std::string("certificate verify failed: ") + X509_verify_cert_error_string(vr);
  }
  if (why.empty()) {
    why = ssl_error == SSL_ERROR_SYSCALL ? "unexpected end of stream"
                                         : "error " + std::to_string(ssl_error);
  }
  error_ = std::string(what) + ": " + why;
}

TlsEngine::Handshake TlsEngine::handshake() {
  if (handshake_done()) {
    return Handshake::Done;
  }
  ERR_clear_error();
  const int rc = SSL_do_handshake(ssl_);
  if (rc == 1) {
    return Handshake::Done;
  }
  const int err = SSL_get_error(ssl_, rc);
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
    return Handshake::InProgress;
  }
  set_error("TLS handshake", err);
  return Handshake::Failed;
}

bool TlsEngine::write(std::string_view plaintext) {
  if (!handshake_done()) {
    error_ = "TLS write before the handshake finished";
    return false;
  }
  while (!plaintext.empty()) {
    ERR_clear_error();
    size_t written = 0;
    const int rc = SSL_write_ex(ssl_, plaintext.data(), plaintext.size(), &written);
    if (rc != 1) {
      set_error("TLS write", SSL_get_error(ssl_, rc));
      return false;
    }
    plaintext.remove_prefix(written);
  }
  return true;
}

TlsEngine::ReadStatus TlsEngine::read(std::string &out) {
  char buf[16 * 1024];
  while (true) {
    ERR_clear_error();
    size_t n = 0;
    const int rc = SSL_read_ex(ssl_, buf, sizeof buf, &n);
    if (rc == 1) {
      out.append(buf, n);
      continue;
    }
    const int err = SSL_get_error(ssl_, rc);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
      return ReadStatus::Ok;
    }
    if (err == SSL_ERROR_ZERO_RETURN) {
      return ReadStatus::Closed;
    }
    set_error("TLS read", err);
    return ReadStatus::Failed;
  }
}

void TlsEngine::shutdown() {
  ERR_clear_error();
  if (handshake_done()) {
    SSL_shutdown(ssl_);
  }
  ERR_clear_error();
}

SslSessionPtr TlsEngine::take_new_session() { return std::move(new_session_); }

} // namespace kal
