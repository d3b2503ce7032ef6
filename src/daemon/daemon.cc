#include "daemon/daemon.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "daemon/anomaly.h"
#include "policy/duration.h"

namespace cairn::daemon {

namespace {

using std::chrono::seconds;

constexpr char kPrunePrefix[] = "prune:";
constexpr char kForgetPrefix[] = "forget:";
constexpr char kDrillPrefix[] = "drill:";
constexpr char kFleetDrillKey[] = "fleet-drill";
constexpr size_t kMaxJobOutput = 1 << 20;

std::string fmt_time(Time t) { return format_rfc3339(t); }

}  // namespace

std::vector<ReceiverConfig> receivers_of(const policy::Catalog& c) {
  std::vector<ReceiverConfig> out;
  for (const auto& a : c.alerts) {
    ReceiverConfig r;
    r.name = a.name;
    r.kind = a.type == "alertmanager" ? ReceiverKind::kAlertmanager : ReceiverKind::kWebhook;
    r.url = a.url;
    r.services = a.services;
    for (const auto& [k, v] : a.headers) {
      auto val = policy::expand_env(v);
      if (!val.ok()) {
        spdlog::warn("alert receiver {}: header {} left out: {}", a.name, k, val.status().message());
        continue;
      }
      r.headers.emplace_back(k, *val);
    }
    out.push_back(std::move(r));
  }
  return out;
}

namespace {

// Twice the RTO objective (the drill fails past it anyway), at least the run timeout.
std::chrono::seconds drill_time_limit(const policy::Service& svc) {
  return std::max(svc.timeout, 2 * svc.objectives.rto);
}

const date::time_zone* zone_of(const policy::Catalog& c) {
  auto z = policy::find_zone(c.daemon.timezone);
  return z.ok() ? *z : nullptr;
}

RunOutcome outcome_of(const JobResult& r, Time finished) {
  RunOutcome out;
  out.finished_at = finished;
  out.duration_s = r.duration_s;
  out.result = r.ok ? RunResult::kSuccess : r.cancelled ? RunResult::kCancelled : RunResult::kFailure;
  out.error = r.error;
  return out;
}

Severity severity_for(const policy::Service& s) {
  return s.tier == "critical" || s.tier == "high" ? Severity::kCritical : Severity::kWarning;
}

}  // namespace

core::Result<std::unique_ptr<Daemon>> Daemon::create(DaemonOptions options, policy::Catalog catalog) {
  ASSIGN_OR_RETURN(auto store, StateStore::open(catalog.daemon.state));
  std::unique_ptr<Daemon> d(new Daemon(std::move(options), std::move(catalog), std::move(store)));
  AlertManagerOptions ao;
  ao.repeat_interval = d->catalog_->daemon.repeat_interval;
  ASSIGN_OR_RETURN(d->alerts_, AlertManager::create(&d->store_, receivers_of(*d->catalog_), ao));
  return d;
}

Daemon::Daemon(DaemonOptions options, policy::Catalog catalog, StateStore store)
    : options_(std::move(options)),
      store_(std::move(store)),
      catalog_(std::make_shared<const policy::Catalog>(std::move(catalog))) {}

Daemon::~Daemon() {
  stop();
  for (auto& w : workers_)
    if (w.joinable()) w.join();
  if (metrics_) metrics_->stop();
}

Time Daemon::now() const { return std::chrono::floor<seconds>(std::chrono::system_clock::now()); }

void Daemon::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
}

void Daemon::reload() {
  {
    std::lock_guard lock(mu_);
    reload_ = true;
  }
  cv_.notify_all();
}

bool Daemon::sleep_unless_stopping(seconds d) {
  std::unique_lock lock(mu_);
  return !cv_.wait_for(lock, d, [this] { return stopping_; });
}

std::shared_ptr<AlertManager> Daemon::alerts() {
  std::lock_guard lock(mu_);
  return alerts_;
}

