// Trees: one JSON document per directory listing its entries (nodes).
// Serialisation is deterministic (sorted by name, fixed key order) so an
// unchanged directory yields the same tree blob and deduplicates.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/bytes.h"
#include "core/status.h"
#include "repo/ids.h"

namespace cairn::repo {

enum class NodeType { kFile, kDir, kSymlink, kBlockDev, kCharDev, kFifo, kSocket };
const char* node_type_name(NodeType t);

struct Xattr {
  std::string name;
  core::Bytes value;
  bool operator==(const Xattr&) const = default;
};

struct Node {
  std::string name;  // raw bytes of the file name (may be non-UTF-8)
  NodeType type = NodeType::kFile;
  uint32_t mode = 0;  // permission bits incl. setuid/setgid/sticky
  uint32_t uid = 0, gid = 0;
  std::string user, group;
  int64_t mtime_ns = 0, ctime_ns = 0;
  uint64_t inode = 0, device_id = 0, links = 0;
  uint64_t size = 0;
  uint64_t rdev = 0;                 // device nodes
  std::vector<Id> content;           // files: data blobs in order
  std::optional<Id> subtree;         // directories
  std::string link_target;           // symlinks (raw bytes)
  std::vector<Xattr> xattrs;
  bool operator==(const Node&) const = default;
};

struct Tree {
  std::vector<Node> nodes;
};

std::string encode_tree(const Tree& tree);  // sorts a copy of the nodes by name
core::Result<Tree> decode_tree(core::ByteView json_bytes);

// A name is safe to create inside a directory: non-empty, not "." or "..",
// no '/' and no NUL. Restore refuses any other name.
bool is_safe_name(const std::string& name);
// Validates a whole tree for restore: safe names, no duplicates, consistent types.
core::Status validate_tree(const Tree& tree);

// Printable form of a raw name ("\\n" and "\\xff" escapes for odd bytes).
std::string printable_name(const std::string& raw);

}  // namespace cairn::repo
