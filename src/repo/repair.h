// Repair: rebuilds the index from the packs themselves (`cairn repair index`).
// Used when index files are lost or name packs that are gone. Runs under an
// exclusive lock. Order keeps every step safe to interrupt:
//   1. maintenance markers are removed (un-marking only keeps more data);
//   2. every pack's header is read and a new index naming all readable
//      packs is written;
//   3. only then are the old index files removed.
// A pack whose header cannot be read is reported and left unindexed; its
// blobs are lost for snapshots that have no other copy (check names them).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/status.h"
#include "repo/repository.h"

namespace cairn::repo {

struct RepairIndexReport {
  uint64_t packs = 0, blobs = 0;
  uint64_t index_files_written = 0, index_files_removed = 0, markers_removed = 0;
  std::vector<std::string> unreadable_packs;  // "pack <id>: why"
};

core::Result<RepairIndexReport> repair_index(
    Repository& repo, const std::function<void(const std::string&)>& progress = {});

// Reads the header of one stored pack of `size` bytes.
core::Result<std::vector<PackEntry>> read_pack_header(Repository& repo, const std::string& pack,
                                                      uint64_t size);

}  // namespace cairn::repo
