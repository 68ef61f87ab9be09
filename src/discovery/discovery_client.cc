#include "discovery/discovery_client.h"

#include "kube_api_lb/core/discovery_merge.h"
#include "kube_api_lb/log/logger.h"
#include "kube_api_lb/version.h"
#include "uvx/stream_io.h"

#include <nlohmann/json.hpp>

#include <chrono>

namespace kal {
namespace {

constexpr const char *kPath = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices";
constexpr const char *kSelector = "labelSelector=kubernetes.io%2Fservice-name%3Dkubernetes";
// The RBAC rule that grants what discovery does (manifests/kube-api-lb-discovery-rbac.yaml).
constexpr const char *kPermission =
    "get, list and watch on endpointslices.discovery.k8s.io in namespace default";
// A list's answer larger than this is refused (the kubernetes service has one slice of a few
// hundred bytes per apiserver).
constexpr size_t kMaxListBytes = 4 * 1024 * 1024;

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string uv_error(const char *what, int rc) {
  return std::string(what) + ": " + uv_strerror(rc);
}

// The `message` of a Kubernetes Status body, else the body's start.
std::string status_message(const std::string &body) {
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_object()) {
    if (auto m = j.find("message"); m != j.end() && m->is_string()) {
      return m->get<std::string>().substr(0, 500);
    }
  }
  return body.substr(0, 200);
}

} // namespace

DiscoveryClient::DiscoveryClient(uv_loop_t *loop, TimeSource &time, Settings s, Callbacks cb)
    : loop_(loop), time_(time), s_(std::move(s)), cb_(std::move(cb)), rng_(time.seed()),
      readbuf_(64 * 1024) {
  timer_ = time_.create_timer([this] { on_timer(); });
}

DiscoveryClient::~DiscoveryClient() { stop(); }

void DiscoveryClient::stop() {
  stopped_ = true;
  close_connection();
  timer_.reset(); // its uv handle must be closed before the loop is
  phase_ = Phase::Idle;
}

void DiscoveryClient::start() {
  stopped_ = false;
  if (!timer_) {
    timer_ = time_.create_timer([this] { on_timer(); });
  }
  if (!load_kubeconfig()) {
    arm(kKubeconfigRetry);
    return;
  }
  begin(false);
}

bool DiscoveryClient::load_kubeconfig() {
  auto k = kal::load_kubeconfig(s_.kubeconfig);
  std::string err;
  if (k) {
    auto ctx = TlsContext::client_pem("kubeconfig " + s_.kubeconfig + ": ", k->ca_pem, k->cert_pem,
                                      k->key_pem);
    if (ctx) {
      kc_ = std::move(*k);
      tls_ctx_ = std::move(*ctx);
      if (!kubeconfig_error_.empty()) {
        log::info("discovery: kubeconfig loaded").kv("kubeconfig", s_.kubeconfig);
      }
      kubeconfig_error_.clear();
      return true;
    }
    err = ctx.error();
  } else {
    err = k.error();
  }
  stats_.state = "error";
  stats_.last_error = err;
  if (err != kubeconfig_error_) {
    log::error("discovery: cannot use the kubeconfig; serving from the seed and the saved state")
        .kv("error", err);
    kubeconfig_error_ = err;
  }
  return false;
}

void DiscoveryClient::arm(std::chrono::milliseconds d) {
  if (!stopped_ && timer_) {
    timer_->enable(d);
  }
}

void DiscoveryClient::begin(bool watch) {
  if (stopped_) {
    return;
  }
  close_connection();
  phase_ = Phase::Idle;
  if (!tls_ctx_ && !load_kubeconfig()) {
    arm(kKubeconfigRetry);
    return;
  }
  want_watch_ = watch && !rv_.empty();
  up_ = cb_.pick ? cb_.pick(nullptr) : nullptr;
  sockaddr_storage sa{};
  if (!up_ || !up_->first_addr(sa)) {
    up_.reset();
    stats_.state = "waiting";
    stats_.endpoint.clear();
    arm(std::chrono::milliseconds(1000)); // no apiserver is Up yet
    return;
  }
  stats_.endpoint = up_->name();
  auto *tcp = tcp_.make(this);
  if (int rc = uv_tcp_init(loop_, tcp); rc != 0) {
    tcp_.abandon();
    fail(uv_error("socket", rc));
    return;
  }
  uv_tcp_nodelay(tcp, 1);
  auto *req = new uv_connect_t{};
  if (int rc = uv_tcp_connect(req, tcp, reinterpret_cast<const sockaddr *>(&sa),
                              &DiscoveryClient::connect_cb);
      rc != 0) {
    delete req;
    fail(uv_error(("connect to " + up_->name()).c_str(), rc));
    return;
  }
  ++stats_.connections;
  stats_.connected = true;
  stats_.state = "connecting";
  phase_ = Phase::Connecting;
  arm(s_.request_timeout);
}

