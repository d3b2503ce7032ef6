// Redis restores: dump.rdb into a directory, checked with redis-check-rdb
// before it takes the final name.
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "archive/tree_walk.h"
#include "core/file.h"
#include "core/process.h"
#include "engines/redis/redis.h"

namespace cairn::engines::redis {

namespace {

// Removes a temporary file unless it was committed (renamed into place).
class TempFile {
 public:
  explicit TempFile(std::string path) : path_(std::move(path)) {}
  ~TempFile() {
    if (!path_.empty()) ::unlink(path_.c_str());
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  const std::string& path() const { return path_; }
  void commit() { path_.clear(); }

 private:
  std::string path_;
};

bool exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

}  // namespace

core::Result<std::string> check_rdb(const std::string& path) {
  auto proc = core::Subprocess::start({"redis-check-rdb", path});
  if (!proc.ok()) return proc.status();
  std::string out;
  uint8_t buf[8192];
  for (;;) {
    ASSIGN_OR_RETURN(size_t n, (*proc)->read(buf, sizeof buf));
    if (n == 0) break;
    if (out.size() < (1u << 20)) out.append(reinterpret_cast<char*>(buf), n);
  }
  core::Status st = (*proc)->wait();
  if ((*proc)->exit_code() == 127) return core::unsupported("redis-check-rdb: " + st.message());
  std::string info, error;
  bool in_error = false;
  size_t pos = 0;
  while (pos < out.size()) {
    size_t nl = out.find('\n', pos);
    std::string line = out.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    pos = nl == std::string::npos ? out.size() : nl + 1;
    if (line.rfind("--- RDB ERROR DETECTED ---", 0) == 0)
      in_error = true;
    else if (in_error && line.rfind("[info]", 0) != 0 && error.size() < 1000)
      error += (error.empty() ? "" : "; ") + line;
    if (line.rfind("[info] ", 0) == 0) info += (info.empty() ? "" : ", ") + line.substr(7);
  }
  if (!st.ok() || in_error)
    return core::corruption(
        fmt::format("redis-check-rdb {}: {}", path, error.empty() ? st.message() : error));
  return info.empty() ? std::string("RDB looks OK") : "RDB looks OK: " + info;
}

core::Result<RestoreResult> restore(repo::Repository& repo, const repo::SnapshotRef& snapshot,
                                    const RestoreOptions& opt) {
  const std::string sid = snapshot.id.substr(0, 8);
  if (snapshot.snapshot.engine.value("type", "") != "redis")
    return core::invalid_argument("snapshot " + sid + " is not a Redis backup");
  std::string file = "/" + snapshot.snapshot.engine.value("file", std::string(kRdbName));
  auto located = archive::locate(repo, snapshot.snapshot.tree, file);
  if (!located.ok()) return core::not_found("snapshot " + sid + " has no " + file);
  if (opt.target_dir.empty()) return core::invalid_argument("no target directory");

  RestoreResult r;
  r.path = opt.target_dir + "/" + kRdbName;
  if (exists(r.path) && !opt.force)
    return core::already_exists(r.path +
                                " exists: stop that Redis and move it away, or give --force to "
                                "replace it");
  TRY(core::make_dirs(opt.target_dir, 0750));

  std::string tmpl = opt.target_dir + "/.dump.rdb.cairn-XXXXXX";
  int fd = ::mkostemp(tmpl.data(), O_CLOEXEC);
  if (fd < 0) return core::errno_status(errno, "temporary file in " + opt.target_dir);
  core::UniqueFd out(fd);
  TempFile temp(tmpl);
  TRY(archive::stream_file(repo, located->node, [&](core::ByteView b) {
    r.bytes += b.size();
    return core::write_all(out.get(), b, temp.path());
  }));
  // Redis reads the file as the directory's owner (usually `redis`).
  struct stat dir_st;
  if (::geteuid() == 0 && ::stat(opt.target_dir.c_str(), &dir_st) == 0)
    (void)!::fchown(out.get(), dir_st.st_uid, dir_st.st_gid);
  TRY(core::fsync_fd(out.get(), temp.path()));
  TRY(out.close(temp.path()));
  ASSIGN_OR_RETURN(r.check, check_rdb(temp.path()));
  if (::rename(temp.path().c_str(), r.path.c_str()) != 0) return core::errno_status(errno, r.path);
  temp.commit();
  TRY(core::fsync_dir(opt.target_dir));
  r.aof_present =
      exists(opt.target_dir + "/appendonlydir") || exists(opt.target_dir + "/appendonly.aof");
  return r;
}

}  // namespace cairn::engines::redis
