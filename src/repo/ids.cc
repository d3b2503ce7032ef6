#include "repo/ids.h"

namespace cairn::repo {

std::optional<Id> Id::from_hex(std::string_view hex) {
  // Decodes in place: trees hold one id per chunk, and a heap buffer per id
  // showed up in the unchanged-backup profile.
  if (hex.size() != 64) return std::nullopt;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  Id id;
  for (size_t i = 0; i < 32; ++i) {
    int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    id.bytes[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return id;
}

bool Id::is_zero() const {
  for (auto b : bytes)
    if (b) return false;
  return true;
}

const char* blob_type_name(BlobType t) { return t == BlobType::kTree ? "tree" : "data"; }

}  // namespace cairn::repo