void DiscoveryClient::connect_cb(uv_connect_t *req, int status) noexcept {
  auto *self = static_cast<DiscoveryClient *>(req->handle->data);
  delete req;
  if (!self || status == UV_ECANCELED) {
    return;
  }
  self->on_connect(status);
}

void DiscoveryClient::on_connect(int status) {
  if (status < 0) {
    fail(uv_error(("connect to " + up_->name()).c_str(), status));
    return;
  }
  // SNI only for a name (RFC 6066); the certificate is verified against the kubeconfig's name.
  const std::string sni = is_ip_literal(kc_.verify_name) ? "" : kc_.verify_name;
  tls_ = TlsEngine::client(tls_ctx_, sni, kc_.insecure_skip_verify ? "" : kc_.verify_name, nullptr);
  if (!tls_) {
    fail("TLS: cannot create a client");
    return;
  }
  if (int rc =
          uvx::read_start<DiscoveryClient, &DiscoveryClient::readbuf_, &DiscoveryClient::on_read>(
              tcp_.stream());
      rc != 0) {
    fail(uv_error("read", rc));
    return;
  }
  phase_ = Phase::Handshaking;
  drive_handshake();
}

void DiscoveryClient::on_write_error(int status) { fail(uv_error("write", status)); }

void DiscoveryClient::flush() {
  if (!tls_ || !tcp_) {
    return;
  }
  std::string bytes;
  if (tls_->take_output(bytes) == 0) {
    return;
  }
  if (int rc = uvx::write_owned<DiscoveryClient, &DiscoveryClient::on_write_error>(
          tcp_.stream(), std::move(bytes));
      rc != 0) {
    on_write_error(rc);
  }
}

void DiscoveryClient::drive_handshake() {
  const auto h = tls_->handshake();
  flush();
  if (!tls_) {
    return;
  }
  if (h == TlsEngine::Handshake::Failed) {
    // The files may have been renewed since they were read: the next attempt reads them again.
    tls_ctx_.reset();
    fail("TLS handshake with " + up_->name() + " failed: " + tls_->error());
    return;
  }
  if (h == TlsEngine::Handshake::Done) {
    send_request();
  }
}

std::string DiscoveryClient::request_text(bool watch) const {
  std::string target = std::string(kPath) + "?" + kSelector;
  if (watch) {
    target += "&watch=1&allowWatchBookmarks=true&resourceVersion=" + rv_ +
              "&timeoutSeconds=" + std::to_string(watch_timeout_.count() / 1000);
  }
  std::string host = kc_.server_host.find(':') != std::string::npos ? "[" + kc_.server_host + "]"
                                                                    : kc_.server_host;
  std::string r =
      "GET " + target + " HTTP/1.1\r\nHost: " + host + ":" + std::to_string(kc_.server_port) +
      "\r\nUser-Agent: kube-api-lb/" KAL_VERSION " (discovery)\r\nAccept: application/json\r\n";
  if (!kc_.token.empty()) {
    r += "Authorization: Bearer " + kc_.token + "\r\n";
  }
  return r + "\r\n";
}

void DiscoveryClient::send_request() {
  parser_.reset();
  body_.clear();
  if (want_watch_) {
    // Jittered down by up to 10% so that a fleet's watches do not all end at once.
    std::uniform_int_distribution<int64_t> d(0, s_.watch_timeout.count() / 10);
    watch_timeout_ =
        std::chrono::milliseconds(std::max<int64_t>(1000, s_.watch_timeout.count() - d(rng_)));
    parser_.keep_body(0);
    framer_ = std::make_unique<WatchStreamFramer>(s_.max_event_bytes);
    phase_ = Phase::Watching;
    stats_.state = "watching";
    arm(watch_timeout_ + kWatchIdleSlack);
  } else {
    parser_.keep_body(kMaxListBytes);
    phase_ = Phase::Listing;
    stats_.state = "listing";
    arm(s_.request_timeout);
  }
  last_bytes_ = time_.now();
  if (!tls_->write(request_text(want_watch_))) {
    fail("TLS write failed: " + tls_->error());
    return;
  }
  flush();
}

