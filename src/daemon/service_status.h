// What an operator asks first about a service: is it within its objectives?
// Built from the daemon's state store (last backup, newest restorable point,
// last drill) and the policy. Shared by `cairn daemon status` and the
// server's API, so both report the same numbers.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>

#include "core/status.h"
#include "daemon/state_store.h"
#include "policy/catalog.h"

namespace cairn::daemon {

struct ServiceStatus {
  std::optional<Time> last_success, newest_restorable_point, next_run;
  std::optional<std::chrono::seconds> rpo;  // now - newest restorable point
  bool rpo_compliant = false;
  std::string last_run_result;  // "success", "failure", ... or "-" when never run
  std::string last_error;
  // The newest drill: when it finished, whether it passed, its measured RTO.
  std::optional<std::string> last_drill_at;
  std::optional<bool> last_drill_passed;
  std::optional<double> measured_rto_s;
  bool rto_compliant = false;  // a drill passed within the RTO objective
  int firing_alerts = 0;
  nlohmann::json to_json(const policy::Service& svc) const;
};

core::Result<ServiceStatus> service_status(const policy::Service& svc, StateStore& store, Time now);

}  // namespace cairn::daemon
