// admin/status_page: the escaping function (a table), the server-rendered page from a /stats
// document with hostile strings in it, and the CSP hashes against the template as compiled in.
#include "admin/metrics.h"
#include "admin/status_page.h"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>
#include <openssl/evp.h>
#include <openssl/sha.h>

using namespace kal;

TEST_CASE("html_escape: markup, quotes, controls and invalid UTF-8 cannot get through") {
  struct Row {
    std::string in, want;
  };
  const Row rows[] = {
      {"", ""},
      {"127.0.0.1:6443", "127.0.0.1:6443"},
      {"a&b", "a&amp;b"},
      {"<img src=x onerror=alert(1)>", "&lt;img src=x onerror=alert(1)&gt;"},
      {"</script><script>alert(1)</script>",
       "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;"},
      {"\" onmouseover=\"x", "&quot; onmouseover=&quot;x"},
      {"it's", "it&#39;s"},
      {"&lt;", "&amp;lt;"}, // already-escaped text is escaped again: shown as typed
      {"tab\there\nline", "tab\there\nline"},
      {std::string("nul\0x", 5), "nul\xEF\xBF\xBDx"},
      {"esc\x1b[31m", "esc\xEF\xBF\xBD[31m"},
      {"del\x7f", "del\xEF\xBF\xBD"},
      {"caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80", "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"},
      {"\xC3", "\xEF\xBF\xBD"},                                 // truncated sequence
      {"\xC0\xBC", "\xEF\xBF\xBD\xEF\xBF\xBD"},                 // overlong '<'
      {"\xED\xA0\x80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"}, // a surrogate
      {"\xFF<", "\xEF\xBF\xBD&lt;"},
      {"{{endpoints}}", "{{endpoints}}"}, // a placeholder in a value stays text (see fill)
  };
  for (const auto &r : rows) {
    CAPTURE(r.in);
    CHECK(html_escape(r.in) == r.want);
  }
}

namespace {

nlohmann::json hostile_stats() {
  auto ups = std::vector<std::shared_ptr<Upstream>>{
      std::make_shared<Upstream>(*parse_host_port("127.0.0.11:6443")),
      std::make_shared<Upstream>(*parse_host_port("127.0.0.12:6443"))};
  ups[0]->set_health(Health::Up);
  ups[1]->set_health(Health::Down);
  ups[0]->check_history.add(CheckSample{9000, 1500, CheckResult::Ok, true});
  ups[0]->check_history.add(CheckSample{9500, 2500, CheckResult::Ok, false});
  ups[1]->check_history.add(CheckSample{9800, 0, CheckResult::L4Con, false});
  ProcessStats ps;
  ps.ready = true;
  ps.config_source = "/etc/<img src=x onerror=alert(1)>/{{events}}.yaml";
  ps.config_hash = "abc\"def";
  ps.start_time_seconds = 1000;
  ps.now_unix = 1010;
  ps.now_mono_ms = 10000;
  ps.policy = "least-conn";
  ps.listeners = {"127.0.0.1:6443"};
  ps.health_mode = "https";
  ps.readiness = "ready";
  ps.events = {Event{1005000, EventKind::ReloadFailed, "file change",
                     "unknown field \"<script>alert(2)</script>\""},
               Event{1004000, EventKind::Transition, "127.0.0.12:6443", "up -> down (L4CON)"}};
  auto j = stats_json(ups, ps);
  j["endpoints"][1]["source"] = "discovery<b>"; // as another source may send it
  return j;
}

} // namespace

TEST_CASE("status page: server-rendered rows and events, every string escaped") {
  const std::string page = render_status_page(hostile_stats());
  CHECK(page.find("<img src=x") == std::string::npos);
  CHECK(page.find("<script>alert") == std::string::npos);
  CHECK(page.find("<b>") == std::string::npos);
  CHECK(page.find("/etc/&lt;img src=x onerror=alert(1)&gt;/{{events}}.yaml") != std::string::npos);
  CHECK(page.find("&lt;script&gt;alert(2)&lt;/script&gt;") != std::string::npos);
  CHECK(page.find("abc&quot;def") != std::string::npos);
  CHECK(page.find("discovery&lt;b&gt;") != std::string::npos);
  // The verdict, in words, and one row per endpoint with its state.
  CHECK(page.find("<header id=\"verdict\" class=\"degraded\">") != std::string::npos);
  CHECK(page.find("Ready \xE2\x80\x94 1 of 2 apiservers up") != std::string::npos);
  CHECK(page.find("data-endpoint=\"127.0.0.11:6443\" data-health=\"up\"") != std::string::npos);
  CHECK(page.find("data-endpoint=\"127.0.0.12:6443\" data-health=\"down\"") != std::string::npos);
  CHECK(page.find("<span class=\"res fail\">L4CON</span>") != std::string::npos);
  CHECK(page.find("<span class=\"res ok\">L7OK</span><div class=\"sub\">GET 2.5 ms") !=
        std::string::npos);
  CHECK(page.find("<polyline points=") != std::string::npos);
  CHECK(page.find("k-down") != std::string::npos);
  CHECK(page.find("k-reload-failed") != std::string::npos);
  // Every placeholder filled (the one in the config value above is text).
  CHECK(page.find("{{endpoints}}") == std::string::npos);
  CHECK(page.find("{{meta}}") == std::string::npos);
}