void DiscoveryClient::on_read(ssize_t nread, const char *data) {
  if (nread < 0) {
    // The peer closed or reset: a list not answered, or a watch cut.
    if (phase_ == Phase::Watching && parser_.state() == HttpResponseParser::State::Incomplete &&
        framer_ && framer_->partial_bytes() == 0 && parser_.head_done() && nread == UV_EOF) {
      fail("the watch stream was closed by " + up_->name() + " without its last chunk");
    } else if (phase_ == Phase::Watching && framer_ && framer_->partial_bytes() > 0) {
      fail("the watch stream was cut mid-event (" + std::to_string(framer_->partial_bytes()) +
           " bytes of an event received)");
    } else {
      fail(uv_error(("read from " + up_->name()).c_str(), static_cast<int>(nread)));
    }
    return;
  }
  stats_.received_bytes += static_cast<uint64_t>(nread);
  last_bytes_ = time_.now();
  tls_->feed(data, static_cast<size_t>(nread));
  if (phase_ == Phase::Handshaking) {
    drive_handshake();
    if (!tls_ || phase_ == Phase::Handshaking) {
      return;
    }
  }
  std::string plain;
  auto st = tls_->read(plain);
  flush();
  if (!tls_) {
    return;
  }
  if (!plain.empty()) {
    on_plaintext(plain);
  }
  if (st == TlsEngine::ReadStatus::Failed && tls_) {
    fail("TLS: " + tls_->error());
  }
}

void DiscoveryClient::on_plaintext(const std::string &plain) {
  auto st = parser_.feed(plain);
  if (st == HttpResponseParser::State::Error) {
    fail("malformed HTTP answer from " + up_->name() + ": " + parser_.error());
    return;
  }
  if (!parser_.head_done()) {
    return;
  }
  const int status = parser_.status();
  if (status != 200) {
    if (st != HttpResponseParser::State::Done) {
      parser_.take_body(body_);
      if (body_.size() > 64 * 1024) {
        fail("the apiserver " + up_->name() + " answered " + std::to_string(status) +
             " with an endless body");
      }
      return; // read the whole Status body for the message
    }
    parser_.take_body(body_);
    if (status == 401 || status == 403) {
      auth_failed(status, body_);
    } else if (status == 410) {
      ++stats_.watch_restarts;
      rv_.clear();
      fail("410 Gone: the resourceVersion is too old; listing again", false);
    } else {
      fail("the apiserver " + up_->name() + " answered " + std::to_string(status) + ": " +
           status_message(body_));
    }
    return;
  }
  if (phase_ == Phase::Listing) {
    parser_.take_body(body_);
    if (st == HttpResponseParser::State::Done) {
      on_list_done();
    }
    return;
  }
  on_watch_bytes();
  if (stopped_ || phase_ != Phase::Watching) {
    return;
  }
  if (parser_.state() == HttpResponseParser::State::Done) {
    // The server ended the watch (its timeoutSeconds, or it is shutting down): go on from the
    // last resourceVersion, through whichever apiserver is healthy now.
    ++stats_.watch_restarts;
    if (log::v(1)) {
      log::info("discovery: watch ended by the apiserver; watching again")
          .kv("endpoint", up_->name())
          .kv("resource_version", rv_);
    }
    begin(true);
  }
}

void DiscoveryClient::on_list_done() {
  auto list = parse_endpoint_slice_list(body_);
  body_.clear();
  if (!list) {
    ++stats_.malformed_events;
    fail("the list answer from " + up_->name() + " is unusable: " + list.error());
    return;
  }
  for (const auto &s : list->slices) {
    for (const auto &why : s.skipped) {
      log::warn("discovery: part of an EndpointSlice skipped").kv("why", why);
    }
  }
  slices_.reset(*list);
  rv_ = list->resource_version;
  failures_ = 0;
  ++stats_.lists;
  stats_.last_sync_unix = unix_now();
  stats_.last_error.clear();
  auto eps = slices_.endpoints();
  log::info("discovery: listed the kubernetes EndpointSlices")
      .kv("endpoint", up_->name())
      .kv("slices", static_cast<uint64_t>(slices_.size()))
      .kv("endpoints", static_cast<uint64_t>(eps.size()))
      .kv("resource_version", rv_);
  const uint64_t gen = conn_gen_;
  if (cb_.on_endpoints) {
    cb_.on_endpoints(eps);
  }
  if (stopped_ || gen != conn_gen_) {
    return; // the callback moved discovery to another apiserver
  }
  // The watch goes on the same connection when the answer allows it.
  want_watch_ = true;
  if (parser_.keep_alive() && tls_) {
    send_request();
  } else {
    begin(true);
  }
}

void DiscoveryClient::on_watch_bytes() {
  std::string bytes;
  parser_.take_body(bytes);
  if (bytes.empty()) {
    return;
  }
  std::vector<std::string> events;
  auto st = framer_->feed(bytes, events);
  for (const auto &e : events) {
    on_watch_event(e);
    if (stopped_ || phase_ != Phase::Watching) {
      return;
    }
  }
  if (st == WatchStreamFramer::State::Error) {
    if (framer_->error().find("larger than") != std::string::npos) {
      ++stats_.oversize_events;
    } else {
      ++stats_.malformed_events;
    }
    fail(framer_->error() + " (from " + up_->name() + ")");
  }
}

