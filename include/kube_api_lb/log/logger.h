#pragma once
// One log line per event, `ts=... level=info msg="..." key=value ...` or JSON (--log-format=json),
// written to stderr with a single write(2) so lines from several threads never interleave.
//
//   log::info("endpoint up").kv("endpoint", name).kv("health", "up");   // emitted at end of
//   statement if (log::v(2)) log::debug("accepted").kv("peer", peer);

#include <cstdint>
#include <sstream>
#include <string>
#include <string_view>

namespace kal {
// Text: key=value lines; Json: one object per line (--log-format).
enum class LogFormat { Text, Json };
} // namespace kal

namespace kal::log {

enum class Level { Debug, Info, Warn, Error };

void set_format(LogFormat f);
void set_verbosity(int v);
int verbosity();
inline bool v(int level) { return verbosity() >= level; }

// A log line being built; emitted by the destructor.
class Line {
public:
  Line(Level level, std::string_view msg);
  Line(const Line &) = delete;
  ~Line();
  Line &kv(std::string_view key, std::string_view value);
  Line &kv(std::string_view key, const std::string &value) {
    return kv(key, std::string_view(value));
  }
  Line &kv(std::string_view key, const char *value) { return kv(key, std::string_view(value)); }
  Line &kv(std::string_view key, int64_t value);
  Line &kv(std::string_view key, uint64_t value);
  Line &kv(std::string_view key, int value) { return kv(key, static_cast<int64_t>(value)); }
  Line &kv(std::string_view key, unsigned value) { return kv(key, static_cast<uint64_t>(value)); }
  Line &kv(std::string_view key, double value);
  Line &kv(std::string_view key, bool value) { return kv(key, value ? "true" : "false"); }

private:
  void raw(std::string_view key, std::string_view value, bool quote_json);
  std::string buf_;
  bool json_;
};

inline Line debug(std::string_view msg) { return Line(Level::Debug, msg); }
inline Line info(std::string_view msg) { return Line(Level::Info, msg); }
inline Line warn(std::string_view msg) { return Line(Level::Warn, msg); }
inline Line error(std::string_view msg) { return Line(Level::Error, msg); }

} // namespace kal::log
