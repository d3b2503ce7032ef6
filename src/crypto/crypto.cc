#include "crypto/crypto.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <sodium.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>
#include <stdexcept>

namespace cairn::crypto {

core::Status init() {
  if (sodium_init() < 0) return core::Status(core::Code::kIOError, "libsodium failed to initialise");
  return {};
}

void random_fill(uint8_t* out, size_t n) { randombytes_buf(out, n); }

Bytes random_bytes(size_t n) {
  Bytes b(n);
  random_fill(b.data(), n);
  return b;
}

Key random_key() {
  Key k;
  random_fill(k.data(), k.size());
  return k;
}

BoxKeyPair box_keypair() {
  BoxKeyPair kp;
  crypto_box_keypair(kp.public_key.data(), kp.secret_key.data());
  return kp;
}

BoxPublicKey box_public_key(const Key& secret_key) {
  BoxPublicKey pk;
  crypto_scalarmult_base(pk.data(), secret_key.data());
  return pk;
}

Bytes box_seal(ByteView message, const BoxPublicKey& recipient) {
  static_assert(kBoxSealOverhead == crypto_box_SEALBYTES);
  Bytes out(message.size() + crypto_box_SEALBYTES);
  crypto_box_seal(out.data(), message.data(), message.size(), recipient.data());
  return out;
}

core::Result<Bytes> box_seal_open(ByteView sealed, const BoxKeyPair& pair) {
  if (sealed.size() < crypto_box_SEALBYTES) return core::corruption("sealed box is too short");
  Bytes out(sealed.size() - crypto_box_SEALBYTES);
  if (crypto_box_seal_open(out.data(), sealed.data(), sealed.size(), pair.public_key.data(),
                           pair.secret_key.data()) != 0) {
    return core::corruption("sealed box does not open with the repository's key");
  }
  return out;
}

Digest sha256(ByteView data) {
  Digest d;
  SHA256(data.data(), data.size(), d.data());
  return d;
}

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  EVP_DigestInit_ex(static_cast<EVP_MD_CTX*>(ctx_), EVP_sha256(), nullptr);
}
Sha256::~Sha256() { EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_)); }
void Sha256::update(ByteView data) {
  EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(ctx_), data.data(), data.size());
}
Digest Sha256::finish() {
  Digest d;
  unsigned int len = 0;
  EVP_DigestFinal_ex(static_cast<EVP_MD_CTX*>(ctx_), d.data(), &len);
  return d;
}

Digest hmac_sha256(const Key& key, ByteView data) {
  Digest d;
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), data.data(), data.size(),
       d.data(), &len);
  return d;
}

namespace {
struct CipherCtxDeleter {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};
using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, CipherCtxDeleter>;

// One context per thread: creating an EVP_CIPHER_CTX per blob is measurable.
EVP_CIPHER_CTX* thread_ctx() {
  thread_local CipherCtx ctx(EVP_CIPHER_CTX_new());
  return ctx.get();
}
}  // namespace

// Encrypts n bytes from `in` to `out` (which may be equal) and appends the tag.
static void gcm_encrypt(const Key& key, const uint8_t* nonce, const uint8_t* in, size_t n, uint8_t* out) {
  EVP_CIPHER_CTX* ctx = thread_ctx();
  int len = 0;
  bool ok = EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), nullptr, key.data(), nonce) == 1;
  // EVP takes int lengths; blobs are at most a few MiB, but loop for safety.
  size_t done = 0;
  while (ok && done < n) {
    int step = static_cast<int>(std::min<size_t>(n - done, 1u << 30));
    ok = EVP_EncryptUpdate(ctx, out + done, &len, in + done, step) == 1;
    done += static_cast<size_t>(len);
  }
  ok = ok && EVP_EncryptFinal_ex(ctx, out + done, &len) == 1;
  ok = ok && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, kTagSize, out + n) == 1;
  if (!ok) throw std::runtime_error("AES-256-GCM encryption failed");  // cannot happen
}

