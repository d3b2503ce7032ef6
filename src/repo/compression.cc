#include "repo/compression.h"

#include <zstd.h>

#include <algorithm>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

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

namespace {

constexpr size_t kSampleSize = 8 * 1024;
constexpr size_t kSampleFrom = 128 * 1024;  // smaller blobs are just compressed

// Compresses three small samples (start, middle, end) at level 1. Already
// compressed data (archives, media, .gz man pages) does not shrink, and
// running the full level-3 match finder over it is the largest single cost
// of a backup; a sample that does not shrink by 1/32 decides "store raw".
bool looks_incompressible(core::ByteView data) {
  // Its own context: switching one context between levels resets its tables
  // on every call, which cost more than the sampling saves.
  thread_local std::unique_ptr<ZSTD_CCtx, CCtxDeleter> cctx(ZSTD_createCCtx());
  uint8_t out[kSampleSize + 512];
  size_t in_total = 0, out_total = 0;
  for (size_t pos : {size_t{0}, data.size() / 2 - kSampleSize / 2, data.size() - kSampleSize}) {
    size_t n = ZSTD_compressCCtx(cctx.get(), out, sizeof out, data.data() + pos, kSampleSize, 1);
    if (ZSTD_isError(n)) return false;
    in_total += kSampleSize;
    out_total += n;
  }
  return out_total >= in_total - in_total / 32;
}

}  // namespace

namespace {

// Compression contexts shared by every thread, at most two per CPU (plus
// two) in use at once. A backup compresses on its CPU pool and on every
// reader thread (small files): a context per thread kept ~1 MiB of match
// tables on each of ~10 threads, and compression is CPU-bound, so more
// contexts would not compress faster. (One per CPU was too few: threads
// preempted mid-compression held them and readers waited instead of reading.)
// Contexts are reused newest first.
class CCtxPool {
 public:
  CCtxPool() : limit_(2 * std::max(2u, std::thread::hardware_concurrency()) + 2) {}

  class Lease {
   public:
    Lease(CCtxPool& pool, ZSTD_CCtx* cctx) : pool_(pool), cctx_(cctx) {}
    ~Lease() { pool_.release(cctx_); }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ZSTD_CCtx* get() const { return cctx_; }

   private:
    CCtxPool& pool_;
    ZSTD_CCtx* cctx_;
  };

  Lease acquire() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return !free_.empty() || created_ < limit_; });
    if (free_.empty()) {
      ++created_;
      lock.unlock();
      return Lease(*this, ZSTD_createCCtx());
    }
    ZSTD_CCtx* c = free_.back().release();
    free_.pop_back();
    return Lease(*this, c);
  }

 private:
  void release(ZSTD_CCtx* c) {
    {
      std::lock_guard lock(mu_);
      if (c) {
        free_.emplace_back(c);
      } else {
        --created_;  // creation failed (out of memory): let a later caller retry
      }
    }
    cv_.notify_one();
  }

  const size_t limit_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<ZSTD_CCtx, CCtxDeleter>> free_;
  size_t created_ = 0;
};

// Level 3 as zstd defines it for inputs above 256 KiB has a 2^17-entry hash
// table and a 2^16-entry short table (768 KiB together), larger than a
// core's L2 cache. For 1 MiB blobs the 4x smaller tables compress the bench
// corpus 18 % faster and only 0.8 % larger (docs/benchmarks.md); smaller
// inputs get smaller tables from zstd itself, as at every level.
size_t compress_with(ZSTD_CCtx* cctx, core::ByteView data, Compression c, uint8_t* out,
                     size_t cap) {
  if (c != Compression::kAuto)
    return ZSTD_compressCCtx(cctx, out, cap, data.data(), data.size(), zstd_level(c));
  ZSTD_CCtx_reset(cctx, ZSTD_reset_session_and_parameters);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, zstd_level(c));
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_hashLog, 16);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_chainLog, 14);
  return ZSTD_compress2(cctx, out, cap, data.data(), data.size());
}

}  // namespace

std::optional<size_t> compress_into(core::ByteView data, Compression c, uint8_t* out, size_t cap) {
  if (c == Compression::kOff || data.size() < 64) return std::nullopt;
  if (c == Compression::kAuto && data.size() >= kSampleFrom && looks_incompressible(data))
    return std::nullopt;
  static CCtxPool& pool = *new CCtxPool;  // never destroyed: no exit-time race
  CCtxPool::Lease cctx = pool.acquire();
  if (!cctx.get()) return std::nullopt;  // no memory for a context: store raw
  size_t n = compress_with(cctx.get(), data, c, out, cap);
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
  core::Bytes out;
  TRY(decompress_into(data, raw_length, out));
  return out;
}

core::Status decompress_into(core::ByteView data, size_t raw_length, core::Bytes& out) {
  thread_local std::unique_ptr<ZSTD_DCtx, DCtxDeleter> dctx(ZSTD_createDCtx());
  out.resize(raw_length);
  size_t n = ZSTD_decompressDCtx(dctx.get(), out.data(), out.size(), data.data(), data.size());
  if (ZSTD_isError(n)) return core::corruption(std::string("zstd: ") + ZSTD_getErrorName(n));
  if (n != raw_length) return core::corruption("zstd: decompressed length differs from recorded");
  return core::ok_status();
}

core::Result<core::Bytes> decompress_frame(core::ByteView data) {
  unsigned long long size = ZSTD_getFrameContentSize(data.data(), data.size());
  if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN || size > (1ull << 34))
    return core::corruption("zstd: bad frame header");
  return decompress(data, static_cast<size_t>(size));
}

}  // namespace cairn::repo
