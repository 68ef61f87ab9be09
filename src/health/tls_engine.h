#pragma once
// TLS over OpenSSL memory BIOs, with no I/O of its own (h2o's approach): the owner feeds the bytes
// it read from the socket with feed(), drives the handshake, moves plaintext with write()/read(),
// and sends whatever take_output() returns. Used by the health probe on libuv, and by tests as
// both ends of an in-memory connection.
#include "kube_api_lb/core/result.h"

#include <openssl/ssl.h>

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace kal {

struct SslSessionFree {
  void operator()(SSL_SESSION *s) const { SSL_SESSION_free(s); }
};
// A TLS session to resume (TLS 1.2 session id/ticket or TLS 1.3 ticket). Owned reference.
using SslSessionPtr = std::unique_ptr<SSL_SESSION, SslSessionFree>;

// An SSL_CTX and how it was set up. Shared by every engine made from it; immutable after creation.
class TlsContext {
public:
  struct ClientOptions {
    std::string ca_file;     // PEM bundle; non-empty: verify the chain and the peer's name or IP
    std::string client_cert; // PEM chain presented to the server (requires client_key)
    std::string client_key;  // PEM private key
    // Offer ALPN "h2,http/1.1" in the ClientHello (kube-apiserver always offers h2), so the
    // checker can send HTTP/2 PINGs; see TlsEngine::alpn() for what the server chose. Off: no
    // ALPN extension at all, byte for byte the ClientHello of before. HealthConfig::http2.
    bool offer_h2 = false;
  };

  // Loads the files now (blocking file reads: call at startup or reload, not on the data path).
  // Errors name the file and OpenSSL's reason.
  static Result<std::shared_ptr<TlsContext>> client(const ClientOptions &o);
  // A client context from PEM text held in memory (a kubeconfig's inline -data or the files it
  // names, read by the caller): `ca_pem` (one or more certificates; empty: no verification),
  // `cert_pem` (chain) and `key_pem` (both or neither). No ALPN: HTTP/1.1. Errors start with
  // `what` ("kubeconfig /x: ") and name the part and OpenSSL's reason.
  static Result<std::shared_ptr<TlsContext>> client_pem(const std::string &what,
                                                        const std::string &ca_pem,
                                                        const std::string &cert_pem,
                                                        const std::string &key_pem);
  // A server context from PEM files; `client_ca_file` non-empty: require a client certificate
  // signed by it. `alpn`: protocols the server accepts, its preference first (RFC 7301: the
  // server chooses); none in common with the client, or empty: no ALPN in the answer. For tests
  // and stand-in servers.
  static Result<std::shared_ptr<TlsContext>> server(const std::string &cert_file,
                                                    const std::string &key_file,
                                                    const std::string &client_ca_file = "",
                                                    const std::vector<std::string> &alpn = {});

  ~TlsContext();
  TlsContext(const TlsContext &) = delete;
  TlsContext &operator=(const TlsContext &) = delete;

  SSL_CTX *get() const { return ctx_; }
  bool verifies_peer() const { return verify_; }

private:
  TlsContext(SSL_CTX *ctx, bool verify) : ctx_(ctx), verify_(verify) {}
  static int alpn_select_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                            const unsigned char *in, unsigned int inlen, void *arg);
  SSL_CTX *ctx_;
  bool verify_;
  std::string alpn_wire_; // server: accepted protocols in ALPN wire format (length-prefixed)
};

class TlsEngine {
public:
  enum class Handshake { InProgress, Done, Failed };
  enum class ReadStatus { Ok, Closed, Failed }; // Closed: the peer sent close_notify

  // A client. `sni`: the server name sent in the ClientHello (empty: none; IP literals must not be
  // sent as SNI, the caller decides). `verify_name`: the DNS name or IP literal the certificate
  // must match when the context verifies (empty: chain only). `resume`: a session from an earlier
  // handshake with the same endpoint, or null; the engine takes its own reference.
  static std::unique_ptr<TlsEngine> client(std::shared_ptr<TlsContext> ctx, std::string_view sni,
                                           std::string_view verify_name, SSL_SESSION *resume);
  static std::unique_ptr<TlsEngine> server(std::shared_ptr<TlsContext> ctx);

  ~TlsEngine();
  TlsEngine(const TlsEngine &) = delete;
  TlsEngine &operator=(const TlsEngine &) = delete;

  // Bytes received from the peer.
  void feed(const char *data, size_t len);
  void feed(std::string_view s) { feed(s.data(), s.size()); }

  // Moves every byte waiting to go to the peer into `out` (appended). Returns how many.
  size_t take_output(std::string &out);
  bool has_output() const;

  // Advances the handshake with the bytes fed so far; call again after feeding more.
  Handshake handshake();
  bool handshake_done() const { return SSL_is_init_finished(ssl_) == 1; }
  // The finished handshake resumed an earlier session (abbreviated handshake).
  bool resumed() const { return SSL_session_reused(ssl_) == 1; }
  // The protocol ALPN settled on ("h2", "http/1.1"), or empty: none offered, none accepted, or
  // the handshake is not done. Points into the engine; valid while it lives.
  std::string_view alpn() const;

  // Encrypts `plaintext` into the output. Only after the handshake is done; false on error.
  bool write(std::string_view plaintext);

  // Appends all plaintext available from the bytes fed so far to `out`.
  ReadStatus read(std::string &out);

  // Queues a close_notify alert (take_output() afterwards).
  void shutdown();

  // A session the server issued on this connection (TLS 1.3 tickets arrive after the handshake,
  // while reading), or null if none arrived since the last call. For resumption next time.
  SslSessionPtr take_new_session();

  // Why the last operation failed: OpenSSL's reason, with the certificate verification result.
  const std::string &error() const { return error_; }

private:
  friend class TlsContext; // installs new_session_cb on client contexts
  TlsEngine(std::shared_ptr<TlsContext> ctx, SSL *ssl);
  static int new_session_cb(SSL *ssl, SSL_SESSION *sess);
  void set_error(const char *what, int ssl_error);

  std::shared_ptr<TlsContext> ctx_;
  SSL *ssl_;
  BIO *rbio_; // owned by ssl_
  BIO *wbio_; // owned by ssl_
  SslSessionPtr new_session_;
  std::string error_;
};

} // namespace kal
