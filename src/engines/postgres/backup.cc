// PostgreSQL backups: pg_dump/pg_dumpall streams and the pg_basebackup tar
// stream, each turned into one snapshot (engine metadata included).
#include <archive.h>
#include <archive_entry.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/process.h"
#include "engines/postgres/base_backup.h"
#include "engines/postgres/pg_conn.h"
#include "engines/postgres/postgres.h"
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

std::string tool_path(const std::string& bindir, const std::string& name) {
  return bindir.empty() ? name : bindir + "/" + name;
}

namespace {

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

core::Result<archive::BackupResult> logical_backup(repo::Repository& repo,
                                                   const LogicalOptions& opt,
                                                   const archive::BackupOptions& backup,
                                                   archive::BackupProgress* progress) {
  ASSIGN_OR_RETURN(PgConn conn, PgConn::connect(opt.dsn));
  std::vector<std::string> databases = opt.databases;
  if (databases.empty()) {
    ASSIGN_OR_RETURN(std::string db, conn.value("SELECT current_database()"));
    databases.push_back(db);
  }
  for (const auto& db : databases) {
    ASSIGN_OR_RETURN(auto rows,
                     conn.query("SELECT 1 FROM pg_database WHERE datname = " + quote_literal(db)));
    if (rows.empty())
      return core::not_found("database '" + db + "' does not exist on " + redact_dsn(opt.dsn));
    if (!repo::is_safe_name(db + ".dump") || db == "globals")
      return core::invalid_argument("database name '" + db + "' cannot be stored as a file name");
  }
  std::string bindir = find_bindir(opt.bindir, conn.server_version_num());
  std::vector<CommandEntries::Item> items;
  if (opt.globals)
    items.push_back({"globals.sql",
                     {tool_path(bindir, "pg_dumpall"), "--globals-only", "--no-password",
                      "--dbname=" + opt.dsn}});
  for (const auto& db : databases) {
    ASSIGN_OR_RETURN(std::string dsn, with_dbname(opt.dsn, db));
    items.push_back(
        {db + ".dump",
         {tool_path(bindir, "pg_dump"), "--format=custom", "--no-password", "--dbname=" + dsn}});
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

bool is_relation_path(const std::string& p) {
  return p.starts_with("base/") || p.starts_with("global/");
}

json label_metadata(const std::string& label) {
  // The text after "KEY: " on the line that starts with KEY.
  auto value = [&](const std::string& key) -> std::string {
    std::istringstream in(label);
    for (std::string line; std::getline(in, line);)
      if (line.starts_with(key + ": ")) return line.substr(key.size() + 2);
    return {};
  };
  json j = json::object();
  // "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)"
  std::string loc = value("START WAL LOCATION");
  size_t space = loc.find(' ');
  size_t file = loc.find("(file ");
  if (space != std::string::npos && parse_lsn(loc.substr(0, space)))
    j["start_lsn"] = loc.substr(0, space);
  if (file != std::string::npos && loc.size() >= file + 6 + 24)
    j["start_wal_file"] = loc.substr(file + 6, 24);
  std::string timeline = value("START TIMELINE");
  if (!timeline.empty() && timeline.size() < 10 &&
      std::all_of(timeline.begin(), timeline.end(), ::isdigit))
    j["timeline"] = std::stoul(timeline);
  if (std::string t = value("START TIME"); !t.empty()) j["start_time_label"] = t;
  return j;
}

namespace {

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
        if (is_relation_path(out.path)) out.fixed_chunk = kRelationChunk;
        std::string* keep = nullptr;
        if (out.path == "backup_label") keep = &label_;
        if (out.path == "backup_manifest") keep = &manifest_;
        out.read = [this, keep](uint8_t* b, size_t n) -> core::Result<size_t> {
          la_ssize_t r = archive_read_data(ar_.get(), b, n);
          if (r < 0) return error("reading the base backup stream");
          if (keep && keep->size() < (64u << 20))
            keep->append(reinterpret_cast<char*>(b), static_cast<size_t>(r));
          return static_cast<size_t>(r);
        };
        break;
      }
      default:
        return core::unsupported(std::string("base backup member '") + out.path +
                                 "' has an unsupported type");
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
    json j = label_metadata(label_);
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
  core::Status error(const std::string& what) {
    std::string msg =
        archive_error_string(ar_.get()) ? archive_error_string(ar_.get()) : "unknown error";
    return core::io_error(what + ": " + msg);
  }
  std::unique_ptr<core::Subprocess> proc_;
  std::unique_ptr<struct archive, ArchiveReadDeleter> ar_;
  bool opened_ = false, eof_ = false;
  std::string label_, manifest_;
};

}  // namespace

core::Result<archive::BackupResult> physical_backup(repo::Repository& repo,
                                                    const PhysicalOptions& opt,
                                                    const archive::BackupOptions& backup,
                                                    archive::BackupProgress* progress) {
  ASSIGN_OR_RETURN(PgConn conn, PgConn::connect(opt.dsn));
  ASSIGN_OR_RETURN(auto tablespaces,
                   conn.query("SELECT count(*) FROM pg_tablespace WHERE spcname NOT IN "
                              "('pg_default', 'pg_global')"));
  if (!tablespaces.empty() && tablespaces[0][0] != "0")
    return core::unsupported(
        "the cluster has extra tablespaces; physical backups support only the "
        "data directory so far (use the logical mode)");
  if (opt.source != "auto" && opt.source != "datadir" && opt.source != "stream")
    return core::invalid_argument("unknown base backup source '" + opt.source +
                                  "' (auto, datadir or stream)");
  archive::BackupOptions b = backup;
  b.engine = server_facts(conn);
  b.engine["mode"] = "physical";
  b.engine["wal_included"] = true;
  std::string fallback;
  if (opt.source != "stream") {
    core::Status why = core::ok_status();
    if (auto dir = local_data_directory(conn); dir.ok()) {
      archive::BackupOptions local = b;
      local.engine["source"] = "datadir";
      auto r = datadir_backup(repo, conn, *dir, opt, std::move(local), progress);
      if (r.ok() || r.status().code() != core::Code::kUnsupported) return r;
      why = r.status();
    } else {
      why = dir.status();
    }
    if (opt.source == "datadir") return why;
    fallback = "base backup streamed through pg_basebackup: " + why.message();
  }
  b.engine["source"] = "stream";
  std::string bindir = find_bindir(opt.bindir, conn.server_version_num());
  std::vector<std::string> argv = {tool_path(bindir, "pg_basebackup"),
                                   "--dbname=" + opt.dsn,
                                   "--pgdata=-",
                                   "--format=tar",
                                   "--wal-method=fetch",
                                   "--no-password",
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
  auto r = archive::backup_entries(repo, std::move(src), b, progress);
  if (r.ok() && !fallback.empty()) r->notices.push_back(fallback);
  return r;
}

}  // namespace cairn::engines::postgres
