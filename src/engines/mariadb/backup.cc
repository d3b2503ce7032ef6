// MariaDB backups: the mariadb-dump stream (binlog coordinates read from its
// header as it passes) and the mariadb-backup xbstream, each one snapshot.
#include <fmt/format.h>

#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>

#include "core/process.h"
#include "engines/mariadb/dump_stream.h"
#include "engines/mariadb/mariadb.h"
#include "repo/timefmt.h"

namespace cairn::engines::mariadb {

using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

const std::vector<std::string> kSystemSchemas = {"mysql", "information_schema",
                                                 "performance_schema", "sys"};

core::Result<std::vector<std::string>> pick_databases(const Connection& conn,
                                                      const std::vector<std::string>& wanted) {
  ASSIGN_OR_RETURN(auto rows,
                   query(conn, "SELECT schema_name FROM information_schema.schemata ORDER BY 1"));
  std::vector<std::string> all;
  for (const auto& r : rows)
    if (!r.empty()) all.push_back(r[0]);
  std::vector<std::string> out;
  if (wanted.empty()) {
    for (const auto& d : all)
      if (std::find(kSystemSchemas.begin(), kSystemSchemas.end(), d) == kSystemSchemas.end())
        out.push_back(d);
    if (out.empty())
      return core::not_found("MariaDB at " + conn.describe() + " has no databases to back up");
    return out;
  }
  for (const auto& d : wanted) {
    if (std::find(all.begin(), all.end(), d) == all.end())
      return core::not_found("database '" + d + "' does not exist on MariaDB at " +
                             conn.describe());
  }
  return wanted;
}

// The dump commands one after another, as entries of one snapshot. The
// first KiBs of dump.sql are scanned for the binlog coordinates; the last
// bytes must be mariadb-dump's "-- Dump completed" line.
class DumpEntries {
 public:
  struct Item {
    std::string filename;
    std::vector<std::string> argv;
    bool is_dump = false;
  };
  DumpEntries(std::shared_ptr<ClientOptions> opts, std::vector<Item> items)
      : opts_(std::move(opts)), items_(std::move(items)) {}

  core::Result<std::optional<archive::StreamEntry>> next() {
    TRY(finish_current());
    if (next_ == items_.size()) return std::optional<archive::StreamEntry>();
    const Item& item = items_[next_++];
    core::ProcessOptions po;
    po.new_process_group = true;  // a signal to cairn reaches the dump too
    ASSIGN_OR_RETURN(current_, core::Subprocess::start(item.argv, po));
    current_is_dump_ = item.is_dump;
    watch_ = DumpWatch();
    archive::StreamEntry e;
    e.path = item.filename;
    e.mode = 0600;
    e.read = [this](uint8_t* b, size_t n) -> core::Result<size_t> {
      ASSIGN_OR_RETURN(size_t r, current_->read(b, n));
      if (watch_.observe(b, r) && current_is_dump_) {
        position_ = watch_.position();
        consistent_time_ = repo::format_time(repo::now_time());
      }
      return r;
    };
    return std::optional<archive::StreamEntry>(std::move(e));
  }

  core::Status finish_current() {
    if (!current_) return {};
    auto p = std::move(current_);
    return watch_.finish(*p);
  }

  json metadata() const {
    json j = json::object();
    if (position_) {
      j["binlog_file"] = position_->file;
      j["binlog_position"] = position_->position;
    }
    if (!consistent_time_.empty()) j["consistent_time"] = consistent_time_;
    return j;
  }

 private:
  std::shared_ptr<ClientOptions> opts_;  // the options file lives as long as the commands
  std::vector<Item> items_;
  size_t next_ = 0;
  std::unique_ptr<core::Subprocess> current_;
  bool current_is_dump_ = false;
  DumpWatch watch_;
  std::optional<BinlogPosition> position_;
  std::string consistent_time_;
};

}  // namespace

