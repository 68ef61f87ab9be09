#include "sys/resident.h"

#include <doctest/doctest.h>

#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

namespace {

struct ExecMapping {
  unsigned long lo = 0;
  unsigned long hi = 0;
  long rss_kb = 0;
};

// The executable's own executable (code) mappings, with their resident size.
std::vector<ExecMapping> code_mappings() {
  char exe[4096];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  REQUIRE(n > 0);
  exe[n] = '\0';
  std::vector<ExecMapping> out;
  std::FILE *f = std::fopen("/proc/self/smaps", "re");
  REQUIRE(f != nullptr);
  char line[4200];
  bool ours = false;
  while (std::fgets(line, sizeof(line), f) != nullptr) {
    unsigned long lo = 0;
    unsigned long hi = 0;
    char perms[8] = {};
    int at = 0;
    long kb = 0;
    if (std::sscanf(line, "%lx-%lx %7s %*s %*s %*s %n", &lo, &hi, perms, &at) >= 3 && at > 0) {
      std::string path(line + at);
      while (!path.empty() && (path.back() == '\n' || path.back() == ' ')) {
        path.pop_back();
      }
      ours = path == exe && perms[2] == 'x';
      if (ours) {
        out.push_back({lo, hi, 0});
      }
    } else if (ours && std::sscanf(line, "Rss: %ld kB", &kb) == 1) {
      out.back().rss_kb = kb;
    }
  }
  std::fclose(f);
  return out;
}

long code_rss_kb() {
  long sum = 0;
  for (const auto &m : code_mappings()) {
    sum += m.rss_kb;
  }
  return sum;
}

} // namespace

TEST_CASE("release_startup_pages unmaps the executable's code pages, and the code still runs") {
  auto maps = code_mappings();
  REQUIRE_FALSE(maps.empty());
  // Make every code page resident, as a long start-up would.
  unsigned sum = 0;
  long total_kb = 0;
  for (const auto &m : maps) {
    for (unsigned long a = m.lo; a < m.hi; a += 4096) {
      sum += *reinterpret_cast<const volatile unsigned char *>(a);
    }
    total_kb += static_cast<long>((m.hi - m.lo) / 1024);
  }
  long before = code_rss_kb();
  CHECK(before >= total_kb * 9 / 10);

  std::size_t advised = kal::release_startup_pages();
  CHECK(advised >= static_cast<std::size_t>(total_kb) * 1024);
  long after = code_rss_kb();
  // What comes back is only what ran since: the smaps reader and its fault-around windows.
  CHECK(after < before / 2);

  // Private (relocated) data and code are intact: calling through the library works again.
  CHECK(kal::release_startup_pages() == advised);
  CHECK(sum > 0);
}
