// cairn sqlite restore: the SQLite engine's restore (docs/engines/sqlite.md).
// Backups run from the policy file (`cairn backup --service S`).
#include <fmt/format.h>

#include <iostream>

#include "cli/context.h"
#include "core/bytes.h"
#include "engines/engine_snapshot.h"
#include "engines/sqlite/sqlite.h"

namespace cairn::cli {

namespace {

struct SqliteRestoreArgs {
  std::string service, snapshot, target;
  bool force = false;
};

core::Status run_sqlite_restore(Context& ctx, const SqliteRestoreArgs& a) {
  TRY(ctx.apply_service_policy(a.service, false));
  ASSIGN_OR_RETURN(auto repo, ctx.open_repository(false));
  ASSIGN_OR_RETURN(auto lock, ctx.shared_lock(*repo));
  TRY(ctx.load_index(*repo));
  ASSIGN_OR_RETURN(repo::SnapshotRef snap,
                   engines::find_engine_snapshot(*repo, a.service, "sqlite", a.snapshot));
  engines::sqlite::RestoreOptions ro;
  ro.target = a.target;
  ro.force = a.force;
  ASSIGN_OR_RETURN(auto r, engines::sqlite::restore(*repo, snap, ro));
  if (ctx.json) {
    ctx.print_json({{"snapshot", snap.id},
                    {"path", r.path},
                    {"bytes", r.bytes},
                    {"check", r.check},
                    {"journal_mode", snap.snapshot.engine.value("journal_mode", "")}});
  } else if (!ctx.quiet) {
    std::cout << fmt::format("restored snapshot {} ({}) to {}: {}\nintegrity_check: {}\n",
                             snap.id.substr(0, 8), snap.snapshot.engine.value("path", "?"), r.path,
                             core::format_bytes(r.bytes), r.check);
  }
  return {};
}

}  // namespace

void add_sqlite(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand(
      "sqlite", "SQLite: restore a database copy (backups: cairn backup --service)");
  cmd->require_subcommand(1);
  auto a = std::make_shared<SqliteRestoreArgs>();
  auto* restore = cmd->add_subcommand(
      "restore",
      "write a snapshot's database to --target (accepted only if PRAGMA integrity_check is ok)");
  restore->add_option("--service", a->service, "service to restore")->required();
  restore->add_option("--snapshot", a->snapshot,
                      "snapshot id or latest (default: the newest SQLite backup)");
  restore->add_option("--target", a->target, "the database file to create")->required();
  restore->add_flag("--force", a->force,
                    "replace an existing file (its -wal, -shm, -journal are removed)");
  restore->callback([&ctx, a] { ctx.run([&] { return run_sqlite_restore(ctx, *a); }); });
}

}  // namespace cairn::cli
