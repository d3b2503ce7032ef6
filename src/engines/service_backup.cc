#include "engines/service_backup.h"

#include "engines/exec/exec.h"
#include "engines/mariadb/mariadb.h"
#include "engines/postgres/postgres.h"
#include "engines/redis/redis.h"    // redis, sqlite engines
#include "engines/sqlite/sqlite.h"  // redis, sqlite engines
#include "engines/volume/volume.h"

namespace cairn::engines {

namespace {

core::Result<std::vector<std::string>> expand_all(const std::vector<std::string>& in) {
  std::vector<std::string> out;
  for (const auto& s : in) {
    ASSIGN_OR_RETURN(auto v, policy::expand_env(s));
    out.push_back(std::move(v));
  }
  return out;
}

}  // namespace

bool is_physical_database_backup(const policy::EngineSpec& engine) {
  return (engine.type == "postgres" || engine.type == "mariadb") && engine.mode == "physical";
}

core::Result<archive::BackupResult> backup_service(repo::Repository& repo, const policy::Service& service,
                                                   archive::BackupOptions opt, archive::BackupProgress* progress) {
  const policy::EngineSpec& e = service.engine;
  opt.service = service.name;
  for (const auto& t : service.tags) opt.tags.push_back(t);
  auto in_service = [&](core::Status st) {
    return core::Status(st.code(), "service " + service.name + ": " + st.message());
  };
  if (e.type == "files") {
    opt.excludes = e.exclude;
    opt.one_file_system = e.one_file_system;
    if (!opt.parent && !opt.force) opt.parent = archive::find_parent(repo, opt.host, opt.service, e.paths);
    return archive::backup_paths(repo, e.paths, opt, progress);
  }
  if (e.type == "exec") {
    exec::ExecOptions x;
    auto argv = expand_all(e.command);
    if (!argv.ok()) return in_service(argv.status());
    x.command = std::move(*argv);
    x.filename = e.filename;
    x.timeout = service.timeout;
    for (const auto& [k, v] : e.env) {
      auto val = policy::expand_env(v);
      if (!val.ok()) return in_service(val.status());
      x.env.push_back(k + "=" + *val);
    }
    return exec::backup(repo, x, opt, progress);
  }
  if (e.type == "postgres") {
    auto dsn = policy::expand_env(e.dsn);
    if (!dsn.ok()) return in_service(dsn.status());
    if (e.mode == "physical")
      return postgres::physical_backup(repo, {*dsn, e.bindir, true, e.pg_source}, opt, progress);
    return postgres::logical_backup(repo, {*dsn, e.bindir, e.databases, true}, opt, progress);
  }
  // --- redis, sqlite engines
  if (e.type == "redis") {
    redis::BackupOptions r;
    if (e.redis.socket.empty()) {
      r.conn.host = e.redis.host;
      r.conn.port = e.redis.port;
    } else {
      r.conn.socket = e.redis.socket;
    }
    r.conn.user = e.redis.user;
    if (!e.redis.password.empty()) {
      auto pw = policy::expand_env(e.redis.password);
      if (!pw.ok()) return in_service(pw.status());
      r.conn.password = std::move(*pw);
    } else if (!e.redis.password_file.empty()) {
      auto pw = redis::read_password_file(e.redis.password_file);
      if (!pw.ok()) return in_service(pw.status());
      r.conn.password = std::move(*pw);
    }
    r.timeout = service.timeout;
    auto res = redis::backup(repo, r, opt, progress);
    if (!res.ok()) return in_service(res.status());
    return res;
  }
  if (e.type == "sqlite") {
    auto res = sqlite::backup(repo, {e.sqlite.path, "", 1024}, opt, progress);
    if (!res.ok()) return in_service(res.status());
    return res;
  }
  // --- end redis, sqlite engines
  // mariadb engine
  if (e.type == "mariadb") {
    auto conn = mariadb::connection_for(e);
    if (!conn.ok()) return in_service(conn.status());
    core::Result<archive::BackupResult> r =
        e.mode == "physical"
            ? mariadb::physical_backup(repo, {*conn, e.binlog_archiving}, opt, progress)
            : mariadb::logical_backup(
                  repo, {*conn, e.databases, true, e.binlog_archiving, e.parallel}, opt, progress);
    if (!r.ok()) return in_service(core::Status(r.status().code(), r.status().message() + "\nno snapshot written"));
    return r;
  }
  // volume engine
  if (e.type == "volume") {
    volume::VolumeOptions v;
    v.service = service.name;
    v.driver = e.driver;
    v.source = e.source;
    v.snapshot_dir = e.snapshot_dir;
    v.snapshot_size = e.snapshot_size;
    v.freeze = e.freeze;
    v.quiesce_pre = e.quiesce_pre;
    v.quiesce_post = e.quiesce_post;
    v.excludes = e.exclude;
    v.hook_timeout = service.timeout;
    auto r = volume::backup(repo, v, opt, progress);
    if (!r.ok()) return in_service(r.status());
    return r;
  }
  return core::unsupported("service " + service.name + ": engine \"" + e.type + "\" cannot back up yet");
}

}  // namespace cairn::engines
