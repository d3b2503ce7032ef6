// Cryptographic primitives used by the repository format (docs/format.md):
// SHA-256 (file names), HMAC-SHA-256 (blob ids), AES-256-GCM (everything
// stored), argon2id (password -> key-encryption key), CSPRNG.
// OpenSSL 3 for the hot paths (AES-NI, SHA-NI), libsodium for argon2id and
// randomness. All functions are thread-safe.
#pragma once

#include <array>
#include <cstdint>

#include "core/bytes.h"
#include "core/status.h"

namespace cairn::crypto {

using core::Bytes;
using core::ByteView;

constexpr size_t kKeySize = 32;
constexpr size_t kNonceSize = 12;
constexpr size_t kTagSize = 16;
constexpr size_t kAeadOverhead = kNonceSize + kTagSize;

using Key = std::array<uint8_t, kKeySize>;
using Digest = std::array<uint8_t, 32>;

// Must be called once before any other function (initialises libsodium).
core::Status init();

void random_fill(uint8_t* out, size_t n);
Bytes random_bytes(size_t n);
Key random_key();

Digest sha256(ByteView data);

// Incremental SHA-256 (pack ids are computed while a pack is assembled).
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(ByteView data);
  Digest finish();

 private:
  void* ctx_;
};

Digest hmac_sha256(const Key& key, ByteView data);

// AES-256-GCM. Output layout: nonce(12) || ciphertext || tag(16), nonce random.
Bytes seal(const Key& key, ByteView plaintext);
// Appends the sealed form to `out` (avoids a copy when building packs).
void seal_append(const Key& key, ByteView plaintext, Bytes& out);
// Seals buf[kNonceSize .. kNonceSize + body_len) in place: writes the nonce to
// buf[0..12) and the tag after the body. buf must hold body_len + kAeadOverhead.
void seal_in_place(const Key& key, uint8_t* buf, size_t body_len);
// Fails with kCorruption when the tag does not verify (tampered or wrong key).
core::Result<Bytes> open(const Key& key, ByteView sealed);
// open() into `out`, whose capacity is reused (no fresh pages per call).
core::Status open_into(const Key& key, ByteView sealed, Bytes& out);

struct KdfParams {
  uint64_t ops = 3;                 // argon2id iterations
  uint64_t mem = 64ull << 20;       // bytes
};
// argon2id(password, salt[16]) -> 32-byte key.
core::Result<Key> derive_key(std::string_view password, ByteView salt, const KdfParams& params);
// Picks `ops` at the given memory so one derivation takes about `target_seconds`.
KdfParams calibrate_kdf(double target_seconds, uint64_t mem);

// --- X25519 sealed boxes (write-only agents, docs/format.md §15) ---
// libsodium crypto_box_seal: an ephemeral X25519 key pair per message, so only
// the holder of the recipient's secret key can open it, and the sender cannot.
constexpr size_t kBoxKeySize = 32;
constexpr size_t kBoxSealOverhead = 48;  // crypto_box_SEALBYTES
using BoxPublicKey = std::array<uint8_t, kBoxKeySize>;
struct BoxKeyPair {
  BoxPublicKey public_key;
  Key secret_key;
};
BoxKeyPair box_keypair();
// The public key belonging to a secret key (checks a stored pair).
BoxPublicKey box_public_key(const Key& secret_key);
Bytes box_seal(ByteView message, const BoxPublicKey& recipient);
// kCorruption when the box was not sealed to this pair or was altered.
core::Result<Bytes> box_seal_open(ByteView sealed, const BoxKeyPair& pair);
// --- end X25519 ---

// Constant-time comparison.
bool equal(ByteView a, ByteView b);

}  // namespace cairn::crypto
