#include "daemon/service_status.h"

#include "daemon/alerts.h"

namespace cairn::daemon {

namespace {
template <typename T>
nlohmann::json opt(const std::optional<T>& v) {
  return v ? nlohmann::json(*v) : nlohmann::json();
}
nlohmann::json opt_time(const std::optional<Time>& t) { return t ? nlohmann::json(format_rfc3339(*t)) : nlohmann::json(); }
}  // namespace

core::Result<ServiceStatus> service_status(const policy::Service& svc, StateStore& store, Time now) {
  ServiceStatus s;
  ASSIGN_OR_RETURN(auto st, store.service_state(svc.name));
  if (st) s.newest_restorable_point = st->newest_restorable_point, s.last_success = st->last_success_at,
          s.next_run = st->next_run_at;
  if (s.newest_restorable_point) s.rpo = now - *s.newest_restorable_point;
  s.rpo_compliant = s.rpo && *s.rpo <= svc.objectives.rpo;
  ASSIGN_OR_RETURN(auto runs, store.recent_runs(svc.name, RunKind::kBackup, 1));
  s.last_run_result = runs.empty() ? "-" : run_result_name(runs.front().result);
  if (!runs.empty()) s.last_error = runs.front().error;
  ASSIGN_OR_RETURN(auto drills, store.drill_reports(svc.name, 1));
  if (!drills.empty()) {
    auto j = nlohmann::json::parse(drills.front().report_json, nullptr, false);
    s.last_drill_passed = drills.front().passed;
    if (j.is_object()) {
      s.last_drill_at = j.value("finished_at", "");
      s.measured_rto_s = j.value("rto_seconds", 0.0);
    }
    s.rto_compliant = drills.front().passed && s.measured_rto_s &&
                      *s.measured_rto_s <= static_cast<double>(svc.objectives.rto.count());
  }
  ASSIGN_OR_RETURN(auto alerts, store.alerts());
  for (const auto& a : alerts) s.firing_alerts += a.firing && a.service == svc.name;
  return s;
}

nlohmann::json ServiceStatus::to_json(const policy::Service& svc) const {
  nlohmann::json j = {{"service", svc.name},
                      {"owner", svc.owner},
                      {"tier", svc.tier},
                      {"engine", svc.engine.type},
                      {"rpo_objective_seconds", svc.objectives.rpo.count()},
                      {"rto_objective_seconds", svc.objectives.rto.count()},
                      {"compliant", rpo_compliant},
                      {"rto_compliant", rto_compliant},
                      {"last_run_result", last_run_result},
                      {"last_success", opt_time(last_success)},
                      {"newest_restorable_point", opt_time(newest_restorable_point)},
                      {"rpo_seconds", rpo ? nlohmann::json(rpo->count()) : nlohmann::json()},
                      {"next_run", opt_time(next_run)},
                      {"last_drill_at", opt(last_drill_at)},
                      {"last_drill_passed", opt(last_drill_passed)},
                      {"measured_rto_seconds", opt(measured_rto_s)},
                      {"firing_alerts", firing_alerts}};
  if (!last_error.empty()) j["last_error"] = last_error;
  return j;
}

}  // namespace cairn::daemon