// (Re)builds the schedule from the catalog; keeps the due times of jobs
// whose schedule did not change since `previous`. Called with mu_ held.
std::vector<Alert> Daemon::schedule_catalog(Time t, const policy::Catalog* previous) {
  std::vector<Alert> missed_alerts;
  const policy::Catalog& c = *catalog_;
  auto unchanged = [&](const std::string& service, auto field) {
    const policy::Service* p = previous ? previous->find(service) : nullptr;
    const policy::Service* n = c.find(service);
    return p && n && field(*p) == field(*n);
  };
  auto old = std::move(book_);
  book_ = std::make_unique<ScheduleBook>(zone_of(c), c.daemon.jitter, c.daemon.catch_up == "once",
                                         static_cast<uint64_t>(getpid()) ^ static_cast<uint64_t>(t.time_since_epoch().count()));
  std::set<std::string> repositories;
  for (const auto& s : c.services) {
    std::optional<Time> persisted;
    if (old && unchanged(s.name, [](const policy::Service& x) { return x.schedule_text; })) persisted = old->next(s.name);
    auto st = store_.service_state(s.name);
    if (!persisted && st.ok() && *st) persisted = (*st)->next_run_at;
    if (s.schedule) {
      bool missed = book_->add(s.name, *s.schedule, persisted, t);
      if (missed && !old)
        missed_alerts.push_back(make_alert(s, kAlertBackupMissed, Severity::kWarning,
                                        fmt::format("{}: scheduled backup missed while the daemon was down", s.name),
                                        fmt::format("A run was due at {}; the daemon was not running. Catch-up "
                                                    "policy: {}.",
                                                    fmt_time(*persisted), c.daemon.catch_up)));
    }
    if (s.drill.schedule) {
      std::string key = kDrillPrefix + s.name;
      bool same = unchanged(s.name, [](const policy::Service& x) { return x.drill.schedule_text; });
      book_->add(key, *s.drill.schedule, old && same ? old->next(key) : std::nullopt, t);
    }
    // Prune each repository once, under its first service's name.
    if (c.daemon.prune_schedule && repositories.insert(s.repository.location).second) {
      std::string key = kPrunePrefix + s.name;
      bool same = previous && previous->daemon.prune_schedule_text == c.daemon.prune_schedule_text;
      std::optional<Time> prune_next = old && same ? old->next(key) : std::nullopt;
      book_->add(key, *c.daemon.prune_schedule, prune_next ? prune_next : std::optional<Time>(), t);
    }
  }
  if (c.daemon.fleet_drill_schedule) {
    bool same = previous && previous->daemon.fleet_drill_schedule_text == c.daemon.fleet_drill_schedule_text;
    book_->add(kFleetDrillKey, *c.daemon.fleet_drill_schedule,
               old && same ? old->next(kFleetDrillKey) : std::nullopt, t);
  }
  return missed_alerts;
}

core::Status Daemon::apply_reload() {
  policy::LoadResult r = policy::load_catalog(options_.config_path);
  for (const auto& d : r.diagnostics) {
    if (d.severity == policy::Diagnostic::Severity::kError) spdlog::error("reload: {}", d.to_string());
    else spdlog::warn("reload: {}", d.to_string());
  }
  if (!r.ok()) return core::invalid_argument("the new policy has errors; keeping the old one");
  AlertManagerOptions ao;
  ao.repeat_interval = r.catalog.daemon.repeat_interval;
  ASSIGN_OR_RETURN(auto alerts, AlertManager::create(&store_, receivers_of(r.catalog), ao));
  std::lock_guard lock(mu_);
  alerts_ = std::move(alerts);
  auto previous = std::exchange(catalog_, std::make_shared<const policy::Catalog>(std::move(r.catalog)));
  (void)schedule_catalog(now(), previous.get());
  spdlog::info("reloaded {}: {} service(s)", options_.config_path, catalog_->services.size());
  return {};
}

ServiceState Daemon::update_state(const std::string& service, const std::function<void(ServiceState&)>& change) {
  std::lock_guard lock(state_mu_);
  ServiceState st;
  if (auto old = store_.service_state(service); old.ok() && *old) st = **old;
  st.service = service;
  ServiceState before = st;
  change(st);
  bool same = st.last_success_at == before.last_success_at && st.last_attempt_at == before.last_attempt_at &&
              st.next_run_at == before.next_run_at && st.newest_restorable_point == before.newest_restorable_point;
  if (!same) (void)store_.put_service_state(st);
  return st;
}

Alert Daemon::make_alert(const policy::Service& svc, const std::string& name, Severity sev, std::string summary,
                         std::string description) const {
  Alert a;
  a.name = name;
  a.service = svc.name;
  a.owner = svc.owner;
  a.tier = svc.tier;
  a.severity = sev;
  a.summary = std::move(summary);
  a.description = std::move(description);
  return a;
}

