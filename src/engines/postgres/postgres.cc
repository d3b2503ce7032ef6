#include "engines/postgres/postgres.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "archive/tree_walk.h"
#include "core/file.h"
#include "core/process.h"
#include "engines/postgres/pg_conn.h"
#include "repo/timefmt.h"

namespace cairn::engines::postgres {

using json = nlohmann::json;
namespace fs = std::filesystem;

std::string find_bindir(const std::string& configured, int server_version_num) {
  if (!configured.empty()) return configured;
  std::string dir = "/usr/lib/postgresql/" + std::to_string(server_version_num / 10000) + "/bin";
  std::error_code ec;
  return fs::exists(dir + "/pg_dump", ec) ? dir : "";
}

namespace {

std::string tool(const std::string& bindir, const std::string& name) {
  return bindir.empty() ? name : bindir + "/" + name;
}

std::string version_string(int num) {
  return std::to_string(num / 10000) + "." + std::to_string(num % 100);
}

// Server facts recorded with every snapshot.
json server_facts(PgConn& conn) {
  json j = {{"type", "postgres"},
            {"server_version", version_string(conn.server_version_num())},
            {"server_version_num", conn.server_version_num()}};
  if (auto id = conn.value("SELECT system_identifier::text FROM pg_control_system()"); id.ok())
    j["system_identifier"] = *id;
  return j;
}

// Runs one command per entry, one after another: each entry's data is the
// command's stdout. A command that fails (or prints nothing) vetoes the
// snapshot; the next command starts only after the previous one succeeded.
class CommandEntries {
 public:
  struct Item {
    std::string filename;
    std::vector<std::string> argv;
  };
  explicit CommandEntries(std::vector<Item> items) : items_(std::move(items)) {}

  core::Result<std::optional<archive::StreamEntry>> next() {
    TRY(finish_current());
    if (next_ == items_.size()) return std::optional<archive::StreamEntry>();
    const Item& item = items_[next_++];
    core::ProcessOptions po;
    ASSIGN_OR_RETURN(current_, core::Subprocess::start(item.argv, po));
    archive::StreamEntry e;
    e.path = item.filename;
    e.mode = 0600;
    core::Subprocess* p = current_.get();
    e.read = [p](uint8_t* b, size_t n) { return p->read(b, n); };
    return std::optional<archive::StreamEntry>(std::move(e));
  }
  core::Status finish_current() {
    if (!current_) return {};
    auto p = std::move(current_);
    uint64_t bytes = p->bytes_read();
    TRY(p->wait());
    if (bytes == 0) return core::io_error(p->name() + " produced no output");
    return {};
  }

 private:
  std::vector<Item> items_;
  size_t next_ = 0;
  std::unique_ptr<core::Subprocess> current_;
};

}  // namespace

core::Result<archive::BackupResult> logical_backup(repo::Repository& repo, const LogicalOptions& opt,
                                                   const archive::BackupOptions& backup,
                                                   archive::BackupProgress* progress) {
  ASSIGN_OR_RETURN(PgConn conn, PgConn::connect(opt.dsn));
  std::vector<std::string> databases = opt.databases;
  if (databases.empty()) {
    ASSIGN_OR_RETURN(std::string db, conn.value("SELECT current_database()"));
    databases.push_back(db);
  }
  for (const auto& db : databases) {
    std::string quoted = "'";
    for (char c : db) quoted += c == '\'' ? std::string("''") : std::string(1, c);
    ASSIGN_OR_RETURN(auto rows, conn.query("SELECT 1 FROM pg_database WHERE datname = " + quoted + "'"));
    if (rows.empty()) return core::not_found("database '" + db + "' does not exist on " + redact_dsn(opt.dsn));
    if (!repo::is_safe_name(db + ".dump") || db == "globals")
      return core::invalid_argument("database name '" + db + "' cannot be stored as a file name");
  }
  std::string bindir = find_bindir(opt.bindir, conn.server_version_num());
  std::vector<CommandEntries::Item> items;
  if (opt.globals)
    items.push_back({"globals.sql", {tool(bindir, "pg_dumpall"), "--globals-only", "--no-password",
                                     "--dbname=" + opt.dsn}});
  for (const auto& db : databases) {
    ASSIGN_OR_RETURN(std::string dsn, with_dbname(opt.dsn, db));
    items.push_back({db + ".dump", {tool(bindir, "pg_dump"), "--format=custom", "--no-password",
                                    "--dbname=" + dsn}});
  }
  auto commands = std::make_shared<CommandEntries>(std::move(items));
  archive::EntrySource src;
  src.next = [commands] { return commands->next(); };
  src.finish = [commands] { return commands->finish_current(); };
  archive::BackupOptions b = backup;
  b.engine = server_facts(conn);
  b.engine["mode"] = "logical";
  b.engine["format"] = "custom";
  b.engine["databases"] = databases;
  b.engine["globals"] = opt.globals;
  return archive::backup_entries(repo, std::move(src), b, progress);
}

namespace {

constexpr size_t kRelationChunk = 64 << 10;

struct ArchiveReadDeleter {
  void operator()(struct archive* a) const { archive_read_free(a); }
};

// Members of pg_basebackup's tar stream as stream entries. backup_label and
// backup_manifest are also kept in memory (small) for the metadata.
class TarEntries {
 public:
  explicit TarEntries(std::unique_ptr<core::Subprocess> proc) : proc_(std::move(proc)) {
    ar_.reset(archive_read_new());
    archive_read_support_format_tar(ar_.get());
  }

