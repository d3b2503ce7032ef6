// cairn check: verifies structure, and with --read-data every byte.
#include <fmt/format.h>

#include <iostream>

#include "cli/context.h"
#include "core/bytes.h"
#include "repo/lock.h"
#include "repo/checker.h"

namespace cairn::cli {

void add_check(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand("check", "verify the repository");
  struct Opts {
    bool read_data = false;
    std::string subset;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_flag("--read-data", o->read_data, "read and verify every pack");
  cmd->add_option("--read-data-subset", o->subset, "read only a subset: N% (random) or n/m (group n of m)");
  cmd->callback([&ctx, o] {
    ctx.run([&]() -> core::Status {
      repo::CheckOptions opt;
      opt.read_data = o->read_data || !o->subset.empty();
      if (!o->subset.empty()) TRY(repo::parse_subset(o->subset, opt));
      ASSIGN_OR_RETURN(auto repo,
                       ctx.open_repository(false, Context::ReadAhead::kIndexAndSnapshots));
      ASSIGN_OR_RETURN(auto lock, ctx.shared_lock(*repo));
      std::string stage;
      std::mutex mu;
      ProgressLine line(ctx.show_progress(), [&](double el) {
        std::lock_guard lock(mu);
        return fmt::format("[{}] {}", core::format_duration(el), stage);
      });
      ASSIGN_OR_RETURN(auto report, repo::check(*repo, opt, [&](const std::string& s) {
        std::lock_guard lock(mu);
        stage = s;
      }));
      line.stop();
      if (ctx.json) {
        ctx.print_json({{"ok", report.errors.empty()}, {"errors", report.errors}, {"warnings", report.warnings},
                        {"damaged_packs", report.damaged_packs}, {"affected_snapshots", report.affected_snapshots},
                        {"packs", report.packs}, {"blobs", report.blobs}, {"snapshots", report.snapshots},
                        {"trees", report.trees}, {"packs_read", report.packs_read}, {"bytes_read", report.bytes_read}});
      } else {
        for (const auto& w : report.warnings) std::cerr << "warning: " << w << "\n";
        for (const auto& e : report.errors) std::cout << "error: " << e << "\n";
        if (!report.affected_snapshots.empty()) {
          std::cout << "snapshots affected by the damage:";
          for (const auto& s : report.affected_snapshots) std::cout << " " << s.substr(0, 8);
          std::cout << "\n";
        }
        if (!ctx.quiet)
          std::cout << fmt::format("checked {} snapshots, {} trees, {} packs, {} blobs{}: {}\n", report.snapshots,
                                   report.trees, report.packs, report.blobs,
                                   opt.read_data ? fmt::format(", read {} packs ({})", report.packs_read,
                                                               core::format_bytes(report.bytes_read))
                                                 : "",
                                   report.errors.empty() ? "no errors" : fmt::format("{} error(s)", report.errors.size()));
      }
      if (!report.errors.empty()) {
        ctx.exit_code = kExitFailure;
      }
      return {};
    });
  });
}

}  // namespace cairn::cli
