#include "sys/resident.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif

namespace kal {

namespace {

struct Mapping {
  unsigned long lo = 0;
  unsigned long hi = 0;
  bool ours = false;      // a read-only mapping of our own executable
  long anonymous_kb = -1; // private copies in it (relocations written at start-up)
};

// Unmaps the pages from this process only. Clean file pages stay in the page cache, so a page
// needed again costs a minor fault, not a disk read. A mapping holding private (copied-on-write)
// pages is asked to page out instead: MADV_DONTNEED would throw their contents away.
std::size_t release(const Mapping &m) {
  if (!m.ours || m.hi <= m.lo) {
    return 0;
  }

  int advice = m.anonymous_kb == 0 ? MADV_DONTNEED : MADV_PAGEOUT;
  if (madvise(reinterpret_cast<void *>(m.lo), m.hi - m.lo, advice) != 0) {
    return 0;
  }
  return m.hi - m.lo;
}

} // namespace

std::size_t release_startup_pages() {
  char exe[4096];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (n <= 0) {
    return 0;
  }
  exe[n] = '\0';
  std::FILE *smaps = std::fopen("/proc/self/smaps", "re");
  if (smaps == nullptr) {
    return 0;
  }
  std::size_t advised = 0;
  Mapping cur;
  char line[4096 + 128];
  while (std::fgets(line, sizeof(line), smaps) != nullptr) {
    unsigned long lo = 0;
    unsigned long hi = 0;
    char perms[8] = {};
    int path_at = 0;
    long kb = 0;
    if (std::sscanf(line, "%lx-%lx %7s %*s %*s %*s %n", &lo, &hi, perms, &path_at) >= 3 &&
        path_at > 0) {
      advised += release(cur);
      std::string path(line + path_at);
      while (!path.empty() && (path.back() == '\n' || path.back() == ' ')) {
        path.pop_back();
      }
      // Only the executable's own file-backed, read-only mappings: its writable data and the
      // heap are memory in use, and shared libraries are likely shared with other processes.
      cur = Mapping{lo, hi, path == exe && perms[1] != 'w', -1};
    } else if (std::sscanf(line, "Anonymous: %ld kB", &kb) == 1) {
      cur.anonymous_kb = kb;
    }
  }
  advised += release(cur);
  std::fclose(smaps);
  return advised;
}

} // namespace kal
