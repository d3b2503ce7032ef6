#include "engines/volume/mounts.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "core/file.h"

namespace cairn::engines::volume {

namespace {

std::string unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); i++) {
    if (s[i] == '\\' && i + 3 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '3') {
      out += static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

bool contains(const std::string& dir, const std::string& path) {
  if (dir == "/") return true;
  return path == dir || (path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 &&
                         path[dir.size()] == '/');
}

}  // namespace

std::vector<Mount> parse_mountinfo(const std::string& text) {
  std::vector<Mount> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    // id parent major:minor root mount-point options [optional...] - fstype source super-options
    std::istringstream ls(line);
    std::vector<std::string> f;
    std::string w;
    while (ls >> w) f.push_back(w);
    size_t dash = 0;
    for (size_t i = 6; i < f.size(); i++)
      if (f[i] == "-") {
        dash = i;
        break;
      }
    if (dash == 0 || dash + 2 >= f.size()) continue;
    Mount m;
    m.id = std::atoi(f[0].c_str());
    unsigned maj = 0, min = 0;
    if (std::sscanf(f[2].c_str(), "%u:%u", &maj, &min) == 2) m.device = makedev(maj, min);
    m.root = unescape(f[3]);
    m.mount_point = unescape(f[4]);
    m.fstype = f[dash + 1];
    m.source = unescape(f[dash + 2]);
    out.push_back(std::move(m));
  }
  return out;
}

core::Result<std::vector<Mount>> read_mounts() {
  std::ifstream in("/proc/self/mountinfo");
  if (!in) return core::errno_status(errno, "/proc/self/mountinfo");
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_mountinfo(ss.str());
}

core::Result<Mount> mount_of(const std::string& path) {
  char buf[PATH_MAX];
  if (!realpath(path.c_str(), buf)) return core::errno_status(errno, path);
  std::string real = buf;
  ASSIGN_OR_RETURN(auto mounts, read_mounts());
  const Mount* best = nullptr;
  for (const auto& m : mounts)  // later entries are mounted on top of earlier ones
    if (contains(m.mount_point, real) &&
        (!best || m.mount_point.size() >= best->mount_point.size()))
      best = &m;
  if (!best) return core::not_found(path + ": no mount holds it");
  return *best;
}

std::string fs_type(const std::string& path) {
  struct statfs s;
  if (statfs(path.c_str(), &s) != 0) return "";
  switch (static_cast<unsigned long>(s.f_type)) {
    case BTRFS_SUPER_MAGIC:
      return "btrfs";
    case 0x2fc12fc1UL:  // ZFS_SUPER_MAGIC (not in linux/magic.h)
      return "zfs";
    case EXT4_SUPER_MAGIC:
      return "ext4";
    case XFS_SUPER_MAGIC:
      return "xfs";
    case TMPFS_MAGIC:
      return "tmpfs";
    case OVERLAYFS_SUPER_MAGIC:
      return "overlay";
    default:
      return fmt::format("0x{:x}", static_cast<unsigned long>(s.f_type));
  }
}

std::string glob_escape(const std::string& path) {
  std::string out;
  for (char c : path) {
    if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

core::Result<std::unique_ptr<Freeze>> Freeze::start(const std::string& mount_point) {
  auto f = std::unique_ptr<Freeze>(new Freeze());
  f->mount_point_ = mount_point;
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return core::errno_status(errno, "pipe");
  // The guardian waits for a line on its stdin: "thawed" when we thawed
  // ourselves; end of file when we died first (the kernel closes our end),
  // and then it thaws. It ignores the termination signals that reach
  // cairn's children, so a `kill <cairn>` lets our own cleanup run first.
  core::ProcessOptions po;
  po.stdin_fd = p[0];
  po.new_process_group = true;  // a kill of cairn's process group does not take it along
  po.forward_stderr = true;
  auto g = core::Subprocess::start(
      {"/bin/sh", "-c",
       "trap '' TERM INT HUP; read x; [ \"$x\" = thawed ] || exec fsfreeze -u \"$1\"",
       "cairn-thaw-guard", mount_point},
      po);
  close(p[0]);
  if (!g.ok()) {
    close(p[1]);
    return g.status();
  }
  f->guardian_ = std::move(*g);
  f->tell_fd_ = p[1];
  int fd = open(mount_point.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 || ioctl(fd, FIFREEZE, 0) != 0) {
    core::Status st = core::errno_status(errno, "fsfreeze " + mount_point);
    if (fd >= 0) close(fd);
    f->thawed_ = true;
    (void)!write(f->tell_fd_, "thawed\n", 7);
    close(f->tell_fd_);
    f->tell_fd_ = -1;
    (void)f->guardian_->wait();
    return st;
  }
  close(fd);
  return f;
}

core::Status Freeze::thaw() {
  std::lock_guard lock(mu_);
  if (thawed_) return {};
  thawed_ = true;
  core::Status st;
  int fd = open(mount_point_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 || (ioctl(fd, FITHAW, 0) != 0 && errno != EINVAL))  // EINVAL: not frozen (any more)
    st = core::errno_status(errno, "thawing " + mount_point_);
  if (fd >= 0) close(fd);
  // Only a successful thaw stands the guardian down: otherwise its own
  // fsfreeze -u is one more try.
  if (st.ok()) (void)!write(tell_fd_, "thawed\n", 7);
  close(tell_fd_);
  tell_fd_ = -1;
  (void)guardian_->wait();
  return st;
}

Freeze::~Freeze() { (void)thaw(); }

}  // namespace cairn::engines::volume
