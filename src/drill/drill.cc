#include "drill/drill.h"

#include <fmt/format.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <random>

#include "archive/restorer.h"
#include "core/process.h"
#include "engines/exec/exec.h"
#include "policy/duration.h"
#include "repo/timefmt.h"

namespace cairn::drill {

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr char kScratchPrefix[] = "cairn-drill-";
constexpr size_t kOutputTail = 2000;

std::string now_rfc3339() {
  repo::Time t;
  t.unix_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                  std::chrono::system_clock::now().time_since_epoch())
                  .count();
  return repo::format_time(t);
}

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// The scratch folder, removed whatever happens to the drill.
class Scratch {
 public:
  explicit Scratch(std::string path) : path_(std::move(path)) {}
  ~Scratch() {
    std::error_code ec;
    fs::permissions(path_, fs::perms::owner_all, fs::perm_options::add, ec);
    fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

core::Result<repo::SnapshotRef> select_snapshot(repo::Repository& repo, const std::string& service,
                                                const std::string& point) {
  ASSIGN_OR_RETURN(auto all, repo.list_snapshots());
  std::vector<repo::SnapshotRef> mine;
  for (auto& s : all)
    if (s.snapshot.service == service) mine.push_back(std::move(s));
  if (mine.empty()) return core::not_found("service " + service + " has no snapshot to drill");
  if (point == "latest") return mine.back();
  if (point == "random") {
    std::random_device rd;
    return mine[std::uniform_int_distribution<size_t>(0, mine.size() - 1)(rd)];
  }
  auto t = repo::parse_time(point);
  if (!t) return core::invalid_argument("--point \"" + point + "\" is not latest, random or a time");
  const repo::SnapshotRef* best = nullptr;
  for (const auto& s : mine)
    if (s.snapshot.time.unix_ns <= t->unix_ns) best = &s;
  if (!best) return core::not_found("service " + service + " has no snapshot at or before " + point);
  return *best;
}

// "exec: <command>" runs in the scratch folder; its exit status decides.
CheckResult run_check(const std::string& check, const std::string& dir, const policy::Service& service) {
  CheckResult r;
  r.check = check;
  auto start = Clock::now();
  std::string body = check;
  if (body.rfind("exec:", 0) != 0) {
    r.output = "SQL checks run against a scratch database server, which drills of engine \"" + service.engine.type +
               "\" do not start; use \"exec: <command>\" checks";
    return r;
  }
  body = body.substr(5);
  core::ProcessOptions po;
  po.env = {"CAIRN_DRILL_DIR=" + dir, "CAIRN_SERVICE=" + service.name};
  po.unset_env = engines::exec::repository_secret_env();
  po.new_process_group = true;
  auto proc = core::Subprocess::start({"/bin/sh", "-c", "cd \"$CAIRN_DRILL_DIR\" && " + body}, po);
  if (!proc.ok()) {
    r.output = proc.status().message();
    return r;
  }
  std::shared_ptr<core::Subprocess> p = std::move(*proc);
  core::Watchdog dog(p, service.timeout);
  uint8_t buf[4096];
  for (;;) {
    auto n = p->read(buf, sizeof buf);
    if (!n.ok() || *n == 0) break;
    r.output.append(reinterpret_cast<char*>(buf), *n);
    if (r.output.size() > 2 * kOutputTail) r.output.erase(0, r.output.size() - kOutputTail);
  }
  core::Status st = p->wait();
  dog.disarm();
  r.passed = st.ok();
  std::string tail = p->stderr_tail();
  if (!tail.empty()) r.output += (r.output.empty() ? "" : "\n") + tail;
  if (!st.ok()) r.output += (r.output.empty() ? "" : "\n") + st.message();
  if (dog.timed_out()) r.output += "\ntimed out after " + policy::format_duration(service.timeout);
  if (r.output.size() > kOutputTail) r.output.erase(0, r.output.size() - kOutputTail);
  while (!r.output.empty() && r.output.back() == '\n') r.output.pop_back();
  r.seconds = since(start);
  return r;
}

}  // namespace

void remove_stale_scratch(const std::string& root) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(root, ec)) {
    std::string name = e.path().filename().string();
    if (name.rfind(kScratchPrefix, 0) != 0) continue;
    // cairn-drill-<service>-<pid>-XXXXXX
    auto dash = name.rfind('-');
    if (dash == std::string::npos) continue;
    auto pid_start = name.rfind('-', dash - 1);
    if (pid_start == std::string::npos) continue;
    pid_t pid = static_cast<pid_t>(std::atol(name.substr(pid_start + 1, dash - pid_start - 1).c_str()));
    if (pid <= 0 || (kill(pid, 0) != 0 && errno == ESRCH)) {
      std::error_code rm;
      fs::remove_all(e.path(), rm);
    }
  }
}

