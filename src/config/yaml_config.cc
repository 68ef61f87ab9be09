#include "kube_api_lb/config/yaml_config.h"

#include "config/reader_common.h"
#include "kube_api_lb/config/duration.h"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <map>
#include <set>
#include <sstream>

namespace kal {
namespace {

// Thrown inside this file only and caught in parse_yaml_config, so the field code stays linear.
struct Failure {
  YAML::Mark mark;
  std::string message;
};

[[noreturn]] void fail(const YAML::Mark &mark, std::string message) {
  throw Failure{mark, std::move(message)};
}

const std::vector<std::string> kTopFields = {"apiVersion",
                                             "kind",
                                             "listen",
                                             "endpoints",
                                             "policy",
                                             "connectTimeout",
                                             "firstByteTimeout",
                                             "idleTimeout",
                                             "halfClosedTimeout",
                                             "shutdownGrace",
                                             "drainTimeout",
                                             "tcpUserTimeout",
                                             "keepaliveIdle",
                                             "workers",
                                             "bufferHighWatermark",
                                             "replayBufferLimit",
                                             "healthCheck",
                                             "discovery",
                                             "admin",
                                             "logging"};
const std::vector<std::string> kHealthFields = {
    "mode",       "path",      "interval",       "fastInterval", "downInterval", "timeout",
    "rise",       "fall",      "jitter",         "caFile",       "clientCert",   "clientKey",
    "serverName", "slowStart", "readyzInterval", "http2",        "flapWindow",   "recheckGap"};
const std::vector<std::string> kAdminFields = {"listen", "healthzListen"};
const std::vector<std::string> kDiscoveryFields = {"mode", "kubeconfig", "stateFile", "debounce",
                                                   "grace"};
const std::vector<std::string> kLoggingFields = {"format", "verbosity"};

// A key and its value inside a mapping; `path` is the dotted name used in messages.
struct Field {
  std::string path;
  YAML::Node key;
  YAML::Node value;

