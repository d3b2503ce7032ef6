#include "policy/cron.h"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cctype>
#include <exception>
#include <map>
#include <mutex>
#include <vector>

#include "policy/duration.h"

namespace cairn::policy {

namespace {

using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;
using std::chrono::sys_seconds;
using namespace std::chrono_literals;

// Searches stop at the year 10000: past it next_after reports "never".
constexpr int kMaxYear = 9999;
const sys_seconds kBeginOfTime{date::sys_days{date::year{1} / 1 / 1}};
const sys_seconds kEndOfTime{date::sys_days{date::year{kMaxYear + 1} / 1 / 1}};

constexpr const char* kMonthNames[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                       "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
constexpr const char* kDayNames[] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"};

struct FieldSpec {
  const char* name;
  int min, max;
  int star_max;              // end of "*" and "a/n": 6 for day-of-week, whose 7 repeats 0
  const char* const* names;  // nullptr: numbers only
  int name_count;
  int first_name_value;  // value of names[0]
  const char* name_kind;
};

constexpr FieldSpec kFields[5] = {
    {"minute", 0, 59, 59, nullptr, 0, 0, nullptr},
    {"hour", 0, 23, 23, nullptr, 0, 0, nullptr},
    {"day-of-month", 1, 31, 31, nullptr, 0, 0, nullptr},
    {"month", 1, 12, 12, kMonthNames, 12, 1, "month"},
    {"day-of-week", 0, 7, 6, kDayNames, 7, 0, "weekday"},
};

struct Macro {
  const char* name;
  const char* fields;
};

constexpr Macro kMacros[] = {
    {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
    {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
    {"@hourly", "0 * * * *"},
};

bool is_space(char c) { return c == ' ' || c == '\t'; }

std::vector<std::string_view> split_fields(std::string_view s) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && is_space(s[i])) ++i;
    size_t j = i;
    while (j < s.size() && !is_space(s[j])) ++j;
    if (j > i) out.push_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

bool equals_ignore_case(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::toupper(static_cast<unsigned char>(x)) ==
                  std::toupper(static_cast<unsigned char>(y));
         });
}

bool all_of(std::string_view s, int (*pred)(int)) {
  return !s.empty() && std::all_of(s.begin(), s.end(),
                                   [&](char c) { return pred(static_cast<unsigned char>(c)); });
}

core::Status field_error(const FieldSpec& f, std::string_view value, std::string_view why) {
  return core::invalid_argument(fmt::format("{} field \"{}\": {}", f.name, value, why));
}

// One value of a field: a number in range or (month, day-of-week) a three-letter name.
core::Result<int> parse_value(const FieldSpec& f, std::string_view text) {
  if (all_of(text, isdigit)) {
    int v = 0;
    for (char c : text) v = std::min(v * 10 + (c - '0'), 1000);  // saturate: out of range anyway
    if (v < f.min || v > f.max) {
      return field_error(f, text, fmt::format("value out of range {}-{}", f.min, f.max));
    }
    return v;
  }
  if (f.names != nullptr && all_of(text, isalpha)) {
    for (int i = 0; i < f.name_count; ++i) {
      if (equals_ignore_case(text, f.names[i])) return f.first_name_value + i;
    }
    return core::invalid_argument(fmt::format("unknown {} name \"{}\"", f.name_kind, text));
  }
  return field_error(f, text, "not a number");
}

// The bit set of one field: comma-separated items, each "*", "v" or "a-b", optionally "/step".
core::Result<uint64_t> parse_field(const FieldSpec& f, std::string_view field) {
  uint64_t bits = 0;
  size_t start = 0;
  while (true) {
    size_t comma = field.find(',', start);
    std::string_view item = field.substr(start, comma == field.npos ? field.npos : comma - start);
    if (item.empty()) return field_error(f, field, "empty list item");

    std::string_view base = item;
    int step = 1;
    bool has_step = false;
    if (size_t slash = item.find('/'); slash != item.npos) {
      has_step = true;
      base = item.substr(0, slash);
      std::string_view step_text = item.substr(slash + 1);
      if (step_text.empty()) return field_error(f, item, "empty step");
      if (!all_of(step_text, isdigit)) return field_error(f, item, "step is not a number");
      step = 0;
      for (char c : step_text) step = std::min(step * 10 + (c - '0'), 1000);
      if (step < 1 || step > f.max) {
        return field_error(f, item, fmt::format("step out of range 1-{}", f.max));
      }
    }

    int lo = f.min, hi = f.star_max;
    if (base == "*") {
      // lo-hi is the whole range
    } else if (size_t dash = base.find('-'); dash != base.npos) {
      std::string_view a = base.substr(0, dash), b = base.substr(dash + 1);
      if (a.empty() || b.empty() || b.find('-') != b.npos) {
        return field_error(f, item, "invalid range");
      }
      auto va = parse_value(f, a);
      if (!va.ok()) return va.status();
      auto vb = parse_value(f, b);
      if (!vb.ok()) return vb.status();
      if (*va > *vb) return field_error(f, base, "reversed range (start after end)");
      lo = *va;
      hi = *vb;
    } else if (base.empty()) {
      return field_error(f, item, "missing value before step");
    } else {
      auto v = parse_value(f, base);
      if (!v.ok()) return v.status();
      lo = *v;
      hi = has_step ? std::max(f.star_max, lo) : lo;  // "a/n" runs from a to the range's end
    }
    for (int v = lo; v <= hi; v += step) bits |= uint64_t{1} << v;

    if (comma == field.npos) break;
    start = comma + 1;
  }
  return bits;
}

// Lowest set bit >= from, or -1.
int next_bit(uint64_t bits, int from) {
  if (from >= 64) return -1;
  uint64_t rest = bits & (~uint64_t{0} << from);
  return rest == 0 ? -1 : std::countr_zero(rest);
}

// Longest each month can be (February 29 in leap years); index 1-12.
constexpr unsigned kMaxDays[13] = {0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

// A stretch of time with one UTC offset, and the offset just before it.
struct Segment {
  sys_seconds begin, end;
  seconds offset{0}, prev_offset{0};
};

Segment segment_at(const date::time_zone* zone, sys_seconds s) {
  if (zone == nullptr) return {kBeginOfTime, kEndOfTime, 0s, 0s};
  date::sys_info info = zone->get_info(s);
  Segment seg{std::max(info.begin, kBeginOfTime), std::min(info.end, kEndOfTime), info.offset,
              info.offset};
  if (info.begin > kBeginOfTime) seg.prev_offset = zone->get_info(info.begin - 1s).offset;
  return seg;
}

date::local_seconds local_of(sys_seconds t, seconds offset) {
  return date::local_seconds{(t + offset).time_since_epoch()};
}

}  // namespace

core::Result<CronSchedule> CronSchedule::parse(std::string_view expr) {
  std::string_view text = trim(expr);
  if (text.empty()) return core::invalid_argument("empty schedule");
  CronSchedule s;
  s.expression_ = std::string(text);
  std::vector<std::string_view> fields = split_fields(text);

  if (fields[0].front() == '@') {
    if (equals_ignore_case(fields[0], "@every")) {
      if (fields.size() != 2) {
        return core::invalid_argument("@every takes one duration, e.g. \"@every 5m\"");
      }
      auto d = parse_duration(fields[1]);
      if (!d.ok()) return d.status().with_context("@every");
      if (*d < 1s) {
        return core::invalid_argument(
            fmt::format("@every \"{}\": interval must be at least 1s", fields[1]));
      }
      s.every_ = *d;
      return s;
    }
    const Macro* macro = nullptr;
    for (const Macro& m : kMacros) {
      if (equals_ignore_case(fields[0], m.name)) macro = &m;
    }
    if (macro == nullptr) {
      return core::invalid_argument(fmt::format(
          "unknown macro \"{}\" (use @yearly, @annually, @monthly, @weekly, @daily, @midnight, "
          "@hourly or @every <duration>)",
          fields[0]));
    }
    if (fields.size() != 1) {
      return core::invalid_argument(fmt::format("macro \"{}\" takes no fields", fields[0]));
    }
    fields = split_fields(macro->fields);
  }

  if (fields.size() != 5) {
    return core::invalid_argument(fmt::format("expected 5 fields, got {}", fields.size()));
  }
  uint64_t* targets[5] = {&s.minutes_, &s.hours_, &s.days_of_month_, &s.months_, &s.days_of_week_};
  for (int i = 0; i < 5; ++i) {
    auto bits = parse_field(kFields[i], fields[i]);
    if (!bits.ok()) return bits.status();
    *targets[i] = *bits;
  }
  if (s.days_of_week_ & (uint64_t{1} << 7)) s.days_of_week_ = (s.days_of_week_ | 1) & 0x7f;
  s.wildcard_ = fields[0].front() == '*' || fields[1].front() == '*';
  s.dom_star_ = fields[2].front() == '*';
  s.dow_star_ = fields[4].front() == '*';

  // With "either day field" semantics every week has a matching day. Otherwise some selected
  // day of the month must exist in some selected month; each such date then falls on every
  // weekday within the 400-year Gregorian cycle, so the day-of-week field cannot empty it.
  if (s.dom_star_ || s.dow_star_) {
    const int first_day = next_bit(s.days_of_month_, 0);
    bool fires = false;
    for (int m = 1; m <= 12; ++m) {
      if ((s.months_ >> m & 1) && first_day <= int(kMaxDays[m])) fires = true;
    }
    if (!fires) {
      return core::invalid_argument(fmt::format(
          "never fires: day-of-month \"{}\" does not occur in month \"{}\"", fields[2], fields[3]));
    }
  }
  return s;
}

bool CronSchedule::day_matches(unsigned day_of_month, unsigned day_of_week) const {
  bool dom = days_of_month_ >> day_of_month & 1;
  bool dow = days_of_week_ >> day_of_week & 1;
  return (dom_star_ || dow_star_) ? (dom && dow) : (dom || dow);
}

std::optional<date::local_seconds> CronSchedule::next_local(date::local_seconds from,
                                                            date::local_seconds limit) const {
  const auto start = std::chrono::ceil<minutes>(from);
  const auto start_day = std::chrono::floor<date::days>(start);
  const date::year_month_day ymd{start_day};
  int y = int(ymd.year());
  int mo = int(unsigned(ymd.month()));
  int d = int(unsigned(ymd.day()));
  const int minute_of_day = int((start - start_day).count());
  int h = minute_of_day / 60;
  int mi = minute_of_day % 60;

  // Every step moves (y, mo, d, h, mi) forward to the next candidate, so the loop ends at a
  // match, at `limit` or at kMaxYear.
  while (y <= kMaxYear) {
    int next_month = next_bit(months_, mo);
    if (next_month < 0) {
      ++y, mo = 1, d = 1, h = 0, mi = 0;
      continue;
    }
    if (next_month != mo) mo = next_month, d = 1, h = 0, mi = 0;

    const date::year_month ym = date::year{y} / date::month{unsigned(mo)};
    const int last = int(unsigned((ym / date::last).day()));
    const unsigned first_weekday = date::weekday{date::local_days{ym / 1}}.c_encoding();
    while (d <= last && !day_matches(unsigned(d), (first_weekday + unsigned(d) - 1) % 7)) {
      ++d, h = 0, mi = 0;
    }
    if (d > last) {
      if (++mo > 12) ++y, mo = 1;
      d = 1, h = 0, mi = 0;
      continue;
    }
    const date::local_days day{ym / date::day{unsigned(d)}};
    if (day >= limit) return std::nullopt;

    int next_hour = next_bit(hours_, h);
    if (next_hour < 0) {
      ++d, h = 0, mi = 0;
      continue;
    }
    if (next_hour != h) h = next_hour, mi = 0;
    int next_minute = next_bit(minutes_, mi);
    if (next_minute < 0) {
      ++h, mi = 0;
      continue;
    }
    date::local_seconds found = day + hours{h} + minutes{next_minute};
    if (found >= limit) return std::nullopt;
    return found;
  }
  return std::nullopt;
}

sys_seconds CronSchedule::next_cron(sys_seconds t, const date::time_zone* zone) const {
  sys_seconds s = t + 1s;  // earliest instant still allowed
  while (s < kEndOfTime) {
    const Segment seg = segment_at(zone, s);
    if (!wildcard_ && s == seg.begin && seg.prev_offset < seg.offset) {
      // Spring forward: local times in [begin + prev_offset, begin + offset) do not exist.
      // A fixed-time job due in that gap runs once, at the first instant after it.
      if (next_local(local_of(seg.begin, seg.prev_offset), local_of(seg.begin, seg.offset))) {
        return seg.begin;
      }
    }
    date::local_seconds from = local_of(s, seg.offset);
    if (!wildcard_ && seg.prev_offset > seg.offset) {
      // Fall back: local times before begin + prev_offset occurred in the previous segment
      // already, and a fixed-time job ran at that first occurrence.
      from = std::max(from, local_of(seg.begin, seg.prev_offset));
    }
    if (auto local = next_local(from, local_of(seg.end, seg.offset))) {
      return sys_seconds{local->time_since_epoch()} - seg.offset;
    }
    s = seg.end;
  }
  return sys_seconds::max();
}

sys_seconds CronSchedule::next_after(sys_seconds t, const date::time_zone* zone) const {
  if (t >= kEndOfTime) return sys_seconds::max();
  t = std::max(t, kBeginOfTime - 1s);
  if (every_ > 0s) {
    // Anchored to the epoch: the next multiple of every_ after t (floor division for t < 0).
    int64_t n = every_.count(), q = t.time_since_epoch().count() / n;
    if (t.time_since_epoch().count() % n < 0) --q;
    return sys_seconds{seconds{(q + 1) * n}};
  }
  return next_cron(t, zone);
}

seconds CronSchedule::max_interval(const date::time_zone* zone) const {
  if (every_ > 0s) return every_;
  // Fleets repeat the same few expressions; a policy is validated by every
  // job process, so remember each answer.
  static std::mutex mu;
  static std::map<std::pair<std::string, const date::time_zone*>, seconds> memo;
  auto key = std::make_pair(expression_, zone);
  {
    std::lock_guard lock(mu);
    if (auto it = memo.find(key); it != memo.end()) return it->second;
  }
  seconds longest = scan_max_interval(zone);
  std::lock_guard lock(mu);
  memo.emplace(key, longest);
  return longest;
}

seconds CronSchedule::scan_max_interval(const date::time_zone* zone) const {
  const sys_seconds window_begin{date::sys_days{date::year{2027} / 1 / 1}};
  const sys_seconds window_end{date::sys_days{date::year{2029} / 1 / 1}};
  // Within one local hour the runs are the minute field's minutes, so the
  // longest gap inside an hour is known from the bits alone; the scan then
  // jumps from an hour's first run to its last one (where the UTC offset is
  // the same at both ends, i.e. no DST change in between) instead of
  // visiting every run: `* * * * *` costs 17,520 steps for two years, not
  // a million (the daemon's job processes validate the policy each time).
  int first_minute = -1, last_minute = -1;
  seconds longest{0};
  for (int m = 0; m < 60; m++) {
    if (!((minutes_ >> m) & 1)) continue;
    if (last_minute >= 0) longest = std::max<seconds>(longest, std::chrono::minutes(m - last_minute));
    if (first_minute < 0) first_minute = m;
    last_minute = m;
  }
  auto offset = [zone](sys_seconds t) { return zone ? zone->get_info(t).offset : seconds(0); };
  auto local_minute = [&](sys_seconds t) {
    return static_cast<int>(((t + offset(t)).time_since_epoch().count() / 60) % 60);
  };
  sys_seconds run = next_after(window_begin - 1s, zone);
  while (run < window_end && run != sys_seconds::max()) {
    sys_seconds last = run + std::chrono::minutes(last_minute - local_minute(run));
    if (last > run && offset(last) == offset(run) && next_after(last - 1s, zone) == last) run = last;
    sys_seconds next = next_after(run, zone);
    if (next == sys_seconds::max()) break;
    longest = std::max(longest, next - run);
    run = next;
  }
  return longest;
}

core::Result<const date::time_zone*> find_zone(std::string_view name) {
  if (name.empty()) return core::invalid_argument("empty time zone name");
  try {
    return date::locate_zone(std::string(name));
  } catch (const std::exception&) {
    // date throws std::runtime_error for unknown names (and if the database cannot load).
    return core::invalid_argument(fmt::format("unknown time zone \"{}\"", name));
  }
}

}  // namespace cairn::policy
