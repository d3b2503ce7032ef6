// cairn pg backup|restore: the PostgreSQL engine (docs/postgres.md).
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <iostream>

#include "archive/restorer.h"
#include "cli/context.h"
#include "engines/postgres/postgres.h"
#include "repo/lock.h"

namespace cairn::cli {

namespace pg = engines::postgres;

namespace {

struct PgBackupArgs {
  std::string dsn, mode = "logical", service, host, bindir;
  std::vector<std::string> databases, tags;
  std::string source = "auto";
  bool no_globals = false, spread_checkpoint = false;
};

core::Status run_pg_backup(Context& ctx, const PgBackupArgs& a) {
  if (a.dsn.empty())
    return core::invalid_argument("pg backup needs --dsn (a libpq connection string)");
  if (a.service.empty())
    return core::invalid_argument(
        "pg backup needs --service: snapshots and WAL are kept per service");
  if (a.mode == "physical") ctx.default_compression = kPhysicalCompression;
  // Lock before reading the index: a two-phase prune must see this backup.
  ASSIGN_OR_RETURN(auto repo, ctx.open_repository(false));
  ASSIGN_OR_RETURN(auto lock, ctx.lock(*repo, repo::LockMode::kShared));
  TRY(ctx.load_index(*repo));
  archive::BackupOptions opt;
  opt.service = a.service;
  opt.host = a.host.empty() ? archive::local_hostname() : a.host;
  opt.tags = a.tags;
  archive::BackupProgress progress;
  ProgressLine line(ctx.show_progress(), [&](double el) {
    return fmt::format("[{}] {} files, {}", core::format_duration(el), progress.files_done.load(),
                       core::format_bytes(progress.bytes_done));
  });
  core::Result<archive::BackupResult> r = core::invalid_argument("unset");
  if (a.mode == "logical") {
    pg::LogicalOptions lo{a.dsn, a.bindir, a.databases, !a.no_globals};
    r = pg::logical_backup(*repo, lo, opt, &progress);
  } else {
    if (!a.databases.empty())
      return core::invalid_argument("--database applies to logical backups only");
    pg::PhysicalOptions po{a.dsn, a.bindir, !a.spread_checkpoint, a.source};
    r = pg::physical_backup(*repo, po, opt, &progress);
  }
  line.stop();
  if (!r.ok())
    return core::Status(r.status().code(), r.status().message() + "\nno snapshot written");
  const auto& s = r->snapshot;
  if (ctx.json) {
    ctx.print_json({{"snapshot_id", r->snapshot_id},
                    {"engine", s.engine},
                    {"notices", r->notices},
                    {"summary", s.to_json()["summary"]}});
  } else if (!ctx.quiet) {
    for (const auto& n : r->notices) std::cerr << "cairn: note: " << n << "\n";
    std::cout << fmt::format("snapshot {} saved ({} {} backup of PostgreSQL {})\n",
                             r->snapshot_id.substr(0, 8), a.service, a.mode,
                             s.engine.value("server_version", "?"));
    if (a.mode == "physical")
      std::cout << fmt::format("  WAL {} .. {} on timeline {}\n", s.engine.value("start_lsn", "?"),
                               s.engine.value("stop_lsn", "?"), s.engine.value("timeline", 0));
    std::cout << fmt::format("  {} files, {}; added {} stored in {}\n", s.summary.total_files,
                             core::format_bytes(s.summary.total_bytes),
                             core::format_bytes(s.summary.data_added),
                             core::format_duration(s.summary.duration_s));
  }
  return {};
}

struct PgRestoreArgs {
  std::string service, snapshot, target_dir, dsn, database, bindir, restore_command;
  std::string to_time, to_lsn, to_xid, to_name, action = "promote", timeline = "latest";
  bool to_immediate = false, create = false, clean = false, globals = false, no_verify = false;
  int jobs = 1;
  std::vector<std::string> tables, schemas;
};

// The restore_command PostgreSQL will run: this binary, this repository, a
// credential it can read without a terminal. Never a password inline.
core::Result<std::string> default_restore_command(const Context& ctx, const std::string& service) {
  std::string env, key;
  if (!ctx.key_file.empty()) {
    key = " --key-file " + pg::shell_quote(std::filesystem::absolute(ctx.key_file).string());
  } else if (const char* f = getenv("CAIRN_PASSWORD_FILE"); f && *f) {
    env = "CAIRN_PASSWORD_FILE=" + pg::shell_quote(std::filesystem::absolute(f).string()) + " ";
  } else if (const char* c = getenv("CAIRN_PASSWORD_COMMAND"); c && *c) {
    env = "CAIRN_PASSWORD_COMMAND=" + pg::shell_quote(c) + " ";
  } else {
    return core::invalid_argument(
        "PostgreSQL's restore_command needs a credential it can read: use --key-file or "
        "CAIRN_PASSWORD_FILE "
        "(readable by the server's user), or give --restore-command. A password from "
        "CAIRN_PASSWORD would "
        "end up in postgresql.auto.conf, so it is not used.");
  }
  std::string repo = ctx.repo;
  if (repo.find(':') == std::string::npos || repo.starts_with("local:"))
    repo = std::filesystem::absolute(repo.starts_with("local:") ? repo.substr(6) : repo).string();
  // The repository options wal-get needs to reach the same repository.
  std::string flags = ctx.insecure_http ? " --insecure-http" : "";
  if (!ctx.cacert.empty()) flags += " --cacert " + pg::shell_quote(std::filesystem::absolute(ctx.cacert).string());
  if (ctx.insecure_tls) flags += " --insecure-tls";
  if (ctx.s3_path_style) flags += " --s3-path-style";
  if (ctx.s3_virtual_host) flags += " --s3-virtual-host";
  return env + pg::shell_quote(self_exe()) + key + flags + " --repo " + pg::shell_quote(repo) +
         " wal-get --service " + pg::shell_quote(service) + " %f %p";
}

core::Status run_physical_restore(Context& ctx, const PgRestoreArgs& a) {
  using Kind = pg::RecoveryTarget::Kind;
  pg::RecoveryTarget target;
  int given = 0;
  auto pick = [&](const std::string& v, Kind k) {
    if (v.empty()) return;
    given++;
    target.kind = k;
    target.value = v;
  };
  pick(a.to_time, Kind::kTime);
  pick(a.to_lsn, Kind::kLsn);
  pick(a.to_xid, Kind::kXid);
  pick(a.to_name, Kind::kName);
  if (a.to_immediate) {
    given++;
    target.kind = Kind::kImmediate;
  }
  if (given > 1)
    return core::invalid_argument(
        "give at most one of --to-time, --to-lsn, --to-xid, --to-name, --to-immediate");
  target.action = a.action;
  target.timeline = a.timeline;

  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::exists(a.target_dir, ec) && !fs::is_empty(a.target_dir, ec))
    return core::invalid_argument("--target-dir " + a.target_dir +
                                  " is not empty: restore into a new directory");