  // yaml-cpp gives null values the mark of whatever follows, so point at the key for those.
  YAML::Mark mark() const { return value.IsNull() ? key.Mark() : value.Mark(); }
  bool is_null() const { return value.IsNull(); }
};

bool is_quoted(const YAML::Node &n) { return n.IsScalar() && n.Tag() == "!"; }

std::string describe(const YAML::Node &n) {
  switch (n.Type()) {
  case YAML::NodeType::Null:
  case YAML::NodeType::Undefined:
    return "null";
  case YAML::NodeType::Sequence:
    return "a list";
  case YAML::NodeType::Map:
    return "a mapping";
  case YAML::NodeType::Scalar:
    break;
  }
  return is_quoted(n) ? "the string " + quote(n.Scalar()) : quote(n.Scalar());
}

// Suggests where a misplaced or misspelt top-level field belongs.
std::string hint(std::string_view name, const std::vector<std::string> &known,
                 const std::string &prefix, bool top_level) {
  if (auto near = closest_name(name, known)) {
    return " (did you mean " + quote(prefix + *near) + "?)";
  }
  if (top_level) {
    struct Section {
      const char *name;
      const std::vector<std::string> *fields;
    };
    for (auto s : {Section{"healthCheck", &kHealthFields}, Section{"admin", &kAdminFields},
                   Section{"discovery", &kDiscoveryFields}, Section{"logging", &kLoggingFields}}) {
      if (auto near = closest_name(name, *s.fields)) {
        return " (did you mean " + quote(std::string(s.name) + "." + *near) + "?)";
      }
    }
  }
  return "";
}

// The fields of a mapping, rejecting non-mappings, non-string keys, unknown and repeated keys.
std::vector<Field> fields_of(const YAML::Node &map, const YAML::Mark &where,
                             const std::string &section, const std::vector<std::string> &known) {
  const std::string prefix = section.empty() ? "" : section + ".";
  if (!map.IsMap()) {
    fail(where, (section.empty() ? std::string("the document") : section) +
                    ": expected a mapping of fields, got " + describe(map));
  }
  std::vector<Field> out;
  std::map<std::string, int> seen; // name -> 1-based line
  for (auto it = map.begin(); it != map.end(); ++it) {
    // The iterator yields a temporary pair: copy the (reference-counted) nodes out of it.
    const YAML::Node k = it->first;
    const YAML::Node v = it->second;
    if (!k.IsScalar()) {
      fail(k.Mark(), "field names must be strings, got " + describe(k));
    }
    const std::string name = k.Scalar();
    if (std::find(known.begin(), known.end(), name) == known.end()) {
      std::string where_text = section.empty() ? "" : " in " + section;
      fail(k.Mark(),
           "unknown field " + quote(name) + where_text + hint(name, known, "", section.empty()));
    }
    auto [pos, fresh] = seen.emplace(name, k.Mark().line + 1);
    if (!fresh) {
      fail(k.Mark(), "field " + quote(prefix + name) + " is repeated (first at line " +
                         std::to_string(pos->second) + ")");
    }
    out.push_back(Field{prefix + name, k, v});
  }
  return out;
}

std::string string_of(const Field &f) {
  if (!f.value.IsScalar()) {
    fail(f.mark(), f.path + ": expected a string, got " + describe(f.value));
  }
  return f.value.Scalar();
}

// Numbers must be plain scalars: `workers: "2"` is a string, as Kubernetes decoders see it.
std::string number_text(const Field &f, const char *what) {
  if (!f.value.IsScalar() || is_quoted(f.value)) {
    fail(f.mark(), f.path + ": expected " + what + ", got " + describe(f.value));
  }
  return f.value.Scalar();
}

int64_t integer_of(const Field &f, int64_t lo, int64_t hi) {
  const std::string s = number_text(f, "an integer");
  int64_t v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec == std::errc::result_out_of_range) {
    fail(f.mark(), f.path + ": " + s + " is out of range (" + std::to_string(lo) + "-" +
                       std::to_string(hi) + ")");
  }
  if (ec != std::errc() || ptr != s.data() + s.size()) {
    fail(f.mark(), f.path + ": expected an integer, got " + describe(f.value));
  }
  if (v < lo || v > hi) {
    fail(f.mark(), f.path + ": " + s + " is out of range (" + std::to_string(lo) + "-" +
                       std::to_string(hi) + ")");
  }
  return v;
}

double number_of(const Field &f) {
  const std::string s = number_text(f, "a number");
  double v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size() || !std::isfinite(v)) {
    fail(f.mark(), f.path + ": expected a number, got " + describe(f.value));
  }
  return v;
}

// Byte sizes: a plain integer or a Kubernetes binary quantity ("256Ki", "1Mi").
size_t size_of(const Field &f, size_t lo, size_t hi) {
  if (!f.value.IsScalar()) {
    fail(f.mark(), f.path + ": expected a size in bytes, got " + describe(f.value));
  }
  const std::string s = f.value.Scalar();
  uint64_t v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  std::string_view suffix(ptr, s.data() + s.size() - ptr);
  uint64_t mult = 0;
  if (suffix.empty()) {
    mult = 1;
  } else if (suffix == "Ki") {
    mult = 1024;
  } else if (suffix == "Mi") {
    mult = 1024 * 1024;
  } else if (suffix == "Gi") {
    mult = 1024 * 1024 * 1024;
  }
  if (ec != std::errc() || mult == 0) {
    fail(f.mark(),
         f.path + ": expected a size in bytes (e.g. 262144 or 256Ki), got " + describe(f.value));
  }
  if (v > hi / mult || v * mult < lo || v * mult > hi) {
    fail(f.mark(), f.path + ": " + s + " is out of range (" + std::to_string(lo) + "-" +
                       std::to_string(hi) + " bytes)");
  }
  return v * mult;
}

Millis duration_of(const Field &f, bool allow_zero) {
  if (!f.value.IsScalar()) {
    fail(f.mark(),
         f.path + ": expected a duration such as \"1s\" or \"500ms\", got " + describe(f.value));
  }
  auto d = parse_duration(f.value.Scalar());
  if (!d) {
    fail(f.mark(), f.path + ": " + d.error());
  }
  if (!allow_zero && d->count() == 0) {
    fail(f.mark(), f.path + ": must be greater than 0");
  }
  return *d;
}

