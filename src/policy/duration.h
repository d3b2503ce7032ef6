// Durations in policy files and schedules: "90s", "15m", "1h30m", "7d", "2w".
// Used by `@every` schedules and RPO limits. Pure functions; thread-safe.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "core/status.h"

namespace cairn::policy {

// Parses one or more <digits><unit> groups, units w (7 days), d (24 hours), h, m, s, each unit
// at most once and largest first ("1h30m", not "30m1h"). Bare numbers, signs, spaces and other
// units are rejected with kInvalidArgument naming the text. "0s" is a valid (zero) duration;
// callers that need a positive value check it.
core::Result<std::chrono::seconds> parse_duration(std::string_view text);

// Canonical text of a duration in d, h, m, s (largest first, zero parts left out):
// 5400s -> "1h30m", 2w -> "14d", 0 -> "0s", negative -> "-" + text. parse_duration reads it back.
std::string format_duration(std::chrono::seconds d);

}  // namespace cairn::policy
