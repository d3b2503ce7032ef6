#include "server/access.h"

#include <algorithm>

namespace cairn::server {

const char* role_name(Role role) {
  switch (role) {
    case Role::kViewer: return "viewer";
    case Role::kOperator: return "operator";
    case Role::kRestorer: return "restorer";
    case Role::kAdmin: return "admin";
    case Role::kAgent: return "agent";
  }
  return "?";
}

std::optional<Role> parse_role(std::string_view name) {
  for (Role r : {Role::kViewer, Role::kOperator, Role::kRestorer, Role::kAdmin, Role::kAgent})
    if (name == role_name(r)) return r;
  return std::nullopt;
}

bool role_allows(Role role, Permission permission) {
  if (role == Role::kAgent) return permission == Permission::kRepoAppend;
  // Human roles are ordered: each includes the permissions of the one below.
  int level = static_cast<int>(role);  // viewer 0 .. admin 3
  switch (permission) {
    case Permission::kRead: return true;
    case Permission::kTrigger: return level >= static_cast<int>(Role::kOperator);
    case Permission::kRestore: return level >= static_cast<int>(Role::kRestorer);
    case Permission::kAdmin: return role == Role::kAdmin;
    case Permission::kRepoAppend:
    case Permission::kRepoRead: return role == Role::kAdmin;
  }
  return false;
}

bool Principal::sees_every_service() const {
  return std::find(services.begin(), services.end(), "*") != services.end();
}

bool Principal::sees_service(std::string_view service) const {
  return sees_every_service() || std::find(services.begin(), services.end(), service) != services.end();
}

}  // namespace cairn::server
