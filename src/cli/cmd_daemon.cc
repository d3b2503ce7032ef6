// cairn daemon | status | alert test: scheduled operation (docs/daemon.md).
#include <fmt/format.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <filesystem>
#include <iostream>

#include "cli/context.h"
#include "daemon/alerts.h"
#include "daemon/daemon.h"
#include "daemon/service_status.h"
#include "daemon/state_store.h"
#include "policy/duration.h"

namespace cairn::cli {

namespace {

core::Status run_daemon(Context& ctx) {
  sigset_t set = take_termination_signals(ctx);

  std::string path = std::filesystem::absolute(policy::find_config(ctx.config)).string();
  ctx.config = path;
  ASSIGN_OR_RETURN(auto catalog, ctx.load_policy());
  daemon::DaemonOptions opt;
  opt.config_path = path;
  opt.cairn_exe = self_exe();
  opt.job_args = job_args(ctx);
  ASSIGN_OR_RETURN(auto d, daemon::Daemon::create(opt, std::move(catalog)));
  daemon::Daemon* dp = d.get();
  return run_until_signalled(
      set, [dp] { return dp->run(); }, [dp] { dp->stop(); }, [dp] { dp->reload(); });
}

std::string ago(std::optional<daemon::Time> t, daemon::Time now) {
  if (!t) return "never";
  return policy::format_duration(now - *t) + " ago";
}

core::Status run_status(Context& ctx) {
  ASSIGN_OR_RETURN(auto catalog, ctx.load_policy());
  if (!std::filesystem::exists(catalog.daemon.state))
    return core::not_found("no daemon state at " + catalog.daemon.state + " (has `cairn daemon` run yet?)");
  ASSIGN_OR_RETURN(auto store, daemon::StateStore::open(catalog.daemon.state));
  auto now = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
  nlohmann::json out = nlohmann::json::array();
  bool all_ok = true;
  if (!ctx.json)
    std::cout << fmt::format("{:<16} {:<9} {:<14} {:<10} {:<10} {:<9} {:<9} {}\n", "SERVICE", "TIER", "LAST SUCCESS",
                             "RPO", "OBJECTIVE", "COMPLIANT", "LAST RUN", "NEXT RUN");
  for (const auto& svc : catalog.services) {
    ASSIGN_OR_RETURN(auto st, daemon::service_status(svc, store, now));
    all_ok &= st.rpo_compliant;
    if (ctx.json) {
      out.push_back(st.to_json(svc));
    } else {
      std::cout << fmt::format("{:<16} {:<9} {:<14} {:<10} {:<10} {:<9} {:<9} {}\n", svc.name, svc.tier,
                               ago(st.last_success, now), st.rpo ? policy::format_duration(*st.rpo) : "-",
                               policy::format_duration(svc.objectives.rpo), st.rpo_compliant ? "yes" : "NO",
                               st.last_run_result, st.next_run ? daemon::format_rfc3339(*st.next_run) : "-");
    }
  }
  if (ctx.json) ctx.print_json({{"services", out}, {"compliant", all_ok}});
  if (!all_ok) ctx.exit_code = kExitWarnings;  // scripts: 3 = some service misses its RPO
  return {};
}

core::Status run_alert_test(Context& ctx, const std::string& service) {
  ASSIGN_OR_RETURN(auto catalog, ctx.load_policy());
  if (catalog.alerts.empty()) return core::invalid_argument("no alert receivers in " + catalog.path);
  ASSIGN_OR_RETURN(auto store, daemon::StateStore::open(":memory:"));
  std::vector<daemon::ReceiverConfig> receivers = daemon::receivers_of(catalog);
  daemon::AlertManagerOptions ao;
  ao.max_attempts = 2;
  ASSIGN_OR_RETURN(auto am, daemon::AlertManager::create(&store, receivers, ao));
  daemon::Alert a;
  a.name = daemon::kAlertTest;
  a.service = service;
  if (const policy::Service* s = catalog.find(service)) a.owner = s->owner, a.tier = s->tier;
  a.severity = daemon::Severity::kInfo;
  a.summary = "cairn test alert" + (service.empty() ? std::string() : " for " + service);
  a.description = "Sent by `cairn alert test`; no action needed.";
  a.starts_at = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
  TRY(am->send_now(a));
  if (!ctx.quiet) std::cout << "test alert delivered to every matching receiver\n";
  return {};
}

}  // namespace

void add_daemon(CLI::App& app, Context& ctx) {
  auto* d = app.add_subcommand("daemon", "run backups, retention, prune and alerts on the policy's schedules");
  d->callback([&ctx] { ctx.run([&] { return run_daemon(ctx); }); });

  auto* s = app.add_subcommand("status", "per service: last success, current RPO, compliance, next run");
  s->callback([&ctx] { ctx.run([&] { return run_status(ctx); }); });

  auto* a = app.add_subcommand("alert", "alert receivers");
  a->require_subcommand(1);
  auto* t = a->add_subcommand("test", "send a test alert to every receiver (or those of --service)");
  auto service = std::make_shared<std::string>();
  t->add_option("--service", *service, "route the test alert as this service's");
  t->callback([&ctx, service] { ctx.run([&] { return run_alert_test(ctx, *service); }); });
}

}  // namespace cairn::cli
