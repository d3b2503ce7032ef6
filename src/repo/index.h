// The index: where every blob lives (pack id + entry). Built in memory from
// all index/ files when a repository is opened, extended as packs are stored.
// Thread-safe (shared mutex: many readers, writers only when packs land).
#pragma once

#include <functional>
#include <optional>
#include <shared_mutex>
#include <unordered_map>
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
  bool has(const Id& blob) const;
  std::optional<BlobLocation> lookup(const Id& blob) const;
  void add(const PackContents& pack);
  size_t blob_count() const;
  size_t pack_count() const;
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
};

// Binary index file payload (before file encoding); see docs/format.md.
core::Bytes encode_index(const std::vector<PackContents>& packs);
core::Result<std::vector<PackContents>> decode_index(core::ByteView data);

}  // namespace cairn::repo
