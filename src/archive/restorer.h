// Restorer: recreates a snapshot (or a subtree of it) below a target folder.
//
// Three passes: (1) create directories, empty files, symlinks and special
// files, validating every tree first (names in a directory this restore made
// are known to be free, so nothing is removed there); (2) read packs in
// parallel and pwrite each verified blob to all its file offsets (all-zero
// blobs are skipped, so holes stay sparse); the worker that writes a file's
// last blob sets its final size and metadata through the open descriptor;
// (3) metadata of everything else, children before their directory. Never
// writes outside the target: names are checked (no "..", "/", duplicates),
// and nothing is opened through a symlink. A file whose content fails
// verification is removed and reported.
#pragma once

#include <atomic>
#include <string>
#include <vector>

#include "core/status.h"
#include "repo/repository.h"

namespace cairn::archive {

struct RestoreOptions {
  std::string target;
  std::vector<std::string> includes, excludes;  // patterns on snapshot paths
  bool verify = false;                          // re-read restored files afterwards
  size_t workers = 8;
};

struct RestoreProgress {
  std::atomic<uint64_t> files_total{0}, bytes_total{0};
  std::atomic<uint64_t> files_done{0}, bytes_done{0};
};

struct RestoreResult {
  uint64_t files = 0, dirs = 0, links = 0, bytes = 0;
  std::vector<std::string> errors;  // non-empty: exit code 1 (what was written is intact)
  std::vector<std::string> warnings;  // e.g. ownership not restorable as non-root
};

// `path` selects a subtree ("/" or "" for all). A directory's contents are
// restored into the target; a single file is restored as target/<name>.
core::Result<RestoreResult> restore(repo::Repository& repo, const repo::Snapshot& snapshot,
                                    const std::string& path, const RestoreOptions& options,
                                    RestoreProgress* progress);

}  // namespace cairn::archive
