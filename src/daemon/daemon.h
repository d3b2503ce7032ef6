// The daemon: runs every service's backups on its schedule, retries them,
// applies retention, prunes each repository on its own schedule, tracks RPO
// compliance, raises and resolves alerts, and serves Prometheus metrics.
//
// Each job runs as a child process of this binary (`cairn backup --service
// S`, `cairn forget --service S`, `cairn prune --service S`): a job that
// crashes, leaks or hangs cannot take the daemon down, its timeout is a
// signal to its process group, and the daemon itself stays small however
// large the backups are. The repository's crash safety makes a killed job
// harmless. docs/daemon.md describes the behaviour in full.
//
// Thread-safe: stop() and reload() may be called from a signal thread while
// run() is running.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core/process.h"
#include "core/status.h"
#include "daemon/alerts.h"
#include "daemon/metrics.h"
#include "daemon/schedule_book.h"
#include "daemon/state_store.h"
#include "policy/catalog.h"

namespace cairn::daemon {

struct DaemonOptions {
  std::string config_path;  // re-read on reload()
  std::string cairn_exe;    // the binary that runs jobs (this one)
  std::vector<std::string> job_args;  // global options passed to every job (e.g. --cacert)
  std::chrono::seconds evaluate_every{5};  // RPO, missed runs, alerts, metrics
  std::chrono::seconds probe_every{60};    // WAL recovery point of continuous services
};

// How a child job ended.
struct JobResult {
  bool ok = false;
  int exit_code = -1;
  bool timed_out = false, cancelled = false;
  std::string stdout_text;  // --json output
  std::string error;        // last stderr lines or the reason it was stopped
  double duration_s = 0;
};

// The policy's alert receivers; ${VAR} references in header values are
// expanded (a header whose variable is unset is left out, with a warning).
std::vector<ReceiverConfig> receivers_of(const policy::Catalog& catalog);

class Daemon {
 public:
  static core::Result<std::unique_ptr<Daemon>> create(DaemonOptions options, policy::Catalog catalog);
  ~Daemon();

  // Runs until stop(); then lets running jobs finish for the catalog's
  // shutdown_grace and cancels the rest (recorded as 'cancelled').
  core::Status run();
  void stop();
  // Re-reads the policy file; an invalid file keeps the old policy (logged).
  void reload();
  // The metrics server's port (0 before run() started it or when off).
  int metrics_port() const { return metrics_port_; }

 private:
  // backup: one service; forget: retention for the services of one
  // repository that have new snapshots; prune: one repository (named by its
  // first service).
  enum class JobKind { kBackup, kForget, kPrune, kDrill, kFleetDrill };
  struct Job {
    JobKind kind = JobKind::kBackup;
    std::string service;     // kBackup, kPrune
    std::string repository;  // kForget
    Time due{};
  };
  Daemon(DaemonOptions options, policy::Catalog catalog, StateStore store);
  // Returns the alerts for runs missed while the daemon was down.
  std::vector<Alert> schedule_catalog(Time now, const policy::Catalog* previous);
  std::shared_ptr<AlertManager> alerts();
  void worker();
  void run_backup_job(const policy::Service& svc);
  void run_prune_job(const policy::Service& svc, std::shared_ptr<const policy::Catalog> catalog);
  void run_forget_job(const std::string& repository, std::shared_ptr<const policy::Catalog> catalog);
  void run_drill_job(const policy::Service& svc);
  void run_fleet_drill_job(std::shared_ptr<const policy::Catalog> catalog);
  // Counts a backup child of `repository` as running, after any drain for a
  // forget of that repository has finished. False when stopping.
  bool enter_repository(const std::string& repository);
  void leave_repository(const std::string& repository);
  void after_success(const policy::Service& svc, const JobResult& r, Time started, int64_t run_id);
  JobResult run_child(const std::vector<std::string>& args, std::chrono::seconds timeout);
  void evaluate(Time now);
  void evaluate_drill_age(const policy::Service& svc, Time now, const date::time_zone* zone);
  void probe_recovery_points();
  std::string render_metrics();
  core::Status apply_reload();
  bool sleep_unless_stopping(std::chrono::seconds d);
  Alert make_alert(const policy::Service& svc, const std::string& name, Severity sev, std::string summary,
                   std::string description) const;
  Time now() const;
  // Read-modify-write of a service's state (workers, the prober and the
  // evaluator all update it); writes only when something changed.
  ServiceState update_state(const std::string& service, const std::function<void(ServiceState&)>& change);

  DaemonOptions options_;
  StateStore store_;
  std::unique_ptr<MetricsServer> metrics_;
  std::atomic<int> metrics_port_{0};

  std::mutex state_mu_;    // serializes update_state()
  mutable std::mutex mu_;  // guards everything below
  std::condition_variable cv_;
  std::shared_ptr<const policy::Catalog> catalog_;
  std::shared_ptr<AlertManager> alerts_;  // replaced on reload; users copy it
  std::unique_ptr<ScheduleBook> book_;
  std::deque<Job> queue_;
  std::set<std::string> busy_;  // job keys queued or running: service, "prune:<service>", "forget:<repository>"
  // forget needs the exclusive lock, which no backup may hold: the daemon
  // drains the repository (starts no new backup of it) until the forget is done.
  std::map<std::string, std::set<std::string>> forget_pending_;  // repository -> services
  std::set<std::string> draining_;
  std::map<std::string, int> backups_running_;  // repository -> backup children running
  std::map<std::string, Time> started_at_;
  Time daemon_started_{};  // a service never drilled is overdue only after a full interval of this daemon
  std::set<std::shared_ptr<core::Watchdog>> running_;
  bool stopping_ = false, cancel_ = false, reload_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace cairn::daemon
