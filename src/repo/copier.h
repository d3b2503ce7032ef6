// Copier: copies snapshots from one repository into another (`cairn copy`).
// Blob ids are HMACs under each repository's own id key, so nothing can be
// copied as stored: every data blob is loaded (decrypted and verified) from
// the source, its destination id computed, and saved unless the destination
// already has it; trees are rewritten with destination ids bottom-up and
// saved; the snapshot is saved last, naming its source as `original`.
//
// Memory: one blob in flight at a time (plus the destination's open packs);
// a map of source -> destination ids (about 100 bytes per unique blob)
// avoids loading a blob twice when snapshots share data.
// Not thread-safe; the caller holds shared locks on both repositories.
#pragma once

#include <functional>
#include <string>
#include <unordered_map>

#include "core/status.h"
#include "repo/repository.h"

namespace cairn::repo {

struct CopyStats {
  uint64_t data_blobs = 0, tree_blobs = 0;   // looked at
  uint64_t data_added = 0, trees_added = 0;  // newly stored in the destination
  uint64_t bytes_read = 0;                   // plaintext loaded from the source
};

class Copier {
 public:
  Copier(Repository& src, Repository& dst) : src_(src), dst_(dst) {}

  // The id `s` would carry as `original` in a destination.
  static std::string original_of(const SnapshotRef& s);
  // Copies one snapshot (its data, trees and the snapshot itself, after
  // flushing the destination). Returns the new snapshot id.
  core::Result<std::string> copy_snapshot(const SnapshotRef& s);
  const CopyStats& stats() const { return stats_; }

 private:
  core::Result<Id> copy_tree(const Id& src_tree);
  core::Result<Id> copy_data(const Id& src_blob);

  Repository& src_;
  Repository& dst_;
  std::unordered_map<Id, Id, IdHash> trees_, data_;
  CopyStats stats_;
};

}  // namespace cairn::repo