core::Status Daemon::run() {
  daemon_started_ = now();
  TRY(store_.mark_interrupted_runs(daemon_started_));
  const policy::Catalog& c = *catalog_;
  if (!c.daemon.listen.empty()) {
    MetricsServerOptions mo;
    auto colon = c.daemon.listen.rfind(':');
    mo.address = c.daemon.listen.substr(0, colon);
    mo.port = std::atoi(c.daemon.listen.substr(colon + 1).c_str());  // validated by the policy
    ASSIGN_OR_RETURN(metrics_, MetricsServer::start(
                                   mo, [this] { return render_metrics(); },
                                   [] { return core::Status(); }));
    metrics_port_ = metrics_->port();
    spdlog::info("metrics on http://{}:{}/metrics", mo.address, metrics_->port());
  }
  int jobs = c.daemon.max_jobs > 0 ? c.daemon.max_jobs : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::vector<Alert> missed;
  {
    std::lock_guard lock(mu_);
    missed = schedule_catalog(now(), nullptr);
  }
  for (const auto& a : missed) (void)alerts()->raise(a);
  for (int i = 0; i < jobs; i++) workers_.emplace_back([this] { worker(); });
  std::thread prober([this] { probe_recovery_points(); });
  // Alert delivery may retry for a while; it never holds up scheduling.
  std::thread evaluator([this] {
    do evaluate(now());
    while (sleep_unless_stopping(options_.evaluate_every));
  });
  spdlog::info("daemon started: {} service(s), {} job(s) at a time, state {}", c.services.size(), jobs,
               c.daemon.state);

  for (;;) {
    bool do_reload = false;
    {
      std::unique_lock lock(mu_);
      if (stopping_) break;
      Time t = now();
      for (const auto& name : book_->due(t)) {
        bool prune = name.rfind(kPrunePrefix, 0) == 0, drill = name.rfind(kDrillPrefix, 0) == 0;
        std::string service = prune   ? name.substr(sizeof(kPrunePrefix) - 1)
                              : drill ? name.substr(sizeof(kDrillPrefix) - 1)
                                      : name;
        if (busy_.count(name)) continue;  // never two runs of one service at once
        if (name == kFleetDrillKey) {
          book_->started(name, t);
          busy_.insert(name);
          queue_.push_back(Job{JobKind::kFleetDrill, "", "", t});
          continue;
        }
        const policy::Service* svc = catalog_->find(service);
        if (!prune && !drill && svc && draining_.count(svc->repository.location)) continue;  // after the forget
        JobKind kind = prune ? JobKind::kPrune : drill ? JobKind::kDrill : JobKind::kBackup;
        Job job{kind, service, "", *book_->next(name)};
        book_->started(name, t);
        busy_.insert(name);
        queue_.push_back(job);
      }
      cv_.notify_all();
      auto wake = std::chrono::system_clock::now() + std::chrono::seconds(1);
      cv_.wait_until(lock, wake, [this] { return stopping_ || reload_; });
      do_reload = std::exchange(reload_, false);
    }
    if (do_reload) {
      if (auto st = apply_reload(); !st.ok()) spdlog::error("{}", st.message());
    }
  }

  // Shutdown: running jobs get the grace period, then are cancelled.
  seconds grace = catalog_->daemon.shutdown_grace;
  spdlog::info("stopping: waiting up to {} for running jobs", policy::format_duration(grace));
  {
    std::unique_lock lock(mu_);
    queue_.clear();
    if (!cv_.wait_for(lock, grace, [this] { return started_at_.empty(); })) {
      cancel_ = true;
      for (const auto& dog : running_) dog->cancel();
      spdlog::warn("cancelled {} job(s) still running after the grace period", running_.size());
    }
  }
  cv_.notify_all();
  for (auto& w : workers_) w.join();
  workers_.clear();
  prober.join();
  evaluator.join();
  evaluate(now());
  if (metrics_) metrics_->stop();
  spdlog::info("daemon stopped");
  return {};
}

