#include "repo/pack.h"

#include <cstring>

#include "repo/compression.h"

namespace cairn::repo {

core::Bytes encode_pack_header(const crypto::Key& key, const std::vector<PackEntry>& entries) {
  return encode_pack_header_with([&](core::ByteView plain) { return crypto::seal(key, plain); },
                                 entries);
}

core::Bytes encode_pack_header_with(const std::function<core::Bytes(core::ByteView)>& seal,
                                    const std::vector<PackEntry>& entries) {
  core::Bytes plain;
  plain.reserve(entries.size() * kHeaderEntrySize);
  for (const auto& e : entries) {
    plain.push_back(static_cast<uint8_t>(e.type));
    plain.push_back(e.flags);
    core::put_u32le(plain, e.length);
    core::put_u32le(plain, e.raw_length);
    plain.insert(plain.end(), e.id.bytes.begin(), e.id.bytes.end());
  }
  core::Bytes sealed = seal(plain);
  core::put_u32le(sealed, static_cast<uint32_t>(sealed.size()));
  return sealed;
}

core::Result<HeaderRead> decode_pack_header(const crypto::Key& key, core::ByteView tail,
                                            uint64_t pack_size) {
  return decode_pack_header_with([&](core::ByteView sealed) { return crypto::open(key, sealed); },
                                 tail, pack_size);
}

core::Result<HeaderRead> decode_pack_header_with(
    const std::function<core::Result<core::Bytes>(core::ByteView)>& open, core::ByteView tail,
    uint64_t pack_size) {
  if (tail.size() < 4 || pack_size < 4) return core::corruption("pack is shorter than its trailer");
  uint32_t hlen = core::get_u32le(tail.data() + tail.size() - 4);
  if (hlen < crypto::kAeadOverhead || hlen + 4ull > pack_size)
    return core::corruption("pack header length " + std::to_string(hlen) + " is impossible");
  if (tail.size() < hlen + 4ull) return HeaderRead{{}, hlen + 4u};
  auto plain = open(tail.subspan(tail.size() - 4 - hlen, hlen));
  if (!plain.ok()) return plain.status().with_context("pack header");
  if (plain->size() % kHeaderEntrySize != 0) return core::corruption("pack header has a partial entry");
  HeaderRead r;
  uint64_t offset = 0;
  const uint64_t data_end = pack_size - 4 - hlen;
  for (size_t i = 0; i < plain->size(); i += kHeaderEntrySize) {
    const uint8_t* p = plain->data() + i;
    PackEntry e;
    if (p[0] > 1) return core::corruption("pack header: unknown blob type " + std::to_string(p[0]));
    e.type = static_cast<BlobType>(p[0]);
    e.flags = p[1];
    e.length = core::get_u32le(p + 2);
    e.raw_length = core::get_u32le(p + 6);
    std::memcpy(e.id.bytes.data(), p + 10, 32);
    e.offset = static_cast<uint32_t>(offset);
    offset += e.length;
    if (offset > data_end) return core::corruption("pack header: blob extends past the data area");
    r.entries.push_back(e);
  }
  return r;
}

core::Result<core::Bytes> open_blob(const crypto::Key& enc, const crypto::Key& mac,
                                    const PackEntry& e, core::ByteView sealed) {
  BlobScratch scratch;
  TRY(open_blob_into(enc, mac, e, sealed, scratch).status());
  return e.compressed() ? std::move(scratch.raw) : std::move(scratch.decrypted);
}

core::Result<core::ByteView> open_blob_into(const crypto::Key& enc, const crypto::Key& mac,
                                            const PackEntry& e, core::ByteView sealed,
                                            BlobScratch& scratch) {
  TRY(crypto::open_into(enc, sealed, scratch.decrypted));
  core::ByteView plain = scratch.decrypted;
  if (e.compressed()) {
    TRY(decompress_into(plain, e.raw_length, scratch.raw));
    plain = scratch.raw;
  } else if (plain.size() != e.raw_length) {
    return core::corruption("blob length differs from the index");
  }
  auto id = crypto::hmac_sha256(mac, plain);
  if (!std::equal(id.begin(), id.end(), e.id.bytes.begin()))
    return core::corruption("blob content does not match its id");
  return plain;
}

}  // namespace cairn::repo
