// Master key and key files. The master key never leaves memory unwrapped;
// each key file wraps it with a key-encryption key derived from a secret:
// a password (argon2id, slow on purpose) or the contents of a generated key
// file (256 random bits, so one HMAC suffices and opening takes no time --
// what archive_command and other per-file hooks need). Several key files
// may unlock one repository.
#pragma once

#include <string>

#include "core/bytes.h"
#include "core/status.h"
#include "crypto/crypto.h"

namespace cairn::repo {

struct MasterKey {
  crypto::Key encrypt;  // AES-256-GCM key for everything stored
  crypto::Key mac;      // HMAC-SHA-256 key for blob ids
  static MasterKey generate();
};

// What the secret of a key file is (its "type" field: "password" or "keyfile").
enum class SecretKind { kPassword, kKeyFile };

struct KeyFileInfo {
  std::string id;    // hex SHA-256 of the key file bytes (its name under keys/)
  std::string type;  // "password", "keyfile" (SecretKind) or "agent"
  bool agent_secret_is_key_file = false;  // agent keys: opened by a key file, not a password
  std::string created;
  std::string hostname;
  std::string username;
  crypto::KdfParams kdf;
  // Advisory restriction (enforced by cairn, not by cryptography): the key
  // may add data and snapshots but not forget, prune or remove keys.
  bool append_only = false;
};

// --- write-only agent keys (docs/format.md §2.3) ---
// What an agent key opens to: the id key and the repository's settings a
// writer needs, and the public half of the repository's X25519 pair. Never
// the master encryption key.
struct AgentKey {
  crypto::Key mac;
  std::string config_json;  // the repository config (Config::to_json)
  crypto::BoxPublicKey repository_key;
};

// Builds an agent key file (type "agent"): `agent` wrapped with `secret`,
// plus the repository's key pair with its secret half sealed under
// master.encrypt (so every full key can find it). Returns (id, bytes).
core::Result<std::pair<std::string, core::Bytes>> make_agent_key_file(
    const MasterKey& master, const AgentKey& agent, const crypto::BoxKeyPair& pair,
    std::string_view secret, const crypto::KdfParams& kdf, SecretKind kind);
// Opens an agent key file with its secret; kWrongPassword when it does not open.
core::Result<AgentKey> open_agent_key_file(core::ByteView file, std::string_view secret);
// The repository key pair recorded in an agent key file, unsealed with the
// master key (kCorruption when it does not open or does not match).
core::Result<crypto::BoxKeyPair> agent_key_pair(core::ByteView file, const MasterKey& master);
// --- end agent keys ---

// Builds a key file wrapping `master` with `secret`. Returns (id, bytes).
// `kdf` is used for passwords only.
core::Result<std::pair<std::string, core::Bytes>> make_key_file(
    const MasterKey& master, std::string_view secret, const crypto::KdfParams& kdf,
    bool append_only = false, SecretKind kind = SecretKind::kPassword);

// A new random secret for a "keyfile" key (base64 text, one line).
std::string generate_key_file_secret();

// Unwraps a key file. kWrongPassword when the password does not open it,
// kCorruption when the file is malformed (names what is wrong).
core::Result<MasterKey> open_key_file(core::ByteView file, std::string_view password);
core::Result<KeyFileInfo> parse_key_file_info(core::ByteView file);

}  // namespace cairn::repo
