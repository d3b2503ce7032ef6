// Reading filesystem metadata into tree nodes (and back on restore):
// lstat fields, user/group names, extended attributes.
#pragma once

#include <sys/stat.h>

#include <string>
#include <unordered_map>

#include "core/status.h"
#include "repo/tree.h"

namespace cairn::archive {

// Fills everything but content/subtree/xattrs from an lstat result.
repo::Node node_from_stat(const std::string& name, const struct stat& st);
// Reads the extended attributes of path (not following symlinks). Filesystems
// without xattr support yield none.
core::Status read_xattrs(const std::string& path, std::vector<repo::Xattr>& out);

// uid/gid -> name with a cache (getpwuid_r is slow on large fleets with NSS).
// Not thread-safe.
class NameCache {
 public:
  const std::string& user(uint32_t uid);
  const std::string& group(uint32_t gid);

 private:
  std::unordered_map<uint32_t, std::string> users_, groups_;
};

// Does `path` (full, as stored) or its basename match one of the patterns?
// A pattern with a '/' is matched against the whole path (and excludes a
// directory's contents too); without one, against the basename (fnmatch).
bool matches_any(const std::vector<std::string>& patterns, const std::string& path);

}  // namespace cairn::archive
