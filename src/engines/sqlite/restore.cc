// SQLite restores: the database file from a snapshot, checked with
// `PRAGMA integrity_check` before it takes the target's name.
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "archive/tree_walk.h"
#include "core/file.h"
#include "engines/sqlite/db.h"
#include "engines/sqlite/sqlite.h"

namespace cairn::engines::sqlite {

namespace {

constexpr size_t kMaxComplaints = 10;

bool exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

// A temporary database beside the target: removed (with the -wal/-shm that
// opening it may create) unless committed.
class TempDb {
 public:
  explicit TempDb(std::string path) : path_(std::move(path)) {}
  ~TempDb() {
    if (path_.empty()) return;
    for (const char* suffix : {"", "-wal", "-shm", "-journal"}) ::unlink((path_ + suffix).c_str());
  }
  TempDb(const TempDb&) = delete;
  TempDb& operator=(const TempDb&) = delete;
  const std::string& path() const { return path_; }
  void commit() { path_.clear(); }

 private:
  std::string path_;
};

}  // namespace

core::Result<std::string> integrity_check(const std::string& path) {
  if (!exists(path)) return core::not_found("SQLite database " + path + " does not exist");
  ASSIGN_OR_RETURN(Db db, Db::open(path));
  auto rows = db.column("PRAGMA integrity_check(" + std::to_string(kMaxComplaints) + ")");
  if (!rows.ok()) return core::corruption(rows.status().message());
  if (rows->size() != 1 || (*rows)[0] != "ok") {
    std::string all;
    for (const auto& r : *rows) all += (all.empty() ? "" : "; ") + r;
    return core::corruption(fmt::format("SQLite database {}: integrity_check: {}", path, all));
  }
  ASSIGN_OR_RETURN(int64_t pages, db.integer("PRAGMA page_count"));
  ASSIGN_OR_RETURN(int64_t page_size, db.integer("PRAGMA page_size"));
  ASSIGN_OR_RETURN(int64_t tables,
                   db.integer("SELECT count(*) FROM sqlite_schema WHERE type = 'table'"));
  TRY(db.close());
  return fmt::format("ok: {} pages of {} bytes, {} tables", pages, page_size, tables);
}

core::Result<RestoreResult> restore(repo::Repository& repo, const repo::SnapshotRef& snapshot,
                                    const RestoreOptions& opt) {
  const std::string sid = snapshot.id.substr(0, 8);
  const auto& e = snapshot.snapshot.engine;
  if (e.value("type", "") != "sqlite")
    return core::invalid_argument("snapshot " + sid + " is not a SQLite backup");
  std::string file = "/" + e.value("file", std::string());
  auto located = archive::locate(repo, snapshot.snapshot.tree, file);
  if (file == "/" || !located.ok()) return core::not_found("snapshot " + sid + " has no " + file);
  if (opt.target.empty() || opt.target.back() == '/')
    return core::invalid_argument("--target must name a file");

  RestoreResult r;
  r.path = opt.target;
  struct stat old;
  bool replacing = ::lstat(opt.target.c_str(), &old) == 0;
  if (replacing && !S_ISREG(old.st_mode))
    return core::invalid_argument(opt.target + " is not a regular file");
  if (!opt.force) {
    if (replacing) return core::already_exists(opt.target + " exists: give --force to replace it");
    // A leftover log of an earlier database would be applied to this one.
    for (const char* suffix : {"-wal", "-journal"})
      if (exists(opt.target + suffix))
        return core::already_exists(opt.target + suffix +
                                    " exists (left by an earlier database): remove it "
                                    "or give --force");
  }
  std::string dir = std::filesystem::path(opt.target).parent_path().string();
  if (dir.empty()) dir = ".";
  TRY(core::make_dirs(dir, 0750));

  std::string tmpl = opt.target + ".cairn-XXXXXX";
  int fd = ::mkostemp(tmpl.data(), O_CLOEXEC);
  if (fd < 0) return core::errno_status(errno, "temporary file beside " + opt.target);
  core::UniqueFd out(fd);
  TempDb temp(tmpl);
  TRY(archive::stream_file(repo, located->node, [&](core::ByteView b) {
    r.bytes += b.size();
    return core::write_all(out.get(), b, temp.path());
  }));
  // The application reads it as the old file's owner, or the folder's.
  struct stat dir_st;
  if (replacing) {
    if (::geteuid() == 0) (void)!::fchown(out.get(), old.st_uid, old.st_gid);
    (void)!::fchmod(out.get(), old.st_mode & 07777);
  } else if (::geteuid() == 0 && ::stat(dir.c_str(), &dir_st) == 0) {
    (void)!::fchown(out.get(), dir_st.st_uid, dir_st.st_gid);
  }
  TRY(core::fsync_fd(out.get(), temp.path()));
  TRY(out.close(temp.path()));
  ASSIGN_OR_RETURN(r.check, integrity_check(temp.path()));
  // The check's connection is closed: SQLite removed its -wal and -shm, or
  // left them empty; they carry the temporary name, so they go.
  for (const char* suffix : {"-wal", "-shm"}) ::unlink((temp.path() + suffix).c_str());
  if (opt.force)
    for (const char* suffix : {"-wal", "-shm", "-journal"}) ::unlink((opt.target + suffix).c_str());
  if (::rename(temp.path().c_str(), opt.target.c_str()) != 0)
    return core::errno_status(errno, opt.target);
  temp.commit();
  TRY(core::fsync_dir(dir));
  return r;
}

}  // namespace cairn::engines::sqlite
