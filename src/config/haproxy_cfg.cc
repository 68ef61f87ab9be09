// One file of ~1,100 lines, on purpose. It is the one reader of haproxy.cfg, and nearly all of it
// is one Interpreter whose two halves (reading the keywords of defaults/frontend/backend/listen
// into the Proxy and Server records below; assembling the Config from them, from "assembling the
// Config" on) share those private records, the notes, and the one error path that names the line.
// A keyword change almost always touches both halves (read it, then map it); split along that seam
// the records would become a header read by exactly these two files. The line splitter (HAProxy's
// quoting) and the server-parameter table are small enough to stay with their only user.
#include "kube_api_lb/config/haproxy_cfg.h"

#include "config/reader_common.h"

#include <algorithm>
#include <charconv>
#include <map>
#include <optional>
#include <set>

namespace kal {
namespace {

using Pos = ReaderPos;

[[noreturn]] void fail(Pos pos, std::string message) { reader_fail(pos, std::move(message)); }

struct Word {
  std::string text;
  Pos pos;
};

struct Line {
  std::vector<Word> words;
  Pos pos;
  bool stray_semicolon = false;
};

// Splits one line the way HAProxy does (parse_line with PARSE_OPT_SHARP): blanks separate words,
// a "#" outside quotes begins a comment wherever it is, also inside a word ("check#primary" is
// "check"), double quotes group (with backslash escapes), single quotes group literally, a
// backslash outside quotes escapes the next character ("\#" is a literal "#").
Line split_line(std::string_view s, int line_no) {
  Line out;
  out.pos = Pos{line_no, 1};
  size_t i = 0;
  auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\r'; };
  bool comment = false;
  while (i < s.size() && !comment) {
    while (i < s.size() && blank(s[i])) {
      ++i;
    }
    if (i >= s.size() || s[i] == '#') {
      break;
    }
    Word w;
    w.pos = Pos{line_no, static_cast<int>(i) + 1};
    bool last_unquoted_semicolon = false;
    while (i < s.size() && !blank(s[i])) {
      char c = s[i];
      if (c == '#') {
        comment = true;
        break;
      }
      last_unquoted_semicolon = false;
      if (c == '"' || c == '\'') {
        size_t start = i++;
        while (i < s.size() && s[i] != c) {
          if (c == '"' && s[i] == '\\' && i + 1 < s.size()) {
            ++i;
          }
          w.text += s[i++];
        }
        if (i >= s.size()) {
          fail(Pos{line_no, static_cast<int>(start) + 1},
               "unterminated quoted string: the quote opened here is never closed");
        }
        ++i;
      } else if (c == '\\' && i + 1 < s.size()) {
        w.text += s[i + 1];
        i += 2;
      } else {
        w.text += c;
        last_unquoted_semicolon = c == ';';
        ++i;
      }
    }
    out.words.push_back(std::move(w));
    // Kubespray renders "bind [::1]:6443;" (kubespray issue #12793); HAProxy has no ";", so an
    // unquoted one ending the line is dropped (and reported as a note).
    if (last_unquoted_semicolon) {
      size_t j = i;
      while (j < s.size() && blank(s[j])) {
        ++j;
      }
      if (j >= s.size() || s[j] == '#') {
        out.words.back().text.pop_back();
        out.stray_semicolon = true;
        if (out.words.back().text.empty()) {
          out.words.pop_back();
        }
      }
    }
  }
  return out;
}

struct Section {
  std::string kind; // global, defaults, frontend, backend, listen, or another HAProxy section
  std::string name;
  Pos pos;
  std::vector<Line> lines;
};

const std::set<std::string> kSectionKeywords = {
    "global", "defaults",    "frontend", "backend",   "listen",      "resolvers",
    "peers",  "userlist",    "mailers",  "program",   "http-errors", "ring",
    "cache",  "log-forward", "traces",   "crt-store", "acme",        "fcgi-app"};

// Server (and default-server) parameters, what we do with each, and whether it takes a value.
enum class Param { Map, Ignore, Unsupported };
struct ParamSpec {
  Param what;
  bool takes_value;
  const char *why; // for Ignore/Unsupported
};
const std::map<std::string, ParamSpec> kServerParams = {
    {"check", {Param::Map, false, ""}},
    {"no-check", {Param::Map, false, ""}},
    {"check-ssl", {Param::Map, false, ""}},
    {"no-check-ssl", {Param::Map, false, ""}},
    {"verify", {Param::Map, true, ""}},
    {"ca-file", {Param::Map, true, ""}},
    {"crt", {Param::Map, true, ""}},
    {"check-sni", {Param::Map, true, ""}},
    {"inter", {Param::Map, true, ""}},
    {"fastinter", {Param::Map, true, ""}},
    {"downinter", {Param::Map, true, ""}},
    {"rise", {Param::Map, true, ""}},
    {"fall", {Param::Map, true, ""}},
    {"slowstart", {Param::Map, true, ""}},
    {"weight", {Param::Map, true, ""}},
    {"disabled", {Param::Map, false, ""}},
    {"enabled", {Param::Map, false, ""}},
    {"maxconn", {Param::Ignore, true, "no per-endpoint connection cap"}},
    {"maxqueue", {Param::Ignore, true, "no connection queue"}},
    {"minconn", {Param::Ignore, true, "no per-endpoint connection cap"}},
    {"id", {Param::Ignore, true, "HAProxy internal id"}},
    {"cookie", {Param::Ignore, true, "HTTP-only"}},
    {"observe", {Param::Ignore, true, "active health checks decide"}},
    {"error-limit", {Param::Ignore, true, "active health checks decide"}},
    {"on-error", {Param::Ignore, true, "active health checks decide"}},
    {"on-marked-down",
     {Param::Ignore, true, "kube-api-lb's own handling of down endpoints applies"}},
    {"on-marked-up",
     {Param::Ignore, true, "kube-api-lb's own handling of recovered endpoints applies"}},
    {"init-addr", {Param::Ignore, true, "names are resolved by the system resolver"}},
    {"resolvers", {Param::Ignore, true, "names are resolved by the system resolver"}},
    {"resolve-prefer", {Param::Ignore, true, "names are resolved by the system resolver"}},
    {"resolve-opts", {Param::Ignore, true, "names are resolved by the system resolver"}},
    {"tfo", {Param::Ignore, false, "socket tuning"}},
    {"pool-max-conn", {Param::Ignore, true, "no connection pooling"}},
    {"pool-purge-delay", {Param::Ignore, true, "no connection pooling"}},
    {"pool-low-conn", {Param::Ignore, true, "no connection pooling"}},
    {"log-proto", {Param::Ignore, true, "logging is kube-api-lb's own"}},
    {"backup", {Param::Unsupported, false, "backup servers would receive traffic like the others"}},
    {"ssl", {Param::Unsupported, false, "kube-api-lb passes TLS through and never originates it"}},
    {"send-proxy", {Param::Unsupported, false, "the PROXY protocol is not sent"}},
    {"send-proxy-v2", {Param::Unsupported, false, "the PROXY protocol is not sent"}},
    {"send-proxy-v2-ssl", {Param::Unsupported, false, "the PROXY protocol is not sent"}},
    {"check-send-proxy", {Param::Unsupported, false, "the PROXY protocol is not sent"}},
    {"port", {Param::Unsupported, true, "checks go to the endpoint's own port"}},
    {"addr", {Param::Unsupported, true, "checks go to the endpoint's own address"}},
    {"agent-check", {Param::Unsupported, false, "agent checks are not supported"}},
    {"agent-port", {Param::Unsupported, true, "agent checks are not supported"}},
    {"agent-inter", {Param::Unsupported, true, "agent checks are not supported"}},
    {"agent-send", {Param::Unsupported, true, "agent checks are not supported"}},
    {"check-alpn", {Param::Unsupported, true, "checks speak HTTP/1.1"}},
    {"check-proto", {Param::Unsupported, true, "checks speak HTTP/1.1"}},
    {"track", {Param::Unsupported, true, "every endpoint is checked on its own"}},
    {"source", {Param::Unsupported, true, "outgoing connections are not bound to a source"}},
    {"usesrc", {Param::Unsupported, true, "outgoing connections are not bound to a source"}},
    {"redir", {Param::Unsupported, true, "HTTP-only"}},
};

struct ServerParams {
  std::optional<bool> check, check_ssl, disabled;
  std::optional<std::string> verify, ca_file, crt, check_sni;
  std::optional<Millis> inter, fastinter, downinter, slowstart;
  std::optional<int> rise, fall, weight;
  Pos check_pos;

