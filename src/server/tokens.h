// API tokens: creation, authentication, revocation.
//
// A token is "cairn_<id>_<secret>": the id (16 hex digits) finds the record,
// the secret (256 random bits, 64 hex digits) proves possession. Only the
// SHA-256 of the secret is stored (the secret has full entropy, so a slow
// password hash would add nothing), compared in constant time. The token is
// shown once, at creation.
//
// Records live in the daemon's state database (daemon::StateStore), so the
// CLI (`cairn token ...`) and a running server share them without restarts.
//
// Thread-safe as StateStore is.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "daemon/state_store.h"
#include "server/access.h"

namespace cairn::server {

struct NewToken {
  std::string name;
  Role role = Role::kViewer;
  std::vector<std::string> services;  // "*" = every service; never empty
  std::optional<std::chrono::seconds> expires_in;  // none: never expires
  std::string created_by;
};

struct CreatedToken {
  std::string token;  // the only time the secret is seen
  daemon::TokenRecord record;
};

class TokenService {
 public:
  explicit TokenService(daemon::StateStore& store) : store_(store) {}

  core::Result<CreatedToken> create(const NewToken& request, daemon::Time now);
  // The principal of a presented token. kPermissionDenied for anything that
  // does not authenticate (malformed, unknown, wrong secret, revoked,
  // expired); the message says which, for the server's log only: clients get
  // one undifferentiated 401. Records the last-used time (at most once a minute).
  core::Result<Principal> authenticate(const std::string& token, daemon::Time now);
  // Revokes by id or by name (every active token of that name).
  core::Status revoke(const std::string& id_or_name, daemon::Time now);
  core::Result<std::vector<daemon::TokenRecord>> list();

 private:
  daemon::StateStore& store_;
};

}  // namespace cairn::server
