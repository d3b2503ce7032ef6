// ScheduleBook: when each service's next backup is due. Pure bookkeeping
// over a clock the caller passes in, so the rules (catch-up after downtime,
// jitter, missed runs) are tested without waiting.
//
// Rules (docs/daemon.md):
// - A service's next run is the schedule's first time after the previous
//   one, plus a random delay in [0, jitter].
// - After downtime (a persisted due time already in the past at start),
//   catch_up "once" runs the service once right away, however many runs were
//   missed; "skip" waits for the next scheduled time.
// - A due run that has not started `missed_grace()` after its time is
//   missed (every worker busy, or the daemon was down).
//
// Thread-compatible: the daemon guards it with its own mutex.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "policy/cron.h"

namespace cairn::daemon {

using Time = std::chrono::sys_seconds;

class ScheduleBook {
 public:
  ScheduleBook(const date::time_zone* zone, std::chrono::seconds jitter, bool catch_up_once, uint64_t seed);

  // Registers a service. `persisted` is the due time stored before a restart.
  // Returns true when a run was missed while the daemon was down.
  bool add(const std::string& service, const policy::CronSchedule& schedule, std::optional<Time> persisted, Time now);
  void remove(const std::string& service);
  // Services due at `now` that are not running, earliest first.
  std::vector<std::string> due(Time now) const;
  // Marks a run as started: the next due time moves past `now`.
  void started(const std::string& service, Time now);
  std::optional<Time> next(const std::string& service) const;
  // The earliest due time of any service (to sleep until).
  std::optional<Time> earliest() const;
  // How late a run may start before it counts as missed: a quarter of the
  // schedule's longest interval, between 1 minute and 1 hour.
  std::chrono::seconds missed_grace(const std::string& service) const;

 private:
  struct Entry {
    policy::CronSchedule schedule;
    Time next;
    std::chrono::seconds grace;
  };
  Time plan_after(const policy::CronSchedule& schedule, Time after);
  const date::time_zone* zone_;
  std::chrono::seconds jitter_;
  bool catch_up_once_;
  std::mt19937_64 rng_;
  std::map<std::string, Entry> entries_;
};

}  // namespace cairn::daemon
