// Restore drills: prove that a service's backup restores, passes its checks
// and does so within its RTO. A drill restores a snapshot into a scratch
// folder, runs the policy's checks against it, measures every phase, and
// always removes the scratch folder (also after a failure; after a kill, the
// next drill removes what a dead one left).
//
// Files and exec services restore into a scratch folder; PostgreSQL services
// into a scratch server (a physical base backup recovered with the archived
// WAL to the drill's point, or a logical dump restored into a fresh cluster),
// checked with amcheck, the policy's SQL and commands (docs/drills.md).
// Thread-compatible.
#pragma once

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/status.h"
#include "policy/catalog.h"
#include "repo/repository.h"

namespace cairn::drill {

struct DrillOptions {
  std::string point = "latest";       // latest | random | a time (newest snapshot at or before it)
  std::string scratch_root = "/tmp";  // where the scratch folder is made
};

struct Phase {
  std::string name;  // select, provision, restore, verify, fetch, recovery, checks
  double seconds = 0;
};

struct CheckResult {
  std::string check;  // as written in the policy
  bool passed = false;
  std::string output;  // last lines of the command's output, or the error
  double seconds = 0;
};

struct DrillReport {
  std::string service, owner, tier;
  std::string point;  // as asked
  std::string snapshot_id;
  std::string snapshot_time;  // RFC 3339
  std::string point_time;     // the instant the drill recovers to (its start for "latest")
  std::string
      restored_to;  // newest data in the restored copy (snapshot time, or the replayed WAL's)
  std::string started_at, finished_at;
  std::vector<Phase> phases;
  std::vector<CheckResult> checks;
  uint64_t files_restored = 0, bytes_restored = 0;
  double rto_s = 0;  // start to "restored and checked"
  double rpo_s = 0;  // point_time - restored_to: the data a recovery to the point loses
  double rto_objective_s = 0, rpo_objective_s = 0;
  bool passed = false;
  std::string failure;  // why it failed ("" when passed)

  // Bytes restored per second of the restore (and WAL fetch) phases.
  double throughput() const;
  nlohmann::json to_json() const;
  static DrillReport from_json(const nlohmann::json& j);
  std::string markdown() const;
  std::string html() const;  // a self-contained page (inline CSS)
};

// Runs one drill. Errors that make a drill impossible (no snapshot) are
// returned as a failed report, not as a Status: a drill that cannot restore
// is exactly what it exists to find.
DrillReport run_drill(repo::Repository& repo, const policy::Service& service,
                      const DrillOptions& options);

// Removes scratch folders (and stops scratch servers) of drills whose
// process is gone.
void remove_stale_scratch(const std::string& scratch_root);

}  // namespace cairn::drill
