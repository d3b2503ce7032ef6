// Binlog coordinates and the event-header walk of binlog files (format v4):
// what a dump's header, mariadb-backup's log and a binlog file say about
// positions and times.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <regex>

#include "core/file.h"
#include "engines/mariadb/mariadb.h"
#include "repo/timefmt.h"

namespace cairn::engines::mariadb {

namespace {

bool safe_file_name(const std::string& f) {
  if (f.empty() || f.size() > 255 || f[0] == '.') return false;
  return std::all_of(f.begin(), f.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
  });
}

std::optional<uint64_t> parse_u64(const std::string& s) {
  if (s.empty() || s.size() > 19 || !std::all_of(s.begin(), s.end(), ::isdigit))
    return std::nullopt;
  return std::stoull(s);
}

uint32_t le32(const uint8_t* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}

constexpr uint8_t kStopEvent = 3;
constexpr uint8_t kRotateEvent = 4;
constexpr uint8_t kFormatDescriptionEvent = 15;
constexpr uint8_t kStartEncryptionEvent = 164;
constexpr size_t kHeaderSize = 19;

}  // namespace

std::optional<BinlogPosition> parse_position(const std::string& text) {
  size_t colon = text.rfind(':');
  if (colon == std::string::npos) return std::nullopt;
  BinlogPosition p;
  p.file = text.substr(0, colon);
  auto pos = parse_u64(text.substr(colon + 1));
  if (!pos || !safe_file_name(p.file) || !binlog_sequence(p.file)) return std::nullopt;
  p.position = *pos;
  return p;
}

std::optional<uint64_t> binlog_sequence(const std::string& file) {
  size_t dot = file.rfind('.');
  if (dot == std::string::npos || dot == 0) return std::nullopt;
  return parse_u64(file.substr(dot + 1));
}

std::string binlog_stem(const std::string& file) {
  size_t dot = file.rfind('.');
  return dot == std::string::npos ? file : file.substr(0, dot);
}

bool position_before(const BinlogPosition& a, const BinlogPosition& b) {
  auto sa = binlog_sequence(a.file).value_or(0), sb = binlog_sequence(b.file).value_or(0);
  return sa != sb ? sa < sb : a.position < b.position;
}

std::optional<BinlogPosition> parse_change_master(const std::string& text) {
  // The number must be followed by its terminator: a stream read in pieces
  // may have delivered only its first digits so far.
  static const std::regex re(
      R"(CHANGE MASTER TO MASTER_LOG_FILE='([^']+)',\s*MASTER_LOG_POS=(\d+)\s*[;,])");
  std::smatch m;
  if (!std::regex_search(text, m, re)) return std::nullopt;
  auto pos = parse_u64(m[2].str());
  if (!pos || !safe_file_name(m[1].str())) return std::nullopt;
  return BinlogPosition{m[1].str(), *pos};
}

std::optional<BinlogPosition> parse_backup_binlog_info(const std::string& text) {
  static const std::regex log_re(R"(binlog position: filename '([^']+)', position '(\d+)')");
  static const std::regex info_re(R"((?:^|\n)([A-Za-z0-9._-]+)\t(\d+)(?:\t|\n|$))");
  std::smatch m;
  if (!std::regex_search(text, m, log_re) && !std::regex_search(text, m, info_re))
    return std::nullopt;
  auto pos = parse_u64(m[2].str());
  if (!pos || !safe_file_name(m[1].str())) return std::nullopt;
  return BinlogPosition{m[1].str(), *pos};
}

core::Result<BinlogScan> scan_binlog(const uint8_t* data, size_t size) {
  static const uint8_t kMagic[4] = {0xfe, 'b', 'i', 'n'};
  if (size < 4 || !std::equal(kMagic, kMagic + 4, data))
    return core::corruption("not a binlog file (no 0xfe 'bin' magic)");
  BinlogScan s;
  bool checksum = false;
  size_t at = 4;
  s.end_position = 4;
  while (at + kHeaderSize <= size) {
    const uint8_t* h = data + at;
    uint32_t when = le32(h);
    uint8_t type = h[4];
    uint32_t length = le32(h + 9);
    if (length < kHeaderSize)
      return core::corruption("binlog event at " + std::to_string(at) + " is too short");
    if (at + length > size) break;  // a partly written last event
    const uint8_t* end = data + at + length;
    if (type == kFormatDescriptionEvent && length >= kHeaderSize + 5) {
      uint8_t alg = end[-5];
      checksum = alg == 1;  // BINLOG_CHECKSUM_ALG_CRC32
    }
    s.events++;
    if (s.events == 1 || (s.first_time == 0 && when != 0)) s.first_time = when;
    if (when != 0) s.last_time = std::max(s.last_time, when);
    s.rotated = type == kRotateEvent;
    s.stopped = type == kStopEvent;
    if (type == kRotateEvent) {
      size_t body = kHeaderSize + 8, tail = checksum ? 4 : 0;
      s.next_file = length > body + tail
                        ? std::string(reinterpret_cast<const char*>(h + body), length - body - tail)
                        : "";
    }
    at += length;
    s.end_position = at;
    if (type == kStartEncryptionEvent) {
      s.encrypted = true;
      break;
    }
  }
  return s;
}

core::Result<BinlogScan> scan_binlog_file(const std::string& path) {
  ASSIGN_OR_RETURN(core::UniqueFd fd, core::open_file(path, O_RDONLY | O_CLOEXEC));
  struct stat st;
  if (fstat(fd.get(), &st) != 0) return core::errno_status(errno, path);
  if (st.st_size == 0) return core::corruption(path + " is empty");
  // Mapped, not read: binlogs are up to 1 GiB and only headers are touched.
  void* map = mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd.get(), 0);
  if (map == MAP_FAILED) return core::errno_status(errno, "mmap " + path);
  auto r = scan_binlog(static_cast<const uint8_t*>(map), static_cast<size_t>(st.st_size));
  munmap(map, static_cast<size_t>(st.st_size));
  if (!r.ok()) return r.status().with_context(path);
  return r;
}

std::vector<std::string> find_gaps(const std::vector<std::string>& names) {
  std::vector<std::pair<uint64_t, std::string>> seq;
  for (const auto& n : names)
    if (auto s = binlog_sequence(n)) seq.emplace_back(*s, n);
  std::sort(seq.begin(), seq.end());
  std::vector<std::string> missing;
  for (size_t i = 1; i < seq.size(); i++) {
    const std::string& prev = seq[i - 1].second;
    size_t digits = prev.size() - prev.rfind('.') - 1;
    for (uint64_t n = seq[i - 1].first + 1; n < seq[i].first && missing.size() < 1000; n++) {
      std::string num = std::to_string(n);
      if (num.size() < digits) num.insert(0, digits - num.size(), '0');
      missing.push_back(binlog_stem(prev) + "." + num);
    }
  }
  return missing;
}

core::Result<RecoveryTarget> parse_time_target(const std::string& text) {
  auto t = repo::parse_time(text);
  if (!t)
    return core::invalid_argument("--to-time '" + text +
                                  "' is not a time (use RFC 3339, e.g. 2026-11-25T10:31:00Z)");
  RecoveryTarget r;
  r.kind = RecoveryTarget::Kind::kTime;
  int64_t ns = t->unix_ns;
  r.time = ns >= 0 ? ns / 1'000'000'000 : -((-ns + 999'999'999) / 1'000'000'000);
  r.text = text;
  return r;
}

}  // namespace cairn::engines::mariadb
