// kal_fuzz_replay: runs every file under CORPUS_ROOT/corpus/<target>/ and
// CORPUS_ROOT/regressions/<target>/ through that target's harness (the same sources the fuzzers
// are built from), so the ordinary test run, plain and under ASan+UBSan, replays the seeds and
// every input that ever failed. A property failure traps (the test fails, naming the file).
//
//   kal_fuzz_replay CORPUS_ROOT [TARGET [FILE...]]
#include "fuzz_target.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>

namespace fs = std::filesystem;

namespace {

std::string read_file(const fs::path &p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

size_t replay(const kal::fuzz::Target &t, const std::vector<fs::path> &files) {
  for (const auto &f : files) {
    const std::string bytes = read_file(f);
    kal::fuzz::current_input = f.string();
    t.fn(reinterpret_cast<const uint8_t *>(bytes.data()), bytes.size());
  }
  kal::fuzz::current_input.clear();
  return files.size();
}

std::vector<fs::path> files_under(const fs::path &dir) {
  std::vector<fs::path> out;
  if (fs::is_directory(dir)) {
    for (const auto &e : fs::recursive_directory_iterator(dir)) {
      if (e.is_regular_file() && e.path().filename() != "README.md") {
        out.push_back(e.path());
      }
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

} // namespace

int main(int argc, char **argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: kal_fuzz_replay CORPUS_ROOT [TARGET [FILE...]]\n");
    return 2;
  }
  const fs::path root = argv[1];
  std::set<std::string> names;
  int failures = 0;
  for (const auto &t : kal::fuzz::targets()) {
    names.insert(t.name);
    if (argc >= 3 && t.name != std::string(argv[2])) {
      continue;
    }
    if (argc >= 4) {
      std::vector<fs::path> files(argv + 3, argv + argc);
      std::printf("%s: %zu given input(s) passed\n", t.name, replay(t, files));
      continue;
    }
    size_t seeds = replay(t, files_under(root / "corpus" / t.name));
    size_t regressions = replay(t, files_under(root / "regressions" / t.name));
    std::printf("%-16s %4zu corpus inputs, %3zu regressions: properties hold\n", t.name, seeds,
                regressions);
    if (seeds == 0) {
      std::fprintf(stderr, "%s: no seed corpus under %s\n", t.name,
                   (root / "corpus" / t.name).c_str());
      ++failures;
    }
  }
  // A corpus or regression directory no harness reads would be replayed by nobody.
  for (const char *kind : {"corpus", "regressions"}) {
    if (!fs::is_directory(root / kind)) {
      continue;
    }
    for (const auto &e : fs::directory_iterator(root / kind)) {
      if (e.is_directory() && !names.count(e.path().filename().string())) {
        std::fprintf(stderr, "%s: no harness named %s\n", e.path().c_str(),
                     e.path().filename().c_str());
        ++failures;
      }
    }
  }
  return failures == 0 ? 0 : 1;
}
