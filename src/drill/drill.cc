#include "drill/drill.h"

#include <fmt/format.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <thread>

#include "archive/restorer.h"
#include "core/process.h"
#include "core/text.h"
#include "drill/drill_steps.h"
#include "engines/exec/exec.h"
#include "engines/postgres/scratch_server.h"
#include "policy/duration.h"
#include "repo/timefmt.h"

namespace cairn::drill {

namespace fs = std::filesystem;

namespace {

constexpr char kScratchPrefix[] = "cairn-drill-";
constexpr size_t kOutputTail = 2000;

// The scratch folder, removed whatever happens to the drill: on return, on
// a termination signal (with any scratch server in it), and -- after a
// SIGKILL -- by the next drill (remove_stale_scratch).
// Stops every process working in `dir` or whose command line names a path
// inside it (a scratch mariadbd or redis-server, a check's script),
// which an earlier drill killed with SIGKILL left running: SIGTERM, up to
// 5 s, then SIGKILL. Found through /proc, so it needs no pid file.
void stop_processes_inside(const std::string& dir) {
  std::string prefix = dir + "/";
  std::vector<pid_t> found;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/proc", ec)) {
    std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    pid_t pid = static_cast<pid_t>(std::atol(name.c_str()));
    if (pid == getpid()) continue;
    // Servers chdir into their data folder (and redis-server rewrites its
    // command line), so the working directory finds them first.
    auto cwd = fs::read_symlink(e.path() / "cwd", ec);
    if (!ec && (cwd.string() + "/").starts_with(prefix)) {
      found.push_back(pid);
      continue;
    }
    std::ifstream f(e.path() / "cmdline", std::ios::binary);
    std::string cmdline((std::istreambuf_iterator<char>(f)), {});
    // Arguments are NUL-separated; "--datadir=/x/data" names the path after '='.
    for (size_t i = 0; i < cmdline.size();) {
      size_t end = cmdline.find('\0', i);
      if (end == std::string::npos) end = cmdline.size();
      std::string_view arg(cmdline.data() + i, end - i);
      if (arg.find(prefix) != std::string_view::npos || arg == dir || arg.ends_with("=" + dir)) {
        found.push_back(pid);
        break;
      }
      i = end + 1;
    }
  }
  for (pid_t pid : found) ::kill(pid, SIGTERM);
  for (int i = 0; i < 50; i++) {
    bool any = false;
    for (pid_t pid : found) any |= ::kill(pid, 0) == 0;
    if (!any) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  for (pid_t pid : found) ::kill(pid, SIGKILL);
}

class Scratch {
 public:
  explicit Scratch(std::string path)
      : path_(std::move(path)), on_signal_([p = path_] { remove_scratch(p); }) {}
  ~Scratch() { remove_scratch(path_); }
  const std::string& path() const { return path_; }

  static void remove_scratch(const std::string& path) {
    // The signal watcher and the drill's own unwinding may both get here:
    // one at a time, the second finds nothing left. A server still shutting
    // down may write a last file: a few passes, a moment apart.
    static std::mutex one_at_a_time;
    std::lock_guard lock(one_at_a_time);
    engines::postgres::stop_stale_server(path + "/data");  // gracefully first (SIGQUIT)
    stop_processes_inside(path);  // any other scratch server (mariadbd, redis-server) or check
    std::error_code ec;
    fs::permissions(path, fs::perms::owner_all, fs::perm_options::add, ec);
    for (int pass = 0; pass < 50 && fs::symlink_status(path, ec).type() != fs::file_type::not_found;
         pass++) {
      if (pass) std::this_thread::sleep_for(std::chrono::milliseconds(100));
      fs::remove_all(path, ec);
    }
  }

 private:
  std::string path_;
  core::CleanupOnTermination on_signal_;
};

}  // namespace

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

std::string rfc3339(std::chrono::system_clock::time_point t) {
  repo::Time rt;
  rt.unix_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  return repo::format_time(rt);
}

double unix_seconds(const std::string& text) {
  auto t = repo::parse_time(text);
  return t ? static_cast<double>(t->unix_ns) / 1e9 : 0;
}

void add_phase(DrillReport& r, const std::string& name, Clock::time_point start) {
  r.phases.push_back({name, seconds_since(start)});
}

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
  if (!t)
    return core::invalid_argument("--point \"" + point + "\" is not latest, random or a time");
  const repo::SnapshotRef* best = nullptr;
  for (const auto& s : mine)
    if (s.snapshot.time.unix_ns <= t->unix_ns) best = &s;
  if (!best)
    return core::not_found("service " + service + " has no snapshot at or before " + point);
  return *best;
}

