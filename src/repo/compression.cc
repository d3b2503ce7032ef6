#include "repo/compression.h"

#include <zstd.h>

#include <memory>

namespace cairn::repo {

std::optional<Compression> parse_compression(std::string_view s) {
  if (s == "off") return Compression::kOff;
  if (s == "fast") return Compression::kFast;
  if (s == "auto") return Compression::kAuto;
  if (s == "max") return Compression::kMax;
  return std::nullopt;
}

int zstd_level(Compression c) {
  switch (c) {
    case Compression::kOff: return 0;
    case Compression::kFast: return 1;
    case Compression::kAuto: return 3;
    case Compression::kMax: return 19;
  }
  return 3;
}

namespace {
struct CCtxDeleter {
  void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
};
struct DCtxDeleter {
  void operator()(ZSTD_DCtx* c) const { ZSTD_freeDCtx(c); }
};
}  // namespace

size_t max_compressed_size(size_t n) { return ZSTD_compressBound(n); }

std::optional<size_t> compress_into(core::ByteView data, Compression c, uint8_t* out, size_t cap) {
  if (c == Compression::kOff || data.size() < 64) return std::nullopt;
  thread_local std::unique_ptr<ZSTD_CCtx, CCtxDeleter> cctx(ZSTD_createCCtx());
  size_t n = ZSTD_compressCCtx(cctx.get(), out, cap, data.data(), data.size(), zstd_level(c));
  // Keep the raw form unless compression saves at least 1/64: decompressing
  // incompressible data costs restore time for nothing.
  if (ZSTD_isError(n) || n >= data.size() - data.size() / 64) return std::nullopt;
  return n;
}

std::optional<core::Bytes> compress(core::ByteView data, Compression c) {
  core::Bytes out(max_compressed_size(data.size()));
  auto n = compress_into(data, c, out.data(), out.size());
  if (!n) return std::nullopt;
  out.resize(*n);
  return out;
}

core::Result<core::Bytes> decompress(core::ByteView data, size_t raw_length) {
  thread_local std::unique_ptr<ZSTD_DCtx, DCtxDeleter> dctx(ZSTD_createDCtx());
  core::Bytes out(raw_length);
  size_t n = ZSTD_decompressDCtx(dctx.get(), out.data(), out.size(), data.data(), data.size());
  if (ZSTD_isError(n)) return core::corruption(std::string("zstd: ") + ZSTD_getErrorName(n));
  if (n != raw_length) return core::corruption("zstd: decompressed length differs from recorded");
  return out;
}

core::Result<core::Bytes> decompress_frame(core::ByteView data) {
  unsigned long long size = ZSTD_getFrameContentSize(data.data(), data.size());
  if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN || size > (1ull << 34))
    return core::corruption("zstd: bad frame header");
  return decompress(data, static_cast<size_t>(size));
}

}  // namespace cairn::repo
