#include "repo/keys.h"

#include <nlohmann/json.hpp>
#include <pwd.h>
#include <unistd.h>

#include "repo/timefmt.h"

namespace cairn::repo {

using json = nlohmann::json;

MasterKey MasterKey::generate() { return {crypto::random_key(), crypto::random_key()}; }

static std::string current_hostname() {
  char buf[256] = {};
  gethostname(buf, sizeof buf - 1);
  return buf;
}

static std::string current_username() {
  if (struct passwd* pw = getpwuid(getuid())) return pw->pw_name;
  return std::to_string(getuid());
}

namespace {
constexpr const char* kKeyFileKdf = "hmac-sha256";

// A key file's secret already has 256 random bits: stretching it would add
// nothing, so the key-encryption key is HMAC(SHA-256(secret), salt).
crypto::Key key_file_kek(std::string_view secret, core::ByteView salt) {
  crypto::Key k;
  auto d = crypto::sha256(core::as_bytes(secret));
  std::copy(d.begin(), d.end(), k.begin());
  auto kek = crypto::hmac_sha256(k, salt);
  std::copy(kek.begin(), kek.end(), k.begin());
  return k;
}
}  // namespace

std::string generate_key_file_secret() { return core::base64_encode(crypto::random_bytes(32)); }

namespace {
// A fresh salt and the key-encryption key `secret` gives with it, with the
// key file's "kdf" object describing how (argon2id for passwords, one HMAC
// for generated key files).
core::Result<std::pair<crypto::Key, json>> new_kek(std::string_view secret, const crypto::KdfParams& kdf,
                                                   SecretKind kind) {
  core::Bytes salt = crypto::random_bytes(16);
  if (kind == SecretKind::kKeyFile)
    return std::make_pair(key_file_kek(secret, salt),
                          json{{"algorithm", kKeyFileKdf}, {"salt", core::base64_encode(salt)}});
  ASSIGN_OR_RETURN(crypto::Key kek, crypto::derive_key(secret, salt, kdf));
  return std::make_pair(kek, json{{"algorithm", "argon2id"},
                                  {"ops", kdf.ops},
                                  {"mem", kdf.mem},
                                  {"salt", core::base64_encode(salt)}});
}
}  // namespace

core::Result<std::pair<std::string, core::Bytes>> make_key_file(const MasterKey& master,
                                                                std::string_view secret,
                                                                const crypto::KdfParams& kdf,
                                                                bool append_only, SecretKind kind) {
  ASSIGN_OR_RETURN(auto wrapping, new_kek(secret, kdf, kind));
  auto& [kek, kdf_json] = wrapping;
  json inner = {{"encrypt", core::base64_encode(master.encrypt)},
                {"mac", core::base64_encode(master.mac)}};
  std::string inner_text = inner.dump();
  core::Bytes sealed = crypto::seal(kek, core::as_bytes(inner_text));
  json j = {{"version", 1},
            {"type", kind == SecretKind::kKeyFile ? "keyfile" : "password"},
            {"created", format_time(now_time())},
            {"hostname", current_hostname()},
            {"username", current_username()},
            {"kdf", kdf_json},
            {"data", core::base64_encode(sealed)}};
  if (append_only) j["append_only"] = true;
  std::string text = j.dump(2) + "\n";
  core::Bytes bytes = core::to_bytes(text);
  return std::make_pair(core::hex_encode(crypto::sha256(bytes)), bytes);
}

namespace {
struct ParsedKey {
  KeyFileInfo info;
  core::Bytes salt;
  core::Bytes sealed;
};

core::Result<ParsedKey> parse(core::ByteView file) {
  json j = json::parse(file.begin(), file.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) return core::corruption("key file is not valid JSON");
  try {
    ParsedKey k;
    if (j.at("version").get<int>() != 1)
      return core::unsupported("key file version " + j.at("version").dump() + " is not supported");
    k.info.type = j.at("type").get<std::string>();
    if (k.info.type != "password" && k.info.type != "keyfile" && k.info.type != "agent")
      return core::unsupported("key type '" + k.info.type + "' is not supported by this version");
    k.info.created = j.value("created", "");
    k.info.hostname = j.value("hostname", "");
    k.info.username = j.value("username", "");
    k.info.append_only = j.value("append_only", false);
    const json& kdf = j.at("kdf");
    const std::string algorithm = kdf.at("algorithm").get<std::string>();
    // Agent keys are opened by a password or a key file, like the others.
    const bool by_key_file = k.info.type == "keyfile" ||
                             (k.info.type == "agent" && algorithm == kKeyFileKdf);
    k.info.agent_secret_is_key_file = k.info.type == "agent" && by_key_file;
    if (algorithm != (by_key_file ? kKeyFileKdf : "argon2id"))
      return core::unsupported("key KDF " + kdf.at("algorithm").dump() + " does not fit key type " +
                               k.info.type);
    if (!by_key_file) {
      k.info.kdf.ops = kdf.at("ops").get<uint64_t>();
      k.info.kdf.mem = kdf.at("mem").get<uint64_t>();
    }
    // Bound the memory an attacker-supplied key file can make us allocate.
    if (k.info.kdf.mem > (4ull << 30) || k.info.kdf.ops > 1000)
      return core::corruption("key file KDF parameters are out of range");
    auto salt = core::base64_decode(kdf.at("salt").get<std::string>());
    auto sealed = core::base64_decode(j.at("data").get<std::string>());
    if (!salt || salt->size() != 16 || !sealed) return core::corruption("key file fields are malformed");
    k.salt = std::move(*salt);
    k.sealed = std::move(*sealed);
    return k;
  } catch (const json::exception& e) {
    return core::corruption(std::string("key file: ") + e.what());
  }
}
}  // namespace

core::Result<KeyFileInfo> parse_key_file_info(core::ByteView file) {
  ASSIGN_OR_RETURN(ParsedKey k, parse(file));
  k.info.id = core::hex_encode(crypto::sha256(file));
  return k.info;
}

core::Result<MasterKey> open_key_file(core::ByteView file, std::string_view password) {
  ASSIGN_OR_RETURN(ParsedKey k, parse(file));
  if (k.info.type == "agent")
    return core::invalid_argument("an agent key does not hold the master key");
  crypto::Key kek;
  if (k.info.type == "keyfile") {
    kek = key_file_kek(password, k.salt);
  } else {
    ASSIGN_OR_RETURN(kek, crypto::derive_key(password, k.salt, k.info.kdf));
  }
  auto inner = crypto::open(kek, k.sealed);
  if (!inner.ok()) return core::wrong_password("wrong password");
  json j = json::parse(inner->begin(), inner->end(), nullptr, false);
  if (j.is_discarded()) return core::corruption("key file payload is not valid JSON");
  try {
    auto enc = core::base64_decode(j.at("encrypt").get<std::string>());
    auto mac = core::base64_decode(j.at("mac").get<std::string>());
    if (!enc || !mac || enc->size() != 32 || mac->size() != 32)
      return core::corruption("key file payload has malformed keys");
    MasterKey m;
    std::copy(enc->begin(), enc->end(), m.encrypt.begin());
    std::copy(mac->begin(), mac->end(), m.mac.begin());
    return m;
  } catch (const json::exception& e) {
    return core::corruption(std::string("key file payload: ") + e.what());
  }
}

// --- write-only agent keys ---

namespace {

crypto::Key kek_of(const ParsedKey& k, std::string_view secret, bool* failed) {
  crypto::Key kek{};
  *failed = false;
  if (k.info.agent_secret_is_key_file) return key_file_kek(secret, k.salt);
  auto derived = crypto::derive_key(secret, k.salt, k.info.kdf);
  if (!derived.ok()) {
    *failed = true;
    return kek;
  }
  return *derived;
}

}  // namespace

core::Result<std::pair<std::string, core::Bytes>> make_agent_key_file(
    const MasterKey& master, const AgentKey& agent, const crypto::BoxKeyPair& pair,
    std::string_view secret, const crypto::KdfParams& kdf, SecretKind kind) {
  ASSIGN_OR_RETURN(auto wrapping, new_kek(secret, kdf, kind));
  auto& [kek, kdf_json] = wrapping;
  json config = json::parse(agent.config_json, nullptr, false);
  if (config.is_discarded()) return core::invalid_argument("agent key: config is not JSON");
  // The public key travels inside the sealed payload too: the copy outside
  // it could be swapped by whoever can write keys/, this one cannot.
  json inner = {{"mac", core::base64_encode(agent.mac)},
                {"config", config},
                {"repository_key", core::base64_encode(agent.repository_key)}};
  std::string inner_text = inner.dump();
  core::Bytes sealed = crypto::seal(kek, core::as_bytes(inner_text));
  json j = {{"version", 1},
            {"type", "agent"},
            {"created", format_time(now_time())},
            {"hostname", current_hostname()},
            {"username", current_username()},
            {"kdf", kdf_json},
            {"data", core::base64_encode(sealed)},
            {"repository_key",
             {{"algorithm", "x25519"},
              {"public", core::base64_encode(pair.public_key)},
              {"secret", core::base64_encode(crypto::seal(master.encrypt, pair.secret_key))}}}};
  std::string text = j.dump(2) + "\n";
  core::Bytes bytes = core::to_bytes(text);
  return std::make_pair(core::hex_encode(crypto::sha256(bytes)), bytes);
}

core::Result<AgentKey> open_agent_key_file(core::ByteView file, std::string_view secret) {
  ASSIGN_OR_RETURN(ParsedKey k, parse(file));
  if (k.info.type != "agent") return core::invalid_argument("not an agent key");
  bool failed = false;
  crypto::Key kek = kek_of(k, secret, &failed);
  if (failed) return core::corruption("agent key: key derivation failed");
  auto inner = crypto::open(kek, k.sealed);
  if (!inner.ok()) return core::wrong_password("wrong password");
  json j = json::parse(inner->begin(), inner->end(), nullptr, false);
  if (j.is_discarded()) return core::corruption("agent key payload is not valid JSON");
  try {
    auto mac = core::base64_decode(j.at("mac").get<std::string>());
    auto pk = core::base64_decode(j.at("repository_key").get<std::string>());
    if (!mac || !pk || mac->size() != 32 || pk->size() != crypto::kBoxKeySize)
      return core::corruption("agent key payload has malformed keys");
    AgentKey a;
    std::copy(mac->begin(), mac->end(), a.mac.begin());
    std::copy(pk->begin(), pk->end(), a.repository_key.begin());
    a.config_json = j.at("config").dump();
    return a;
  } catch (const json::exception& e) {
    return core::corruption(std::string("agent key payload: ") + e.what());
  }
}

core::Result<crypto::BoxKeyPair> agent_key_pair(core::ByteView file, const MasterKey& master) {
  json j = json::parse(file.begin(), file.end(), nullptr, false);
  if (!j.is_object() || j.value("type", "") != "agent")
    return core::invalid_argument("not an agent key");
  try {
    const json& rk = j.at("repository_key");
    if (rk.at("algorithm").get<std::string>() != "x25519")
      return core::unsupported("repository key algorithm " + rk.at("algorithm").dump());
    auto pk = core::base64_decode(rk.at("public").get<std::string>());
    auto sealed = core::base64_decode(rk.at("secret").get<std::string>());
    if (!pk || !sealed || pk->size() != crypto::kBoxKeySize)
      return core::corruption("repository key is malformed");
    auto sk = crypto::open(master.encrypt, *sealed);
    if (!sk.ok() || sk->size() != crypto::kKeySize)
      return core::corruption("repository secret key does not open with the master key");
    crypto::BoxKeyPair pair;
    std::copy(sk->begin(), sk->end(), pair.secret_key.begin());
    std::copy(pk->begin(), pk->end(), pair.public_key.begin());
    if (crypto::box_public_key(pair.secret_key) != pair.public_key)
      return core::corruption("repository public key does not match its secret key");
    return pair;
  } catch (const json::exception& e) {
    return core::corruption(std::string("repository key: ") + e.what());
  }
}

}  // namespace cairn::repo
