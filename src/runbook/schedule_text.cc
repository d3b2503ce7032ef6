// Cron expressions in words, for runbooks. Only the readings that are
// unambiguous are produced; anything else falls back to naming the fields,
// and the runbook always prints the expression and its next run times too.
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <optional>
#include <set>
#include <sstream>
#include <vector>

#include "runbook/runbook.h"

namespace cairn::runbook {

namespace {

const char* const kDays[] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                             "Thursday", "Friday", "Saturday"};
const char* const kMonths[] = {"January",   "February", "March",    "April",
                               "May",       "June",     "July",     "August",
                               "September", "October",  "November", "December"};

std::optional<int> parse_value(std::string v, int lo, bool weekday) {
  std::transform(v.begin(), v.end(), v.begin(), [](unsigned char c) { return std::toupper(c); });
  if (v.empty()) return std::nullopt;
  if (std::all_of(v.begin(), v.end(), [](unsigned char c) { return std::isdigit(c); })) {
    int n = std::stoi(v);
    if (weekday && n == 7) n = 0;
    return n;
  }
  static const char* const kDayNames[] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"};
  static const char* const kMonthNames[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                            "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
  if (weekday) {
    for (int i = 0; i < 7; ++i)
      if (v == kDayNames[i]) return i;
  } else if (lo == 1) {
    for (int i = 0; i < 12; ++i)
      if (v == kMonthNames[i]) return i + 1;
  }
  return std::nullopt;
}

// The values a field allows, or nullopt for "*" (all) or text it cannot read.
std::optional<std::set<int>> expand(const std::string& field, int lo, int hi, bool weekday,
                                    bool* star) {
  *star = field == "*";
  if (*star) return std::nullopt;
  std::set<int> out;
  std::stringstream ss(field);
  std::string part;
  while (std::getline(ss, part, ',')) {
    int step = 1;
    if (auto slash = part.find('/'); slash != std::string::npos) {
      auto s = parse_value(part.substr(slash + 1), 0, false);
      if (!s || *s <= 0) return std::nullopt;
      step = *s;
      part = part.substr(0, slash);
    }
    int a = lo, b = hi;
    if (part != "*") {
      auto dash = part.find('-');
      auto first = parse_value(part.substr(0, dash), lo, weekday);
      if (!first) return std::nullopt;
      a = *first;
      if (dash != std::string::npos) {
        auto last = parse_value(part.substr(dash + 1), lo, weekday);
        if (!last) return std::nullopt;
        b = *last;
        if (weekday && b == 0) b = 7;  // MON-SUN
      } else {
        b = step > 1 ? hi : a;
      }
    }
    if (a > b) return std::nullopt;
    for (int v = a; v <= b; v += step) out.insert(weekday && v == 7 ? 0 : v);
  }
  return out;
}

std::string join_words(const std::vector<std::string>& words) {
  if (words.empty()) return "";
  if (words.size() == 1) return words[0];
  std::string out;
  for (size_t i = 0; i + 1 < words.size(); ++i) out += (i ? ", " : "") + words[i];
  return out + " and " + words.back();
}

std::string weekdays(const std::set<int>& days) {
  // Monday first, so MON-FRI reads "Monday to Friday".
  std::vector<int> order;
  for (int d : {1, 2, 3, 4, 5, 6, 0})
    if (days.count(d)) order.push_back(d);
  auto pos = [](int d) { return d == 0 ? 7 : d; };
  bool consecutive = order.size() >= 3;
  for (size_t i = 1; i < order.size() && consecutive; ++i)
    consecutive = pos(order[i]) == pos(order[i - 1]) + 1;
  if (consecutive) return std::string(kDays[order.front()]) + " to " + kDays[order.back()];
  std::vector<std::string> names;
  for (int d : order) names.push_back(kDays[d]);
  return join_words(names);
}

}  // namespace

std::string describe_schedule(const std::string& expression) {
  std::string e = expression;
  if (e.empty()) return "not scheduled";
  if (e == "@yearly" || e == "@annually") return "once a year, on 1 January at 00:00";
  if (e == "@monthly") return "on the 1st of every month at 00:00";
  if (e == "@weekly") return "every Sunday at 00:00";
  if (e == "@daily" || e == "@midnight") return "every day at 00:00";
  if (e == "@hourly") return "every hour at minute 0";
  if (e.rfind("@every", 0) == 0) return "every " + e.substr(e.find_first_not_of(' ', 6));
  std::stringstream ss(e);
  std::vector<std::string> f;
  for (std::string w; ss >> w;) f.push_back(w);
  if (f.size() != 5) return "cron \"" + e + "\"";
  bool mstar, hstar, domstar, monstar, dowstar;
  auto minutes = expand(f[0], 0, 59, false, &mstar);
  auto hours = expand(f[1], 0, 23, false, &hstar);
  auto doms = expand(f[2], 1, 31, false, &domstar);
  auto months = expand(f[3], 1, 12, false, &monstar);
  auto dows = expand(f[4], 0, 6, true, &dowstar);

  std::string when;
  if (mstar && hstar) {
    when = "every minute";
  } else if (minutes && minutes->size() == 1 && hours && hours->size() <= 6) {
    std::vector<std::string> times;
    for (int h : *hours) times.push_back(fmt::format("{:02}:{:02}", h, *minutes->begin()));
    when = "at " + join_words(times);
  } else if (minutes && minutes->size() == 1 && hstar) {
    when = fmt::format("every hour at minute {}", *minutes->begin());
  } else if (minutes && hstar && f[0].rfind("*/", 0) == 0) {
    when = "every " + f[0].substr(2) + " minutes";
  } else if (minutes && minutes->size() == 1 && hours && f[1].rfind("*/", 0) == 0) {
    when = fmt::format("every {} hours at minute {}", f[1].substr(2), *minutes->begin());
  } else {
    when = "at minute " + f[0] + " of hour " + f[1];
  }

  std::string days;
  if (domstar && dowstar) {
    days = "every day";
  } else if (domstar && dows) {
    days = "on " + weekdays(*dows);
  } else if (doms && dowstar) {
    std::vector<std::string> d;
    for (int v : *doms) d.push_back(std::to_string(v));
    days = (d.size() == 1 ? "on day " : "on days ") + join_words(d) + " of the month";
  } else {
    days = "on day-of-month " + f[2] + " or weekday " + f[4];
  }
  std::string in_months;
  if (months) {
    std::vector<std::string> m;
    for (int v : *months) m.push_back(kMonths[v - 1]);
    in_months = " in " + join_words(m);
  } else if (!monstar) {
    in_months = " in month " + f[3];
  }
  if (days == "every day" && when.rfind("every", 0) == 0)
    return when + in_months;  // "every hour ..."
  return when + " " + days + in_months;
}

}  // namespace cairn::runbook
