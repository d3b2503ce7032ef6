// cairn forget: removes snapshots by id or by a GFS retention policy.
// Data is not deleted here: space is reclaimed by prune.
#include <fmt/format.h>

#include <iostream>
#include <map>

#include "cli/context.h"
#include "policy/retention.h"
#include "repo/lock.h"

namespace cairn::cli {

namespace {

struct ForgetArgs {
  std::vector<std::string> ids;
  policy::RetentionPolicy policy;
  std::string group_by = "host,service,paths";
  std::string service, host;
  bool dry_run = false;
  bool prune = false;
  std::string max_unused = "5%";
  uint64_t max_repack_size = 0;  // 0 = no limit
};

core::Status run_forget(Context& ctx, ForgetArgs& a) {
  if (a.ids.empty() && a.policy.empty() && !a.service.empty()) {
    // `forget --service S` alone applies the service's retention from the policy file.
    ASSIGN_OR_RETURN(auto catalog, ctx.load_policy());
    ASSIGN_OR_RETURN(const policy::Service* svc, find_service(catalog, a.service));
    TRY(ctx.use_service_repository(*svc));
    a.policy = svc->retention;
  } else if (!a.service.empty()) {
    // Ids with --service (DELETE /api/v1/services/S/snapshots/ID):
    // the service's repository, as for snapshots and ls.
    TRY(ctx.apply_service_policy(a.service, false));
  }
  if (a.ids.empty() && a.policy.empty())
    return core::invalid_argument("forget needs snapshot ids, at least one --keep-* option, or --service of a policy");
  if (!a.ids.empty() && !a.policy.empty())
    return core::invalid_argument("give either snapshot ids or --keep-* options, not both");
  ASSIGN_OR_RETURN(auto repo,
                   ctx.open_repository(false, a.prune ? Context::ReadAhead::kIndexAndSnapshots
                                                      : Context::ReadAhead::kSnapshots));
  if (!a.dry_run) TRY(repo->require_full_key("forget snapshots"));
  std::unique_ptr<repo::Lock> lock;
  if (!a.dry_run) {
    ASSIGN_OR_RETURN(lock, ctx.lock(*repo, repo::LockMode::kExclusive));
  }

  std::vector<std::string> remove;
  nlohmann::json groups = nlohmann::json::array();
  if (!a.ids.empty()) {
    for (const auto& id : a.ids) {
      ASSIGN_OR_RETURN(auto s, repo->find_snapshot(id));
      remove.push_back(s.id);
    }
  } else {
    ASSIGN_OR_RETURN(auto all, repo->list_snapshots());
    std::map<std::string, std::vector<repo::SnapshotRef>> by_group;
    for (auto& s : all) {
      if (!a.service.empty() && s.snapshot.service != a.service) continue;
      if (!a.host.empty() && s.snapshot.hostname != a.host) continue;
      ASSIGN_OR_RETURN(std::string key, policy::group_key(s.snapshot, a.group_by));
      by_group[key].push_back(std::move(s));
    }
    for (auto& [key, group] : by_group) {
      ASSIGN_OR_RETURN(auto decisions, policy::apply_retention(std::move(group), a.policy));
      nlohmann::json keep = nlohmann::json::array(), drop = nlohmann::json::array();
      if (!ctx.json && !ctx.quiet) {
        std::cout << (key.empty() ? "all snapshots" : key) << "\n";
        std::cout << fmt::format("  {:<8}  {:<25}  {:<7}  {}\n", "ID", "Time", "Action", "Reasons");
      }
      for (const auto& d : decisions) {
        std::string reasons;
        for (const auto& r : d.reasons) reasons += (reasons.empty() ? "" : ", ") + r;
        if (d.keep) {
          keep.push_back({{"id", d.snapshot.id}, {"time", repo::format_time(d.snapshot.snapshot.time)},
                          {"reasons", d.reasons}});
        } else {
          drop.push_back({{"id", d.snapshot.id}, {"time", repo::format_time(d.snapshot.snapshot.time)}});
          remove.push_back(d.snapshot.id);
        }
        if (!ctx.json && !ctx.quiet) {
          std::string t = repo::format_time(d.snapshot.snapshot.time);
          std::cout << fmt::format("  {:<8}  {:<25}  {:<7}  {}\n", d.snapshot.id.substr(0, 8),
                                   t.substr(0, 19) + t.substr(29), d.keep ? "keep" : "remove", reasons);
        }
      }
      groups.push_back({{"group", key}, {"keep", keep}, {"remove", drop}});
    }
  }
  if (!a.dry_run) {
    for (const auto& id : remove) TRY(repo->backend().remove({storage::FileType::kSnapshot, id}));
  }
  if (a.prune) {
    // forget holds the exclusive lock already: nothing else runs, so prune
    // deletes at once (no marking for a later run).
    repo::PruneOptions po;
    po.dry_run = a.dry_run;
    po.exclusive = true;
    if (lock) po.own_holder = lock->holder();
    TRY(parse_max_unused(a.max_unused, po));
    if (a.max_repack_size > 0) po.max_repack_bytes = a.max_repack_size;
    TRY(prune_and_report(ctx, *repo, po));  // same exclusive lock
  }
  if (ctx.json) {
    ctx.print_json({{"dry_run", a.dry_run}, {"groups", groups}, {"removed", a.dry_run ? nlohmann::json::array() : nlohmann::json(remove)}});
  } else if (!ctx.quiet) {
    std::cout << fmt::format("{} {} snapshot(s){}\n", a.dry_run ? "would remove" : "removed", remove.size(),
                             a.dry_run ? " (dry run: nothing changed)" : (a.prune ? "" : "; run prune to reclaim their data"));
  }
  return {};
}

}  // namespace

void add_forget(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand("forget", "remove snapshots by id or by a retention policy");
  auto a = std::make_shared<ForgetArgs>();
  auto& p = a->policy;
  cmd->add_option("snapshots", a->ids, "snapshot ids to remove");
  cmd->add_option("--keep-last", p.last, "keep the newest N snapshots")->check(CLI::NonNegativeNumber);
  cmd->add_option("--keep-hourly", p.hourly, "keep the newest snapshot of each of the last N hours")->check(CLI::NonNegativeNumber);
  cmd->add_option("--keep-daily", p.daily, "... of the last N days")->check(CLI::NonNegativeNumber);
  cmd->add_option("--keep-weekly", p.weekly, "... of the last N ISO weeks")->check(CLI::NonNegativeNumber);
  cmd->add_option("--keep-monthly", p.monthly, "... of the last N months")->check(CLI::NonNegativeNumber);
  cmd->add_option("--keep-yearly", p.yearly, "... of the last N years")->check(CLI::NonNegativeNumber);
  cmd->add_option("--keep-within", p.within, "keep everything within this long of the newest snapshot (1y2m7d12h)");
  cmd->add_option("--keep-tag", p.keep_tags, "keep snapshots with this tag (repeatable)")->allow_extra_args(false);
  cmd->add_option("--group-by", a->group_by, "group by host,service,paths,tags (default host,service,paths; '' = one group)");
  cmd->add_option("--service", a->service, "only snapshots of this service (alone: apply its retention from the policy file)");
  cmd->add_option("--host", a->host, "only snapshots of this host");
  cmd->add_flag("-n,--dry-run", a->dry_run, "show what would be removed, change nothing");
  cmd->add_flag("--prune", a->prune, "then delete the data no snapshot references any more");
  cmd->add_option("--max-unused", a->max_unused,
                  "with --prune: unused space to tolerate, as a share of the repository (default 5%)");
  cmd->add_option("--max-repack-size", a->max_repack_size, "with --prune: copy at most this much while repacking")
      ->transform(CLI::AsSizeValue(false));
  cmd->callback([&ctx, a] { ctx.run([&] { return run_forget(ctx, *a); }); });
}

}  // namespace cairn::cli
