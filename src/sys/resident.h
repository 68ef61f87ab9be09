// Giving start-up memory back to the kernel once the proxy is running.
#pragma once

#include <cstddef>

namespace kal {

// Asks the kernel (MADV_PAGEOUT) to reclaim the pages of this executable's read-only mappings
// (code and constants) that start-up touched: flag and config parsing, the YAML and nginx
// readers and the manifest renderer are never run again, but the 64 KiB fault-around windows they
// pulled in would otherwise stay resident for the life of the process. Pages still in use fault
// straight back in from the page cache. Folios another process also maps are left alone by the
// kernel. Returns the bytes of mappings advised; 0 when unsupported (old kernels) or not found.
std::size_t release_startup_pages();

} // namespace kal