// An address list together with where each item was written (for later cross-checks).
struct Placed {
  HostPort addr;
  YAML::Mark mark;
  std::string where; // e.g. "listen[0]"
};

// `noun` is "endpoint" or "listen address"; listen addresses go through to_listen_address().
std::vector<Placed> addresses_of(const Field &f, const std::string &noun, bool allow_empty) {
  const std::string plural = noun.back() == 's' ? noun + "es" : noun + "s";
  const bool listen = noun == "listen address";
  if (!f.value.IsSequence()) {
    fail(f.mark(), f.path + ": expected a list of " + plural +
                       " such as [\"127.0.0.1:6443\"], got " + describe(f.value));
  }
  if (f.value.size() == 0 && !allow_empty) {
    fail(f.mark(), f.path + ": list is empty; give at least one " + noun);
  }
  std::vector<Placed> out;
  for (size_t i = 0; i < f.value.size(); ++i) {
    const YAML::Node item = f.value[i];
    const std::string at = f.path + "[" + std::to_string(i) + "]";
    if (!item.IsScalar()) {
      fail(item.IsNull() ? f.value.Mark() : item.Mark(),
           at + ": expected an address \"host:port\", got " + describe(item));
    }
    auto hp = parse_host_port(item.Scalar());
    if (!hp) {
      fail(item.Mark(), at + ": " + hp.error());
    }
    if (listen) {
      hp = to_listen_address(*hp);
      if (!hp) {
        fail(item.Mark(), at + ": " + hp.error());
      }
    }
    for (const auto &prev : out) {
      if (prev.addr == *hp) {
        fail(item.Mark(), at + ": duplicate " + noun + " " + hp->str() + " (first at line " +
                              std::to_string(prev.mark.line + 1) + ")");
      }
    }
    out.push_back(Placed{*hp, item.Mark(), at});
  }
  return out;
}

std::vector<HostPort> plain(const std::vector<Placed> &v) {
  std::vector<HostPort> out;
  for (const auto &p : v) {
    out.push_back(p.addr);
  }
  return out;
}

class Reader {
public:
  Reader(Config base, ReaderChecks checks) : c_(std::move(base)), checks_(checks) {}

  Config read(const YAML::Node &root) {
    const YAML::Mark top = root.Mark();
    auto fields = fields_of(root, top, "", kTopFields);
    check_type_fields(fields, top);
    for (const auto &f : fields) {
      top_field(f);
    }
    if (checks_ == ReaderChecks::All) {
      cross_checks(top);
    }
    return std::move(c_);
  }

private:
  void check_type_fields(const std::vector<Field> &fields, const YAML::Mark &top) {
    const Field *api = nullptr;
    const Field *kind = nullptr;
    for (const auto &f : fields) {
      if (f.path == "apiVersion") {
        api = &f;
      } else if (f.path == "kind") {
        kind = &f;
      }
    }
    if (!api) {
      fail(top,
           std::string("missing apiVersion (expected \"apiVersion: ") + kConfigApiVersion + "\")");
    }
    if (string_of(*api) != kConfigApiVersion) {
      fail(api->mark(), "apiVersion " + quote(string_of(*api)) + " is not supported (expected " +
                            kConfigApiVersion + ")");
    }
    if (!kind) {
      fail(top, std::string("missing kind (expected \"kind: ") + kConfigKind + "\")");
    }
    if (string_of(*kind) != kConfigKind) {
      fail(kind->mark(),
           "kind " + quote(string_of(*kind)) + " is not supported (expected " + kConfigKind + ")");
    }
  }

