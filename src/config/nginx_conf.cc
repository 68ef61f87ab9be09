// What the directives of an nginx.conf mean for kube-api-lb: the Interpreter maps the tree that
// nginx_syntax.h reads onto a Config, ignoring with a note what has no bearing on a TCP proxy and
// refusing what would change its behaviour.
#include "kube_api_lb/config/nginx_conf.h"

#include "config/nginx_syntax.h"
#include "config/reader_common.h"

#include <algorithm>
#include <charconv>
#include <map>
#include <optional>
#include <set>

namespace kal {
namespace {

using Pos = ReaderPos;
using nginx::Directive;
using nginx::Word;

[[noreturn]] void fail(Pos pos, std::string message) { reader_fail(pos, std::move(message)); }

// ---- Semantics ---------------------------------------------------------------------------------

bool has_prefix(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

// Directives of each context that have no bearing on a TCP proxy, with the reason logged.
const std::map<std::string, const char *> kIgnoredMain = {
    {"error_log", "logging is kube-api-lb's own"},
    {"pid", "nginx process setting"},
    {"user", "nginx process setting"},
    {"daemon", "nginx process setting"},
    {"master_process", "nginx process setting"},
    {"worker_processes", "nginx process setting"},
    {"worker_rlimit_nofile", "nginx process setting"},
    {"worker_rlimit_core", "nginx process setting"},
    {"worker_cpu_affinity", "nginx process setting"},
    {"worker_priority", "nginx process setting"},
    {"working_directory", "nginx process setting"},
    {"lock_file", "nginx process setting"},
    {"timer_resolution", "nginx process setting"},
    {"pcre_jit", "nginx process setting"},
    {"thread_pool", "nginx process setting"},
    {"env", "nginx process setting"},
    {"load_module", "nginx module loading"},
    {"ssl_engine", "nginx process setting"},
    {"events", "connection processing is kube-api-lb's own"},
};

const std::map<std::string, const char *> kIgnoredStream = {
    {"access_log", "logging is kube-api-lb's own"},
    {"error_log", "logging is kube-api-lb's own"},
    {"log_format", "logging is kube-api-lb's own"},
    {"open_log_file_cache", "logging is kube-api-lb's own"},
    {"tcp_nodelay", "kube-api-lb always sets TCP_NODELAY"},
    {"resolver", "kube-api-lb uses the system resolver"},
    {"resolver_timeout", "kube-api-lb uses the system resolver"},
    {"variables_hash_max_size", "nginx internals"},
    {"variables_hash_bucket_size", "nginx internals"},
    {"proxy_buffer_size", "kube-api-lb sizes its own buffers"},
    {"preread_buffer_size", "nothing is preread"},
    {"preread_timeout", "nothing is preread"},
    {"proxy_socket_keepalive", "kube-api-lb always enables TCP keepalive (keepaliveIdle)"},
    {"proxy_next_upstream", "kube-api-lb always tries another endpoint when a connect fails"},
    {"proxy_next_upstream_tries", "kube-api-lb bounds connect retries itself"},
    {"proxy_next_upstream_timeout", "kube-api-lb bounds connect retries itself"},
    {"proxy_half_close", "kube-api-lb always forwards half-closes"},
    {"ssl_certificate", "no TLS is terminated (passthrough)"},
    {"ssl_certificate_key", "no TLS is terminated (passthrough)"},
    {"ssl_protocols", "no TLS is terminated (passthrough)"},
    {"ssl_ciphers", "no TLS is terminated (passthrough)"},
    {"ssl_session_cache", "no TLS is terminated (passthrough)"},
    {"ssl_session_timeout", "no TLS is terminated (passthrough)"},
};

// Directives that would change what the proxy does; the reason says why they cannot be honoured.
const std::map<std::string, const char *> kUnsupportedStream = {
    {"ssl_preread", "kube-api-lb does not route on TLS SNI"},
    {"proxy_ssl", "kube-api-lb passes TLS through and never originates it"},
    {"proxy_protocol", "kube-api-lb does not send the PROXY protocol header"},
    {"proxy_bind", "kube-api-lb does not bind outgoing connections to a source address"},
    {"proxy_download_rate", "kube-api-lb does not rate-limit connections"},
    {"proxy_upload_rate", "kube-api-lb does not rate-limit connections"},
    {"limit_conn", "kube-api-lb does not limit connections"},
    {"limit_conn_zone", "kube-api-lb does not limit connections"},
    {"allow", "kube-api-lb has no access control lists"},
    {"deny", "kube-api-lb has no access control lists"},
    {"map", "variables are not supported"},
    {"geo", "variables are not supported"},
    {"split_clients", "variables are not supported"},
    {"set", "variables are not supported"},
    {"return", "kube-api-lb only proxies"},
    {"pass", "kube-api-lb only proxies"},
    {"include", "include files are not read; put everything in one file"},
};

// On/off switches whose "off" is the default and therefore harmless.
bool is_off(const Directive &d) { return d.args.size() == 1 && d.args[0].text == "off"; }

struct StreamServer {
  Pos pos;
  std::vector<HostPort> listen;
  std::vector<Pos> listen_pos;
  std::string target; // upstream name or host:port
  Pos target_pos;
  std::optional<Millis> connect_timeout;
  std::optional<Millis> idle_timeout;
};

struct Upstream {
  Pos pos;
  std::vector<HostPort> servers;
  Policy policy = Policy::RoundRobin;
};

class Interpreter {
public:
  Interpreter(const std::string &file, Config base, std::vector<std::string> *notes,
              ReaderChecks checks)
      : file_(file), c_(std::move(base)), notes_(notes), checks_(checks) {}

  Config run(const std::vector<Directive> &top) {
    bool saw_stream = false;
    for (const auto &d : top) {
      if (d.name == "stream") {
        require_block(d);
        saw_stream = true;
        stream(d);
      } else if (d.name == "http") {
        require_block(d);
        http(d);
      } else if (d.name == "worker_shutdown_timeout") {
        c_.shutdown_grace = time_arg(d);
        note(d.pos,
             "\"worker_shutdown_timeout\" sets shutdownGrace to " + std::string(d.args[0].text));
      } else if (auto it = kIgnoredMain.find(d.name); it != kIgnoredMain.end()) {
        note(d.pos, "ignored " + quote(d.name) + " (" + it->second + ")");
      } else if (d.name == "include") {
        fail(d.pos, "\"include\" is not supported: include files are not read; put everything in "
                    "one file");
      } else if (d.name == "mail") {
        fail(d.pos, "\"mail\" is not supported: kube-api-lb only proxies TCP to apiservers");
      } else {
        fail(d.pos, "unknown directive " + quote(d.name) + " at the top level");
      }
    }
    if (!saw_stream) {
      fail(Pos{}, "no \"stream\" block: nothing to proxy (expected stream { upstream ... { server "
                  "...; } server { listen ...; proxy_pass ...; } })");
    }
    finish();
    return std::move(c_);
  }

private:
  void note(Pos pos, const std::string &text) { reader_note(notes_, file_, &pos, text); }

  void note_file(const std::string &text) { reader_note(notes_, file_, nullptr, text); }

  static void require_block(const Directive &d) {
    if (!d.is_block) {
      fail(d.pos, quote(d.name) + " must be a block: " + d.name + " { ... }");
    }
    if (!d.args.empty() && d.name != "upstream" && d.name != "location") {
      fail(d.args[0].pos, quote(d.name) + " takes no arguments");
    }
  }

  static void require_args(const Directive &d, size_t lo, size_t hi) {
    if (d.is_block) {
      fail(d.pos, quote(d.name) + " is not a block; end it with \";\"");
    }
    if (d.args.size() < lo || d.args.size() > hi) {
      std::string want =
          lo == hi ? std::to_string(lo) : std::to_string(lo) + " to " + std::to_string(hi);
      fail(d.pos, quote(d.name) + " takes " + want + " argument" + (hi == 1 ? "" : "s") + ", got " +
                      std::to_string(d.args.size()));
    }
  }

  static Millis time_arg(const Directive &d) {
    require_args(d, 1, 1);
    auto t = parse_nginx_time(d.args[0].text);
    if (!t) {
      fail(d.args[0].pos, quote(d.name) + ": " + t.error());
    }
    if (t->count() == 0) {
      fail(d.args[0].pos, quote(d.name) + ": must be greater than 0");
    }
    return *t;
  }

  // nginx "listen" addresses: "addr:port", "[v6]:port", "port", "*:port", "addr" (default port);
  // "localhost" means 127.0.0.1 and other host names are errors (to_listen_address).
  static HostPort listen_address(const Word &w, uint16_t default_port) {
    std::string text = w.text;
    if (has_prefix(text, "unix:")) {
      fail(w.pos, "listen " + quote(text) + ": UNIX sockets are not supported");
    }
    {
      auto colon = text.rfind(':');
      std::string port = colon == std::string::npos ? text : text.substr(colon + 1);
      if (port.find('-') != std::string::npos && std::all_of(port.begin(), port.end(), [](char ch) {
            return (ch >= '0' && ch <= '9') || ch == '-';
          })) {
        fail(w.pos, "listen " + quote(w.text) + ": port ranges are not supported");
      }
    }
    if (!text.empty() &&
        std::all_of(text.begin(), text.end(), [](char ch) { return ch >= '0' && ch <= '9'; })) {
      text = "0.0.0.0:" + text;
    } else if (has_prefix(text, "*:")) {
      text = "0.0.0.0" + text.substr(1);
    }
    auto hp = parse_host_port(text, default_port);
    if (hp) {
      hp = to_listen_address(*hp);
    }
    if (!hp) {
      fail(w.pos, "listen: " + hp.error());
    }
    return *hp;
  }

  // ---- stream {} ----

  void stream(const Directive &block) {
    std::optional<Millis> connect, idle;
    for (const auto &d : block.children) {
      if (d.name == "upstream") {
        upstream(d);
      } else if (d.name == "server") {
        require_block(d);
        servers_.push_back(stream_server(d));
      } else if (d.name == "proxy_connect_timeout") {
        connect = time_arg(d);
      } else if (d.name == "proxy_timeout") {
        idle = time_arg(d);
      } else {
        stream_common(d, "stream");
      }
    }
    // Values set on the stream block are inherited by servers that do not set their own.
    for (auto &s : servers_) {
      if (!s.connect_timeout) {
        s.connect_timeout = connect;
      }
      if (!s.idle_timeout) {
        s.idle_timeout = idle;
      }
    }
  }

  // Directives allowed in both stream and stream server context.
  void stream_common(const Directive &d, const char *context) {
    if (auto it = kIgnoredStream.find(d.name); it != kIgnoredStream.end()) {
      note(d.pos, "ignored " + quote(d.name) + " (" + it->second + ")");
      return;
    }
    if (auto it = kUnsupportedStream.find(d.name); it != kUnsupportedStream.end()) {
      if (is_off(d) && d.name != "include" && d.name != "return" && d.name != "pass") {
        note(d.pos, "ignored " + quote(d.name + " off") + " (the default)");
        return;
      }
      fail(d.pos, quote(d.name) + " is not supported: " + it->second);
    }
    if (has_prefix(d.name, "proxy_ssl") || has_prefix(d.name, "js_") ||
        has_prefix(d.name, "ssl_")) {
      fail(d.pos, quote(d.name) + " is not supported: kube-api-lb passes TLS through untouched");
    }
    fail(d.pos, "directive " + quote(d.name) + " is not supported in " + context);
  }

  void upstream(const Directive &d) {
    if (!d.is_block || d.args.size() != 1) {
      fail(d.pos, "\"upstream\" must be written upstream NAME { server HOST:PORT; ... }");
    }
    const std::string &name = d.args[0].text;
    if (upstreams_.count(name)) {
      fail(d.pos, "upstream " + quote(name) + " is defined twice (first at line " +
                      std::to_string(upstreams_[name].pos.line) + ")");
    }
    Upstream u;
    u.pos = d.pos;
    std::optional<Pos> balancer;
    std::vector<std::pair<int, Pos>> weights;
    auto set_policy = [&](Policy p, Pos at) {
      if (balancer) {
        fail(at, "upstream " + quote(name) + ": load-balancing method redefined (first at line " +
                     std::to_string(balancer->line) + ")");
      }
      balancer = at;
      u.policy = p;
    };
    for (const auto &s : d.children) {
      if (s.name == "server") {
        server_line(s, u, weights);
      } else if (s.name == "least_conn") {
        require_args(s, 0, 0);
        set_policy(Policy::LeastConn, s.pos);
      } else if (s.name == "random") {
        require_args(s, 0, 2);
        if (s.args.empty()) {
          note(s.pos, "\"random\" balances as random-two (power of two choices)");
        } else if (s.args[0].text != "two" ||
                   (s.args.size() == 2 && s.args[1].text != "least_conn")) {
          fail(s.pos, "\"random " + s.args.back().text +
                          "\" is not supported (kube-api-lb supports \"random\" and \"random "
                          "two [least_conn]\")");
        }
        set_policy(Policy::RandomTwo, s.pos);
      } else if (s.name == "zone") {
        note(s.pos, "ignored \"zone\" (kube-api-lb shares endpoint state between workers)");
      } else if (s.name == "hash" || s.name == "ip_hash") {
        fail(s.pos, quote(s.name) +
                        " is not supported: kube-api-lb balances by connections, not by key "
                        "(use least_conn, random two, or round-robin)");
      } else if (s.name == "least_time") {
        fail(s.pos, "\"least_time\" is not supported (use least_conn)");
      } else {
        fail(s.pos, "directive " + quote(s.name) + " is not supported in upstream");
      }
    }
    if (u.servers.empty()) {
      fail(d.pos, "upstream " + quote(name) + " has no servers");
    }
    for (const auto &[w, at] : weights) {
      if (w != weights.front().first) {
        fail(at, "server weights differ (" + std::to_string(weights.front().first) + " at line " +
                     std::to_string(weights.front().second.line) + ", " + std::to_string(w) +
                     " here): weighted balancing is not supported");
      }
    }
    upstreams_[name] = std::move(u);
  }

  void server_line(const Directive &s, Upstream &u, std::vector<std::pair<int, Pos>> &weights) {
    if (s.is_block || s.args.empty()) {
      fail(s.pos, "\"server\" in upstream must be written server HOST:PORT [parameters];");
    }
    const Word &addr = s.args[0];
    if (has_prefix(addr.text, "unix:")) {
      fail(addr.pos, "server " + quote(addr.text) + ": UNIX sockets are not supported");
    }
    auto hp = parse_host_port(addr.text);
    if (!hp) {
      fail(addr.pos, "server: " + hp.error());
    }
    int weight = 1;
    bool down = false;
    for (size_t i = 1; i < s.args.size(); ++i) {
      const Word &p = s.args[i];
      auto eq = p.text.find('=');
      std::string key = p.text.substr(0, eq);
      std::string value = eq == std::string::npos ? "" : p.text.substr(eq + 1);
      if (key == "weight" && eq != std::string::npos) {
        auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), weight);
        if (ec != std::errc() || ptr != value.data() + value.size() || weight < 1) {
          fail(p.pos, "server " + addr.text + ": invalid " + quote(p.text));
        }
      } else if ((key == "max_fails" || key == "fail_timeout") && eq != std::string::npos) {
        note(p.pos, "ignored " + quote(p.text) + " on server " + addr.text +
                        " (passive failure counting is replaced by active health checks)");
      } else if (p.text == "down") {
        down = true;
      } else if (p.text == "backup") {
        fail(p.pos, "server " + addr.text +
                        ": \"backup\" is not supported (backup servers would receive traffic "
                        "like the others); remove the server or the parameter");
      } else if (key == "max_conns") {
        fail(p.pos, "server " + addr.text +
                        ": \"max_conns\" is not supported (kube-api-lb does "
                        "not cap connections per endpoint)");
      } else {
        fail(p.pos, "server " + addr.text + ": parameter " + quote(p.text) + " is not supported");
      }
    }
    if (down) {
      note(s.pos, "server " + addr.text + " is marked \"down\": left out of the endpoints");
      return;
    }
    for (const auto &prev : u.servers) {
      if (prev == *hp) {
        fail(addr.pos, "duplicate server " + hp->str() + " in upstream");
      }
    }
    u.servers.push_back(*hp);
    weights.emplace_back(weight, s.pos);
  }

