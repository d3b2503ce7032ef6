// cairn stats: restore size (what a restore writes) and raw data (what the
// repository stores after dedup and compression) of snapshots.
#include <fmt/format.h>

#include <iostream>
#include <unordered_set>

#include "archive/tree_walk.h"
#include "cli/context.h"
#include "core/bytes.h"

namespace cairn::cli {

void add_stats(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand("stats", "sizes and deduplication of snapshots");
  auto refs = std::make_shared<std::vector<std::string>>();
  cmd->add_option("snapshots", *refs, "snapshot ids (default: all)");
  cmd->callback([&ctx, refs] {
    ctx.run([&]() -> core::Status {
      ASSIGN_OR_RETURN(auto repo, ctx.open_repository());
      std::vector<repo::SnapshotRef> snaps;
      if (refs->empty()) {
        ASSIGN_OR_RETURN(snaps, repo->list_snapshots());
      } else {
        for (const auto& r : *refs) {
          ASSIGN_OR_RETURN(auto s, repo->find_snapshot(r));
          snaps.push_back(std::move(s));
        }
      }
      uint64_t restore_size = 0, files = 0, raw = 0, stored = 0;
      std::unordered_set<repo::Id, repo::IdHash> blobs;
      for (const auto& s : snaps) {
        TRY(archive::walk(*repo, s.snapshot.tree, "/", [&](const std::string&, const repo::Node& n) {
          if (n.type == repo::NodeType::kFile) {
            files++;
            restore_size += n.size;
            for (const auto& id : n.content) {
              if (!blobs.insert(id).second) continue;
              if (auto loc = repo->index().lookup(id)) {
                raw += loc->entry.raw_length;
                stored += loc->entry.length;
              }
            }
          }
          return true;
        }));
      }
      double dedup = raw ? static_cast<double>(restore_size) / raw : 0;
      double compression = stored ? static_cast<double>(raw) / stored : 0;
      if (ctx.json) {
        ctx.print_json({{"snapshots", snaps.size()}, {"total_files", files}, {"restore_size", restore_size},
                        {"unique_blobs", blobs.size()}, {"raw_data", raw}, {"stored_data", stored},
                        {"dedup_ratio", dedup}, {"compression_ratio", compression}});
      } else {
        std::cout << fmt::format(
            "snapshots:        {}\nfiles:            {}\nrestore size:     {}\nunique data:      {} in {} blobs\n"
            "stored (packed):  {}\ndedup ratio:      {:.2f}x\ncompression:      {:.2f}x\n",
            snaps.size(), files, core::format_bytes(restore_size), core::format_bytes(raw), blobs.size(),
            core::format_bytes(stored), dedup, compression);
      }
      return {};
    });
  });
}

}  // namespace cairn::cli