DrillReport run_drill(repo::Repository& repo, const policy::Service& service, const DrillOptions& opt) {
  DrillReport r;
  r.service = service.name;
  r.owner = service.owner;
  r.tier = service.tier;
  r.point = opt.point;
  r.started_at = now_rfc3339();
  r.rto_objective_s = static_cast<double>(service.objectives.rto.count());
  r.rpo_objective_s = static_cast<double>(service.objectives.rpo.count());
  auto start = Clock::now();
  auto wall_start = std::chrono::system_clock::now();
  auto finish = [&](std::string failure) {
    r.rto_s = since(start);
    r.finished_at = now_rfc3339();
    auto add = [&](const std::string& why) { failure += (failure.empty() ? "" : "; ") + why; };
    size_t failed = std::count_if(r.checks.begin(), r.checks.end(), [](const CheckResult& c) { return !c.passed; });
    if (failed) add(fmt::format("{} check(s) failed", failed));
    if (r.rto_objective_s > 0 && r.rto_s > r.rto_objective_s)
      add(fmt::format("restore and checks took {:.1f}s, more than the RTO objective {}", r.rto_s,
                      policy::format_duration(service.objectives.rto)));
    r.failure = failure;
    r.passed = failure.empty();
    return r;
  };
  remove_stale_scratch(opt.scratch_root);

  auto t = Clock::now();
  auto snap = select_snapshot(repo, service.name, opt.point);
  r.phases.push_back({"select", since(t)});
  if (!snap.ok()) return finish(snap.status().message());
  r.snapshot_id = snap->id;
  r.snapshot_time = repo::format_time(snap->snapshot.time);
  r.rpo_s = std::chrono::duration<double>(wall_start.time_since_epoch()).count() -
            static_cast<double>(snap->snapshot.time.unix_ns) / 1e9;

  std::string tmpl = fmt::format("{}/{}{}-{}-XXXXXX", opt.scratch_root, kScratchPrefix, service.name, getpid());
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (!mkdtemp(buf.data())) return finish(fmt::format("cannot create a scratch folder in {}: {}", opt.scratch_root, strerror(errno)));
  Scratch scratch(buf.data());

  // Restore with verification: every restored file is read back and checked
  // against the snapshot (the files-level integrity check).
  t = Clock::now();
  archive::RestoreOptions ro;
  ro.target = scratch.path();
  ro.verify = true;
  auto restored = archive::restore(repo, snap->snapshot, "/", ro, nullptr);
  r.phases.push_back({"restore", since(t)});
  if (!restored.ok()) return finish("restore failed: " + restored.status().message());
  r.files_restored = restored->files;
  r.bytes_restored = restored->bytes;
  if (!restored->errors.empty()) {
    std::string all;
    for (size_t i = 0; i < restored->errors.size() && i < 5; i++) all += (i ? "; " : "") + restored->errors[i];
    return finish(fmt::format("restore failed ({} error(s)): {}", restored->errors.size(), all));
  }
  r.checks.push_back({"restored files verified against the snapshot", true,
                      fmt::format("{} files, {} bytes", restored->files, restored->bytes), 0});

  t = Clock::now();
  for (const auto& check : service.drill.checks) r.checks.push_back(run_check(check, scratch.path(), service));
  r.phases.push_back({"checks", since(t)});
  return finish("");
}

