// Drills of SQLite, Redis and MariaDB services. SQLite: the database is restored to a
// scratch file (accepted only when PRAGMA integrity_check says ok), SQL
// checks run against it. Redis: dump.rdb is restored and checked with
// redis-check-rdb, then loaded by a scratch redis-server that the policy's
// command checks reach through REDIS_HOST / REDIS_PORT. MariaDB: a scratch
// server gets the logical dump and, with binlog archiving, the archived
// binlogs up to the drill's point; CHECK TABLE over every table, then the
// policy's SQL (true = 1) and command checks (MYSQL_UNIX_PORT).
#include <fmt/format.h>
#include <pwd.h>
#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>
#include <memory>

#include "drill/drill_steps.h"
#include "engines/mariadb/mariadb.h"
#include "engines/redis/redis.h"
#include "engines/sqlite/sqlite.h"
#include "repo/log_archive.h"
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

void chown_to_user(const std::vector<std::string>& paths, const char* user) {
  if (geteuid() != 0) return;
  if (struct passwd* pw = getpwnam(user))
    for (const auto& p : paths) (void)!chown(p.c_str(), pw->pw_uid, pw->pw_gid);
}

// CHECK TABLE over every table outside the system schemas.
CheckResult check_tables(const engines::mariadb::Connection& conn) {
  CheckResult r{"CHECK TABLE: every table", false, "", 0};
  auto start = Clock::now();
  auto run = [&]() -> core::Status {
    ASSIGN_OR_RETURN(
        auto tables,
        engines::mariadb::query(conn,
                                "SELECT CONCAT('`', table_schema, '`.`', table_name, '`') FROM "
                                "information_schema.tables WHERE table_type = 'BASE TABLE' AND "
                                "table_schema NOT IN ('mysql', 'information_schema', "
                                "'performance_schema', 'sys')"));
    size_t ok = 0;
    for (const auto& t : tables) {
      ASSIGN_OR_RETURN(auto rows, engines::mariadb::query(conn, "CHECK TABLE " + t[0]));
      for (const auto& row : rows) {
        // Table, Op, Msg_type, Msg_text: an "error" row, or a status other than OK, is damage.
        if (row.size() >= 4 && (row[2] == "error" || (row[2] == "status" && row[3] != "OK")))
          return core::corruption(t[0] + ": " + row[3]);
      }
      ok++;
    }
    r.output = fmt::format("{} tables OK", ok);
    return {};
  };
  core::Status st = run();
  r.passed = st.ok();
  if (!st.ok()) r.output = st.message();
  r.seconds = seconds_since(start);
  return r;
}