  // `over` wins where it says something.
  static ServerParams merge(const ServerParams &under, const ServerParams &over) {
    ServerParams m = under;
    auto take = [](auto &dst, const auto &src) {
      if (src) {
        dst = src;
      }
    };
    take(m.check, over.check);
    take(m.check_ssl, over.check_ssl);
    take(m.disabled, over.disabled);
    take(m.verify, over.verify);
    take(m.ca_file, over.ca_file);
    take(m.crt, over.crt);
    take(m.check_sni, over.check_sni);
    take(m.inter, over.inter);
    take(m.fastinter, over.fastinter);
    take(m.downinter, over.downinter);
    take(m.slowstart, over.slowstart);
    take(m.rise, over.rise);
    take(m.fall, over.fall);
    take(m.weight, over.weight);
    if (over.check) {
      m.check_pos = over.check_pos;
    }
    return m;
  }
};

struct Server {
  std::string name;
  HostPort addr;
  Pos pos;
  ServerParams params;
};

struct HttpCheck {
  std::string path;
  Pos pos;
};

// Settings a defaults section hands down to the proxies after it.
struct Proxy {
  std::string kind, name;
  Pos pos;
  std::string mode = "tcp"; // HAProxy's default mode
  std::optional<std::pair<Policy, Pos>> balance;
  std::optional<HttpCheck> httpchk;
  std::optional<Pos> ssl_hello_chk, tcp_check;
  std::optional<Millis> timeout_connect, timeout_check;
  ServerParams default_server;
  // Frontend parts.
  std::vector<std::pair<HostPort, Pos>> binds;
  std::optional<std::pair<std::string, Pos>> default_backend;
  std::optional<std::pair<std::string, Pos>> monitor_uri;
  bool stats = false;
  // Backend parts.
  std::vector<Server> servers;
};

class Interpreter {
public:
  Interpreter(const std::string &file, Config base, std::vector<std::string> *notes,
              ReaderChecks checks)
      : file_(file), c_(std::move(base)), notes_(notes), checks_(checks) {}