bool DumpWatch::observe(const uint8_t* b, size_t n) {
  const char* c = reinterpret_cast<const char*>(b);
  tail_.append(c, n);
  if (tail_.size() > 4096) tail_.erase(0, tail_.size() - 256);
  if (head_done_) return false;
  head_.append(c, std::min(n, kHeadLimit - head_.size()));
  // The comment comes before any data: once it is seen, or after the first
  // 64 KiB, nothing more is kept.
  bool found = false;
  if (auto p = parse_change_master(head_)) {
    position_ = p;
    found = head_done_ = true;
  } else if (head_.size() >= kHeadLimit) {
    head_done_ = true;
  }
  if (head_done_) std::string().swap(head_);
  return found;
}

core::Status DumpWatch::check_complete(const std::string& tool) const {
  if (tail_.find("-- Dump completed") == std::string::npos)
    return core::io_error(tool + " ended without its \"-- Dump completed\" line (a cut dump)");
  return {};
}

core::Status DumpWatch::finish(core::Subprocess& dump) const {
  uint64_t bytes = dump.bytes_read();
  TRY(dump.wait());
  if (bytes == 0) return core::io_error(dump.name() + " produced no output");
  return check_complete(dump.name());
}

std::vector<std::string> dump_argv(const ClientOptions& opts, bool log_bin) {
  std::vector<std::string> dump = opts.argv("mariadb-dump");
  dump.insert(dump.end(), {"--single-transaction", "--routines", "--triggers", "--events",
                           "--hex-blob", "--default-character-set=utf8mb4"});
  if (log_bin) dump.push_back("--master-data=2");
  return dump;
}

std::vector<std::string> users_dump_argv(const ClientOptions& opts) {
  std::vector<std::string> users = opts.argv("mariadb-dump");
  users.insert(users.end(), {"--system=users", "--insert-ignore", "--no-data", "--no-create-db"});
  return users;
}

core::Result<ServerFacts> server_facts(const Connection& conn) {
  ASSIGN_OR_RETURN(auto rows,
                   query(conn, "SELECT VERSION(), @@log_bin, IFNULL(@@log_bin_basename, '')"));
  if (rows.empty() || rows[0].size() < 3)
    return core::io_error("MariaDB at " + conn.describe() + " gave no version");
  return ServerFacts{rows[0][0], rows[0][1] == "1", rows[0][2]};
}

core::Result<archive::BackupResult> logical_backup(repo::Repository& repo,
                                                   const LogicalOptions& opt,
                                                   const archive::BackupOptions& backup,
                                                   archive::BackupProgress* progress) {
  ASSIGN_OR_RETURN(ServerFacts facts, server_facts(opt.conn));
  if (opt.require_binlog && !facts.log_bin)
    return core::unsupported("MariaDB at " + opt.conn.describe() +
                             " writes no binlog (log_bin is off): binlog archiving and "
                             "point-in-time restores need --log-bin");
  ASSIGN_OR_RETURN(auto databases, pick_databases(opt.conn, opt.databases));
  ASSIGN_OR_RETURN(std::shared_ptr<ClientOptions> opts, ClientOptions::create(opt.conn));
  archive::EntrySource src;
  if (opt.parallel > 1) {
    ASSIGN_OR_RETURN(src, parallel_dump_source(opt, facts, databases, opts));
  } else {
    std::vector<DumpEntries::Item> items;
    std::vector<std::string> dump = dump_argv(*opts, facts.log_bin);
    dump.push_back("--databases");
    dump.insert(dump.end(), databases.begin(), databases.end());
    items.push_back({"dump.sql", dump, true});
    if (opt.users) items.push_back({"users.sql", users_dump_argv(*opts), false});
    auto entries = std::make_shared<DumpEntries>(opts, std::move(items));
    src.next = [entries] { return entries->next(); };
    src.finish = [entries] { return entries->finish_current(); };
    src.engine = [entries] { return entries->metadata(); };
  }
  archive::BackupOptions b = backup;
  b.engine = {
      {"type", "mariadb"},        {"mode", "logical"},      {"server_version", facts.version},
      {"log_bin", facts.log_bin}, {"databases", databases}, {"users", opt.users}};
  if (!opt.databases.empty()) b.engine["databases_selected"] = true;
  auto r = archive::backup_entries(repo, std::move(src), b, progress);
  if (r.ok() && facts.log_bin && !r->snapshot.engine.contains("binlog_file"))
    return core::io_error("the dump of MariaDB at " + opt.conn.describe() +
                          " has no binlog coordinates");  // cannot happen with --master-data
  return r;
}