void Daemon::worker() {
  for (;;) {
    Job job;
    std::shared_ptr<const policy::Catalog> catalog;
    std::string key;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;  // queued runs that did not start are dropped
      job = queue_.front();
      queue_.pop_front();
      catalog = catalog_;
      key = job.kind == JobKind::kPrune    ? kPrunePrefix + job.service
            : job.kind == JobKind::kDrill  ? kDrillPrefix + job.service
            : job.kind == JobKind::kForget ? kForgetPrefix + job.repository
            : job.kind == JobKind::kFleetDrill ? std::string(kFleetDrillKey)
                                           : job.service;
      started_at_[key] = now();
    }
    if (job.kind == JobKind::kForget) {
      run_forget_job(job.repository, catalog);
    } else if (job.kind == JobKind::kFleetDrill) {
      run_fleet_drill_job(catalog);
    } else if (const policy::Service* svc = catalog->find(job.service)) {
      if (job.kind == JobKind::kPrune) run_prune_job(*svc, catalog);
      else if (job.kind == JobKind::kDrill) run_drill_job(*svc);
      else run_backup_job(*svc);
    }
    {
      std::lock_guard lock(mu_);
      busy_.erase(key);
      started_at_.erase(key);
    }
    cv_.notify_all();
  }
}

JobResult Daemon::run_child(const std::vector<std::string>& args, seconds timeout) {
  JobResult r;
  std::vector<std::string> argv = {options_.cairn_exe, "--json", "--no-progress"};
  argv.insert(argv.end(), options_.job_args.begin(), options_.job_args.end());
  argv.push_back("--config");
  argv.push_back(options_.config_path);
  argv.insert(argv.end(), args.begin(), args.end());
  core::ProcessOptions po;
  po.new_process_group = true;  // a timeout reaches the dump tools it started
  auto start = std::chrono::steady_clock::now();
  auto proc = core::Subprocess::start(argv, po);
  if (!proc.ok()) {
    r.error = proc.status().message();
    return r;
  }
  std::shared_ptr<core::Subprocess> p = std::move(*proc);
  auto dog = std::make_shared<core::Watchdog>(p, timeout);
  {
    std::lock_guard lock(mu_);
    if (cancel_) dog->cancel();
    running_.insert(dog);
  }
  uint8_t buf[8192];
  for (;;) {
    auto n = p->read(buf, sizeof buf);
    if (!n.ok() || *n == 0) break;
    if (r.stdout_text.size() < kMaxJobOutput) r.stdout_text.append(reinterpret_cast<char*>(buf), *n);
  }
  core::Status st = p->wait();
  dog->disarm();
  {
    std::lock_guard lock(mu_);
    running_.erase(dog);
  }
  r.duration_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  r.exit_code = p->exit_code();
  r.timed_out = dog->timed_out();
  r.cancelled = dog->fired() && !r.timed_out;
  // 3 = finished with warnings: the snapshot exists.
  r.ok = st.ok() || r.exit_code == 3;
  if (!r.ok) {
    std::string msg;
    try {  // --json failures print {"error": ...} on stdout
      auto j = nlohmann::json::parse(r.stdout_text);
      if (j.is_object() && j.contains("error")) msg = j["error"].get<std::string>();
    } catch (const nlohmann::json::exception&) {
    }
    r.error = msg.empty() ? st.message() : msg;
    if (r.timed_out) r.error = fmt::format("timed out after {}: {}", policy::format_duration(timeout), r.error);
    if (r.cancelled) r.error = "cancelled at daemon shutdown: " + r.error;
  }
  return r;
}

void Daemon::run_backup_job(const policy::Service& svc) {
  for (int attempt = 1; attempt <= svc.retries + 1; attempt++) {
    // Waits while a forget drains the repository; the run starts after it.
    if (!enter_repository(svc.repository.location)) return;
    Time started = now();
    auto id = store_.begin_run(svc.name, RunKind::kBackup, started, attempt);
    {
      update_state(svc.name, [&](ServiceState& st) { st.last_attempt_at = started; });
    }
    spdlog::info("{}: backup started (attempt {}/{})", svc.name, attempt, svc.retries + 1);
    JobResult r = run_child({"backup", "--service", svc.name}, svc.timeout);
    leave_repository(svc.repository.location);
    RunOutcome out = outcome_of(r, now());
    if (r.ok) {
      try {
        auto j = nlohmann::json::parse(r.stdout_text);
        out.snapshot_id = j.value("snapshot_id", "");
        out.total_size = j["summary"].value("total_bytes", uint64_t{0});
        out.bytes_added = j["summary"].value("data_added", uint64_t{0});
      } catch (const nlohmann::json::exception& e) {
        spdlog::warn("{}: backup output not understood: {}", svc.name, e.what());
      }
    }
    if (id.ok()) (void)store_.finish_run(*id, out);
    if (r.ok) {
      spdlog::info("{}: backup {} done in {:.1f}s", svc.name, out.snapshot_id.substr(0, 8), r.duration_s);
      after_success(svc, r, started, id.ok() ? *id : 0);
      return;
    }
    spdlog::error("{}: backup failed (attempt {}/{}): {}", svc.name, attempt, svc.retries + 1, r.error);
    if (r.cancelled || attempt > svc.retries) {
      if (!r.cancelled)
        (void)alerts()->raise(make_alert(svc, kAlertBackupFailed, severity_for(svc),
                                        fmt::format("{}: backup failed after {} attempt(s)", svc.name, attempt),
                                        r.error));
      return;
    }
    // Exponential backoff between attempts, capped at an hour.
    seconds delay = std::min<seconds>(svc.retry_delay * (1 << std::min(attempt - 1, 10)), std::chrono::hours(1));
    if (!sleep_unless_stopping(delay)) return;
  }
}