  Config run(const std::vector<Section> &sections) {
    Proxy defaults;
    defaults.kind = "defaults";
    for (const auto &s : sections) {
      if (s.kind == "global") {
        for (const auto &l : s.lines) {
          note(l.pos, "ignored " + quote(l.words[0].text) + " in global (HAProxy process setting)");
        }
      } else if (s.kind == "defaults") {
        defaults = Proxy{};
        defaults.kind = "defaults";
        defaults.pos = s.pos;
        for (const auto &l : s.lines) {
          keyword(defaults, l);
        }
      } else if (s.kind == "frontend" || s.kind == "backend" || s.kind == "listen") {
        Proxy p = defaults;
        p.kind = s.kind;
        p.name = s.name;
        p.pos = s.pos;
        p.binds.clear();
        p.servers.clear();
        if (s.name.empty()) {
          fail(s.pos, quote(s.kind) + " needs a name");
        }
        for (const auto &l : s.lines) {
          keyword(p, l);
        }
        if (s.kind != "frontend" && backends_.count(s.name)) {
          fail(s.pos, s.kind + " " + quote(s.name) + " is defined twice");
        }
        if (s.kind != "frontend") {
          backends_[s.name] = p;
        }
        proxies_.push_back(std::move(p));
      } else {
        note(s.pos, "ignored section " + quote(s.kind) + " (not relevant to a TCP proxy)");
      }
    }
    finish();
    return std::move(c_);
  }

private:
  void note(Pos pos, const std::string &text) { reader_note(notes_, file_, &pos, text); }
  void note_file(const std::string &text) { reader_note(notes_, file_, nullptr, text); }

  static const Word &arg(const Line &l, size_t i, const char *what) {
    if (i >= l.words.size()) {
      fail(l.words[0].pos, quote(l.words[0].text) + " needs " + what);
    }
    return l.words[i];
  }

  static Millis time_of(const Word &w, const std::string &what, bool allow_zero) {
    auto t = parse_haproxy_time(w.text);
    if (!t) {
      fail(w.pos, what + ": " + t.error());
    }
    if (!allow_zero && t->count() == 0) {
      fail(w.pos, what + ": must be greater than 0");
    }
    return *t;
  }

  static int int_of(const Word &w, const std::string &what, int lo, int hi) {
    int v = 0;
    auto [ptr, ec] = std::from_chars(w.text.data(), w.text.data() + w.text.size(), v);
    if (ec != std::errc() || ptr != w.text.data() + w.text.size()) {
      fail(w.pos, what + ": expected a number, got " + quote(w.text));
    }
    if (v < lo || v > hi) {
      fail(w.pos, what + ": " + w.text + " is out of range (" + std::to_string(lo) + "-" +
                      std::to_string(hi) + ")");
    }
    return v;
  }

  // One keyword line inside defaults / frontend / backend / listen.
  void keyword(Proxy &p, const Line &l) {
    const std::string &k = l.words[0].text;
    const Pos at = l.words[0].pos;
    const bool is_defaults = p.kind == "defaults";
    const bool can_front = p.kind == "frontend" || p.kind == "listen";
    const bool can_back = p.kind == "backend" || p.kind == "listen" || is_defaults;
    auto ignored = [&](const char *why) {
      note(at, "ignored " + quote(k) + " in " + p.kind + " (" + why + ")");
    };
    auto misplaced = [&]() { fail(at, quote(k) + " is not allowed in a " + p.kind + " section"); };
    if (l.stray_semicolon) {
      note(l.pos, "stray \";\" at the end of the line ignored (Kubespray issue #12793)");
    }

    if (k == "mode") {
      const std::string &m = arg(l, 1, "tcp or http").text;
      if (m != "tcp" && m != "http") {
        fail(l.words[1].pos, "mode " + quote(m) + " is not supported (tcp or http)");
      }
      p.mode = m;
    } else if (k == "bind") {
      if (!can_front) {
        misplaced();
      }
      bind(p, l);
    } else if (k == "default_backend") {
      if (!can_front && !is_defaults) {
        misplaced();
      }
      p.default_backend = std::make_pair(arg(l, 1, "a backend name").text, l.words[1].pos);
    } else if (k == "use_backend") {
      fail(at, "\"use_backend\" is not supported: kube-api-lb has one endpoint set (use "
               "default_backend)");
    } else if (k == "monitor-uri") {
      if (!can_front) {
        misplaced();
      }
      p.monitor_uri = std::make_pair(arg(l, 1, "a path").text, l.words[1].pos);
    } else if (k == "monitor") {
      fail(at, "\"monitor " + (l.words.size() > 1 ? l.words[1].text : std::string()) +
                   "\" is not supported: /healthz always answers 200 while kube-api-lb runs");
    } else if (k == "stats") {
      p.stats = true;
      ignored("kube-api-lb has /metrics and /stats of its own");
    } else if (k == "balance") {
      if (!can_back) {
        misplaced();
      }
      p.balance = std::make_pair(balance(l), at);
    } else if (k == "default-server") {
      if (!can_back) {
        misplaced();
      }
      p.default_server =
          ServerParams::merge(p.default_server, server_params(l, 1, "default-server"));
    } else if (k == "server") {
      if (!can_back || is_defaults) {
        misplaced();
      }
      server(p, l);
    } else if (k == "server-template") {
      fail(at, "\"server-template\" is not supported: list the servers one by one");
    } else if (k == "timeout" || k == "contimeout" || k == "srvtimeout" || k == "clitimeout") {
      std::string which = k == "timeout"      ? arg(l, 1, "a timeout name").text
                          : k == "contimeout" ? "connect"
                          : k == "srvtimeout" ? "server"
                                              : "client";
      const Word &value = arg(l, k == "timeout" ? 2 : 1, "a time");
      if (which == "connect") {
        p.timeout_connect = time_of(value, "timeout connect", false);
      } else if (which == "check") {
        p.timeout_check = time_of(value, "timeout check", false);
      } else {
        time_of(value, "timeout " + which, true);
        const bool idle = which == "client" || which == "server" || which == "tunnel";
        const bool fin = which == "client-fin" || which == "server-fin";
        note(at, "ignored \"timeout " + which + "\" in " + p.kind +
                     (idle  ? " (kube-api-lb's idleTimeout applies: none by default, so watches "
                              "live)"
                      : fin ? " (kube-api-lb's halfClosedTimeout applies: 5m by default)"
                            : " (not relevant to a TCP proxy)"));
      }
    } else if (k == "option" || k == "no") {
      option(p, l);
    } else if (k == "http-check") {
      http_check(p, l);
    } else if (k == "tcp-check") {
      fail(at, "\"tcp-check\" rules are not supported (checks are TCP connect, TLS handshake or "
               "HTTPS GET)");
    } else if (k == "log" || k == "maxconn" || k == "fullconn" || k == "description" || k == "id" ||
               k == "retries" || k == "hash-type" || k == "log-format" || k == "log-tag" ||
               k == "backlog" || k == "rate-limit" || k == "errorfile" || k == "cookie" ||
               k == "compression" || k == "unique-id-format" || k == "capture" ||
               k == "email-alert" || k == "max-keep-alive-queue" || k == "retry-on" ||
               k == "disabled" || k == "enabled" || k == "acl") {
      if (k == "disabled") {
        fail(at, "\"disabled\" is not supported: remove the section instead");
      }
      ignored(k == "retries" ? "kube-api-lb retries a failed connect on another endpoint"
              : k == "acl"   ? "only used by rules, which are not supported"
                             : "not relevant to a TCP proxy");
    } else if (k == "tcp-request" || k == "tcp-response" || k == "http-request" ||
               k == "http-response" || k == "http-after-response" || k == "stick" ||
               k == "stick-table" || k == "redirect" || k == "errorloc" || k == "force-persist" ||
               k == "ignore-persist" || k == "source" || k == "dispatch" || k == "filter") {
      if (p.mode == "http" &&
          (k == "http-request" || k == "http-response" || k == "http-after-response") &&
          !can_back) {
        ignored("HTTP-only");
        return;
      }
      fail(at, quote(k) + " is not supported: it would change how connections are routed");
    } else {
      fail(at, "unknown keyword " + quote(k) + " in " + p.kind);
    }
  }

