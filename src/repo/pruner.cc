#include "repo/pruner.h"

#include "repo/log_archive.h"

#include <map>
#include <set>
#include <unordered_set>

namespace cairn::repo {

using storage::FileType;

namespace {

constexpr size_t kBlobsPerIndexFile = 100000;

core::Status mark(Repository& repo, const Id& tree, std::unordered_set<Id, IdHash>& used) {
  if (!used.insert(tree).second) return {};
  auto t = repo.load_tree(tree);
  if (!t.ok()) return t.status().with_context("prune refuses: a snapshot's tree is unreadable (run check)");
  for (const auto& n : t->nodes) {
    for (const auto& id : n.content) used.insert(id);
    if (n.subtree) TRY(mark(repo, *n.subtree, used));
  }
  return {};
}

}  // namespace

core::Result<PruneReport> prune(Repository& repo, const PruneOptions& opt,
                                const std::function<void(const std::string&)>& progress) {
  auto note = [&](const std::string& s) {
    if (progress) progress(s);
  };
  PruneReport r;
  note("loading index");
  std::vector<std::string> problems;
  TRY(repo.load_index(&problems));
  if (!problems.empty()) return core::corruption("prune refuses: unreadable index file: " + problems.front());
  std::vector<std::string> old_index_files;
  TRY(repo.backend().list(FileType::kIndex, [&](const storage::FileInfo& fi) { old_index_files.push_back(fi.name); }));

  note("finding used data");
  std::vector<std::string> snap_problems;
  ASSIGN_OR_RETURN(auto snaps, repo.list_snapshots(&snap_problems));
  if (!snap_problems.empty()) return core::corruption("prune refuses: " + snap_problems.front());
  std::unordered_set<Id, IdHash> used;
  for (const auto& s : snaps) TRY(mark(repo, s.snapshot.tree, used));
  // Archived WAL/log files are roots as well: their data stays until the
  // entries themselves are expired.
  std::vector<std::string> log_problems;
  ASSIGN_OR_RETURN(auto logs, list_all_log_entries(repo, &log_problems));
  if (!log_problems.empty()) return core::corruption("prune refuses: " + log_problems.front());
  for (const auto& e : logs)
    for (const auto& b : e.blobs) used.insert(b.id);
  for (const auto& id : used)
    if (!repo.index().has(id))
      return core::corruption("prune refuses: blob " + id.hex() + " is used but in no index (run check)");

  note("planning");
  std::map<std::string, uint64_t> stored;
  TRY(repo.backend().list(FileType::kPack, [&](const storage::FileInfo& fi) { stored[fi.name] = fi.size; }));
  for (const auto& [name, size] : stored) r.bytes_before += size;
  std::vector<PackContents> keep, repack;
  std::set<std::string> remove;
  std::set<std::string> indexed;
  repo.index().for_each_pack([&](const PackContents& pc) {
    std::string name = pc.pack.hex();
    indexed.insert(name);
    r.packs_total++;
    uint64_t used_bytes = 0, total_bytes = 0;
    for (const auto& b : pc.blobs) {
      total_bytes += b.length;
      if (used.count(b.id)) {
        used_bytes += b.length;
        r.blobs_used++;
      } else {
        r.blobs_unused++;
      }
    }
    if (used_bytes == 0) {
      remove.insert(name);
      r.packs_deleted++;
    } else if (total_bytes > 0 && double(total_bytes - used_bytes) / total_bytes > opt.max_unused) {
      repack.push_back(pc);
      remove.insert(name);
      r.packs_repacked++;
    } else {
      keep.push_back(pc);
    }
  });
  for (const auto& [name, size] : stored) {
    if (!indexed.count(name)) {
      remove.insert(name);
      r.packs_unindexed++;
    }
  }
  for (const auto& name : remove)
    if (stored.count(name)) r.bytes_freed += stored[name];
  for (const auto& pc : repack)
    for (const auto& b : pc.blobs)
      if (used.count(b.id)) r.bytes_repacked += b.length;
  if (opt.dry_run || (remove.empty() && old_index_files.size() <= 1)) return r;

  // Copy what repacked packs still need, then flush (new packs + an index
  // naming them), so nothing used is ever only in a pack about to go.
  note("repacking");
  for (const auto& pc : repack) {
    for (const auto& b : pc.blobs) {
      if (!used.count(b.id)) continue;
      ASSIGN_OR_RETURN(core::Bytes plain, repo.load_blob(b.id));
      TRY(repo.save_blob_copy(b.type, b.id, plain));
    }
  }
  TRY(repo.flush());

  // One complete index: kept packs + new packs. Written before anything is deleted.
  note("writing index");
  std::vector<PackContents> final_packs = keep;
  for (auto& pc : repo.written_packs()) final_packs.push_back(std::move(pc));
  std::vector<std::string> new_index_files;
  std::vector<PackContents> batch;
  size_t batch_blobs = 0;
  auto write_batch = [&]() -> core::Status {
    if (batch.empty()) return {};
    ASSIGN_OR_RETURN(std::string name, repo.save_file(FileType::kIndex, encode_index(batch)));
    new_index_files.push_back(name);
    batch.clear();
    batch_blobs = 0;
    return {};
  };
  for (auto& pc : final_packs) {
    batch_blobs += pc.blobs.size();
    batch.push_back(std::move(pc));
    if (batch_blobs >= kBlobsPerIndexFile) TRY(write_batch());
  }
  TRY(write_batch());

  note("deleting");
  std::set<std::string> fresh(new_index_files.begin(), new_index_files.end());
  std::vector<std::string> all_index;
  TRY(repo.backend().list(FileType::kIndex, [&](const storage::FileInfo& fi) { all_index.push_back(fi.name); }));
  for (const auto& name : all_index) {
    if (fresh.count(name)) continue;
    TRY(repo.backend().remove({FileType::kIndex, name}));
    r.index_files_replaced++;
  }
  for (const auto& name : remove) TRY(repo.backend().remove({FileType::kPack, name}));
  return r;
}

}  // namespace cairn::repo