void Daemon::after_success(const policy::Service& svc, const JobResult& r, Time started, int64_t run_id) {
  update_state(svc.name, [&](ServiceState& st) {
    st.last_success_at = started;
    // The snapshot holds the data as of its start. Continuous services keep
    // a newer point from the WAL probe.
    if (!st.newest_restorable_point || *st.newest_restorable_point < started) st.newest_restorable_point = started;
  });
  (void)alerts()->resolve(kAlertBackupFailed, svc.name);
  (void)alerts()->resolve(kAlertBackupMissed, svc.name);

  // Anomalies against this service's recent successful runs.
  auto history = store_.recent_runs(svc.name, RunKind::kBackup, 11, RunResult::kSuccess);
  if (history.ok()) {
    std::vector<RunSample> past;
    RunSample current{0, r.duration_s};
    for (const auto& h : *history) {
      if (h.id == run_id) current.size_bytes = static_cast<double>(h.total_size);
      else past.push_back({static_cast<double>(h.total_size), h.duration_s});
    }
    bool size = false, duration = false;
    for (const auto& a : detect_anomalies(past, current)) {
      bool is_size = a.kind != AnomalyKind::kDurationSpike;
      (is_size ? size : duration) = true;
      (void)alerts()->raise(make_alert(svc, is_size ? kAlertBackupSizeAnomaly : kAlertBackupDurationAnomaly,
                                      Severity::kWarning, fmt::format("{}: backup {}", svc.name, anomaly_kind_name(a.kind)),
                                      a.message));
    }
    if (!size) (void)alerts()->resolve(kAlertBackupSizeAnomaly, svc.name);
    if (!duration) (void)alerts()->resolve(kAlertBackupDurationAnomaly, svc.name);
  }

  // Retention right after each backup: queue a forget for the repository
  // (one at a time per repository; it picks up every service with news).
  {
    std::lock_guard lock(mu_);
    const std::string& repo = svc.repository.location;
    forget_pending_[repo].insert(svc.name);
    if (busy_.insert(kForgetPrefix + repo).second) queue_.push_front(Job{JobKind::kForget, "", repo, now()});
  }
  cv_.notify_all();
}

bool Daemon::enter_repository(const std::string& repository) {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return stopping_ || !draining_.count(repository); });
  if (stopping_) return false;
  backups_running_[repository]++;
  return true;
}

void Daemon::leave_repository(const std::string& repository) {
  {
    std::lock_guard lock(mu_);
    if (--backups_running_[repository] == 0) backups_running_.erase(repository);
  }
  cv_.notify_all();
}

void Daemon::run_forget_job(const std::string& repository, std::shared_ptr<const policy::Catalog> catalog) {
  std::set<std::string> services;
  {
    std::unique_lock lock(mu_);
    draining_.insert(repository);
    cv_.wait(lock, [&] { return stopping_ || !backups_running_.count(repository); });
    if (!stopping_) services = std::exchange(forget_pending_[repository], {});
  }
  for (const auto& name : services) {
    const policy::Service* svc = catalog->find(name);
    if (!svc) continue;
    Time t = now();
    auto id = store_.begin_run(name, RunKind::kForget, t);
    // Processes outside this daemon (wal-push, manual backups) may hold
    // shared locks briefly.
    JobResult f = run_child({"--retry-lock", "10m", "forget", "--service", name}, svc->timeout);
    RunOutcome out = outcome_of(f, now());
    if (id.ok()) (void)store_.finish_run(*id, out);
    if (!f.ok) spdlog::error("{}: forget failed: {}", name, f.error);
  }
  {
    std::lock_guard lock(mu_);
    draining_.erase(repository);
  }
  cv_.notify_all();
}

