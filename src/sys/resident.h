// Giving start-up memory back to the kernel once the proxy is running.
#pragma once

#include <cstddef>
#include <vector>

namespace kal {

// One mapping of this process's own executable file, from /proc/self/smaps.
struct ExeMapping {
  unsigned long lo = 0;
  unsigned long hi = 0;
  bool writable = false;
  bool executable = false;
  long rss_kb = 0;
  long anonymous_kb = -1; // private copies in it (relocations written at start-up); -1 unknown
};

// The executable's file mappings; empty when /proc is not there.
std::vector<ExeMapping> exe_mappings();

// Asks the kernel to drop this process's mappings of the pages of its executable's read-only
// mappings (code and constants) that start-up touched: flag and config parsing, the YAML and
// nginx readers and the manifest renderer are never run again, but the 64 KiB fault-around windows
// they pulled in would otherwise stay resident for the life of the process. Pages still in use
// fault straight back in from the page cache. Returns the bytes of mappings advised; 0 when
// unsupported or not found.
std::size_t release_startup_pages();

} // namespace kal
