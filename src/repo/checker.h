// Checker: verifies a repository's structure and, optionally, every byte.
// Structure: index files decode, every indexed pack exists with a header that
// agrees with the index, every snapshot decodes and every tree and data blob
// it references is indexed. --read-data: every selected pack hashes to its
// name and every blob decrypts, decompresses and matches its id.
// Damage is reported with the pack and the snapshots it affects.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/status.h"
#include "repo/repository.h"

namespace cairn::repo {

struct CheckOptions {
  bool read_data = false;
  // Subset of packs to read: either a percentage (0 < pct <= 100) or group n of m.
  double subset_percent = 100;
  uint32_t subset_n = 0, subset_m = 0;
};

struct CheckReport {
  std::vector<std::string> errors;    // damage: exit code 1
  std::vector<std::string> warnings;  // harmless leftovers (unindexed packs)
  uint64_t packs = 0, blobs = 0, snapshots = 0, trees = 0, packs_read = 0, bytes_read = 0;
  std::vector<std::string> damaged_packs;
  std::vector<std::string> affected_snapshots;
};

core::Result<CheckReport> check(Repository& repo, const CheckOptions& options,
                                const std::function<void(const std::string&)>& progress = {});

// Parses "10%" or "2/5" for --read-data-subset.
core::Status parse_subset(const std::string& s, CheckOptions& options);

}  // namespace cairn::repo
