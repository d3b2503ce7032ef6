// cairn unlock: removes stale locks (or all with --remove-all); lists locks with --list.
#include <iostream>

#include "cli/context.h"
#include "repo/lock.h"

namespace cairn::cli {

void add_unlock(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand("unlock", "remove stale locks");
  auto all = std::make_shared<bool>(false);
  auto list = std::make_shared<bool>(false);
  cmd->add_flag("--remove-all", *all, "remove every lock, also live ones (only when you know no cairn is running)");
  cmd->add_flag("--list", *list, "only list the locks");
  cmd->callback([&ctx, all, list] {
    ctx.run([&]() -> core::Status {
      ASSIGN_OR_RETURN(auto repo, ctx.open_repository(false));
      if (*list) {
        ASSIGN_OR_RETURN(auto locks, repo::list_locks(*repo));
        nlohmann::json arr = nlohmann::json::array();
        for (const auto& l : locks) {
          if (ctx.json) {
            arr.push_back({{"id", l.id}, {"exclusive", l.exclusive}, {"hostname", l.hostname},
                           {"username", l.username}, {"pid", l.pid}, {"stale", l.stale},
                           {"time", repo::format_time(l.time)}});
          } else {
            std::cout << l.describe() << "\n";
          }
        }
        if (ctx.json) ctx.print_json(arr);
        return {};
      }
      if (*all) TRY(repo->require_full_key("remove live locks"));
      ASSIGN_OR_RETURN(size_t n, repo::remove_locks(*repo, *all));
      if (ctx.json) {
        ctx.print_json({{"removed", n}});
      } else if (!ctx.quiet) {
        std::cout << "removed " << n << " lock(s)\n";
      }
      return {};
    });
  });
}

}  // namespace cairn::cli
