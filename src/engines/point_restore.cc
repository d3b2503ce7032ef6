#include "engines/point_restore.h"

#include <fmt/format.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "archive/restorer.h"
#include "engines/postgres/postgres.h"
#include "engines/postgres/scratch_server.h"
#include "repo/timefmt.h"

namespace cairn::engines {

namespace fs = std::filesystem;
namespace pg = postgres;

namespace {

double seconds_of(const std::string& t) {
  auto p = repo::parse_time(t);
  return p ? static_cast<double>(p->unix_ns) / 1e9 : 0;
}

core::Status restore_tree(repo::Repository& repo, const repo::SnapshotRef& snap,
                          const std::string& target, PointRestore& out) {
  archive::RestoreOptions ro;
  ro.target = target;
  ro.verify = true;
  ASSIGN_OR_RETURN(auto r, archive::restore(repo, snap.snapshot, "/", ro, nullptr));
  if (!r.errors.empty())
    return core::io_error(fmt::format("restore of snapshot {} failed ({} error(s)): {}",
                                      snap.id.substr(0, 8), r.errors.size(), r.errors.front()));
  out.files = r.files;
  out.bytes = r.bytes;
  return {};
}

std::string next_step_for(const policy::Service& s, const repo::SnapshotRef& snap,
                          const std::string& target) {
  const auto& e = snap.snapshot.engine;
  std::string type = e.value("type", s.engine.type);
  if (type == "mariadb") {
    std::string load =
        e.value("layout", "") == "parallel"
            ? fmt::format(
                  "load {0}/dump/tables-*.sql into a server (at once or in any "
                  "order), then {0}/dump/objects.sql",
                  target)
            : fmt::format("load {0}/dump.sql into a server (mariadb < dump.sql)", target);
    if (!s.engine.mariadb_binlogs()) return load;
    return fmt::format(
        "{0}, or for exactly T: cairn mariadb restore --service {1} --to-time T "
        "--socket <server socket> (dump + archived binlogs)",
        load, s.name);
  }
  if (type == "postgres")
    return fmt::format(
        "load the dumps with pg_restore (e.g. pg_restore --create -d postgres {}/<database>.dump)",
        target);
  if (type == "redis")
    return "copy " + target + "/dump.rdb into the stopped instance's dir, then start it";
  if (type == "sqlite") return "the database file is in " + target;
  if (type == "exec") return "feed the stream file in " + target + " to the service's restore tool";
  return "the files are under " + target + " at their original paths";
}

core::Result<PointRestore> restore_pitr(repo::Repository& repo, const policy::Service& service,
                                        const std::string& point, const std::string& target,
                                        PointRestore out) {
  out.method = "pitr";
  ASSIGN_OR_RETURN(std::string reaches, archive_reaches(repo, service));
  pg::RecoveryTarget rt;
  rt.action = "promote";
  rt.kind = pg::RecoveryTarget::Kind::kTime;
  rt.value = point;
  ASSIGN_OR_RETURN(auto all, repo.list_snapshots());
  ASSIGN_OR_RETURN(auto base, pg::choose_base_backup(all, service.name, rt));
  // An archive that ends before T holds nothing after it: all of it is T.
  if (reaches.empty() || seconds_of(reaches) <= seconds_of(point))
    rt.kind = pg::RecoveryTarget::Kind::kLatest;
  out.snapshot_id = base.id;
  out.snapshot_time = repo::format_time(base.snapshot.time);
  out.restored_to = rt.kind == pg::RecoveryTarget::Kind::kTime ? point : reaches;
  if (out.restored_to.empty())
    out.restored_to = base.snapshot.engine.value("stop_time", out.snapshot_time);
  out.gap_s = std::max(0.0, seconds_of(point) - seconds_of(out.restored_to));

  std::string data = target + "/data", wal = target + "/wal";
  TRY(restore_tree(repo, base, data, out));
  auto id = pg::server_identity(data);
  std::error_code ec;
  fs::create_directories(wal, ec);
  if (ec) return core::errno_status(ec.value(), wal);
  ASSIGN_OR_RETURN(auto fetched, pg::fetch_wal_since(repo, service.name, base, wal));
  out.bytes += fetched.bytes;
  if (id.first >= 0) {
    for (const auto& e : fs::directory_iterator(wal, ec))
      (void)!chown(e.path().c_str(), static_cast<uid_t>(id.first), static_cast<gid_t>(id.second));
    for (const std::string& p : {wal, data})
      (void)!chown(p.c_str(), static_cast<uid_t>(id.first), static_cast<gid_t>(id.second));
  }
  fs::permissions(data, fs::perms::owner_all, fs::perm_options::replace, ec);
  TRY(pg::write_recovery_config(data, rt, "cp " + pg::shell_quote(wal) + "/%f %p"));
  {
    std::ofstream conf(data + "/postgresql.auto.conf", std::ios::app);
    conf << "# cairn fleet restore: a copy must not archive into the production archive;\n"
            "# remove this line to make the copy the new primary.\narchive_mode = 'off'\n";
    if (!conf) return core::io_error("cannot write " + data + "/postgresql.auto.conf");
  }
  out.target = data;
  out.next_step = fmt::format(
      "start it (as the data directory's owner): pg_ctl -D {} -o '-p <port>' start; it replays WAL "
      "to {} and "
      "promotes",
      data, rt.kind == pg::RecoveryTarget::Kind::kTime ? point : "the end of the archive");
  return out;
}

}  // namespace

core::Result<std::string> archive_reaches(repo::Repository& repo, const policy::Service& service) {
  ASSIGN_OR_RETURN(auto report, pg::check_archive(repo, service.name));
  return report.newest_time;
}

core::Result<PointRestore> restore_at(repo::Repository& repo, const policy::Service& service,
                                      const std::string& point, const std::string& target) {
  auto t = repo::parse_time(point);
  if (!t)
    return core::invalid_argument("'" + point +
                                  "' is not a time (RFC 3339, e.g. 2026-11-25T10:31:00Z)");
  std::error_code ec;
  if (fs::exists(target, ec) && !fs::is_empty(target, ec))
    return core::invalid_argument(target + " is not empty: restore into a new directory");
  PointRestore out;
  out.service = service.name;
  out.engine = service.engine.type;
  if (service.engine.postgres_wal())
    return restore_pitr(repo, service, repo::format_time(*t), target, out);

  out.method = "snapshot";
  ASSIGN_OR_RETURN(auto all, repo.list_snapshots());
  const repo::SnapshotRef* best = nullptr;
  for (const auto& s : all)
    if (s.snapshot.service == service.name && s.snapshot.time.unix_ns <= t->unix_ns) best = &s;
  if (!best)
    return core::not_found("service " + service.name + " has no snapshot at or before " + point);
  out.snapshot_id = best->id;
  out.snapshot_time = out.restored_to = repo::format_time(best->snapshot.time);
  out.gap_s = static_cast<double>(t->unix_ns - best->snapshot.time.unix_ns) / 1e9;
  TRY(restore_tree(repo, *best, target, out));
  out.target = target;
  out.next_step = next_step_for(service, *best, target);
  return out;
}

}  // namespace cairn::engines