namespace {

// mariadb-backup's xbstream as one entry; its log names the binlog position.
class XbstreamEntry {
 public:
  XbstreamEntry(std::shared_ptr<ClientOptions> opts, std::vector<std::string> argv, std::string tmp)
      : opts_(std::move(opts)), argv_(std::move(argv)), tmp_(std::move(tmp)) {}
  ~XbstreamEntry() {
    proc_.reset();
    std::error_code ec;
    fs::remove_all(tmp_, ec);
  }

  core::Result<std::optional<archive::StreamEntry>> next() {
    if (proc_) return std::optional<archive::StreamEntry>();
    core::ProcessOptions po;
    po.new_process_group = true;
    ASSIGN_OR_RETURN(proc_, core::Subprocess::start(argv_, po));
    archive::StreamEntry e;
    e.path = "backup.xbstream";
    e.mode = 0600;
    core::Subprocess* p = proc_.get();
    e.read = [p](uint8_t* b, size_t n) { return p->read(b, n); };
    return std::optional<archive::StreamEntry>(std::move(e));
  }

  core::Status finish() {
    if (!proc_) return core::io_error("mariadb-backup did not run");
    uint64_t bytes = proc_->bytes_read();
    core::Status waited = proc_->wait();  // the log's last lines come at exit
    std::string log = proc_->stderr_tail();
    TRY(waited);
    if (bytes == 0) return core::io_error("mariadb-backup produced no output");
    if (log.find("completed OK!") == std::string::npos)
      return core::io_error("mariadb-backup did not report \"completed OK!\":\n" + log);
    position_ = parse_backup_binlog_info(log);
    return {};
  }

  json metadata() const {
    json j = json::object();
    if (position_) {
      j["binlog_file"] = position_->file;
      j["binlog_position"] = position_->position;
    }
    j["consistent_time"] = repo::format_time(repo::now_time());
    return j;
  }

 private:
  std::shared_ptr<ClientOptions> opts_;
  std::vector<std::string> argv_;
  std::string tmp_;
  std::unique_ptr<core::Subprocess> proc_;
  std::optional<BinlogPosition> position_;
};

}  // namespace

core::Result<archive::BackupResult> physical_backup(repo::Repository& repo,
                                                    const PhysicalOptions& opt,
                                                    const archive::BackupOptions& backup,
                                                    archive::BackupProgress* progress) {
  ASSIGN_OR_RETURN(ServerFacts facts, server_facts(opt.conn));
  if (opt.require_binlog && !facts.log_bin)
    return core::unsupported("MariaDB at " + opt.conn.describe() +
                             " writes no binlog (log_bin is off): binlog archiving and "
                             "point-in-time restores need --log-bin");
  ASSIGN_OR_RETURN(std::shared_ptr<ClientOptions> opts, ClientOptions::create(opt.conn));
  std::string tmpl = (fs::temp_directory_path() / "cairn-mariabackup.XXXXXX").string();
  if (!mkdtemp(tmpl.data())) return core::errno_status(errno, "temp folder for mariadb-backup");
  std::vector<std::string> argv = opts->argv("mariadb-backup");
  argv.insert(argv.end(),
              {"--backup", "--stream=xbstream", "--target-dir=" + tmpl, "--tmpdir=" + tmpl});
  auto entry = std::make_shared<XbstreamEntry>(opts, std::move(argv), tmpl);
  archive::EntrySource src;
  src.next = [entry] { return entry->next(); };
  src.finish = [entry] { return entry->finish(); };
  src.engine = [entry] { return entry->metadata(); };
  archive::BackupOptions b = backup;
  b.engine = {{"type", "mariadb"},
              {"mode", "physical"},
              {"server_version", facts.version},
              {"log_bin", facts.log_bin},
              {"format", "xbstream"}};
  return archive::backup_entries(repo, std::move(src), b, progress);
}

}  // namespace cairn::engines::mariadb
