#include "repo/index.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>

namespace cairn::repo {

bool Index::has(const Id& blob) const {
  std::shared_lock lock(mu_);
  return blobs_.count(blob) != 0;
}

bool Index::has_usable(const Id& blob) const {
  std::shared_lock lock(mu_);
  auto it = blobs_.find(blob);
  return it != blobs_.end() && !excluded_.count(packs_[it->second.pack]);
}

void Index::exclude_packs(const std::vector<Id>& packs) {
  std::unique_lock lock(mu_);
  excluded_.insert(packs.begin(), packs.end());
}

void Index::drop_pack(const Id& pack) {
  std::unique_lock lock(mu_);
  gone_.insert(pack);
  for (auto it = blobs_.begin(); it != blobs_.end();) {
    if (packs_[it->second.pack] == pack) {
      it = blobs_.erase(it);
    } else {
      ++it;
    }
  }
}

void Index::clear() {
  std::unique_lock lock(mu_);
  packs_.clear();
  blobs_.clear();
  excluded_.clear();
  gone_.clear();
}

bool Index::is_excluded(const Id& pack) const {
  std::shared_lock lock(mu_);
  return excluded_.count(pack) != 0;
}

std::optional<BlobLocation> Index::lookup(const Id& blob) const {
  std::shared_lock lock(mu_);
  auto it = blobs_.find(blob);
  if (it == blobs_.end()) return std::nullopt;
  return BlobLocation{packs_[it->second.pack], it->second.entry};
}

void Index::add(const PackContents& pack) {
  std::unique_lock lock(mu_);
  if (gone_.count(pack.pack)) return;
  auto idx = static_cast<uint32_t>(packs_.size());
  packs_.push_back(pack.pack);
  bool excluded = excluded_.count(pack.pack) != 0;
  for (const auto& e : pack.blobs) {
    // First copy wins, except that a copy in an excluded pack gives way to
    // one that is not (it is the copy that will still exist after prune).
    auto [it, inserted] = blobs_.emplace(e.id, Slot{idx, e});
    if (!inserted && !excluded && excluded_.count(packs_[it->second.pack])) it->second = Slot{idx, e};
  }
}

size_t Index::blob_count() const {
  std::shared_lock lock(mu_);
  return blobs_.size();
}

size_t Index::pack_count() const {
  std::shared_lock lock(mu_);
  return packs_.size();
}

std::vector<Id> Index::pack_ids() const {
  std::shared_lock lock(mu_);
  std::unordered_set<Id, IdHash> seen;
  std::vector<Id> out;
  for (const auto& p : packs_)
    if (seen.insert(p).second) out.push_back(p);
  return out;
}

void Index::for_each_pack(const std::function<void(const PackContents&)>& fn) const {
  std::map<uint32_t, PackContents> grouped;
  {
    std::shared_lock lock(mu_);
    for (const auto& [id, slot] : blobs_) {
      auto& pc = grouped[slot.pack];
      pc.pack = packs_[slot.pack];
      pc.blobs.push_back(slot.entry);
    }
  }
  for (auto& [idx, pc] : grouped) {
    std::sort(pc.blobs.begin(), pc.blobs.end(),
              [](const PackEntry& a, const PackEntry& b) { return a.offset < b.offset; });
    fn(pc);
  }
}

static constexpr uint8_t kIndexMagic[4] = {'C', 'I', 'D', 'X'};
static constexpr size_t kIndexEntrySize = 1 + 1 + 4 + 4 + 4 + 32;

core::Bytes encode_index(const std::vector<PackContents>& packs) {
  core::Bytes out(kIndexMagic, kIndexMagic + 4);
  out.push_back(1);  // version
  core::put_u32le(out, static_cast<uint32_t>(packs.size()));
  for (const auto& p : packs) {
    out.insert(out.end(), p.pack.bytes.begin(), p.pack.bytes.end());
    core::put_u32le(out, static_cast<uint32_t>(p.blobs.size()));
    for (const auto& e : p.blobs) {
      out.push_back(static_cast<uint8_t>(e.type));
      out.push_back(e.flags);
      core::put_u32le(out, e.offset);
      core::put_u32le(out, e.length);
      core::put_u32le(out, e.raw_length);
      out.insert(out.end(), e.id.bytes.begin(), e.id.bytes.end());
    }
  }
  return out;
}

core::Result<std::vector<PackContents>> decode_index(core::ByteView data) {
  if (data.size() < 9 || std::memcmp(data.data(), kIndexMagic, 4) != 0)
    return core::corruption("index: bad magic");
  if (data[4] != 1) return core::unsupported("index version " + std::to_string(data[4]));
  size_t pos = 5;
  auto need = [&](size_t n) { return pos + n <= data.size(); };
  uint32_t count = core::get_u32le(data.data() + pos);
  pos += 4;
  std::vector<PackContents> packs;
  for (uint32_t i = 0; i < count; ++i) {
    if (!need(36)) return core::corruption("index: truncated pack record");
    PackContents pc;
    std::memcpy(pc.pack.bytes.data(), data.data() + pos, 32);
    uint32_t n = core::get_u32le(data.data() + pos + 32);
    pos += 36;
    if (!need(static_cast<size_t>(n) * kIndexEntrySize)) return core::corruption("index: truncated blob list");
    pc.blobs.resize(n);
    for (auto& e : pc.blobs) {
      const uint8_t* p = data.data() + pos;
      if (p[0] > 1) return core::corruption("index: unknown blob type");
      e.type = static_cast<BlobType>(p[0]);
      e.flags = p[1];
      e.offset = core::get_u32le(p + 2);
      e.length = core::get_u32le(p + 6);
      e.raw_length = core::get_u32le(p + 10);
      std::memcpy(e.id.bytes.data(), p + 14, 32);
      pos += kIndexEntrySize;
    }
    packs.push_back(std::move(pc));
  }
  if (pos != data.size()) return core::corruption("index: trailing bytes");
  return packs;
}

}  // namespace cairn::repo