nlohmann::json DrillReport::to_json() const {
  nlohmann::json phases_j = nlohmann::json::array(), checks_j = nlohmann::json::array();
  for (const auto& p : phases) phases_j.push_back({{"name", p.name}, {"seconds", p.seconds}});
  for (const auto& c : checks)
    checks_j.push_back({{"check", c.check}, {"passed", c.passed}, {"output", c.output}, {"seconds", c.seconds}});
  return {{"service", service},
          {"owner", owner},
          {"tier", tier},
          {"point", point},
          {"snapshot_id", snapshot_id},
          {"snapshot_time", snapshot_time},
          {"started_at", started_at},
          {"finished_at", finished_at},
          {"phases", phases_j},
          {"checks", checks_j},
          {"files_restored", files_restored},
          {"bytes_restored", bytes_restored},
          {"rto_seconds", rto_s},
          {"rpo_seconds", rpo_s},
          {"rto_objective_seconds", rto_objective_s},
          {"rpo_objective_seconds", rpo_objective_s},
          {"passed", passed},
          {"failure", failure}};
}

DrillReport DrillReport::from_json(const nlohmann::json& j) {
  DrillReport r;
  r.service = j.value("service", "");
  r.owner = j.value("owner", "");
  r.tier = j.value("tier", "");
  r.point = j.value("point", "");
  r.snapshot_id = j.value("snapshot_id", "");
  r.snapshot_time = j.value("snapshot_time", "");
  r.started_at = j.value("started_at", "");
  r.finished_at = j.value("finished_at", "");
  for (const auto& p : j.value("phases", nlohmann::json::array()))
    r.phases.push_back({p.value("name", ""), p.value("seconds", 0.0)});
  for (const auto& c : j.value("checks", nlohmann::json::array()))
    r.checks.push_back({c.value("check", ""), c.value("passed", false), c.value("output", ""), c.value("seconds", 0.0)});
  r.files_restored = j.value("files_restored", uint64_t{0});
  r.bytes_restored = j.value("bytes_restored", uint64_t{0});
  r.rto_s = j.value("rto_seconds", 0.0);
  r.rpo_s = j.value("rpo_seconds", 0.0);
  r.rto_objective_s = j.value("rto_objective_seconds", 0.0);
  r.rpo_objective_s = j.value("rpo_objective_seconds", 0.0);
  r.passed = j.value("passed", false);
  r.failure = j.value("failure", "");
  return r;
}

std::string DrillReport::markdown() const {
  auto dur = [](double s) { return policy::format_duration(std::chrono::seconds(static_cast<int64_t>(s + 0.5))); };
  std::string out = fmt::format("# Restore drill: {} — {}\n\n", service, passed ? "PASSED" : "FAILED");
  if (!passed) out += fmt::format("**Failure:** {}\n\n", failure);
  out += fmt::format("Owner {}, tier {}. Drill started {}, finished {}.\n\n", owner, tier, started_at, finished_at);
  out += fmt::format("Snapshot `{}` taken {} (point asked: {}).\n\n", snapshot_id.substr(0, 8),
                     snapshot_time.empty() ? "-" : snapshot_time, point);
  out += "| measure | value | objective |\n|---|---|---|\n";
  out += fmt::format("| RTO (restore + checks) | {:.2f}s | {} |\n", rto_s, rto_objective_s > 0 ? dur(rto_objective_s) : "-");
  out += fmt::format("| RPO (age of the restored point at drill start) | {} | {} |\n", dur(rpo_s),
                     rpo_objective_s > 0 ? dur(rpo_objective_s) : "-");
  out += fmt::format("| restored | {} files, {} bytes | |\n\n", files_restored, bytes_restored);
  out += "## Phases\n\n| phase | seconds |\n|---|---|\n";
  for (const auto& p : phases) out += fmt::format("| {} | {:.3f} |\n", p.name, p.seconds);
  out += "\n## Checks\n\n";
  for (const auto& c : checks) {
    out += fmt::format("- {} **{}** ({:.2f}s)\n", c.passed ? "✅" : "❌", c.check, c.seconds);
    if (c.output.empty()) continue;
    std::string indented = "  ";
    for (char ch : c.output) indented += ch == '\n' ? std::string("\n  ") : std::string(1, ch);
    out += "\n  ```\n" + indented + "\n  ```\n";
  }
  return out;
}

}  // namespace cairn::drill
