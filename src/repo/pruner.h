// Pruner: deletes data that no snapshot references, under an exclusive lock.
//
// 1. Mark: walk every snapshot's trees; the used set is every tree and data
//    blob they name. Any unreadable snapshot or tree stops prune (it cannot
//    know what that snapshot needs).
// 2. Plan: packs with no used blob are deleted; packs whose unused share
//    exceeds max_unused are repacked (used blobs copied to new packs);
//    packs no index names (left by interrupted backups) are deleted.
// 3. Sweep, in crash-safe order: new packs -> one new full index -> old index
//    files removed -> old packs removed. A kill at any point leaves a
//    repository that passes check; the next prune finishes the work.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/status.h"
#include "repo/repository.h"

namespace cairn::repo {

struct PruneOptions {
  double max_unused = 0.05;  // repack packs with more than this share unused
  bool dry_run = false;
};

struct PruneReport {
  uint64_t packs_total = 0, packs_deleted = 0, packs_repacked = 0, packs_unindexed = 0;
  uint64_t blobs_used = 0, blobs_unused = 0;
  uint64_t bytes_before = 0, bytes_freed = 0, bytes_repacked = 0;
  uint64_t index_files_replaced = 0;
};

core::Result<PruneReport> prune(Repository& repo, const PruneOptions& options,
                                const std::function<void(const std::string&)>& progress = {});

}  // namespace cairn::repo
