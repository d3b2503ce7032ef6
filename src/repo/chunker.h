// Content-defined chunking (FastCDC with normalized chunking, level 2).
// Boundaries depend only on content and the per-repository gear table, so an
// insertion shifts at most the chunks around it and everything else dedups.
// Not thread-safe; one Chunker per stream. Memory: at most max_size + one read.
#pragma once

#include <array>
#include <cstdint>
#include <functional>

#include "core/bytes.h"
#include "core/status.h"

namespace cairn::repo {

struct ChunkerParams {
  uint32_t min_size = 512 * 1024;
  uint32_t avg_size = 1024 * 1024;  // must be a power of two
  uint32_t max_size = 8 * 1024 * 1024;
};

using GearTable = std::array<uint64_t, 256>;

// Derives the gear table from a 32-byte per-repository seed (docs/format.md
// gives the exact derivation so other implementations chunk identically).
GearTable make_gear_table(core::ByteView seed);

// Returns the length of the first chunk in data[0..n) given that the stream
// has `n` bytes available (n may be < max_size only at end of stream).
size_t find_boundary(const GearTable& gear, const ChunkerParams& p, const uint8_t* data, size_t n);

// Reads a stream through `read` (returns bytes read, 0 at EOF, or an error) and
// cuts it into chunks.
class Chunker {
 public:
  using ReadFn = std::function<core::Result<size_t>(uint8_t* buf, size_t cap)>;
  Chunker(const GearTable& gear, const ChunkerParams& params, ReadFn read);

  // Fills `chunk` with the next chunk; returns false at end of stream.
  core::Result<bool> next(core::Bytes& chunk);

 private:
  const GearTable& gear_;
  ChunkerParams params_;
  ReadFn read_;
  core::Bytes buf_;   // holds up to max_size bytes of look-ahead
  size_t start_ = 0;  // first unconsumed byte in buf_
  size_t end_ = 0;    // one past the last valid byte
  bool eof_ = false;

  // Grows buf_ (up to buf_limit_) or drops the consumed prefix so a read fits.
  void make_room();

  uint64_t mask_s_ = 0;  // see chunker.cc for the exact definition
  uint64_t mask_l_ = 0;
  size_t read_size_ = 0;  // largest single read requested from read_
  size_t buf_limit_ = 0;  // max_size + read_size_
  size_t scan_pos_ = 0;   // next chunk-relative offset to hash (>= min_size)
  uint64_t hash_ = 0;     // gear hash state at scan_pos_
};

}  // namespace cairn::repo