  core::Result<std::optional<archive::StreamEntry>> next() {
    if (!opened_) {
      opened_ = true;
      if (archive_read_open_fd(ar_.get(), proc_->stdout_fd(), 1 << 16) != ARCHIVE_OK)
        return error("reading the base backup stream");
    }
    struct archive_entry* e = nullptr;
    int rc = archive_read_next_header(ar_.get(), &e);
    if (rc == ARCHIVE_EOF) {
      eof_ = true;
      return std::optional<archive::StreamEntry>();
    }
    if (rc < ARCHIVE_WARN) return error("reading the base backup stream");
    archive::StreamEntry out;
    out.path = archive_entry_pathname(e);
    out.mode = archive_entry_perm(e);
    out.uid = static_cast<uint32_t>(archive_entry_uid(e));
    out.gid = static_cast<uint32_t>(archive_entry_gid(e));
    out.mtime_ns = static_cast<int64_t>(archive_entry_mtime(e)) * 1'000'000'000;
    switch (archive_entry_filetype(e)) {
      case AE_IFDIR:
        out.type = repo::NodeType::kDir;
        break;
      case AE_IFLNK:
        out.type = repo::NodeType::kSymlink;
        out.link_target = archive_entry_symlink(e) ? archive_entry_symlink(e) : "";
        break;
      case AE_IFREG: {
        out.type = repo::NodeType::kFile;
        // Relation files change in place, 8 KiB page by page: aligned
        // fixed-size chunks dedup what content-defined 1 MiB chunks cannot.
        if (out.path.starts_with("base/") || out.path.starts_with("global/"))
          out.fixed_chunk = kRelationChunk;
        std::string* keep = nullptr;
        if (out.path == "backup_label") keep = &label_;
        if (out.path == "backup_manifest") keep = &manifest_;
        out.read = [this, keep](uint8_t* b, size_t n) -> core::Result<size_t> {
          la_ssize_t r = archive_read_data(ar_.get(), b, n);
          if (r < 0) return error("reading the base backup stream");
          if (keep && keep->size() < (64u << 20)) keep->append(reinterpret_cast<char*>(b), static_cast<size_t>(r));
          return static_cast<size_t>(r);
        };
        break;
      }
      default:
        return core::unsupported(std::string("base backup member '") + out.path + "' has an unsupported type");
    }
    return std::optional<archive::StreamEntry>(std::move(out));
  }

  core::Status finish() {
    // Stopped early (an error): the Subprocess destructor kills pg_basebackup.
    if (!eof_) return core::io_error("the base backup stream ended early");
    // Drain the tar padding so pg_basebackup never blocks on a full pipe.
    uint8_t buf[1 << 16];
    for (;;) {
      ASSIGN_OR_RETURN(size_t n, proc_->read(buf, sizeof buf));
      if (n == 0) break;
    }
    ar_.reset();
    TRY(proc_->wait());
    if (label_.empty()) return core::io_error("pg_basebackup's stream has no backup_label");
    return {};
  }