bool is_exec_check(const std::string& check) { return check.rfind("exec:", 0) == 0; }

CheckResult run_exec_check(const std::string& check, const std::string& dir,
                           const policy::Service& service, const std::vector<std::string>& env) {
  CheckResult r;
  r.check = check;
  auto start = Clock::now();
  core::ProcessOptions po;
  po.env = {"CAIRN_DRILL_DIR=" + dir, "CAIRN_SERVICE=" + service.name};
  po.env.insert(po.env.end(), env.begin(), env.end());
  po.unset_env = engines::exec::repository_secret_env();
  po.new_process_group = true;
  auto proc = core::Subprocess::start(
      {"/bin/sh", "-c", "cd \"$CAIRN_DRILL_DIR\" && " + check.substr(5)}, po);
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
  r.seconds = seconds_since(start);
  return r;
}

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
    pid_t pid =
        static_cast<pid_t>(std::atol(name.substr(pid_start + 1, dash - pid_start - 1).c_str()));
    if (pid <= 0 || (kill(pid, 0) != 0 && errno == ESRCH))
      Scratch::remove_scratch(e.path().string());
  }
}

// Files and exec services (and anything that restores to plain files): the
// restore re-reads every file and checks it against the snapshot.
core::Status drill_files(DrillRun& run) {
  DrillReport& r = run.report;
  auto t = Clock::now();
  ASSIGN_OR_RETURN(auto snap, select_snapshot(run.repo, run.service.name, run.options.point));
  add_phase(r, "select", t);
  r.snapshot_id = snap.id;
  r.snapshot_time = r.restored_to = repo::format_time(snap.snapshot.time);

  t = Clock::now();
  archive::RestoreOptions ro;
  ro.target = run.scratch;
  ro.verify = true;
  auto restored = archive::restore(run.repo, snap.snapshot, "/", ro, nullptr);
  add_phase(r, "restore", t);
  if (!restored.ok())
    return core::Status(restored.status().code(), "restore failed: " + restored.status().message());
  r.files_restored = restored->files;
  r.bytes_restored = restored->bytes;
  if (!restored->errors.empty()) {
    std::string all;
    for (size_t i = 0; i < restored->errors.size() && i < 5; i++)
      all += (i ? "; " : "") + restored->errors[i];
    return core::io_error(
        fmt::format("restore failed ({} error(s)): {}", restored->errors.size(), all));
  }
  r.checks.push_back({"restored files verified against the snapshot", true,
                      fmt::format("{} files, {} bytes", restored->files, restored->bytes), 0});

  t = Clock::now();
  for (const auto& check : run.service.drill.checks) {
    if (is_exec_check(check)) {
      r.checks.push_back(run_exec_check(check, run.scratch, run.service, {}));
    } else {
      r.checks.push_back(
          {check, false,
           "SQL checks run against a scratch database server, which drills of engine \"" +
               run.service.engine.type + "\" do not start; use \"exec: <command>\" checks",
           0});
    }
  }
  add_phase(r, "checks", t);
  return {};
}

