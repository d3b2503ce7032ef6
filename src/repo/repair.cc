#include "repo/repair.h"

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>

#include "core/thread_pool.h"

namespace cairn::repo {

using storage::FileType;

namespace {
constexpr size_t kHeaderReaders = 4;  // header reads are small; overlap their latency
}  // namespace

core::Result<std::vector<PackEntry>> read_pack_header(Repository& repo, const std::string& pack,
                                                      uint64_t size) {
  uint64_t want = std::min<uint64_t>(size, 64 * 1024);
  for (int attempt = 0; attempt < 2; ++attempt) {
    ASSIGN_OR_RETURN(core::Bytes tail,
                     repo.backend().load({FileType::kPack, pack}, size - want, want));
    ASSIGN_OR_RETURN(HeaderRead hdr, repo.decode_pack_header(tail, size));
    if (hdr.needed == 0) return std::move(hdr.entries);
    want = hdr.needed;
  }
  return core::corruption("header could not be read");
}

core::Result<RepairIndexReport> repair_index(
    Repository& repo, const std::function<void(const std::string&)>& progress) {
  auto note = [&](const std::string& s) {
    if (progress) progress(s);
  };
  RepairIndexReport r;
  std::vector<std::string> old_index;
  TRY(repo.backend().list(FileType::kIndex,
                          [&](const storage::FileInfo& fi) { old_index.push_back(fi.name); }));

  // Un-marking first: a marker would otherwise let a later sweep delete a
  // pack the new index names.
  std::vector<std::string> markers;
  TRY(repo.backend().list(FileType::kMaintenance,
                          [&](const storage::FileInfo& fi) { markers.push_back(fi.name); }));
  for (const auto& m : markers) TRY(repo.backend().remove({FileType::kMaintenance, m}));
  r.markers_removed = markers.size();

  std::map<std::string, uint64_t> stored;
  TRY(repo.backend().list(FileType::kPack,
                          [&](const storage::FileInfo& fi) { stored[fi.name] = fi.size; }));
  std::vector<PackContents> packs;
  std::mutex mu;
  std::atomic<size_t> done{0};
  {
    core::ThreadPool pool(kHeaderReaders, kHeaderReaders);
    for (const auto& [name, size] : stored) {
      pool.submit([&, name = name, size = size] {
        note("reading pack headers " + std::to_string(++done) + "/" +
             std::to_string(stored.size()));
        auto id = Id::from_hex(name);
        auto entries = id ? read_pack_header(repo, name, size)
                          : core::Result<std::vector<PackEntry>>(core::corruption("not a pack id"));
        std::lock_guard lock(mu);
        if (!entries.ok()) {
          r.unreadable_packs.push_back("pack " + name + ": " + entries.status().message());
          return;
        }
        r.blobs += entries->size();
        packs.push_back(PackContents{*id, std::move(*entries)});
      });
    }
    pool.wait_idle();
  }
  std::sort(packs.begin(), packs.end(),
            [](const PackContents& a, const PackContents& b) { return a.pack < b.pack; });
  std::sort(r.unreadable_packs.begin(), r.unreadable_packs.end());
  r.packs = packs.size();

  note("writing index");
  ASSIGN_OR_RETURN(std::vector<std::string> fresh, repo.save_index_files(std::move(packs)));
  r.index_files_written = fresh.size();

  note("removing old index files");
  for (const auto& name : old_index) {
    if (std::find(fresh.begin(), fresh.end(), name) != fresh.end()) continue;
    TRY(repo.backend().remove({FileType::kIndex, name}));
    r.index_files_removed++;
  }
  return r;
}

}  // namespace cairn::repo
