// cairn drill run|list|show: restore drills (docs/drills.md).
#include <fmt/format.h>

#include <filesystem>
#include <iostream>

#include "cli/context.h"
#include "daemon/state_store.h"
#include "drill/drill.h"
#include "repo/timefmt.h"

namespace cairn::cli {

namespace {

struct DrillArgs {
  std::string service, point = "latest", scratch = "/tmp", format = "text";
  bool fleet = false;
  std::vector<std::string> services;
  int64_t run_id = 0;
  int limit = 20;
};

// The daemon's state database, when its folder exists (drills run by hand
// on a machine without a daemon still print their report).
core::Result<std::optional<daemon::StateStore>> open_state(const policy::Catalog& catalog, bool create) {
  std::filesystem::path p(catalog.daemon.state);
  if (!create && !std::filesystem::exists(p)) return std::optional<daemon::StateStore>();
  if (!std::filesystem::is_directory(p.parent_path())) return std::optional<daemon::StateStore>();
  ASSIGN_OR_RETURN(auto store, daemon::StateStore::open(catalog.daemon.state));
  return std::optional<daemon::StateStore>(std::move(store));
}

void print_report(Context& ctx, const drill::DrillReport& r, const std::string& format) {
  if (ctx.json) {
    ctx.print_json(r.to_json());
  } else if (format == "md") {
    std::cout << r.markdown();
  } else if (format == "html") {
    std::cout << r.html();
  } else {
    std::cout << fmt::format("drill of {}: {}{}\n", r.service, r.passed ? "PASSED" : "FAILED",
                             r.passed ? "" : " — " + r.failure);
    if (!r.snapshot_id.empty())
      std::cout << fmt::format("  snapshot {} of {}; restored data up to {} (RPO {:.0f}s)\n",
                               r.snapshot_id.substr(0, 8), r.snapshot_time, r.restored_to, r.rpo_s);
    std::cout << fmt::format("  RTO {:.2f}s (objective {:.0f}s); restored {} files, {} bytes\n", r.rto_s,
                             r.rto_objective_s, r.files_restored, r.bytes_restored);
    for (const auto& p : r.phases) std::cout << fmt::format("  phase {:<8} {:.3f}s\n", p.name, p.seconds);
    for (const auto& c : r.checks)
      std::cout << fmt::format("  check {} {}{}\n", c.passed ? "ok  " : "FAIL", c.check,
                               c.passed || c.output.empty() ? "" : "\n    " + c.output);
  }
}

// Runs one drill of `svc` and records its run and report in the state store.
core::Result<drill::DrillReport> drill_one(Context& ctx, std::optional<daemon::StateStore>& state,
                                           const policy::Service& svc, const std::string& point,
                                           const std::string& scratch) {
  TRY(ctx.use_service_repository(svc));
  auto started = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
  std::optional<int64_t> run_id;
  if (state) {
    auto id = state->begin_run(svc.name, daemon::RunKind::kDrill, started);
    if (id.ok()) run_id = *id;
  }
  drill::DrillReport report;
  {
    ASSIGN_OR_RETURN(auto repo, ctx.open_repository(false));
    ASSIGN_OR_RETURN(auto lock, ctx.shared_lock(*repo));
    TRY(ctx.load_index(*repo));
    report = drill::run_drill(*repo, svc, {point, scratch});
  }
  if (state && run_id) {
    daemon::RunOutcome out;
    out.result = report.passed ? daemon::RunResult::kSuccess : daemon::RunResult::kFailure;
    out.finished_at = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
    out.duration_s = report.rto_s;
    out.total_size = report.bytes_restored;
    out.snapshot_id = report.snapshot_id;
    out.error = report.failure;
    TRY(state->finish_run(*run_id, out));
    TRY(state->put_drill_report(*run_id, svc.name, report.passed, report.to_json().dump()));
  }
  return report;
}

core::Status run_drill(Context& ctx, const DrillArgs& a) {
  ASSIGN_OR_RETURN(auto catalog, ctx.load_policy());
  ASSIGN_OR_RETURN(const policy::Service* svc, find_service(catalog, a.service));
  ASSIGN_OR_RETURN(auto state, open_state(catalog, true));
  ASSIGN_OR_RETURN(auto report, drill_one(ctx, state, *svc, a.point, a.scratch));
  print_report(ctx, report, a.format);
  if (!report.passed) ctx.exit_code = kExitFailure;
  return {};
}

// Every service drilled to one instant: the fleet recovery point, proven.
core::Status run_fleet_drill(Context& ctx, const DrillArgs& a) {
  ASSIGN_OR_RETURN(auto catalog, ctx.load_policy());
  ASSIGN_OR_RETURN(auto services, services_named(catalog, a.services));
  std::string point;
  if (a.point == "latest" || a.point == "random") {
    ASSIGN_OR_RETURN(point, fleet_recovery_point(ctx, services));
  } else if (auto t = repo::parse_time(a.point)) {
    point = repo::format_time(*t);
  } else {
    return core::invalid_argument("--point \"" + a.point + "\" is not latest or a time");
  }
  ASSIGN_OR_RETURN(auto state, open_state(catalog, true));
  nlohmann::json reports = nlohmann::json::array();
  size_t failed = 0;
  if (!ctx.json) std::cout << fmt::format("fleet drill to {}\n", point);
  for (const auto* svc : services) {
    auto r = drill_one(ctx, state, *svc, point, a.scratch);
    if (!r.ok()) {
      failed++;
      reports.push_back({{"service", svc->name}, {"passed", false}, {"failure", r.status().message()}});
      if (!ctx.json) std::cout << fmt::format("  {:<16} FAILED  {}\n", svc->name, r.status().message());
      continue;
    }
    failed += r->passed ? 0 : 1;
    reports.push_back(r->to_json());
    if (!ctx.json)
      std::cout << fmt::format("  {:<16} {:<7} restored to {} (gap {:.0f}s), RTO {:.1f}s{}\n", svc->name,
                               r->passed ? "passed" : "FAILED", r->restored_to.empty() ? "-" : r->restored_to,
                               r->rpo_s, r->rto_s, r->passed ? "" : " — " + r->failure);
  }
  if (ctx.json) ctx.print_json({{"point", point}, {"passed", failed == 0}, {"services", reports}});
  if (failed) ctx.exit_code = kExitFailure;
  return {};
}

core::Status run_list(Context& ctx, const DrillArgs& a) {
  ASSIGN_OR_RETURN(auto catalog, ctx.load_policy());
  if (!a.service.empty()) TRY(find_service(catalog, a.service).status());
  ASSIGN_OR_RETURN(auto state, open_state(catalog, false));
  if (!state) return core::not_found("no drill has been recorded yet (state " + catalog.daemon.state + ")");
  ASSIGN_OR_RETURN(auto records, state->drill_reports(a.service, a.limit));
  nlohmann::json out = nlohmann::json::array();
  if (!ctx.json)
    std::cout << fmt::format("{:<6} {:<16} {:<8} {:<26} {:>9} {:>9} {}\n", "ID", "SERVICE", "RESULT", "STARTED",
                             "RTO", "RPO", "SNAPSHOT");
  for (const auto& rec : records) {
    auto r = drill::DrillReport::from_json(nlohmann::json::parse(rec.report_json));
    if (ctx.json) {
      auto j = r.to_json();
      j["id"] = rec.run_id;
      out.push_back(j);
    } else {
      std::cout << fmt::format("{:<6} {:<16} {:<8} {:<26} {:>8.1f}s {:>8.0f}s {}\n", rec.run_id, r.service,
                               r.passed ? "passed" : "FAILED", r.started_at, r.rto_s, r.rpo_s,
                               r.snapshot_id.substr(0, 8));
    }
  }
  if (ctx.json) ctx.print_json(out);
  return {};
}

core::Status run_show(Context& ctx, const DrillArgs& a) {
  ASSIGN_OR_RETURN(auto catalog, ctx.load_policy());
  ASSIGN_OR_RETURN(auto state, open_state(catalog, false));
  if (!state) return core::not_found("no drill has been recorded yet (state " + catalog.daemon.state + ")");
  ASSIGN_OR_RETURN(auto records, state->drill_reports(a.service, a.run_id ? 100000 : 1));
  for (const auto& rec : records) {
    if (a.run_id && rec.run_id != a.run_id) continue;
    print_report(ctx, drill::DrillReport::from_json(nlohmann::json::parse(rec.report_json)), a.format);
    return {};
  }
  return core::not_found(a.run_id ? fmt::format("no drill with id {}", a.run_id) : "no drill recorded");
}

}  // namespace

void add_drill(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand("drill", "restore drills: restore, check, measure RTO and RPO");
  cmd->require_subcommand(1);
  auto a = std::make_shared<DrillArgs>();
  auto* run = cmd->add_subcommand("run", "restore a service's snapshot into a scratch folder and run its checks");
  run->add_option("--service", a->service, "service of the policy file");
  run->add_flag("--fleet", a->fleet, "drill several services to one instant (the fleet recovery point)");
  run->add_option("--services", a->services, "with --fleet: these services (default: all)")->delimiter(',');
  run->add_option("--point", a->point, "latest (default), random, or a time: the newest snapshot at or before it");
  run->add_option("--scratch", a->scratch, "folder for the scratch restore (default /tmp)");
  run->add_option("--format", a->format, "text, md (Markdown) or html (a self-contained page)")->check(CLI::IsMember({"text", "md", "html"}));
  run->callback([&ctx, a] {
    ctx.run([&]() -> core::Status {
      if (a->fleet == !a->service.empty()) return core::invalid_argument("give --service S or --fleet");
      return a->fleet ? run_fleet_drill(ctx, *a) : run_drill(ctx, *a);
    });
  });
  auto* list = cmd->add_subcommand("list", "recorded drills, newest first");
  list->add_option("--service", a->service, "only this service");
  list->add_option("--limit", a->limit, "at most this many (default 20)");
  list->callback([&ctx, a] { ctx.run([&] { return run_list(ctx, *a); }); });
  auto* show = cmd->add_subcommand("show", "one drill's report (default: the newest)");
  show->add_option("id", a->run_id, "drill id from `drill list`");
  show->add_option("--service", a->service, "the newest drill of this service");
  show->add_option("--format", a->format, "text, md (Markdown) or html (a self-contained page)")->check(CLI::IsMember({"text", "md", "html"}));
  show->callback([&ctx, a] { ctx.run([&] { return run_show(ctx, *a); }); });
}

}  // namespace cairn::cli
