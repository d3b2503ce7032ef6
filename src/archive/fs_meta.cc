#include "archive/fs_meta.h"

#include <fnmatch.h>
#include <grp.h>
#include <pwd.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#include <cerrno>
#include <vector>

namespace cairn::archive {

repo::Node node_from_stat(const std::string& name, const struct stat& st) {
  repo::Node n;
  n.name = name;
  switch (st.st_mode & S_IFMT) {
    case S_IFREG: n.type = repo::NodeType::kFile; break;
    case S_IFDIR: n.type = repo::NodeType::kDir; break;
    case S_IFLNK: n.type = repo::NodeType::kSymlink; break;
    case S_IFBLK: n.type = repo::NodeType::kBlockDev; break;
    case S_IFCHR: n.type = repo::NodeType::kCharDev; break;
    case S_IFIFO: n.type = repo::NodeType::kFifo; break;
    default: n.type = repo::NodeType::kSocket; break;
  }
  n.mode = st.st_mode & 07777;
  n.uid = st.st_uid;
  n.gid = st.st_gid;
  n.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  n.ctime_ns = static_cast<int64_t>(st.st_ctim.tv_sec) * 1000000000 + st.st_ctim.tv_nsec;
  n.inode = st.st_ino;
  n.device_id = st.st_dev;
  n.links = st.st_nlink;
  if (n.type == repo::NodeType::kFile) n.size = static_cast<uint64_t>(st.st_size);
  if (n.type == repo::NodeType::kBlockDev || n.type == repo::NodeType::kCharDev) n.rdev = st.st_rdev;
  return n;
}

core::Status read_xattrs(const std::string& path, std::vector<repo::Xattr>& out) {
  out.clear();
  ssize_t n = llistxattr(path.c_str(), nullptr, 0);
  if (n < 0) {
    if (errno == ENOTSUP || errno == ENOSYS) return {};
    return core::errno_status(errno, path + ": listing xattrs");
  }
  if (n == 0) return {};
  std::vector<char> names(static_cast<size_t>(n));
  n = llistxattr(path.c_str(), names.data(), names.size());
  if (n < 0) return core::errno_status(errno, path + ": listing xattrs");
  for (ssize_t i = 0; i < n;) {
    std::string name(&names[static_cast<size_t>(i)]);
    i += static_cast<ssize_t>(name.size()) + 1;
    ssize_t len = lgetxattr(path.c_str(), name.c_str(), nullptr, 0);
    if (len < 0) continue;  // removed meanwhile
    core::Bytes value(static_cast<size_t>(len));
    len = lgetxattr(path.c_str(), name.c_str(), value.data(), value.size());
    if (len < 0) continue;
    value.resize(static_cast<size_t>(len));
    out.push_back({name, std::move(value)});
  }
  return {};
}

const std::string& NameCache::user(uint32_t uid) {
  auto it = users_.find(uid);
  if (it != users_.end()) return it->second;
  struct passwd pw, *res = nullptr;
  std::vector<char> buf(4096);
  std::string name;
  if (getpwuid_r(uid, &pw, buf.data(), buf.size(), &res) == 0 && res) name = res->pw_name;
  return users_[uid] = name;
}

const std::string& NameCache::group(uint32_t gid) {
  auto it = groups_.find(gid);
  if (it != groups_.end()) return it->second;
  struct group gr, *res = nullptr;
  std::vector<char> buf(4096);
  std::string name;
  if (getgrgid_r(gid, &gr, buf.data(), buf.size(), &res) == 0 && res) name = res->gr_name;
  return groups_[gid] = name;
}

bool matches_any(const std::vector<std::string>& patterns, const std::string& path) {
  if (patterns.empty()) return false;
  auto slash = path.rfind('/');
  std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  for (const auto& p : patterns) {
    if (p.find('/') != std::string::npos) {
      if (fnmatch(p.c_str(), path.c_str(), FNM_PATHNAME) == 0) return true;
    } else if (fnmatch(p.c_str(), base.c_str(), 0) == 0) {
      return true;
    }
  }
  return false;
}

}  // namespace cairn::archive