  ASSIGN_OR_RETURN(auto repo, ctx.open_repository(false));
  ASSIGN_OR_RETURN(auto lock, ctx.shared_lock(*repo));
  TRY(ctx.load_index(*repo));
  std::string restore_command = a.restore_command;
  if (restore_command.empty()) {
    ASSIGN_OR_RETURN(restore_command, default_restore_command(ctx, a.service));
  }
  repo::SnapshotRef base;
  if (!a.snapshot.empty()) {
    ASSIGN_OR_RETURN(base, repo->find_snapshot(a.snapshot, a.service));
    if (base.snapshot.engine.value("mode", "") != "physical")
      return core::invalid_argument("snapshot " + base.id.substr(0, 8) +
                                    " is not a physical base backup");
  } else {
    ASSIGN_OR_RETURN(auto all, repo->list_snapshots());
    ASSIGN_OR_RETURN(base, pg::choose_base_backup(all, a.service, target));
  }
  fs::create_directories(a.target_dir, ec);
  if (ec) return core::errno_status(ec.value(), a.target_dir);
  archive::RestoreOptions ro;
  ro.target = a.target_dir;
  archive::RestoreProgress progress;
  ProgressLine line(ctx.show_progress(), [&](double el) {
    return fmt::format("[{}] {} of {}", core::format_duration(el),
                       core::format_bytes(progress.bytes_done),
                       core::format_bytes(progress.bytes_total));
  });
  ASSIGN_OR_RETURN(auto result, archive::restore(*repo, base.snapshot, "/", ro, &progress));
  line.stop();
  if (!result.errors.empty()) {
    for (const auto& e : result.errors) std::cerr << "error: " << e << "\n";
    return core::io_error(fmt::format("{} file(s) of base backup {} could not be restored",
                                      result.errors.size(), base.id.substr(0, 8)));
  }
  // The data directory itself: owned by the data files' user, mode 0700.
  struct stat st;
  if (::stat((a.target_dir + "/PG_VERSION").c_str(), &st) == 0) {
    (void)!chown(a.target_dir.c_str(), st.st_uid, st.st_gid);
  }
  chmod(a.target_dir.c_str(), 0700);
  // Before the recovery settings change postgresql.auto.conf (a manifest file).
  bool verified = false;
  if (!a.no_verify) {
    core::Status v = pg::verify_base_backup(a.target_dir, base, a.bindir);
    if (v.code() == core::Code::kUnsupported) {
      if (!ctx.quiet)
        std::cerr << "cairn: note: not verified with pg_verifybackup: " << v.message() << "\n";
    } else {
      TRY(v);
      verified = true;
    }
  }
  TRY(pg::write_recovery_config(a.target_dir, target, restore_command));
  const auto& e = base.snapshot.engine;
  if (ctx.json) {
    ctx.print_json({{"base_backup", base.id},
                    {"base_stop_lsn", e.value("stop_lsn", "")},
                    {"base_stop_time", e.value("stop_time", "")},
                    {"target_dir", a.target_dir},
                    {"files", result.files},
                    {"bytes", result.bytes},
                    {"verified", verified},
                    {"restore_command", restore_command}});
  } else if (!ctx.quiet) {
    std::cout << fmt::format(
        "restored base backup {} (ended at {} / {}) into {}: {} files, {}{}\n"
        "recovery settings written (postgresql.auto.conf, recovery.signal); start the server to "
        "replay WAL:\n"
        "  pg_ctl -D {} start\n",
        base.id.substr(0, 8), e.value("stop_lsn", "?"), e.value("stop_time", "?"), a.target_dir,
        result.files, core::format_bytes(result.bytes),
        verified ? ", verified with pg_verifybackup" : "", a.target_dir);
  }
  return {};
}

core::Status run_logical_restore(Context& ctx, const PgRestoreArgs& a) {
  ASSIGN_OR_RETURN(auto repo, ctx.open_repository(false));
  ASSIGN_OR_RETURN(auto lock, ctx.shared_lock(*repo));
  TRY(ctx.load_index(*repo));
  repo::SnapshotRef snap;
  if (!a.snapshot.empty() && a.snapshot != "latest") {
    ASSIGN_OR_RETURN(snap, repo->find_snapshot(a.snapshot, a.service));
  } else {
    ASSIGN_OR_RETURN(auto all, repo->list_snapshots());
    const repo::SnapshotRef* best = nullptr;
    for (const auto& s : all)
      if (s.snapshot.service == a.service && s.snapshot.engine.value("mode", "") == "logical")
        best = &s;
    if (!best)
      return core::not_found("service '" + a.service + "' has no logical PostgreSQL backup");
    snap = *best;
  }
  pg::LogicalRestoreOptions lo;
  lo.dsn = a.dsn;
  lo.bindir = a.bindir;
  lo.database = a.database;
  lo.create = a.create;
  lo.clean = a.clean;
  lo.globals = a.globals;
  lo.jobs = a.jobs;
  lo.tables = a.tables;
  lo.schemas = a.schemas;
  TRY(pg::logical_restore(*repo, snap, lo));
  if (ctx.json) {
    ctx.print_json({{"snapshot", snap.id}, {"restored", a.globals ? "globals" : "database"}});
  } else if (!ctx.quiet) {
    std::cout << "restored " << (a.globals ? "globals" : "database") << " from snapshot "
              << snap.id.substr(0, 8) << "\n";
  }
  return {};
}

core::Status run_pg_check(Context& ctx, const std::string& service) {
  ASSIGN_OR_RETURN(auto repo, ctx.open_repository(false));
  ASSIGN_OR_RETURN(auto lock, ctx.shared_lock(*repo));
  ASSIGN_OR_RETURN(auto r, pg::check_archive(*repo, service));
  bool bad = !r.missing.empty() || !r.problems.empty();
  if (ctx.json) {
    nlohmann::json files = nlohmann::json::array();
    for (const auto& [name, object] : r.files)
      files.push_back({{"name", name}, {"object", object}});
    ctx.print_json({{"service", service},
                    {"segments", r.segments},
                    {"history_files", r.history_files},
                    {"base_backups", r.base_backups},
                    {"newest_segment", r.newest_segment},
                    {"newest_time", r.newest_time},
                    {"newest_age_seconds", r.newest_age_s},
                    {"oldest_needed", r.oldest_needed},
                    {"missing", r.missing},
                    {"problems", r.problems},
                    {"files", files},
                    {"ok", !bad}});
  } else if (!ctx.quiet || bad) {
    std::cout << fmt::format(
        "service {}: {} base backup(s), {} WAL segment(s), {} history file(s)\n", service,
        r.base_backups, r.segments, r.history_files);
    if (!r.newest_segment.empty())
      std::cout << fmt::format("  newest segment {} archived {} ({} ago): the recovery point\n",
                               r.newest_segment, r.newest_time,
                               core::format_duration(r.newest_age_s));
    if (!r.oldest_needed.empty())
      std::cout << "  oldest segment needed: " << r.oldest_needed << "\n";
    for (const auto& m : r.missing) std::cout << "  MISSING " << m << "\n";
    for (const auto& p : r.problems) std::cout << "  PROBLEM " << p << "\n";
    std::cout << (bad ? "archive has gaps or problems: recovery cannot pass them\n"
                      : "archive is continuous\n");
  }
  if (bad) ctx.exit_code = kExitFailure;
  return {};
}

core::Status run_expire_wal(Context& ctx, const std::string& service, bool dry_run) {
  ASSIGN_OR_RETURN(auto repo, ctx.open_repository(false));
  TRY(repo->require_full_key("expire archived WAL"));
  ASSIGN_OR_RETURN(auto lock, ctx.shared_lock(*repo));
  ASSIGN_OR_RETURN(auto removed, pg::expire_wal(*repo, service, dry_run));
  if (ctx.json) {
    ctx.print_json({{"service", service}, {"dry_run", dry_run}, {"removed", removed}});
  } else if (!ctx.quiet) {
    std::cout << fmt::format("{} {} archived WAL file(s) older than the oldest base backup{}\n",
                             dry_run ? "would remove" : "removed", removed.size(),
                             dry_run ? "" : " (run cairn prune to free their space)");
  }
  return {};
}

}  // namespace