  StreamServer stream_server(const Directive &d) {
    StreamServer s;
    s.pos = d.pos;
    for (const auto &x : d.children) {
      if (x.name == "listen") {
        if (x.is_block || x.args.empty()) {
          fail(x.pos, "\"listen\" must be written listen ADDRESS:PORT [parameters];");
        }
        HostPort hp = listen_address(x.args[0], 0);
        listen_params(x);
        for (const auto &prev : s.listen) {
          if (prev == hp) {
            fail(x.args[0].pos, "duplicate listen " + hp.str());
          }
        }
        s.listen.push_back(hp);
        s.listen_pos.push_back(x.args[0].pos);
      } else if (x.name == "proxy_pass") {
        require_args(x, 1, 1);
        if (!s.target.empty()) {
          fail(x.pos, "\"proxy_pass\" is given twice in one server");
        }
        s.target = x.args[0].text;
        s.target_pos = x.args[0].pos;
        if (s.target.find('$') != std::string::npos) {
          fail(x.args[0].pos, "proxy_pass " + quote(s.target) + ": variables are not supported");
        }
      } else if (x.name == "proxy_connect_timeout") {
        s.connect_timeout = time_arg(x);
      } else if (x.name == "proxy_timeout") {
        s.idle_timeout = time_arg(x);
      } else {
        stream_common(x, "a stream server");
      }
    }
    if (s.listen.empty()) {
      fail(d.pos, "stream server has no \"listen\"");
    }
    if (s.target.empty()) {
      fail(d.pos, "stream server has no \"proxy_pass\"");
    }
    return s;
  }

