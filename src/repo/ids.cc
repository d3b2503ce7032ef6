#include "repo/ids.h"

namespace cairn::repo {

std::optional<Id> Id::from_hex(std::string_view hex) {
  if (hex.size() != 64) return std::nullopt;
  auto b = core::hex_decode(hex);
  if (!b) return std::nullopt;
  Id id;
  std::memcpy(id.bytes.data(), b->data(), 32);
  return id;
}

bool Id::is_zero() const {
  for (auto b : bytes)
    if (b) return false;
  return true;
}

const char* blob_type_name(BlobType t) { return t == BlobType::kTree ? "tree" : "data"; }

}  // namespace cairn::repo
