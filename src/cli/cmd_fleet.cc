// cairn fleet restore: every service of a fleet back to one instant T
// (docs/drills.md, "Fleet recovery point").
#include <fmt/format.h>

#include <filesystem>
#include <iostream>

#include "cli/context.h"
#include "engines/point_restore.h"
#include "repo/timefmt.h"

namespace cairn::cli {

core::Result<std::vector<const policy::Service*>> services_named(
    const policy::Catalog& catalog, const std::vector<std::string>& names) {
  std::vector<const policy::Service*> out;
  if (names.empty()) {
    for (const auto& s : catalog.services) out.push_back(&s);
    return out;
  }
  for (const auto& n : names) {
    ASSIGN_OR_RETURN(const policy::Service* s, find_service(catalog, n));
    out.push_back(s);
  }
  return out;
}

core::Result<std::string> fleet_recovery_point(
    Context& ctx, const std::vector<const policy::Service*>& services) {
  std::optional<repo::Time> point;
  for (const auto* s : services) {
    if (!s->engine.postgres_wal()) continue;
    TRY(ctx.use_service_repository(*s));
    ASSIGN_OR_RETURN(auto repo, ctx.open_repository(false));
    ASSIGN_OR_RETURN(auto lock, ctx.shared_lock(*repo));
    ASSIGN_OR_RETURN(std::string reaches, engines::archive_reaches(*repo, *s));
    auto t = repo::parse_time(reaches);
    if (!t)
      return core::not_found("service " + s->name +
                             " has no archived WAL: no fleet recovery point");
    if (!point || t->unix_ns < point->unix_ns) point = t;
  }
  return repo::format_time(point ? *point : repo::now_time());
}

namespace {

struct FleetArgs {
  std::vector<std::string> services;
  std::string to_time, target_root;
};

nlohmann::json to_json(const engines::PointRestore& r) {
  return {{"service", r.service},
          {"engine", r.engine},
          {"method", r.method},
          {"snapshot_id", r.snapshot_id},
          {"snapshot_time", r.snapshot_time},
          {"restored_to", r.restored_to},
          {"gap_seconds", r.gap_s},
          {"target", r.target},
          {"next_step", r.next_step},
          {"files", r.files},
          {"bytes", r.bytes}};
}

core::Status run_fleet_restore(Context& ctx, const FleetArgs& a) {
  ASSIGN_OR_RETURN(auto catalog, ctx.load_policy());
  ASSIGN_OR_RETURN(auto services, services_named(catalog, a.services));
  std::string point = a.to_time;
  if (point.empty()) {
    ASSIGN_OR_RETURN(point, fleet_recovery_point(ctx, services));
  } else if (auto t = repo::parse_time(point)) {
    point = repo::format_time(*t);
  } else {
    return core::invalid_argument("--to-time '" + a.to_time +
                                  "' is not a time (RFC 3339, e.g. 2026-11-25T10:31:00Z)");
  }
  std::string root = std::filesystem::absolute(a.target_root).string();
  nlohmann::json results = nlohmann::json::array();
  size_t failed = 0;
  if (!ctx.json && !ctx.quiet) std::cout << fmt::format("fleet recovery point {}\n", point);
  for (const auto* s : services) {
    auto one = [&]() -> core::Result<engines::PointRestore> {
      TRY(ctx.use_service_repository(*s));
      ASSIGN_OR_RETURN(auto repo, ctx.open_repository(false));
      ASSIGN_OR_RETURN(auto lock, ctx.shared_lock(*repo));
      TRY(ctx.load_index(*repo));
      return engines::restore_at(*repo, *s, point, root + "/" + s->name);
    };
    auto r = one();
    if (!r.ok()) {
      failed++;
      results.push_back(
          {{"service", s->name}, {"engine", s->engine.type}, {"error", r.status().message()}});
      if (!ctx.json) std::cerr << fmt::format("cairn: {}: {}\n", s->name, r.status().message());
      continue;
    }
    results.push_back(to_json(*r));
    if (!ctx.json && !ctx.quiet)
      std::cout << fmt::format("  {:<16} {:<8} {:<8} restored to {} (gap {}) in {}\n    next: {}\n",
                               s->name, r->engine, r->method, r->restored_to,
                               core::format_duration(r->gap_s), r->target, r->next_step);
  }
  if (ctx.json) ctx.print_json({{"point", point}, {"services", results}});
  if (failed) {
    ctx.exit_code = kExitFailure;
    if (!ctx.json)
      std::cerr << fmt::format("cairn: {} of {} services could not be restored\n", failed,
                               services.size());
  }
  return {};
}

}  // namespace

void add_fleet(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand("fleet", "operations on several services at once");
  cmd->require_subcommand(1);
  auto a = std::make_shared<FleetArgs>();
  auto* restore = cmd->add_subcommand("restore",
                                      "restore services to one instant: PITR where WAL is "
                                      "archived, else the newest snapshot before it");
  restore->add_option("--services", a->services, "services of the policy file (default: all)")
      ->delimiter(',');
  restore->add_option("--to-time", a->to_time,
                      "the instant (RFC 3339); default: the newest one every WAL archive reaches");
  restore->add_option("--target-root", a->target_root, "folder that gets one subfolder per service")
      ->required();
  restore->callback([&ctx, a] { ctx.run([&] { return run_fleet_restore(ctx, *a); }); });
}

}  // namespace cairn::cli
