// cairn repair index: rebuilds the index from pack headers (exclusive lock).
#include <fmt/format.h>

#include <iostream>

#include "cli/context.h"
#include "repo/lock.h"
#include "repo/repair.h"

namespace cairn::cli {

void add_repair(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand("repair", "repair a damaged repository");
  cmd->require_subcommand(1);
  auto* index = cmd->add_subcommand("index", "rebuild the index from the headers of every pack");
  index->callback([&ctx] {
    ctx.run([&]() -> core::Status {
      ASSIGN_OR_RETURN(auto repo, ctx.open_repository(false));
      TRY(repo->require_full_key("repair the index"));
      ASSIGN_OR_RETURN(auto lock, ctx.lock(*repo, repo::LockMode::kExclusive));
      std::string stage;
      std::mutex mu;
      ProgressLine line(ctx.show_progress(), [&](double el) {
        std::lock_guard lock(mu);
        return fmt::format("[{}] repair index: {}", core::format_duration(el), stage);
      });
      ASSIGN_OR_RETURN(auto r, repo::repair_index(*repo, [&](const std::string& s) {
                         std::lock_guard lock(mu);
                         stage = s;
                       }));
      line.stop();
      if (ctx.json) {
        ctx.print_json({{"packs", r.packs},
                        {"blobs", r.blobs},
                        {"index_files_written", r.index_files_written},
                        {"index_files_removed", r.index_files_removed},
                        {"markers_removed", r.markers_removed},
                        {"unreadable_packs", r.unreadable_packs}});
      } else {
        for (const auto& p : r.unreadable_packs)
          std::cerr << "error: " << p << " (left out of the index)\n";
        if (!ctx.quiet)
          std::cout << fmt::format(
              "repair index: {} packs, {} blobs indexed in {} new index file(s); {} old index "
              "file(s) removed{}\n"
              "run 'cairn check' to see whether any snapshot still misses data\n",
              r.packs, r.blobs, r.index_files_written, r.index_files_removed,
              r.markers_removed ? fmt::format(", {} prune marker(s) dropped", r.markers_removed)
                                : "");
      }
      if (!r.unreadable_packs.empty()) ctx.exit_code = kExitFailure;
      return {};
    });
  });
}

}  // namespace cairn::cli
