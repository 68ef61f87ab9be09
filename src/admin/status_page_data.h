#pragma once
// Generated at build time from src/admin/status_page.html (cmake/embed_status_page.cmake): the
// template and the SHA-256 hashes (base64) of its inline <style> and <script>.
namespace kal::status_page_data {
extern const char kTemplate[];
extern const char kStyleHash[];
extern const char kScriptHash[];
} // namespace kal::status_page_data