void add_pg(CLI::App& app, Context& ctx) {
  auto* pg_cmd =
      app.add_subcommand("pg", "PostgreSQL: logical and physical backups, point-in-time restore");
  pg_cmd->require_subcommand(1);

  auto b = std::make_shared<PgBackupArgs>();
  auto* backup =
      pg_cmd->add_subcommand("backup", "back up a PostgreSQL server (pg_dump or a base backup)");
  backup->add_option("--dsn", b->dsn,
                     "libpq connection string (password from PGPASSWORD/.pgpass, never here)");
  backup->add_option("--mode", b->mode, "logical (pg_dump -Fc) or physical (base backup for PITR)")
      ->check(CLI::IsMember({"logical", "physical"}));
  backup->add_option("--service", b->service, "service the backup belongs to");
  backup
      ->add_option("--database", b->databases, "logical: database(s) to dump (default: the DSN's)")
      ->allow_extra_args(false);
  backup->add_flag("--no-globals", b->no_globals,
                   "logical: skip roles and tablespaces (pg_dumpall -g)");
  backup->add_flag("--spread-checkpoint", b->spread_checkpoint,
                   "physical: wait for a spread checkpoint instead of a fast one");
  backup
      ->add_option("--source", b->source,
                   "physical: datadir (read the data directory on this host), stream "
                   "(pg_basebackup), or auto (datadir when readable here)")
      ->check(CLI::IsMember({"auto", "datadir", "stream"}));
  backup->add_option("--bindir", b->bindir,
                     "folder of pg_dump/pg_basebackup (default: the server's version)");
  backup->add_option("--host", b->host, "host name to record");
  backup->add_option("--tag", b->tags, "tag(s) for the snapshot")->allow_extra_args(false);
  backup->callback([&ctx, b] { ctx.run([&] { return run_pg_backup(ctx, *b); }); });

  auto check_service = std::make_shared<std::string>();
  auto* check =
      pg_cmd->add_subcommand("check", "WAL archive continuity and recovery point of a service");
  check->add_option("--service", *check_service, "service to check")->required();
  check->callback(
      [&ctx, check_service] { ctx.run([&]() -> core::Status {
        TRY(ctx.apply_service_policy(*check_service, false));
        return run_pg_check(ctx, *check_service);
      }); });

  auto expire_service = std::make_shared<std::string>();
  auto expire_dry = std::make_shared<bool>(false);
  auto* expire =
      pg_cmd->add_subcommand("expire-wal", "remove archived WAL older than the oldest base backup");
  expire->add_option("--service", *expire_service, "service whose WAL to expire")->required();
  expire->add_flag("--dry-run", *expire_dry, "only list what would be removed");
  expire->callback([&ctx, expire_service, expire_dry] {
    ctx.run([&] { return run_expire_wal(ctx, *expire_service, *expire_dry); });
  });

  auto r = std::make_shared<PgRestoreArgs>();
  auto* restore = pg_cmd->add_subcommand("restore",
                                         "physical: restore a base backup + recovery settings into "
                                         "--target-dir; logical: pg_restore into --dsn");
  restore->add_option("--service", r->service, "service to restore")->required();
  restore->add_option("--snapshot", r->snapshot,
                      "snapshot id (default: chosen for the target / the latest)");
  restore->add_option("--target-dir", r->target_dir, "physical: new data directory");
  restore->add_option("--to-time", r->to_time, "physical: recover to this time (RFC 3339)");
  restore->add_option("--to-lsn", r->to_lsn, "physical: recover to this LSN");
  restore->add_option("--to-xid", r->to_xid, "physical: recover to this transaction id");
  restore->add_option("--to-name", r->to_name,
                      "physical: recover to this restore point (pg_create_restore_point)");
  restore->add_flag("--to-immediate", r->to_immediate,
                    "physical: stop as soon as the base backup is consistent");
  restore
      ->add_option("--target-action", r->action,
                   "physical: promote (default), pause or shutdown at the target")
      ->check(CLI::IsMember({"promote", "pause", "shutdown"}));
  restore->add_option("--target-timeline", r->timeline,
                      "physical: latest (default), current or a number");
  restore->add_option("--restore-command", r->restore_command,
                      "physical: restore_command to write instead of cairn's");
  restore->add_flag("--no-verify", r->no_verify,
                    "physical: skip pg_verifybackup against the backup manifest");
  restore->add_option("--dsn", r->dsn, "logical: target server (connection string)");
  restore->add_option("--database", r->database, "logical: which database of the snapshot");
  restore->add_flag("--create", r->create,
                    "logical: create the database (connect --dsn to another one)");
  restore->add_flag("--clean", r->clean, "logical: drop objects before recreating them");
  restore->add_flag("--globals", r->globals,
                    "logical: restore roles and tablespaces (globals.sql) instead");
  restore->add_option("--jobs", r->jobs,
                      "logical: parallel pg_restore jobs (stages the dump in /tmp)");
  restore->add_option("--table", r->tables, "logical: only this table (repeatable)")
      ->allow_extra_args(false);
  restore->add_option("--schema", r->schemas, "logical: only this schema (repeatable)")
      ->allow_extra_args(false);
  restore->add_option("--bindir", r->bindir,
                      "folder of pg_restore/psql (default: the server's version)");
  restore->callback([&ctx, r] {
    ctx.run([&]() -> core::Status {
      if (!r->target_dir.empty() && !r->dsn.empty())
        return core::invalid_argument("give --target-dir (physical) or --dsn (logical), not both");
      // The service's repository and key from the policy file, when there is one.
      TRY(ctx.apply_service_policy(r->service, false));
      if (!r->target_dir.empty()) return run_physical_restore(ctx, *r);
      if (!r->dsn.empty()) return run_logical_restore(ctx, *r);
      return core::invalid_argument(
          "give --target-dir DIR (physical, point in time) or --dsn DSN (logical)");
    });
  });
}

}  // namespace cairn::cli