void Daemon::run_prune_job(const policy::Service& svc, std::shared_ptr<const policy::Catalog> catalog) {
  Time t = now();
  auto id = store_.begin_run(svc.name, RunKind::kPrune, t);
  spdlog::info("prune of {} (service {}) started", svc.repository.location, svc.name);
  JobResult r = run_child(
      {"--retry-lock", "1h", "prune", "--service", svc.name, "--max-unused", catalog->daemon.max_unused}, seconds(0));
  RunOutcome out = outcome_of(r, now());
  if (r.ok) {
    try {  // the repository's size after this run (cairn_repository_size_bytes)
      auto j = nlohmann::json::parse(r.stdout_text);
      uint64_t before = j.value("bytes_before", uint64_t{0});
      uint64_t freed = j.value("mode", "") == "exclusive" ? j.value("bytes_freed", uint64_t{0}) : 0;
      out.total_size = before > freed ? before - freed : 0;
      out.bytes_added = j.value("bytes_swept", uint64_t{0}) + freed;  // bytes removed
    } catch (const nlohmann::json::exception&) {
    }
  }
  if (id.ok()) (void)store_.finish_run(*id, out);
  if (r.ok) spdlog::info("prune of {} done in {:.1f}s", svc.repository.location, r.duration_s);
  else spdlog::error("prune of {} failed: {}", svc.repository.location, r.error);
}

// The drill records its own run and report in the state database; the
// daemon turns the verdict into an alert.
void Daemon::run_drill_job(const policy::Service& svc) {
  spdlog::info("{}: restore drill started", svc.name);
  JobResult r = run_child({"drill", "run", "--service", svc.name}, drill_time_limit(svc));
  std::string failure = r.error;
  try {
    auto j = nlohmann::json::parse(r.stdout_text);
    if (j.contains("passed")) failure = j.value("passed", false) ? "" : j.value("failure", "drill failed");
  } catch (const nlohmann::json::exception&) {
  }
  if (r.cancelled) return;
  if (failure.empty()) {
    spdlog::info("{}: restore drill passed in {:.1f}s", svc.name, r.duration_s);
    (void)alerts()->resolve(kAlertDrillFailed, svc.name);
  } else {
    spdlog::error("{}: restore drill failed: {}", svc.name, failure);
    (void)alerts()->raise(make_alert(svc, kAlertDrillFailed, severity_for(svc),
                                     fmt::format("{}: restore drill failed", svc.name), failure));
  }
}

// For services with continuous log archiving the recovery point is the
// newest archived log, not the last base backup: PostgreSQL's from
// `pg check`; MariaDB's binlogs are archived here (binlog-sync --flush).
void Daemon::probe_recovery_points() {
  for (;;) {
    std::shared_ptr<const policy::Catalog> catalog;
    {
      std::lock_guard lock(mu_);
      catalog = catalog_;
    }
    for (const auto& svc : catalog->services) {
      if (svc.engine.mariadb_binlogs()) {
        // Closing and archiving the current binlog makes "now" restorable.
        Time started = now();
        JobResult r = run_child({"mariadb", "binlog-sync", "--service", svc.name, "--flush"}, seconds(600));
        if (!r.ok) {
          spdlog::warn("{}: binlog archiving failed: {}", svc.name, r.error);
          continue;
        }
        update_state(svc.name, [&](ServiceState& st) {
          if (!st.newest_restorable_point || *st.newest_restorable_point < started) st.newest_restorable_point = started;
        });
        continue;
      }
      if (!svc.engine.postgres_wal()) continue;
      JobResult r = run_child({"pg", "check", "--service", svc.name}, seconds(120));
      if (!r.ok) {
        spdlog::warn("{}: WAL recovery point unknown: {}", svc.name, r.error);
        continue;
      }
      try {
        auto j = nlohmann::json::parse(r.stdout_text);
        double age = j.value("newest_age_seconds", -1.0);
        if (age < 0) continue;
        Time point = now() - seconds(static_cast<int64_t>(age));
        update_state(svc.name, [&](ServiceState& st) {
          if (!st.newest_restorable_point || *st.newest_restorable_point < point) st.newest_restorable_point = point;
        });
      } catch (const nlohmann::json::exception&) {
      }
    }
    if (!sleep_unless_stopping(options_.probe_every)) return;
  }
}

