// libFuzzer's entry point for a fuzzer built from one harness (scripts/fuzz.sh).
#include "fuzz_target.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  for (const auto &t : kal::fuzz::targets()) {
    t.fn(data, size);
  }
  return 0;
}
