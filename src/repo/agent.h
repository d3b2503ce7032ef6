// Write-only agent keys (docs/format.md §15, docs/security.md): an agent
// encrypts everything it writes with a random per-session data key and seals
// that key to the repository's X25519 public key. It never holds the master
// encryption key, so it cannot read what others (or it) stored earlier;
// readers with the master key hold the repository's X25519 secret key and
// unseal the data keys.
//
// Stored forms (all lengths in bytes):
//   sealed data key   = crypto_box_seal(data key, repository public key)     (80)
//   agent file        = "CAG1" || sealed data key || Seal(data key, payload) (files, pack headers)
//   agent blob        = sealed data key || Seal(data key, body)             (flag kBlobSealedKey)
//
// AgentSession is immutable after start(); DataKeyOpener is thread-safe.
#pragma once

#include <array>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "core/bytes.h"
#include "core/status.h"
#include "crypto/crypto.h"

namespace cairn::repo {

constexpr size_t kSealedDataKeySize = crypto::kKeySize + crypto::kBoxSealOverhead;  // 80
constexpr std::array<uint8_t, 4> kAgentFileMagic = {'C', 'A', 'G', '1'};
constexpr size_t kAgentFileOverhead = kAgentFileMagic.size() + kSealedDataKeySize;

// The writing side: one random data key per process.
struct AgentSession {
  crypto::Key data_key;
  core::Bytes sealed_key;  // kSealedDataKeySize bytes
  static AgentSession start(const crypto::BoxPublicKey& repository_key);

  // "CAG1" || sealed key || Seal(data key, payload).
  core::Bytes seal_file(core::ByteView payload) const;
};

// Whether `stored` has the agent file layout (a normal file may start with
// the same 4 bytes by chance: callers fall back to the master key).
bool looks_like_agent_file(core::ByteView stored);

// The reading side: unseals data keys with the repository's key pair(s),
// caching them (an agent session seals one key for all it writes).
class DataKeyOpener {
 public:
  explicit DataKeyOpener(std::vector<crypto::BoxKeyPair> pairs) : pairs_(std::move(pairs)) {}
  core::Result<crypto::Key> open_key(core::ByteView sealed_key);
  // Opens an agent file (see looks_like_agent_file) to its payload.
  core::Result<core::Bytes> open_file(core::ByteView stored);

 private:
  std::vector<crypto::BoxKeyPair> pairs_;
  std::mutex mu_;
  std::map<std::string, crypto::Key> cache_;  // sealed key bytes -> data key
};

}  // namespace cairn::repo
