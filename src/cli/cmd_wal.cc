// cairn wal-push / wal-get: PostgreSQL's archive_command and restore_command.
//
//   archive_command = 'cairn --key-file /etc/cairn/shop.key --repo R wal-push --service shop %p'
//   restore_command = 'cairn ... wal-get --service shop %f %p'
//
// wal-push exits 0 only once the file is durable in the repository (or an
// identical copy already was); any failure exits 1 so PostgreSQL keeps the
// segment and retries. wal-get exits 0 when it wrote the file, 1 when the
// archive does not have it (normal at the end of the archive), and 126 for
// any other error: PostgreSQL aborts recovery on exit codes above 125
// instead of treating the file as missing and ending recovery early.
#include <unistd.h>

#include <iostream>

#include "cli/context.h"
#include "repo/log_archive.h"

namespace cairn::cli {

namespace {

constexpr int kExitAbortRecovery = 126;

core::Result<std::string> service_or_env(const std::string& service) {
  if (!service.empty()) return service;
  if (const char* s = getenv("CAIRN_SERVICE"); s && *s) return std::string(s);
  return core::invalid_argument("which service's archive? give --service (or CAIRN_SERVICE)");
}

std::string base_name(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

}  // namespace

void add_wal(CLI::App& app, Context& ctx) {
  auto push_service = std::make_shared<std::string>();
  auto push_path = std::make_shared<std::string>();
  auto* push = app.add_subcommand("wal-push", "archive one WAL segment or history file (archive_command; %p)");
  push->add_option("--service", *push_service, "service the archive belongs to (or CAIRN_SERVICE)");
  push->add_option("path", *push_path, "the file PostgreSQL hands over (%p)")->required();
  push->callback([&ctx, push_service, push_path] {
    ctx.run([&]() -> core::Status {
      ASSIGN_OR_RETURN(std::string service, service_or_env(*push_service));
      ASSIGN_OR_RETURN(auto repo, ctx.open_repository(false));
      ASSIGN_OR_RETURN(auto lock, ctx.shared_lock(*repo));
      repo::LogArchive archive(*repo, service);
      std::string name = base_name(*push_path);
      ASSIGN_OR_RETURN(bool stored, archive.push(name, *push_path));
      if (ctx.json) {
        ctx.print_json({{"name", name}, {"service", service}, {"stored", stored}});
      } else if (ctx.verbose > 0) {
        std::cerr << (stored ? "archived " : "already archived (identical): ") << name << "\n";
      }
      return {};
    });
  });

  auto get_service = std::make_shared<std::string>();
  auto get_name = std::make_shared<std::string>();
  auto get_dest = std::make_shared<std::string>();
  auto* get = app.add_subcommand("wal-get", "fetch one archived WAL file (restore_command; %f %p)");
  get->add_option("--service", *get_service, "service the archive belongs to (or CAIRN_SERVICE)");
  get->add_option("name", *get_name, "file name (%f)")->required();
  get->add_option("dest", *get_dest, "where to write it (%p)")->required();
  get->callback([&ctx, get_service, get_name, get_dest] {
    core::Status st;
    try {
      st = [&]() -> core::Status {
        ASSIGN_OR_RETURN(std::string service, service_or_env(*get_service));
        ASSIGN_OR_RETURN(auto repo, ctx.open_repository(false));
        // A sweeping prune waits for this reader (unless --no-lock).
        ASSIGN_OR_RETURN(auto lock, ctx.shared_lock(*repo));
        repo::LogArchive archive(*repo, service);
        return archive.fetch(*get_name, *get_dest);
      }();
    } catch (const std::exception& e) {
      st = core::io_error(std::string("internal error: ") + e.what());
    }
    if (st.ok()) return;
    if (st.code() == core::Code::kNotFound && ctx.exit_code == kExitOk) {
      // PostgreSQL asks for files past the end of the archive (and for
      // history files that never existed): not an error worth shouting.
      if (ctx.verbose > 0) std::cerr << "cairn: " << st.message() << "\n";
      ctx.exit_code = kExitFailure;
      return;
    }
    ctx.fail(core::Status(st.code(), st.message() + " (exit status 126: PostgreSQL stops recovery here)"));
    ctx.exit_code = kExitAbortRecovery;
  });
}

}  // namespace cairn::cli
