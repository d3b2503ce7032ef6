// ScheduleBook: due times, catch-up after downtime, no bursts after a late
// start, missed-run grace, jitter bounds.
#include "daemon/schedule_book.h"

#include <gtest/gtest.h>

namespace cairn::daemon {
namespace {

using std::chrono::seconds;

Time at(int64_t unix_s) { return Time(seconds(unix_s)); }
policy::CronSchedule cron(const char* expr) { return policy::CronSchedule::parse(expr).value(); }

constexpr int64_t kT0 = 1795000000;  // 2026-11-18T06:13:20Z

TEST(ScheduleBookTest, NewServiceWaitsForItsFirstScheduledTime) {
  ScheduleBook book(nullptr, seconds(0), true, 1);
  EXPECT_FALSE(book.add("a", cron("0 * * * *"), std::nullopt, at(kT0)));
  EXPECT_EQ(*book.next("a"), at(kT0 - kT0 % 3600 + 3600));
  EXPECT_TRUE(book.due(at(kT0)).empty());
  EXPECT_EQ(book.due(at(kT0 - kT0 % 3600 + 3600)), std::vector<std::string>{"a"});
}

TEST(ScheduleBookTest, CatchUpOnceRunsOneMissedRunNow) {
  ScheduleBook book(nullptr, seconds(0), true, 1);
  // Due 10 hours ago: ten hourly runs were missed; one catch-up run.
  EXPECT_TRUE(book.add("a", cron("@hourly"), at(kT0 - 36000), at(kT0)));
  EXPECT_EQ(*book.next("a"), at(kT0));
  book.started("a", at(kT0));
  EXPECT_EQ(*book.next("a"), at(kT0 - kT0 % 3600 + 3600));
  EXPECT_TRUE(book.due(at(kT0 + 1)).empty());
}

TEST(ScheduleBookTest, CatchUpSkipWaitsForTheNextTime) {
  ScheduleBook book(nullptr, seconds(0), false, 1);
  EXPECT_TRUE(book.add("a", cron("@hourly"), at(kT0 - 36000), at(kT0)));
  EXPECT_EQ(*book.next("a"), at(kT0 - kT0 % 3600 + 3600));
}

TEST(ScheduleBookTest, FutureDueTimeSurvivesARestart) {
  ScheduleBook book(nullptr, seconds(0), true, 1);
  EXPECT_FALSE(book.add("a", cron("@daily"), at(kT0 + 500), at(kT0)));
  EXPECT_EQ(*book.next("a"), at(kT0 + 500));
}

TEST(ScheduleBookTest, ALateStartDoesNotCauseABurst) {
  ScheduleBook book(nullptr, seconds(0), true, 1);
  book.add("a", cron("@every 10s"), at(kT0), at(kT0 - 1));
  // The previous run overran by 35 s: next is the first slot after now.
  book.started("a", at(kT0 + 35));
  EXPECT_EQ(*book.next("a"), at(kT0 + 40));
}

TEST(ScheduleBookTest, DueListsEarliestFirst) {
  ScheduleBook book(nullptr, seconds(0), true, 1);
  book.add("late", cron("@every 10s"), at(kT0 + 5), at(kT0));
  book.add("early", cron("@every 10s"), at(kT0 + 1), at(kT0));
  book.add("future", cron("@every 10s"), at(kT0 + 50), at(kT0));
  EXPECT_EQ(book.due(at(kT0 + 6)), (std::vector<std::string>{"early", "late"}));
  EXPECT_EQ(*book.earliest(), at(kT0 + 1));
  book.remove("early");
  EXPECT_EQ(*book.earliest(), at(kT0 + 5));
}

TEST(ScheduleBookTest, MissedGraceIsAQuarterIntervalBetweenAMinuteAndAnHour) {
  ScheduleBook book(nullptr, seconds(0), true, 1);
  book.add("fast", cron("@every 10s"), std::nullopt, at(kT0));
  book.add("hourly", cron("@hourly"), std::nullopt, at(kT0));
  book.add("daily", cron("@daily"), std::nullopt, at(kT0));
  EXPECT_EQ(book.missed_grace("fast"), seconds(60));
  EXPECT_EQ(book.missed_grace("hourly"), seconds(900));
  EXPECT_EQ(book.missed_grace("daily"), seconds(3600));
  // Down for less than the grace: a catch-up run, but not "missed".
  EXPECT_FALSE(book.add("hourly", cron("@hourly"), at(kT0 - 600), at(kT0)));
}

TEST(ScheduleBookTest, JitterStaysWithinItsBound) {
  ScheduleBook book(nullptr, seconds(30), true, 42);
  int64_t base = kT0 - kT0 % 3600 + 3600;
  bool moved = false;
  for (int i = 0; i < 50; i++) {
    book.add("a", cron("@hourly"), std::nullopt, at(kT0));
    Time n = *book.next("a");
    EXPECT_GE(n, at(base));
    EXPECT_LE(n, at(base + 30));
    moved |= n != at(base);
  }
  EXPECT_TRUE(moved);
}

}  // namespace
}  // namespace cairn::daemon
