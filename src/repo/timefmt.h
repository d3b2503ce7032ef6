// Snapshot timestamps: RFC 3339 with nanoseconds and the local UTC offset
// ("2026-11-25T22:08:17.123456789+01:00"), kept as wall time + offset so that
// retention can bucket in the snapshot's own time zone.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace cairn::repo {

struct Time {
  int64_t unix_ns = 0;       // instant
  int32_t utc_offset_s = 0;  // offset the wall-clock form is shown in
};

Time now_time();
std::string format_time(const Time& t);
// Accepts RFC 3339 ("Z" or "+hh:mm", optional fraction) and "YYYY-MM-DD HH:MM:SS" (local).
std::optional<Time> parse_time(const std::string& s);

}  // namespace cairn::repo
