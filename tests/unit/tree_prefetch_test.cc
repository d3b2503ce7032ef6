#include "archive/tree_prefetch.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <map>
#include <mutex>
#include <string>

#include "storage/memory_backend.h"
#include "unit/test_util.h"

namespace cairn::archive {
namespace {

using repo::Id;
using repo::Node;
using repo::NodeType;
using repo::Tree;

class TreePrefetchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    backend_ = std::make_shared<storage::MemoryBackend>();
    repo_ = testing::make_repo(backend_);
  }

  Node dir(const std::string& name, const Id& subtree) {
    Node n;
    n.name = name;
    n.type = NodeType::kDir;
    n.subtree = subtree;
    return n;
  }
  Node file(const std::string& name) {
    Node n;
    n.name = name;
    return n;
  }
  // A folder holding `width` files and `width` subfolders, `depth` levels deep.
  Id build(int depth, int width, int& folders) {
    Tree t;
    for (int i = 0; i < width; ++i) {
      t.nodes.push_back(file("f" + std::to_string(i) + "-" + std::to_string(depth)));
      if (depth > 0)
        t.nodes.push_back(dir("d" + std::to_string(i), build(depth - 1, width, folders)));
    }
    ++folders;
    return repo_->save_tree(t).value();
  }

  // The walk the restorer does: depth-first, taking each subfolder's slot.
  void walk(TreePrefetch& p, const TreePrefetch::SlotPtr& slot, const Id& id, int& seen) {
    auto [tree, subfolders] = p.take(slot);
    ASSERT_TRUE(tree.ok()) << tree.status().message();
    EXPECT_EQ(tree->nodes, repo_->load_tree(id).value().nodes);
    ASSERT_EQ(subfolders.size(), tree->nodes.size());
    ++seen;
    for (size_t i = 0; i < tree->nodes.size(); ++i) {
      const Node& n = tree->nodes[i];
      EXPECT_EQ(subfolders[i] != nullptr, n.type == NodeType::kDir) << n.name;
      if (subfolders[i]) walk(p, subfolders[i], *n.subtree, seen);
    }
  }

  std::shared_ptr<storage::MemoryBackend> backend_;
  std::unique_ptr<repo::Repository> repo_;
};

TEST_F(TreePrefetchTest, WalkGetsEveryTreeInOrderEvenBeyondTheLookAheadBound) {
  int folders = 0;
  Id root = build(4, 6, folders);  // 1555 folders > kMaxAhead
  ASSERT_GT(static_cast<size_t>(folders), TreePrefetch::kMaxAhead);
  ASSERT_TRUE(repo_->flush().ok());
  TreePrefetch p(*repo_, [](const std::string&, const Node&) { return true; });
  int seen = 0;
  walk(p, p.root(root, ""), root, seen);
  EXPECT_EQ(seen, folders);
}

TEST_F(TreePrefetchTest, UnwantedAndUnsafeFoldersGetNoSlot) {
  int folders = 0;
  Id sub = build(1, 2, folders);
  Tree t;
  t.nodes = {dir("keep", sub), dir("skip", sub), dir("..", sub), file("f")};
  Id root = repo_->save_tree(t).value();
  ASSERT_TRUE(repo_->flush().ok());
  std::mutex mu;
  std::vector<std::string> asked;
  TreePrefetch p(*repo_, [&](const std::string& path, const Node&) {
    std::lock_guard lock(mu);  // called from both threads
    asked.push_back(path);
    return path != "/top/skip";
  });
  auto [tree, subfolders] = p.take(p.root(root, "/top"));
  ASSERT_TRUE(tree.ok());
  ASSERT_EQ(subfolders.size(), 4u);
  std::map<std::string, TreePrefetch::SlotPtr> by_name;  // trees are stored sorted by name
  for (size_t i = 0; i < 4; ++i) by_name[tree->nodes[i].name] = subfolders[i];
  EXPECT_NE(by_name["keep"], nullptr);
  EXPECT_EQ(by_name["skip"], nullptr);  // not wanted
  EXPECT_EQ(by_name[".."], nullptr);    // never loaded through
  EXPECT_EQ(by_name["f"], nullptr);     // a file
  EXPECT_TRUE(p.take(by_name["keep"]).tree.ok());
  std::lock_guard lock(mu);
  EXPECT_NE(std::find(asked.begin(), asked.end(), "/top/skip"), asked.end());
}

TEST_F(TreePrefetchTest, AMissingTreeIsAnErrorForThatFolderOnly) {
  int folders = 0;
  Id good = build(0, 1, folders);
  Tree t;
  t.nodes = {dir("gone", Id{}), dir("ok", good)};  // a tree id no index knows
  Id root = repo_->save_tree(t).value();
  ASSERT_TRUE(repo_->flush().ok());
  TreePrefetch p(*repo_, [](const std::string&, const Node&) { return true; });
  auto [tree, subfolders] = p.take(p.root(root, ""));
  ASSERT_TRUE(tree.ok());
  ASSERT_EQ(tree->nodes[0].name, "gone");
  EXPECT_FALSE(p.take(subfolders[0]).tree.ok());
  EXPECT_TRUE(p.take(subfolders[1]).tree.ok());
}

}  // namespace
}  // namespace cairn::archive