  void listen_params(const Directive &x) {
    for (size_t i = 1; i < x.args.size(); ++i) {
      const Word &p = x.args[i];
      const std::string key = p.text.substr(0, p.text.find('='));
      if (p.text == "udp" || p.text == "quic") {
        fail(p.pos, "listen " + x.args[0].text + ": " + quote(p.text) +
                        " is not supported (kube-api-lb proxies TCP only)");
      } else if (p.text == "ssl" || p.text == "proxy_protocol") {
        fail(p.pos, "listen " + x.args[0].text + ": " + quote(p.text) + " is not supported" +
                        (p.text == "ssl" ? " (kube-api-lb does not terminate TLS)"
                                         : " (kube-api-lb does not accept the PROXY protocol)"));
      } else if (p.text == "ipv6only=off") {
        fail(p.pos, "listen " + x.args[0].text +
                        ": \"ipv6only=off\" is not supported (listen on 0.0.0.0 and [::] "
                        "separately)");
      } else if (p.text == "default_server" || p.text == "default" || p.text == "reuseport" ||
                 p.text == "bind" || p.text == "deferred" || p.text == "http2" ||
                 p.text == "ipv6only=on" || key == "backlog" || key == "rcvbuf" ||
                 key == "sndbuf" || key == "so_keepalive" || key == "fastopen" ||
                 key == "accept_filter" || key == "setfib") {
        note(p.pos, "ignored listen parameter " + quote(p.text));
      } else {
        fail(p.pos,
             "listen " + x.args[0].text + ": parameter " + quote(p.text) + " is not supported");
      }
    }
  }

