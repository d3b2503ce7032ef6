// What run_drill() shares with the engine-specific drill steps (files,
// PostgreSQL, SQLite, Redis, MariaDB): the drill in progress, phase timing, snapshot selection and
// user check commands. Internal to src/drill. Thread-compatible.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "drill/drill.h"

namespace cairn::drill {

using Clock = std::chrono::steady_clock;

struct DrillRun {
  repo::Repository& repo;
  const policy::Service& service;
  const DrillOptions& options;
  DrillReport& report;
  std::string scratch;  // private folder; run_drill removes it
  std::chrono::system_clock::time_point started;
};

double seconds_since(Clock::time_point t);
std::string rfc3339(std::chrono::system_clock::time_point t);
double unix_seconds(const std::string& rfc3339_time);  // 0 when unparsable

// Records a phase from `start` to now.
void add_phase(DrillReport& r, const std::string& name, Clock::time_point start);

// The snapshot of the service for `point`: latest, random, or the newest at
// or before a time.
core::Result<repo::SnapshotRef> select_snapshot(repo::Repository& repo, const std::string& service,
                                                const std::string& point);

// Runs "exec: <command>" through /bin/sh in `dir` with the drill's variables
// (CAIRN_DRILL_DIR, CAIRN_SERVICE and `env`); its exit status decides.
CheckResult run_exec_check(const std::string& check, const std::string& dir,
                           const policy::Service& service, const std::vector<std::string>& env);
bool is_exec_check(const std::string& check);

// Engine steps: fill the report (snapshot, phases, checks, sizes, restored
// point); a returned error is the drill's failure.
core::Status drill_files(DrillRun& run);
core::Status drill_postgres(DrillRun& run);
core::Status drill_sqlite(DrillRun& run);
core::Status drill_redis(DrillRun& run);
core::Status drill_mariadb(DrillRun& run);

}  // namespace cairn::drill