CheckResult mariadb_sql_check(const engines::mariadb::Connection& conn, const std::string& database,
                              const std::string& sql) {
  CheckResult r{sql, false, "", 0};
  auto start = Clock::now();
  auto rows =
      engines::mariadb::query(conn, (database.empty() ? "" : "USE `" + database + "`; ") + sql);
  if (!rows.ok()) {
    r.output = rows.status().message();
  } else if (rows->empty() || rows->front().empty()) {
    r.output = "returned no row (true expected)";
  } else {
    const std::string& v = rows->front().front();
    r.passed = !v.empty() && v != "0" && v != "NULL";
    r.output = "returned " + v + (r.passed ? "" : " (true expected)");
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

core::Status drill_mariadb(DrillRun& run) {
  namespace md = engines::mariadb;
  DrillReport& r = run.report;
  const policy::EngineSpec& e = run.service.engine;
  auto t = Clock::now();
  md::RecoveryTarget target;
  const std::string& point = run.options.point;
  std::string snapshot;  // a given base (random)
  if (point == "latest") {
    target.kind = e.binlog_archiving ? md::RecoveryTarget::Kind::kLatest
                                     : md::RecoveryTarget::Kind::kBaseOnly;
  } else if (point == "random") {
    ASSIGN_OR_RETURN(auto snap, select_snapshot(run.repo, run.service.name, point));
    snapshot = snap.id;
    target.kind = md::RecoveryTarget::Kind::kBaseOnly;
  } else {
    ASSIGN_OR_RETURN(target, md::parse_time_target(point));
    if (!e.binlog_archiving) {
      // Without binlogs a base restores to its own point: the newest one before the time.
      ASSIGN_OR_RETURN(auto snap, select_snapshot(run.repo, run.service.name, point));
      snapshot = snap.id;
      target.kind = md::RecoveryTarget::Kind::kBaseOnly;
    }
  }
  add_phase(r, "select", t);

  chown_to_user({run.scratch}, "mysql");
  md::ScratchMariadb::Options so;
  so.parent_dir = run.scratch;
  std::unique_ptr<md::ScratchMariadb> server;
  md::PointInTimeReport pitr;
  if (e.mode == "physical") {
    // The base backup becomes the scratch server's data directory
    // (mbstream -x, mariadb-backup --prepare); binlogs replay on top.
    if (!snapshot.empty()) {
      ASSIGN_OR_RETURN(pitr.base, run.repo.find_snapshot(snapshot, run.service.name));
    } else {
      ASSIGN_OR_RETURN(auto all, run.repo.list_snapshots());
      ASSIGN_OR_RETURN(pitr.base, md::choose_base(all, run.service.name, "physical", target));
    }
    t = Clock::now();
    so.datadir = run.scratch + "/data";
    ASSIGN_OR_RETURN(auto position, md::restore_physical(run.repo, pitr.base, so.datadir));
    add_phase(r, "restore", t);
    t = Clock::now();
    ASSIGN_OR_RETURN(server, md::ScratchMariadb::start(so));
    add_phase(r, "provision", t);
    if (target.kind != md::RecoveryTarget::Kind::kBaseOnly && position) {
      t = Clock::now();
      ASSIGN_OR_RETURN(auto replay,
                       md::replay_binlogs(run.repo, run.service.name, *position, target, server->connection()));
      pitr.replay = std::move(replay);
      add_phase(r, "recovery", t);
    }
  } else {
    t = Clock::now();
    ASSIGN_OR_RETURN(server, md::ScratchMariadb::start(so));
    add_phase(r, "provision", t);
    t = Clock::now();
    ASSIGN_OR_RETURN(pitr, md::restore_point_in_time(run.repo, run.service.name, target, server->connection(),
                                                     false, snapshot));
    add_phase(r, "restore", t);
  }
  r.snapshot_id = pitr.base.id;
  r.snapshot_time = r.restored_to = repo::format_time(pitr.base.snapshot.time);
  r.files_restored = pitr.base.snapshot.summary.total_files;
  r.bytes_restored = pitr.base.snapshot.summary.total_bytes;
  if (pitr.replay) {
    if (target.kind == md::RecoveryTarget::Kind::kTime) {
      r.restored_to = r.point_time;
    } else {
      // Replayed to the archive's end: the newest binlog archived.
      repo::LogArchive archive(run.repo, run.service.name);
      if (auto entries = archive.list(); entries.ok())
        for (const auto& entry : *entries)
          if (unix_seconds(entry.time) > unix_seconds(r.restored_to)) r.restored_to = entry.time;
    }
    r.checks.push_back(
        {"binlogs replayed", true,
         fmt::format("{} file(s) from {}:{} until {}", pitr.replay->files.size(),
                     pitr.replay->from.file, pitr.replay->from.position, pitr.replay->until),
         0});
  }

  t = Clock::now();
  r.checks.push_back(check_tables(server->connection()));
  std::string database = e.databases.empty() ? "" : e.databases.front();
  std::vector<std::string> env = {"MYSQL_UNIX_PORT=" + server->socket(),
                                  "MYSQL_TCP_PORT=" + std::to_string(server->port())};
  for (const auto& check : run.service.drill.checks)
    r.checks.push_back(is_exec_check(check)
                           ? run_exec_check(check, run.scratch, run.service, env)
                           : mariadb_sql_check(server->connection(), database, check));
  add_phase(r, "checks", t);
  return {};
}

}  // namespace cairn::drill