  Policy balance(const Line &l) {
    const Word &w = arg(l, 1, "an algorithm");
    const std::string &b = w.text;
    if (b == "leastconn") {
      return Policy::LeastConn;
    }
    if (b == "roundrobin") {
      return Policy::RoundRobin;
    }
    if (b == "static-rr") {
      note(w.pos, "\"balance static-rr\" balances as round-robin");
      return Policy::RoundRobin;
    }
    if (b == "first") {
      return Policy::First;
    }
    if (b == "random" || b == "random(2)") {
      return Policy::RandomTwo;
    }
    if (b.rfind("random(", 0) == 0) {
      note(w.pos, quote(b) + " balances as random-two (power of two choices)");
      return Policy::RandomTwo;
    }
    fail(w.pos, "balance " + quote(b) +
                    " is not supported: kube-api-lb balances by connections, not by key (use "
                    "leastconn, roundrobin, first or random)");
  }

  void option(Proxy &p, const Line &l) {
    const bool negated = l.words[0].text == "no";
    size_t i = negated ? 2 : 1;
    if (negated && (l.words.size() < 2 || l.words[1].text != "option")) {
      fail(l.words[0].pos, "\"no\" must be followed by \"option\"");
    }
    const Word &w = arg(l, i, "an option name");
    const std::string &o = w.text;
    if (o == "httpchk") {
      if (negated) {
        p.httpchk.reset();
        return;
      }
      // option httpchk [<uri>] | <method> <uri> [<version>]
      std::string method = "OPTIONS", uri = "/";
      size_t n = l.words.size() - i - 1;
      if (n == 1) {
        uri = l.words[i + 1].text;
      } else if (n >= 2) {
        method = l.words[i + 1].text;
        uri = l.words[i + 2].text;
      }
      if (method != "GET" && method != "HEAD" && method != "OPTIONS") {
        fail(l.words[i + 1].pos,
             "option httpchk: method " + quote(method) + " is not supported (checks send GET)");
      }
      if (method != "GET") {
        note(w.pos, "option httpchk: checks send GET instead of " + method);
      }
      if (auto ok = check_health_path(uri); !ok) {
        fail(w.pos, "option httpchk: path " + ok.error());
      }
      p.httpchk = HttpCheck{uri, w.pos};
    } else if (o == "ssl-hello-chk") {
      p.ssl_hello_chk = w.pos;
    } else if (o == "tcp-check") {
      p.tcp_check = w.pos;
    } else if (o == "mysql-check" || o == "pgsql-check" || o == "redis-check" || o == "smtpchk" ||
               o == "ldap-check" || o == "spop-check" || o == "external-check") {
      fail(w.pos, "option " + o +
                      " is not supported (checks are TCP connect, TLS handshake or "
                      "HTTPS GET)");
    } else if (o == "transparent" || o == "http_proxy" || o == "persist" || o == "allbackups") {
      fail(w.pos, "option " + o + " is not supported: it would change how connections are routed");
    } else {
      // Logging, HTTP-mode and socket options have no bearing on a TCP passthrough proxy.
      note(w.pos, "ignored \"option " + o + "\" in " + p.kind + " (not relevant to a TCP proxy)");
    }
  }

