#include "engines/service_backup.h"

#include "engines/exec/exec.h"
#include "engines/postgres/postgres.h"
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
    if (e.mode == "physical") return postgres::physical_backup(repo, {*dsn, e.bindir, true}, opt, progress);
    return postgres::logical_backup(repo, {*dsn, e.bindir, e.databases, true}, opt, progress);
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