void Daemon::evaluate(Time t) {
  std::shared_ptr<const policy::Catalog> catalog;
  std::map<std::string, std::optional<Time>> next;
  std::map<std::string, Time> waiting;  // due time of a run that has not started
  std::map<std::string, seconds> grace;
  {
    std::lock_guard lock(mu_);
    catalog = catalog_;
    for (const auto& s : catalog->services) {
      next[s.name] = book_ ? book_->next(s.name) : std::nullopt;
      grace[s.name] = book_ ? book_->missed_grace(s.name) : seconds(60);
      // Still in the past: the previous run was still going (no overlap).
      if (next[s.name] && *next[s.name] <= t) waiting[s.name] = *next[s.name];
    }
    for (const auto& job : queue_)  // queued behind busy workers
      if (job.kind == JobKind::kBackup) waiting[job.service] = std::min(waiting.count(job.service) ? waiting[job.service] : job.due, job.due);
  }
  const date::time_zone* zone = zone_of(*catalog);
  for (const auto& svc : catalog->services) {
    ServiceState st = update_state(svc.name, [&](ServiceState& s) { s.next_run_at = next[svc.name]; });

    // RPO: the age of the newest restorable point against the objective. A
    // service that never succeeded has no point yet; BackupFailed and
    // BackupMissed speak for it.
    std::optional<Time> since = st.newest_restorable_point;
    if (since) {
      seconds rpo = t - *since;
      if (rpo > svc.objectives.rpo)
        (void)alerts()->raise(make_alert(svc, kAlertRpoBreach, severity_for(svc),
                                        fmt::format("{}: RPO {} exceeds the objective {}", svc.name,
                                                    policy::format_duration(rpo),
                                                    policy::format_duration(svc.objectives.rpo)),
                                        fmt::format("Newest restorable point: {}.", fmt_time(*since))));
      else (void)alerts()->resolve(kAlertRpoBreach, svc.name);
    }
    // Missed: due for longer than the grace and not started (every worker
    // busy, or the previous run of the service still running).
    if (auto w = waiting.find(svc.name); w != waiting.end() && w->second + grace[svc.name] < t)
      (void)alerts()->raise(make_alert(svc, kAlertBackupMissed, Severity::kWarning,
                                      fmt::format("{}: scheduled backup did not start on time", svc.name),
                                      fmt::format("Due at {}; not started {} later.", fmt_time(w->second),
                                                  policy::format_duration(t - w->second))));
    evaluate_drill_age(svc, t, zone);
  }
  (void)alerts()->flush();
}

// Every service (or the policy's selection) drilled to one instant; each
// drill records its own run and report, the fleet verdict is one alert.
void Daemon::run_fleet_drill_job(std::shared_ptr<const policy::Catalog> catalog) {
  std::vector<std::string> args = {"drill", "run", "--fleet"};
  const auto& names = catalog->daemon.fleet_drill_services;
  std::string list;
  for (const auto& n : names) list += (list.empty() ? "" : ",") + n;
  if (!list.empty()) args.insert(args.end(), {"--services", list});
  seconds limit{0};
  for (const auto& svc : catalog->services)
    if (names.empty() || std::find(names.begin(), names.end(), svc.name) != names.end())
      limit += drill_time_limit(svc);
  spdlog::info("fleet drill started");
  JobResult r = run_child(args, limit);
  std::string failed;
  auto j = nlohmann::json::parse(r.stdout_text, nullptr, false);
  if (!j.is_discarded())
    for (const auto& s : j.value("services", nlohmann::json::array()))
      if (!s.value("passed", false)) failed += (failed.empty() ? "" : ", ") + s.value("service", std::string("?"));
  Alert a;
  a.name = kAlertFleetDrillFailed;
  a.severity = Severity::kCritical;
  if (r.ok) {
    spdlog::info("fleet drill passed in {:.1f}s (point {})", r.duration_s, j.is_discarded() ? "?" : j.value("point", "?"));
    (void)alerts()->resolve(kAlertFleetDrillFailed, "");
    return;
  }
  a.summary = failed.empty() ? "fleet drill failed" : "fleet drill failed: " + failed;
  a.description = failed.empty() ? r.error : "Services that did not recover to the fleet point: " + failed + ".";
  spdlog::error("{}", a.summary);
  (void)alerts()->raise(a);
}

