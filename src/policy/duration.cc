#include "policy/duration.h"

#include <fmt/format.h>

#include <cstdint>

namespace cairn::policy {

namespace {

struct Unit {
  char symbol;
  int64_t seconds;
};

// Largest first: the order units must appear in.
constexpr Unit kUnits[] = {{'w', 7 * 86400}, {'d', 86400}, {'h', 3600}, {'m', 60}, {'s', 1}};

// 9 digits times a week still fits int64 with room for every unit's sum.
constexpr size_t kMaxDigits = 9;

bool is_digit(char c) { return c >= '0' && c <= '9'; }

}  // namespace

core::Result<std::chrono::seconds> parse_duration(std::string_view text) {
  auto bad = [&](std::string_view why) {
    return core::invalid_argument(fmt::format("invalid duration \"{}\": {}", text, why));
  };
  if (text.empty()) return bad("empty");
  int64_t total = 0;
  size_t next_unit = 0;  // index into kUnits of the largest unit still allowed
  size_t i = 0;
  while (i < text.size()) {
    size_t j = i;
    while (j < text.size() && is_digit(text[j])) ++j;
    if (j == i) {
      if (text[i] == '-') return bad("negative durations are not allowed");
      return bad(fmt::format("expected a number at \"{}\"", text.substr(i)));
    }
    if (j == text.size()) {
      return bad(fmt::format("\"{}\" has no unit (w, d, h, m or s)", text.substr(i)));
    }
    if (j - i > kMaxDigits) return bad("too large");
    int64_t n = 0;
    for (size_t k = i; k < j; ++k) n = n * 10 + (text[k] - '0');
    size_t u = 0;
    while (u < std::size(kUnits) && kUnits[u].symbol != text[j]) ++u;
    if (u == std::size(kUnits)) {
      return bad(fmt::format("unknown unit \"{}\" (use w, d, h, m or s)", text[j]));
    }
    if (u < next_unit) return bad("each unit at most once, largest first (e.g. 1h30m)");
    total += n * kUnits[u].seconds;
    next_unit = u + 1;
    i = j + 1;
  }
  return std::chrono::seconds(total);
}

std::string format_duration(std::chrono::seconds d) {
  int64_t s = d.count();
  if (s == 0) return "0s";
  std::string out;
  // Negate as unsigned so INT64_MIN does not overflow.
  uint64_t rest = static_cast<uint64_t>(s);
  if (s < 0) {
    out = "-";
    rest = 0 - rest;
  }
  for (const Unit& unit : kUnits) {
    if (unit.symbol == 'w') continue;  // "14d" reads better than "2w" in reports
    uint64_t n = rest / static_cast<uint64_t>(unit.seconds);
    if (n == 0) continue;
    out += fmt::format("{}{}", n, unit.symbol);
    rest -= n * static_cast<uint64_t>(unit.seconds);
  }
  return out;
}

}  // namespace cairn::policy
