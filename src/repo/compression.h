// zstd compression of blobs and repository files. Thread-safe (compression
// contexts come from a small shared pool, decompression ones are per thread).
#pragma once

#include <optional>
#include <string>

#include "core/bytes.h"
#include "core/status.h"

namespace cairn::repo {

enum class Compression { kOff, kFast, kAuto, kMax };

std::optional<Compression> parse_compression(std::string_view s);  // off|fast|auto|max
int zstd_level(Compression c);  // 0 for off

// Returns the compressed form, or nullopt when compression is off or the data
// does not shrink (then the caller stores it raw).
std::optional<core::Bytes> compress(core::ByteView data, Compression c);
// Compresses into out[0..cap); returns the compressed size, or nullopt under
// the same conditions as compress(). cap >= max_compressed_size(data.size()).
std::optional<size_t> compress_into(core::ByteView data, Compression c, uint8_t* out, size_t cap);
size_t max_compressed_size(size_t n);
// `raw_length` is the expected plaintext size (recorded beside the blob).
core::Result<core::Bytes> decompress(core::ByteView data, size_t raw_length);
// decompress() into `out`, whose capacity is reused.
core::Status decompress_into(core::ByteView data, size_t raw_length, core::Bytes& out);
// For repository files whose plaintext size is not recorded elsewhere.
core::Result<core::Bytes> decompress_frame(core::ByteView data);

}  // namespace cairn::repo
