// The config-file watch on a real loop and a real directory: a change of content is reported once
// its burst of events has settled, a rewrite with the same bytes and other files in the directory
// are not, and the atomic rename kubelet and Ansible use is seen.
#include "app/config_watcher.h"
#include "uv_test_loop.h"

#include <doctest/doctest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

using namespace std::chrono_literals;
using kal::ConfigWatcher;
using kal::testing::Loop;

namespace {

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    char tmpl[] = "/tmp/kal-watch-XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

void write(const std::filesystem::path &p, const std::string &content) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f << content;
}

// Written next to the target and renamed into place, as kubelet and Ansible do.
void replace(const std::filesystem::path &p, const std::string &content) {
  auto tmp = p;
  tmp += ".tmp";
  write(tmp, content);
  std::filesystem::rename(tmp, p);
}

struct Fixture {
  TempDir dir;
  std::filesystem::path file = dir.path / "kube-api-lb.yaml";
  Loop loop;
  int changes = 0;
  std::unique_ptr<ConfigWatcher> watcher;

  Fixture() {
    write(file, "endpoints: [a]\n");
    watcher = std::make_unique<ConfigWatcher>(&loop.loop, file.string(), [this] {
      ++changes;
      watcher->remember_content(); // as a reload does
    });
    REQUIRE(watcher->start());
  }
  ~Fixture() {
    watcher->stop();
    watcher.reset();
    loop.run_for(10ms);
  }
  // Long enough for the debounce and a late event.
  void settle() { loop.run_for(std::chrono::milliseconds(ConfigWatcher::kDebounceMs * 2)); }
};

} // namespace

TEST_CASE("config watcher: new content is reported once, after the burst settles") {
  Fixture f;
  write(f.file, "endpoints: [a, b]\n");
  write(f.file, "endpoints: [a, b, c]\n"); // the same burst
  REQUIRE(f.loop.run_until([&] { return f.changes > 0; }, 3s));
  f.settle();
  CHECK(f.changes == 1);
}

TEST_CASE("config watcher: the same bytes again, or another file in the directory, are no change") {
  Fixture f;
  write(f.file, "endpoints: [a]\n");
  write(f.dir.path / "other.yaml", "x: 1\n");
  f.settle();
  CHECK(f.changes == 0);
}

TEST_CASE("config watcher: an atomic rename into place is seen") {
  Fixture f;
  replace(f.file, "endpoints: [b]\n");
  REQUIRE(f.loop.run_until([&] { return f.changes == 1; }, 3s));
  replace(f.file, "endpoints: [b]\n"); // renamed again, same content
  f.settle();
  CHECK(f.changes == 1);
}

TEST_CASE("config watcher: a change already read by a reload is not reported again") {
  Fixture f;
  write(f.file, "endpoints: [c]\n");
  f.watcher->remember_content(); // SIGHUP reloaded before the debounce ran out
  f.settle();
  CHECK(f.changes == 0);
}

TEST_CASE("config watcher: nothing is reported after stop()") {
  Fixture f;
  f.watcher->stop();
  write(f.file, "endpoints: [d]\n");
  f.settle();
  CHECK(f.changes == 0);
}
