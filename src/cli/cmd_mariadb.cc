// cairn mariadb backup|binlog-sync|restore: the MariaDB engine
// (docs/engines/mariadb.md).
#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <iostream>
#include <thread>

#include "cli/context.h"
#include "engines/mariadb/mariadb.h"
#include "policy/duration.h"
#include "repo/lock.h"

namespace cairn::cli {

namespace mdb = engines::mariadb;

namespace {

// Where a server is: flags, else the service's policy.
struct ConnArgs {
  std::string socket, host, user, password_file;
  int port = 0;
  bool given() const { return !socket.empty() || !host.empty() || port > 0; }
};

void add_conn_flags(CLI::App* cmd, ConnArgs& c, const std::string& whose) {
  cmd->add_option("--socket", c.socket, whose + " server's socket");
  cmd->add_option("--host", c.host, whose + " server's host (TCP)");
  cmd->add_option("--port", c.port, whose + " server's port")->check(CLI::Range(1, 65535));
  cmd->add_option("--user", c.user, "user to connect as (default: the client's default)");
  cmd->add_option("--password-file", c.password_file,
                  "file holding the password (never on the command line)");
}

core::Result<mdb::Connection> from_flags(const ConnArgs& a) {
  mdb::Connection c;
  c.socket = a.socket;
  c.host = a.host;
  c.port = a.port;
  c.user = a.user;
  if (!a.password_file.empty()) {
    std::ifstream in(a.password_file);
    if (!in) return core::errno_status(errno, "--password-file " + a.password_file);
    std::getline(in, c.password);
  }
  return c;
}

// The service of the policy file, when one is configured and names it; its
// repository becomes this command's (unless --repo).
core::Result<std::optional<policy::Service>> policy_service(Context& ctx, const std::string& name) {
  bool configured =
      !ctx.config.empty() || getenv("CAIRN_CONFIG") || access("cairn.yaml", R_OK) == 0;
  if (!configured) return std::optional<policy::Service>();
  ASSIGN_OR_RETURN(auto catalog, ctx.load_policy());
  const policy::Service* s = catalog.find(name);
  if (!s) return std::optional<policy::Service>();
  TRY(ctx.use_service_repository(*s));
  return std::optional<policy::Service>(*s);
}

// The source server of a service: flags win, else its mariadb engine.
core::Result<mdb::Connection> source_connection(const ConnArgs& flags,
                                                const std::optional<policy::Service>& svc,
                                                const std::string& service) {
  if (flags.given()) return from_flags(flags);
  if (svc && svc->engine.type == "mariadb") {
    auto c = mdb::connection_for(svc->engine);
    if (!c.ok())
      return core::Status(c.status().code(), "service " + service + ": " + c.status().message());
    return c;
  }
  return core::invalid_argument(
      "which server? give --socket or --host/--port, or a policy file whose service '" + service +
      "' has engine: { type: mariadb, ... }");
}

struct BackupArgs {
  std::string service, mode, record_host;
  ConnArgs conn;
  std::vector<std::string> databases, tags;
  bool no_users = false;
  size_t parallel = 0;  // 0: the policy's, else 1
};

core::Status run_backup(Context& ctx, const BackupArgs& a) {
  ASSIGN_OR_RETURN(auto svc, policy_service(ctx, a.service));
  ASSIGN_OR_RETURN(mdb::Connection conn, source_connection(a.conn, svc, a.service));
  std::string mode = a.mode;
  std::vector<std::string> databases = a.databases;
  bool require_binlog = false;
  size_t parallel = a.parallel;
  if (svc && svc->engine.type == "mariadb") {
    if (mode.empty()) mode = svc->engine.mode;
    if (parallel == 0) parallel = svc->engine.parallel;
    if (databases.empty()) databases = svc->engine.databases;
    require_binlog = svc->engine.binlog_archiving;
  }
  if (mode.empty()) mode = "logical";
  if (mode == "physical") ctx.default_compression = kPhysicalCompression;
  ASSIGN_OR_RETURN(auto repo, ctx.open_repository(false));
  ASSIGN_OR_RETURN(auto lock, ctx.lock(*repo, repo::LockMode::kShared));
  TRY(ctx.load_index(*repo));
  archive::BackupOptions opt;
  opt.service = a.service;
  opt.host = a.record_host.empty() ? archive::local_hostname() : a.record_host;
  opt.tags = a.tags;
  if (svc)
    for (const auto& t : svc->tags) opt.tags.push_back(t);
  archive::BackupProgress progress;
  ProgressLine line(ctx.show_progress(), [&](double el) {
    return fmt::format("[{}] {} {}", core::format_duration(el), a.service,
                       core::format_bytes(progress.bytes_done));
  });
  core::Result<archive::BackupResult> r = core::invalid_argument("unset");
  if (mode == "physical") {
    if (!databases.empty())
      return core::invalid_argument("--database applies to logical backups only");
    if (a.parallel > 1) return core::invalid_argument("--parallel applies to logical backups only");
    r = mdb::physical_backup(*repo, {conn, require_binlog}, opt, &progress);
  } else {
    mdb::LogicalOptions lo{conn, databases, !a.no_users, require_binlog,
                           std::max<size_t>(parallel, 1)};
    r = mdb::logical_backup(*repo, lo, opt, &progress);
  }
  line.stop();
  if (!r.ok())
    return core::Status(r.status().code(), "service " + a.service + ": " + r.status().message() +
                                               "\nno snapshot written");
  const auto& s = r->snapshot;
  if (ctx.json) {
    ctx.print_json({{"snapshot_id", r->snapshot_id},
                    {"engine", s.engine},
                    {"summary", s.to_json()["summary"]}});
  } else if (!ctx.quiet) {
    std::cout << fmt::format("snapshot {} saved ({} {} backup of MariaDB {})\n",
                             r->snapshot_id.substr(0, 8), a.service, mode,
                             s.engine.value("server_version", "?"));
    if (s.engine.contains("binlog_file"))
      std::cout << fmt::format("  binlog position {}:{}\n", s.engine.value("binlog_file", ""),
                               s.engine.value("binlog_position", uint64_t{0}));
    std::cout << fmt::format(
        "  {}; added {} stored in {}\n", core::format_bytes(s.summary.total_bytes),
        core::format_bytes(s.summary.data_added), core::format_duration(s.summary.duration_s));
  }
  return {};
}

struct SyncArgs {
  std::string service, loop, binlog_dir;
  ConnArgs conn;
  bool flush = false, remote = false;
};

core::Status sync_once(Context& ctx, repo::Repository& repo, const SyncArgs& a,
                       const mdb::Connection& conn) {
  ASSIGN_OR_RETURN(auto lock, ctx.shared_lock(repo));
  mdb::BinlogSyncOptions o{conn, a.flush, a.binlog_dir, a.remote};
  auto r = mdb::sync_binlogs(repo, a.service, o);
  if (!r.ok())
    return core::Status(r.status().code(), "service " + a.service + ": " + r.status().message());
  if (ctx.json) {
    ctx.print_json({{"service", a.service},
                    {"pushed", r->pushed},
                    {"already_archived", r->already},
                    {"current", r->current},
                    {"newest_archived", r->newest_archived},
                    {"missing", r->missing},
                    {"ok", r->missing.empty()}});
  } else if (!ctx.quiet || !r->missing.empty()) {
    std::cout << fmt::format(
        "service {}: archived {} binlog(s){}; {} archived before; {} is open\n", a.service,
        r->pushed.size(),
        r->pushed.empty() ? "" : " (" + r->pushed.front() + " .. " + r->pushed.back() + ")",
        r->already, r->current);
  }
  if (!r->missing.empty()) {
    std::string list;
    for (const auto& m : r->missing) list += (list.empty() ? "" : ", ") + m;
    return core::io_error("service " + a.service + ": the binlog archive has a gap: " + list +
                          " never reached it (purged on the server before it was archived?); "
                          "point-in-time restores cannot pass it: take a new base backup");
  }
  return {};
}

core::Status run_sync(Context& ctx, const SyncArgs& a) {
  ASSIGN_OR_RETURN(auto svc, policy_service(ctx, a.service));
  ASSIGN_OR_RETURN(mdb::Connection conn, source_connection(a.conn, svc, a.service));
  std::chrono::seconds interval{0};
  if (!a.loop.empty()) {
    auto d = policy::parse_duration(a.loop);
    if (!d.ok() || d->count() <= 0)
      return core::invalid_argument("--loop '" + a.loop + "' is not a duration such as 1m");
    interval = *d;
  }
  ASSIGN_OR_RETURN(auto repo, ctx.open_repository(false));
  if (interval.count() == 0) return sync_once(ctx, *repo, a, conn);
  for (;;) {  // until a signal ends the process
    if (auto st = sync_once(ctx, *repo, a, conn); !st.ok())
      std::cerr << "cairn: " << st.message() << std::endl;
    std::this_thread::sleep_for(interval);
  }
}

struct RestoreArgs {
  std::string service, snapshot, to_time, to_position, target_dir;
  ConnArgs conn;
  bool base_only = false, users = false, keep_running = false;
};

core::Result<mdb::RecoveryTarget> target_of(const RestoreArgs& a) {
  int given = !a.to_time.empty() + !a.to_position.empty() + a.base_only;
  if (given > 1)
    return core::invalid_argument("give at most one of --to-time, --to-position, --base-only");
  mdb::RecoveryTarget t;
  t.text = "the latest archived binlog";
  if (!a.to_time.empty()) return mdb::parse_time_target(a.to_time);
  if (!a.to_position.empty()) {
    auto p = mdb::parse_position(a.to_position);
    if (!p)
      return core::invalid_argument("--to-position '" + a.to_position +
                                    "' is not FILE:POS (e.g. binlog.000042:1234)");
    t.kind = mdb::RecoveryTarget::Kind::kPosition;
    t.position = *p;
    t.text = a.to_position;
  }
  if (a.base_only) t.kind = mdb::RecoveryTarget::Kind::kBaseOnly;
  return t;
}

void print_restore(Context& ctx, const repo::SnapshotRef& base,
                   const std::optional<mdb::ReplayReport>& replay, const std::string& into) {
  if (ctx.json) {
    nlohmann::json j = {
        {"base", base.id}, {"base_mode", base.snapshot.engine.value("mode", "")}, {"target", into}};
    if (replay)
      j["replay"] = {{"files", replay->files},
                     {"from", fmt::format("{}:{}", replay->from.file, replay->from.position)},
                     {"until", replay->until}};
    ctx.print_json(j);
  } else if (!ctx.quiet) {
    std::cout << fmt::format("restored base backup {} ({}, binlog {}:{}) into {}\n",
                             base.id.substr(0, 8), base.snapshot.engine.value("mode", "?"),
                             base.snapshot.engine.value("binlog_file", "-"),
                             base.snapshot.engine.value("binlog_position", uint64_t{0}), into);
    if (replay)
      std::cout << fmt::format("replayed {} binlog file(s) from {}:{} up to {}\n",
                               replay->files.size(), replay->from.file, replay->from.position,
                               replay->until);
  }
}

core::Status run_restore(Context& ctx, const RestoreArgs& a) {
  ASSIGN_OR_RETURN(mdb::RecoveryTarget target, target_of(a));
  if (a.target_dir.empty() == !a.conn.given())
    return core::invalid_argument(
        "give the target: --socket/--host of a running server (logical base), or --target-dir DIR "
        "(physical base)");
  TRY(policy_service(ctx, a.service).status());
  ASSIGN_OR_RETURN(auto repo, ctx.open_repository(false));
  ASSIGN_OR_RETURN(auto lock, ctx.shared_lock(*repo));
  TRY(ctx.load_index(*repo));
  if (!a.target_dir.empty()) {
    // Physical: a prepared data directory; replay runs on a temporary server on it.
    repo::SnapshotRef base;
    if (!a.snapshot.empty()) {
      ASSIGN_OR_RETURN(base, repo->find_snapshot(a.snapshot, a.service));
    } else {
      ASSIGN_OR_RETURN(auto all, repo->list_snapshots());
      ASSIGN_OR_RETURN(base, mdb::choose_base(all, a.service, "physical", target));
    }
    ASSIGN_OR_RETURN(auto pos, mdb::restore_physical(*repo, base, a.target_dir));
    std::optional<mdb::ReplayReport> replay;
    if (target.kind != mdb::RecoveryTarget::Kind::kBaseOnly && pos) {
      mdb::ScratchMariadb::Options so;
      so.datadir = a.target_dir;
      ASSIGN_OR_RETURN(auto server, mdb::ScratchMariadb::start(so));
      ASSIGN_OR_RETURN(auto r,
                       mdb::replay_binlogs(*repo, a.service, *pos, target, server->connection()));
      replay = std::move(r);
      TRY(server->stop());
    }
    print_restore(ctx, base, replay, a.target_dir);
    if (!ctx.quiet && !ctx.json)
      std::cout << "the data directory is ready: start mariadbd --datadir=" << a.target_dir
                << " (or copy it into place: mariadb-backup --copy-back semantics)\n";
    return {};
  }
  ASSIGN_OR_RETURN(mdb::Connection conn, from_flags(a.conn));
  ASSIGN_OR_RETURN(auto r,
                   mdb::restore_point_in_time(*repo, a.service, target, conn, a.users, a.snapshot));
  print_restore(ctx, r.base, r.replay, conn.describe());
  return {};
}

}  // namespace

void add_mariadb(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand("mariadb",
                                 "MariaDB: logical and physical backups, binlog archiving, PITR");
  cmd->require_subcommand(1);

  auto b = std::make_shared<BackupArgs>();
  auto* backup =
      cmd->add_subcommand("backup", "back up a MariaDB server (mariadb-dump or mariadb-backup)");
  backup->add_option("--service", b->service, "service the backup belongs to")->required();
  backup->add_option("--mode", b->mode, "logical (default) or physical")
      ->check(CLI::IsMember({"logical", "physical"}));
  add_conn_flags(backup, b->conn, "the");
  backup
      ->add_option("--database", b->databases,
                   "logical: database(s) to dump (default: all but the system ones)")
      ->allow_extra_args(false);
  backup->add_flag("--no-users", b->no_users, "logical: skip users.sql (CREATE USER / GRANT)");
  backup
      ->add_option(
          "--parallel", b->parallel,
          "logical: N dump streams over disjoint table sets, held at one consistent "
          "point (needs the binlog and RELOAD; default: the policy's engine.parallel, else 1)")
      ->check(CLI::Range(1, 64));
  backup->add_option("--record-host", b->record_host, "host name to record in the snapshot");
  backup->add_option("--tag", b->tags, "tag(s) for the snapshot")->allow_extra_args(false);
  backup->callback([&ctx, b] { ctx.run([&] { return run_backup(ctx, *b); }); });

  auto s = std::make_shared<SyncArgs>();
  auto* sync =
      cmd->add_subcommand("binlog-sync", "archive the server's closed binlog files (for PITR)");
  sync->add_option("--service", s->service, "service whose binlogs these are")->required();
  add_conn_flags(sync, s->conn, "the");
  sync->add_flag("--flush", s->flush,
                 "FLUSH BINARY LOGS first, so the current file is archived too");
  sync->add_option("--loop", s->loop, "repeat every INTERVAL (e.g. 1m) until stopped");
  sync->add_option("--binlog-dir", s->binlog_dir,
                   "read binlog files here (default: @@log_bin_basename's folder)");
  sync->add_flag(
      "--remote", s->remote,
      "always fetch files from the server (mariadb-binlog --read-from-remote-server --raw)");
  sync->callback([&ctx, s] { ctx.run([&] { return run_sync(ctx, *s); }); });

  auto r = std::make_shared<RestoreArgs>();
  auto* restore = cmd->add_subcommand(
      "restore",
      "restore a base backup into a server (or a data directory) and replay binlogs to a point");
  restore->add_option("--service", r->service, "service to restore")->required();
  restore->add_option("--snapshot", r->snapshot,
                      "base backup (default: the newest before the target)");
  restore->add_option("--to-time", r->to_time,
                      "replay up to this time (RFC 3339; whole seconds, inclusive)");
  restore->add_option("--to-position", r->to_position,
                      "replay up to FILE:POS (the event at POS is not applied)");
  restore->add_flag("--base-only", r->base_only,
                    "restore the base backup without replaying binlogs");
  restore->add_flag("--with-users", r->users,
                    "logical: also run users.sql (CREATE USER IF NOT EXISTS, GRANT)");
  restore->add_option("--target-dir", r->target_dir,
                      "physical: new data directory to extract and prepare");
  add_conn_flags(restore, r->conn, "the target");
  restore->callback([&ctx, r] { ctx.run([&] { return run_restore(ctx, *r); }); });
}

}  // namespace cairn::cli
