// Jobs the API starts: backups, drills, restores. Each one is a child
// process of this binary (`cairn --json ... backup --service S`), like the
// daemon's jobs, so a crash or leak in a job cannot take the server down and
// the server stays small however large the data is. Jobs are followed by id
// (GET /api/v1/jobs/{id}); finished jobs are kept (newest 200) for that.
//
// Backups started here are recorded in the state store's run history, as
// the daemon's are; drills record themselves (`cairn drill run`).
//
// Thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "core/process.h"
#include "daemon/state_store.h"

namespace cairn::server {

struct JobSpec {
  std::string kind;      // "backup", "drill", "restore", "fleet-restore"
  std::vector<std::string> services;
  std::vector<std::string> args;  // cairn subcommand and its options
  std::string started_by;         // principal name
  std::chrono::seconds timeout{6 * 3600};
};

struct JobView {
  std::string id;
  JobSpec spec;
  std::string state = "running";  // running | succeeded | failed
  std::string started_at, finished_at;
  double duration_s = 0;
  int exit_code = -1;
  nlohmann::json output;  // the child's --json output when it printed one
  std::string error;
  std::string log;  // the tail of the job's stderr (its progress and warnings), live while running
  nlohmann::json to_json() const;
};

class JobRunner {
 public:
  // `base_argv`: the cairn binary and the global options every job gets
  // (--json --no-progress --config ...).
  // `on_finish` runs (on the job's thread) after each job ends: the server
  // drops what it cached about the job's services.
  JobRunner(std::vector<std::string> base_argv, daemon::StateStore* store,
            std::function<void(const JobView&)> on_finish = {});
  ~JobRunner();  // cancels running jobs and waits for them

  std::string start(JobSpec spec);
  std::optional<JobView> get(const std::string& id) const;
  std::vector<JobView> list() const;  // newest first
  // Stops every running job (SIGTERM, then SIGKILL) and waits.
  void cancel_all();

 private:
  struct Job;
  void run(std::shared_ptr<Job> job);

  std::vector<std::string> base_argv_;
  daemon::StateStore* store_;
  std::function<void(const JobView&)> on_finish_;
  mutable std::mutex mu_;
  std::deque<std::shared_ptr<Job>> jobs_;  // newest last
  std::vector<std::pair<std::shared_ptr<Job>, std::thread>> threads_;  // joined once their job ends
  std::atomic<bool> stopping_{false};
};

}  // namespace cairn::server
