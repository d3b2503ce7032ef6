// Byte buffers and their text encodings (hex for ids, base64 for JSON fields).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace cairn::core {

using Bytes = std::vector<uint8_t>;
using ByteView = std::span<const uint8_t>;

inline ByteView as_bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}
inline std::string_view as_chars(ByteView b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}
inline Bytes to_bytes(std::string_view s) { return Bytes(s.begin(), s.end()); }

std::string hex_encode(ByteView data);
std::optional<Bytes> hex_decode(std::string_view hex);
std::string base64_encode(ByteView data);
std::optional<Bytes> base64_decode(std::string_view text);

// Little-endian fixed-width integers (the binary parts of the repository format).
void put_u32le(Bytes& out, uint32_t v);
void put_u64le(Bytes& out, uint64_t v);
uint32_t get_u32le(const uint8_t* p);
uint64_t get_u64le(const uint8_t* p);

bool is_all_zero(ByteView data);
bool is_valid_utf8(std::string_view s);

// "1.5 GiB", "312 KiB".
std::string format_bytes(uint64_t n);
// "1m12s", "0.41s".
std::string format_duration(double seconds);

}  // namespace cairn::core
