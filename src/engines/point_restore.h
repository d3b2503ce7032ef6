// Restores one service as it was at one instant: the building block of a
// fleet recovery point (`cairn fleet restore`), where every service of a
// fleet comes back to the same time T.
//
// PostgreSQL services with WAL archiving get point-in-time recovery: the
// base backup that ended before T, the archived WAL it needs (copied next to
// it, so starting the copy needs no repository credential), and recovery
// settings for exactly T, with archiving off so the copy never writes into
// the production archive. Every other service gets its newest snapshot at or
// before T, and the gap to T is reported (MariaDB with archived binlogs too:
// its replay needs a running server; next_step names the command).
// Thread-compatible.
#pragma once

#include <cstdint>
#include <string>

#include "core/status.h"
#include "policy/catalog.h"
#include "repo/repository.h"

namespace cairn::engines {

struct PointRestore {
  std::string service, engine;
  std::string method;  // pitr | snapshot
  std::string snapshot_id, snapshot_time;
  std::string restored_to;  // the instant the restored data reflects
  double gap_s = 0;         // T - restored_to: what this service lacks of T
  std::string target;       // where it was restored
  std::string next_step;    // how to bring it up
  uint64_t files = 0, bytes = 0;
};

// `point` is RFC 3339. `target` must not exist or be empty.
core::Result<PointRestore> restore_at(repo::Repository& repo, const policy::Service& service,
                                      const std::string& point, const std::string& target);

// The newest instant the WAL archive of a continuous PostgreSQL service
// reaches (the archive time of its newest segment); "" when it has none.
core::Result<std::string> archive_reaches(repo::Repository& repo, const policy::Service& service);

}  // namespace cairn::engines
