// Anomaly rules on tables of histories (newest first).
#include "daemon/anomaly.h"

#include <gtest/gtest.h>

namespace cairn::daemon {
namespace {

constexpr double kGiB = 1024.0 * 1024 * 1024;

// Sizes around `size` and durations around `dur`, wobbling by up to `noise`
// (a fraction) in a fixed pattern.
std::vector<RunSample> history(double size, double dur, double noise, size_t n = 10) {
  static const double kWobble[] = {0.0, 0.6, -0.4, 1.0, -1.0, 0.2, -0.7, 0.9, -0.2, 0.5, -0.5};
  std::vector<RunSample> out;
  for (size_t i = 0; i < n; ++i) {
    double w = kWobble[i % std::size(kWobble)] * noise;
    out.push_back({size * (1 + w), dur * (1 + w)});
  }
  return out;
}

struct Case {
  const char* what;
  std::vector<RunSample> history;
  RunSample current;
  std::vector<AnomalyKind> expected;
};

TEST(Anomaly, Table) {
  const std::vector<Case> cases = {
      {"dump suddenly 90% smaller",
       history(10 * kGiB, 600, 0.05),
       {1 * kGiB, 600},
       {AnomalyKind::kSizeDrop}},
      {"normal +5% noise", history(10 * kGiB, 600, 0.05), {10.5 * kGiB, 630}, {}},
      {"normal -5% noise", history(10 * kGiB, 600, 0.05), {9.5 * kGiB, 570}, {}},
      {"steady history, 1% change", history(10 * kGiB, 600, 0.0), {9.9 * kGiB, 606}, {}},
      {"steady history, 60% drop",
       history(10 * kGiB, 600, 0.0),
       {4 * kGiB, 600},
       {AnomalyKind::kSizeDrop}},
      {"45% drop is not below half", history(10 * kGiB, 600, 0.02), {5.5 * kGiB, 600}, {}},
      {"size tripled", history(10 * kGiB, 600, 0.05), {30 * kGiB, 600}, {AnomalyKind::kSizeSpike}},
      {"empty dump", history(10 * kGiB, 600, 0.05), {0, 5}, {AnomalyKind::kSizeDrop}},
      {"duration tripled",
       history(10 * kGiB, 600, 0.05),
       {10 * kGiB, 1800},
       {AnomalyKind::kDurationSpike}},
      {"tiny job 1 s -> 3 s", history(1e6, 1, 0.0), {1e6, 3}, {}},
      {"tiny job 1 s -> 50 s", history(1e6, 1, 0.1), {1e6, 50}, {}},
      {"tiny job 1 s -> 120 s", history(1e6, 1, 0.1), {1e6, 120}, {AnomalyKind::kDurationSpike}},
      {"noisy durations, 1.8x", history(10 * kGiB, 600, 0.3), {10 * kGiB, 1080}, {}},
      {"both at once",
       history(10 * kGiB, 600, 0.05),
       {25 * kGiB, 2000},
       {AnomalyKind::kSizeSpike, AnomalyKind::kDurationSpike}},
      {"too little history", history(10 * kGiB, 600, 0.05, 4), {1 * kGiB, 6000}, {}},
      {"just enough history",
       history(10 * kGiB, 600, 0.05, 5),
       {1 * kGiB, 600},
       {AnomalyKind::kSizeDrop}},
      {"all-empty history", history(0, 1, 0.0), {1e6, 1}, {}},
  };
  for (const Case& c : cases) {
    auto got = detect_anomalies(c.history, c.current);
    std::vector<AnomalyKind> kinds;
    for (const auto& a : got) kinds.push_back(a.kind);
    EXPECT_EQ(kinds, c.expected) << c.what;
  }
}

TEST(Anomaly, OnlyTheNewestWindowCounts) {
  // 10 recent runs at 1 GiB, older ones at 100 GiB: the old ones are ignored.
  std::vector<RunSample> h = history(1 * kGiB, 60, 0.02, 10);
  auto old = history(100 * kGiB, 60, 0.02, 20);
  h.insert(h.end(), old.begin(), old.end());
  EXPECT_TRUE(detect_anomalies(h, {1 * kGiB, 60}).empty());
  AnomalyOptions wide;
  wide.window = 30;
  auto got = detect_anomalies(h, {1 * kGiB, 60}, wide);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].kind, AnomalyKind::kSizeDrop);
}

TEST(Anomaly, MessageAndNumbers) {
  auto got = detect_anomalies(history(10 * kGiB, 600, 0.0), {1 * kGiB, 600});
  ASSERT_EQ(got.size(), 1u);
  EXPECT_DOUBLE_EQ(got[0].median, 10 * kGiB);
  EXPECT_DOUBLE_EQ(got[0].sigma, 0);
  EXPECT_DOUBLE_EQ(got[0].threshold, 5 * kGiB);
  EXPECT_EQ(got[0].message, "size 1.0 GiB is 90% below the median 10.0 GiB of the last 10 runs");
  EXPECT_STREQ(anomaly_kind_name(got[0].kind), "size drop");
}

TEST(Anomaly, MedianAndMad) {
  EXPECT_DOUBLE_EQ(median({}), 0);
  EXPECT_DOUBLE_EQ(median({3, 1, 2}), 2);
  EXPECT_DOUBLE_EQ(median({4, 1, 3, 2}), 2.5);
  // |x - 3| = {2, 1, 0, 1, 97} -> median 1 -> 1.4826.
  EXPECT_DOUBLE_EQ(scaled_mad({1, 2, 3, 4, 100}, 3), 1.4826);
}

}  // namespace
}  // namespace cairn::daemon
