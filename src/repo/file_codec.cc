#include "repo/file_codec.h"

#include "repo/compression.h"

namespace cairn::repo {

core::Bytes frame_file(core::ByteView plaintext, bool compress_it) {
  core::Bytes framed;
  auto packed = compress_it ? compress(plaintext, Compression::kAuto) : std::nullopt;
  framed.reserve(1 + (packed ? packed->size() : plaintext.size()));
  framed.push_back(packed ? 1 : 0);
  if (packed) {
    framed.insert(framed.end(), packed->begin(), packed->end());
  } else {
    framed.insert(framed.end(), plaintext.begin(), plaintext.end());
  }
  return framed;
}

core::Result<core::Bytes> unframe_file(core::ByteView framed) {
  if (framed.empty()) return core::corruption("empty file payload");
  core::ByteView payload(framed.data() + 1, framed.size() - 1);
  if (framed[0] == 0) return core::Bytes(payload.begin(), payload.end());
  if (framed[0] == 1) return decompress_frame(payload);
  return core::corruption("unknown file payload flag " + std::to_string(framed[0]));
}

core::Bytes encode_file(const crypto::Key& key, core::ByteView plaintext, bool compress_it) {
  return crypto::seal(key, frame_file(plaintext, compress_it));
}

core::Result<core::Bytes> decode_file(const crypto::Key& key, core::ByteView stored) {
  ASSIGN_OR_RETURN(core::Bytes framed, crypto::open(key, stored));
  return unframe_file(framed);
}

}  // namespace cairn::repo