DrillReport run_drill(repo::Repository& repo, const policy::Service& service,
                      const DrillOptions& opt) {
  DrillReport r;
  r.service = service.name;
  r.owner = service.owner;
  r.tier = service.tier;
  r.point = opt.point;
  auto wall_start = std::chrono::system_clock::now();
  r.started_at = rfc3339(wall_start);
  r.rto_objective_s = static_cast<double>(service.objectives.rto.count());
  r.rpo_objective_s = static_cast<double>(service.objectives.rpo.count());
  if (opt.point == "latest")
    r.point_time = r.started_at;
  else if (auto at = repo::parse_time(opt.point))
    r.point_time = repo::format_time(*at);
  auto start = Clock::now();
  auto finish = [&](std::string failure) {
    r.rto_s = seconds_since(start);
    r.finished_at = rfc3339(std::chrono::system_clock::now());
    if (r.point_time.empty())
      r.point_time = r.restored_to;  // random: the point is the snapshot itself
    if (!r.point_time.empty() && !r.restored_to.empty())
      r.rpo_s = std::max(0.0, unix_seconds(r.point_time) - unix_seconds(r.restored_to));
    auto add = [&](const std::string& why) { failure += (failure.empty() ? "" : "; ") + why; };
    size_t failed = std::count_if(r.checks.begin(), r.checks.end(),
                                  [](const CheckResult& c) { return !c.passed; });
    if (failed) add(fmt::format("{} check(s) failed", failed));
    if (r.rto_objective_s > 0 && r.rto_s > r.rto_objective_s)
      add(fmt::format("restore and checks took {:.1f}s, more than the RTO objective {}", r.rto_s,
                      policy::format_duration(service.objectives.rto)));
    // Only a drill of the latest point measures what a disaster now would lose.
    if (opt.point == "latest" && !r.restored_to.empty() && r.rpo_objective_s > 0 &&
        r.rpo_s > r.rpo_objective_s)
      add(fmt::format("the newest restorable data is {:.0f}s old, more than the RPO objective {}",
                      r.rpo_s, policy::format_duration(service.objectives.rpo)));
    r.failure = failure;
    r.passed = failure.empty();
    return r;
  };
  remove_stale_scratch(opt.scratch_root);

  std::string tmpl =
      fmt::format("{}/{}{}-{}-XXXXXX", opt.scratch_root, kScratchPrefix, service.name, getpid());
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (!mkdtemp(buf.data()))
    return finish(
        fmt::format("cannot create a scratch folder in {}: {}", opt.scratch_root, strerror(errno)));
  Scratch scratch(buf.data());
  DrillRun run{repo, service, opt, r, scratch.path(), wall_start};
  const std::string& type = service.engine.type;
  core::Status st = type == "postgres"  ? drill_postgres(run)
                    : type == "sqlite"  ? drill_sqlite(run)
                    : type == "redis"   ? drill_redis(run)
                    : type == "mariadb" ? drill_mariadb(run)
                                        : drill_files(run);
  return finish(st.ok() ? "" : st.message());
}

double DrillReport::throughput() const {
  double s = 0;
  for (const auto& p : phases)
    if (p.name == "restore" || p.name == "fetch") s += p.seconds;
  return s > 0 ? static_cast<double>(bytes_restored) / s : 0;
}

