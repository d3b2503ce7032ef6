#include "engines/engine_snapshot.h"

#include <fmt/format.h>

namespace cairn::engines {

core::Result<repo::SnapshotRef> find_engine_snapshot(repo::Repository& repo,
                                                     const std::string& service,
                                                     const std::string& engine_type,
                                                     const std::string& ref) {
  if (!ref.empty() && ref != "latest") {
    ASSIGN_OR_RETURN(repo::SnapshotRef s, repo.find_snapshot(ref, service));
    std::string type = s.snapshot.engine.value("type", "");
    if (type != engine_type)
      return core::invalid_argument(
          fmt::format("snapshot {} of service {} was made by the {} engine, not {}",
                      s.id.substr(0, 8), service, type.empty() ? "files" : type, engine_type));
    return s;
  }
  ASSIGN_OR_RETURN(auto all, repo.list_snapshots());
  const repo::SnapshotRef* best = nullptr;
  for (const auto& s : all)  // oldest first
    if (s.snapshot.service == service && s.snapshot.engine.value("type", "") == engine_type)
      best = &s;
  if (!best)
    return core::not_found(fmt::format("service {} has no {} snapshot", service, engine_type));
  return *best;
}

}  // namespace cairn::engines
