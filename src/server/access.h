// Access control of the cairn server: who a request is (Principal), what its
// role may do (Permission), and which services it may see.
//
// Roles are ordered, each one including the one before it:
//   viewer   reads policy, status, history, snapshot lists, runbooks, alerts
//   operator also triggers backups and drills
//   restorer also browses and downloads snapshot contents and starts restores
//   admin    also deletes (forget), applies retention, and reads the audit log
// The agent role stands apart: it may only add objects to its own services'
// repositories through the repository endpoint (docs/security.md), and read
// nothing but what opening a repository for writing needs.
//
// Service scope: a principal sees only its services ("*" = every service).
// A service outside the scope is reported as not found (404), never as
// forbidden, so names of other teams' services do not leak.
//
// Plain values; thread-compatible.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cairn::server {

enum class Role { kViewer, kOperator, kRestorer, kAdmin, kAgent };

const char* role_name(Role role);  // "viewer", ..., "agent"
std::optional<Role> parse_role(std::string_view name);

enum class Permission {
  kRead,        // status, history, snapshot lists, runbooks, alerts
  kTrigger,     // start backups and drills
  kRestore,     // browse and download snapshot contents, start restores
  kAdmin,       // forget, retention, audit log
  kRepoAppend,  // repository endpoint: add packs, index, snapshots, locks
  kRepoRead,    // repository endpoint: read and list everything
};

// Whether `role` carries `permission` (the matrix in docs/security.md).
bool role_allows(Role role, Permission permission);

struct Principal {
  std::string name;      // the token's name, or "cli:<user>" for the command line
  std::string token_id;  // "" for the command line
  Role role = Role::kViewer;
  std::vector<std::string> services;  // "*" = every service

  bool sees_service(std::string_view service) const;
  bool sees_every_service() const;
};

}  // namespace cairn::server