void DiscoveryClient::on_watch_event(const std::string &text) {
  ++stats_.events;
  auto ev = parse_watch_event(text);
  if (!ev) {
    ++stats_.malformed_events;
    fail("malformed watch event from " + up_->name() + ": " + ev.error());
    return;
  }
  if (ev->type == WatchEvent::Type::Error) {
    ++stats_.watch_restarts;
    if (ev->code == 410) {
      rv_.clear();
    }
    fail("the watch answered an ERROR event: " + std::to_string(ev->code) + " " + ev->reason +
             ": " + ev->message,
         ev->code != 410);
    return;
  }
  if (!ev->resource_version.empty()) {
    rv_ = ev->resource_version;
  }
  stats_.last_sync_unix = unix_now();
  if (ev->type == WatchEvent::Type::Bookmark) {
    return;
  }
  for (const auto &why : ev->slice.skipped) {
    log::warn("discovery: part of an EndpointSlice skipped").kv("why", why);
  }
  slices_.apply(*ev);
  if (cb_.on_endpoints) {
    cb_.on_endpoints(slices_.endpoints());
  }
}

void DiscoveryClient::auth_failed(int status, const std::string &body) {
  ++stats_.auth_failures;
  stats_.state = "unauthorized";
  const std::string msg = status_message(body);
  if (status == 401) {
    log::error("discovery: the apiserver did not accept the kubeconfig's credentials (401); "
               "serving from the seed and the saved state")
        .kv("endpoint", up_->name())
        .kv("kubeconfig", s_.kubeconfig)
        .kv("user", kc_.user)
        .kv("message", msg);
  } else {
    log::error("discovery: permission denied (403): the kubeconfig's identity needs get, list "
               "and watch on endpointslices.discovery.k8s.io in namespace default; serving from "
               "the seed and the saved state")
        .kv("endpoint", up_->name())
        .kv("kubeconfig", s_.kubeconfig)
        .kv("user", kc_.user)
        .kv("missing_permission", kPermission)
        .kv("fix", "kubectl apply -f manifests/kube-api-lb-discovery-rbac.yaml")
        .kv("message", msg);
  }
  // A rotated token file or renewed certificate is picked up by the next attempt.
  tls_ctx_.reset();
  const std::string state = stats_.state;
  fail(std::to_string(status) + ": " + msg);
  stats_.state = state;
}

void DiscoveryClient::fail(const std::string &why, bool count) {
  if (stopped_) {
    return;
  }
  close_connection();
  stats_.last_error = why;
  if (count) {
    ++failures_;
    ++stats_.list_failures;
  } else {
    failures_ = std::max(failures_, 1);
  }
  std::uniform_real_distribution<double> j(0.0, 1.0);
  const auto delay = discovery_backoff(std::max(failures_, 1), j(rng_));
  stats_.state = "backoff";
  log::warn("discovery: listing again after a backoff")
      .kv("why", why)
      .kv("failures", failures_)
      .kv("backoff_ms", static_cast<int64_t>(delay.count()));
  want_watch_ = false;
  phase_ = Phase::Idle;
  arm(delay);
}

void DiscoveryClient::endpoint_unhealthy(const Upstream &u) {
  if (stopped_ || !up_ || up_.get() != &u || phase_ == Phase::Idle) {
    return;
  }
  log::info("discovery: its apiserver is no longer healthy; moving to another")
      .kv("endpoint", u.name());
  // The watch can go on from rv_ through any apiserver (they share one etcd).
  begin(!rv_.empty());
}

void DiscoveryClient::on_timer() {
  if (stopped_) {
    return;
  }
  switch (phase_) {
  case Phase::Idle:
    begin(false);
    return;
  case Phase::Connecting:
  case Phase::Handshaking:
  case Phase::Listing:
    fail("no answer from " + (up_ ? up_->name() : std::string("?")) + " within " +
         std::to_string(s_.request_timeout.count()) + " ms");
    return;
  case Phase::Watching: {
    const auto idle = time_.now() - last_bytes_;
    const auto limit = watch_timeout_ + kWatchIdleSlack;
    if (idle >= limit) {
      ++stats_.watch_restarts;
      fail("the watch stream from " + up_->name() + " went silent");
    } else {
      arm(std::chrono::ceil<std::chrono::milliseconds>(limit - idle));
    }
    return;
  }
  }
}

void DiscoveryClient::close_connection() {
  ++conn_gen_;
  tls_.reset();
  framer_.reset();
  if (tcp_) {
    tcp_.reset();
  }
  stats_.connected = false;
  parser_.reset();
}

} // namespace kal
