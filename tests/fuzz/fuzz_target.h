// The fuzz harnesses (tests/fuzz/*_fuzz.cc) and what they share. Each harness is written once as
// KAL_FUZZ_TARGET(name) { ... } and linked two ways: with libFuzzer (libfuzzer_entry.cc, clang,
// -DKAL_FUZZ=ON, scripts/fuzz.sh) as one fuzzer per target, and with replay_main.cc (any
// compiler) into kal_fuzz_replay, which the ordinary test run uses to replay the corpora and every
// input that ever failed (docs/fuzzing.md).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace kal::fuzz {

using TargetFn = void (*)(const uint8_t *data, size_t size);

struct Target {
  const char *name;
  TargetFn fn;
};

// Every target linked into this program, in registration order.
std::vector<Target> &targets();
bool register_target(const char *name, TargetFn fn);

// What the replay driver is running (a file name), printed when a property fails.
extern std::string current_input;

// A property failed: says which and where on stderr, then traps so libFuzzer records the input
// as a crash (and the replay test fails).
[[noreturn]] void property_failed(const char *file, int line, const char *what,
                                  const std::string &detail);

// Splits the input at `sep` into pieces (used for argv, and for an HTTP byte stream's chunks).
std::vector<std::string> split(std::string_view s, char sep);

// True if `error` begins with "FILE:LINE:COL: " (LINE and COL positive decimals, LINE at most
// `max_line`); stores LINE in *line.
bool has_file_line_col(const std::string &error, const std::string &file, int max_line,
                       int *line = nullptr);

} // namespace kal::fuzz

#define KAL_FUZZ_CHECK(cond, detail)                                                               \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      ::kal::fuzz::property_failed(__FILE__, __LINE__, #cond, (detail));                           \
    }                                                                                              \
  } while (0)

#define KAL_FUZZ_TARGET(name)                                                                      \
  static void kal_fuzz_##name(const uint8_t *data, size_t size);                                   \
  [[maybe_unused]] static const bool kal_fuzz_registered_##name =                                  \
      ::kal::fuzz::register_target(#name, kal_fuzz_##name);                                        \
  static void kal_fuzz_##name(const uint8_t *data, size_t size)
