// The index: where every blob lives (pack id + entry). Built in memory from
// all index/ files when a repository is opened, extended as packs are stored.
// Thread-safe (shared mutex: many readers, writers only when packs land).
#pragma once

#include <functional>
#include <optional>
#include <shared_mutex>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/bytes.h"
#include "core/status.h"
#include "repo/ids.h"
#include "repo/pack.h"

namespace cairn::repo {

struct PackContents {
  Id pack;
  std::vector<PackEntry> blobs;
};

struct BlobLocation {
  Id pack;
  PackEntry entry;
};

class Index {
 public:
  // Any copy, excluded packs included (what check and prune need).
  bool has(const Id& blob) const;
  // A copy outside excluded packs: what a writer may deduplicate against.
  bool has_usable(const Id& blob) const;
  // Packs named by a maintenance marker (about to be deleted). Lookups prefer
  // other copies of a blob; has_usable ignores copies in them. Only grows.
  void exclude_packs(const std::vector<Id>& packs);
  bool is_excluded(const Id& pack) const;
  // Forgets every blob location in `pack` (found missing from storage) and
  // never adds that pack again.
  void drop_pack(const Id& pack);
  // Forgets everything (prune re-reads the index between its phases).
  void clear();
  std::optional<BlobLocation> lookup(const Id& blob) const;
  void add(const PackContents& pack);
  size_t blob_count() const;
  size_t pack_count() const;
  // Every pack any loaded index file named, even one whose blobs all have
  // their preferred copy elsewhere (for_each_pack does not show those).
  std::vector<Id> pack_ids() const;
  // Calls fn once per pack with the blobs the index places in it.
  void for_each_pack(const std::function<void(const PackContents&)>& fn) const;

 private:
  struct Slot {
    uint32_t pack;
    PackEntry entry;
  };
  mutable std::shared_mutex mu_;
  std::vector<Id> packs_;
  std::unordered_map<Id, Slot, IdHash> blobs_;
  std::unordered_set<Id, IdHash> excluded_;
  std::unordered_set<Id, IdHash> gone_;  // dropped packs
};

// Binary index file payload (before file encoding); see docs/format.md.
core::Bytes encode_index(const std::vector<PackContents>& packs);
core::Result<std::vector<PackContents>> decode_index(core::ByteView data);

}  // namespace cairn::repo