  // Metadata from backup_label and the manifest's WAL range.
  json metadata() const {
    json j;
    // "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)"
    std::string loc = label_value("START WAL LOCATION");
    size_t space = loc.find(' ');
    size_t file = loc.find("(file ");
    if (space != std::string::npos && parse_lsn(loc.substr(0, space))) j["start_lsn"] = loc.substr(0, space);
    if (file != std::string::npos && loc.size() >= file + 6 + 24) j["start_wal_file"] = loc.substr(file + 6, 24);
    std::string timeline = label_value("START TIMELINE");
    if (!timeline.empty() && std::all_of(timeline.begin(), timeline.end(), ::isdigit))
      j["timeline"] = std::stoul(timeline);
    if (std::string t = label_value("START TIME"); !t.empty()) j["start_time_label"] = t;
    json man = json::parse(manifest_, nullptr, false);
    if (!man.is_discarded() && man.contains("WAL-Ranges") && !man["WAL-Ranges"].empty()) {
      const auto& last = man["WAL-Ranges"].back();
      j["stop_lsn"] = last.value("End-LSN", "");
      j["timeline"] = last.value("Timeline", 0);
    }
    j["manifest"] = !manifest_.empty();
    return j;
  }

 private:
  // The text after "KEY: " on the backup_label line that starts with KEY.
  std::string label_value(const std::string& key) const {
    std::istringstream in(label_);
    for (std::string line; std::getline(in, line);)
      if (line.starts_with(key + ": ")) return line.substr(key.size() + 2);
    return {};
  }

  core::Status error(const std::string& what) {
    std::string msg = archive_error_string(ar_.get()) ? archive_error_string(ar_.get()) : "unknown error";
    return core::io_error(what + ": " + msg);
  }
  std::unique_ptr<core::Subprocess> proc_;
  std::unique_ptr<struct archive, ArchiveReadDeleter> ar_;
  bool opened_ = false, eof_ = false;
  std::string label_, manifest_;
};

}  // namespace

core::Result<archive::BackupResult> physical_backup(repo::Repository& repo, const PhysicalOptions& opt,
                                                    const archive::BackupOptions& backup,
                                                    archive::BackupProgress* progress) {
  ASSIGN_OR_RETURN(PgConn conn, PgConn::connect(opt.dsn));
  ASSIGN_OR_RETURN(auto tablespaces, conn.query("SELECT count(*) FROM pg_tablespace WHERE spcname NOT IN "
                                                "('pg_default', 'pg_global')"));
  if (!tablespaces.empty() && tablespaces[0][0] != "0")
    return core::unsupported("the cluster has extra tablespaces; physical backups support only the "
                             "data directory so far (use the logical mode)");
  std::string bindir = find_bindir(opt.bindir, conn.server_version_num());
  std::vector<std::string> argv = {tool(bindir, "pg_basebackup"), "--dbname=" + opt.dsn, "--pgdata=-",
                                   "--format=tar", "--wal-method=fetch", "--no-password",
                                   "--label=cairn base backup"};
  if (opt.fast_checkpoint) argv.push_back("--checkpoint=fast");
  ASSIGN_OR_RETURN(auto proc, core::Subprocess::start(argv));
  auto tar = std::make_shared<TarEntries>(std::move(proc));
  archive::EntrySource src;
  src.next = [tar] { return tar->next(); };
  src.finish = [tar] { return tar->finish(); };
  src.engine = [tar] {
    json j = tar->metadata();
    j["stop_time"] = repo::format_time(repo::now_time());
    return j;
  };
  archive::BackupOptions b = backup;
  b.engine = server_facts(conn);
  b.engine["mode"] = "physical";
  b.engine["wal_included"] = true;
  return archive::backup_entries(repo, std::move(src), b, progress);
}

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
    if (!t) return core::invalid_argument("--to-time '" + target.value + "' is not a time (use RFC 3339, e.g. 2026-11-25T10:31:00Z)");
  }
  if (target.kind == Kind::kLsn) {
    lsn = parse_lsn(target.value);
    if (!lsn) return core::invalid_argument("--to-lsn '" + target.value + "' is not an LSN (e.g. 0/3000060)");
  }
  const repo::SnapshotRef* best = nullptr;
  size_t bases = 0;
  for (const auto& s : snapshots) {  // oldest first
    const json& e = s.snapshot.engine;
    if (s.snapshot.service != service || e.value("type", "") != "postgres" || e.value("mode", "") != "physical")
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
  if (bases == 0) return core::not_found("service '" + service + "' has no physical base backup (cairn pg backup --mode physical)");
  return core::not_found("no base backup of service '" + service + "' ended before " + target.value +
                         ": the oldest one cannot recover to an earlier point");
}