  // ---- http {} ----

  void http(const Directive &block) {
    for (const auto &d : block.children) {
      if (d.name != "server") {
        note(d.pos, "ignored " + quote(d.name) + " in http (HTTP settings do not apply)");
        continue;
      }
      require_block(d);
      bool any = false;
      for (const auto &x : d.children) {
        if (x.name == "listen") {
          if (x.is_block || x.args.empty()) {
            fail(x.pos, "\"listen\" must be written listen [ADDRESS:]PORT [parameters];");
          }
          HostPort hp = listen_address(x.args[0], 80);
          listen_params(x);
          any = true;
          if (std::find(healthz_.begin(), healthz_.end(), hp) == healthz_.end()) {
            healthz_.push_back(hp);
            healthz_pos_.push_back(x.args[0].pos);
          }
        } else if (x.name == "ssl" && !is_off(x)) {
          fail(x.pos, "\"ssl on\" is not supported (the health port serves plain HTTP)");
        } else if (x.name == "location") {
          std::string path = x.args.empty() ? "" : x.args.back().text;
          note(x.pos,
               "location " + path +
                   (path == "/healthz" ? " is served by kube-api-lb itself (always 200 while "
                                         "running)"
                                       : " ignored (the health port serves only /healthz)"));
        } else {
          note(x.pos, "ignored " + quote(x.name) + " in http server");
        }
      }
      if (!any) {
        fail(d.pos, "http server has no \"listen\" (nginx would use port 80; write the port)");
      }
    }
  }