TEST_CASE("status page: not ready is said at the top") {
  auto j = hostile_stats();
  j["ready"] = false;
  j["readiness"] = "not ready: no apiserver endpoint is ready";
  const std::string page = render_status_page(j);
  CHECK(page.find("class=\"bad\"") != std::string::npos);
  CHECK(page.find("NOT READY \xE2\x80\x94 no apiserver endpoint is ready") != std::string::npos);
}

namespace {
std::string sha256_b64(std::string_view s) {
  unsigned char d[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char *>(s.data()), s.size(), d);
  unsigned char out[64];
  int n = EVP_EncodeBlock(out, d, sizeof d);
  return std::string(reinterpret_cast<char *>(out), static_cast<size_t>(n));
}
std::string_view between(std::string_view s, std::string_view open, std::string_view close) {
  auto a = s.find(open);
  auto b = s.find(close);
  REQUIRE(a != std::string_view::npos);
  REQUIRE(b != std::string_view::npos);
  return s.substr(a + open.size(), b - a - open.size());
}
} // namespace

TEST_CASE("status page: the CSP allows exactly the inline style and script, nothing else") {
  const auto tpl = status_page_template();
  const std::string &csp = status_page_csp();
  CHECK(csp.find("default-src 'none'") != std::string::npos);
  CHECK(csp.find("unsafe") == std::string::npos);
  CHECK(csp.find("'sha256-" + sha256_b64(between(tpl, "<script>", "</script>")) + "'") !=
        std::string::npos);
  CHECK(csp.find("'sha256-" + sha256_b64(between(tpl, "<style>", "</style>")) + "'") !=
        std::string::npos);
  // Self-contained: nothing is loaded from anywhere.
  for (const char *bad : {"src=\"http", "href=\"http", "@import", "url(", "<link"}) {
    CAPTURE(bad);
    CHECK(tpl.find(bad) == std::string_view::npos);
  }
  CHECK(tpl.size() < 32 * 1024);
}

TEST_CASE("status page: an endpoint's source is config without discovery, its origin with it") {
  auto j = hostile_stats();
  j["endpoints"][1]["source"] = "seed";
  j["discovery"] = {{"enabled", false}};
  std::string page = render_status_page(j);
  CHECK(page.find("<td>config</td></tr>") != std::string::npos);
  CHECK(page.find("<td>seed</td></tr>") == std::string::npos);
  j["discovery"] = {{"enabled", true}};
  j["endpoints"][0]["source"] = "discovered";
  j["endpoints"][0]["withdrawn"] = true;
  page = render_status_page(j);
  CHECK(page.find("<td>seed</td></tr>") != std::string::npos);
  CHECK(page.find("<td>discovered, withdrawn</td></tr>") != std::string::npos);
  CHECK(page.find("<td>config</td></tr>") == std::string::npos);
}

TEST_CASE("status page: stays a few tens of KiB with every history ring full") {
  // Three endpoints, each with its full ring of checks (240), failures among them (each drawn as
  // a mark of its own): the worst case of the page's size.
  std::vector<std::shared_ptr<Upstream>> ups;
  for (const char *a : {"10.0.0.11:6443", "10.0.0.12:6443", "10.0.0.13:6443"}) {
    ups.push_back(std::make_shared<Upstream>(*parse_host_port(a)));
    ups.back()->set_health(Health::Up);
    for (int i = 0; i < 240; i++) {
      const bool fail = i % 3 == 0;
      ups.back()->check_history.add(
          CheckSample{static_cast<int64_t>(10000 + i * 1000), static_cast<uint32_t>(800 + i),
                      fail ? CheckResult::L7Tout : CheckResult::Ok, i % 2 == 0});
    }
  }
  ProcessStats ps;
  ps.ready = true;
  ps.start_time_seconds = 1000;
  ps.now_unix = 1250;
  ps.now_mono_ms = 250000;
  for (size_t i = 0; i < kal::EventLog::kCapacity; i++) { // the event log's bound
    ps.events.push_back(Event{static_cast<int64_t>(1000000 + i * 1000), EventKind::Transition,
                              "10.0.0.11:6443", "up -> down (L7TOUT)"});
  }
  const std::string page = render_status_page(stats_json(ups, ps));
  MESSAGE("rendered page with three full rings: ", page.size(), " bytes");
  CHECK(page.size() < 64 * 1024);
}