  void http_check(Proxy &p, const Line &l) {
    const Word &w = arg(l, 1, "a directive");
    if (w.text == "expect") {
      // kube-api-lb passes a check on status 200 only.
      if (l.words.size() == 4 && l.words[2].text == "status" && l.words[3].text == "200") {
        return;
      }
      fail(w.pos, "\"http-check expect\" supports only \"status 200\" (kube-api-lb expects "
                  "200 from the check path)");
    }
    if (w.text == "send") {
      // http-check send [meth <method>] [uri <uri>] [ver <version>] [hdr <name> <value>]*
      for (size_t i = 2; i < l.words.size(); ++i) {
        const Word &k = l.words[i];
        if (k.text == "hdr") {
          if (i + 2 >= l.words.size()) {
            fail(k.pos, "http-check send: \"hdr\" needs a name and a value");
          }
          note(k.pos, "http-check send: ignored header " + quote(l.words[i + 1].text) +
                          " (checks send their own Host, User-Agent and Accept headers)");
          i += 2;
          continue;
        }
        if (k.text != "meth" && k.text != "uri" && k.text != "ver") {
          fail(k.pos, "http-check send: " + quote(k.text) + " is not supported");
        }
        if (i + 1 >= l.words.size()) {
          fail(k.pos, "http-check send: " + quote(k.text) + " needs a value");
        }
        const Word &value = l.words[++i];
        if (k.text == "meth" && value.text != "GET") {
          fail(value.pos, "http-check send: method " + quote(value.text) +
                              " is not supported (checks send GET)");
        } else if (k.text == "uri") {
          if (auto ok = check_health_path(value.text); !ok) {
            fail(value.pos, "http-check send: path " + ok.error());
          }
          if (!p.httpchk) {
            p.httpchk = HttpCheck{"/", w.pos};
          }
          p.httpchk->path = value.text;
        }
      }
      return;
    }
    fail(w.pos, "\"http-check " + w.text + "\" is not supported");
  }

  // "bind <addr>[,<addr>...] [options]"; "localhost" means 127.0.0.1 and other host names are
  // errors (to_listen_address).
  void bind(Proxy &p, const Line &l) {
    const Word &w = arg(l, 1, "an address");
    size_t start = 0;
    while (start <= w.text.size()) {
      size_t comma = w.text.find(',', start);
      std::string item =
          w.text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
      Pos item_pos{w.pos.line, w.pos.col + static_cast<int>(start)};
      auto listen = to_listen_address(bind_address(item, item_pos));
      if (!listen) {
        fail(item_pos, "bind: " + listen.error());
      }
      const HostPort hp = *listen;
      for (const auto &[prev, prev_pos] : p.binds) {
        if (prev == hp) {
          fail(item_pos, "duplicate bind " + hp.str() + " (first at line " +
                             std::to_string(prev_pos.line) + ")");
        }
      }
      p.binds.emplace_back(hp, item_pos);
      if (comma == std::string::npos) {
        break;
      }
      start = comma + 1;
    }
    static const std::set<std::string> ignored_flags = {"v6only", "tfo", "defer-accept",
                                                        "transparent-off"};
    static const std::set<std::string> ignored_valued = {"name",    "process", "thread", "backlog",
                                                         "maxconn", "nice",    "id",     "mss"};
    for (size_t i = 2; i < l.words.size(); ++i) {
      const Word &o = l.words[i];
      if (ignored_flags.count(o.text)) {
        note(o.pos, "ignored bind option " + quote(o.text));
      } else if (ignored_valued.count(o.text)) {
        note(o.pos, "ignored bind option " + quote(o.text));
        ++i;
      } else if (o.text == "ssl" || o.text == "crt" || o.text == "ca-file" ||
                 o.text == "accept-proxy" || o.text == "transparent" || o.text == "v4v6" ||
                 o.text == "interface" || o.text == "namespace") {
        const char *why = o.text == "accept-proxy" ? "the PROXY protocol is not accepted"
                          : o.text == "v4v6"       ? "bind 0.0.0.0 and [::] separately"
                          : o.text == "interface" || o.text == "namespace"
                              ? "bind an address instead"
                          : o.text == "transparent" ? "transparent proxying is not supported"
                                                    : "kube-api-lb does not terminate TLS";
        fail(o.pos, "bind option " + quote(o.text) + " is not supported (" + why + ")");
      } else {
        fail(o.pos, "bind option " + quote(o.text) + " is not supported");
      }
    }
  }

  // HAProxy addresses: "ip:port", "[v6]:port", ":port" and "*:port" (all IPv4), unbracketed IPv6
  // with the port after the last colon, optional "ipv4@"/"ipv6@" prefixes.
  static HostPort bind_address(std::string text, Pos pos) {
    const std::string original = text;
    for (const char *prefix : {"ipv4@", "ipv6@", "tcp@", "tcp4@", "tcp6@"}) {
      if (text.rfind(prefix, 0) == 0) {
        text = text.substr(std::string(prefix).size());
      }
    }
    if (text.find('@') != std::string::npos || (!text.empty() && text.front() == '/')) {
      fail(pos, "address " + quote(original) + " is not supported (TCP addresses only)");
    }
    auto colon = text.rfind(':');
    if (colon == std::string::npos) {
      fail(pos, "address " + quote(original) + ": missing port (expected ADDRESS:PORT)");
    }
    std::string host = text.substr(0, colon);
    std::string port = text.substr(colon + 1);
    if (port.find('-') != std::string::npos) {
      fail(pos, "address " + quote(original) + ": port ranges are not supported");
    }
    if (host.empty() || host == "*") {
      host = "0.0.0.0";
    }
    if (host.front() != '[' && host.find(':') != std::string::npos) {
      host = "[" + host + "]";
    }
    auto hp = parse_host_port(host + ":" + port);
    if (!hp) {
      fail(pos, hp.error());
    }
    return *hp;
  }

