#include "repo/chunker.h"

#include <gtest/gtest.h>
#include <sodium.h>

#include <algorithm>
#include <cstring>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "crypto/crypto.h"

namespace cairn::repo {
namespace {

using core::Bytes;
using core::ByteView;

constexpr size_t kMiB = 1024 * 1024;
constexpr ChunkerParams kSmall{2 * 1024, 8 * 1024, 64 * 1024};

// Deterministic pseudo-random bytes (splitmix64): fast, and the same on every
// platform so expected boundaries can be pinned.
Bytes random_data(size_t n, uint64_t seed) {
  Bytes out(n);
  uint64_t x = seed;
  for (size_t i = 0; i < n; i += 8) {
    x += 0x9E3779B97F4A7C15ull;
    uint64_t z = x;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    for (size_t j = 0; j < 8 && i + j < n; ++j) out[i + j] = static_cast<uint8_t>(z >> (8 * j));
  }
  return out;
}

Bytes seed_of(uint8_t fill) { return Bytes(32, fill); }

// A reader over `data` that returns at most `max_read` bytes per call, or a
// varying 1..7 bytes when `tiny` is set.
Chunker::ReadFn reader(ByteView data, size_t max_read = kMiB, bool tiny = false) {
  return [data, max_read, tiny, pos = size_t{0}, k = size_t{0}](
             uint8_t* buf, size_t cap) mutable -> core::Result<size_t> {
    size_t n = tiny ? 1 + (k++ % 7) : max_read;
    n = std::min({n, cap, data.size() - pos});
    if (n > 0) std::memcpy(buf, data.data() + pos, n);  // data() may be null
    pos += n;
    return n;
  };
}

// Chunks `data`, checks that the chunks concatenate back to it, and returns
// the chunk lengths.
std::vector<size_t> chunk_sizes(const GearTable& gear, const ChunkerParams& p, ByteView data,
                                Chunker::ReadFn read) {
  Chunker chunker(gear, p, std::move(read));
  std::vector<size_t> sizes;
  size_t offset = 0;
  Bytes chunk;
  for (;;) {
    core::Result<bool> more = chunker.next(chunk);
    EXPECT_TRUE(more.ok()) << more.status().to_string();
    if (!more.ok() || !*more) break;
    EXPECT_LE(offset + chunk.size(), data.size());
    if (offset + chunk.size() > data.size()) break;
    EXPECT_EQ(0, std::memcmp(chunk.data(), data.data() + offset, chunk.size()))
        << "chunk " << sizes.size() << " differs from the input";
    offset += chunk.size();
    sizes.push_back(chunk.size());
  }
  EXPECT_EQ(offset, data.size()) << "chunks do not cover the input";
  return sizes;
}

std::vector<size_t> chunk_sizes(const GearTable& gear, const ChunkerParams& p, ByteView data) {
  return chunk_sizes(gear, p, data, reader(data));
}

void expect_within_bounds(const std::vector<size_t>& sizes, const ChunkerParams& p) {
  for (size_t i = 0; i + 1 < sizes.size(); ++i) {
    EXPECT_GE(sizes[i], p.min_size) << "chunk " << i;
    EXPECT_LE(sizes[i], p.max_size) << "chunk " << i;
  }
  if (!sizes.empty()) {
    EXPECT_GT(sizes.back(), 0u);
    EXPECT_LE(sizes.back(), p.max_size);
  }
}

// Fraction of b's bytes that lie in chunks also present in a.
double shared_fraction(ByteView a, const std::vector<size_t>& sa, ByteView b,
                       const std::vector<size_t>& sb) {
  std::unordered_set<std::string_view> seen;
  size_t off = 0;
  for (size_t s : sa) {
    seen.insert(core::as_chars(a.subspan(off, s)));
    off += s;
  }
  size_t shared = 0;
  off = 0;
  for (size_t s : sb) {
    if (seen.count(core::as_chars(b.subspan(off, s)))) shared += s;
    off += s;
  }
  return static_cast<double>(shared) / static_cast<double>(b.size());
}

class ChunkerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { ASSERT_TRUE(crypto::init().ok()); }
  static const Bytes& data64() {
    static const Bytes d = random_data(64 * kMiB, 1);
    return d;
  }
  GearTable gear_ = make_gear_table(seed_of(7));
};

TEST_F(ChunkerTest, GearTableIsChaCha20KeystreamOfSeed) {
  // docs/format.md: gear = ChaCha20-IETF(key = seed, nonce = "LibsodiumDRG"), u64 LE.
  Bytes seed = random_data(32, 99);
  GearTable gear = make_gear_table(seed);
  const uint8_t nonce[12] = {'L', 'i', 'b', 's', 'o', 'd', 'i', 'u', 'm', 'D', 'R', 'G'};
  Bytes ks(2048);
  crypto_stream_chacha20_ietf(ks.data(), ks.size(), nonce, seed.data());
  for (size_t i = 0; i < 256; ++i) EXPECT_EQ(gear[i], core::get_u64le(&ks[8 * i])) << i;
  EXPECT_EQ(gear, make_gear_table(seed));
  EXPECT_NE(gear, make_gear_table(seed_of(0)));
}

TEST_F(ChunkerTest, KnownAnswer) {
  // Pins the format (values cross-checked against an independent Python
  // implementation of docs/format.md): a change here breaks dedup against
  // existing repositories.
  GearTable gear = make_gear_table(seed_of(0));
  EXPECT_EQ(gear[0], 0x736f87d0128f1fa1ull);
  EXPECT_EQ(gear[255], 0x778211fe81664632ull);
  Bytes data = random_data(256 * 1024, 42);
  std::vector<size_t> sizes = chunk_sizes(gear, kSmall, data);
  ASSERT_EQ(sizes.size(), 30u);
  EXPECT_EQ(std::vector<size_t>(sizes.begin(), sizes.begin() + 8),
            (std::vector<size_t>{11195, 8693, 10802, 11932, 8422, 10916, 9513, 8411}));
  EXPECT_EQ(sizes.back(), 920u);

  Bytes big = random_data(8 * kMiB, 43);
  EXPECT_EQ(chunk_sizes(gear_, {}, big),
            (std::vector<size_t>{1313663, 1092594, 1224996, 1357386, 1508847, 1509655, 381467}));
}

TEST_F(ChunkerTest, Deterministic) {
  Bytes data = random_data(16 * kMiB, 2);
  std::vector<size_t> a = chunk_sizes(gear_, {}, data);
  std::vector<size_t> b = chunk_sizes(make_gear_table(seed_of(7)), {}, data);
  EXPECT_EQ(a, b);
  EXPECT_GT(a.size(), 4u);
}

TEST_F(ChunkerTest, DifferentSeedGivesDifferentBoundaries) {
  Bytes data = random_data(16 * kMiB, 3);
  std::vector<size_t> a = chunk_sizes(gear_, {}, data);
  std::vector<size_t> b = chunk_sizes(make_gear_table(seed_of(8)), {}, data);
  EXPECT_NE(a, b);
  // Not just shifted: almost nothing in common.
  EXPECT_LT(shared_fraction(data, a, data, b), 0.2);
}

TEST_F(ChunkerTest, ChunksWithinBoundsAndConcatenateToInput) {
  const ChunkerParams p;
  std::vector<size_t> sizes = chunk_sizes(gear_, p, data64());
  expect_within_bounds(sizes, p);
}

TEST_F(ChunkerTest, FindBoundaryAgreesWithChunker) {
  const ChunkerParams p;
  ByteView data = data64();
  std::vector<size_t> sizes = chunk_sizes(gear_, p, data);
  size_t off = 0;
  for (size_t s : sizes) {
    EXPECT_EQ(find_boundary(gear_, p, data.data() + off, data.size() - off), s) << off;
    off += s;
  }
}

TEST_F(ChunkerTest, AverageChunkSizeDefaultParams) {
  const ChunkerParams p;
  std::vector<size_t> sizes = chunk_sizes(gear_, p, data64());
  double avg = static_cast<double>(data64().size()) / static_cast<double>(sizes.size());
  EXPECT_GE(avg, 0.7 * p.avg_size);
  EXPECT_LE(avg, 1.6 * p.avg_size);
}

TEST_F(ChunkerTest, SmallParams) {
  Bytes data = random_data(16 * kMiB, 4);
  std::vector<size_t> sizes = chunk_sizes(gear_, kSmall, data);
  expect_within_bounds(sizes, kSmall);
  double avg = static_cast<double>(data.size()) / static_cast<double>(sizes.size());
  EXPECT_GE(avg, 0.7 * kSmall.avg_size);
  EXPECT_LE(avg, 1.6 * kSmall.avg_size);
  EXPECT_EQ(sizes, chunk_sizes(make_gear_table(seed_of(7)), kSmall, data));
}

TEST_F(ChunkerTest, ShiftResistance) {
  ByteView a = data64();
  Bytes b(a.begin(), a.end());
  Bytes insert = random_data(100, 5);
  b.insert(b.begin() + 1000, insert.begin(), insert.end());
  const ChunkerParams p;
  std::vector<size_t> sa = chunk_sizes(gear_, p, a);
  std::vector<size_t> sb = chunk_sizes(gear_, p, b);
  EXPECT_GT(shared_fraction(a, sa, b, sb), 0.9);
}

TEST_F(ChunkerTest, ShiftResistanceSmallParams) {
  Bytes a = random_data(16 * kMiB, 6);
  Bytes b = a;
  Bytes insert = random_data(100, 5);
  b.insert(b.begin() + 4 * kMiB, insert.begin(), insert.end());
  b.erase(b.begin() + 9 * kMiB, b.begin() + 9 * kMiB + 333);
  std::vector<size_t> sa = chunk_sizes(gear_, kSmall, a);
  std::vector<size_t> sb = chunk_sizes(gear_, kSmall, b);
  EXPECT_GT(shared_fraction(a, sa, b, sb), 0.99);
}

TEST_F(ChunkerTest, AllZeroInputGivesMaxSizeChunks) {
  const ChunkerParams p;
  Bytes data(3 * size_t{p.max_size} + 12345, 0);
  std::vector<size_t> sizes = chunk_sizes(gear_, p, data);
  EXPECT_EQ(sizes, (std::vector<size_t>{p.max_size, p.max_size, p.max_size, 12345}));
}

TEST_F(ChunkerTest, EmptyStreamGivesNoChunks) {
  Chunker chunker(gear_, {}, reader({}));
  Bytes chunk = {1, 2, 3};
  core::Result<bool> more = chunker.next(chunk);
  ASSERT_TRUE(more.ok());
  EXPECT_FALSE(*more);
  // Stays at end of stream.
  more = chunker.next(chunk);
  ASSERT_TRUE(more.ok());
  EXPECT_FALSE(*more);
}

TEST_F(ChunkerTest, ShortStreamIsOneChunk) {
  Bytes data = random_data(1000, 8);
  EXPECT_EQ(chunk_sizes(gear_, {}, data), (std::vector<size_t>{1000}));
  EXPECT_EQ(chunk_sizes(gear_, kSmall, data), (std::vector<size_t>{1000}));
}

TEST_F(ChunkerTest, TinyReadsGiveSameBoundaries) {
  Bytes data = random_data(4 * kMiB, 9);
  EXPECT_EQ(chunk_sizes(gear_, kSmall, data, reader(data, 0, /*tiny=*/true)),
            chunk_sizes(gear_, kSmall, data, reader(data, 8 * kMiB)));
  const ChunkerParams p;
  Bytes big = random_data(12 * kMiB, 10);
  EXPECT_EQ(chunk_sizes(gear_, p, big, reader(big, 0, /*tiny=*/true)),
            chunk_sizes(gear_, p, big, reader(big, 100 * kMiB)));
  EXPECT_EQ(chunk_sizes(gear_, p, big, reader(big, 4099)), chunk_sizes(gear_, p, big));
}

TEST_F(ChunkerTest, ReadErrorPropagates) {
  Bytes data = random_data(3 * kMiB, 11);
  size_t pos = 0;
  Chunker chunker(gear_, kSmall, [&](uint8_t* buf, size_t cap) -> core::Result<size_t> {
    if (pos >= 2 * kMiB) return core::io_error("disk on fire: /x");
    size_t n = std::min(cap, size_t{4096});
    std::memcpy(buf, data.data() + pos, n);
    pos += n;
    return n;
  });
  Bytes chunk;
  size_t total = 0;
  for (;;) {
    core::Result<bool> more = chunker.next(chunk);
    if (!more.ok()) {
      EXPECT_EQ(more.status().code(), core::Code::kIOError);
      EXPECT_EQ(more.status().message(), "disk on fire: /x");
      break;
    }
    ASSERT_TRUE(*more) << "reached end of stream despite the read error";
    total += chunk.size();
  }
  EXPECT_LE(total, pos);  // only bytes actually read were returned
  EXPECT_GT(total, 0u);
}

}  // namespace
}  // namespace cairn::repo
