// PostgreSQL restores: choosing a base backup for a recovery target,
// checking it against its manifest, the recovery settings, and pg_restore.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ctime>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "archive/tree_walk.h"
#include "core/file.h"
#include "core/process.h"
#include "engines/postgres/pg_conn.h"
#include "engines/postgres/postgres.h"
#include "repo/timefmt.h"

namespace cairn::engines::postgres {

using json = nlohmann::json;
namespace fs = std::filesystem;

std::optional<uint64_t> parse_lsn(const std::string& s) {
  size_t slash = s.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == s.size()) return std::nullopt;
  try {
    size_t p1 = 0, p2 = 0;
    uint64_t hi = std::stoull(s.substr(0, slash), &p1, 16);
    uint64_t lo = std::stoull(s.substr(slash + 1), &p2, 16);
    if (p1 != slash || p2 != s.size() - slash - 1 || hi > 0xffffffffull || lo > 0xffffffffull)
      return std::nullopt;
    return (hi << 32) | lo;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

core::Result<repo::SnapshotRef> choose_base_backup(const std::vector<repo::SnapshotRef>& snapshots,
                                                   const std::string& service,
                                                   const RecoveryTarget& target) {
  using Kind = RecoveryTarget::Kind;
  std::optional<repo::Time> t;
  std::optional<uint64_t> lsn;
  if (target.kind == Kind::kTime) {
    t = repo::parse_time(target.value);
    if (!t)
      return core::invalid_argument("--to-time '" + target.value +
                                    "' is not a time (use RFC 3339, e.g. 2026-11-25T10:31:00Z)");
  }
  if (target.kind == Kind::kLsn) {
    lsn = parse_lsn(target.value);
    if (!lsn)
      return core::invalid_argument("--to-lsn '" + target.value +
                                    "' is not an LSN (e.g. 0/3000060)");
  }
  const repo::SnapshotRef* best = nullptr;
  size_t bases = 0;
  for (const auto& s : snapshots) {  // oldest first
    const json& e = s.snapshot.engine;
    if (s.snapshot.service != service || e.value("type", "") != "postgres" ||
        e.value("mode", "") != "physical")
      continue;
    bases++;
    if (t) {
      auto stop = repo::parse_time(e.value("stop_time", ""));
      if (!stop || stop->unix_ns > t->unix_ns) continue;
    }
    if (lsn) {
      auto stop = parse_lsn(e.value("stop_lsn", ""));
      if (!stop || *stop > *lsn) continue;
    }
    best = &s;
  }
  if (best) return *best;
  if (bases == 0)
    return core::not_found("service '" + service +
                           "' has no physical base backup (cairn pg backup --mode physical)");
  return core::not_found("no base backup of service '" + service + "' ended before " +
                         target.value + ": the oldest one cannot recover to an earlier point");
}

core::Status verify_base_backup(const std::string& dir, const repo::SnapshotRef& base,
                                const std::string& configured_bindir) {
  const json& e = base.snapshot.engine;
  if (!e.value("manifest", false))
    return core::unsupported("base backup " + base.id.substr(0, 8) +
                             " has no backup_manifest to verify against");
  std::string bindir = find_bindir(configured_bindir, e.value("server_version_num", 0));
  std::string verifier = tool_path(bindir, "pg_verifybackup");
  std::error_code ec;
  if (!bindir.empty() && !fs::exists(verifier, ec))
    return core::unsupported(verifier + " is not installed");
  auto out = core::run_and_capture({verifier, "--quiet", dir});
  if (!out.ok())
    return core::corruption("restored base backup " + base.id.substr(0, 8) +
                            " does not match its manifest: " + out.status().message());
  return {};
}

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

namespace {

// PostgreSQL takes timestamps to the microsecond: RFC 3339 with nanoseconds
// is rewritten as UTC "YYYY-MM-DD HH:MM:SS.ffffff+00" (truncated).
std::string pg_timestamp(const std::string& value) {
  auto t = repo::parse_time(value);
  if (!t) return value;  // let PostgreSQL judge it
  int64_t us = t->unix_ns / 1000 - (t->unix_ns % 1000 < 0 ? 1 : 0);
  std::time_t secs = static_cast<std::time_t>(us / 1000000 - (us % 1000000 < 0 ? 1 : 0));
  int64_t frac = ((us % 1000000) + 1000000) % 1000000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  char out[96];
  std::snprintf(out, sizeof out, "%s.%06lld+00", buf, static_cast<long long>(frac));
  return out;
}

}  // namespace

core::Status write_recovery_config(const std::string& dir, const RecoveryTarget& target,
                                   const std::string& restore_command) {
  using Kind = RecoveryTarget::Kind;
  std::string conf = "\n# Added by cairn pg restore: recovery from the cairn WAL archive.\n";
  conf += "restore_command = " + quote_literal(restore_command) + "\n";
  switch (target.kind) {
    case Kind::kLatest:
      break;
    case Kind::kImmediate:
      conf += "recovery_target = 'immediate'\n";
      break;
    case Kind::kTime:
      conf += "recovery_target_time = " + quote_literal(pg_timestamp(target.value)) + "\n";
      break;
    case Kind::kLsn:
      conf += "recovery_target_lsn = " + quote_literal(target.value) + "\n";
      break;
    case Kind::kXid:
      conf += "recovery_target_xid = " + quote_literal(target.value) + "\n";
      break;
    case Kind::kName:
      conf += "recovery_target_name = " + quote_literal(target.value) + "\n";
      break;
  }
  if (target.kind != Kind::kLatest) {
    conf += "recovery_target_inclusive = on\n";
    conf += "recovery_target_action = " + quote_literal(target.action) + "\n";
  }
  conf += "recovery_target_timeline = " + quote_literal(target.timeline) + "\n";
  const std::string auto_conf = dir + "/postgresql.auto.conf";
  {
    std::ofstream out(auto_conf, std::ios::app);
    out << conf;
    if (!out.flush()) return core::errno_status(errno, auto_conf);
  }
  ASSIGN_OR_RETURN(core::UniqueFd fd,
                   core::open_file(dir + "/recovery.signal", O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
  struct stat st;
  if (::stat((dir + "/PG_VERSION").c_str(), &st) == 0) {
    // Same owner as the data files: the server runs as that user.
    (void)!fchown(fd.get(), st.st_uid, st.st_gid);
    (void)!chown(auto_conf.c_str(), st.st_uid, st.st_gid);
  }
  return fd.close(dir + "/recovery.signal");
}

core::Status logical_restore(repo::Repository& repo, const repo::SnapshotRef& snapshot,
                             const LogicalRestoreOptions& opt) {
  const json& e = snapshot.snapshot.engine;
  if (e.value("type", "") != "postgres" || e.value("mode", "") != "logical")
    return core::invalid_argument("snapshot " + snapshot.id.substr(0, 8) +
                                  " is not a logical PostgreSQL backup");
  std::vector<std::string> dbs = e.value("databases", std::vector<std::string>{});
  std::string db = opt.database;
  if (db.empty()) {
    if (dbs.size() != 1)
      return core::invalid_argument("snapshot " + snapshot.id.substr(0, 8) +
                                    " holds several databases: pick one with --database");
    db = dbs[0];
  }
  ASSIGN_OR_RETURN(PgConn conn, PgConn::connect(opt.dsn));
  std::string bindir = find_bindir(opt.bindir, conn.server_version_num());
  std::string file = opt.globals ? "/globals.sql" : "/" + db + ".dump";
  auto located = archive::locate(repo, snapshot.snapshot.tree, file);
  if (!located.ok())
    return core::not_found("snapshot " + snapshot.id.substr(0, 8) + " has no " + file);

  std::vector<std::string> argv;
  if (opt.globals) {
    argv = {tool_path(bindir, "psql"), "--no-psqlrc", "--quiet", "--set=ON_ERROR_STOP=0",
            "--dbname=" + opt.dsn};
  } else {
    argv = {tool_path(bindir, "pg_restore"), "--no-password", "--exit-on-error",
            "--dbname=" + opt.dsn};
    if (opt.create) argv.push_back("--create");
    if (opt.clean) argv.insert(argv.end(), {"--clean", "--if-exists"});
    for (const auto& t : opt.tables) argv.push_back("--table=" + t);
    for (const auto& s : opt.schemas) argv.push_back("--schema=" + s);
  }
  // pg_restore -j needs a seekable file; one job reads the stream from a pipe.
  std::string temp_dir;
  int pipefd[2] = {-1, -1};
  if (opt.jobs > 1 && !opt.globals) {
    char tmpl[] = "/tmp/cairn-pgrestore.XXXXXX";
    if (!mkdtemp(tmpl)) return core::errno_status(errno, "temp dir for pg_restore -j");
    temp_dir = tmpl;
    std::string path = temp_dir + "/" + db + ".dump";
    ASSIGN_OR_RETURN(core::UniqueFd out,
                     core::open_file(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    core::Status st = archive::stream_file(
        repo, located->node, [&](core::ByteView b) { return core::write_all(out.get(), b, path); });
    if (!st.ok()) {
      fs::remove_all(temp_dir);
      return st;
    }
    argv.push_back("--jobs=" + std::to_string(opt.jobs));
    argv.push_back(path);
  } else if (pipe2(pipefd, O_CLOEXEC) != 0) {
    return core::errno_status(errno, "pipe");
  }
  core::ProcessOptions po;
  po.capture_stdout = false;
  po.stdin_fd = pipefd[0];
  auto proc = core::Subprocess::start(argv, po);
  if (pipefd[0] >= 0) close(pipefd[0]);
  core::Status feed;
  if (proc.ok() && pipefd[1] >= 0) {
    feed = archive::stream_file(repo, located->node, [&](core::ByteView b) {
      return core::write_all(pipefd[1], b, argv[0]);
    });
  }
  if (pipefd[1] >= 0) close(pipefd[1]);
  core::Status done = proc.ok() ? (*proc)->wait() : proc.status();
  if (!temp_dir.empty()) fs::remove_all(temp_dir);
  TRY(done);
  return feed;
}

}  // namespace cairn::engines::postgres
