#include "policy/cron.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <functional>
#include <string>
#include <vector>

namespace cairn::policy {
namespace {

using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;
using std::chrono::sys_seconds;

// "2027-03-28 01:00:00" (UTC) -> instant. (Not date::parse: GCC 12 at -O3 reports a false
// -Wmaybe-uninitialized inside it.)
sys_seconds utc(const std::string& text) {
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0;
  EXPECT_EQ(std::sscanf(text.c_str(), "%d-%d-%d %d:%d:%d", &y, &mo, &d, &h, &mi, &s), 6) << text;
  return date::sys_days{date::year{y} / mo / d} + hours{h} + minutes{mi} + seconds{s};
}

std::string utc_text(sys_seconds t) { return date::format("%F %T", t); }

const date::time_zone* zone(const char* name) {
  auto z = find_zone(name);
  EXPECT_TRUE(z.ok()) << z.status().message();
  return z.ok() ? *z : nullptr;
}

CronSchedule schedule(const std::string& expr) {
  auto s = CronSchedule::parse(expr);
  EXPECT_TRUE(s.ok()) << expr << ": " << s.status().message();
  if (!s.ok()) return CronSchedule::parse("@every 1h").value();
  return std::move(s).value();
}

// The next `n` runs strictly after `start` (UTC text), as UTC text.
std::vector<std::string> runs(const std::string& expr, const std::string& start, int n,
                              const date::time_zone* z = nullptr) {
  CronSchedule s = schedule(expr);
  std::vector<std::string> out;
  sys_seconds t = utc(start);
  for (int i = 0; i < n; ++i) {
    t = s.next_after(t, z);
    out.push_back(utc_text(t));
  }
  return out;
}

// The same, as local time of `z` with its abbreviation ("2027-03-28 03:00 CEST").
std::vector<std::string> local_runs(const std::string& expr, const std::string& start_utc, int n,
                                    const date::time_zone* z) {
  CronSchedule s = schedule(expr);
  std::vector<std::string> out;
  sys_seconds t = utc(start_utc);
  for (int i = 0; i < n; ++i) {
    t = s.next_after(t, z);
    out.push_back(date::format("%F %R %Z", date::make_zoned(z, t)));
  }
  return out;
}

std::string error_of(const std::string& expr) {
  auto s = CronSchedule::parse(expr);
  EXPECT_FALSE(s.ok()) << expr;
  if (s.ok()) return "";
  EXPECT_EQ(s.status().code(), core::Code::kInvalidArgument);
  return s.status().message();
}

using V = std::vector<std::string>;

TEST(Cron, EveryFifteenMinutes) {
  EXPECT_EQ(runs("*/15 * * * *", "2027-01-01 00:07:00", 4),
            (V{"2027-01-01 00:15:00", "2027-01-01 00:30:00", "2027-01-01 00:45:00",
               "2027-01-01 01:00:00"}));
  // Strictly after: a run time itself is not returned again.
  EXPECT_EQ(runs("*/15 * * * *", "2027-01-01 00:15:00", 1), (V{"2027-01-01 00:30:00"}));
  EXPECT_EQ(runs("*/15 * * * *", "2027-01-01 00:14:59", 1), (V{"2027-01-01 00:15:00"}));
  EXPECT_EQ(runs("*/15 * * * *", "2027-12-31 23:50:00", 2),
            (V{"2028-01-01 00:00:00", "2028-01-01 00:15:00"}));
}

TEST(Cron, EverySixHours) {
  EXPECT_EQ(runs("0 */6 * * *", "2027-05-10 05:59:59", 4),
            (V{"2027-05-10 06:00:00", "2027-05-10 12:00:00", "2027-05-10 18:00:00",
               "2027-05-11 00:00:00"}));
}

TEST(Cron, ListsRangesAndSteps) {
  EXPECT_EQ(runs("5,10-12 1 * * *", "2027-01-01 00:00:00", 5),
            (V{"2027-01-01 01:05:00", "2027-01-01 01:10:00", "2027-01-01 01:11:00",
               "2027-01-01 01:12:00", "2027-01-02 01:05:00"}));
  // a-b/n and a/n (a to the end of the range).
  EXPECT_EQ(
      runs("10-30/10 22/1 * * *", "2027-01-01 00:00:00", 7),
      (V{"2027-01-01 22:10:00", "2027-01-01 22:20:00", "2027-01-01 22:30:00", "2027-01-01 23:10:00",
         "2027-01-01 23:20:00", "2027-01-01 23:30:00", "2027-01-02 22:10:00"}));
  EXPECT_EQ(runs("50/5 0 * * *", "2027-01-01 00:00:00", 3),
            (V{"2027-01-01 00:50:00", "2027-01-01 00:55:00", "2027-01-02 00:50:00"}));
}

TEST(Cron, ThirtyFirstSkipsShortMonths) {
  EXPECT_EQ(
      runs("0 0 31 * *", "2027-01-31 00:00:00", 7),
      (V{"2027-03-31 00:00:00", "2027-05-31 00:00:00", "2027-07-31 00:00:00", "2027-08-31 00:00:00",
         "2027-10-31 00:00:00", "2027-12-31 00:00:00", "2028-01-31 00:00:00"}));
}

TEST(Cron, LeapDay) {
  EXPECT_EQ(runs("0 0 29 2 *", "2027-01-01 00:00:00", 2),
            (V{"2028-02-29 00:00:00", "2032-02-29 00:00:00"}));
  // 2100 is no leap year.
  EXPECT_EQ(runs("0 0 29 2 *", "2096-03-01 00:00:00", 1), (V{"2104-02-29 00:00:00"}));
  // Both day fields start with '*' or one does: a day must match both. 2028-02-29 is a
  // Tuesday; the next February 29 on a Sunday is 2032's, then 2060's.
  EXPECT_EQ(runs("0 0 29 2 */7", "2027-01-01 00:00:00", 2),
            (V{"2032-02-29 00:00:00", "2060-02-29 00:00:00"}));
}

TEST(Cron, WeekdaysSkipTheWeekend) {
  // 2027-01-01 is a Friday.
  EXPECT_EQ(runs("0 9 * * MON-FRI", "2027-01-01 08:59:59", 1), (V{"2027-01-01 09:00:00"}));
  EXPECT_EQ(runs("0 9 * * MON-FRI", "2027-01-01 09:00:00", 6),
            (V{"2027-01-04 09:00:00", "2027-01-05 09:00:00", "2027-01-06 09:00:00",
               "2027-01-07 09:00:00", "2027-01-08 09:00:00", "2027-01-11 09:00:00"}));
}

TEST(Cron, DayOfMonthOrDayOfWeekWhenBothRestricted) {
  // The 13th or any Friday. Fridays in 2027: Jan 1, 8, 15, 22, 29, Feb 5, 12, 19;
  // Jan 13 is a Wednesday, Feb 13 a Saturday.
  EXPECT_EQ(runs("0 0 13 * FRI", "2027-01-01 00:00:00", 9),
            (V{"2027-01-08 00:00:00", "2027-01-13 00:00:00", "2027-01-15 00:00:00",
               "2027-01-22 00:00:00", "2027-01-29 00:00:00", "2027-02-05 00:00:00",
               "2027-02-12 00:00:00", "2027-02-13 00:00:00", "2027-02-19 00:00:00"}));
  // "1-31" is a restriction (it does not start with '*'): OR, so every day.
  EXPECT_EQ(runs("0 0 1-31 * FRI", "2027-01-01 00:00:00", 2),
            (V{"2027-01-02 00:00:00", "2027-01-03 00:00:00"}));
  // "*/2" starts with '*': AND, so odd days that are Fridays.
  EXPECT_EQ(runs("0 0 */2 * FRI", "2027-01-01 00:00:00", 4),
            (V{"2027-01-15 00:00:00", "2027-01-29 00:00:00", "2027-02-05 00:00:00",
               "2027-02-19 00:00:00"}));
  // A '*' day-of-week leaves only the day of the month, and the other way round.
  EXPECT_EQ(runs("0 0 13 * *", "2027-01-01 00:00:00", 2),
            (V{"2027-01-13 00:00:00", "2027-02-13 00:00:00"}));
  EXPECT_EQ(runs("0 0 * * FRI", "2027-01-01 00:00:00", 2),
            (V{"2027-01-08 00:00:00", "2027-01-15 00:00:00"}));
}

TEST(Cron, MonthEnd) {
  EXPECT_EQ(runs("0 0 28-31 * *", "2027-02-27 00:00:00", 6),
            (V{"2027-02-28 00:00:00", "2027-03-28 00:00:00", "2027-03-29 00:00:00",
               "2027-03-30 00:00:00", "2027-03-31 00:00:00", "2027-04-28 00:00:00"}));
  EXPECT_EQ(runs("0 0 28-31 * *", "2028-02-27 00:00:00", 3),
            (V{"2028-02-28 00:00:00", "2028-02-29 00:00:00", "2028-03-28 00:00:00"}));
}

TEST(Cron, NamesAnyCase) {
  const char* start = "2027-01-01 00:00:00";
  EXPECT_EQ(runs("0 0 * Jan-MAR mon-Fri", start, 40), runs("0 0 * 1-3 1-5", start, 40));
  EXPECT_EQ(runs("0 0 1 jul,DEC *", start, 3),
            (V{"2027-07-01 00:00:00", "2027-12-01 00:00:00", "2028-07-01 00:00:00"}));
  EXPECT_EQ(runs("0 0 * FEB-JUN/2 *", start, 1), (V{"2027-02-01 00:00:00"}));
  EXPECT_EQ(runs("0 0 1 FEB-JUN/2 *", start, 3),
            (V{"2027-02-01 00:00:00", "2027-04-01 00:00:00", "2027-06-01 00:00:00"}));
}

TEST(Cron, ZeroAndSevenAreSunday) {
  // 2027-01-03 and 2027-01-10 are Sundays.
  const V sundays{"2027-01-03 00:00:00", "2027-01-10 00:00:00"};
  EXPECT_EQ(runs("0 0 * * 0", "2027-01-01 00:00:00", 2), sundays);
  EXPECT_EQ(runs("0 0 * * 7", "2027-01-01 00:00:00", 2), sundays);
  EXPECT_EQ(runs("0 0 * * SUN", "2027-01-01 00:00:00", 2), sundays);
  EXPECT_EQ(runs("0 0 * * 5-7", "2027-01-01 00:00:00", 4),
            (V{"2027-01-02 00:00:00", "2027-01-03 00:00:00", "2027-01-08 00:00:00",
               "2027-01-09 00:00:00"}));
  EXPECT_EQ(runs("0 0 * * 0-7", "2027-01-01 00:00:00", 1), (V{"2027-01-02 00:00:00"}));
}

TEST(Cron, Macros) {
  const char* start = "2027-05-15 12:34:56";
  EXPECT_EQ(runs("@yearly", start, 1), (V{"2028-01-01 00:00:00"}));
  EXPECT_EQ(runs("@annually", start, 1), (V{"2028-01-01 00:00:00"}));
  EXPECT_EQ(runs("@monthly", start, 1), (V{"2027-06-01 00:00:00"}));
  EXPECT_EQ(runs("@weekly", start, 1), (V{"2027-05-16 00:00:00"}));  // a Sunday
  EXPECT_EQ(runs("@daily", start, 1), (V{"2027-05-16 00:00:00"}));
  EXPECT_EQ(runs("@midnight", start, 1), (V{"2027-05-16 00:00:00"}));
  EXPECT_EQ(runs("@hourly", start, 2), (V{"2027-05-15 13:00:00", "2027-05-15 14:00:00"}));
  EXPECT_EQ(runs("  @Daily\t", start, 1), (V{"2027-05-16 00:00:00"}));
  EXPECT_EQ(schedule("  @Daily\t").expression(), "@Daily");
  EXPECT_EQ(schedule("0  9\t* * 1").expression(), "0  9\t* * 1");
}

TEST(Cron, EveryIsAnchoredToTheEpoch) {
  EXPECT_EQ(runs("@every 30s", "2027-01-01 00:00:10", 2),
            (V{"2027-01-01 00:00:30", "2027-01-01 00:01:00"}));
  EXPECT_EQ(runs("@every 1h30m", "2027-01-01 00:00:00", 2),
            (V{"2027-01-01 01:30:00", "2027-01-01 03:00:00"}));
  // 2027-01-01 00:00:00 is 1798761600 s = 4282765 * 420 + 300: the next multiple of 7 minutes
  // is 120 s later, whatever the zone.
  EXPECT_EQ(runs("@every 7m", "2027-01-01 00:00:00", 2),
            (V{"2027-01-01 00:02:00", "2027-01-01 00:09:00"}));
  EXPECT_EQ(runs("@every 7m", "2027-01-01 00:00:00", 1, zone("Europe/Berlin")),
            (V{"2027-01-01 00:02:00"}));
  CronSchedule s = schedule("@every 30s");
  EXPECT_EQ(s.next_after(sys_seconds{seconds{-1}}, nullptr), sys_seconds{seconds{0}});
  EXPECT_EQ(s.next_after(sys_seconds{seconds{-31}}, nullptr), sys_seconds{seconds{-30}});
  EXPECT_EQ(s.next_after(sys_seconds{seconds{-30}}, nullptr), sys_seconds{seconds{0}});
}

TEST(Cron, SpringForwardGapRunsOnceAtTheEndOfTheGap) {
  const date::time_zone* berlin = zone("Europe/Berlin");
  // 2027-03-28 02:00 CET jumps to 03:00 CEST (01:00 UTC): 02:30 does not exist that day.
  EXPECT_EQ(runs("30 2 * * *", "2027-03-26 11:00:00", 3, berlin),
            (V{"2027-03-27 01:30:00", "2027-03-28 01:00:00", "2027-03-29 00:30:00"}));
  EXPECT_EQ(local_runs("30 2 * * *", "2027-03-26 11:00:00", 3, berlin),
            (V{"2027-03-27 02:30 CET", "2027-03-28 03:00 CEST", "2027-03-29 02:30 CEST"}));
  // Several skipped times of one job still make one run.
  EXPECT_EQ(local_runs("0,30 2 * * *", "2027-03-27 12:00:00", 3, berlin),
            (V{"2027-03-28 03:00 CEST", "2027-03-29 02:00 CEST", "2027-03-29 02:30 CEST"}));
  EXPECT_EQ(local_runs("0,30 2,3 * * *", "2027-03-27 12:00:00", 3, berlin),
            (V{"2027-03-28 03:00 CEST", "2027-03-28 03:30 CEST", "2027-03-29 02:00 CEST"}));
  // A time after the gap is not moved.
  EXPECT_EQ(local_runs("0 3 * * *", "2027-03-27 12:00:00", 1, berlin),
            (V{"2027-03-28 03:00 CEST"}));
  // Searching from just before the gap's end finds it; from the end itself does not.
  EXPECT_EQ(runs("30 2 * * *", "2027-03-28 00:59:59", 1, berlin), (V{"2027-03-28 01:00:00"}));
  EXPECT_EQ(runs("30 2 * * *", "2027-03-28 01:00:00", 1, berlin), (V{"2027-03-29 00:30:00"}));
}

TEST(Cron, FallBackRunsAtTheFirstOccurrenceOnly) {
  const date::time_zone* berlin = zone("Europe/Berlin");
  // 2027-10-31 03:00 CEST (01:00 UTC) goes back to 02:00 CET: 02:30 happens twice.
  EXPECT_EQ(local_runs("30 2 * * *", "2027-10-29 10:00:00", 3, berlin),
            (V{"2027-10-30 02:30 CEST", "2027-10-31 02:30 CEST", "2027-11-01 02:30 CET"}));
  EXPECT_EQ(runs("30 2 * * *", "2027-10-29 10:00:00", 3, berlin),
            (V{"2027-10-30 00:30:00", "2027-10-31 00:30:00", "2027-11-01 01:30:00"}));
  // From inside the repeated hour (02:10 CET) the job does not run at 02:30 CET.
  EXPECT_EQ(runs("30 2 * * *", "2027-10-31 01:10:00", 1, berlin), (V{"2027-11-01 01:30:00"}));
  EXPECT_EQ(local_runs("0 3 * * *", "2027-10-30 12:00:00", 1, berlin), (V{"2027-10-31 03:00 CET"}));
}

TEST(Cron, WildcardHourRunsOnRealInstants) {
  const date::time_zone* berlin = zone("Europe/Berlin");
  EXPECT_EQ(local_runs("*/15 * * * *", "2027-03-28 00:40:00", 3, berlin),
            (V{"2027-03-28 01:45 CET", "2027-03-28 03:00 CEST", "2027-03-28 03:15 CEST"}));
  EXPECT_EQ(local_runs("*/15 * * * *", "2027-10-31 00:40:00", 3, berlin),
            (V{"2027-10-31 02:45 CEST", "2027-10-31 02:00 CET", "2027-10-31 02:15 CET"}));
  EXPECT_EQ(local_runs("30 * * * *", "2027-03-28 00:00:00", 2, berlin),
            (V{"2027-03-28 01:30 CET", "2027-03-28 03:30 CEST"}));
  EXPECT_EQ(local_runs("30 * * * *", "2027-10-31 00:00:00", 3, berlin),
            (V{"2027-10-31 02:30 CEST", "2027-10-31 02:30 CET", "2027-10-31 03:30 CET"}));
  // A '*' minute field makes a job a wildcard job too (cronie): none of 02:xx exists on
  // 2027-03-28, and both 02:xx hours of 2027-10-31 run.
  EXPECT_EQ(local_runs("*/30 2 * * *", "2027-03-27 12:00:00", 1, berlin),
            (V{"2027-03-29 02:00 CEST"}));
  EXPECT_EQ(local_runs("*/30 2 * * *", "2027-10-30 12:00:00", 5, berlin),
            (V{"2027-10-31 02:00 CEST", "2027-10-31 02:30 CEST", "2027-10-31 02:00 CET",
               "2027-10-31 02:30 CET", "2027-11-01 02:00 CET"}));
}

TEST(Cron, OtherZones) {
  EXPECT_EQ(runs("0 9 * * *", "2027-07-01 00:00:00", 1, zone("America/New_York")),
            (V{"2027-07-01 13:00:00"}));
  EXPECT_EQ(runs("0 9 * * *", "2027-07-01 00:00:00", 1, zone("Asia/Kolkata")),
            (V{"2027-07-01 03:30:00"}));
  EXPECT_EQ(runs("0 9 * * *", "2027-07-01 00:00:00", 1, zone("UTC")), (V{"2027-07-01 09:00:00"}));
  // Australia/Sydney (southern hemisphere) falls back on 2027-04-04 03:00 AEDT -> 02:00 AEST.
  EXPECT_EQ(local_runs("30 2 * * *", "2027-04-02 12:00:00", 3, zone("Australia/Sydney")),
            (V{"2027-04-03 02:30 AEDT", "2027-04-04 02:30 AEDT", "2027-04-05 02:30 AEST"}));
}

// Reference: scan every real minute and apply the documented rules to a predicate on local
// time. Only for zones whose offsets are whole minutes, so local minutes start on UTC minutes.
std::vector<sys_seconds> brute_force(const std::function<bool(const date::local_seconds&)>& match,
                                     bool wildcard, const date::time_zone* z, sys_seconds from,
                                     sys_seconds to) {
  std::vector<sys_seconds> out;
  for (sys_seconds u = from; u < to; u += minutes{1}) {
    date::sys_info info = z->get_info(u);
    date::local_seconds local{(u + info.offset).time_since_epoch()};
    if (u == info.begin && !wildcard) {
      seconds before = z->get_info(u - seconds{1}).offset;
      bool gap_match = false;
      for (auto l = date::local_seconds{(u + before).time_since_epoch()}; l < local;
           l += minutes{1}) {
        gap_match = gap_match || match(l);
      }
      if (gap_match) {
        out.push_back(u);
        continue;
      }
    }
    if (!match(local)) continue;
    if (!wildcard && z->get_info(local).result == date::local_info::ambiguous &&
        z->get_info(local).first.offset != info.offset) {
      continue;  // second occurrence
    }
    out.push_back(u);
  }
  return out;
}

TEST(Cron, MatchesABruteForceScanOverAYear) {
  const sys_seconds from = utc("2027-01-01 00:00:00"), to = utc("2028-01-01 00:00:00");
  auto parts = [](const date::local_seconds& l) {
    auto day = std::chrono::floor<date::days>(l);
    auto hm = date::hh_mm_ss<seconds>{l - day};
    return std::pair<int, int>{int(hm.hours().count()), int(hm.minutes().count())};
  };
  struct Case {
    const char* expr;
    bool wildcard;
    std::function<bool(const date::local_seconds&)> match;
  };
  const Case cases[] = {
      {"30 2 * * *", false,
       [&](auto l) {
         return parts(l) == std::pair{2, 30};
       }},
      {"0 0 * * *", false,
       [&](auto l) {
         return parts(l) == std::pair{0, 0};
       }},
      {"30 23 * * *", false,
       [&](auto l) {
         return parts(l) == std::pair{23, 30};
       }},
      {"0,20,40 1-3 * * *", false,
       [&](auto l) {
         auto [h, m] = parts(l);
         return h >= 1 && h <= 3 && m % 20 == 0;
       }},
      {"*/10 * * * *", true, [&](auto l) { return parts(l).second % 10 == 0; }},
      {"5 */2 * * *", true,
       [&](auto l) {
         auto [h, m] = parts(l);
         return h % 2 == 0 && m == 5;
       }},
  };
  // Berlin: 02:00 -> 03:00 and 03:00 -> 02:00. Lord Howe: half-hour DST (02:00 -> 02:30,
  // 02:00 -> 01:30). Santiago: changes at midnight (24:00 -> 01:00, 24:00 -> 23:00).
  for (const char* zone_name : {"Europe/Berlin", "Australia/Lord_Howe", "America/Santiago"}) {
    const date::time_zone* z = zone(zone_name);
    for (const Case& c : cases) {
      std::vector<sys_seconds> expected = brute_force(c.match, c.wildcard, z, from, to);
      CronSchedule s = schedule(c.expr);
      std::vector<sys_seconds> got;
      for (sys_seconds t = s.next_after(from - seconds{1}, z); t < to; t = s.next_after(t, z)) {
        got.push_back(t);
      }
      ASSERT_EQ(got.size(), expected.size()) << c.expr << " in " << zone_name;
      EXPECT_EQ(got, expected) << c.expr << " in " << zone_name;
    }
  }
}

TEST(Cron, MaxInterval) {
  const date::time_zone* berlin = zone("Europe/Berlin");
  EXPECT_EQ(schedule("0 3 * * *").max_interval(nullptr), hours{24});
  EXPECT_EQ(schedule("0 3 * * *").max_interval(zone("UTC")), hours{24});
  EXPECT_EQ(schedule("0 3 * * *").max_interval(berlin), hours{25});  // 2027-10-31
  EXPECT_EQ(schedule("30 2 * * *").max_interval(berlin), hours{25});
  EXPECT_EQ(schedule("*/15 * * * *").max_interval(nullptr), minutes{15});
  EXPECT_EQ(schedule("*/15 * * * *").max_interval(berlin), minutes{15});
  EXPECT_EQ(schedule("0 0 1 * *").max_interval(nullptr), hours{31 * 24});
  EXPECT_EQ(schedule("0 0 1 * *").max_interval(berlin), hours{31 * 24 + 1});  // Oct -> Nov
  EXPECT_EQ(schedule("0 9 * * MON-FRI").max_interval(nullptr), hours{72});
  EXPECT_EQ(schedule("@yearly").max_interval(nullptr), hours{366 * 24});  // 2028 -> 2029
  EXPECT_EQ(schedule("0 0 29 2 *").max_interval(nullptr), hours{1461 * 24});
  EXPECT_EQ(schedule("@every 90m").max_interval(berlin), minutes{90});
  EXPECT_EQ(schedule("0 */6 * * *").max_interval(nullptr), hours{6});
  EXPECT_EQ(schedule("* * * * *").max_interval(berlin), minutes{1});
  // Wildcard jobs lose the skipped local hour: 01:30 CET -> 03:30 CEST is one real hour, but
  // "*/30 2 * * *" does not run on 2027-03-28: 2027-03-27 02:30 CET (01:30 UTC) ->
  // 2027-03-29 02:00 CEST (00:00 UTC).
  EXPECT_EQ(schedule("30 * * * *").max_interval(berlin), hours{1});
  EXPECT_EQ(schedule("*/30 2 * * *").max_interval(berlin), hours{46} + minutes{30});
}

TEST(Cron, ErrorsNameTheFieldAndValue) {
  EXPECT_EQ(error_of("61 * * * *"), "minute field \"61\": value out of range 0-59");
  EXPECT_EQ(error_of("0-61 * * * *"), "minute field \"61\": value out of range 0-59");
  EXPECT_EQ(error_of("0 24 * * *"), "hour field \"24\": value out of range 0-23");
  EXPECT_EQ(error_of("0 0 0 * *"), "day-of-month field \"0\": value out of range 1-31");
  EXPECT_EQ(error_of("0 0 32 * *"), "day-of-month field \"32\": value out of range 1-31");
  EXPECT_EQ(error_of("0 0 * 13 *"), "month field \"13\": value out of range 1-12");
  EXPECT_EQ(error_of("0 0 * * 8"), "day-of-week field \"8\": value out of range 0-7");
  EXPECT_EQ(error_of("99999999999 * * * *"),
            "minute field \"99999999999\": value out of range 0-59");
  EXPECT_EQ(error_of("0 0 * *"), "expected 5 fields, got 4");
  EXPECT_EQ(error_of("0 0 * * * *"), "expected 5 fields, got 6");
  EXPECT_EQ(error_of(""), "empty schedule");
  EXPECT_EQ(error_of("   "), "empty schedule");
  EXPECT_EQ(error_of("0 0 1 JNU *"), "unknown month name \"JNU\"");
  EXPECT_EQ(error_of("0 0 1 January *"), "unknown month name \"January\"");
  EXPECT_EQ(error_of("0 0 * * FRY"), "unknown weekday name \"FRY\"");
  EXPECT_EQ(error_of("0 MON * * *"), "hour field \"MON\": not a number");
  EXPECT_EQ(error_of("x * * * *"), "minute field \"x\": not a number");
  EXPECT_EQ(error_of("1x * * * *"), "minute field \"1x\": not a number");
  EXPECT_EQ(error_of("*/ * * * *"), "minute field \"*/\": empty step");
  EXPECT_EQ(error_of("*/0 * * * *"), "minute field \"*/0\": step out of range 1-59");
  EXPECT_EQ(error_of("0 */24 * * *"), "hour field \"*/24\": step out of range 1-23");
  EXPECT_EQ(error_of("*/x * * * *"), "minute field \"*/x\": step is not a number");
  EXPECT_EQ(error_of("1-5/-1 * * * *"), "minute field \"1-5/-1\": step is not a number");
  EXPECT_EQ(error_of("/5 * * * *"), "minute field \"/5\": missing value before step");
  EXPECT_EQ(error_of("0 5-2 * * *"), "hour field \"5-2\": reversed range (start after end)");
  EXPECT_EQ(error_of("0 0 * * SAT-SUN"),
            "day-of-week field \"SAT-SUN\": reversed range (start after end)");
  EXPECT_EQ(error_of("5- * * * *"), "minute field \"5-\": invalid range");
  EXPECT_EQ(error_of("-5 * * * *"), "minute field \"-5\": invalid range");
  EXPECT_EQ(error_of("1-2-3 * * * *"), "minute field \"1-2-3\": invalid range");
  EXPECT_EQ(error_of("1,,2 * * * *"), "minute field \"1,,2\": empty list item");
  EXPECT_EQ(error_of("1, * * * *"), "minute field \"1,\": empty list item");
  EXPECT_EQ(error_of("0 0 31 2 *"),
            "never fires: day-of-month \"31\" does not occur in month \"2\"");
  EXPECT_EQ(error_of("0 0 30,31 FEB *"),
            "never fires: day-of-month \"30,31\" does not occur in month \"FEB\"");
  EXPECT_EQ(error_of("0 0 31 4,6,9,11 *"),
            "never fires: day-of-month \"31\" does not occur in month \"4,6,9,11\"");
  EXPECT_EQ(error_of("@reboot"),
            "unknown macro \"@reboot\" (use @yearly, @annually, @monthly, @weekly, @daily, "
            "@midnight, @hourly or @every <duration>)");
  EXPECT_EQ(error_of("@daily 0"), "macro \"@daily\" takes no fields");
  EXPECT_EQ(error_of("@every"), "@every takes one duration, e.g. \"@every 5m\"");
  EXPECT_EQ(error_of("@every 5m 3"), "@every takes one duration, e.g. \"@every 5m\"");
  EXPECT_EQ(error_of("@every 0s"), "@every \"0s\": interval must be at least 1s");
  EXPECT_EQ(error_of("@every 5"),
            "@every: invalid duration \"5\": \"5\" has no unit (w, d, h, m or s)");
  EXPECT_EQ(error_of("@every -5m"),
            "@every: invalid duration \"-5m\": negative durations are not allowed");
}

TEST(Cron, ValidEdgeCasesParse) {
  // Feb 29 and the 31st of a 31-day month are reachable; OR semantics always fires.
  for (const char* expr : {"0 0 29 2 *", "0 0 31 1-2 *", "0 0 31 2 MON", "59 23 31 12 *",
                           "0 0 * * 7/1", "0-59/59 0-23/23 1-31/30 1-12/11 0-7/7"}) {
    EXPECT_TRUE(CronSchedule::parse(expr).ok()) << expr;
  }
  EXPECT_EQ(runs("0 0 31 2 MON", "2027-01-31 00:00:00", 1), (V{"2027-02-01 00:00:00"}));
}

TEST(Cron, FindZone) {
  auto utc_zone = find_zone("UTC");
  ASSERT_TRUE(utc_zone.ok());
  EXPECT_EQ((*utc_zone)->name(), "UTC");
  auto berlin = find_zone("Europe/Berlin");
  ASSERT_TRUE(berlin.ok());
  EXPECT_EQ((*berlin)->name(), "Europe/Berlin");
  auto bad = find_zone("Mars/Olympus_Mons");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), core::Code::kInvalidArgument);
  EXPECT_EQ(bad.status().message(), "unknown time zone \"Mars/Olympus_Mons\"");
  EXPECT_EQ(find_zone("").status().message(), "empty time zone name");
}

