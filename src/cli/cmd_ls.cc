// cairn ls: lists the files of a snapshot (or a subtree).
#include <algorithm>
#include <fmt/format.h>
#include <sys/stat.h>

#include <iostream>

#include "archive/tree_walk.h"
#include "cli/context.h"

namespace cairn::cli {

static std::string mode_string(const repo::Node& n) {
  std::string s = "-";
  switch (n.type) {
    case repo::NodeType::kDir: s = "d"; break;
    case repo::NodeType::kSymlink: s = "l"; break;
    case repo::NodeType::kBlockDev: s = "b"; break;
    case repo::NodeType::kCharDev: s = "c"; break;
    case repo::NodeType::kFifo: s = "p"; break;
    case repo::NodeType::kSocket: s = "s"; break;
    default: break;
  }
  const char* rwx = "rwxrwxrwx";
  for (int i = 0; i < 9; ++i) s += (n.mode & (1u << (8 - i))) ? rwx[i] : '-';
  return s;
}

nlohmann::json node_json(const std::string& path, const repo::Node& n) {
  nlohmann::json j = {{"path", repo::printable_name(path)}, {"type", repo::node_type_name(n.type)},
                      {"mode", n.mode}, {"uid", n.uid}, {"gid", n.gid}, {"size", n.size},
                      {"mtime", repo::format_time({n.mtime_ns, 0})}};
  if (n.type == repo::NodeType::kSymlink) j["link_target"] = repo::printable_name(n.link_target);
  return j;
}

void add_ls(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand("ls", "list files in a snapshot");
  struct Opts {
    std::string ref, service, host;
    bool long_format = false;
    int max_depth = 0;  // 0: everything
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("snapshot", o->ref, "<snapshot>[:path], snapshot is an id prefix or 'latest'")->required();
  cmd->add_flag("-l,--long", o->long_format, "show mode, owner, size and time");
  cmd->add_option("--max-depth", o->max_depth, "list at most this many levels below the path (1: its entries)")
      ->check(CLI::NonNegativeNumber);
  add_latest_filter(cmd, o->service, o->host);
  cmd->callback([&ctx, o] {
    ctx.run([&]() -> core::Status {
      if (!o->service.empty()) TRY(ctx.apply_service_policy(o->service, false));
      ASSIGN_OR_RETURN(auto repo, ctx.open_repository());
      auto [ref, path] = split_snapshot_path(o->ref);
      ASSIGN_OR_RETURN(auto snap, repo->find_snapshot(ref, o->service, o->host));
      ASSIGN_OR_RETURN(auto start, archive::locate(*repo, snap.snapshot.tree, path));
      auto print = [&](const std::string& p, const repo::Node& n) {
        if (ctx.json) {
          std::cout << json_text(node_json(p, n)) << "\n";
        } else if (o->long_format) {
          std::string t = repo::format_time({n.mtime_ns, 0});
          std::cout << fmt::format("{} {:>6} {:>6} {:>12} {} {}{}\n", mode_string(n),
                                   n.user.empty() ? std::to_string(n.uid) : n.user,
                                   n.group.empty() ? std::to_string(n.gid) : n.group, n.size,
                                   t.substr(0, 10) + " " + t.substr(11, 8), repo::printable_name(p),
                                   n.type == repo::NodeType::kSymlink ? " -> " + repo::printable_name(n.link_target) : "");
        } else {
          std::cout << repo::printable_name(p) << "\n";
        }
        if (o->max_depth == 0) return true;
        // Levels below the starting path: the slashes after its prefix.
        size_t base = start.path == "/" ? 0 : start.path.size();
        auto depth = std::count(p.begin() + static_cast<std::ptrdiff_t>(std::min(base, p.size())), p.end(), '/');
        return depth < o->max_depth;
      };
      if (start.node.type == repo::NodeType::kDir && start.node.subtree) {
        if (start.path != "/") print(start.path, start.node);
        TRY(archive::walk(*repo, *start.node.subtree, start.path, print));
      } else {
        print(start.path, start.node);
      }
      return {};
    });
  });
}

}  // namespace cairn::cli
