#include "repo/tree.h"

#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

namespace cairn::repo {

using json = nlohmann::ordered_json;

static const char* kTypeNames[] = {"file", "dir", "symlink", "blockdev", "chardev", "fifo", "socket"};

const char* node_type_name(NodeType t) { return kTypeNames[static_cast<int>(t)]; }

static std::optional<NodeType> parse_type(const std::string& s) {
  for (int i = 0; i < 7; ++i)
    if (s == kTypeNames[i]) return static_cast<NodeType>(i);
  return std::nullopt;
}

// Byte strings that are not UTF-8 cannot be JSON strings: they are stored
// base64-encoded under "<key>_b64" instead.
static void put_raw(json& j, const char* key, const std::string& raw) {
  if (core::is_valid_utf8(raw)) {
    j[key] = raw;
  } else {
    j[std::string(key) + "_b64"] = core::base64_encode(core::as_bytes(raw));
  }
}

static std::optional<std::string> get_raw(const json& j, const char* key) {
  if (auto it = j.find(key); it != j.end()) return it->get<std::string>();
  if (auto it = j.find(std::string(key) + "_b64"); it != j.end()) {
    auto b = core::base64_decode(it->get<std::string>());
    if (!b) return std::nullopt;
    return std::string(b->begin(), b->end());
  }
  return std::string();
}

std::string encode_tree(const Tree& tree) {
  std::vector<const Node*> sorted;
  for (const auto& n : tree.nodes) sorted.push_back(&n);
  std::sort(sorted.begin(), sorted.end(), [](const Node* a, const Node* b) { return a->name < b->name; });
  json nodes = json::array();
  for (const Node* n : sorted) {
    json j;
    put_raw(j, "name", n->name);
    j["type"] = node_type_name(n->type);
    j["mode"] = n->mode;
    j["uid"] = n->uid;
    j["gid"] = n->gid;
    if (!n->user.empty()) j["user"] = n->user;
    if (!n->group.empty()) j["group"] = n->group;
    j["mtime_ns"] = n->mtime_ns;
    j["ctime_ns"] = n->ctime_ns;
    j["inode"] = n->inode;
    j["device_id"] = n->device_id;
    j["links"] = n->links;
    if (n->type == NodeType::kFile) {
      j["size"] = n->size;
      json c = json::array();
      for (const auto& id : n->content) c.push_back(id.hex());
      j["content"] = std::move(c);
    }
    if (n->subtree) j["subtree"] = n->subtree->hex();
    if (n->type == NodeType::kSymlink) put_raw(j, "link_target", n->link_target);
    if (n->type == NodeType::kBlockDev || n->type == NodeType::kCharDev) j["rdev"] = n->rdev;
    if (!n->xattrs.empty()) {
      json xs = json::array();
      for (const auto& x : n->xattrs) {
        json xj;
        put_raw(xj, "name", x.name);
        xj["value_b64"] = core::base64_encode(x.value);
        xs.push_back(std::move(xj));
      }
      j["xattrs"] = std::move(xs);
    }
    nodes.push_back(std::move(j));
  }
  json root;
  root["nodes"] = std::move(nodes);
  return root.dump();
}

core::Result<Tree> decode_tree(core::ByteView bytes) {
  json root = json::parse(bytes.begin(), bytes.end(), nullptr, false);
  if (root.is_discarded() || !root.is_object()) return core::corruption("tree is not valid JSON");
  try {
    Tree t;
    for (const auto& j : root.at("nodes")) {
      Node n;
      auto name = get_raw(j, "name");
      if (!name) return core::corruption("tree node name is malformed");
      n.name = *name;
      auto type = parse_type(j.at("type").get<std::string>());
      if (!type) return core::corruption("tree node has unknown type " + j.at("type").dump());
      n.type = *type;
      n.mode = j.value("mode", 0u);
      n.uid = j.value("uid", 0u);
      n.gid = j.value("gid", 0u);
      n.user = j.value("user", "");
      n.group = j.value("group", "");
      n.mtime_ns = j.value("mtime_ns", int64_t{0});
      n.ctime_ns = j.value("ctime_ns", int64_t{0});
      n.inode = j.value("inode", uint64_t{0});
      n.device_id = j.value("device_id", uint64_t{0});
      n.links = j.value("links", uint64_t{0});
      n.size = j.value("size", uint64_t{0});
      n.rdev = j.value("rdev", uint64_t{0});
      if (auto it = j.find("content"); it != j.end()) {
        for (const auto& c : *it) {
          auto id = Id::from_hex(c.get<std::string>());
          if (!id) return core::corruption("tree node content id is malformed");
          n.content.push_back(*id);
        }
      }
      if (auto it = j.find("subtree"); it != j.end()) {
        auto id = Id::from_hex(it->get<std::string>());
        if (!id) return core::corruption("tree node subtree id is malformed");
        n.subtree = *id;
      }
      auto target = get_raw(j, "link_target");
      if (!target) return core::corruption("tree node link target is malformed");
      n.link_target = *target;
      if (auto it = j.find("xattrs"); it != j.end()) {
        for (const auto& xj : *it) {
          auto xname = get_raw(xj, "name");
          auto value = core::base64_decode(xj.value("value_b64", ""));
          if (!xname || !value) return core::corruption("tree node xattr is malformed");
          n.xattrs.push_back({*xname, std::move(*value)});
        }
      }
      t.nodes.push_back(std::move(n));
    }
    return t;
  } catch (const nlohmann::json::exception& e) {
    return core::corruption(std::string("tree: ") + e.what());
  }
}

bool is_safe_name(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos &&
         name.find('\0') == std::string::npos;
}

core::Status validate_tree(const Tree& tree) {
  std::set<std::string> seen;
  for (const auto& n : tree.nodes) {
    if (!is_safe_name(n.name))
      return core::corruption("tree holds an unsafe name '" + printable_name(n.name) + "'");
    if (!seen.insert(n.name).second)
      return core::corruption("tree holds the name '" + printable_name(n.name) + "' twice");
    if (n.type == NodeType::kDir && !n.subtree)
      return core::corruption("directory '" + printable_name(n.name) + "' has no subtree");
  }
  return {};
}

std::string printable_name(const std::string& raw) {
  std::string out;
  for (unsigned char c : raw) {
    if (c == '\n') out += "\\n";
    else if (c == '\\') out += "\\\\";
    else if (c < 0x20 || c == 0x7f) out += fmt::format("\\x{:02x}", c);
    else out += static_cast<char>(c);
  }
  if (!core::is_valid_utf8(out)) {
    std::string esc;
    for (unsigned char c : out) {
      if (c >= 0x80) esc += fmt::format("\\x{:02x}", c);
      else esc += static_cast<char>(c);
    }
    return esc;
  }
  return out;
}

}  // namespace cairn::repo
