// cairn prune: deletes data no snapshot references. Default: two-phase under
// a maintenance lock (backups keep running; marked packs are deleted by a
// later run). --exclusive: everything at once under an exclusive lock.
#include <fmt/format.h>

#include <iostream>

#include "cli/context.h"
#include "core/bytes.h"
#include "repo/lock.h"
#include "repo/pruner.h"

namespace cairn::cli {

core::Status prune_and_report(Context& ctx, repo::Repository& repo, const repo::PruneOptions& options) {
  TRY(repo.require_full_key("prune"));
  std::string stage;
  std::mutex mu;
  ProgressLine line(ctx.show_progress(), [&](double el) {
    std::lock_guard lock(mu);
    return fmt::format("[{}] prune: {}", core::format_duration(el), stage);
  });
  ASSIGN_OR_RETURN(auto r, repo::prune(repo, options, [&](const std::string& s) {
    std::lock_guard lock(mu);
    stage = s;
  }));
  line.stop();
  if (ctx.json) {
    ctx.print_json({{"dry_run", options.dry_run}, {"mode", options.exclusive ? "exclusive" : "two-phase"},
                    {"packs_total", r.packs_total}, {"packs_deleted", r.packs_deleted},
                    {"packs_repacked", r.packs_repacked}, {"packs_unindexed", r.packs_unindexed},
                    {"blobs_used", r.blobs_used}, {"blobs_unused", r.blobs_unused},
                    {"bytes_before", r.bytes_before}, {"bytes_freed", r.bytes_freed},
                    {"bytes_repacked", r.bytes_repacked}, {"index_files_replaced", r.index_files_replaced},
                    {"marked", r.marked && !options.exclusive}, {"marker", r.marker},
                    {"swept", r.swept}, {"packs_swept", r.packs_swept}, {"packs_rescued", r.packs_rescued},
                    {"bytes_swept", r.bytes_swept}, {"waiting_for", r.waiting_for}});
  } else if (!ctx.quiet) {
    if (r.swept)
      std::cout << fmt::format("prune: swept an earlier marker: {} packs deleted ({}), {} kept because a "
                               "snapshot needs them\n",
                               r.packs_swept, core::format_bytes(r.bytes_swept), r.packs_rescued);
    if (!r.waiting_for.empty()) {
      std::cout << "prune: packs marked by an earlier run wait for backups that started before the marking:\n";
      for (const auto& w : r.waiting_for) std::cout << "  " << w << "\n";
      std::cout << "prune: nothing new marked; run prune again after they finish\n";
      return {};
    }
    const char* what = options.dry_run ? "prune (dry run, nothing changed)"
                       : options.exclusive ? "prune"
                                           : "prune (marked; deleted by the next prune run)";
    std::cout << fmt::format(
        "{}: {} of {} packs unused, {} to repack ({} copied), {} leftover packs; {} to free of {}\n", what,
        r.packs_deleted, r.packs_total, r.packs_repacked, core::format_bytes(r.bytes_repacked), r.packs_unindexed,
        core::format_bytes(r.bytes_freed), core::format_bytes(r.bytes_before));
  }
  return {};
}

core::Status parse_max_unused(const std::string& s, repo::PruneOptions& o) {
  try {
    std::string v = s;
    if (!v.empty() && v.back() == '%') v.pop_back();
    double pct = std::stod(v);
    if (pct < 0 || pct > 100) throw std::out_of_range("pct");
    o.max_unused = pct / 100.0;
    return {};
  } catch (const std::exception&) {
    return core::invalid_argument("--max-unused must be a percentage like 5%, not '" + s + "'");
  }
}

void add_prune(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand("prune", "delete data that no snapshot references");
  struct Opts {
    std::string max_unused = "5%";
    uint64_t max_repack_size = 0;  // 0 = no limit
    bool dry_run = false;
    bool exclusive = false;
    std::string service;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("--max-unused", o->max_unused,
                  "unused space the repository may keep, as a share of its size (default 5%): "
                  "the most wasteful packs are repacked until the rest is within it");
  cmd->add_option("--max-repack-size", o->max_repack_size,
                  "copy at most this much (e.g. 2GiB) while repacking")
      ->transform(CLI::AsSizeValue(false));
  cmd->add_flag("-n,--dry-run", o->dry_run, "only report what would be freed");
  cmd->add_flag("--exclusive", o->exclusive,
                "delete at once under an exclusive lock (no backup may run) instead of marking for a later run");
  cmd->add_option("--service", o->service, "prune the repository of this service of the policy file");
  cmd->callback([&ctx, o] {
    ctx.run([&]() -> core::Status {
      if (!o->service.empty()) TRY(ctx.apply_service_policy(o->service, true));
      repo::PruneOptions opt;
      opt.dry_run = o->dry_run;
      opt.exclusive = o->exclusive;
      TRY(parse_max_unused(o->max_unused, opt));
      if (o->max_repack_size > 0) opt.max_repack_bytes = o->max_repack_size;
      ASSIGN_OR_RETURN(auto repo, ctx.open_repository(false));
      std::unique_ptr<repo::Lock> lock;
      if (!opt.dry_run) {
        ASSIGN_OR_RETURN(lock, ctx.lock(*repo, opt.exclusive ? repo::LockMode::kExclusive
                                                                        : repo::LockMode::kMaintenance));
        opt.own_holder = lock->holder();
      }
      return prune_and_report(ctx, *repo, opt);
    });
  });
}

}  // namespace cairn::cli
