#include "sys/resident.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif

namespace kal {

std::vector<ExeMapping> exe_mappings() {
  std::vector<ExeMapping> out;
  char exe[4096];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (n <= 0) {
    return out;
  }
  exe[n] = '\0';
  std::FILE *smaps = std::fopen("/proc/self/smaps", "re");
  if (smaps == nullptr) {
    return out;
  }
  bool ours = false; // the fields that follow belong to one of our mappings
  char line[4096 + 128];
  while (std::fgets(line, sizeof(line), smaps) != nullptr) {
    unsigned long lo = 0;
    unsigned long hi = 0;
    char perms[8] = {};
    int path_at = 0;
    long kb = 0;
    if (std::sscanf(line, "%lx-%lx %7s %*s %*s %*s %n", &lo, &hi, perms, &path_at) >= 3 &&
        path_at > 0) {
      std::string path(line + path_at);
      while (!path.empty() && (path.back() == '\n' || path.back() == ' ')) {
        path.pop_back();
      }
      ours = path == exe;
      if (ours) {
        out.push_back({lo, hi, perms[1] == 'w', perms[2] == 'x', 0, -1});
      }
    } else if (ours && std::sscanf(line, "Rss: %ld kB", &kb) == 1) {
      out.back().rss_kb = kb;
    } else if (ours && std::sscanf(line, "Anonymous: %ld kB", &kb) == 1) {
      out.back().anonymous_kb = kb;
    }
  }
  std::fclose(smaps);
  return out;
}

std::size_t release_startup_pages() {
  std::size_t advised = 0;
  for (const auto &m : exe_mappings()) {
    // Only read-only mappings: the writable data is memory in use. Shared libraries are left
    // alone too (they are likely shared with other processes).
    if (m.writable || m.hi <= m.lo) {
      continue;
    }
    // MADV_DONTNEED unmaps the pages from this process only; clean file pages stay in the page
    // cache, so a page needed again costs a minor fault, not a disk read. A mapping holding
    // private (copied-on-write) pages is asked to page out instead: MADV_DONTNEED would throw
    // their contents away.
    int advice = m.anonymous_kb == 0 ? MADV_DONTNEED : MADV_PAGEOUT;
    if (madvise(reinterpret_cast<void *>(m.lo), m.hi - m.lo, advice) == 0) {
      advised += m.hi - m.lo;
    }
  }
  return advised;
}

} // namespace kal
