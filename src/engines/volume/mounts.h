// The mount table as the kernel shows it to this process
// (/proc/self/mountinfo), and the file system that holds a path: what the
// volume engine uses to tell btrfs, ZFS and LVM apart and to find mount
// points. Also the fsfreeze guard. Stateless functions; thread-safe.
#pragma once

#include <sys/types.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/process.h"
#include "core/status.h"

namespace cairn::engines::volume {

struct Mount {
  int id = 0;
  dev_t device = 0;         // st_dev of files on it (major:minor)
  std::string root;         // the path inside the file system that is mounted ("/" or a subvolume)
  std::string mount_point;  // where
  std::string fstype;       // btrfs, zfs, ext4, xfs, ...
  std::string source;       // /dev/mapper/vg-lv, a ZFS dataset, ...
};

// Parses mountinfo text (octal escapes such as \040 decoded).
std::vector<Mount> parse_mountinfo(const std::string& text);
core::Result<std::vector<Mount>> read_mounts();

// The mount that holds `path` (an existing absolute path, symlinks resolved):
// the longest mount point that contains it, the last one mounted on top.
core::Result<Mount> mount_of(const std::string& path);

// The file system type of `path` by statfs (btrfs, zfs, ext4, xfs, ...).
std::string fs_type(const std::string& path);

// Shell-style glob pattern that matches exactly `path` (for excludes).
std::string glob_escape(const std::string& path);

// Freezes a mounted file system (FIFREEZE, as `fsfreeze -f`) until thaw() or
// destruction. A guardian process thaws it if this process dies first, even
// by SIGKILL, so an application is never left blocked behind a freeze that
// nobody will lift. thaw() may be called from another thread (a signal
// watcher); it is idempotent.
class Freeze {
 public:
  static core::Result<std::unique_ptr<Freeze>> start(const std::string& mount_point);
  ~Freeze();
  Freeze(const Freeze&) = delete;
  Freeze& operator=(const Freeze&) = delete;
  core::Status thaw();

 private:
  Freeze() = default;
  std::string mount_point_;
  int tell_fd_ = -1;  // write end of the guardian's stdin
  std::unique_ptr<core::Subprocess> guardian_;
  std::mutex mu_;
  bool thawed_ = false;
};

}  // namespace cairn::engines::volume