  // ---- assembling the Config ----

  // nginx accepts "listen 8081; listen 127.0.0.1:8081;" (the wildcard socket serves both); one
  // socket can be bound, so the specific address is left to the wildcard.
  std::vector<HostPort> drop_covered(const std::vector<HostPort> &in, const std::vector<Pos> &pos) {
    auto covered = covered_by_wildcard(in);
    std::vector<HostPort> out;
    for (size_t i = 0; i < in.size(); ++i) {
      if (std::find(covered.begin(), covered.end(), i) != covered.end()) {
        note(pos[i], "http listen " + in[i].str() +
                         " is covered by a wildcard listen on the same port; left to it");
      } else {
        out.push_back(in[i]);
      }
    }
    return out;
  }

  void finish() {
    if (servers_.empty()) {
      fail(Pos{}, "the \"stream\" block has no \"server\": nothing to proxy");
    }
    const StreamServer &first = servers_.front();
    for (const auto &s : servers_) {
      if (s.target != first.target) {
        fail(s.target_pos, "stream servers proxy to different upstreams (" + quote(first.target) +
                               " at line " + std::to_string(first.target_pos.line) + ", " +
                               quote(s.target) + " here): kube-api-lb has one endpoint set");
      }
      if (s.connect_timeout != first.connect_timeout || s.idle_timeout != first.idle_timeout) {
        fail(s.pos, "stream servers use different proxy timeouts (line " +
                        std::to_string(first.pos.line) + " and here); kube-api-lb has one set");
      }
    }
    std::vector<HostPort> listen;
    std::vector<Pos> listen_pos;
    for (const auto &s : servers_) {
      for (size_t i = 0; i < s.listen.size(); ++i) {
        const HostPort &hp = s.listen[i];
        for (size_t j = 0; j < listen.size(); ++j) {
          if (listeners_overlap(listen[j], hp)) {
            fail(s.listen_pos[i], "listen " + hp.str() + " overlaps listen " + listen[j].str() +
                                      " (line " + std::to_string(listen_pos[j].line) + ")");
          }
        }
        listen.push_back(hp);
        listen_pos.push_back(s.listen_pos[i]);
      }
    }
    Pos anchor = first.target_pos; // where the endpoint set comes from
    if (auto it = upstreams_.find(first.target); it != upstreams_.end()) {
      anchor = it->second.pos;
      c_.endpoints = it->second.servers;
      c_.policy = it->second.policy;
      for (const auto &[name, u] : upstreams_) {
        if (name != first.target) {
          note(u.pos, "upstream " + quote(name) + " is not used by any stream server; ignored");
        }
      }
    } else {
      auto hp = parse_host_port(first.target);
      if (!hp) {
        fail(first.target_pos,
             "proxy_pass " + quote(first.target) + " names no upstream block and is not HOST:PORT");
      }
      c_.endpoints = {*hp};
    }
    c_.listen = listen;
    if (first.connect_timeout) {
      c_.connect_timeout = *first.connect_timeout;
    }
    if (first.idle_timeout) {
      c_.idle_timeout = *first.idle_timeout;
    }
    for (size_t i = 0; i < healthz_.size(); ++i) {
      for (const auto &l : listen) {
        if (listeners_overlap(l, healthz_[i])) {
          fail(healthz_pos_[i],
               "http listen " + healthz_[i].str() + " overlaps stream listen " + l.str());
        }
      }
    }
    c_.admin.healthz_listen = drop_covered(healthz_, healthz_pos_);
    drop_default_admin_for_dropin(c_, notes_, file_);
    // What the whole configuration breaks (too many endpoints, a timeout out of range) is shown
    // at the upstream block it was built from.
    if (auto v = checks_ == ReaderChecks::All ? validate(c_) : Result<bool>(true); !v) {
      fail(anchor, v.error());
    }
  }

  const std::string &file_;
  Config c_;
  std::vector<std::string> *notes_;
  ReaderChecks checks_;
  std::map<std::string, Upstream> upstreams_;
  std::vector<StreamServer> servers_;
  std::vector<HostPort> healthz_;
  std::vector<Pos> healthz_pos_;
};

} // namespace

Result<Config> parse_nginx_conf(std::string_view text, const std::string &file_name, Config base,
                                std::vector<std::string> *notes, ReaderChecks checks) {
  return run_reader(file_name, "nginx configuration", notes, checks,
                    [&](std::vector<std::string> &local) {
                      std::vector<Directive> top = nginx::parse_directives(text);
                      base.source = file_name;
                      return Interpreter(file_name, std::move(base), &local, checks).run(top);
                    });
}

} // namespace kal
