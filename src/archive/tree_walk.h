// Navigation over snapshot trees: resolve "snapshot:/some/path", visit every
// node depth-first (ls, stats, find), used by the CLI and the checker.
#pragma once

#include <functional>
#include <string>

#include "core/status.h"
#include "repo/repository.h"

namespace cairn::archive {

// A node found at a path. For the root ("/" or ""), node.type == kDir and
// node.subtree is the snapshot's root tree.
struct Located {
  repo::Node node;
  std::string path;  // normalised, starting with '/'
};
core::Result<Located> locate(repo::Repository& repo, const repo::Id& root, const std::string& path);

// Visits nodes under `tree` in depth-first, name order. `fn` gets the full
// path ("/a/b") and the node; returning false skips a directory's contents.
core::Status walk(repo::Repository& repo, const repo::Id& tree, const std::string& prefix,
                  const std::function<bool(const std::string&, const repo::Node&)>& fn);

// Passes a file node's content to `out`, one verified blob at a time.
core::Status stream_file(repo::Repository& repo, const repo::Node& file,
                         const std::function<core::Status(core::ByteView)>& out);

}  // namespace cairn::archive
