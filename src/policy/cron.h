// Cron schedules: when a job runs, evaluated in the local time of an IANA time
// zone. docs/schedules.md has the syntax and the DST rules. A CronSchedule is
// immutable after parse(); its const methods are safe to call from any thread
// (date's zone database loads itself once, thread-safely).
#pragma once

#include <date/tz.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"

namespace cairn::policy {

class CronSchedule {
 public:
  // Five fields "minute hour day-of-month month day-of-week" with *, a,b lists, a-b ranges,
  // */n, a-b/n and a/n steps, JAN-DEC / SUN-SAT names (any case), day-of-week 0 and 7 both
  // Sunday; or a macro (@yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly);
  // or "@every <duration>" (parse_duration syntax, at least 1s). Errors are kInvalidArgument
  // naming the field and value, e.g. `minute field "61": value out of range 0-59`; a schedule
  // that can never fire (`0 0 31 2 *`) is an error too.
  static core::Result<CronSchedule> parse(std::string_view expr);

  // The first run strictly after `t`, with the fields read as local time of `zone`
  // (nullptr = UTC). DST: a fixed-time job whose local time falls into a spring-forward gap
  // runs once at the end of the gap; one whose local time is repeated by fall-back runs at
  // the first occurrence only. A job with `*` leading its minute or hour field runs at every
  // real instant whose local time matches (skipped minutes do not run, repeated ones run
  // twice). "@every <d>" runs at every t with t % d == 0 since the Unix epoch, in any zone.
  // Returns sys_seconds::max() if there is no run before the year 10000.
  std::chrono::sys_seconds next_after(std::chrono::sys_seconds t,
                                      const date::time_zone* zone) const;

  // The longest gap between two consecutive runs whose first run lies in the fixed window
  // [2027-01-01, 2029-01-01) UTC (a leap day, every month length and two DST changes each
  // way); the gap from the window's last run to the following one counts. Compare it with
  // an RPO: a schedule whose max_interval exceeds the RPO cannot meet it.
  std::chrono::seconds max_interval(const date::time_zone* zone) const;

  // The expression as parsed (surrounding whitespace removed).
  const std::string& expression() const { return expression_; }

 private:
  CronSchedule() = default;

  std::chrono::seconds scan_max_interval(const date::time_zone* zone) const;
  std::chrono::sys_seconds next_cron(std::chrono::sys_seconds t, const date::time_zone* zone) const;
  // First local minute L with from <= L < limit that matches the five fields.
  std::optional<date::local_seconds> next_local(date::local_seconds from,
                                                date::local_seconds limit) const;
  bool day_matches(unsigned day_of_month, unsigned day_of_week) const;

  std::string expression_;
  std::chrono::seconds every_{0};  // > 0 for "@every"; the bit sets below are unused then
  // Bit i set = value i allowed. Day-of-week 7 is folded into 0 (Sunday).
  uint64_t minutes_ = 0, hours_ = 0, days_of_month_ = 0, months_ = 0, days_of_week_ = 0;
  // Vixie cron: when either day field starts with '*', a day must match both day fields;
  // otherwise either one suffices.
  bool dom_star_ = false, dow_star_ = false;
  // Minute or hour field starts with '*': the job runs on real instants across DST changes.
  bool wildcard_ = false;
};

// The IANA zone called `name` ("UTC", "Europe/Berlin"), from the OS database in
// /usr/share/zoneinfo; kInvalidArgument naming `name` if there is none.
core::Result<const date::time_zone*> find_zone(std::string_view name);

}  // namespace cairn::policy
