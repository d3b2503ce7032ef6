// SQLite backups: the online backup API into a private temporary copy, then
// that copy streamed into the repository.
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "core/file.h"
#include "engines/sqlite/db.h"
#include "engines/sqlite/sqlite.h"

namespace cairn::engines::sqlite {

namespace {

// Copies started over before the rest is copied in one step (holding the
// source's read lock until done).
constexpr int kMaxRestarts = 3;
// Pause between steps of a rollback-journal database: room for writers.
constexpr int kStepPauseMs = 5;
// Steps in a row that found the database locked (each after the 10 s busy
// timeout) before the backup gives up.
constexpr int kMaxBusySteps = 6;

// A private (0700) directory, removed with everything in it on destruction.
class TempDir {
 public:
  static core::Result<TempDir> create(const std::string& base) {
    std::string tmpl = base + "/cairn-sqlite.XXXXXX";
    if (!::mkdtemp(tmpl.data())) return core::errno_status(errno, "temporary directory in " + base);
    TempDir d;
    d.path_ = tmpl;
    return d;
  }
  TempDir() = default;
  TempDir(TempDir&& o) noexcept : path_(std::exchange(o.path_, "")) {}
  TempDir& operator=(TempDir&&) = delete;
  ~TempDir() { remove(); }
  const std::string& path() const { return path_; }
  void remove() {
    if (path_.empty()) return;
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
    path_.clear();
  }

