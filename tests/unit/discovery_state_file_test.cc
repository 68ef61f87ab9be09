#include "discovery/state_file.h"

#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

using namespace kal;

namespace {

HostPort ep(const char *s) { return *parse_host_port(s); }

std::string temp_dir() {
  char tmpl[] = "/tmp/kal-state-test-XXXXXX";
  const char *d = mkdtemp(tmpl);
  REQUIRE(d);
  return d;
}

void write(const std::string &path, const std::string &text) { std::ofstream(path) << text; }

} // namespace

TEST_CASE("state file: round trip, and every bad file is an error naming the problem") {
  const DiscoveryState good{{ep("10.0.0.11:6443"), ep("10.0.0.12:6443")},
                            {ep("10.0.0.21:6443"), ep("[fd00::2]:6443")},
                            "2026-12-07T05:00:00Z"};
  auto back = decode_discovery_state(encode_discovery_state(good));
  REQUIRE(back);
  CHECK(*back == good);

  struct Row {
    const char *name;
    std::string text;
    const char *error;
  };
  const Row rows[] = {
      {"not JSON (a torn write of an older tool)", "{\"kind\": \"KubeAPI", "not JSON"},
      {"another document", "[]", "not a JSON object"},
      {"another kind", R"({"kind":"Pod"})", "kind is not KubeAPILBDiscoveryState"},
      {"no version", R"({"kind":"KubeAPILBDiscoveryState"})", "formatVersion is missing"},
      {"a newer version",
       R"({"kind":"KubeAPILBDiscoveryState","formatVersion":2,"seed":[],"endpoints":["1.2.3.4:1"]})",
       "formatVersion 2 is not supported (this kube-api-lb reads 1)"},
      {"a bad address",
       R"({"kind":"KubeAPILBDiscoveryState","formatVersion":1,"seed":[],"endpoints":["1.2.3.4"]})",
       "endpoints[0]: "},
      {"no endpoints",
       R"({"kind":"KubeAPILBDiscoveryState","formatVersion":1,"seed":[],"endpoints":[]})",
       "no endpoints"},
      {"no seed",
       R"({"kind":"KubeAPILBDiscoveryState","formatVersion":1,"endpoints":["1.2.3.4:1"]})",
       "seed is missing or not a list"},
  };
  for (const auto &r : rows) {
    CAPTURE(r.name);
    auto s = decode_discovery_state(r.text);
    REQUIRE(!s);
    CHECK(s.error().rfind(r.error, 0) == 0);
  }
}

TEST_CASE("state file on disk: atomic save, load, and the failures the proxy warns about") {
  const std::string dir = temp_dir();
  const std::string path = dir + "/state.json";
  const DiscoveryState st{{ep("10.0.0.11:6443")}, {ep("10.0.0.21:6443")}, "t"};

  bool missing = false;
  auto none = load_discovery_state(path, &missing);
  CHECK(!none);
  CHECK(missing);

  REQUIRE(save_discovery_state(path, st));
  auto back = load_discovery_state(path, &missing);
  REQUIRE(back);
  CHECK(!missing);
  CHECK(*back == st);
  // Nothing left behind but the file itself (the temporary file was renamed).
  CHECK(access((path + ".tmp." + std::to_string(getpid())).c_str(), F_OK) != 0);

  struct Row {
    const char *name;
    std::string path;
    const char *error;
  };
  write(dir + "/corrupt.json", "{\"kind\":\"KubeAPILBDiscoveryState\",\"formatVer");
  mkdir((dir + "/a-directory").c_str(), 0755);
  write(dir + "/a-file", "x");
  const Row load_rows[] = {
      {"corrupt", dir + "/corrupt.json", "state file "},
      {"unreadable (a directory where the file should be)", dir + "/a-directory", "state file "},
  };
  for (const auto &r : load_rows) {
    CAPTURE(r.name);
    auto s = load_discovery_state(r.path, &missing);
    REQUIRE(!s);
    CHECK(!missing);
    CHECK(s.error().rfind(r.error, 0) == 0);
    CHECK(s.error().find(r.path) != std::string::npos);
  }
  CHECK(load_discovery_state(dir + "/a-directory", &missing).error() ==
        "state file " + dir + "/a-directory is not a regular file");
  const Row save_rows[] = {
      {"unwritable: the directory does not exist", dir + "/nope/state.json", "cannot create "},
      {"unwritable: the parent is a file", dir + "/a-file/state.json", "cannot create "},
      {"unwritable: the target is a directory", dir + "/a-directory", "cannot rename "},
  };
  for (const auto &r : save_rows) {
    CAPTURE(r.name);
    auto s = save_discovery_state(r.path, st);
    REQUIRE(!s);
    CHECK(s.error().rfind(r.error, 0) == 0);
  }
  // A failed save leaves the old file as it was.
  CHECK(*load_discovery_state(path) == st);
  std::system(("rm -rf " + dir).c_str());
}
