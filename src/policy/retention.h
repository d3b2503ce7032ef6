// GFS retention: which snapshots `forget` keeps (docs/retention.md has the
// exact rules). Pure computation over snapshot metadata; thread-compatible.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "repo/repository.h"

namespace cairn::policy {

struct RetentionPolicy {
  int last = 0, hourly = 0, daily = 0, weekly = 0, monthly = 0, yearly = 0;
  std::string within;  // "1y2m3d4h" (calendar units, relative to the group's newest snapshot)
  std::vector<std::string> keep_tags;
  bool empty() const;
};

struct Decision {
  repo::SnapshotRef snapshot;
  bool keep = false;
  std::vector<std::string> reasons;  // "last", "daily", "within 7d", "tag nightly"
};

// Decides for one group of snapshots (any order); results are newest first.
core::Result<std::vector<Decision>> apply_retention(std::vector<repo::SnapshotRef> group,
                                                    const RetentionPolicy& policy);

// Grouping key of a snapshot for the fields named in `group_by`
// (comma-separated subset of host,service,paths,tags; "" = one group).
core::Result<std::string> group_key(const repo::Snapshot& s, const std::string& group_by);

// Checks a keep-within text ("1y2m7d12h"; m = months).
core::Status validate_within(const std::string& within);

// Calendar bucket names in the snapshot's own UTC offset (exposed for tests).
std::string bucket(const repo::Time& t, const std::string& unit);  // hour|day|week|month|year

}  // namespace cairn::policy
