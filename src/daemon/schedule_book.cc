#include "daemon/schedule_book.h"

#include <algorithm>

namespace cairn::daemon {

ScheduleBook::ScheduleBook(const date::time_zone* zone, std::chrono::seconds jitter, bool catch_up_once,
                           uint64_t seed)
    : zone_(zone), jitter_(jitter), catch_up_once_(catch_up_once), rng_(seed) {}

Time ScheduleBook::plan_after(const policy::CronSchedule& schedule, Time after) {
  Time t = schedule.next_after(after, zone_);
  if (jitter_.count() > 0) {
    std::uniform_int_distribution<int64_t> d(0, jitter_.count());
    t += std::chrono::seconds(d(rng_));
  }
  return t;
}

bool ScheduleBook::add(const std::string& service, const policy::CronSchedule& schedule,
                       std::optional<Time> persisted, Time now) {
  auto grace = std::clamp(schedule.max_interval(zone_) / 4, std::chrono::seconds(60), std::chrono::seconds(3600));
  Entry e{schedule, {}, grace};
  bool missed = false;
  if (persisted && *persisted <= now) {
    missed = *persisted + grace < now;
    e.next = catch_up_once_ ? now : plan_after(schedule, now);
  } else if (persisted) {
    e.next = *persisted;
  } else {
    e.next = plan_after(schedule, now);
  }
  entries_.insert_or_assign(service, std::move(e));
  return missed;
}

void ScheduleBook::remove(const std::string& service) { entries_.erase(service); }

std::vector<std::string> ScheduleBook::due(Time now) const {
  std::vector<std::pair<Time, std::string>> out;
  for (const auto& [name, e] : entries_)
    if (e.next <= now) out.emplace_back(e.next, name);
  std::sort(out.begin(), out.end());
  std::vector<std::string> names;
  for (auto& [t, n] : out) names.push_back(std::move(n));
  return names;
}

void ScheduleBook::started(const std::string& service, Time now) {
  auto it = entries_.find(service);
  if (it == entries_.end()) return;
  // From `now`, not from the old due time: a run that started late does not
  // trigger a burst of the runs it overlapped.
  it->second.next = plan_after(it->second.schedule, std::max(now, it->second.next));
}

std::optional<Time> ScheduleBook::next(const std::string& service) const {
  auto it = entries_.find(service);
  if (it == entries_.end()) return std::nullopt;
  return it->second.next;
}

std::optional<Time> ScheduleBook::earliest() const {
  std::optional<Time> out;
  for (const auto& [name, e] : entries_)
    if (!out || e.next < *out) out = e.next;
  return out;
}

std::chrono::seconds ScheduleBook::missed_grace(const std::string& service) const {
  auto it = entries_.find(service);
  return it == entries_.end() ? std::chrono::seconds(60) : it->second.grace;
}

}  // namespace cairn::daemon
