#include "sys/resident.h"

#include <doctest/doctest.h>

#include <vector>

namespace {

std::vector<kal::ExeMapping> code_mappings() {
  std::vector<kal::ExeMapping> out;
  for (const auto &m : kal::exe_mappings()) {
    if (m.executable) {
      out.push_back(m);
    }
  }
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

TEST_CASE("exe_mappings lists this binary's mappings, code among them, with their sizes") {
  auto all = kal::exe_mappings();
  REQUIRE_FALSE(all.empty());
  auto code = code_mappings();
  REQUIRE_FALSE(code.empty());
  for (const auto &m : all) {
    CHECK(m.hi > m.lo);
    CHECK(m.rss_kb >= 0);
    CHECK(m.anonymous_kb >= 0);
  }
}

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
