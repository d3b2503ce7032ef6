// StateStore: the daemon's memory across restarts, in one embedded SQLite
// database file: the history of runs (backup, prune, drill, forget), the
// per-service schedule state, and the alert states the AlertManager keeps.
//
// The database runs in WAL journal mode with a 5 s busy timeout, so a CLI
// reading it (`cairn daemon status`) never blocks the daemon for long. The schema is
// versioned (table schema_version); open() applies the missing migrations in
// order, each in its own transaction, and refuses a database written by a
// newer cairn (kUnsupported).
//
// Times are std::chrono::sys_seconds, stored as integer Unix seconds (UTC).
//
// Thread-safe: one mutex serializes every call, so the daemon's job threads
// may share one StateStore. Movable, not copyable.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace cairn::daemon {

using Time = std::chrono::sys_seconds;

enum class RunKind { kBackup, kPrune, kDrill, kForget };
enum class RunResult { kSuccess, kFailure, kCancelled, kRunning };

// Names as stored in the database: "backup", "prune", "drill", "forget";
// "success", "failure", "cancelled", "running".
const char* run_kind_name(RunKind kind);
const char* run_result_name(RunResult result);
std::optional<RunKind> parse_run_kind(std::string_view name);
std::optional<RunResult> parse_run_result(std::string_view name);

// The error text finish_run() callers and mark_interrupted_runs() agree on.
inline constexpr char kInterruptedRunError[] = "daemon stopped during the run";

// How a run ended (finish_run()).
struct RunOutcome {
  RunResult result = RunResult::kSuccess;  // never kRunning
  Time finished_at{};
  uint64_t bytes_added = 0;  // new data stored by the run
  uint64_t total_size = 0;   // size of the snapshot (or dump) it made
  double duration_s = 0;
  std::string snapshot_id;  // "" when none was written
  std::string error;        // "" on success
};

struct RunRecord {
  int64_t id = 0;
  std::string service;
  RunKind kind = RunKind::kBackup;
  Time started_at{};
  std::optional<Time> finished_at;  // unset while running
  RunResult result = RunResult::kRunning;
  int attempt = 1;  // 1 for the first try, 2 for the first retry, ...
  uint64_t bytes_added = 0;
  uint64_t total_size = 0;
  double duration_s = 0;
  std::string snapshot_id;
  std::string error;
};

struct ServiceState {
  std::string service;
  std::optional<Time> last_success_at;
  std::optional<Time> last_attempt_at;
  std::optional<Time> next_run_at;
  std::optional<Time> newest_restorable_point;  // RPO is measured from this
};

// One alert's persisted state, keyed by "<name>/<service>" (alert_key()).
struct AlertRecord {
  std::string key;
  std::string name;
  std::string service;
  std::string severity;              // "critical", "warning", "info"
  bool firing = false;               // false: resolved
  Time since{};                      // when the current (or last) firing episode started
  std::optional<Time> ends_at;       // when it was resolved
  std::optional<Time> last_sent_at;  // start of the last notification round
  std::string summary;
  std::string description;
  std::string owner;
  std::string tier;
  // Receivers that have not yet accepted the notification of the current
  // state (kept for retry; empty once every receiver has it).
  std::vector<std::string> pending;
};

std::string alert_key(std::string_view name, std::string_view service);

// A restore drill's report, stored with its run (kind kDrill).
struct DrillRecord {
  int64_t run_id = 0;
  std::string service;
  bool passed = false;
  std::string report_json;  // drill::DrillReport::to_json()
};

// An API token of `cairn server` (server/tokens.h gives it meaning). Only
// the SHA-256 of its secret is stored.
struct TokenRecord {
  std::string id;  // public part of the token, 16 hex digits
  std::string name;
  std::string role;                   // server::role_name()
  std::vector<std::string> services;  // "*" = every service
  std::string secret_hash;            // hex SHA-256 of the secret
  Time created_at{};
  std::string created_by;
  std::optional<Time> expires_at, last_used_at, revoked_at;
};

class StateStore {
 public:
  // Opens (creating if needed) the database at `path` and migrates its
  // schema. ":memory:" gives a private, unsaved database.
  static core::Result<StateStore> open(const std::string& path);

  StateStore(StateStore&&) noexcept;
  StateStore& operator=(StateStore&&) noexcept;
  ~StateStore();

  const std::string& path() const;
  // Schema version after migrations (tests and `daemon status`).
  static int latest_schema_version();

  // Records a run as 'running' and returns its id.
  core::Result<int64_t> begin_run(const std::string& service, RunKind kind, Time started_at,
                                  int attempt = 1);
  // kNotFound for an unknown id, kInvalidArgument for outcome kRunning.
  core::Status finish_run(int64_t id, const RunOutcome& outcome);
  // Newest first (by started_at, then id); `result` narrows to one result.
  core::Result<std::vector<RunRecord>> recent_runs(const std::string& service, RunKind kind,
                                                   int limit,
                                                   std::optional<RunResult> result = std::nullopt);
  // Number of runs per result of a service and kind (for cairn_backup_runs_total).
  core::Result<std::map<RunResult, int64_t>> run_counts(const std::string& service, RunKind kind);
  // Runs still 'running' (left by a crash or kill) become 'failure' with
  // error kInterruptedRunError, finished_at = now. Call once at daemon start,
  // before any job runs.
  core::Status mark_interrupted_runs(Time now);

  core::Result<std::optional<ServiceState>> service_state(const std::string& service);
  core::Status put_service_state(const ServiceState& state);  // insert or replace

  core::Result<std::optional<AlertRecord>> alert(const std::string& key);
  core::Status put_alert(const AlertRecord& record);  // insert or replace by key
  // All alerts (firing and resolved), ordered by key.
  core::Result<std::vector<AlertRecord>> alerts();

  core::Status put_drill_report(int64_t run_id, const std::string& service, bool passed,
                                const std::string& report_json);
  // Newest first; service "" = every service.
  core::Result<std::vector<DrillRecord>> drill_reports(const std::string& service, int limit,
                                                       bool passed_only = false);

  // API tokens. put_token inserts (kAlreadyExists-like I/O error on a used id);
  // revoke_token: kNotFound when no active token has the id.
  core::Status put_token(const TokenRecord& token);
  core::Result<std::optional<TokenRecord>> token(const std::string& id);
  core::Result<std::vector<TokenRecord>> tokens();  // every token, oldest first
  core::Status touch_token(const std::string& id, Time used_at);
  core::Status revoke_token(const std::string& id, Time at);

 private:
  struct Impl;
  explicit StateStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace cairn::daemon