 private:
  std::string path_;
};

std::string temp_base(const std::string& configured) {
  if (!configured.empty()) return configured;
  const char* t = std::getenv("TMPDIR");
  return t && *t ? t : "/tmp";
}

// The backup API from `src` into `dest`. A database in WAL mode is copied
// inside one read transaction: WAL readers never block writers, and the
// transaction pins one committed state for every step (without it, each
// step would see a writer's commit and start the copy over). A
// rollback-journal database is copied in steps with pauses, so writers can
// commit in between; a commit restarts the copy, and after kMaxRestarts the
// rest is copied in one step.
core::Result<int> copy(Db& src, Db& dest, bool wal, int pages_per_step) {
  if (wal) TRY(src.exec("BEGIN; SELECT count(*) FROM sqlite_schema;"));
  sqlite3_backup* b = sqlite3_backup_init(dest.get(), "main", src.get(), "main");
  if (!b) return dest.error(sqlite3_errcode(dest.get()), "backup");
  int restarts = 0, pages = pages_per_step > 0 ? pages_per_step : 1024;
  int last_remaining = -1, rc = SQLITE_OK, busy = 0;
  for (;;) {
    rc = sqlite3_backup_step(b, restarts >= kMaxRestarts ? -1 : pages);
    if (rc == SQLITE_DONE) break;
    bool locked = (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED;
    busy = locked ? busy + 1 : 0;
    if (rc == SQLITE_OK || (locked && busy < kMaxBusySteps)) {
      int remaining = sqlite3_backup_remaining(b);
      if (last_remaining >= 0 && remaining > last_remaining) restarts++;
      last_remaining = remaining;
      if (!wal) sqlite3_sleep(kStepPauseMs);
      continue;
    }
    break;
  }
  // finish() reports the step's error on the destination connection.
  int frc = sqlite3_backup_finish(b);
  if (wal) (void)src.exec("COMMIT");
  if (rc != SQLITE_DONE) return src.error(rc, "backup step");
  if (frc != SQLITE_OK) return dest.error(frc, "backup");
  return restarts;
}

// The backup itself; backup() adds "no snapshot written" to its errors.
core::Result<archive::BackupResult> copy_and_store(repo::Repository& repo, const BackupOptions& opt,
                                                   const archive::BackupOptions& backup,
                                                   archive::BackupProgress* progress) {
  struct stat st;
  if (::stat(opt.path.c_str(), &st) != 0) {
    if (errno == ENOENT) return core::not_found("SQLite database " + opt.path + " does not exist");
    return core::errno_status(errno, "SQLite database " + opt.path);
  }
  if (!S_ISREG(st.st_mode))
    return core::io_error("SQLite database " + opt.path + " is not a regular file");

  ASSIGN_OR_RETURN(Db src, Db::open(opt.path));
  // The first read of the header tells a database from any other file.
  ASSIGN_OR_RETURN(std::string journal_mode, src.text("PRAGMA journal_mode"));
  bool wal = journal_mode == "wal";

  ASSIGN_OR_RETURN(TempDir dir, TempDir::create(temp_base(opt.temp_dir)));
  std::string name = std::filesystem::path(opt.path).filename().string();
  std::string copy_path = dir.path() + "/" + name;
  nlohmann::json meta = nlohmann::json::object();
  {
    ASSIGN_OR_RETURN(Db dest, Db::open(copy_path, true));
    // A scratch copy: no fsync, no rollback journal of its own.
    TRY(dest.exec("PRAGMA synchronous=OFF; PRAGMA journal_mode=OFF;"));
    ASSIGN_OR_RETURN(int restarts, copy(src, dest, wal, opt.pages_per_step));
    // What the copy holds, read from the copy itself.
    ASSIGN_OR_RETURN(int64_t page_size, dest.integer("PRAGMA page_size"));
    ASSIGN_OR_RETURN(int64_t page_count, dest.integer("PRAGMA page_count"));
    ASSIGN_OR_RETURN(int64_t freelist, dest.integer("PRAGMA freelist_count"));
    ASSIGN_OR_RETURN(int64_t user_version, dest.integer("PRAGMA user_version"));
    TRY(dest.close());
    meta = {{"journal_mode", journal_mode},
            {"page_size", page_size},
            {"page_count", page_count},
            {"freelist_count", freelist},
            {"bytes", page_size * page_count},
            {"user_version", user_version},
            {"sqlite_version", sqlite3_libversion()},
            {"restarts", restarts}};
  }
  TRY(src.close());

  // Open the copy, then remove it from the file system at once: the data
  // stays readable through the descriptor and nothing is left behind
  // whatever happens next.
  ASSIGN_OR_RETURN(core::UniqueFd fd, core::open_file(copy_path, O_RDONLY));
  struct stat cst;
  if (::fstat(fd.get(), &cst) != 0) return core::errno_status(errno, copy_path);
  dir.remove();

  auto shared_fd = std::make_shared<core::UniqueFd>(std::move(fd));
  auto done = std::make_shared<uint64_t>(0);
  archive::StreamSource src_stream;
  src_stream.filename = name;
  src_stream.read = [shared_fd, done, copy_path](uint8_t* buf, size_t cap) -> core::Result<size_t> {
    for (;;) {
      ssize_t n = ::read(shared_fd->get(), buf, cap);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return core::errno_status(errno, copy_path);
      *done += static_cast<uint64_t>(n);
      return static_cast<size_t>(n);
    }
  };
  src_stream.finish = [done, size = static_cast<uint64_t>(cst.st_size),
                       path = opt.path]() -> core::Status {
    if (*done != size)
      return core::io_error(
          fmt::format("copy of SQLite database {}: read {} of {} bytes: no snapshot written", path,
                      *done, size));
    return {};
  };
  archive::BackupOptions o = backup;
  o.engine = meta;
  o.engine["type"] = "sqlite";
  o.engine["file"] = name;
  o.engine["path"] = opt.path;
  return archive::backup_stream(repo, std::move(src_stream), o, progress);
}

}  // namespace

core::Result<archive::BackupResult> backup(repo::Repository& repo, const BackupOptions& opt,
                                           const archive::BackupOptions& backup,
                                           archive::BackupProgress* progress) {
  auto r = copy_and_store(repo, opt, backup, progress);
  if (r.ok()) return r;
  const std::string& m = r.status().message();
  if (m.find("no snapshot written") != std::string::npos) return r;
  return core::Status(r.status().code(), m + ": no snapshot written");
}

}  // namespace cairn::engines::sqlite
