// Pruner: deletes data that no snapshot references.
//
// Two modes (docs/retention.md has the protocol and its safety argument):
//
// Two-phase (default; caller holds a *maintenance* lock, backups keep
// running). Each run first finishes the marker an earlier run left, then
// marks anew:
//  - Sweep: an outstanding marker (repo/maintenance.h) whose waited-for lock
//    holders are all gone is decided — snapshots are re-read, marked packs a
//    snapshot needs are rescued (indexed again), the rest are deleted, then
//    the index files the marker made obsolete, then the marker. While a
//    marker still waits, the run stops there and reports whom it waits for.
//  - Mark: walk every snapshot's trees; packs with no used blob, the packs
//    select_repacks() picks (after their used blobs were copied to new
//    packs), and packs no index names are marked, not deleted. A complete
//    new index is written first, then the marker, then the lock holders
//    present at that moment are recorded in it.
//
// Exclusive (caller holds an exclusive lock, nothing else runs): mark, plan
// and delete in one run, in crash-safe order: new packs -> one new full
// index -> old index files removed -> old packs removed.
//
// Any unreadable snapshot or tree, a used blob that no index names, or an
// indexed pack missing from storage stops prune (it cannot know what a
// snapshot needs). A kill at any point leaves a repository that passes
// check; the next prune finishes the work.
#pragma once

#include <functional>
#include <string>
#include <unordered_set>
#include <vector>

#include "core/status.h"
#include "repo/maintenance.h"
#include "repo/repository.h"

namespace cairn::repo {

struct PruneOptions {
  // Unused bytes the repository may keep after prune, as a share of its
  // size (restic's --max-unused): partly used packs are repacked, most
  // wasteful first, only until the rest is within this share.
  double max_unused = 0.05;
  // Bytes of used blobs copied by repacking at most (--max-repack-size).
  uint64_t max_repack_bytes = UINT64_MAX;
  bool dry_run = false;
  bool exclusive = false;   // caller holds an exclusive lock: delete at once
  std::string own_holder;   // this prune's lock holder (never waited for)
};

struct PruneReport {
  // Mark (two-phase) or plan (exclusive) of this run.
  uint64_t packs_total = 0, packs_deleted = 0, packs_repacked = 0, packs_unindexed = 0;
  uint64_t blobs_used = 0, blobs_unused = 0;
  uint64_t bytes_before = 0, bytes_freed = 0, bytes_repacked = 0;
  uint64_t index_files_replaced = 0;
  // Two-phase: packs_deleted/repacked/unindexed were *marked*, not deleted;
  // bytes_freed is what their sweep will free.
  std::string marker;  // marker written by this run's mark phase
  // Sweep of an earlier marker.
  bool swept = false;
  uint64_t packs_swept = 0, packs_rescued = 0, bytes_swept = 0;
  std::vector<std::string> waiting_for;  // live holders an outstanding marker waits for
  bool marked = false;                   // a mark phase ran
};

// Runs prune; the caller holds the lock PruneOptions::exclusive asks for.
core::Result<PruneReport> prune(Repository& repo, const PruneOptions& options,
                                const std::function<void(const std::string&)>& progress = {});

// Repack choice (exposed for unit tests). Among partly used packs, the ones
// to repack so that the unused bytes left in kept packs are at most
// max_unused / (1 - max_unused) × the used bytes of all packs (i.e. at most
// max_unused of the repository after prune): the highest unused share first
// (ties: more unused bytes first), skipping packs whose used bytes would
// take the copy over max_repack_bytes. Returns indexes into `packs`.
struct PackUsage {
  uint64_t used = 0;
  uint64_t unused = 0;
};
std::vector<size_t> select_repacks(const std::vector<PackUsage>& packs, double max_unused,
                                   uint64_t max_repack_bytes);

// Sweep decision (exposed for unit tests): given the marked packs with their
// contents and the blobs snapshots use now, the packs that must be kept, with
// the index entries to write for them. `locate` gives the current index's
// preferred location of a blob (a copy outside marked packs if any).
struct SweepDecision {
  std::vector<PackContents> rescued;
  std::vector<PackContents> deleted;
};
core::Result<SweepDecision> decide_sweep(
    const std::vector<PackContents>& marked, const std::unordered_set<Id, IdHash>& used,
    const std::function<std::optional<BlobLocation>(const Id&)>& locate);

}  // namespace cairn::repo
