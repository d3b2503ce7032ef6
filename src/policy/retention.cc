#include "policy/retention.h"

#include <fmt/format.h>

#include <algorithm>
#include <ctime>
#include <sstream>

namespace cairn::policy {

bool RetentionPolicy::empty() const {
  return last == 0 && hourly == 0 && daily == 0 && weekly == 0 && monthly == 0 && yearly == 0 &&
         within.empty() && keep_tags.empty();
}

namespace {

// Calendar fields of the wall-clock time the snapshot was taken at.
struct tm wall_time(const repo::Time& t) {
  int64_t secs = t.unix_ns / 1000000000;
  if (t.unix_ns % 1000000000 < 0) --secs;
  time_t wall = static_cast<time_t>(secs + t.utc_offset_s);
  struct tm tm;
  gmtime_r(&wall, &tm);
  return tm;
}

struct Within {
  int years = 0, months = 0, days = 0, hours = 0;
};

core::Result<Within> parse_within(const std::string& s) {
  Within w;
  size_t i = 0;
  bool any = false;
  while (i < s.size()) {
    size_t j = i;
    while (j < s.size() && isdigit(static_cast<unsigned char>(s[j]))) ++j;
    if (j == i || j == s.size()) return core::invalid_argument("--keep-within '" + s + "' must look like 1y2m7d12h");
    int n = std::stoi(s.substr(i, j - i));
    switch (s[j]) {
      case 'y': w.years = n; break;
      case 'm': w.months = n; break;
      case 'd': w.days = n; break;
      case 'h': w.hours = n; break;
      default: return core::invalid_argument("--keep-within '" + s + "': unit must be y, m, d or h");
    }
    any = true;
    i = j + 1;
  }
  if (!any) return core::invalid_argument("--keep-within is empty");
  return w;
}

// newest - w, computed on the calendar of the newest snapshot's offset.
}  // namespace

core::Status validate_within(const std::string& within) { return parse_within(within).status(); }

namespace {

int64_t within_threshold_ns(const repo::Time& newest, const Within& w) {
  struct tm tm = wall_time(newest);
  tm.tm_year -= w.years;
  tm.tm_mon -= w.months;
  tm.tm_mday -= w.days;
  tm.tm_hour -= w.hours;
  time_t wall = timegm(&tm);  // normalises overflowing fields
  return (static_cast<int64_t>(wall) - newest.utc_offset_s) * 1000000000 + newest.unix_ns % 1000000000;
}

}  // namespace

std::string bucket(const repo::Time& t, const std::string& unit) {
  struct tm tm = wall_time(t);
  char buf[32];
  if (unit == "hour") strftime(buf, sizeof buf, "%Y-%m-%d %H", &tm);
  else if (unit == "day") strftime(buf, sizeof buf, "%Y-%m-%d", &tm);
  else if (unit == "week") strftime(buf, sizeof buf, "%G-W%V", &tm);  // ISO 8601 week
  else if (unit == "month") strftime(buf, sizeof buf, "%Y-%m", &tm);
  else strftime(buf, sizeof buf, "%Y", &tm);
  return buf;
}

core::Result<std::vector<Decision>> apply_retention(std::vector<repo::SnapshotRef> group,
                                                    const RetentionPolicy& p) {
  for (int n : {p.last, p.hourly, p.daily, p.weekly, p.monthly, p.yearly})
    if (n < 0) return core::invalid_argument("keep counts must not be negative");
  std::sort(group.begin(), group.end(), [](const repo::SnapshotRef& a, const repo::SnapshotRef& b) {
    return a.snapshot.time.unix_ns != b.snapshot.time.unix_ns ? a.snapshot.time.unix_ns > b.snapshot.time.unix_ns
                                                              : a.id > b.id;
  });
  std::vector<Decision> out;
  for (auto& s : group) out.push_back({std::move(s), false, {}});
  if (out.empty()) return out;

  auto keep = [](Decision& d, const std::string& why) {
    d.keep = true;
    d.reasons.push_back(why);
  };
  for (size_t i = 0; i < out.size() && static_cast<int>(i) < p.last; ++i) keep(out[i], "last");
  struct Rule {
    int count;
    const char* unit;
    const char* name;
  };
  for (const Rule& r : {Rule{p.hourly, "hour", "hourly"}, Rule{p.daily, "day", "daily"},
                        Rule{p.weekly, "week", "weekly"}, Rule{p.monthly, "month", "monthly"},
                        Rule{p.yearly, "year", "yearly"}}) {
    // Newest first: the first snapshot seen in a bucket is its newest; a
    // bucket without snapshots does not use up the count.
    std::string last_bucket;
    int kept = 0;
    for (auto& d : out) {
      if (kept >= r.count) break;
      std::string b = bucket(d.snapshot.snapshot.time, r.unit);
      if (b == last_bucket) continue;
      last_bucket = b;
      keep(d, r.name);
      ++kept;
    }
  }
  if (!p.within.empty()) {
    ASSIGN_OR_RETURN(Within w, parse_within(p.within));
    int64_t threshold = within_threshold_ns(out.front().snapshot.snapshot.time, w);
    for (auto& d : out)
      if (d.snapshot.snapshot.time.unix_ns >= threshold) keep(d, "within " + p.within);
  }
  for (auto& d : out) {
    for (const auto& tag : p.keep_tags) {
      const auto& tags = d.snapshot.snapshot.tags;
      if (std::find(tags.begin(), tags.end(), tag) != tags.end()) keep(d, "tag " + tag);
    }
  }
  return out;
}

core::Result<std::string> group_key(const repo::Snapshot& s, const std::string& group_by) {
  std::string key;
  std::stringstream ss(group_by);
  std::string field;
  while (std::getline(ss, field, ',')) {
    if (field.empty()) continue;
    if (field == "host") {
      key += "host=" + s.hostname + " ";
    } else if (field == "service") {
      key += "service=" + (s.service.empty() ? std::string("-") : s.service) + " ";
    } else if (field == "paths") {
      std::string paths;
      for (const auto& p : s.paths) paths += (paths.empty() ? "" : ",") + p;
      key += "paths=" + paths + " ";
    } else if (field == "tags") {
      auto tags = s.tags;
      std::sort(tags.begin(), tags.end());
      std::string t;
      for (const auto& x : tags) t += (t.empty() ? "" : ",") + x;
      key += "tags=" + t + " ";
    } else {
      return core::invalid_argument("--group-by field '" + field + "' is not one of host, service, paths, tags");
    }
  }
  if (!key.empty()) key.pop_back();
  return key;
}

}  // namespace cairn::policy
