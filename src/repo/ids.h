// Identifiers in the repository: blob ids (HMAC-SHA-256 of plaintext) and
// file ids (SHA-256 of stored bytes) are 32 bytes, shown as 64 hex chars.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include "core/bytes.h"

namespace cairn::repo {

struct Id {
  std::array<uint8_t, 32> bytes{};

  std::string hex() const { return core::hex_encode(bytes); }
  std::string short_hex() const { return hex().substr(0, 8); }
  static std::optional<Id> from_hex(std::string_view hex);
  static Id from_digest(const std::array<uint8_t, 32>& d) { return Id{d}; }
  bool is_zero() const;

  friend bool operator==(const Id& a, const Id& b) { return a.bytes == b.bytes; }
  friend bool operator<(const Id& a, const Id& b) { return a.bytes < b.bytes; }
};

struct IdHash {
  size_t operator()(const Id& id) const {
    size_t h;
    std::memcpy(&h, id.bytes.data(), sizeof h);  // ids are uniformly random already
    return h;
  }
};

enum class BlobType : uint8_t { kData = 0, kTree = 1 };
const char* blob_type_name(BlobType t);

}  // namespace cairn::repo
