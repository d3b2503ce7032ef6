// Picking the snapshot an engine's restore starts from: the newest one of a
// service made by that engine, or the one a user named (which must be of
// that engine, so `redis restore` never writes a files snapshot as dump.rdb).
// Stateless; thread-compatible like the Repository it reads.
#pragma once

#include <string>

#include "core/status.h"
#include "repo/repository.h"

namespace cairn::engines {

// `ref` "" or "latest": the newest snapshot of `service` whose engine type is
// `engine_type`; otherwise a snapshot id (prefix) of that service.
// kNotFound names the service and engine when there is none.
core::Result<repo::SnapshotRef> find_engine_snapshot(repo::Repository& repo,
                                                     const std::string& service,
                                                     const std::string& engine_type,
                                                     const std::string& ref);

}  // namespace cairn::engines