  void top_field(const Field &f) {
    if (f.is_null() || f.path == "apiVersion" || f.path == "kind") {
      if (f.path == "endpoints") {
        endpoints_mark_ = f.mark();
      }
      return; // null means "not set": keep the base value
    }
    const std::string &n = f.path;
    if (n == "listen") {
      listen_ = addresses_of(f, "listen address", false);
      c_.listen = plain(listen_);
    } else if (n == "endpoints") {
      endpoints_mark_ = f.mark();
      c_.endpoints = plain(addresses_of(f, "endpoint", false));
    } else if (n == "policy") {
      auto p = policy_from_string(string_of(f));
      if (!p) {
        fail(f.mark(), "policy: unknown policy " + quote(string_of(f)) +
                           " (expected least-conn, round-robin, random-two or first)");
      }
      c_.policy = *p;
    } else if (n == "connectTimeout") {
      c_.connect_timeout = duration_of(f, false);
    } else if (n == "firstByteTimeout") {
      c_.first_byte_timeout = duration_of(f, false);
    } else if (n == "idleTimeout") {
      c_.idle_timeout = duration_of(f, true);
    } else if (n == "halfClosedTimeout") {
      c_.half_closed_timeout = duration_of(f, true);
    } else if (n == "shutdownGrace") {
      c_.shutdown_grace = duration_of(f, true);
    } else if (n == "drainTimeout") {
      c_.drain_timeout = duration_of(f, true);
    } else if (n == "tcpUserTimeout") {
      c_.tcp_user_timeout = duration_of(f, true);
    } else if (n == "keepaliveIdle") {
      c_.keepalive_idle = duration_of(f, true);
    } else if (n == "workers") {
      c_.workers = static_cast<int>(integer_of(f, 1, 64));
    } else if (n == "bufferHighWatermark") {
      c_.buffer_high_watermark = size_of(f, 4096, size_t{1} << 30);
    } else if (n == "replayBufferLimit") {
      c_.replay_buffer_limit = size_of(f, 0, size_t{1} << 30);
    } else if (n == "healthCheck") {
      for (const auto &h : fields_of(f.value, f.mark(), n, kHealthFields)) {
        if (!h.is_null()) {
          health_field(h);
        }
      }
    } else if (n == "discovery") {
      for (const auto &d : fields_of(f.value, f.mark(), n, kDiscoveryFields)) {
        if (d.is_null()) {
          continue;
        }
        if (d.path == "discovery.mode") {
          auto m = discovery_mode_from_string(string_of(d));
          if (!m) {
            fail(d.mark(), "discovery.mode: unknown mode " + quote(string_of(d)) +
                               " (expected none or endpointslices)");
          }
          c_.discovery.mode = *m;
          discovery_mode_mark_ = d.mark();
        } else if (d.path == "discovery.kubeconfig") {
          c_.discovery.kubeconfig = string_of(d);
          kubeconfig_mark_ = d.mark();
        } else if (d.path == "discovery.stateFile") {
          c_.discovery.state_file = string_of(d);
          state_file_mark_ = d.mark();
        } else if (d.path == "discovery.debounce") {
          c_.discovery.debounce = duration_of(d, true);
        } else {
          c_.discovery.grace = duration_of(d, true);
        }
      }
    } else if (n == "admin") {
      for (const auto &a : fields_of(f.value, f.mark(), n, kAdminFields)) {
        if (a.is_null()) {
          continue;
        }
        if (a.path == "admin.listen") {
          admin_ = addresses_of(a, "listen address", true);
          c_.admin.listen = plain(admin_);
        } else {
          healthz_ = addresses_of(a, "listen address", true);
          c_.admin.healthz_listen = plain(healthz_);
        }
      }
    } else if (n == "logging") {
      for (const auto &l : fields_of(f.value, f.mark(), n, kLoggingFields)) {
        if (l.is_null()) {
          continue;
        }
        if (l.path == "logging.format") {
          auto fmt = log_format_from_string(string_of(l));
          if (!fmt) {
            fail(l.mark(), "logging.format: unknown format " + quote(string_of(l)) +
                               " (expected text or json)");
          }
          c_.log_format = *fmt;
        } else {
          c_.verbosity = static_cast<int>(integer_of(l, 0, 10));
        }
      }
    }
  }

