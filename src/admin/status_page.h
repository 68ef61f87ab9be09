#pragma once
// The status page (GET / on the admin listener): one self-contained HTML document, its template
// src/admin/status_page.html compiled into the binary by CMake (cmake/embed_status_page.cmake).
// The server fills in a table from the /stats document so that the page says everything without
// JavaScript; the page's own script then redraws the same markup from /stats?compact every 1.5 s.
// Pure functions: unit-tested without sockets.
#include "admin/metrics.h"

#include <nlohmann/json_fwd.hpp>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace kal {

// `s` as HTML text or a double-quoted attribute value: & < > " ' escaped; bytes that are not valid
// UTF-8 and control characters other than tab and newline become U+FFFD, so no string from the
// configuration or the network can open a tag, leave an attribute or smuggle a byte a browser
// would reinterpret.
std::string html_escape(std::string_view s);

// The whole page, from the /stats document (admin/metrics.h stats_json).
std::string render_status_page(const nlohmann::json &stats);
// The same, from the proxy's state.
std::string render_status_page(const std::vector<std::shared_ptr<Upstream>> &ups,
                               const ProcessStats &ps);

// The page's Content-Security-Policy: nothing from anywhere, its one inline script and one inline
// style allowed by their SHA-256 (computed from the template at build time), fetches to its own
// origin only.
const std::string &status_page_csp();

// The template as compiled in, and the placeholders it holds (for the tests).
std::string_view status_page_template();

} // namespace kal
