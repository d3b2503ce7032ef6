// cairn redis restore: the Redis engine's restore (docs/engines/redis.md).
// Backups run from the policy file (`cairn backup --service S`).
#include <fmt/format.h>

#include <iostream>

#include "cli/context.h"
#include "core/bytes.h"
#include "engines/engine_snapshot.h"
#include "engines/redis/redis.h"

namespace cairn::cli {

namespace {

struct RedisRestoreArgs {
  std::string service, snapshot, target_dir;
  bool force = false;
};

core::Status run_redis_restore(Context& ctx, const RedisRestoreArgs& a) {
  TRY(ctx.apply_service_policy(a.service, false));
  ASSIGN_OR_RETURN(auto repo, ctx.open_repository(false));
  ASSIGN_OR_RETURN(auto lock, ctx.shared_lock(*repo));
  TRY(ctx.load_index(*repo));
  ASSIGN_OR_RETURN(repo::SnapshotRef snap,
                   engines::find_engine_snapshot(*repo, a.service, "redis", a.snapshot));
  engines::redis::RestoreOptions ro;
  ro.target_dir = a.target_dir;
  ro.force = a.force;
  ASSIGN_OR_RETURN(auto r, engines::redis::restore(*repo, snap, ro));
  const auto& e = snap.snapshot.engine;
  if (ctx.json) {
    ctx.print_json({{"snapshot", snap.id},
                    {"path", r.path},
                    {"bytes", r.bytes},
                    {"check", r.check},
                    {"redis_version", e.value("redis_version", "")},
                    {"aof_present", r.aof_present}});
  } else if (!ctx.quiet) {
    std::cout << fmt::format(
        "restored snapshot {} (Redis {}, {} keys) to {}: {}\n"
        "checked with redis-check-rdb: {}\n"
        "start Redis with dir {} and dbfilename dump.rdb (appendonly no) to load it\n",
        snap.id.substr(0, 8), e.value("redis_version", "?"), e.value("keys", uint64_t{0}), r.path,
        core::format_bytes(r.bytes), r.check, a.target_dir);
  }
  if (r.aof_present)
    std::cerr
        << "cairn: warning: " << a.target_dir
        << " holds AOF files: with appendonly yes Redis loads those instead of dump.rdb; move them "
           "away first\n";
  return {};
}

}  // namespace

void add_redis(CLI::App& app, Context& ctx) {
  auto* cmd =
      app.add_subcommand("redis", "Redis: restore an RDB backup (backups: cairn backup --service)");
  cmd->require_subcommand(1);
  auto a = std::make_shared<RedisRestoreArgs>();
  auto* restore = cmd->add_subcommand(
      "restore", "write a snapshot's dump.rdb into --target-dir (checked with redis-check-rdb)");
  restore->add_option("--service", a->service, "service to restore")->required();
  restore->add_option("--snapshot", a->snapshot,
                      "snapshot id or latest (default: the newest Redis backup)");
  restore
      ->add_option("--target-dir", a->target_dir,
                   "the Redis dir to write dump.rdb into (created if missing)")
      ->required();
  restore->add_flag("--force", a->force, "replace an existing dump.rdb there");
  restore->callback([&ctx, a] { ctx.run([&] { return run_redis_restore(ctx, *a); }); });
}

}  // namespace cairn::cli