  void health_field(const Field &f) {
    HealthConfig &h = c_.health;
    const std::string n = f.path.substr(std::string("healthCheck.").size());
    if (n == "mode") {
      auto m = health_mode_from_string(string_of(f));
      if (!m) {
        fail(f.mark(), "healthCheck.mode: unknown mode " + quote(string_of(f)) +
                           " (expected https, tls, tcp or none)");
      }
      h.mode = *m;
    } else if (n == "path") {
      h.path = string_of(f);
      if (auto p = check_health_path(h.path); !p) {
        fail(f.mark(), "healthCheck.path: " + p.error());
      }
    } else if (n == "interval") {
      h.interval = duration_of(f, false);
    } else if (n == "readyzInterval") {
      h.readyz_interval = duration_of(f, false);
    } else if (n == "flapWindow") {
      h.flap_window = duration_of(f, false);
    } else if (n == "recheckGap") {
      h.recheck_gap = duration_of(f, false);
    } else if (n == "http2") {
      const std::string b = string_of(f);
      if (b != "true" && b != "false") {
        fail(f.mark(), "healthCheck.http2: " + quote(b) + " is not true or false");
      }
      h.http2 = b == "true";
    } else if (n == "fastInterval") {
      h.fast_interval = duration_of(f, false);
    } else if (n == "downInterval") {
      h.down_interval = duration_of(f, false);
    } else if (n == "timeout") {
      h.timeout = duration_of(f, false);
    } else if (n == "rise") {
      h.rise = static_cast<int>(integer_of(f, 1, 100));
    } else if (n == "fall") {
      h.fall = static_cast<int>(integer_of(f, 1, 100));
    } else if (n == "jitter") {
      h.jitter = number_of(f);
      if (h.jitter < 0 || h.jitter >= 1) {
        fail(f.mark(), "healthCheck.jitter: " + f.value.Scalar() +
                           " is out of range (0 <= jitter < 1, e.g. 0.1 for +-10%)");
      }
    } else if (n == "caFile") {
      h.ca_file = string_of(f);
    } else if (n == "clientCert") {
      h.client_cert = string_of(f);
      cert_mark_ = f.mark();
    } else if (n == "clientKey") {
      h.client_key = string_of(f);
      key_mark_ = f.mark();
    } else if (n == "serverName") {
      h.server_name = string_of(f);
    } else if (n == "slowStart") {
      h.slow_start = duration_of(f, true);
    }
  }

  // Checks across fields, pointing at the field that completes the conflict.
  void cross_checks(const YAML::Mark &top) {
    if (c_.endpoints.empty()) {
      fail(
          endpoints_mark_.value_or(top),
          "no endpoints: give at least one apiserver, e.g. \"endpoints: [\\\"10.0.0.1:6443\\\"]\"");
    }
    if (c_.health.client_cert.empty() != c_.health.client_key.empty()) {
      bool have_cert = !c_.health.client_cert.empty();
      fail((have_cert ? cert_mark_ : key_mark_).value_or(top),
           have_cert ? "healthCheck.clientCert is set but healthCheck.clientKey is not"
                     : "healthCheck.clientKey is set but healthCheck.clientCert is not");
    }
    if (c_.discovery.mode == DiscoveryMode::EndpointSlices && c_.discovery.kubeconfig.empty()) {
      fail(discovery_mode_mark_.value_or(top),
           "discovery.mode: endpointslices needs discovery.kubeconfig (or "
           "--discovery-kubeconfig=FILE): the kubelet's own credentials cannot list "
           "EndpointSlices (docs/discovery.md)");
    }
    if (c_.discovery.mode == DiscoveryMode::None &&
        (!c_.discovery.kubeconfig.empty() || !c_.discovery.state_file.empty())) {
      const bool kubeconfig = !c_.discovery.kubeconfig.empty();
      fail((kubeconfig ? kubeconfig_mark_ : state_file_mark_).value_or(top),
           std::string(kubeconfig ? "discovery.kubeconfig" : "discovery.stateFile") +
               " is set but discovery.mode is none (add \"mode: endpointslices\")");
    }
    // Every listener of every kind must be bindable at the same time.
    std::vector<Placed> all;
    auto add = [&](const std::vector<Placed> &placed, const std::vector<HostPort> &values,
                   const char *name) {
      if (!placed.empty() || values.empty()) {
        all.insert(all.end(), placed.begin(), placed.end());
        return;
      }
      for (size_t i = 0; i < values.size(); ++i) {
        all.push_back(
            Placed{values[i], top, std::string(name) + "[" + std::to_string(i) + "] (default)"});
      }
    };
    add(listen_, c_.listen, "listen");
    add(admin_, c_.admin.listen, "admin.listen");
    add(healthz_, c_.admin.healthz_listen, "admin.healthzListen");
    if (auto o = first_overlap(all, [](const Placed &p) { return p.addr; })) {
      const auto &[i, j] = *o;
      // Report at whichever of the two the file wrote last, so defaults never get the blame.
      const Placed &later = all[i].mark.line >= all[j].mark.line ? all[i] : all[j];
      const Placed &other = &later == &all[i] ? all[j] : all[i];
      fail(later.mark, later.where + ": " + later.addr.str() + " overlaps " + other.where + " " +
                           other.addr.str() + "; use another port");
    }
  }

