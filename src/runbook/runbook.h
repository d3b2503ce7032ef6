// Restore runbooks: one page per service that tells whoever is on call how
// to get the service's data back — owner, objectives, schedule, retention,
// where the backups are (and which credential opens them, never the secret),
// the newest restore points, the WAL recovery window, the last drill, and the
// exact commands to restore to the latest point and to a point in time, with
// verification steps (docs/runbooks.md).
//
// The generator is pure: the CLI gathers the live state (snapshots from the
// repository, the WAL archive report, drill reports from the daemon's state
// database, which lives in a higher layer) into RunbookInput, and build()
// turns policy + state into a Runbook, which renders as Markdown, as a
// self-contained HTML page, or as JSON (its data model). Thread-compatible.
#pragma once

#include <chrono>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/text.h"
#include "drill/drill.h"
#include "engines/postgres/postgres.h"
#include "policy/catalog.h"
#include "repo/repository.h"

namespace cairn::runbook {

// Environment variables the printed commands read (with a printed default),
// so the commands run exactly as printed and a reader can still redirect them.
inline constexpr char kTargetEnv[] = "CAIRN_RESTORE_TARGET";
inline constexpr char kTimeEnv[] = "CAIRN_RESTORE_TIME";
inline constexpr char kSnapshotEnv[] = "CAIRN_RESTORE_SNAPSHOT";
inline constexpr char kDsnEnv[] = "CAIRN_RESTORE_DSN";
inline constexpr char kPortEnv[] = "CAIRN_RESTORE_PORT";
inline constexpr char kSocketEnv[] = "CAIRN_RESTORE_SOCKET";      // MariaDB scratch server
inline constexpr char kPositionEnv[] = "CAIRN_RESTORE_POSITION";  // MariaDB FILE:POS
inline constexpr char kRootEnv[] = "CAIRN_RESTORE_ROOT";          // fleet restore: <root>/<service>
inline constexpr char kRedisDirEnv[] = "CAIRN_REDIS_DIR";         // put-back: the live Redis dir
inline constexpr char kDefaultTargetRoot[] = "/var/tmp/cairn-restore";

struct RunbookInput {
  const policy::Service* service = nullptr;
  std::string config_path;       // absolute: every printed command carries --config <it>
  std::string timezone = "UTC";  // daemon.timezone: schedules and times are shown in it
  std::chrono::sys_seconds now{};
  std::string target_root = kDefaultTargetRoot;  // default restore target = <root>/<service>
  std::string program_version = "0.1.0";

  // The repository: opened or not, and why not.
  bool repository_opened = false;
  std::string repository_error;
  std::vector<repo::SnapshotRef> snapshots;  // this service's, oldest first

  // PostgreSQL physical with WAL archiving: the archive's report (check_archive).
  std::optional<engines::postgres::ArchiveReport> archive;
  std::string archive_error;

  // Drill reports from the daemon's state database.
  std::string state_path;
  bool state_available = false;  // the database exists and could be read
  std::string state_error;
  std::optional<drill::DrillReport> last_drill, last_passing_drill;
};

struct RestorePoint {
  std::string id, time, host, kind;  // kind: "files", "exec stream", "postgres physical", ...
  uint64_t files = 0, bytes = 0;
  std::vector<std::string> tags;
};

// One block of shell commands. `kind` is the Markdown info string's second
// word (```sh restore-latest): restore-latest, restore-pitr, restore-snapshot,
// restore-load, restore-position, start-server, verify, stop-server,
// put-back, drill (prove it), fleet-restore.
struct CommandBlock {
  std::string kind;
  std::string title;
  std::string note;    // text shown before the block (inline `code` allowed)
  std::string script;  // exact shell text, one command per line
};

struct Runbook {
  std::string service, owner, tier, config_path, generated_at, program_version;
  std::string rpo, rto;  // canonical durations ("15m")
  std::string engine_type, engine_summary;
  nlohmann::json engine;  // the policy's engine settings (no secrets: ${VAR} unexpanded)
  std::string schedule, schedule_text;  // expression and its reading
  std::vector<std::string> next_runs;   // in `timezone`
  std::string timezone;
  std::string retention;
  std::string drill_schedule, drill_schedule_text;
  std::vector<std::string> drill_next_runs;
  std::vector<std::string> drill_checks;
  std::string repository, credential, s3_credentials;
  bool repository_opened = false;
  std::string repository_error;
  size_t restore_points_total = 0;
  std::vector<RestorePoint> restore_points;  // newest first, at most 10
  bool pitr = false;                         // point-in-time restores possible (engine)
  std::optional<engines::postgres::ArchiveReport> archive;
  std::string archive_error;
  std::string recovery_window_from,
      recovery_window_to;  // PITR: oldest base backup end .. newest WAL
  std::string state_path, state_error;
  bool state_available = false;
  std::optional<drill::DrillReport> last_drill, last_passing_drill;
  std::string target_default;  // <root>/<service>
  std::vector<CommandBlock> commands;
  std::vector<std::string> notes;     // engine-specific advice shown with the commands
  std::vector<std::string> warnings;  // loud: a runbook with warnings exits 3

  nlohmann::json to_json() const;
  std::string markdown() const;
  std::string html() const;
};

Runbook build(const RunbookInput& in);

// The index page of `runbook --all`: one line per service with its file name.
std::string index_markdown(const std::vector<Runbook>& books, const std::string& extension);
std::string index_html(const std::vector<Runbook>& books);

// A cron expression in words ("at 00:00, 06:00, 12:00 and 18:00 every day");
// falls back to the expression's fields when it has no simple reading.
std::string describe_schedule(const std::string& expression);

// Quotes a word for /bin/sh only when it needs it (readable commands).
std::string sh_word(const std::string& s);

// HTML text escaping (&, <, >, ", ').
using core::html_escape;

}  // namespace cairn::runbook