core::Status verify_base_backup(const std::string& dir, const repo::SnapshotRef& base,
                                const std::string& configured_bindir) {
  const json& e = base.snapshot.engine;
  if (!e.value("manifest", false))
    return core::unsupported("base backup " + base.id.substr(0, 8) + " has no backup_manifest to verify against");
  std::string bindir = find_bindir(configured_bindir, e.value("server_version_num", 0));
  std::string verifier = tool(bindir, "pg_verifybackup");
  std::error_code ec;
  if (!bindir.empty() && !fs::exists(verifier, ec))
    return core::unsupported(verifier + " is not installed");
  auto out = core::run_and_capture({verifier, "--quiet", dir});
  if (!out.ok())
    return core::corruption("restored base backup " + base.id.substr(0, 8) +
                            " does not match its manifest: " + out.status().message());
  return {};
}

namespace {
// A value inside single quotes in postgresql.conf syntax.
std::string conf_quote(const std::string& v) {
  std::string out = "'";
  for (char c : v) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}
}  // namespace

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

core::Status write_recovery_config(const std::string& dir, const RecoveryTarget& target,
                                   const std::string& restore_command) {
  using Kind = RecoveryTarget::Kind;
  std::string conf = "\n# Added by cairn pg restore: recovery from the cairn WAL archive.\n";
  conf += "restore_command = " + conf_quote(restore_command) + "\n";
  switch (target.kind) {
    case Kind::kLatest:
      break;
    case Kind::kImmediate:
      conf += "recovery_target = 'immediate'\n";
      break;
    case Kind::kTime:
      conf += "recovery_target_time = " + conf_quote(target.value) + "\n";
      break;
    case Kind::kLsn:
      conf += "recovery_target_lsn = " + conf_quote(target.value) + "\n";
      break;
    case Kind::kXid:
      conf += "recovery_target_xid = " + conf_quote(target.value) + "\n";
      break;
    case Kind::kName:
      conf += "recovery_target_name = " + conf_quote(target.value) + "\n";
      break;
  }
  if (target.kind != Kind::kLatest) {
    conf += "recovery_target_inclusive = on\n";
    conf += "recovery_target_action = " + conf_quote(target.action) + "\n";
  }
  conf += "recovery_target_timeline = " + conf_quote(target.timeline) + "\n";
  const std::string auto_conf = dir + "/postgresql.auto.conf";
  {
    std::ofstream out(auto_conf, std::ios::app);
    out << conf;
    if (!out.flush()) return core::errno_status(errno, auto_conf);
  }
  ASSIGN_OR_RETURN(core::UniqueFd fd, core::open_file(dir + "/recovery.signal", O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
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
    return core::invalid_argument("snapshot " + snapshot.id.substr(0, 8) + " is not a logical PostgreSQL backup");
  std::vector<std::string> dbs = e.value("databases", std::vector<std::string>{});
  std::string db = opt.database;
  if (db.empty()) {
    if (dbs.size() != 1)
      return core::invalid_argument("snapshot " + snapshot.id.substr(0, 8) + " holds several databases: pick one with --database");
    db = dbs[0];
  }
  ASSIGN_OR_RETURN(PgConn conn, PgConn::connect(opt.dsn));
  std::string bindir = find_bindir(opt.bindir, conn.server_version_num());
  std::string file = opt.globals ? "/globals.sql" : "/" + db + ".dump";
  auto located = archive::locate(repo, snapshot.snapshot.tree, file);
  if (!located.ok()) return core::not_found("snapshot " + snapshot.id.substr(0, 8) + " has no " + file);

  std::vector<std::string> argv;
  if (opt.globals) {
    argv = {tool(bindir, "psql"), "--no-psqlrc", "--quiet", "--set=ON_ERROR_STOP=0", "--dbname=" + opt.dsn};
  } else {
    argv = {tool(bindir, "pg_restore"), "--no-password", "--exit-on-error", "--dbname=" + opt.dsn};
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
    ASSIGN_OR_RETURN(core::UniqueFd out, core::open_file(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    core::Status st = archive::stream_file(repo, located->node, [&](core::ByteView b) { return core::write_all(out.get(), b, path); });
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
    feed = archive::stream_file(repo, located->node, [&](core::ByteView b) { return core::write_all(pipefd[1], b, argv[0]); });
  }
  if (pipefd[1] >= 0) close(pipefd[1]);
  core::Status done = proc.ok() ? (*proc)->wait() : proc.status();
  if (!temp_dir.empty()) fs::remove_all(temp_dir);
  TRY(done);
  return feed;
}

}  // namespace cairn::engines::postgres
