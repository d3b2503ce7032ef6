#include "repo/copier.h"

namespace cairn::repo {

std::string Copier::original_of(const SnapshotRef& s) {
  return s.snapshot.original.empty() ? s.id : s.snapshot.original;
}

core::Result<Id> Copier::copy_data(const Id& src_blob) {
  stats_.data_blobs++;
  if (auto it = data_.find(src_blob); it != data_.end()) return it->second;
  auto plain = src_.load_blob(src_blob);
  if (!plain.ok()) return plain.status().with_context("source data blob " + src_blob.hex());
  stats_.bytes_read += plain->size();
  Id id = dst_.blob_id(*plain);
  ASSIGN_OR_RETURN(bool added, dst_.save_blob(BlobType::kData, id, *plain));
  if (added) stats_.data_added++;
  data_.emplace(src_blob, id);
  return id;
}

core::Result<Id> Copier::copy_tree(const Id& src_tree) {
  stats_.tree_blobs++;
  if (auto it = trees_.find(src_tree); it != trees_.end()) return it->second;
  auto tree = src_.load_tree(src_tree);
  if (!tree.ok()) return tree.status().with_context("source tree " + src_tree.hex());
  for (auto& n : tree->nodes) {
    for (auto& id : n.content) {
      ASSIGN_OR_RETURN(id, copy_data(id));
    }
    if (n.subtree) {
      ASSIGN_OR_RETURN(n.subtree, copy_tree(*n.subtree));
    }
  }
  bool added = false;
  ASSIGN_OR_RETURN(Id id, dst_.save_tree(*tree, &added));
  if (added) stats_.trees_added++;
  trees_.emplace(src_tree, id);
  return id;
}

core::Result<std::string> Copier::copy_snapshot(const SnapshotRef& s) {
  auto root = copy_tree(s.snapshot.tree);
  if (!root.ok()) return root.status().with_context("copying snapshot " + s.id.substr(0, 8));
  // Data and trees are stored (and indexed) before the snapshot names them.
  TRY(dst_.flush());
  Snapshot copy = s.snapshot;
  copy.tree = *root;
  copy.parent.reset();  // a source snapshot id means nothing in the destination
  copy.original = original_of(s);
  return dst_.save_snapshot(copy);
}

}  // namespace cairn::repo
