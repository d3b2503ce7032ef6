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

core::Result<std::pair<std::string, core::Bytes>> make_key_file(const MasterKey& master,
                                                                std::string_view secret,
                                                                const crypto::KdfParams& kdf,
                                                                bool append_only, SecretKind kind) {
  core::Bytes salt = crypto::random_bytes(16);
  crypto::Key kek;
  json kdf_json;
  if (kind == SecretKind::kKeyFile) {
    kek = key_file_kek(secret, salt);
    kdf_json = {{"algorithm", kKeyFileKdf}, {"salt", core::base64_encode(salt)}};
  } else {
    ASSIGN_OR_RETURN(kek, crypto::derive_key(secret, salt, kdf));
    kdf_json = {{"algorithm", "argon2id"},
                {"ops", kdf.ops},
                {"mem", kdf.mem},
                {"salt", core::base64_encode(salt)}};
  }
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
    if (k.info.type != "password" && k.info.type != "keyfile")
      return core::unsupported("key type '" + k.info.type + "' is not supported by this version");
    k.info.created = j.value("created", "");
    k.info.hostname = j.value("hostname", "");
    k.info.username = j.value("username", "");
    k.info.append_only = j.value("append_only", false);
    const json& kdf = j.at("kdf");
    const std::string algorithm = kdf.at("algorithm").get<std::string>();
    if (algorithm != (k.info.type == "keyfile" ? kKeyFileKdf : "argon2id"))
      return core::unsupported("key KDF " + kdf.at("algorithm").dump() + " does not fit key type " +
                               k.info.type);
    if (k.info.type == "password") {
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

}  // namespace cairn::repo
