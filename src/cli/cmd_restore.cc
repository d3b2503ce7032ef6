// cairn restore: recreates a snapshot (or part of it) below --target.
#include <fmt/format.h>
#include <malloc.h>

#include <iostream>

#include "archive/restorer.h"
#include "cli/context.h"
#include "core/bytes.h"
#include "repo/lock.h"

namespace cairn::cli {

namespace {
// main() fixes the mmap threshold, which also fixes the trim threshold at
// 128 KiB: every blob buffer freed at a heap's top went back to the kernel,
// and the next one was faulted in and zeroed again (~5 % of a restore's CPU).
// A restore keeps up to this much free at each heap's top instead. Backups
// trim after each pack on purpose (repo/repository.cc) and keep the default.
constexpr int kRestoreTrimThreshold = 8 << 20;
}  // namespace

void add_restore(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand("restore", "restore a snapshot into a folder");
  struct Opts {
    std::string ref, service, host;
    archive::RestoreOptions opt;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("snapshot", o->ref, "<snapshot>[:path], snapshot is an id prefix or 'latest'")->required();
  cmd->add_option("-t,--target", o->opt.target, "folder to restore into (created if missing)")->required();
  cmd->add_option("-i,--include", o->opt.includes, "restore only matching paths (repeatable)")
      ->allow_extra_args(false);
  cmd->add_option("-e,--exclude", o->opt.excludes, "skip matching paths (repeatable)")
      ->allow_extra_args(false);
  add_latest_filter(cmd, o->service, o->host);
  cmd->add_flag("--verify", o->opt.verify, "re-read every restored file and check it against the snapshot");
  cmd->add_option("--workers", o->opt.workers, "packs read at once (default 8)");
  cmd->callback([&ctx, o] {
    ctx.run([&]() -> core::Status {
      // With --service, the service's repository and key from the policy file
      // (as backup --service), so a runbook's commands need only --config.
      if (!o->service.empty()) TRY(ctx.apply_service_policy(o->service, false));
      // Lock before reading the index: a prune sweep waits only for holders it
      // recorded, and an index read before the lock could name a pack it deletes.
      ASSIGN_OR_RETURN(auto repo,
                       ctx.open_repository(false, Context::ReadAhead::kIndexAndSnapshots));
      ASSIGN_OR_RETURN(auto lock, ctx.shared_lock(*repo));
      TRY(ctx.load_index(*repo));
      auto [ref, path] = split_snapshot_path(o->ref);
      ASSIGN_OR_RETURN(auto snap, repo->find_snapshot(ref, o->service, o->host));
      archive::RestoreProgress progress;
      ProgressLine line(ctx.show_progress(), [&](double el) {
        uint64_t b = progress.bytes_done;
        return fmt::format("[{}] {}/{} files, {} of {}, {}/s  {}", core::format_duration(el),
                           progress.files_done.load(), progress.files_total.load(), core::format_bytes(b),
                           core::format_bytes(progress.bytes_total),
                           core::format_bytes(el > 0 ? static_cast<uint64_t>(b / el) : 0),
                           eta(b, progress.bytes_total, el));
      });
      mallopt(M_TRIM_THRESHOLD, kRestoreTrimThreshold);
      auto start = std::chrono::steady_clock::now();
      ASSIGN_OR_RETURN(auto r, archive::restore(*repo, snap.snapshot, path, o->opt, &progress));
      line.stop();
      double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      for (const auto& w : r.warnings) std::cerr << "warning: " << w << "\n";
      for (const auto& e : r.errors) std::cerr << "error: " << e << "\n";
      if (ctx.json) {
        ctx.print_json({{"snapshot_id", snap.id}, {"target", o->opt.target}, {"files", r.files},
                        {"dirs", r.dirs}, {"hardlinks", r.links}, {"bytes", r.bytes},
                        {"duration_s", secs}, {"errors", r.errors}, {"warnings", r.warnings}});
      } else if (!ctx.quiet) {
        std::cout << fmt::format("restored snapshot {} to {}: {} files, {} dirs, {} in {}{}\n", snap.id.substr(0, 8),
                                 o->opt.target, r.files, r.dirs, core::format_bytes(r.bytes),
                                 core::format_duration(secs), o->opt.verify && r.errors.empty() ? ", verified" : "");
      }
      if (!r.errors.empty())
        return core::Status(core::Code::kCorruption,
                            fmt::format("{} problem(s) during restore; affected files were not written", r.errors.size()));
      return {};
    });
  });
}

}  // namespace cairn::cli
