#include "policy/duration.h"

#include <gtest/gtest.h>

namespace cairn::policy {
namespace {

using std::chrono::seconds;

std::string error_of(std::string_view text) {
  auto r = parse_duration(text);
  EXPECT_FALSE(r.ok()) << text;
  if (r.ok()) return "";
  EXPECT_EQ(r.status().code(), core::Code::kInvalidArgument);
  return r.status().message();
}

TEST(Duration, ParsesUnitsAndCombinations) {
  const std::pair<const char*, int64_t> cases[] = {
      {"90s", 90},
      {"15m", 900},
      {"1h", 3600},
      {"1h30m", 5400},
      {"7d", 604800},
      {"2w", 1209600},
      {"0s", 0},
      {"1d12h", 129600},
      {"1w2d3h4m5s", 788645},
      {"0001m", 60},
      {"999999999s", 999999999},
  };
  for (const auto& [text, secs] : cases) {
    auto r = parse_duration(text);
    ASSERT_TRUE(r.ok()) << text << ": " << r.status().message();
    EXPECT_EQ(r->count(), secs) << text;
  }
}

TEST(Duration, RejectsBadTextNamingIt) {
  EXPECT_EQ(error_of(""), "invalid duration \"\": empty");
  EXPECT_EQ(error_of("90"), "invalid duration \"90\": \"90\" has no unit (w, d, h, m or s)");
  EXPECT_EQ(error_of("1h30"), "invalid duration \"1h30\": \"30\" has no unit (w, d, h, m or s)");
  EXPECT_EQ(error_of("-5m"), "invalid duration \"-5m\": negative durations are not allowed");
  EXPECT_EQ(error_of("+5m"), "invalid duration \"+5m\": expected a number at \"+5m\"");
  EXPECT_EQ(error_of("h"), "invalid duration \"h\": expected a number at \"h\"");
  EXPECT_EQ(error_of("1h 30m"), "invalid duration \"1h 30m\": expected a number at \" 30m\"");
  EXPECT_EQ(error_of("5x"), "invalid duration \"5x\": unknown unit \"x\" (use w, d, h, m or s)");
  EXPECT_EQ(error_of("5H"), "invalid duration \"5H\": unknown unit \"H\" (use w, d, h, m or s)");
  EXPECT_EQ(error_of("1.5h"),
            "invalid duration \"1.5h\": unknown unit \".\" (use w, d, h, m or s)");
  EXPECT_EQ(error_of("30m1h"),
            "invalid duration \"30m1h\": each unit at most once, largest first (e.g. 1h30m)");
  EXPECT_EQ(error_of("1h1h"),
            "invalid duration \"1h1h\": each unit at most once, largest first (e.g. 1h30m)");
  EXPECT_EQ(error_of("1234567890s"), "invalid duration \"1234567890s\": too large");
}

TEST(Duration, FormatsLargestUnitFirstWithoutZeroParts) {
  EXPECT_EQ(format_duration(seconds{5400}), "1h30m");
  EXPECT_EQ(format_duration(seconds{0}), "0s");
  EXPECT_EQ(format_duration(seconds{59}), "59s");
  EXPECT_EQ(format_duration(seconds{86400}), "1d");
  EXPECT_EQ(format_duration(seconds{1209600}), "14d");
  EXPECT_EQ(format_duration(seconds{31 * 86400 + 3600}), "31d1h");
  EXPECT_EQ(format_duration(seconds{90061}), "1d1h1m1s");
  EXPECT_EQ(format_duration(seconds{-90}), "-1m30s");
}

TEST(Duration, FormatRoundTrips) {
  for (int64_t s : {1, 60, 61, 3599, 3600, 5400, 86399, 86400, 90061, 31 * 86400, 400 * 86400}) {
    auto r = parse_duration(format_duration(seconds{s}));
    ASSERT_TRUE(r.ok()) << s;
    EXPECT_EQ(r->count(), s);
  }
}

}  // namespace
}  // namespace cairn::policy