  ServerParams server_params(const Line &l, size_t from, const std::string &who) {
    ServerParams sp;
    for (size_t i = from; i < l.words.size(); ++i) {
      const Word &w = l.words[i];
      auto it = kServerParams.find(w.text);
      if (it == kServerParams.end()) {
        fail(w.pos, who + ": parameter " + quote(w.text) + " is not supported");
      }
      const ParamSpec &spec = it->second;
      const Word *value = nullptr;
      if (spec.takes_value) {
        if (i + 1 >= l.words.size()) {
          fail(w.pos, who + ": " + quote(w.text) + " needs a value");
        }
        value = &l.words[++i];
      }
      if (spec.what == Param::Unsupported) {
        fail(w.pos, who + ": " + quote(w.text) + " is not supported (" + spec.why + ")");
      }
      if (spec.what == Param::Ignore) {
        note(w.pos, who + ": ignored " + quote(w.text) + " (" + spec.why + ")");
        continue;
      }
      const std::string &k = w.text;
      const std::string what = who + " " + k;
      if (k == "check" || k == "no-check") {
        sp.check = k == "check";
        sp.check_pos = w.pos;
      } else if (k == "check-ssl" || k == "no-check-ssl") {
        sp.check_ssl = k == "check-ssl";
      } else if (k == "disabled" || k == "enabled") {
        sp.disabled = k == "disabled";
      } else if (k == "verify") {
        if (value->text != "none" && value->text != "required") {
          fail(value->pos, what + ": expected none or required, got " + quote(value->text));
        }
        sp.verify = value->text;
      } else if (k == "ca-file") {
        sp.ca_file = value->text;
      } else if (k == "crt") {
        sp.crt = value->text;
      } else if (k == "check-sni") {
        sp.check_sni = value->text;
      } else if (k == "inter") {
        sp.inter = time_of(*value, what, false);
      } else if (k == "fastinter") {
        sp.fastinter = time_of(*value, what, false);
      } else if (k == "downinter") {
        sp.downinter = time_of(*value, what, false);
      } else if (k == "slowstart") {
        sp.slowstart = time_of(*value, what, true);
      } else if (k == "rise") {
        sp.rise = int_of(*value, what, 1, 100);
      } else if (k == "fall") {
        sp.fall = int_of(*value, what, 1, 100);
      } else if (k == "weight") {
        sp.weight = int_of(*value, what, 0, 256);
      }
    }
    return sp;
  }

  void server(Proxy &p, const Line &l) {
    const Word &name = arg(l, 1, "a name and an address");
    const Word &addr = arg(l, 2, "an address");
    Server s;
    s.name = name.text;
    s.pos = l.words[0].pos;
    std::string text = addr.text;
    auto colon = text.rfind(':');
    if (colon == std::string::npos || colon + 1 == text.size()) {
      fail(addr.pos, "server " + name.text + ": address " + quote(text) +
                         " has no port (HAProxy would reuse the client's port; write it out)");
    }
    if (text[colon + 1] == '+' || text[colon + 1] == '-') {
      fail(addr.pos, "server " + name.text + ": port offsets are not supported");
    }
    s.addr = bind_address(text, addr.pos);
    if (text.rfind("0.0.0.0:", 0) == 0 || text.rfind("*:", 0) == 0 || text.rfind(":", 0) == 0) {
      fail(addr.pos, "server " + name.text + ": " + quote(text) + " is not a server address");
    }
    for (const auto &prev : p.servers) {
      if (prev.name == s.name) {
        fail(name.pos,
             "server name " + quote(s.name) + " is used twice in " + p.kind + " " + quote(p.name));
      }
      if (prev.addr == s.addr) {
        fail(addr.pos, "server " + s.name + ": duplicate address " + s.addr.str() + " (server " +
                           prev.name + ")");
      }
    }
    s.params = ServerParams::merge(p.default_server, server_params(l, 3, "server " + s.name));
    p.servers.push_back(std::move(s));
  }

  // ---- assembling the Config ----

