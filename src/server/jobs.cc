#include "server/jobs.h"

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/bytes.h"
#include "crypto/crypto.h"
#include "daemon/alerts.h"

namespace cairn::server {

namespace {
constexpr size_t kMaxOutput = 1 << 20;  // a job's --json output kept for the API
constexpr size_t kKeptJobs = 200;

std::string now_text() {
  return daemon::format_rfc3339(std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now()));
}
}  // namespace

struct JobRunner::Job {
  mutable std::mutex mu;
  JobView view;
  std::shared_ptr<core::Watchdog> dog;
  std::shared_ptr<core::Subprocess> proc;  // while running: its stderr is the live log

  JobView snapshot() const {
    std::lock_guard lock(mu);
    JobView v = view;
    if (proc) v.log = proc->stderr_tail();
    return v;
  }
};

nlohmann::json JobView::to_json() const {
  nlohmann::json j = {{"id", id},
                      {"kind", spec.kind},
                      {"services", spec.services},
                      {"started_by", spec.started_by},
                      {"state", state},
                      {"started_at", started_at},
                      {"finished_at", finished_at.empty() ? nlohmann::json() : nlohmann::json(finished_at)},
                      {"duration_seconds", duration_s},
                      {"exit_code", exit_code}};
  if (!output.is_null()) j["output"] = output;
  if (!error.empty()) j["error"] = error;
  if (!log.empty()) j["log"] = log;
  return j;
}

JobRunner::JobRunner(std::vector<std::string> base_argv, daemon::StateStore* store,
                     std::function<void(const JobView&)> on_finish)
    : base_argv_(std::move(base_argv)), store_(store), on_finish_(std::move(on_finish)) {}

JobRunner::~JobRunner() { cancel_all(); }

std::string JobRunner::start(JobSpec spec) {
  auto job = std::make_shared<Job>();
  job->view.id = core::hex_encode(crypto::random_bytes(8));
  job->view.spec = std::move(spec);
  job->view.started_at = now_text();
  std::lock_guard lock(mu_);
  jobs_.push_back(job);
  // Forget the oldest finished jobs beyond the limit.
  for (auto it = jobs_.begin(); jobs_.size() > kKeptJobs && it != jobs_.end();) {
    std::lock_guard jl((*it)->mu);
    if ((*it)->view.state != "running") {
      it = jobs_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto it = threads_.begin(); it != threads_.end();) {
    bool done;
    {
      std::lock_guard jl(it->first->mu);
      done = it->first->view.state != "running";
    }
    if (done) {
      it->second.join();
      it = threads_.erase(it);
    } else {
      ++it;
    }
  }
  threads_.emplace_back(job, std::thread([this, job] { run(job); }));
  return job->view.id;
}

void JobRunner::run(std::shared_ptr<Job> job) {
  JobSpec spec;
  {
    std::lock_guard lock(job->mu);
    spec = job->view.spec;
  }
  std::vector<std::string> argv = base_argv_;
  argv.insert(argv.end(), spec.args.begin(), spec.args.end());
  std::optional<int64_t> run_id;
  auto started = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
  if (spec.kind == "backup" && store_ != nullptr && spec.services.size() == 1) {
    auto id = store_->begin_run(spec.services[0], daemon::RunKind::kBackup, started);
    if (id.ok()) run_id = *id;
  }
  auto t0 = std::chrono::steady_clock::now();
  std::string out, error, log;
  int exit_code = -1;
  core::ProcessOptions po;
  po.new_process_group = true;
  po.env = {"CAIRN_AUDIT_ON_BEHALF_OF=" + spec.started_by};  // its CLI audit entry names who asked
  auto proc = stopping_ ? core::Result<std::unique_ptr<core::Subprocess>>(core::cancelled("server stopping"))
                        : core::Subprocess::start(argv, po);
  if (proc.ok()) {
    std::shared_ptr<core::Subprocess> p = std::move(*proc);
    auto dog = std::make_shared<core::Watchdog>(p, spec.timeout);
    {
      std::lock_guard lock(job->mu);
      job->dog = dog;
      job->proc = p;
    }
    if (stopping_) dog->cancel();
    uint8_t buf[8192];
    for (;;) {
      auto n = p->read(buf, sizeof buf);
      if (!n.ok() || *n == 0) break;
      if (out.size() < kMaxOutput) out.append(reinterpret_cast<char*>(buf), *n);
    }
    core::Status st = p->wait();
    dog->disarm();
    log = p->stderr_tail();
    exit_code = p->exit_code();
    if (!st.ok() && exit_code != 3) error = st.message();
    if (dog->timed_out()) error = "timed out: " + error;
  } else {
    error = proc.status().message();
  }
  double duration = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  nlohmann::json output = nlohmann::json::parse(out, nullptr, false);
  if (output.is_discarded()) output = nullptr;
  if (!error.empty() && output.is_object() && output.contains("error") && output["error"].is_string())
    error = output["error"].get<std::string>();  // the child's own message says more than its status
  bool ok = error.empty();
  if (run_id) {
    daemon::RunOutcome o;
    o.result = ok ? daemon::RunResult::kSuccess : daemon::RunResult::kFailure;
    o.finished_at = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
    o.duration_s = duration;
    o.error = error;
    if (output.is_object()) {
      o.snapshot_id = output.value("snapshot_id", output.value("id", ""));
      o.bytes_added = output.value("data_added", uint64_t{0});
      o.total_size = output.value("total_bytes", uint64_t{0});
    }
    (void)store_->finish_run(*run_id, o);
    if (ok) {
      (void)store_->put_service_state([&] {
        auto st = store_->service_state(spec.services[0]);
        daemon::ServiceState s;
        if (st.ok() && *st) s = **st;
        s.service = spec.services[0];
        s.last_success_at = o.finished_at;
        s.last_attempt_at = started;
        if (!s.newest_restorable_point || *s.newest_restorable_point < started) s.newest_restorable_point = started;
        return s;
      }());
    }
  }
  spdlog::info("job {} ({} {}) {} in {:.1f}s{}", job->view.id, spec.kind, fmt::join(spec.services, ","),
               ok ? "succeeded" : "failed", duration, ok ? "" : ": " + error);
  {
    std::lock_guard lock(job->mu);
    job->view.state = ok ? "succeeded" : "failed";
    job->view.finished_at = now_text();
    job->view.duration_s = duration;
    job->view.exit_code = exit_code;
    job->view.output = std::move(output);
    job->view.error = error;
    job->view.log = log;
    job->dog.reset();
    job->proc.reset();
  }
  if (on_finish_) on_finish_(job->snapshot());
}

std::optional<JobView> JobRunner::get(const std::string& id) const {
  std::lock_guard lock(mu_);
  for (const auto& j : jobs_) {
    JobView v = j->snapshot();
    if (v.id == id) return v;
  }
  return std::nullopt;
}

std::vector<JobView> JobRunner::list() const {
  std::lock_guard lock(mu_);
  std::vector<JobView> out;
  for (auto it = jobs_.rbegin(); it != jobs_.rend(); ++it) out.push_back((*it)->snapshot());
  return out;
}

void JobRunner::cancel_all() {
  stopping_ = true;
  std::vector<std::pair<std::shared_ptr<Job>, std::thread>> threads;
  {
    std::lock_guard lock(mu_);
    for (const auto& j : jobs_) {
      std::lock_guard jl(j->mu);
      if (j->dog) j->dog->cancel();
    }
    threads.swap(threads_);
  }
  for (auto& t : threads) t.second.join();
}

}  // namespace cairn::server