nlohmann::json DrillReport::to_json() const {
  nlohmann::json phases_j = nlohmann::json::array(), checks_j = nlohmann::json::array();
  for (const auto& p : phases) phases_j.push_back({{"name", p.name}, {"seconds", p.seconds}});
  for (const auto& c : checks)
    checks_j.push_back(
        {{"check", c.check}, {"passed", c.passed}, {"output", c.output}, {"seconds", c.seconds}});
  return {{"service", service},
          {"owner", owner},
          {"tier", tier},
          {"point", point},
          {"snapshot_id", snapshot_id},
          {"snapshot_time", snapshot_time},
          {"point_time", point_time},
          {"restored_to", restored_to},
          {"started_at", started_at},
          {"finished_at", finished_at},
          {"phases", phases_j},
          {"checks", checks_j},
          {"files_restored", files_restored},
          {"bytes_restored", bytes_restored},
          {"throughput_bytes_per_second", throughput()},
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
  r.point_time = j.value("point_time", "");
  r.restored_to = j.value("restored_to", "");
  r.started_at = j.value("started_at", "");
  r.finished_at = j.value("finished_at", "");
  for (const auto& p : j.value("phases", nlohmann::json::array()))
    r.phases.push_back({p.value("name", ""), p.value("seconds", 0.0)});
  for (const auto& c : j.value("checks", nlohmann::json::array()))
    r.checks.push_back({c.value("check", ""), c.value("passed", false), c.value("output", ""),
                        c.value("seconds", 0.0)});
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
  auto dur = [](double s) {
    return policy::format_duration(std::chrono::seconds(static_cast<int64_t>(s + 0.5)));
  };
  std::string out =
      fmt::format("# Restore drill: {} — {}\n\n", service, passed ? "PASSED" : "FAILED");
  if (!passed) out += fmt::format("**Failure:** {}\n\n", failure);
  out += fmt::format("Owner {}, tier {}. Drill started {}, finished {}.\n\n", owner, tier,
                     started_at, finished_at);
  out += fmt::format("Snapshot `{}` taken {} (point asked: {}).\n\n", snapshot_id.substr(0, 8),
                     snapshot_time.empty() ? "-" : snapshot_time, point);
  out += "| measure | value | objective |\n|---|---|---|\n";
  out += fmt::format("| RTO (restore + checks) | {:.2f}s | {} |\n", rto_s,
                     rto_objective_s > 0 ? dur(rto_objective_s) : "-");
  out += fmt::format("| RPO (recovery point {} − newest restored data {}) | {} | {} |\n",
                     point_time.empty() ? "-" : point_time, restored_to.empty() ? "-" : restored_to,
                     dur(rpo_s), rpo_objective_s > 0 ? dur(rpo_objective_s) : "-");
  out += fmt::format("| restored | {} files, {} bytes ({:.1f} MB/s) | |\n\n", files_restored, bytes_restored,
                     throughput() / 1e6);
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

std::string DrillReport::html() const {
  auto e = core::html_escape;
  auto dur = [](double s) {
    return policy::format_duration(std::chrono::seconds(static_cast<int64_t>(s + 0.5)));
  };
  auto verdict = [](bool ok) {
    return ok ? "<span class=ok>within</span>" : "<span class=bad>missed</span>";
  };
  std::string out = fmt::format(R"(<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Restore drill: {0} — {1}</title>
<style>
body{{font:15px/1.45 system-ui,sans-serif;margin:2em auto;max-width:60em;color:#222}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:.3em .7em;text-align:left}}
.ok{{color:#176f2c;font-weight:600}}.bad{{color:#b00020;font-weight:600}}
pre{{background:#f4f4f4;padding:.6em;overflow-x:auto;white-space:pre-wrap}}
</style></head><body>
<h1>Restore drill: {0} — <span class="{2}">{1}</span></h1>
)",
                                e(service), passed ? "PASSED" : "FAILED", passed ? "ok" : "bad");
  if (!passed) out += "<p><b>Failure:</b> " + e(failure) + "</p>\n";
  out += fmt::format(
      "<p>Owner {}, tier {}. Started {}, finished {}. Point asked: {}. Snapshot <code>{}</code> "
      "taken {}.</p>\n",
      e(owner), e(tier), e(started_at), e(finished_at), e(point), e(snapshot_id.substr(0, 8)),
      e(snapshot_time.empty() ? "-" : snapshot_time));
  out += "<table><tr><th>measure</th><th>value</th><th>objective</th><th></th></tr>\n";
  out += fmt::format(
      "<tr><td>RTO (start to restored and "
      "checked)</td><td>{:.2f}s</td><td>{}</td><td>{}</td></tr>\n",
      rto_s, rto_objective_s > 0 ? dur(rto_objective_s) : "-",
      rto_objective_s > 0 ? verdict(rto_s <= rto_objective_s) : "");
  out += fmt::format(
      "<tr><td>RPO (point {} − newest restored data "
      "{})</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
      e(point_time.empty() ? "-" : point_time), e(restored_to.empty() ? "-" : restored_to),
      dur(rpo_s), rpo_objective_s > 0 ? dur(rpo_objective_s) : "-",
      rpo_objective_s > 0 && point == "latest" ? verdict(rpo_s <= rpo_objective_s) : "");
  out += fmt::format(
      "<tr><td>restored</td><td>{} files, {} bytes ({:.1f} MB/s)</td><td></td><td></td></tr></table>\n",
      files_restored, bytes_restored, throughput() / 1e6);
  out += "<h2>Phases</h2>\n<table><tr><th>phase</th><th>seconds</th></tr>\n";
  for (const auto& p : phases)
    out += fmt::format("<tr><td>{}</td><td>{:.3f}</td></tr>\n", e(p.name), p.seconds);
  out += "</table>\n<h2>Checks</h2>\n<ul>\n";
  for (const auto& c : checks) {
    out +=
        fmt::format("<li><span class=\"{}\">{}</span> <b>{}</b> ({:.2f}s)", c.passed ? "ok" : "bad",
                    c.passed ? "passed" : "FAILED", e(c.check), c.seconds);
    if (!c.output.empty()) out += "<pre>" + e(c.output) + "</pre>";
    out += "</li>\n";
  }
  out += "</ul>\n</body></html>\n";
  return out;
}

}  // namespace cairn::drill
