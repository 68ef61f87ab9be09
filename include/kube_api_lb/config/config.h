#pragma once
// The effective configuration of kube-api-lb. Defaults live here and nowhere else; the flag parser,
// the YAML reader and the nginx.conf / haproxy.cfg readers all start from a default Config and
// overwrite what they were given.
#include "kube_api_lb/core/endpoint.h"
#include "kube_api_lb/core/picker.h"
#include "kube_api_lb/log/logger.h"

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kal {

using Millis = std::chrono::milliseconds;

// What the kernel takes: TCP_USER_TIMEOUT is an int of milliseconds, TCP_KEEPIDLE at most
// 32767 s (MAX_TCP_KEEPIDLE).
constexpr int64_t kMaxTcpUserTimeoutMs = 2147483647;
constexpr int64_t kMaxKeepaliveIdleS = 32767;

enum class HealthMode { Https, Tls, Tcp, None };
enum class DiscoveryMode { None, EndpointSlices };

// Names as written in flags and YAML ("least-conn", "round-robin", "random-two", "first").
const char *to_string(Policy p);
std::optional<Policy> policy_from_string(std::string_view s);
const char *to_string(HealthMode m); // "https", "tls", "tcp", "none"
std::optional<HealthMode> health_mode_from_string(std::string_view s);
const char *to_string(DiscoveryMode m); // "none", "endpointslices"
std::optional<DiscoveryMode> discovery_mode_from_string(std::string_view s);
const char *to_string(LogFormat f); // "text", "json"
std::optional<LogFormat> log_format_from_string(std::string_view s);

struct HealthConfig {
  HealthMode mode = HealthMode::Https;
  std::string path = "/readyz";
  // Normal interval between liveness checks of a stable endpoint: an HTTP/2 PING on the kept-alive
  // check connection when the apiserver negotiated h2 (it costs the apiserver no request), else a
  // `GET path` as before.
  Millis interval{1000};
  // With HTTP/2 liveness, how often `GET path` (/readyz) itself is asked, jittered; passive
  // evidence (a refused or timed-out dial, a reset, a first-byte timeout, a GOAWAY) asks at once.
  // 10 s keeps 5,000 nodes under ~500 requests/s per apiserver (docs/health-checks.md).
  Millis readyz_interval{10000};
  // Offer HTTP/2 (ALPN h2) on the check connection and use PINGs for liveness when it is taken.
  bool http2 = true;
  // An endpoint's connections are closed for a dead verdict at most once per this window.
  Millis flap_window{30000};
  // At most one /readyz brought forward by passive evidence (client dials refused or timed out,
  // a GOAWAY, the check connection closed by the apiserver) per endpoint per this gap. 1 s: the
  // apiserver refreshes its own etcd probe about once a second, so asking faster learns nothing;
  // a thousand failing clients still cost the apiserver one request.
  Millis recheck_gap{1000};
  // Interval while an endpoint is between states (HAProxy's fastinter).
  Millis fast_interval{250};
  // Interval while an endpoint is down (HAProxy's downinter).
  Millis down_interval{500};
  // A check that has not completed in this time fails (L4TOUT / L6TOUT / L7TOUT). 400 ms, not
  // 1 s: with fall 2 a hang costs interval*(1+jitter) + 2*timeout to detect, and that must stay
  // under 2 s (1.1 + 0.8 = 1.9 s). A /readyz on a kept-alive connection answers in milliseconds;
  // see docs/health-checks.md for the arithmetic and the trade-off.
  Millis timeout{400};
  int rise = 2; // consecutive passes to come up
  int fall = 2; // consecutive failures to go down
  // Jitter applied to every delay, as a fraction of it (0.1 = +-10%).
  double jitter = 0.1;
  std::string ca_file;     // empty: do not verify the server certificate
  std::string client_cert; // PEM; for apiservers with --anonymous-auth=false
  std::string client_key;
  std::string server_name; // SNI and verified name; empty: the endpoint's host
  // After coming up, an endpoint's share of new connections ramps up over this time (0: off).
  Millis slow_start{0};

  bool operator==(const HealthConfig &) const = default;
};

// Endpoint discovery from the cluster (docs/discovery.md): the `default/kubernetes`
// EndpointSlices, merged with the seed (Config::endpoints) and the last-known-good state.
struct DiscoveryConfig {
  DiscoveryMode mode = DiscoveryMode::None;
  std::string kubeconfig; // required with EndpointSlices: server CA, client cert/key or token
  std::string state_file; // last-known-good state (a hostPath directory); empty: none kept
  // A change is applied once it has held this long (an apiserver joining adds, removes and
  // re-adds itself).
  Millis debounce{5000};
  // An endpoint gone from discovery is kept this long (and while it is the last usable one).
  Millis grace{300000};

  bool operator==(const DiscoveryConfig &) const = default;
};

struct AdminConfig {
  // Address of /healthz, /readyz, /metrics, /stats. Empty host list disables the admin server.
  std::vector<HostPort> listen{HostPort{"127.0.0.1", 8081, HostPort::Kind::IPv4}};
  // Extra listeners that serve only /healthz (Kubespray's health port, on all addresses).
  std::vector<HostPort> healthz_listen;

  bool operator==(const AdminConfig &) const = default;
};

struct Config {
  std::vector<HostPort> listen{HostPort{"127.0.0.1", 6443, HostPort::Kind::IPv4}};
  std::vector<HostPort> endpoints;
  Policy policy = Policy::LeastConn;
  Millis connect_timeout{1000};
  // Upstream accepted but sent nothing back within this time after the client's first bytes:
  // re-dial another endpoint and replay (only while nothing has reached the client).
  Millis first_byte_timeout{2000};
  Millis idle_timeout{0}; // 0: none (watches are long-lived)
  // Once one side has sent its FIN, the connection is closed when nothing moves for this long
  // (HAProxy's timeout client-fin/server-fin): an apiserver never half-closes on purpose, so a
  // client that keeps its end open after the apiserver's FIN would otherwise hold it forever.
  Millis half_closed_timeout{300000}; // 0: none
  Millis shutdown_grace{10000};
  // Connections to an endpoint removed by a reload are closed after this time.
  Millis drain_timeout{30000};
  // TCP_USER_TIMEOUT and keepalive on both sides.
  Millis tcp_user_timeout{30000};
  Millis keepalive_idle{15000};
  // Two event loops, like the two nginx workers Kubespray runs: a second loop costs about 100 KiB
  // and lets new connections use a second CPU.
  int workers = 2;
  // Bytes buffered per direction before the other side stops being read.
  size_t buffer_high_watermark = 256 * 1024;
  // Client bytes kept for replay when the upstream closes before answering.
  size_t replay_buffer_limit = 64 * 1024;
  HealthConfig health;
  DiscoveryConfig discovery;
  AdminConfig admin;
  LogFormat log_format = LogFormat::Text;
  int verbosity = 0;

  // Where this configuration came from ("flags", a file path), for logs and check-config.
  std::string source = "flags";

  // Field-by-field, `source` included (compare copies with equal sources to ask "same settings?").
  bool operator==(const Config &) const = default;
};

// How much a file reader checks. All: every field, and the configuration as a whole (the
// cross-field checks and kal::validate(), reported at the file position they come from).
// FieldsOnly: every field alone, nothing across fields: for effective_config(), which lets the
// flags complete what a file leaves open (a client key, a kubeconfig) before the whole is
// validated.
enum class ReaderChecks { All, FieldsOnly };

// Cross-field checks shared by every reader: at least one endpoint and one listener, rise/fall >=
// 1, timeouts > 0, no duplicate listeners or endpoints, listen addresses (listen, admin and
// healthz) that are IP addresses (readers map "localhost" with to_listen_address() first), a
// health path check_health_path() accepts. Returns an error naming the field.
Result<bool> validate(const Config &c);

// The health-check path goes into the request line as it is ("GET <path> HTTP/1.1"), so it must
// start with '/' and hold no spaces or control characters (bytes below 0x21, and 0x7f). Returns
// true, or an error quoting the path and saying what is wrong, for the caller to prefix with where
// the path came from: "\"/readyz x\" must not contain spaces or control characters".
Result<bool> check_health_path(std::string_view path);

} // namespace kal
