// Pack files: blobs (each sealed separately) followed by a sealed header
// listing them and a 4-byte little-endian length of the sealed header.
// See docs/format.md for the byte layout.
#pragma once

#include <functional>
#include <vector>

#include "core/bytes.h"
#include "core/status.h"
#include "crypto/crypto.h"
#include "repo/ids.h"

namespace cairn::repo {

constexpr uint8_t kBlobCompressed = 1;  // flags bit 0
// flags bit 1: written by an agent; the stored form starts with the sealed
// data key that opens it (repo/agent.h).
constexpr uint8_t kBlobSealedKey = 2;
constexpr size_t kHeaderEntrySize = 1 + 1 + 4 + 4 + 32;
constexpr size_t kTargetPackSize = 16u << 20;

struct PackEntry {
  BlobType type = BlobType::kData;
  uint8_t flags = 0;
  uint32_t offset = 0;      // derived: sum of the lengths before it
  uint32_t length = 0;      // stored (sealed) length
  uint32_t raw_length = 0;  // plaintext length
  Id id;
  bool compressed() const { return flags & kBlobCompressed; }
};

// Serialises entries (offsets implicit) and seals them.
core::Bytes encode_pack_header(const crypto::Key& key, const std::vector<PackEntry>& entries);
// The same with another sealing (agent packs seal their header like agent files).
core::Bytes encode_pack_header_with(const std::function<core::Bytes(core::ByteView)>& seal,
                                    const std::vector<PackEntry>& entries);
// Parses the trailer of a pack of `pack_size` bytes given its last `tail` bytes
// (which must include the whole sealed header and the 4-byte length).
// Returns kCorruption naming what is wrong; kOutOfRange-like cases ask for more
// bytes via `needed` (set when tail is too short, with ok status and empty result).
struct HeaderRead {
  std::vector<PackEntry> entries;
  size_t needed = 0;  // > 0: call again with at least this many tail bytes
};
core::Result<HeaderRead> decode_pack_header(const crypto::Key& key, core::ByteView tail,
                                            uint64_t pack_size);
core::Result<HeaderRead> decode_pack_header_with(
    const std::function<core::Result<core::Bytes>(core::ByteView)>& open, core::ByteView tail,
    uint64_t pack_size);

// Decrypts, decompresses and verifies one blob taken from a pack.
core::Result<core::Bytes> open_blob(const crypto::Key& enc, const crypto::Key& mac,
                                    const PackEntry& e, core::ByteView sealed);

// Buffers reused by one thread opening blob after blob (prune's repack):
// after the first blobs, no allocation and no page faults per blob. Each
// buffer keeps the size of the largest blob seen, which is why restore and
// check, with many more threads, allocate per blob instead. One per thread.
struct BlobScratch {
  core::Bytes decrypted, raw;
};
// open_blob() into `scratch`; the view stays valid until its next use.
core::Result<core::ByteView> open_blob_into(const crypto::Key& enc, const crypto::Key& mac,
                                            const PackEntry& e, core::ByteView sealed,
                                            BlobScratch& scratch);

}  // namespace cairn::repo
