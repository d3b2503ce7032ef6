// Snapshots: the root of one backup (encrypted JSON under snapshots/).
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/bytes.h"
#include "core/status.h"
#include "repo/ids.h"
#include "repo/timefmt.h"

namespace cairn::repo {

struct SnapshotSummary {
  uint64_t files_new = 0, files_changed = 0, files_unmodified = 0;
  uint64_t dirs = 0, errors = 0;
  uint64_t data_blobs = 0, tree_blobs = 0;   // newly stored
  uint64_t data_added = 0;                   // bytes newly stored (after compression)
  uint64_t data_added_raw = 0;               // their plaintext size
  uint64_t total_files = 0, total_bytes = 0; // everything in the snapshot
  double duration_s = 0;
};

struct Snapshot {
  Time time;
  std::string hostname, username;
  uint32_t uid = 0, gid = 0;
  std::string service;
  std::vector<std::string> tags, paths, excludes;
  Id tree;
  std::optional<Id> parent;
  // Set by `cairn copy`: id of the snapshot in the source repository this one
  // was copied from (the source's own `original` if it was a copy itself).
  std::string original;
  nlohmann::json engine = nlohmann::json::object();  // engine metadata (LSNs, dump tool...)
  SnapshotSummary summary;
  std::string program_version;

  nlohmann::json to_json() const;
  static core::Result<Snapshot> from_json(core::ByteView text);
};

}  // namespace cairn::repo