// DrillOverdue: no drill of the service passed within its max_age.
void Daemon::evaluate_drill_age(const policy::Service& svc, Time t, const date::time_zone* zone) {
  if (!svc.drill.schedule) return;
  seconds max_age =
      svc.drill.max_age ? *svc.drill.max_age : svc.drill.schedule->max_interval(zone) + drill_time_limit(svc);
  Time since = daemon_started_;
  auto passed = store_.recent_runs(svc.name, RunKind::kDrill, 1, RunResult::kSuccess);
  bool ever = passed.ok() && !passed->empty() && passed->front().finished_at;
  if (ever) since = std::max(since, *passed->front().finished_at);
  if (t - since <= max_age) {
    (void)alerts()->resolve(kAlertDrillOverdue, svc.name);
    return;
  }
  (void)alerts()->raise(make_alert(
      svc, kAlertDrillOverdue, severity_for(svc),
      fmt::format("{}: no restore drill passed in {}", svc.name, policy::format_duration(t - since)),
      ever ? fmt::format("Last passing drill: {}; allowed age {}.", fmt_time(*passed->front().finished_at),
                         policy::format_duration(max_age))
           : fmt::format("No drill has passed since the daemon started ({}); allowed age {}.", fmt_time(since),
                         policy::format_duration(max_age))));
}

std::string Daemon::render_metrics() {
  std::shared_ptr<const policy::Catalog> catalog;
  {
    std::lock_guard lock(mu_);
    catalog = catalog_;
  }
  Time t = now();
  // Prune runs are recorded under the first service of each repository.
  std::map<std::string, std::string> pruned_as;
  for (const auto& svc : catalog->services) pruned_as.emplace(svc.repository.location, svc.name);
  std::vector<ServiceMetrics> all;
  for (const auto& svc : catalog->services) {
    ServiceMetrics m;
    if (auto p = store_.recent_runs(pruned_as[svc.repository.location], RunKind::kPrune, 1, RunResult::kSuccess);
        p.ok() && !p->empty() && p->front().total_size > 0)
      m.repository_size_bytes = static_cast<double>(p->front().total_size);
    m.service = svc.name;
    m.rpo_objective_s = static_cast<double>(svc.objectives.rpo.count());
    auto st = store_.service_state(svc.name);
    if (st.ok() && *st) {
      if ((*st)->last_success_at) m.last_success_timestamp = static_cast<double>((*st)->last_success_at->time_since_epoch().count());
      if ((*st)->newest_restorable_point)
        m.rpo_s = static_cast<double>((t - *(*st)->newest_restorable_point).count());
    }
    if (auto d = store_.drill_reports(svc.name, 1, true); d.ok() && !d->empty()) {
      auto j = nlohmann::json::parse(d->front().report_json, nullptr, false);
      if (!j.is_discarded()) {
        m.drill_rto_s = j.value("rto_seconds", 0.0);
        m.drill_rpo_s = j.value("rpo_seconds", 0.0);
      }
      auto runs = store_.recent_runs(svc.name, RunKind::kDrill, 1, RunResult::kSuccess);
      if (runs.ok() && !runs->empty() && runs->front().finished_at)
        m.drill_last_success_timestamp = static_cast<double>(runs->front().finished_at->time_since_epoch().count());
    }
    if (auto runs = store_.recent_runs(svc.name, RunKind::kBackup, 1, RunResult::kSuccess); runs.ok() && !runs->empty()) {
      m.last_duration_s = runs->front().duration_s;
      m.last_size_bytes = static_cast<double>(runs->front().total_size);
    }
    if (auto counts = store_.run_counts(svc.name, RunKind::kBackup); counts.ok()) {
      auto get = [&](RunResult r) { auto it = counts->find(r); return it == counts->end() ? 0 : static_cast<uint64_t>(it->second); };
      m.runs_success = get(RunResult::kSuccess);
      m.runs_failure = get(RunResult::kFailure);
      m.runs_cancelled = get(RunResult::kCancelled);
    }
    all.push_back(std::move(m));
  }
  return render_fleet_metrics(all);
}

}  // namespace cairn::daemon
