#include "admin/status_page.h"
#include "admin/status_page_data.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <initializer_list>
#include <vector>

namespace kal {
namespace {

constexpr int kChartW = 200;
constexpr int kChartH = 36;
constexpr size_t kEventsShown = 20;

// Length of the UTF-8 sequence starting at s[i] if it is valid (RFC 3629: no overlongs, no
// surrogates, nothing above U+10FFFF), else 0.
size_t utf8_len(std::string_view s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const unsigned char c = b(0);
  size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
  if (n == 0 || i + n > s.size()) {
    return 0;
  }
  for (size_t k = 1; k < n; k++) {
    if ((b(k) & 0xC0) != 0x80) {
      return 0;
    }
  }
  if ((n == 2 && c < 0xC2) || (n == 3 && c == 0xE0 && b(1) < 0xA0) ||
      (n == 3 && c == 0xED && b(1) >= 0xA0) || (n == 4 && c == 0xF0 && b(1) < 0x90) ||
      (n == 4 && (c > 0xF4 || (c == 0xF4 && b(1) >= 0x90)))) {
    return 0;
  }
  return n;
}

std::string str(const nlohmann::json &j, const char *key, const char *fallback = "") {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string(fallback);
}

double numv(const nlohmann::json &j, const char *key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>() : 0.0;
}

std::string u64(const nlohmann::json &j, const char *key) {
  return std::to_string(static_cast<uint64_t>(numv(j, key)));
}

std::string fmt(const char *f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

std::string clock_of(double unix_seconds) {
  std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[16];
  std::strftime(buf, sizeof buf, "%H:%M:%S", &tm);
  return buf;
}

std::string ago(double seconds) {
  const auto s = static_cast<int64_t>(std::llround(std::max(0.0, seconds)));
  if (s < 60) {
    return std::to_string(s) + "s";
  }
  if (s < 3600) {
    return std::to_string(s / 60) + "m" + (s % 60 ? " " + std::to_string(s % 60) + "s" : "");
  }
  if (s < 86400) {
    return std::to_string(s / 3600) + "h " + std::to_string(s % 3600 / 60) + "m";
  }
  return std::to_string(s / 86400) + "d " + std::to_string(s % 86400 / 3600) + "h";
}

std::string bytes(double n) {
  static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  size_t i = 0;
  while (n >= 1024 && i < 4) {
    n /= 1024;
    i++;
  }
  return (i ? fmt("%.1f", n) : fmt("%.0f", n)) + " " + units[i];
}

std::string millis(double v) {
  return v < 1 ? fmt("%.2f ms", v) : v < 100 ? fmt("%.1f ms", v) : fmt("%.0f ms", v);
}

const char *result_class(const std::string &r) {
  if (r == "L7OK" || r == "L6OK" || r == "L4OK") {
    return "ok";
  }
  return r == "L7STS" || r == "L7AUTH" ? "soft" : "fail";
}

// The latency chart of one endpoint, as the page's script draws it (chart() there).
std::string chart(const nlohmann::json &checks, double window) {
  // The top: twice the 90th percentile of the passed checks (at least 0.1 ms), or their maximum
  // if lower, so one slow handshake does not flatten the rest; taller points are clipped. As the
  // page's scaleOf().
  std::vector<double> ok;
  for (const auto &c : checks) {
    if (std::string(result_class(c[2].get<std::string>())) == "ok") {
      ok.push_back(c[1].get<double>());
    }
  }
  double max = 1;
  if (!ok.empty()) {
    std::sort(ok.begin(), ok.end());
    const double p90 = ok[std::min(ok.size() - 1, static_cast<size_t>(ok.size() * 0.9))];
    max = std::max(0.1, std::min(ok.back(), 2 * p90)) * 1.1;
  }
  std::string dots, fails, points;
  for (const auto &c : checks) {
    const double age = c[0].get<double>();
    if (age > window) {
      continue;
    }
    const std::string x = fmt("%.1f", kChartW - age / window * kChartW);
    if (std::string(result_class(c[2].get<std::string>())) == "ok") {
      const std::string y =
          fmt("%.1f", kChartH - 2 - std::min(c[1].get<double>(), max) / max * (kChartH - 4));
      points += (points.empty() ? "" : " ") + x + "," + y;
      if (c[3].get<int>() == 0) {
        dots += "<circle class=\"chk\" cx=\"" + x + "\" cy=\"" + y + "\" r=\"1.6\"/>";
      }
    } else {
      fails += "<line class=\"fail\" x1=\"" + x + "\" x2=\"" + x + "\" y1=\"2\" y2=\"" +
               std::to_string(kChartH - 2) + "\"/>";
    }
  }
  std::string s = "<svg class=\"spark\" viewBox=\"0 0 " + std::to_string(kChartW) + " " +
                  std::to_string(kChartH) + "\" width=\"" + std::to_string(kChartW) +
                  "\" height=\"" + std::to_string(kChartH) + "\" role=\"img\">";
  s += "<line class=\"grid\" x1=\"0\" x2=\"" + std::to_string(kChartW) + "\" y1=\"" +
       std::to_string(kChartH / 2) + "\" y2=\"" + std::to_string(kChartH / 2) + "\"/>";
  if (!points.empty()) {
    s += "<polyline points=\"" + points + "\"/>";
  }
  s += fails + dots + "<title>scale 0 to " + millis(max) + "</title></svg>";
  return s;
}

std::string num_cell(double v) {
  return std::string("<td class=\"num") + (v != 0 ? " hot" : " zero") + "\">" +
         std::to_string(static_cast<uint64_t>(v)) + "</td>";
}

// Where an endpoint comes from, as the page's sourceText() says it: "config" without discovery,
// else seed, discovered or saved; ", withdrawn" when discovery says it left the slice.
std::string source_text(const nlohmann::json &ep, bool discovery_on) {
  std::string s = str(ep, "source", "seed");
  if (s == "seed" && !discovery_on) {
    s = "config";
  }
  return ep.value("withdrawn", false) ? s + ", withdrawn" : s;
}

std::string endpoint_row(const nlohmann::json &ep, double now, double window, bool discovery_on) {
  const bool removed = ep.value("removed", false);
  const std::string health = str(ep, "health", "unknown");
  const std::string shown = removed ? "removed" : health;
  std::string upper = shown;
  for (auto &ch : upper) {
    ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  }
  const double since = numv(ep, "healthSinceSeconds");
  std::string r = "<tr class=\"ep st-" + html_escape(shown) + "\" data-endpoint=\"" +
                  html_escape(str(ep, "endpoint")) + "\" data-health=\"" + html_escape(health) +
                  "\">";
  r += "<td class=\"name\">" + html_escape(str(ep, "endpoint")) + "</td>";
  r += "<td><span class=\"badge " + html_escape(shown) + "\">" + html_escape(upper) +
       "</span><div class=\"sub\">since " + clock_of(since) + " (" + ago(now - since) +
       " ago)</div></td>";
  static const nlohmann::json kNone = nlohmann::json::array();
  const auto it = ep.find("checks");
  const nlohmann::json &checks = it != ep.end() && it->is_array() ? *it : kNone;
  r += "<td>";
  if (!checks.empty()) {
    const auto &l = checks.back();
    const std::string res = l[2].get<std::string>();
    const bool ok = std::string(result_class(res)) == "ok";
    r += std::string("<span class=\"res ") + result_class(res) + "\">" + html_escape(res) +
         "</span><div class=\"sub\">" + (l[3].get<int>() ? "PING " : "GET ") +
         (ok ? millis(l[1].get<double>()) + ", " : std::string()) + ago(l[0].get<double>()) +
         " ago</div>";
  } else {
    r += "<span class=\"empty\">no check yet</span>";
  }
  if (ep.value("healthCheckMisconfigured", false)) {
    r += "<div class=\"sub hot\">401/403: checker not authorized</div>";
  }
  r += "</td><td>" + chart(checks, window) + "</td>";
  r += "<td class=\"num\">" + u64(ep, "activeConnections") + " / " + u64(ep, "connectionsTotal") +
       "</td>";
  r += "<td class=\"num\">" + bytes(numv(ep, "sentBytes")) + " / " +
       bytes(numv(ep, "receivedBytes")) + "</td>";
  r += num_cell(numv(ep, "connectFailures")) + num_cell(numv(ep, "closedOnDown"));
  r += "<td>" + html_escape(source_text(ep, discovery_on)) + "</td></tr>";
  return r;
}

std::string joined(const nlohmann::json &a) {
  std::string s;
  if (a.is_array()) {
    for (const auto &x : a) {
      if (x.is_string()) {
        s += (s.empty() ? "" : ", ") + x.get<std::string>();
      }
    }
  }
  return s;
}

// One pass over the template: each {{name}} is replaced by its value, and inserted text is never
// scanned again (a config value holding "{{events}}" stays text). An unknown name stays as it is.
std::string fill(std::string_view tpl,
                 std::initializer_list<std::pair<std::string_view, std::string>> values) {
  std::string out;
  out.reserve(tpl.size() * 2);
  size_t at = 0;
  while (true) {
    const size_t open = tpl.find("{{", at);
    const size_t close = open == std::string_view::npos ? open : tpl.find("}}", open + 2);
    if (close == std::string_view::npos) {
      out.append(tpl.substr(at));
      return out;
    }
    out.append(tpl.substr(at, open - at));
    const std::string_view name = tpl.substr(open + 2, close - open - 2);
    const auto *v = std::find_if(values.begin(), values.end(),
                                 [&](const auto &kv) { return kv.first == name; });
    if (v != values.end()) {
      out += v->second;
    } else {
      out.append(tpl.substr(open, close + 2 - open));
    }
    at = close + 2;
  }
}

} // namespace

std::string html_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size() + s.size() / 8);
  for (size_t i = 0; i < s.size();) {
    const size_t n = utf8_len(s, i);
    if (n == 0) {
      out += "\xEF\xBF\xBD"; // U+FFFD for a byte that starts no valid sequence
      i++;
      continue;
    }
    if (n > 1) {
      out.append(s.substr(i, n));
      i += n;
      continue;
    }
    const char c = s[i++];
    switch (c) {
    case '&':
      out += "&amp;";
      break;
    case '<':
      out += "&lt;";
      break;
    case '>':
      out += "&gt;";
      break;
    case '"':
      out += "&quot;";
      break;
    case '\'':
      out += "&#39;";
      break;
    default:
      if ((static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\n') || c == 0x7F) {
        out += "\xEF\xBF\xBD";
      } else {
        out += c;
      }
    }
  }
  return out;
}

std::string_view status_page_template() { return status_page_data::kTemplate; }

const std::string &status_page_csp() {
  static const std::string csp = std::string("default-src 'none'; script-src '") +
                                 status_page_data::kScriptHash + "'; style-src '" +
                                 status_page_data::kStyleHash +
                                 "'; connect-src 'self'; img-src 'none'; base-uri 'none'; "
                                 "form-action 'none'; frame-ancestors 'none'";
  return csp;
}

std::string render_status_page(const nlohmann::json &st) {
  const double now = numv(st, "nowSeconds");
  // The charts span the history kept, or the uptime when that is shorter (at least 30 s).
  const double window =
      std::clamp(numv(st, "uptimeSeconds"), 30.0,
                 st.contains("historyWindowSeconds") ? numv(st, "historyWindowSeconds") : 240.0);
  static const nlohmann::json kNone = nlohmann::json::array();
  const auto eit = st.find("endpoints");
  const nlohmann::json &eps = eit != st.end() && eit->is_array() ? *eit : kNone;

  const auto dit = st.find("discovery");
  const bool discovery_on = dit != st.end() && dit->is_object() && dit->value("enabled", false);
  size_t total = 0, up = 0;
  std::string rows;
  for (const auto &ep : eps) {
    rows += endpoint_row(ep, now, window, discovery_on);
    if (!ep.value("removed", false)) {
      total++;
      up += str(ep, "health") == "up" ? 1 : 0;
    }
  }
  const bool ready = st.value("ready", false);
  const bool checks_off = str(st, "healthCheck") == "none";
  const std::string words = std::to_string(up) + " of " + std::to_string(total) + " apiserver" +
                            (total == 1 ? "" : "s") + " up";
  std::string verdict_class, verdict_text;
  if (!ready) {
    verdict_class = "bad";
    std::string why = str(st, "readiness", "not ready");
    if (why.rfind("not ready: ", 0) == 0) {
      why = why.substr(11);
    }
    verdict_text = "NOT READY \xE2\x80\x94 " + why;
  } else {
    verdict_class = up == total || checks_off ? "ok" : "degraded";
    verdict_text = "Ready \xE2\x80\x94 " + (checks_off ? std::string("health checks off") : words);
  }
  const nlohmann::json &cfg = st.contains("config") ? st["config"] : nlohmann::json::object();
  const std::string sub = (ready ? "" : words + " \xC2\xB7 ") + "kube-api-lb " +
                          str(st, "version") + " on " + joined(st.value("listeners", kNone)) +
                          " \xC2\xB7 up " + ago(numv(st, "uptimeSeconds"));

  const std::pair<const char *, std::string> meta[] = {
      {"Version", str(st, "version")},
      {"Uptime", ago(numv(st, "uptimeSeconds")) + " (since " +
                     clock_of(numv(st, "startTimeSeconds")) + " UTC)"},
      {"Config source", str(cfg, "source")},
      {"Config hash", str(cfg, "hash")},
      {"Reloads", u64(cfg, "reloads") + " applied, " + u64(cfg, "reloadFailures") + " rejected"},
      {"Listeners", joined(st.value("listeners", kNone))},
      {"Admin", joined(st.value("adminListeners", kNone))},
      {"Policy", str(st, "policy")},
      {"Workers", u64(st, "workers")},
      {"Health check", str(st, "healthCheck")},
      {"Connections",
       u64(st, "activeConnections") + " open, " + u64(st, "acceptedConnections") + " accepted"},
      {"Closed on down", u64(st, "closedOnDownConnections")},
  };
  std::string meta_html;
  for (const auto &[k, v] : meta) {
    meta_html += std::string("<dt>") + k + "</dt><dd>" + html_escape(v) + "</dd>";
  }

  std::string events;
  if (auto it = st.find("events"); it != st.end() && it->is_array()) {
    size_t n = 0;
    for (const auto &e : *it) {
      if (n++ == kEventsShown) {
        break;
      }
      const std::string kind_name = str(e, "kind");
      const std::string text = str(e, "text");
      std::string kind = kind_name;
      if (kind_name == "transition") {
        auto arrow = text.find(" -> ");
        kind = arrow == std::string::npos ? "" : text.substr(arrow + 4);
        kind = kind.substr(0, kind.find(' '));
      }
      const double t = numv(e, "time");
      events += "<li class=\"ev\"><time title=\"" + ago(now - t) + " ago\">" + clock_of(t) +
                "</time><span class=\"kind k-" + html_escape(kind) + "\">" + html_escape(kind) +
                "</span><span>";
      if (const std::string subj = str(e, "subject"); !subj.empty()) {
        events += "<span class=\"subj\">" + html_escape(subj) + "</span>";
      }
      events += "<span class=\"txt\">" + html_escape(text) + "</span></span></li>";
    }
  }
  if (events.empty()) {
    events = "<li class=\"empty\">nothing yet</li>";
  }

  return fill(status_page_template(), {
                                          {"title", html_escape(verdict_text)},
                                          {"verdict_class", verdict_class},
                                          {"verdict_text", html_escape(verdict_text)},
                                          {"verdict_sub", html_escape(sub)},
                                          {"window", ago(window)},
                                          {"updated", "Updated " + clock_of(now) + " UTC."},
                                          {"meta", meta_html},
                                          {"events", events},
                                          {"endpoints", rows},
                                      });
}

std::string render_status_page(const std::vector<std::shared_ptr<Upstream>> &ups,
                               const ProcessStats &ps) {
  return render_status_page(stats_json(ups, ps));
}

} // namespace kal
