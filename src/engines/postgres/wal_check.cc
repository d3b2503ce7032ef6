// cairn pg check / WAL expiry: continuity of a service's archived WAL, its
// recovery point, and which segments no kept base backup needs any more.
#include <algorithm>
#include <map>
#include <set>

#include "engines/postgres/postgres.h"
#include "repo/log_archive.h"
#include "repo/timefmt.h"

namespace cairn::engines::postgres {

namespace {

constexpr uint64_t kDefaultSegmentsPerId = 256;  // 16 MiB segments

bool is_hex_upper(const std::string& s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'); });
}

// Segments per "xlogid" from the size of a full archived segment.
uint64_t segments_per_id(const std::vector<repo::LogEntry>& entries) {
  for (const auto& e : entries)
    if (e.name.size() == 24 && is_hex_upper(e.name) && e.size > 0 && (e.size & (e.size - 1)) == 0)
      return 0x100000000ull / e.size;
  return kDefaultSegmentsPerId;
}

struct PhysicalBase {
  std::string id;
  SegmentName start;
};

std::vector<PhysicalBase> base_backups(const std::vector<repo::SnapshotRef>& snaps,
                                       const std::string& service, uint64_t per_id) {
  std::vector<PhysicalBase> out;
  for (const auto& s : snaps) {
    const auto& e = s.snapshot.engine;
    if (s.snapshot.service != service || e.value("type", "") != "postgres" ||
        e.value("mode", "") != "physical")
      continue;
    auto seg = parse_segment_name(e.value("start_wal_file", ""), per_id);
    if (seg) out.push_back({s.id, *seg});
  }
  return out;
}

}  // namespace

std::optional<SegmentName> parse_segment_name(const std::string& name, uint64_t per_id) {
  if (name.size() < 24 || !is_hex_upper(name.substr(0, 24))) return std::nullopt;
  SegmentName s;
  s.timeline = static_cast<uint32_t>(std::stoul(name.substr(0, 8), nullptr, 16));
  uint64_t hi = std::stoull(name.substr(8, 8), nullptr, 16);
  uint64_t lo = std::stoull(name.substr(16, 8), nullptr, 16);
  if (lo >= per_id) return std::nullopt;
  s.segno = hi * per_id + lo;
  return s;
}

std::string segment_file_name(uint32_t timeline, uint64_t segno, uint64_t per_id) {
  char buf[32];
  snprintf(buf, sizeof buf, "%08X%08X%08X", timeline, static_cast<unsigned>(segno / per_id),
           static_cast<unsigned>(segno % per_id));
  return buf;
}

core::Result<ArchiveReport> check_archive(repo::Repository& repo, const std::string& service) {
  ArchiveReport r;
  repo::LogArchive archive(repo, service);
  ASSIGN_OR_RETURN(auto entries, archive.list(&r.problems));
  uint64_t per_id = segments_per_id(entries);
  std::map<uint32_t, std::set<uint64_t>> by_timeline;
  const repo::LogEntry* newest = nullptr;
  std::optional<SegmentName> newest_seg;
  for (const auto& e : entries) {
    r.files.emplace_back(e.name, archive.object_name(e.name));
    if (e.name.size() == 24 && is_hex_upper(e.name)) {
      auto seg = parse_segment_name(e.name, per_id);
      if (!seg) continue;
      r.segments++;
      by_timeline[seg->timeline].insert(seg->segno);
      if (!newest_seg ||
          std::tie(seg->timeline, seg->segno) > std::tie(newest_seg->timeline, newest_seg->segno)) {
        newest_seg = seg;
        newest = &e;
      }
    } else if (e.name.ends_with(".history")) {
      r.history_files++;
    } else {
      r.other_files++;
    }
  }
  if (newest) {
    r.newest_segment = newest->name;
    r.newest_time = newest->time;
    if (auto t = repo::parse_time(newest->time))
      r.newest_age_s = static_cast<double>(repo::now_time().unix_ns - t->unix_ns) / 1e9;
  }
  // Inside each timeline, every segment between the first and the last.
  for (const auto& [tl, segs] : by_timeline) {
    uint64_t prev = *segs.begin();
    for (uint64_t s : segs) {
      for (uint64_t m = prev + 1; m < s; ++m) r.missing.push_back(segment_file_name(tl, m, per_id));
      prev = s;
    }
  }
  ASSIGN_OR_RETURN(auto snaps, repo.list_snapshots(&r.problems));
  auto bases = base_backups(snaps, service, per_id);
  r.base_backups = bases.size();
  if (!bases.empty()) {
    const auto& oldest = bases.front();  // snapshots are oldest first
    r.oldest_needed = segment_file_name(oldest.start.timeline, oldest.start.segno, per_id);
    // From the oldest base backup's start to the first archived segment of its timeline.
    auto it = by_timeline.find(oldest.start.timeline);
    if (it == by_timeline.end()) {
      r.problems.push_back("no archived WAL on timeline " + std::to_string(oldest.start.timeline) +
                           " of base backup " + oldest.id.substr(0, 8) +
                           ": point-in-time recovery past it is impossible");
    } else {
      for (uint64_t m = oldest.start.segno; m < *it->second.begin(); ++m)
        r.missing.push_back(segment_file_name(oldest.start.timeline, m, per_id));
    }
  }
  std::sort(r.missing.begin(), r.missing.end());
  return r;
}

core::Result<FetchedWal> fetch_wal_since(repo::Repository& repo, const std::string& service,
                                         const repo::SnapshotRef& base, const std::string& dir) {
  repo::LogArchive archive(repo, service);
  ASSIGN_OR_RETURN(auto entries, archive.list());
  uint64_t per_id = segments_per_id(entries);
  auto start = parse_segment_name(base.snapshot.engine.value("start_wal_file", ""), per_id);
  FetchedWal got;
  for (const auto& e : entries) {
    bool wanted = e.name.ends_with(".history");
    if (!wanted && e.name.size() == 24) {
      auto seg = parse_segment_name(e.name, per_id);
      wanted = seg && (!start || (seg->timeline >= start->timeline && seg->segno >= start->segno));
    }
    if (!wanted) continue;
    TRY(archive.fetch(e.name, dir + "/" + e.name));
    got.files++;
    got.bytes += e.size;
  }
  return got;
}

core::Result<std::vector<std::string>> expire_wal(repo::Repository& repo,
                                                  const std::string& service, bool dry_run) {
  repo::LogArchive archive(repo, service);
  std::vector<std::string> problems;
  ASSIGN_OR_RETURN(auto entries, archive.list(&problems));
  if (!problems.empty()) return core::corruption("WAL expiry refuses: " + problems.front());
  uint64_t per_id = segments_per_id(entries);
  ASSIGN_OR_RETURN(auto snaps, repo.list_snapshots());
  auto bases = base_backups(snaps, service, per_id);
  std::vector<std::string> removed;
  if (bases.empty()) return removed;  // nothing to anchor to: keep everything
  uint64_t keep_from = bases.front().start.segno;
  for (const auto& b : bases) keep_from = std::min(keep_from, b.start.segno);
  for (const auto& e : entries) {
    if (e.name.ends_with(".history")) continue;
    auto seg = parse_segment_name(e.name, per_id);
    if (!seg || seg->segno >= keep_from) continue;
    if (!dry_run) TRY(archive.remove(e.name));
    removed.push_back(e.name);
  }
  return removed;
}

}  // namespace cairn::engines::postgres
