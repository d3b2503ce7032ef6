// Binlog archiving: every closed binlog file of a server goes into the
// repository's log archive (repo/log_archive.h) under its own name, oldest
// first, read from the server's binlog folder or fetched from the server.
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>

#include "core/process.h"
#include "engines/mariadb/mariadb.h"
#include "repo/log_archive.h"

namespace cairn::engines::mariadb {

namespace fs = std::filesystem;

namespace {

// A private folder, removed with its contents on destruction.
class TempDir {
 public:
  static core::Result<TempDir> make(const std::string& prefix) {
    std::string tmpl = (fs::temp_directory_path() / (prefix + ".XXXXXX")).string();
    if (!mkdtemp(tmpl.data())) return core::errno_status(errno, "temp folder " + tmpl);
    TempDir d;
    d.path_ = tmpl;
    return d;
  }
  TempDir() = default;
  TempDir(TempDir&& o) noexcept : path_(std::exchange(o.path_, {})) {}
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace

core::Result<BinlogSyncReport> sync_binlogs(repo::Repository& repo, const std::string& service,
                                            const BinlogSyncOptions& opt) {
  const Connection& conn = opt.conn;
  ASSIGN_OR_RETURN(auto facts, query(conn, "SELECT @@log_bin, IFNULL(@@log_bin_basename, '')"));
  if (facts.empty() || facts[0].size() < 2 || facts[0][0] != "1")
    return core::unsupported("MariaDB at " + conn.describe() +
                             " writes no binlog (log_bin is off): nothing to archive");
  if (opt.flush) TRY(query(conn, "FLUSH BINARY LOGS").status());
  ASSIGN_OR_RETURN(auto logs, query(conn, "SHOW BINARY LOGS"));
  if (logs.empty())
    return core::io_error("MariaDB at " + conn.describe() + " lists no binlog files");
  BinlogSyncReport report;
  report.current = logs.back()[0];
  std::string dir =
      opt.binlog_dir.empty() ? fs::path(facts[0][1]).parent_path().string() : opt.binlog_dir;
  bool local = !opt.remote && !dir.empty() && ::access(dir.c_str(), R_OK | X_OK) == 0;

  repo::LogArchive archive(repo, service);
  ASSIGN_OR_RETURN(auto entries, archive.list());
  std::map<std::string, uint64_t> archived;  // name -> size
  for (const auto& e : entries) archived[e.name] = e.size;

  std::optional<TempDir> fetch_dir;
  core::Status failed;
  for (size_t i = 0; i + 1 < logs.size(); i++) {
    if (logs[i].size() < 2) continue;
    const std::string& name = logs[i][0];
    uint64_t size = std::strtoull(logs[i][1].c_str(), nullptr, 10);  // SHOW BINARY LOGS: File_size
    if (auto it = archived.find(name); it != archived.end()) {
      // Same name, other size: the server's numbering restarted (RESET
      // MASTER) or the file was replaced. Never papered over.
      if (it->second != size)
        return core::already_exists(fmt::format(
            "binlog {} of service '{}' is archived with {} bytes but the server's file has {}: "
            "the server's binlog numbering restarted or the file changed; archive it under a new "
            "service name or investigate",
            name, service, it->second, size));
      report.already++;
      continue;
    }
    std::string path = dir + "/" + name;
    struct stat st;
    bool readable = local && ::stat(path.c_str(), &st) == 0 &&
                    static_cast<uint64_t>(st.st_size) == size && ::access(path.c_str(), R_OK) == 0;
    if (!readable) {
      if (!fetch_dir) {
        ASSIGN_OR_RETURN(auto d, TempDir::make("cairn-binlog"));
        fetch_dir.emplace(std::move(d));
      }
      ASSIGN_OR_RETURN(auto opts, ClientOptions::create(conn));
      std::vector<std::string> argv = opts->argv("mariadb-binlog");
      argv.insert(argv.end(), {"--read-from-remote-server", "--raw",
                               "--result-file=" + fetch_dir->path() + "/", name});
      auto fetched = core::run_and_capture(argv);
      if (!fetched.ok()) {
        failed = core::io_error("fetching binlog " + name + " from MariaDB at " + conn.describe() +
                                ": " + fetched.status().message());
        break;
      }
      path = fetch_dir->path() + "/" + name;
    }
    auto pushed = archive.push(name, path);
    if (!readable) ::unlink(path.c_str());
    if (!pushed.ok()) {
      failed = pushed.status().with_context("archiving binlog " + name + " of service '" + service +
                                            "'");
      break;
    }
    if (*pushed)
      report.pushed.push_back(name);
    else
      report.already++;
    archived[name] = size;
  }
  std::vector<std::string> names;
  for (const auto& [n, s] : archived) names.push_back(n);
  report.missing = find_gaps(names);
  if (!names.empty()) {
    report.newest_archived =
        *std::max_element(names.begin(), names.end(), [](const auto& a, const auto& b) {
          return binlog_sequence(a).value_or(0) < binlog_sequence(b).value_or(0);
        });
  }
  TRY(failed);
  return report;
}

}  // namespace cairn::engines::mariadb
