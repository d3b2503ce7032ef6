// The repository endpoint of the cairn server: a REST storage backend (the
// server side of storage/rest/rest_backend.h, like restic's rest-server) with
// the role model of server/access.h on top. Write-only agents back up through
// it: they may add objects to their own services' repositories but not read
// data, list what others stored, or delete anything but their own locks.
//
// Routes (the protocol is specified in docs/repo-endpoint.md):
//   GET|HEAD|PUT            /api/v1/repo/<service>/config
//   GET|HEAD|PUT|DELETE     /api/v1/repo/<service>/<type>/<name>
//   GET                     /api/v1/repo/<service>/<type>/       (list, JSON)
// type = keys|data|index|snapshots|locks|maintenance|wal.
//
// The server's payload limit (httplib::Server::set_payload_max_length) must
// be at least kMaxRepoObjectSize for these routes; the endpoint enforces
// kMaxRepoObjectSize itself.
//
// Thread safety: the handlers may run on many httplib worker threads at
// once; the hooks must be thread-safe.
#pragma once

#include <httplib.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "core/status.h"
#include "server/access.h"
#include "storage/backend.h"

namespace cairn::server {

// Largest object one PUT may carry (packs are ~16 MiB plus one chunk).
constexpr uint64_t kMaxRepoObjectSize = 64ull << 20;

struct RepoEndpointHooks {
  // Authenticates the request (header "Authorization: Bearer <token>"); nullopt => answer 401
  // (the hook itself logs and rate-limits failures).
  std::function<std::optional<Principal>(const httplib::Request&)> authenticate;
  // The storage backend of a service's repository (from the policy); kNotFound for an unknown
  // service.
  std::function<core::Result<std::shared_ptr<storage::Backend>>(const std::string& service)>
      backend_for;
  // Records one request in the audit log: action e.g. "repo.save", object e.g. "data/1a/1a2b..",
  // ok = allowed and succeeded.
  std::function<void(const Principal&, const std::string& action, const std::string& service,
                     const std::string& object, bool ok)>
      audit;
};

// Routes under /api/v1/repo/<service>/...
void register_repo_endpoint(httplib::Server& server, RepoEndpointHooks hooks);

}  // namespace cairn::server