void seal_append(const Key& key, ByteView plaintext, Bytes& out) {
  size_t base = out.size();
  out.resize(base + kNonceSize + plaintext.size() + kTagSize);
  uint8_t* nonce = out.data() + base;
  random_fill(nonce, kNonceSize);
  gcm_encrypt(key, nonce, plaintext.data(), plaintext.size(), nonce + kNonceSize);
}

void seal_in_place(const Key& key, uint8_t* buf, size_t body_len) {
  random_fill(buf, kNonceSize);
  gcm_encrypt(key, buf, buf + kNonceSize, body_len, buf + kNonceSize);
}

Bytes seal(const Key& key, ByteView plaintext) {
  Bytes out;
  seal_append(key, plaintext, out);
  return out;
}

core::Result<Bytes> open(const Key& key, ByteView sealed) {
  Bytes out;
  TRY(open_into(key, sealed, out));
  return out;
}

core::Status open_into(const Key& key, ByteView sealed, Bytes& out) {
  if (sealed.size() < kAeadOverhead)
    return core::corruption("ciphertext too short (" + std::to_string(sealed.size()) + " bytes)");
  size_t n = sealed.size() - kAeadOverhead;
  out.resize(n);
  EVP_CIPHER_CTX* ctx = thread_ctx();
  int len = 0;
  const uint8_t* nonce = sealed.data();
  const uint8_t* ct = nonce + kNonceSize;
  bool ok = EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), nullptr, key.data(), nonce) == 1;
  size_t done = 0;
  while (ok && done < n) {
    int chunk = static_cast<int>(std::min<size_t>(n - done, 1u << 30));
    ok = EVP_DecryptUpdate(ctx, out.data() + done, &len, ct + done, chunk) == 1;
    done += static_cast<size_t>(len);
  }
  ok = ok && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, kTagSize,
                                 const_cast<uint8_t*>(ct + n)) == 1;
  ok = ok && EVP_DecryptFinal_ex(ctx, out.data() + done, &len) == 1;
  if (!ok) return core::corruption("authentication failed (data modified or wrong key)");
  return core::ok_status();
}

core::Result<Key> derive_key(std::string_view password, ByteView salt, const KdfParams& p) {
  if (salt.size() != crypto_pwhash_SALTBYTES) return core::invalid_argument("KDF salt must be 16 bytes");
  if (p.ops < crypto_pwhash_OPSLIMIT_MIN || p.mem < crypto_pwhash_MEMLIMIT_MIN)
    return core::invalid_argument("KDF parameters below argon2id minimums");
  Key k;
  if (crypto_pwhash(k.data(), k.size(), password.data(), password.size(), salt.data(), p.ops,
                    static_cast<size_t>(p.mem), crypto_pwhash_ALG_ARGON2ID13) != 0)
    return core::Status(core::Code::kIOError, "argon2id: out of memory");
  return k;
}

KdfParams calibrate_kdf(double target_seconds, uint64_t mem) {
  Bytes salt(crypto_pwhash_SALTBYTES, 0);
  auto seconds = [&](uint64_t ops) {
    auto start = std::chrono::steady_clock::now();
    (void)derive_key("calibration", salt, KdfParams{ops, mem});
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  // A derivation costs a fixed part (mapping and first touching `mem`) plus
  // one part per pass. Timing one pass alone counted the fixed part as a
  // pass and chose half the passes the target allows (64 MiB: 0.039 s for one
  // pass, 0.017 s for each further one), so time one and three passes,
  // after a first pass that only warms up (the process's first derivation
  // took twice as long and made the estimate pick 39 passes instead of 23).
  (void)seconds(1);
  const double one = seconds(1), three = seconds(3);
  const double per_pass = (three - one) / 2;
  double ops = 3;
  if (per_pass > 0)
    ops = 1 + (target_seconds - one) / per_pass;
  else if (one > 0)
    ops = target_seconds / one;
  return KdfParams{std::clamp<uint64_t>(static_cast<uint64_t>(std::max(ops, 1.0)), 1, 64), mem};
}

bool equal(ByteView a, ByteView b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace cairn::crypto
