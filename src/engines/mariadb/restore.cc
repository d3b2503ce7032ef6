// MariaDB restores: choosing a base backup for a target, loading a dump
// into a server, extracting + preparing a physical backup, and replaying
// archived binlogs (mariadb-binlog | mariadb) up to a time or position.
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "archive/tree_walk.h"
#include "core/file.h"
#include "core/process.h"
#include "engines/mariadb/mariadb.h"
#include "repo/log_archive.h"
#include "repo/timefmt.h"

namespace cairn::engines::mariadb {

using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

std::optional<BinlogPosition> base_position(const repo::Snapshot& s) {
  const json& e = s.engine;
  if (!e.contains("binlog_file") || !e["binlog_file"].is_string()) return std::nullopt;
  return BinlogPosition{e["binlog_file"].get<std::string>(),
                        e.value("binlog_position", uint64_t{0})};
}

std::string utc_datetime(int64_t unix_s) {
  time_t t = static_cast<time_t>(unix_s);
  struct tm tm;
  gmtime_r(&t, &tm);
  char buf[32];
  strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

// Runs `consumer` with its stdin fed by `feed(fd)`; both must succeed. The
// consumer's error (it usually says why) wins over a broken pipe.
core::Status pipe_into(const std::vector<std::string>& consumer,
                       const std::vector<std::string>& env,
                       const std::function<core::Status(int fd)>& feed) {
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) != 0) return core::errno_status(errno, "pipe");
  core::ProcessOptions po;
  po.capture_stdout = false;
  po.stdin_fd = pipefd[0];
  po.env = env;
  auto proc = core::Subprocess::start(consumer, po);
  close(pipefd[0]);
  core::Status fed;
  if (proc.ok()) fed = feed(pipefd[1]);
  close(pipefd[1]);
  if (!proc.ok()) return proc.status();
  TRY((*proc)->wait());
  return fed;
}

core::Status stream_entry_to(repo::Repository& repo, const repo::SnapshotRef& snap,
                             const std::string& file, int fd, const std::string& to) {
  auto located = archive::locate(repo, snap.snapshot.tree, file);
  if (!located.ok()) return core::not_found("snapshot " + snap.id.substr(0, 8) + " has no " + file);
  return archive::stream_file(repo, located->node,
                              [&](core::ByteView b) { return core::write_all(fd, b, to); });
}

}  // namespace

