// Drills of SQLite and Redis services. SQLite: the database is restored to a
// scratch file (accepted only when PRAGMA integrity_check says ok), SQL
// checks run against it. Redis: dump.rdb is restored and checked with
// redis-check-rdb, then loaded by a scratch redis-server that the policy's
// command checks reach through REDIS_HOST / REDIS_PORT.
#include <fmt/format.h>
#include <pwd.h>
#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>
#include <memory>

#include "drill/drill_steps.h"
#include "engines/redis/redis.h"
#include "engines/sqlite/sqlite.h"
#include "repo/timefmt.h"

namespace cairn::drill {

namespace {

// Selects the snapshot, records it, and times the phase.
core::Result<repo::SnapshotRef> select(DrillRun& run) {
  auto t = Clock::now();
  ASSIGN_OR_RETURN(auto snap, select_snapshot(run.repo, run.service.name, run.options.point));
  add_phase(run.report, "select", t);
  run.report.snapshot_id = snap.id;
  run.report.snapshot_time = run.report.restored_to = repo::format_time(snap.snapshot.time);
  return snap;
}

CheckResult integrity(const std::string& name, const core::Result<std::string>& summary,
                      double seconds) {
  return {name, summary.ok(), summary.ok() ? *summary : summary.status().message(), seconds};
}

// SQL that must return true (1) on the restored database, opened read-only.
CheckResult sqlite_check(const std::string& path, const std::string& sql) {
  CheckResult r{sql, false, "", 0};
  auto start = Clock::now();
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READONLY, nullptr);
  std::unique_ptr<sqlite3, int (*)(sqlite3*)> db(raw, sqlite3_close);
  sqlite3_stmt* stmt = nullptr;
  if (rc == SQLITE_OK) rc = sqlite3_prepare_v2(db.get(), sql.c_str(), -1, &stmt, nullptr);
  std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> guard(stmt, sqlite3_finalize);
  if (rc == SQLITE_OK) rc = sqlite3_step(stmt);
  if (rc == SQLITE_ROW) {
    const unsigned char* v = sqlite3_column_text(stmt, 0);
    std::string value = v ? reinterpret_cast<const char*>(v) : "NULL";
    r.passed = sqlite3_column_type(stmt, 0) != SQLITE_NULL && sqlite3_column_int64(stmt, 0) != 0;
    r.output = "returned " + value + (r.passed ? "" : " (true expected)");
  } else {
    r.output = rc == SQLITE_DONE ? "returned no row (true expected)"
                                 : std::string(sqlite3_errmsg(db.get()));
  }
  r.seconds = seconds_since(start);
  return r;
}

}  // namespace

core::Status drill_sqlite(DrillRun& run) {
  DrillReport& r = run.report;
  ASSIGN_OR_RETURN(auto snap, select(run));
  std::string db =
      run.scratch + "/" + std::filesystem::path(run.service.engine.sqlite.path).filename().string();
  auto t = Clock::now();
  auto restored = engines::sqlite::restore(run.repo, snap, {db, false});
  add_phase(r, "restore", t);
  if (!restored.ok())
    return core::Status(restored.status().code(), "restore failed: " + restored.status().message());
  r.files_restored = 1;
  r.bytes_restored = restored->bytes;
  r.checks.push_back({"PRAGMA integrity_check", true, restored->check, seconds_since(t)});

  t = Clock::now();
  for (const auto& check : run.service.drill.checks)
    r.checks.push_back(is_exec_check(check) ? run_exec_check(check, run.scratch, run.service,
                                                             {"CAIRN_DRILL_DB=" + db})
                                            : sqlite_check(db, check));
  add_phase(r, "checks", t);
  return {};
}

core::Status drill_redis(DrillRun& run) {
  namespace rd = engines::redis;
  DrillReport& r = run.report;
  ASSIGN_OR_RETURN(auto snap, select(run));
  std::string dir = run.scratch + "/redis";
  auto t = Clock::now();
  auto restored = rd::restore(run.repo, snap, {dir, false});
  add_phase(r, "restore", t);
  if (!restored.ok())
    return core::Status(restored.status().code(), "restore failed: " + restored.status().message());
  r.files_restored = 1;
  r.bytes_restored = restored->bytes;
  r.checks.push_back(integrity("redis-check-rdb", restored->check, seconds_since(t)));

  // As root, the scratch server runs as the redis user, not as root.
  rd::ScratchRedis::Options so;
  so.dir = dir;
  if (geteuid() == 0) {
    if (struct passwd* pw = getpwnam("redis")) {
      so.run_as = "redis";
      for (const std::string& p : {run.scratch, dir, restored->path})
        (void)!chown(p.c_str(), pw->pw_uid, pw->pw_gid);
    }
  }
  t = Clock::now();
  ASSIGN_OR_RETURN(auto server, rd::ScratchRedis::start(so));
  add_phase(r, "recovery", t);

  t = Clock::now();
  CheckResult loaded{"the scratch redis-server loaded the dataset", false, "", 0};
  auto keys = server->command({"DBSIZE"});
  loaded.passed = keys.ok();
  loaded.output = keys.ok()
                      ? fmt::format("{} keys in db 0 (snapshot recorded {})", *keys,
                                    snap.snapshot.engine.value("keys", nlohmann::json("?")).dump())
                      : keys.status().message();
  loaded.seconds = seconds_since(t);
  r.checks.push_back(loaded);
  std::vector<std::string> env = {"REDIS_HOST=127.0.0.1",
                                  "REDIS_PORT=" + std::to_string(server->port())};
  for (const auto& check : run.service.drill.checks) {
    if (is_exec_check(check)) {
      r.checks.push_back(run_exec_check(check, run.scratch, run.service, env));
    } else {
      r.checks.push_back(
          {check, false,
           "Redis drills run command checks only: use \"exec: redis-cli -p $REDIS_PORT ...\"", 0});
    }
  }
  add_phase(r, "checks", t);
  return {};
}

}  // namespace cairn::drill