  void finish() {
    const Proxy *tcp_front = nullptr;
    std::vector<std::pair<HostPort, Pos>> listen, healthz;
    std::string backend_name;
    Pos backend_ref;
    for (const auto &p : proxies_) {
      const bool front = p.kind == "frontend" || p.kind == "listen";
      if (!front) {
        continue;
      }
      if (p.monitor_uri) {
        if (p.monitor_uri->first != "/healthz") {
          fail(p.monitor_uri->second, "monitor-uri " + quote(p.monitor_uri->first) +
                                          " is not supported: the health port serves /healthz");
        }
        if (p.kind == "listen" && !p.servers.empty()) {
          fail(p.pos, "listen " + quote(p.name) + " mixes monitor-uri and servers");
        }
        healthz.insert(healthz.end(), p.binds.begin(), p.binds.end());
        continue;
      }
      if (p.mode == "http") {
        if (p.stats || p.binds.empty()) {
          note(p.pos, "ignored " + p.kind + " " + quote(p.name) + " (HTTP statistics page)");
          continue;
        }
        fail(p.pos, p.kind + " " + quote(p.name) +
                        " is in mode http: kube-api-lb is a TCP proxy (use mode tcp)");
      }
      if (p.binds.empty()) {
        if (p.kind == "listen") {
          note(p.pos, "ignored listen " + quote(p.name) + " (no bind)");
          continue;
        }
        fail(p.pos, "frontend " + quote(p.name) + " has no bind");
      }
      std::string target;
      Pos target_pos = p.pos;
      if (p.kind == "listen") {
        target = p.name;
      } else if (p.default_backend) {
        target = p.default_backend->first;
        target_pos = p.default_backend->second;
      } else {
        fail(p.pos, "frontend " + quote(p.name) + " has no default_backend");
      }
      if (tcp_front && target != backend_name) {
        fail(target_pos, p.kind + " " + quote(p.name) + " sends to " + quote(target) + " but " +
                             tcp_front->kind + " " + quote(tcp_front->name) + " (line " +
                             std::to_string(tcp_front->pos.line) + ") sends to " +
                             quote(backend_name) + ": kube-api-lb has one endpoint set");
      }
      if (!tcp_front) {
        tcp_front = &p;
        backend_name = target;
        backend_ref = target_pos;
      }
      listen.insert(listen.end(), p.binds.begin(), p.binds.end());
    }
    if (!tcp_front) {
      fail(Pos{}, "no TCP frontend: nothing to proxy (expected a frontend with mode tcp, bind "
                  "and default_backend)");
    }
    auto it = backends_.find(backend_name);
    if (it == backends_.end()) {
      fail(backend_ref, "backend " + quote(backend_name) + " is not defined");
    }
    const Proxy &b = it->second;
    for (const auto &[name, other] : backends_) {
      if (name != backend_name && other.kind == "backend") {
        note(other.pos, "backend " + quote(name) + " is not used by any TCP frontend; ignored");
      }
    }
    if (b.mode != "tcp") {
      fail(b.pos, "backend " + quote(b.name) + " is in mode " + b.mode +
                      ": kube-api-lb is a TCP proxy (use mode tcp)");
    }
    backend(b);
    if (auto o = first_overlap(listen, [](const auto &bind) { return bind.first; })) {
      const auto &[i, j] = *o;
      fail(listen[i].second, "bind " + listen[i].first.str() + " overlaps bind " +
                                 listen[j].first.str() + " (line " +
                                 std::to_string(listen[j].second.line) + ")");
    }
    c_.listen.clear();
    for (const auto &bind : listen) {
      c_.listen.push_back(bind.first);
    }
    c_.admin.healthz_listen.clear();
    {
      std::vector<HostPort> plain;
      for (const auto &[h, hpos] : healthz) {
        plain.push_back(h);
      }
      auto covered = covered_by_wildcard(plain);
      for (size_t i = covered.size(); i-- > 0;) {
        note(healthz[covered[i]].second,
             "monitor bind " + plain[covered[i]].str() +
                 " is covered by a wildcard bind on the same port; left to it");
        healthz.erase(healthz.begin() + static_cast<std::ptrdiff_t>(covered[i]));
      }
    }
    for (const auto &[h, hpos] : healthz) {
      for (const auto &l : c_.listen) {
        if (listeners_overlap(l, h)) {
          fail(hpos, "monitor bind " + h.str() + " overlaps TCP bind " + l.str());
        }
      }
      if (std::find(c_.admin.healthz_listen.begin(), c_.admin.healthz_listen.end(), h) ==
          c_.admin.healthz_listen.end()) {
        c_.admin.healthz_listen.push_back(h);
      }
    }
    drop_default_admin_for_dropin(c_, notes_, file_);
    // What the whole configuration breaks (too many endpoints, a timeout out of range) is shown
    // at the backend it was built from.
    if (auto v = checks_ == ReaderChecks::All ? validate(c_) : Result<bool>(true); !v) {
      fail(b.pos, v.error());
    }
  }

  void backend(const Proxy &b) {
    if (b.balance) {
      c_.policy = b.balance->first;
    } else {
      c_.policy = Policy::RoundRobin; // HAProxy's default
    }
    if (b.timeout_connect) {
      c_.connect_timeout = *b.timeout_connect;
    }
    std::vector<const Server *> active;
    for (const auto &s : b.servers) {
      if (s.params.disabled.value_or(false)) {
        note(s.pos, "server " + s.name + " is disabled: left out of the endpoints");
        continue;
      }
      if (s.params.weight && *s.params.weight == 0) {
        note(s.pos, "server " + s.name + " has weight 0: left out of the endpoints");
        continue;
      }
      active.push_back(&s);
    }
    if (active.empty()) {
      fail(b.pos, "backend " + quote(b.name) + " has no (enabled) servers");
    }
    c_.endpoints.clear();
    for (const auto *s : active) {
      c_.endpoints.push_back(s->addr);
    }
    // kube-api-lb has one health-check setting for all endpoints: the servers must agree.
    const Server &first = *active.front();
    auto same = [&](const char *what, auto get) {
      for (const auto *s : active) {
        if (get(s->params) != get(first.params)) {
          fail(s->pos, "server " + s->name + ": " + what + " differs from server " + first.name +
                           " (line " + std::to_string(first.pos.line) +
                           "); kube-api-lb applies one health-check setting to every endpoint");
        }
      }
    };
    same("check", [](const ServerParams &p) { return p.check.value_or(false); });
    same("check-ssl", [](const ServerParams &p) { return p.check_ssl.value_or(false); });
    same("inter", [](const ServerParams &p) { return p.inter; });
    same("fastinter", [](const ServerParams &p) { return p.fastinter; });
    same("downinter", [](const ServerParams &p) { return p.downinter; });
    same("rise", [](const ServerParams &p) { return p.rise; });
    same("fall", [](const ServerParams &p) { return p.fall; });
    same("slowstart", [](const ServerParams &p) { return p.slowstart; });
    same("verify", [](const ServerParams &p) { return p.verify; });
    same("ca-file", [](const ServerParams &p) { return p.ca_file; });
    same("crt", [](const ServerParams &p) { return p.crt; });
    same("check-sni", [](const ServerParams &p) { return p.check_sni; });
    same("weight", [](const ServerParams &p) { return p.weight.value_or(1); });

    const ServerParams &sp = first.params;
    HealthConfig &h = c_.health;
    const bool check = sp.check.value_or(false);
    const bool ssl = sp.check_ssl.value_or(false);
    if (!check) {
      h.mode = HealthMode::None;
      note(b.pos, "backend " + quote(b.name) + ": servers have no \"check\": health checks off");
      return;
    }
    if (b.tcp_check && (b.httpchk || b.ssl_hello_chk)) {
      fail(*b.tcp_check, "option tcp-check conflicts with another check option");
    }
    if (b.httpchk && ssl) {
      h.mode = HealthMode::Https;
      h.path = b.httpchk->path;
    } else if (b.httpchk) {
      h.mode = HealthMode::Tcp;
      note(b.httpchk->pos, "option httpchk without check-ssl: apiservers speak only TLS, so "
                           "plain-HTTP checks become TCP connect checks (add check-ssl for "
                           "HTTPS checks)");
    } else if (ssl || b.ssl_hello_chk) {
      h.mode = HealthMode::Tls;
    } else {
      h.mode = HealthMode::Tcp;
    }
    // HAProxy: fastinter and downinter default to inter.
    if (sp.inter) {
      h.interval = *sp.inter;
      h.fast_interval = sp.fastinter.value_or(*sp.inter);
      h.down_interval = sp.downinter.value_or(*sp.inter);
    } else {
      h.fast_interval = sp.fastinter.value_or(h.fast_interval);
      h.down_interval = sp.downinter.value_or(h.down_interval);
    }
    h.rise = sp.rise.value_or(h.rise);
    h.fall = sp.fall.value_or(h.fall);
    h.slow_start = sp.slowstart.value_or(h.slow_start);
    if (b.timeout_check) {
      h.timeout = *b.timeout_check;
    }
    if (ssl) {
      const std::string verify = sp.verify.value_or("none");
      if (verify == "required") {
        if (!sp.ca_file) {
          fail(first.pos, "server " + first.name + ": \"verify required\" needs \"ca-file\"");
        }
        h.ca_file = *sp.ca_file;
      } else {
        h.ca_file.clear();
        if (sp.ca_file) {
          note(first.pos, "ca-file ignored: \"verify none\"");
        }
      }
      if (sp.crt) {
        // HAProxy's crt is one PEM file holding certificate and key.
        h.client_cert = *sp.crt;
        h.client_key = *sp.crt;
      }
      if (sp.check_sni) {
        h.server_name = *sp.check_sni;
      }
    }
  }

