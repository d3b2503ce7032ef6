// Microbenchmarks for the per-byte hot paths of a backup: chunking, hashing,
// encryption and compression. Run: ./build/release/cairn_microbench
#include <benchmark/benchmark.h>
#include <zstd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>

#include "crypto/crypto.h"
#include "repo/chunker.h"

namespace cairn {
namespace {

using core::Bytes;

constexpr size_t kMiB = 1024 * 1024;

// libsodium must be initialised before any crypto call; do it at static init
// so the stock BENCHMARK_MAIN can be used.
const bool kCryptoReady = [] {
  if (!crypto::init().ok()) std::abort();
  return true;
}();

Bytes random_data(size_t n) {
  Bytes b(n);
  crypto::random_fill(b.data(), n);
  return b;
}

// Half incompressible, half text-like repetition: roughly what a home
// directory looks like to the compressor.
Bytes mixed_data(size_t n) {
  Bytes b = random_data(n);
  static const char* kWords[] = {"backup ", "chunk ", "repository ", "snapshot ", "the ",
                                 "of ",     "and ",   "index\n",     "pack ",     "tree "};
  size_t i = n / 2;
  uint32_t x = 12345;
  while (i < n) {
    x = x * 1103515245 + 12345;
    const char* w = kWords[(x >> 16) % 10];
    size_t len = std::min(std::strlen(w), n - i);
    std::memcpy(b.data() + i, w, len);
    i += len;
  }
  return b;
}

void BM_Chunker(benchmark::State& state) {
  const Bytes data = random_data(64 * kMiB);
  const repo::GearTable gear = repo::make_gear_table(random_data(32));
  // Arg 0: default params; arg 1: small (2/8/64 KiB), where a larger share of
  // bytes is hashed because min_size is a smaller fraction of each chunk.
  const repo::ChunkerParams params =
      state.range(0) == 0 ? repo::ChunkerParams{} : repo::ChunkerParams{2048, 8192, 65536};
  Bytes chunk;
  size_t chunks = 0;
  for (auto _ : state) {
    size_t pos = 0;
    repo::Chunker chunker(gear, params, [&](uint8_t* buf, size_t cap) -> core::Result<size_t> {
      size_t n = std::min(cap, data.size() - pos);
      std::memcpy(buf, data.data() + pos, n);
      pos += n;
      return n;
    });
    for (;;) {
      core::Result<bool> more = chunker.next(chunk);
      if (!more.ok() || !*more) break;
      ++chunks;
      benchmark::DoNotOptimize(chunk.data());
    }
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * data.size()));
  state.counters["avg_chunk_KiB"] = static_cast<double>(state.iterations() * data.size()) /
                                    static_cast<double>(std::max<size_t>(chunks, 1)) / 1024.0;
}
BENCHMARK(BM_Chunker)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);

// find_boundary alone: the gear-hash inner loop without any copying.
void BM_FindBoundary(benchmark::State& state) {
  const Bytes data = random_data(64 * kMiB);
  const repo::GearTable gear = repo::make_gear_table(random_data(32));
  const repo::ChunkerParams p;
  for (auto _ : state) {
    size_t off = 0;
    while (off < data.size())
      off += repo::find_boundary(gear, p, data.data() + off, data.size() - off);
    benchmark::DoNotOptimize(off);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * data.size()));
}
BENCHMARK(BM_FindBoundary)->Unit(benchmark::kMillisecond);

void BM_Sha256(benchmark::State& state) {
  const Bytes data = random_data(kMiB);
  for (auto _ : state) benchmark::DoNotOptimize(crypto::sha256(data));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * data.size()));
}
BENCHMARK(BM_Sha256);

void BM_HmacSha256(benchmark::State& state) {
  const Bytes data = random_data(kMiB);
  const crypto::Key key = crypto::random_key();
  for (auto _ : state) benchmark::DoNotOptimize(crypto::hmac_sha256(key, data));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * data.size()));
}
BENCHMARK(BM_HmacSha256);

void BM_AesGcmSeal(benchmark::State& state) {
  const Bytes data = random_data(kMiB);
  const crypto::Key key = crypto::random_key();
  for (auto _ : state) benchmark::DoNotOptimize(crypto::seal(key, data));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * data.size()));
}
BENCHMARK(BM_AesGcmSeal);

void BM_AesGcmOpen(benchmark::State& state) {
  const Bytes data = random_data(kMiB);
  const crypto::Key key = crypto::random_key();
  const Bytes sealed = crypto::seal(key, data);
  for (auto _ : state) {
    core::Result<Bytes> plain = crypto::open(key, sealed);
    if (!plain.ok()) {
      state.SkipWithError(plain.status().to_string().c_str());
      break;
    }
    benchmark::DoNotOptimize(plain->data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * data.size()));
}
BENCHMARK(BM_AesGcmOpen);

void BM_ZstdCompress(benchmark::State& state) {
  const int level = static_cast<int>(state.range(0));
  const Bytes data = mixed_data(kMiB);
  Bytes out(ZSTD_compressBound(data.size()));
  size_t n = 0;
  for (auto _ : state) {
    n = ZSTD_compress(out.data(), out.size(), data.data(), data.size(), level);
    if (ZSTD_isError(n)) {
      state.SkipWithError(ZSTD_getErrorName(n));
      break;
    }
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * data.size()));
  state.counters["ratio"] =
      static_cast<double>(data.size()) / static_cast<double>(std::max<size_t>(n, 1));
}
BENCHMARK(BM_ZstdCompress)->Arg(1)->Arg(3);

void BM_ZstdDecompress(benchmark::State& state) {
  const int level = static_cast<int>(state.range(0));
  const Bytes data = mixed_data(kMiB);
  Bytes compressed(ZSTD_compressBound(data.size()));
  compressed.resize(
      ZSTD_compress(compressed.data(), compressed.size(), data.data(), data.size(), level));
  Bytes out(data.size());
  for (auto _ : state) {
    size_t n = ZSTD_decompress(out.data(), out.size(), compressed.data(), compressed.size());
    if (ZSTD_isError(n) || n != data.size()) {
      state.SkipWithError("zstd decompression failed");
      break;
    }
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * data.size()));
}
BENCHMARK(BM_ZstdDecompress)->Arg(1)->Arg(3);

}  // namespace
}  // namespace cairn

BENCHMARK_MAIN();
