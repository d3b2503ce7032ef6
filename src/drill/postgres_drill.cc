// PostgreSQL drills on a scratch server. Physical services: the base backup
// for the drill's point is restored, checked against its manifest, the WAL
// it needs is fetched from the archive by cairn itself (so the scratch
// server's restore_command only copies local files and needs no repository
// credential), and the server recovers to the point and promotes. Logical
// services: the dumps are restored into a fresh cluster. Then: amcheck over
// every index and heap, the policy's SQL and command checks, pg_checksums
// when the cluster has data checksums.
#include <fmt/format.h>
#include <libpq-fe.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "archive/restorer.h"
#include "drill/drill_steps.h"
#include "engines/postgres/pg_conn.h"
#include "engines/postgres/postgres.h"
#include "engines/postgres/scratch_server.h"
#include "policy/duration.h"
#include "repo/timefmt.h"

namespace cairn::drill {

namespace fs = std::filesystem;
namespace pg = engines::postgres;

namespace {

bool is_physical_base(const repo::SnapshotRef& s, const std::string& service) {
  const auto& e = s.snapshot.engine;
  return s.snapshot.service == service && e.value("type", "") == "postgres" &&
         e.value("mode", "") == "physical";
}

// The database the policy's DSN names (checks run there), else "postgres".
std::string service_database(const policy::Service& service) {
  auto dsn = policy::expand_env(service.engine.dsn);
  if (!dsn.ok()) return "postgres";
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(dsn->c_str(), &err);
  if (err) PQfreemem(err);
  std::string db = "postgres";
  for (PQconninfoOption* o = opts; o && o->keyword; ++o)
    if (std::string(o->keyword) == "dbname" && o->val && *o->val) db = o->val;
  if (opts) PQconninfoFree(opts);
  return db;
}

void chown_to(const std::string& path, std::pair<int, int> id) {
  if (id.first >= 0)
    (void)!chown(path.c_str(), static_cast<uid_t>(id.first), static_cast<gid_t>(id.second));
}

// amcheck over every connectable database: each B-tree index with
// heapallindexed (every heap tuple has its index entry) and every table's
// heap (verify_heapam).
CheckResult amcheck(pg::ScratchServer& server) {
  CheckResult r;
  r.check = "amcheck: every B-tree index and table heap";
  auto start = Clock::now();
  auto run = [&]() -> core::Status {
    ASSIGN_OR_RETURN(auto conn, pg::PgConn::connect(server.dsn("postgres")));
    ASSIGN_OR_RETURN(auto dbs,
                     conn.query("SELECT datname FROM pg_database WHERE datallowconn ORDER BY 1"));
    size_t indexes = 0, tables = 0;
    for (const auto& row : dbs) {
      ASSIGN_OR_RETURN(auto db, pg::PgConn::connect(server.dsn(row[0])));
      TRY(db.query("CREATE EXTENSION IF NOT EXISTS amcheck").status());
      auto n = db.value(
          "SELECT count(bt_index_check(c.oid, true)) FROM pg_index i JOIN pg_class c ON c.oid = "
          "i.indexrelid "
          "JOIN pg_am a ON a.oid = c.relam WHERE a.amname = 'btree' AND c.relpersistence <> 't' "
          "AND i.indisvalid AND i.indisready");
      if (!n.ok()) return core::corruption("database " + row[0] + ": " + n.status().message());
      indexes += std::stoull(*n);
      ASSIGN_OR_RETURN(auto t,
                       db.value("SELECT count(*) FROM pg_class WHERE relkind IN ('r','m','t') "
                                "AND relpersistence <> 't'"));
      tables += std::stoull(t);
      auto bad = db.query(
          "SELECT c.oid::regclass::text, v.blkno, v.msg FROM pg_class c, LATERAL "
          "verify_heapam(c.oid) v "
          "WHERE c.relkind IN ('r','m','t') AND c.relpersistence <> 't' LIMIT 5");
      if (!bad.ok()) return core::corruption("database " + row[0] + ": " + bad.status().message());
      if (!bad->empty())
        return core::corruption(fmt::format("database {}: table {} block {}: {}", row[0],
                                            (*bad)[0][0], (*bad)[0][1], (*bad)[0][2]));
    }
    r.output = fmt::format("{} indexes and {} tables in {} databases verified", indexes, tables,
                           dbs.size());
    return {};
  };
  core::Status st = run();
  r.passed = st.ok();
  if (!st.ok()) r.output = st.message();
  r.seconds = seconds_since(start);
  return r;
}

// SQL that must return true, in the service's database.
CheckResult sql_check(pg::ScratchServer& server, const std::string& database,
                      const std::string& sql) {
  CheckResult r;
  r.check = sql;
  auto start = Clock::now();
  auto conn = pg::PgConn::connect(server.dsn(database));
  if (!conn.ok()) {
    r.output = conn.status().message();
  } else if (auto v = conn->value(sql); !v.ok()) {
    r.output = v.status().message();
  } else {
    r.passed = *v == "t" || *v == "true";
    r.output = "returned " + (v->empty() ? std::string("NULL") : *v) +
               (r.passed ? "" : " (true expected)");
  }
  r.seconds = seconds_since(start);
  return r;
}

// The checks phase; stops the server (pg_checksums needs a stopped cluster).
void run_checks(DrillRun& run, pg::ScratchServer& server, const std::string& data_dir,
                const std::string& database) {
  DrillReport& r = run.report;
  auto t = Clock::now();
  r.checks.push_back(amcheck(server));
  for (const auto& check : run.service.drill.checks) {
    if (is_exec_check(check)) {
      r.checks.push_back(
          run_exec_check(check, run.scratch, run.service, server.client_env(database)));
    } else {
      r.checks.push_back(sql_check(server, database, check));
    }
  }
  std::string checksums = "off";
  if (auto conn = pg::PgConn::connect(server.dsn("postgres")); conn.ok())
    if (auto v = conn->value("SHOW data_checksums"); v.ok()) checksums = *v;
  core::Status stopped = server.stop();
  if (checksums == "on") {
    CheckResult c;
    c.check = "pg_checksums --check";
    auto ct = Clock::now();
    if (!stopped.ok()) {
      c.output = "the server did not stop cleanly: " + stopped.message();
    } else {
      auto id = pg::server_identity(data_dir);
      core::ProcessOptions po;
      po.uid = id.first;
      po.gid = id.second;
      auto out = core::run_and_capture(
          {pg::tool_path(server.bindir(), "pg_checksums"), "--check", "-D", data_dir}, po);
      c.passed = out.ok();
      c.output = out.ok() ? *out : out.status().message();
      while (!c.output.empty() && c.output.back() == '\n') c.output.pop_back();
    }
    c.seconds = seconds_since(ct);
    r.checks.push_back(c);
  }
  add_phase(r, "checks", t);
}

// The recovery target for the drill's point, and the base backup to start from.
struct Plan {
  pg::RecoveryTarget target;
  repo::SnapshotRef base;
};

core::Result<Plan> plan_physical(DrillRun& run) {
  ASSIGN_OR_RETURN(auto all, run.repo.list_snapshots());
  const std::string& service = run.service.name;
  const std::string& point = run.options.point;
  bool continuous = run.service.engine.continuous();
  Plan p;
  p.target.action = "promote";
  if (point == "latest") {
    p.target.kind =
        continuous ? pg::RecoveryTarget::Kind::kLatest : pg::RecoveryTarget::Kind::kImmediate;
  } else if (point == "random") {
    std::vector<const repo::SnapshotRef*> bases;
    for (const auto& s : all)
      if (is_physical_base(s, service)) bases.push_back(&s);
    if (bases.empty())
      return core::not_found("service " + service + " has no physical base backup to drill");
    std::random_device rd;
    if (!continuous) {
      p.target.kind = pg::RecoveryTarget::Kind::kImmediate;
      p.base = *bases[std::uniform_int_distribution<size_t>(0, bases.size() - 1)(rd)];
      return p;
    }
    // A random instant between the oldest base backup's end and the newest archived WAL.
    ASSIGN_OR_RETURN(auto archive, pg::check_archive(run.repo, service));
    double lo = unix_seconds(bases.front()->snapshot.engine.value("stop_time", ""));
    double hi = std::max(lo, unix_seconds(archive.newest_time));
    double at = std::uniform_real_distribution<double>(lo, hi)(rd);
    repo::Time rt;
    rt.unix_ns = static_cast<int64_t>(at * 1e9);
    p.target.kind = pg::RecoveryTarget::Kind::kTime;
    p.target.value = repo::format_time(rt);
    run.report.point_time = p.target.value;
  } else {
    auto t = repo::parse_time(point);
    if (!t)
      return core::invalid_argument("--point \"" + point + "\" is not latest, random or a time");
    p.target.kind = pg::RecoveryTarget::Kind::kTime;
    p.target.value = repo::format_time(*t);
    run.report.point_time = p.target.value;
  }
  ASSIGN_OR_RETURN(p.base, pg::choose_base_backup(all, service, p.target));
  // Without a WAL archive a base backup recovers only to its own end.
  if (!continuous) p.target.kind = pg::RecoveryTarget::Kind::kImmediate;
  // An archive whose newest segment was archived by the point holds nothing
  // after it: recovering all of it is exactly the recovery to the point (and
  // PostgreSQL would refuse a time target that no later commit passes).
  if (p.target.kind == pg::RecoveryTarget::Kind::kTime) {
    auto archive = pg::check_archive(run.repo, service);
    if (archive.ok() && !archive->newest_time.empty() &&
        unix_seconds(archive->newest_time) <= unix_seconds(p.target.value))
      p.target.kind = pg::RecoveryTarget::Kind::kLatest;
  }
  return p;
}

core::Status drill_physical(DrillRun& run) {
  DrillReport& r = run.report;
  auto t = Clock::now();
  ASSIGN_OR_RETURN(Plan plan, plan_physical(run));
  add_phase(r, "select", t);
  const auto& meta = plan.base.snapshot.engine;
  r.snapshot_id = plan.base.id;
  r.snapshot_time = repo::format_time(plan.base.snapshot.time);
  std::string data = run.scratch + "/data", wal = run.scratch + "/wal";
  std::string bindir =
      pg::find_bindir(run.service.engine.bindir, meta.value("server_version_num", 0));

  t = Clock::now();
  archive::RestoreOptions ro;
  ro.target = data;
  ro.verify = true;
  auto restored = archive::restore(run.repo, plan.base.snapshot, "/", ro, nullptr);
  add_phase(r, "restore", t);
  if (!restored.ok())
    return core::Status(restored.status().code(), "restore failed: " + restored.status().message());
  if (!restored->errors.empty())
    return core::io_error(fmt::format("restore of base backup {} failed ({} error(s)): {}",
                                      plan.base.id.substr(0, 8), restored->errors.size(),
                                      restored->errors.front()));
  r.files_restored = restored->files;
  r.bytes_restored = restored->bytes;

  t = Clock::now();
  CheckResult manifest{"pg_verifybackup: base backup against its manifest", false, "", 0};
  core::Status v = pg::verify_base_backup(data, plan.base, bindir);
  manifest.passed = v.ok() || v.code() == core::Code::kUnsupported;
  manifest.output = v.ok()                                 ? "ok"
                    : v.code() == core::Code::kUnsupported ? "skipped: " + v.message()
                                                           : v.message();
  manifest.seconds = seconds_since(t);
  r.checks.push_back(manifest);
  add_phase(r, "verify", t);
  if (!manifest.passed)
    return core::corruption("the restored base backup does not match its manifest");

  t = Clock::now();
  auto id = pg::server_identity(data);
  std::error_code ec;
  fs::create_directories(wal, ec);
  if (ec) return core::errno_status(ec.value(), wal);
  pg::FetchedWal fetched;
  if (plan.target.kind != pg::RecoveryTarget::Kind::kImmediate) {
    ASSIGN_OR_RETURN(fetched, pg::fetch_wal_since(run.repo, run.service.name, plan.base, wal));
  }
  for (const auto& e : fs::directory_iterator(wal, ec)) chown_to(e.path().string(), id);
  chown_to(wal, id);
  chown_to(run.scratch, id);
  add_phase(r, "fetch", t);
  r.bytes_restored += fetched.bytes;
  TRY(pg::write_recovery_config(data, plan.target, "cp " + pg::shell_quote(wal) + "/%f %p"));

  t = Clock::now();
  ASSIGN_OR_RETURN(auto server, pg::ScratchServer::start({data, run.scratch, bindir}));
  core::Status ready = server->wait_ready(run.service.timeout);
  if (!ready.ok() && plan.target.kind == pg::RecoveryTarget::Kind::kTime &&
      ready.message().find("recovery ended before configured recovery target was reached") !=
          std::string::npos) {
    // No commit after the point anywhere in the archive: the end of the
    // archive is the state at the point. Recover to it (a restart resumes).
    std::ofstream conf(data + "/postgresql.auto.conf", std::ios::app);
    conf << "# cairn drill: no commit after the target in the archive; recover all of it\n"
            "recovery_target_time = ''\n";
    conf.close();
    if (!conf) return core::io_error("cannot write " + data + "/postgresql.auto.conf");
    server.reset();
    ASSIGN_OR_RETURN(server, pg::ScratchServer::start({data, run.scratch, bindir}));
    ready = server->wait_ready(run.service.timeout);
  }
  add_phase(r, "recovery", t);
  TRY(ready);
  // What the copy holds: the last replayed commit, or (for a quiet database)
  // the base backup's end / the newest WAL that recovery replayed.
  double restored_to = unix_seconds(meta.value("stop_time", ""));
  if (auto conn = pg::PgConn::connect(server->dsn("postgres")); conn.ok()) {
    auto ts = conn->value(
        "SELECT COALESCE(extract(epoch FROM pg_last_xact_replay_timestamp())::text, '')");
    if (ts.ok() && !ts->empty()) restored_to = std::max(restored_to, std::stod(*ts));
  }
  if (plan.target.kind == pg::RecoveryTarget::Kind::kLatest && fetched.files > 0) {
    auto archive = pg::check_archive(run.repo, run.service.name);
    if (archive.ok()) restored_to = std::max(restored_to, unix_seconds(archive->newest_time));
  }
  repo::Time rt;
  rt.unix_ns = static_cast<int64_t>(restored_to * 1e9);
  r.restored_to = repo::format_time(rt);
  run_checks(run, *server, data, service_database(run.service));
  return {};
}

core::Status drill_logical(DrillRun& run) {
  DrillReport& r = run.report;
  auto t = Clock::now();
  ASSIGN_OR_RETURN(auto snap, select_snapshot(run.repo, run.service.name, run.options.point));
  add_phase(r, "select", t);
  const auto& meta = snap.snapshot.engine;
  if (meta.value("type", "") != "postgres" || meta.value("mode", "") != "logical")
    return core::invalid_argument("snapshot " + snap.id.substr(0, 8) +
                                  " is not a logical PostgreSQL backup");
  r.snapshot_id = snap.id;
  r.snapshot_time = r.restored_to = repo::format_time(snap.snapshot.time);
  std::string data = run.scratch + "/data";
  std::string bindir =
      pg::find_bindir(run.service.engine.bindir, meta.value("server_version_num", 0));

  t = Clock::now();
  chown_to(run.scratch, pg::server_identity(data));
  TRY(pg::init_scratch_cluster(data, bindir));
  ASSIGN_OR_RETURN(auto server, pg::ScratchServer::start({data, run.scratch, bindir}));
  core::Status ready = server->wait_ready(std::chrono::seconds(120));
  add_phase(r, "provision", t);
  TRY(ready);

  t = Clock::now();
  auto databases = meta.value("databases", std::vector<std::string>{});
  pg::LogicalRestoreOptions lo;
  lo.dsn = server->dsn("postgres");
  lo.bindir = server->bindir();
  if (meta.value("globals", false)) {
    lo.globals = true;
    core::Status g = pg::logical_restore(run.repo, snap, lo);
    if (!g.ok())
      return core::Status(g.code(), "restoring the roles (globals.sql) failed: " + g.message());
    lo.globals = false;
  }
  lo.create = true;
  for (const auto& db : databases) {
    lo.database = db;
    core::Status st = pg::logical_restore(run.repo, snap, lo);
    if (!st.ok())
      return core::Status(st.code(), "pg_restore of database " + db + " failed: " + st.message());
  }
  add_phase(r, "restore", t);
  r.files_restored = snap.snapshot.summary.total_files;
  r.bytes_restored = snap.snapshot.summary.total_bytes;
  std::string database = service_database(run.service);
  if (std::find(databases.begin(), databases.end(), database) == databases.end() &&
      !databases.empty())
    database = databases.front();
  run_checks(run, *server, data, database);
  return {};
}

}  // namespace

core::Status drill_postgres(DrillRun& run) {
  return run.service.engine.mode == "physical" ? drill_physical(run) : drill_logical(run);
}

}  // namespace cairn::drill
