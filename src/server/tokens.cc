#include "server/tokens.h"

#include <fmt/format.h>

#include "core/bytes.h"
#include "crypto/crypto.h"

namespace cairn::server {

namespace {

constexpr char kPrefix[] = "cairn_";
constexpr size_t kIdBytes = 8, kSecretBytes = 32;

std::string secret_hash(std::string_view secret) {
  auto d = crypto::sha256(core::as_bytes(secret));
  return core::hex_encode(d);
}

bool is_hex(std::string_view s) {
  return s.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

}  // namespace

core::Result<CreatedToken> TokenService::create(const NewToken& request, daemon::Time now) {
  if (request.name.empty()) return core::invalid_argument("token: a name is required (--name)");
  if (request.services.empty())
    return core::invalid_argument("token " + request.name + ": name its services (--services a,b or '*')");
  for (const auto& s : request.services)
    if (s.empty() || s.find_first_of(",\n") != std::string::npos)
      return core::invalid_argument(fmt::format("token {}: \"{}\" is not a service name", request.name, s));
  if (request.expires_in && request.expires_in->count() <= 0)
    return core::invalid_argument("token " + request.name + ": --expires must be positive");
  CreatedToken out;
  daemon::TokenRecord& r = out.record;
  r.id = core::hex_encode(crypto::random_bytes(kIdBytes));
  std::string secret = core::hex_encode(crypto::random_bytes(kSecretBytes));
  r.name = request.name;
  r.role = role_name(request.role);
  r.services = request.services;
  r.secret_hash = secret_hash(secret);
  r.created_at = now;
  r.created_by = request.created_by;
  if (request.expires_in) r.expires_at = now + *request.expires_in;
  TRY(store_.put_token(r));
  out.token = kPrefix + r.id + "_" + secret;
  return out;
}

core::Result<Principal> TokenService::authenticate(const std::string& token, daemon::Time now) {
  auto denied = [](const std::string& why) { return core::Status(core::Code::kPermissionDenied, why); };
  std::string_view t = token;
  if (!t.starts_with(kPrefix)) return denied("not a cairn token");
  t.remove_prefix(sizeof(kPrefix) - 1);
  auto sep = t.find('_');
  if (sep != kIdBytes * 2 || t.size() != sep + 1 + kSecretBytes * 2) return denied("malformed token");
  std::string id(t.substr(0, sep));
  std::string_view secret = t.substr(sep + 1);
  if (!is_hex(id) || !is_hex(secret)) return denied("malformed token");
  ASSIGN_OR_RETURN(auto rec, store_.token(id));
  if (!rec) return denied("unknown token " + id);
  if (!crypto::equal(core::as_bytes(secret_hash(secret)), core::as_bytes(rec->secret_hash)))
    return denied("wrong secret for token " + id);
  if (rec->revoked_at) return denied(fmt::format("token {} ({}) is revoked", id, rec->name));
  if (rec->expires_at && *rec->expires_at <= now) return denied(fmt::format("token {} ({}) has expired", id, rec->name));
  auto role = parse_role(rec->role);
  if (!role) return denied(fmt::format("token {}: unknown role {}", id, rec->role));
  // A write per request would serialize the server on the database.
  if (!rec->last_used_at || now - *rec->last_used_at >= std::chrono::minutes(1)) (void)store_.touch_token(id, now);
  Principal p;
  p.name = rec->name;
  p.token_id = id;
  p.role = *role;
  p.services = rec->services;
  return p;
}

core::Status TokenService::revoke(const std::string& id_or_name, daemon::Time now) {
  ASSIGN_OR_RETURN(auto all, store_.tokens());
  int revoked = 0;
  for (const auto& t : all) {
    if (t.revoked_at || (t.id != id_or_name && t.name != id_or_name)) continue;
    TRY(store_.revoke_token(t.id, now));
    revoked++;
  }
  if (revoked == 0) return core::not_found("no active token has the id or name " + id_or_name);
  return core::ok_status();
}

core::Result<std::vector<daemon::TokenRecord>> TokenService::list() { return store_.tokens(); }

}  // namespace cairn::server