  Config c_;
  ReaderChecks checks_;
  std::vector<Placed> listen_, admin_, healthz_;
  std::optional<YAML::Mark> endpoints_mark_, cert_mark_, key_mark_;
  std::optional<YAML::Mark> discovery_mode_mark_, kubeconfig_mark_, state_file_mark_;
};

std::string at(const std::string &file, const YAML::Mark &m) {
  int line = m.line < 0 ? 1 : m.line + 1;
  int col = m.column < 0 ? 1 : m.column + 1;
  return file + ":" + std::to_string(line) + ":" + std::to_string(col) + ": ";
}

// yaml-cpp 0.7's LoadAll never returns on a document that starts with a token its parser does not
// consume (a ',' outside a flow collection: the whole file ",", for one): it adds empty documents
// until memory runs out. So the parser walks the documents first, and a document that starts
// where the previous one did is reported as that character. Only then does LoadAll run (on the
// same input it takes the same steps, so it ends too).
class DocumentStarts : public YAML::EventHandler {
public:
  std::vector<YAML::Mark> starts;
  void OnDocumentStart(const YAML::Mark &mark) override { starts.push_back(mark); }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark &, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark &, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark &, const std::string &, YAML::anchor_t,
                const std::string &) override {}
  void OnSequenceStart(const YAML::Mark &, const std::string &, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark &, const std::string &, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

void check_documents_end(const std::string &text) {
  std::istringstream in(text);
  YAML::Parser parser(in);
  DocumentStarts docs;
  while (parser.HandleNextDocument(docs)) {
    size_t n = docs.starts.size();
    if (n >= 2 && docs.starts[n - 1].pos == docs.starts[n - 2].pos) {
      const YAML::Mark &m = docs.starts[n - 1];
      auto pos = static_cast<size_t>(m.pos);
      std::string what = pos < text.size() ? std::string("'") + text[pos] + "'" : "end of file";
      fail(m, "YAML syntax error: unexpected " + what + " where a document should start");
    }
  }
}

} // namespace

Result<Config> parse_yaml_config(std::string_view text, const std::string &file_name, Config base,
                                 ReaderChecks checks) {
  try {
    std::string input(text);
    check_documents_end(input);
    std::vector<YAML::Node> docs = YAML::LoadAll(input);
    // A trailing "---" or comment-only text yields null documents; only real ones count.
    std::vector<YAML::Node> real;
    for (const auto &d : docs) {
      if (!d.IsNull()) {
        real.push_back(d);
      }
    }
    if (real.empty()) {
      return Err{at(file_name, YAML::Mark()) + "empty configuration (expected a " + kConfigKind +
                 " document with apiVersion: " + kConfigApiVersion + ")"};
    }
    if (real.size() > 1) {
      return Err{at(file_name, real[1].Mark()) + "expected one YAML document, found " +
                 std::to_string(real.size())};
    }
    base.source = file_name;
    Config c = Reader(std::move(base), checks).read(real[0]);
    if (checks == ReaderChecks::All) {
      // The reader checked across fields with positions; this is the last net (line 1).
      if (auto v = validate(c); !v) {
        return Err{one_line(at(file_name, YAML::Mark()) + v.error())};
      }
    }
    return c;
  } catch (const Failure &f) {
    return Err{one_line(at(file_name, f.mark) + f.message)};
  } catch (const YAML::Exception &e) {
    return Err{one_line(at(file_name, e.mark) + "YAML syntax error: " + e.msg)};
  } catch (const std::exception &e) {
    return Err{one_line(at(file_name, YAML::Mark()) + "cannot read configuration: " + e.what())};
  }
}

} // namespace kal