TEST(Cron, FarFutureSearchIsFast) {
  // Each search walks months and days, not minutes: 1000 searches over 28-year gaps.
  CronSchedule s = schedule("0 0 29 2 */7");
  sys_seconds t = utc("2027-01-01 00:00:00");
  for (int i = 0; i < 1000; ++i) t = s.next_after(utc("2027-01-01 00:00:00"), nullptr);
  EXPECT_EQ(utc_text(t), "2032-02-29 00:00:00");
  // Past the year 9999 there is no run.
  EXPECT_EQ(schedule("0 0 29 2 *").next_after(utc("9999-06-01 00:00:00"), nullptr),
            sys_seconds::max());
}

// max_interval jumps through each hour's runs; it must agree with visiting
// every run, across DST in zones with hour and half-hour shifts.
TEST(Cron, MaxIntervalMatchesAFullScan) {
  using namespace std::chrono;
  const sys_seconds begin{date::sys_days{date::year{2027} / 1 / 1}};
  const sys_seconds end{date::sys_days{date::year{2029} / 1 / 1}};
  for (const char* zone_name : {"UTC", "Europe/Berlin", "Australia/Lord_Howe"}) {
    const date::time_zone* zone = find_zone(zone_name).value();
    for (const char* expr : {"* * * * *", "*/7 * * * *", "15,45 * * * *", "0-10 1-3 * * *", "30 2 * * *",
                             "*/20 2 * * *", "5 */6 * * MON-FRI", "59 23 * * SUN",
                             "0,30 0-23/5 1,15 * *"}) {
      auto c = CronSchedule::parse(expr).value();
      seconds longest{0};
      for (sys_seconds run = c.next_after(begin - 1s, zone); run < end;) {
        sys_seconds next = c.next_after(run, zone);
        longest = std::max(longest, next - run);
        run = next;
      }
      EXPECT_EQ(c.max_interval(zone), longest) << expr << " in " << zone_name;
    }
  }
}

}  // namespace
}  // namespace cairn::policy
