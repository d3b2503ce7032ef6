#include "archive/tree_walk.h"

#include <algorithm>
#include <sstream>

namespace cairn::archive {

core::Result<Located> locate(repo::Repository& repo, const repo::Id& root, const std::string& path) {
  Located cur;
  cur.node.type = repo::NodeType::kDir;
  cur.node.subtree = root;
  cur.node.mode = 0755;
  cur.path = "";
  std::stringstream ss(path);
  std::string comp;
  while (std::getline(ss, comp, '/')) {
    if (comp.empty() || comp == ".") continue;
    if (cur.node.type != repo::NodeType::kDir || !cur.node.subtree)
      return core::not_found("'" + cur.path + "' is not a directory in the snapshot");
    ASSIGN_OR_RETURN(repo::Tree t, repo.load_tree(*cur.node.subtree));
    bool found = false;
    for (auto& n : t.nodes) {
      if (n.name == comp) {
        cur.node = std::move(n);
        found = true;
        break;
      }
    }
    cur.path += "/" + comp;
    if (!found) return core::not_found("path '" + cur.path + "' is not in the snapshot");
  }
  if (cur.path.empty()) cur.path = "/";
  return cur;
}

core::Status walk(repo::Repository& repo, const repo::Id& tree, const std::string& prefix,
                  const std::function<bool(const std::string&, const repo::Node&)>& fn) {
  ASSIGN_OR_RETURN(repo::Tree t, repo.load_tree(tree));
  std::sort(t.nodes.begin(), t.nodes.end(),
            [](const repo::Node& a, const repo::Node& b) { return a.name < b.name; });
  for (const auto& n : t.nodes) {
    std::string path = (prefix == "/" ? "" : prefix) + "/" + n.name;
    bool descend = fn(path, n);
    if (descend && n.type == repo::NodeType::kDir && n.subtree)
      TRY(walk(repo, *n.subtree, path, fn));
  }
  return {};
}

core::Status stream_file(repo::Repository& repo, const repo::Node& file,
                         const std::function<core::Status(core::ByteView)>& out) {
  for (const auto& id : file.content) {
    ASSIGN_OR_RETURN(auto blob, repo.load_blob(id));
    TRY(out(blob));
  }
  return {};
}

}  // namespace cairn::archive
