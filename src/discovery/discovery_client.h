#pragma once
// The I/O half of endpoint discovery (issue 18), on the main loop: reads the `default/kubernetes`
// EndpointSlices from an apiserver and keeps watching them, and reports what they say. Decides
// nothing about the endpoint list (core/discovery_merge.h does, in app/).
//
// Through whom: every connection goes straight to one apiserver endpoint the owner picks among
// those the health checker has Up now (`Callbacks::pick`), never a fixed one, never through the
// proxy's own listener, and so never through a path that needs the list being fetched. When that
// apiserver goes down or is withdrawn, endpoint_unhealthy() moves discovery to another.
//
// How: TCP, TLS (TlsEngine over memory BIOs, the kubeconfig's CA, client certificate or bearer
// token; no ALPN, so HTTP/1.1), `GET` the list, then a watch from the list's resourceVersion with
// bookmarks and a server timeout (chunked; HttpResponseParser de-chunks, WatchStreamFramer cuts
// events, bounded). A watch that ends cleanly (its timeout) is resumed from the last
// resourceVersion at once; 410 Gone, an ERROR event, a cut stream, a malformed or oversize event,
// a timeout or a refused request list again after a jittered backoff (core/discovery_merge.h
// discovery_backoff). 401/403 is logged as an error naming the missing permission and counted.
//
// Its connection is its own: it is counted in its own figures, never as a client session.
#include "discovery/endpoint_slice.h"
#include "discovery/kubeconfig.h"
#include "health/tls_engine.h"
#include "kube_api_lb/core/http_response_parser.h"
#include "kube_api_lb/core/upstream.h"
#include "kube_api_lb/core/watch_stream.h"
#include "uvx/handle.h"
#include "uvx/time_source.h"

#include <uv.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace kal {

// What /metrics and /stats show of discovery (plain values, main loop only).
struct DiscoveryClientStats {
  std::string state = "starting"; // starting, connecting, listing, watching, backoff, waiting,
                                  // unauthorized, error
  std::string last_error;
  std::string endpoint;          // the apiserver it talks to now, or ""
  double last_sync_unix = 0;     // wall clock of the last list or watch event applied
  uint64_t lists = 0;            // successful lists
  uint64_t list_failures = 0;    // lists or watches that failed (backoff followed)
  uint64_t watch_restarts = 0;   // watches started again (timeout, 410, cut, error, ...)
  uint64_t events = 0;           // watch events received (bookmarks included)
  uint64_t auth_failures = 0;    // 401/403 answers
  uint64_t connections = 0;      // connections opened by discovery, ever
  bool connected = false;        // a discovery connection is open now
  uint64_t received_bytes = 0;   // on discovery connections (TLS records)
  uint64_t oversize_events = 0;  // events beyond the limit
  uint64_t malformed_events = 0; // events that were not JSON, or not a watch event
};

class DiscoveryClient {
public:
  struct Settings {
    std::string kubeconfig;
    size_t max_event_bytes = 1024 * 1024;
    std::chrono::milliseconds request_timeout{10000}; // connect + TLS + a list's answer
    // The watch's timeoutSeconds (jittered down by up to 10%); the stream is given this plus
    // kWatchIdleSlack of silence before it counts as cut.
    std::chrono::milliseconds watch_timeout{300000};
  };
  static constexpr std::chrono::milliseconds kWatchIdleSlack{30000};
  // How often a kubeconfig that could not be loaded is read again.
  static constexpr std::chrono::milliseconds kKubeconfigRetry{10000};

  struct Callbacks {
    // A healthy apiserver to talk to, other than `avoid` if there is one; null: none is Up now.
    std::function<std::shared_ptr<Upstream>(const Upstream *avoid)> pick;
    // What the slices say now (after a list, and after every watch event that changed them).
    std::function<void(const std::vector<DiscoveredEndpoint> &)> on_endpoints;
  };

  // Sockets on `loop`, timers and the jitter seed from `time`; both must outlive the client.
  DiscoveryClient(uv_loop_t *loop, TimeSource &time, Settings s, Callbacks cb);
  ~DiscoveryClient();
  DiscoveryClient(const DiscoveryClient &) = delete;
  DiscoveryClient &operator=(const DiscoveryClient &) = delete;

  // Loads the kubeconfig and lists. A kubeconfig that cannot be loaded is logged (naming the
  // problem) and read again every kKubeconfigRetry; the proxy serves on meanwhile. After a 401,
  // a 403 or a failed TLS handshake it is read again (with the files it names) before the next
  // attempt, so a rotated token file or a renewed certificate is taken up.
  void start();
  // Closes the connection and every timer; no callback runs afterwards. Idempotent.
  void stop();
  // The health checker marked `u` down or discovery withdrew it: if discovery talks to it, it
  // moves to another apiserver (a new list; nothing is lost).
  void endpoint_unhealthy(const Upstream &u);

  const DiscoveryClientStats &stats() const { return stats_; }

private:
  enum class Phase { Idle, Connecting, Handshaking, Listing, Watching };

  static void connect_cb(uv_connect_t *req, int status) noexcept;

  bool load_kubeconfig();
  void begin(bool watch); // picks an apiserver and connects (a list, or a watch from rv_)
  void on_connect(int status);
  void on_read(ssize_t nread, const char *data);
  void on_write_error(int status);
  void drive_handshake();
  void send_request();
  void on_plaintext(const std::string &plain);
  void on_list_done();
  void on_watch_bytes();
  void on_watch_event(const std::string &text);
  void on_timer();
  // Drops the connection and lists again after the backoff; `why` is logged.
  void fail(const std::string &why, bool count = true);
  void auth_failed(int status, const std::string &body);
  void close_connection();
  void flush();
  void arm(std::chrono::milliseconds d);
  std::string request_text(bool watch) const;

  uv_loop_t *loop_;
  TimeSource &time_;
  Settings s_;
  Callbacks cb_;
  std::mt19937_64 rng_;
  std::unique_ptr<Timer> timer_;
  Kubeconfig kc_;
  std::shared_ptr<TlsContext> tls_ctx_;
  std::string kubeconfig_error_; // the last load error, logged once per change

  uvx::Handle<uv_tcp_t> tcp_;
  std::unique_ptr<TlsEngine> tls_;
  std::shared_ptr<Upstream> up_;
  HttpResponseParser parser_;
  std::unique_ptr<WatchStreamFramer> framer_;
  EndpointSliceSet slices_;
  std::string rv_; // where the watch resumes
  std::string body_;
  std::vector<char> readbuf_;
  Phase phase_ = Phase::Idle;
  bool want_watch_ = false; // the connection being set up is for a watch
  bool stopped_ = false;
  int failures_ = 0;      // consecutive, for the backoff
  uint64_t conn_gen_ = 0; // bumped by close_connection(): a callback that reconnected
  TimePoint last_bytes_{};
  std::chrono::milliseconds watch_timeout_{0}; // of the watch running now
  DiscoveryClientStats stats_;
};

} // namespace kal
