// cairn snapshots: lists snapshots (filtered by service, host, tag).
#include <fmt/format.h>

#include <iostream>

#include "cli/context.h"
#include "core/bytes.h"

namespace cairn::cli {

void add_snapshots(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand("snapshots", "list snapshots");
  struct Opts {
    std::string service, host, tag;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("--service", o->service, "only this service");
  cmd->add_option("--host", o->host, "only this host");
  cmd->add_option("--tag", o->tag, "only snapshots with this tag");
  cmd->callback([&ctx, o] {
    ctx.run([&]() -> core::Status {
      // A service of the policy file: its repository and key (unless --repo).
      if (!o->service.empty()) TRY(ctx.apply_service_policy(o->service, false));
      ASSIGN_OR_RETURN(auto repo, ctx.open_repository(false, Context::ReadAhead::kSnapshots));
      std::vector<std::string> problems;
      ASSIGN_OR_RETURN(auto snaps, repo->list_snapshots(&problems));
      for (const auto& p : problems) std::cerr << "warning: unreadable " << p << "\n";
      nlohmann::json arr = nlohmann::json::array();
      if (!ctx.json)
        std::cout << fmt::format("{:<8}  {:<25}  {:<12}  {:<12}  {:<10}  {}\n", "ID", "Time", "Host", "Service",
                                 "Size", "Paths");
      size_t shown = 0, by_agents = 0;  // write-only agents: their snapshots are flagged
      for (const auto& s : snaps) {
        const auto& m = s.snapshot;
        if (!o->service.empty() && m.service != o->service) continue;
        if (!o->host.empty() && m.hostname != o->host) continue;
        if (!o->tag.empty() && std::find(m.tags.begin(), m.tags.end(), o->tag) == m.tags.end()) continue;
        ++shown;
        by_agents += s.written_by_agent;
        if (ctx.json) {
          arr.push_back(snapshot_json(s));
          continue;
        }
        std::string paths;
        for (const auto& p : m.paths) paths += (paths.empty() ? "" : ", ") + p;
        std::string t = repo::format_time(m.time);
        std::cout << fmt::format("{:<8}{} {:<25}  {:<12}  {:<12}  {:<10}  {}\n", s.id.substr(0, 8),
                                 s.written_by_agent ? "*" : " ",
                                 t.substr(0, 19) + t.substr(29), m.hostname, m.service.empty() ? "-" : m.service,
                                 core::format_bytes(m.summary.total_bytes), paths);
      }
      if (ctx.json) {
        ctx.print_json(arr);
      } else {
        std::cout << shown << " snapshot(s)\n";
        if (by_agents > 0) std::cout << "* written by a write-only agent key (docs/security.md)\n";
      }
      if (!problems.empty()) ctx.exit_code = kExitWarnings;
      return {};
    });
  });
}

}  // namespace cairn::cli
