#include "repo/timefmt.h"

#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <ctime>

namespace cairn::repo {

Time now_time() {
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                std::chrono::system_clock::now().time_since_epoch())
                .count();
  time_t secs = static_cast<time_t>(ns / 1000000000);
  struct tm tm;
  localtime_r(&secs, &tm);
  return Time{ns, static_cast<int32_t>(tm.tm_gmtoff)};
}

std::string format_time(const Time& t) {
  int64_t secs = t.unix_ns / 1000000000;
  int64_t frac = t.unix_ns % 1000000000;
  if (frac < 0) {
    frac += 1000000000;
    --secs;
  }
  time_t wall = static_cast<time_t>(secs + t.utc_offset_s);
  struct tm tm;
  gmtime_r(&wall, &tm);
  std::string zone;
  if (t.utc_offset_s == 0) {
    zone = "Z";
  } else {
    int off = t.utc_offset_s < 0 ? -t.utc_offset_s : t.utc_offset_s;
    zone = fmt::format("{}{:02}:{:02}", t.utc_offset_s < 0 ? '-' : '+', off / 3600, off / 60 % 60);
  }
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}{}", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac, zone);
}

std::optional<Time> parse_time(const std::string& s) {
  struct tm tm = {};
  int consumed = 0;
  if (sscanf(s.c_str(), "%4d-%2d-%2d%*[T ]%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
             &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &consumed) != 6)
    return std::nullopt;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  size_t i = static_cast<size_t>(consumed);
  int64_t frac_ns = 0;
  if (i < s.size() && s[i] == '.') {
    ++i;
    int64_t scale = 100000000;
    while (i < s.size() && isdigit(static_cast<unsigned char>(s[i]))) {
      frac_ns += (s[i] - '0') * scale;
      scale /= 10;
      ++i;
    }
  }
  Time t;
  if (i == s.size()) {  // no zone: local time
    tm.tm_isdst = -1;
    time_t secs = mktime(&tm);
    if (secs == -1) return std::nullopt;
    struct tm local;
    localtime_r(&secs, &local);
    t.utc_offset_s = static_cast<int32_t>(local.tm_gmtoff);
    t.unix_ns = static_cast<int64_t>(secs) * 1000000000 + frac_ns;
    return t;
  }
  int offset = 0;
  if (s[i] == 'Z' || s[i] == 'z') {
    ++i;
  } else if (s[i] == '+' || s[i] == '-') {
    // +hh:mm (RFC 3339), and PostgreSQL's +hh and +hhmm.
    const char sign = s[i++];
    auto two_digits = [&](int& v) {
      if (i + 2 > s.size() || !isdigit(static_cast<unsigned char>(s[i])) ||
          !isdigit(static_cast<unsigned char>(s[i + 1])))
        return false;
      v = (s[i] - '0') * 10 + (s[i + 1] - '0');
      i += 2;
      return true;
    };
    int hh = 0, mm = 0;
    if (!two_digits(hh)) return std::nullopt;
    if (i < s.size() && s[i] == ':') ++i;
    if (i < s.size() && !two_digits(mm)) return std::nullopt;
    offset = (hh * 3600 + mm * 60) * (sign == '-' ? -1 : 1);
  } else {
    return std::nullopt;
  }
  if (i != s.size()) return std::nullopt;
  time_t secs = timegm(&tm) - offset;
  t.utc_offset_s = offset;
  t.unix_ns = static_cast<int64_t>(secs) * 1000000000 + frac_ns;
  return t;
}

}  // namespace cairn::repo
