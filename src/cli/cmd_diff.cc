// cairn diff: what changed between two snapshots (+ added, - removed,
// M content modified, T type changed, U metadata only).
#include <fmt/format.h>

#include <iostream>
#include <map>

#include "archive/tree_walk.h"
#include "cli/context.h"

namespace cairn::cli {

namespace {

struct DiffStats {
  uint64_t added = 0, removed = 0, modified = 0, metadata = 0;
};

core::Status diff_trees(repo::Repository& repo, const std::optional<repo::Id>& a, const std::optional<repo::Id>& b,
                        const std::string& prefix, Context& ctx, DiffStats& st) {
  if (a && b && *a == *b) return {};  // identical subtrees: skip without loading
  std::map<std::string, repo::Node> left, right;
  if (a) {
    ASSIGN_OR_RETURN(auto t, repo.load_tree(*a));
    for (auto& n : t.nodes) left[n.name] = std::move(n);
  }
  if (b) {
    ASSIGN_OR_RETURN(auto t, repo.load_tree(*b));
    for (auto& n : t.nodes) right[n.name] = std::move(n);
  }
  auto emit = [&](char what, const std::string& path) {
    if (ctx.json) {
      std::cout << json_text({{"change", std::string(1, what)}, {"path", repo::printable_name(path)}}) << "\n";
    } else {
      std::cout << what << "    " << repo::printable_name(path) << "\n";
    }
  };
  auto all_under = [&](const repo::Node& n, const std::string& path, char what, uint64_t& counter) -> core::Status {
    emit(what, path);
    counter++;
    if (n.type == repo::NodeType::kDir && n.subtree) {
      return archive::walk(repo, *n.subtree, path, [&](const std::string& p, const repo::Node&) {
        emit(what, p);
        counter++;
        return true;
      });
    }
    return {};
  };
  for (const auto& [name, l] : left) {
    std::string path = prefix + "/" + name;
    auto it = right.find(name);
    if (it == right.end()) {
      TRY(all_under(l, path, '-', st.removed));
      continue;
    }
    const repo::Node& r = it->second;
    if (l.type != r.type) {
      emit('T', path);
      st.modified++;
    } else if (l.type == repo::NodeType::kDir) {
      if (l.mode != r.mode || l.uid != r.uid || l.gid != r.gid) {
        emit('U', path);
        st.metadata++;
      }
      TRY(diff_trees(repo, l.subtree, r.subtree, path, ctx, st));
    } else if (l.content != r.content || l.link_target != r.link_target) {
      emit('M', path);
      st.modified++;
    } else if (l.mode != r.mode || l.uid != r.uid || l.gid != r.gid || l.mtime_ns != r.mtime_ns) {
      emit('U', path);
      st.metadata++;
    }
  }
  for (const auto& [name, r] : right) {
    if (!left.count(name)) TRY(all_under(r, prefix + "/" + name, '+', st.added));
  }
  return {};
}

}  // namespace

void add_diff(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand("diff", "show differences between two snapshots");
  auto refs = std::make_shared<std::vector<std::string>>();
  cmd->add_option("snapshots", *refs, "two snapshot ids (or 'latest')")->required()->expected(2);
  cmd->callback([&ctx, refs] {
    ctx.run([&]() -> core::Status {
      ASSIGN_OR_RETURN(auto repo, ctx.open_repository());
      ASSIGN_OR_RETURN(auto a, repo->find_snapshot((*refs)[0]));
      ASSIGN_OR_RETURN(auto b, repo->find_snapshot((*refs)[1]));
      DiffStats st;
      TRY(diff_trees(*repo, a.snapshot.tree, b.snapshot.tree, "", ctx, st));
      if (ctx.json) {
        ctx.print_json({{"summary", {{"added", st.added}, {"removed", st.removed}, {"modified", st.modified},
                                     {"metadata", st.metadata}}}});
      } else {
        std::cout << fmt::format("\n{} added, {} removed, {} modified, {} metadata only\n", st.added, st.removed,
                                 st.modified, st.metadata);
      }
      return {};
    });
  });
}

}  // namespace cairn::cli