  const std::string &file_;
  Config c_;
  std::vector<std::string> *notes_;
  ReaderChecks checks_;
  std::vector<Proxy> proxies_;
  std::map<std::string, Proxy> backends_;
};

} // namespace

Result<Millis> parse_haproxy_time(std::string_view text) {
  // The cap of every other duration (config/duration.h): one year is more than anything needs.
  constexpr int64_t kMaxMs = int64_t{8760} * 3600000;
  const std::string quoted = quote(text);
  const Err too_large{"time " + quoted + " is too large (maximum 8760h)"};
  int64_t n = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec == std::errc::result_out_of_range) {
    return too_large;
  }
  if (ec != std::errc() || n < 0) {
    return Err{"time " + quoted + " is not a time (expected e.g. 500, 500ms, 2s, 1m)"};
  }
  std::string_view unit(ptr, text.data() + text.size() - ptr);
  if (unit == "us") {
    if (n > kMaxMs * 1000) {
      return too_large;
    }
    return Millis{(n + 999) / 1000}; // round up: a non-zero time must not become 0
  }
  int64_t per = 0; // milliseconds per unit
  if (unit.empty() || unit == "ms") {
    per = 1;
  } else if (unit == "s") {
    per = 1000;
  } else if (unit == "m") {
    per = 60000;
  } else if (unit == "h") {
    per = 3600000;
  } else if (unit == "d") {
    per = 86400000;
  } else {
    return Err{"time " + quoted + " has unknown unit " + quote(unit) +
               " (HAProxy units: us, ms, s, m, h, d)"};
  }
  // Compared before multiplying, so that no value can overflow.
  if (n > kMaxMs / per) {
    return too_large;
  }
  return Millis{n * per};
}

Result<Config> parse_haproxy_cfg(std::string_view text, const std::string &file_name, Config base,
                                 std::vector<std::string> *notes, ReaderChecks checks) {
  return run_reader(
      file_name, "HAProxy configuration", notes, checks, [&](std::vector<std::string> &local) {
        std::vector<Section> sections;
        size_t start = 0;
        int line_no = 0;
        while (start < text.size()) {
          size_t nl = text.find('\n', start);
          std::string_view raw = text.substr(
              start, nl == std::string_view::npos ? std::string_view::npos : nl - start);
          start = nl == std::string_view::npos ? text.size() : nl + 1;
          ++line_no;
          Line l = split_line(raw, line_no);
          if (l.words.empty()) {
            continue;
          }
          l.pos = l.words[0].pos;
          const std::string &k = l.words[0].text;
          if (kSectionKeywords.count(k)) {
            Section s;
            s.kind = k;
            s.pos = l.pos;
            if (l.words.size() > 1) {
              s.name = l.words[1].text;
            }
            if (l.words.size() > 2 && k != "program") {
              if (l.words[2].text == "from") {
                throw ReaderFailure{l.words[2].pos, "named defaults (\"from\") are not supported"};
              }
            }
            sections.push_back(std::move(s));
            continue;
          }
          if (sections.empty()) {
            throw ReaderFailure{l.pos,
                                "keyword " + quote(k) +
                                    " outside of any section (expected global, defaults, frontend, "
                                    "backend or listen first)"};
          }
          sections.back().lines.push_back(std::move(l));
        }
        if (sections.empty()) {
          throw ReaderFailure{Pos{}, "empty configuration: no sections"};
        }
        base.source = file_name;
        return Interpreter(file_name, std::move(base), &local, checks).run(sections);
      });
}

} // namespace kal