core::Result<repo::SnapshotRef> choose_base(const std::vector<repo::SnapshotRef>& snapshots,
                                            const std::string& service, const std::string& mode,
                                            const RecoveryTarget& target) {
  using Kind = RecoveryTarget::Kind;
  const repo::SnapshotRef* best = nullptr;
  size_t bases = 0, with_binlog = 0;
  for (const auto& s : snapshots) {  // oldest first
    const json& e = s.snapshot.engine;
    if (s.snapshot.service != service || e.value("type", "") != "mariadb") continue;
    if (!mode.empty() && e.value("mode", "") != mode) continue;
    bases++;
    auto pos = base_position(s.snapshot);
    if (target.kind != Kind::kBaseOnly) {
      if (!pos) continue;
      with_binlog++;
    }
    if (target.kind == Kind::kTime) {
      auto t = repo::parse_time(e.value("consistent_time", ""));
      if (!t) t = s.snapshot.time;  // older metadata: the backup's start is before its point
      if (t->unix_ns >= (target.time + 1) * 1'000'000'000) continue;
    }
    if (target.kind == Kind::kPosition) {
      if (binlog_stem(pos->file) != binlog_stem(target.position.file) ||
          position_before(target.position, *pos))
        continue;
    }
    best = &s;
  }
  if (best) return *best;
  std::string what = mode.empty() ? "" : mode + " ";
  if (bases == 0)
    return core::not_found("service '" + service + "' has no " + what + "MariaDB backup");
  if (target.kind != Kind::kBaseOnly && with_binlog == 0)
    return core::not_found("no " + what + "MariaDB backup of service '" + service +
                           "' recorded a binlog position (was the server running with --log-bin?)");
  return core::not_found("no " + what + "MariaDB backup of service '" + service + "' precedes " +
                         target.text + ": the oldest one cannot go back to an earlier point");
}

core::Status restore_logical(repo::Repository& repo, const repo::SnapshotRef& snap,
                             const Connection& target, bool users) {
  const json& e = snap.snapshot.engine;
  if (e.value("type", "") != "mariadb" || e.value("mode", "") != "logical")
    return core::invalid_argument("snapshot " + snap.id.substr(0, 8) +
                                  " is not a logical MariaDB backup");
  ASSIGN_OR_RETURN(auto opts, ClientOptions::create(target));
  std::vector<std::string> argv = opts->argv("mariadb");
  argv.insert(argv.end(), {"--binary-mode", "--batch"});
  auto load = [&](const std::string& f) {
    core::Status st =
        pipe_into(argv, {}, [&](int fd) { return stream_entry_to(repo, snap, f, fd, "mariadb"); });
    if (!st.ok())
      return st.with_context("loading " + f + " of snapshot " + snap.id.substr(0, 8) +
                             " into MariaDB at " + target.describe());
    return st;
  };
  // A parallel backup: its table streams are independent (each creates its
  // databases if missing and turns foreign key checks off), so they load at
  // once; objects.sql (views, routines, events) needs the tables and goes last.
  std::vector<std::string> together, after;
  if (e.value("layout", "") == "parallel" && e.contains("streams") && e["streams"].is_array()) {
    for (const auto& f : e["streams"]) {
      if (!f.is_string())
        return core::corruption("snapshot " + snap.id.substr(0, 8) +
                                " has a malformed stream list");
      std::string name = "/" + f.get<std::string>();
      (name.starts_with("/dump/tables-") ? together : after).push_back(name);
    }
  } else {
    after.push_back("/dump.sql");
  }
  if (users) after.push_back("/users.sql");
  std::vector<core::Status> results(together.size());
  std::vector<std::thread> loaders;
  for (size_t i = 0; i < together.size(); ++i)
    loaders.emplace_back([&, i] { results[i] = load(together[i]); });
  for (auto& t : loaders) t.join();
  for (const auto& st : results) TRY(st);
  for (const auto& f : after) TRY(load(f));
  return {};
}

core::Result<std::optional<BinlogPosition>> restore_physical(repo::Repository& repo,
                                                             const repo::SnapshotRef& snap,
                                                             const std::string& dir) {
  const json& e = snap.snapshot.engine;
  if (e.value("type", "") != "mariadb" || e.value("mode", "") != "physical")
    return core::invalid_argument("snapshot " + snap.id.substr(0, 8) +
                                  " is not a physical MariaDB backup");
  std::error_code ec;
  if (fs::exists(dir, ec) && !fs::is_empty(dir, ec))
    return core::invalid_argument("target directory " + dir +
                                  " is not empty: restore into a new one");
  fs::create_directories(dir, ec);
  if (ec) return core::errno_status(ec.value(), dir);
  TRY(pipe_into({"mbstream", "-x", "-C", dir}, {}, [&](int fd) {
        return stream_entry_to(repo, snap, "/backup.xbstream", fd, "mbstream");
      }).with_context("extracting snapshot " + snap.id.substr(0, 8) + " into " + dir));
  auto prepared = core::run_and_capture(
      {"mariadb-backup", "--no-defaults", "--prepare", "--target-dir=" + dir});
  if (!prepared.ok())
    return prepared.status().with_context("preparing " + dir + " (mariadb-backup --prepare)");
  std::ifstream in(dir + "/xtrabackup_binlog_info");
  std::string info((std::istreambuf_iterator<char>(in)), {});
  auto pos = parse_backup_binlog_info(info);
  if (!pos) pos = base_position(snap.snapshot);
  if (geteuid() == 0) {
    // The server runs as mysql: the data directory must be its own.
    TRY(core::run_and_capture({"chown", "-R", "mysql:mysql", dir}).status());
  }
  return pos;
}

core::Result<ReplayReport> replay_binlogs(repo::Repository& repo, const std::string& service,
                                          const BinlogPosition& from, const RecoveryTarget& target,
                                          const Connection& conn, const std::string& database) {
  using Kind = RecoveryTarget::Kind;
  auto from_seq = binlog_sequence(from.file);
  if (!from_seq) return core::invalid_argument("'" + from.file + "' is not a binlog file name");
  const std::string stem = binlog_stem(from.file);
  repo::LogArchive archive(repo, service);
  ASSIGN_OR_RETURN(auto entries, archive.list());
  std::map<uint64_t, repo::LogEntry> by_seq;
  for (auto& e : entries)
    if (binlog_stem(e.name) == stem)
      if (auto s = binlog_sequence(e.name)) by_seq[*s] = std::move(e);
  auto missing = [&](uint64_t seq) {
    std::string digits = from.file.substr(from.file.rfind('.') + 1);
    std::string num = std::to_string(seq);
    if (num.size() < digits.size()) num.insert(0, digits.size() - num.size(), '0');
    return core::not_found(fmt::format(
        "binlog {}.{} of service '{}' is not archived: replay cannot pass it (run cairn mariadb "
        "binlog-sync --service {}; a purged file is lost)",
        stem, num, service, service));
  };
  uint64_t last_seq = by_seq.empty() ? *from_seq : by_seq.rbegin()->first;
  if (target.kind == Kind::kPosition) {
    if (binlog_stem(target.position.file) != stem)
      return core::invalid_argument("--to-position " + target.text + " is not in the " + stem +
                                    ".* binlogs");
    last_seq = *binlog_sequence(target.position.file);
    if (last_seq < *from_seq || (last_seq == *from_seq && target.position.position < from.position))
      return core::invalid_argument("--to-position " + target.text +
                                    " is before the base backup's position " +
                                    fmt::format("{}:{}", from.file, from.position));
  }
  std::vector<const repo::LogEntry*> files;
  for (uint64_t s = *from_seq; s <= last_seq; s++) {
    auto it = by_seq.find(s);
    if (it == by_seq.end()) {
      // The base's own file may still be open on the server: nothing after
      // the base is archived yet, and only "latest" can accept that.
      if (s == *from_seq && last_seq == *from_seq && target.kind == Kind::kLatest)
        return ReplayReport{{}, from, "the base backup (no archived binlog after it)"};
      return missing(s);
    }
    files.push_back(&it->second);
  }
  if (target.kind == Kind::kPosition && target.position.position > files.back()->size)
    return core::invalid_argument(fmt::format("--to-position {}: {} has only {} bytes", target.text,
                                              files.back()->name, files.back()->size));

  ASSIGN_OR_RETURN(auto opts, ClientOptions::create(conn));
  std::string tmpl = (fs::temp_directory_path() / "cairn-replay.XXXXXX").string();
  if (!mkdtemp(tmpl.data())) return core::errno_status(errno, "temp folder for binlog replay");
  struct Cleanup {
    std::string dir;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(dir, ec);
    }
  } cleanup{tmpl};

  // A time target must lie before the end of the newest archived file, or
  // transactions after that file's end (in a file not archived yet) would be
  // missed without a word. Checked before anything is applied.
  if (target.kind == Kind::kTime) {
    std::string last = tmpl + "/" + files.back()->name;
    TRY(archive.fetch(files.back()->name, last));
    ASSIGN_OR_RETURN(BinlogScan scan, scan_binlog_file(last));
    ::unlink(last.c_str());
    if (scan.encrypted)
      return core::unsupported("encrypted binlogs cannot be scanned: " + files.back()->name);
    if (static_cast<int64_t>(scan.last_time) <= target.time)
      return core::not_found(fmt::format(
          "the binlog archive of service '{}' ends with {} at {} (UTC), not after the target {}: "
          "run cairn mariadb binlog-sync --service {} --flush after the target time and retry",
          service, files.back()->name, utc_datetime(scan.last_time), target.text, service));
  }

  ReplayReport report;
  report.from = from;
  std::vector<std::string> client = opts->argv("mariadb");
  client.insert(client.end(), {"--binary-mode", "--batch"});
  core::Status st = pipe_into(client, {}, [&](int out) -> core::Status {
    for (size_t i = 0; i < files.size(); i++) {
      const repo::LogEntry& f = *files[i];
      std::string path = tmpl + "/" + f.name;
      TRY(archive.fetch(f.name, path));
      ASSIGN_OR_RETURN(BinlogScan scan, scan_binlog_file(path));
      std::vector<std::string> argv = {"mariadb-binlog", "--no-defaults"};
      if (i == 0) argv.push_back(fmt::format("--start-position={}", from.position));
      if (target.kind == Kind::kTime)
        argv.push_back("--stop-datetime=" + utc_datetime(target.time + 1));
      if (target.kind == Kind::kPosition && i + 1 == files.size())
        argv.push_back(fmt::format("--stop-position={}", target.position.position));
      if (!database.empty()) argv.push_back("--database=" + database);
      argv.push_back(path);
      core::ProcessOptions po;
      po.env = {"TZ=UTC"};  // --stop-datetime is read in the local zone
      ASSIGN_OR_RETURN(auto proc, core::Subprocess::start(argv, po));
      uint8_t buf[1 << 16];
      for (;;) {
        ASSIGN_OR_RETURN(size_t n, proc->read(buf, sizeof buf));
        if (n == 0) break;
        TRY(core::write_all(out, core::ByteView(buf, n), "mariadb (binlog replay)"));
      }
      TRY(proc->wait());
      ::unlink(path.c_str());
      report.files.push_back(f.name);
      // Later files only hold later events.
      if (target.kind == Kind::kTime && static_cast<int64_t>(scan.last_time) > target.time) break;
    }
    return {};
  });
  if (!st.ok())
    return st.with_context("replaying binlogs of service '" + service + "' into MariaDB at " +
                           conn.describe());
  switch (target.kind) {
    case Kind::kTime:
      report.until = "time " + utc_datetime(target.time) + " UTC";
      break;
    case Kind::kPosition:
      report.until = "position " + target.text;
      break;
    default:
      report.until = "end of " + files.back()->name + " (the newest archived binlog)";
  }
  return report;
}

