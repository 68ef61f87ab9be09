#pragma once
// Durations as Kubernetes writes them ("1s", "500ms", "1m30s", "0"), shared by flags and the YAML
// reader, so that a value means the same thing wherever an operator writes it.
#include "kube_api_lb/config/config.h"
#include "kube_api_lb/core/result.h"

#include <string>
#include <string_view>

namespace kal {

// Parses a Go/Kubernetes-style duration: one or more <number><unit> terms, units "h", "m", "s",
// "ms", "us"/"µs", "ns"; the number may have a fraction ("1.5s"). A bare "0" is zero. Negative
// durations, missing units ("5"), unknown units and values above 8760h (one year; nothing sane
// needs more, and it keeps arithmetic on deadlines far from overflow) are errors; the error quotes
// the text and says what is wrong. Sub-millisecond remainders are rounded to the nearest
// millisecond ("1500us" -> 2ms, "100us" -> 0ms is an error because it would silently become zero).
Result<Millis> parse_duration(std::string_view text);

// Formats a duration in the shortest exact form parse_duration reads back: 0 -> "0s", 1500ms ->
// "1.5s", 90s -> "1m30s", 250ms -> "250ms", 3600s -> "1h0m0s" (Go's time.Duration.String for
// whole milliseconds). parse_duration(format_duration(d)) == d for every d >= 0.
std::string format_duration(Millis d);

} // namespace kal