core::Result<PointInTimeReport> restore_point_in_time(repo::Repository& repo,
                                                      const std::string& service,
                                                      const RecoveryTarget& target,
                                                      const Connection& conn, bool users,
                                                      const std::string& snapshot) {
  PointInTimeReport out;
  if (!snapshot.empty()) {
    ASSIGN_OR_RETURN(out.base, repo.find_snapshot(snapshot, service));
  } else {
    ASSIGN_OR_RETURN(auto all, repo.list_snapshots());
    ASSIGN_OR_RETURN(out.base, choose_base(all, service, "logical", target));
  }
  const json& e = out.base.snapshot.engine;
  std::string database;
  if (target.kind != RecoveryTarget::Kind::kBaseOnly && e.value("databases_selected", false)) {
    auto dbs = e.value("databases", std::vector<std::string>{});
    if (dbs.size() != 1)
      return core::unsupported("base backup " + out.base.id.substr(0, 8) +
                               " holds a selection of several databases: binlog replay can filter "
                               "one database only (back up all databases, or one, for PITR)");
    database = dbs[0];
  }
  TRY(restore_logical(repo, out.base, conn, users));
  if (target.kind == RecoveryTarget::Kind::kBaseOnly) return out;
  auto pos = base_position(out.base.snapshot);
  if (!pos) {
    if (target.kind == RecoveryTarget::Kind::kLatest) return out;
    return core::not_found("base backup " + out.base.id.substr(0, 8) + " has no binlog position");
  }
  ASSIGN_OR_RETURN(auto replay, replay_binlogs(repo, service, *pos, target, conn, database));
  out.replay = std::move(replay);
  return out;
}

}  // namespace cairn::engines::mariadb
