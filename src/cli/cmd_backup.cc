// cairn backup: files and directories, stdin, or a command's stdout.
#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>

#include "archive/archiver.h"
#include "cli/context.h"
#include "core/bytes.h"
#include "core/process.h"
#include "engines/exec/exec.h"
#include "engines/service_backup.h"
#include "repo/lock.h"

namespace cairn::cli {

namespace {

struct BackupArgs {
  std::vector<std::string> paths, excludes, exclude_files, tags;
  std::string host, service, parent, time, stdin_filename = "stdin";
  bool one_file_system = false, force = false, use_stdin = false, stdin_from_command = false;
  size_t read_concurrency = 8;
};

// Reads everything from fd until EOF.
core::Result<size_t> read_fd(int fd, uint8_t* buf, size_t cap) {
  for (;;) {
    ssize_t r = read(fd, buf, cap);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return core::errno_status(errno, "reading input stream");
    return static_cast<size_t>(r);
  }
}

// "--tag a,b --tag c" -> a, b, c.
std::vector<std::string> split_tags(const std::vector<std::string>& flags) {
  std::vector<std::string> out;
  for (const auto& t : flags) {
    std::stringstream ss(t);
    std::string one;
    while (std::getline(ss, one, ','))
      if (!one.empty()) out.push_back(one);
  }
  return out;
}

// Counts files and bytes under the paths for the progress bar's ETA.
void scan(const std::vector<std::string>& paths, archive::BackupProgress& p) {
  namespace fs = std::filesystem;
  for (const auto& root : paths) {
    std::error_code ec;
    if (fs::is_regular_file(fs::symlink_status(root, ec))) {
      p.files_total++;
      p.bytes_total += fs::file_size(root, ec);
      continue;
    }
    for (auto it = fs::recursive_directory_iterator(root, fs::directory_options::skip_permission_denied, ec);
         it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (ec) break;
      if (it->is_regular_file(ec) && !it->is_symlink(ec)) {
        p.files_total++;
        p.bytes_total += it->file_size(ec);
      }
    }
  }
  p.scan_finished = true;
}

// Prints what a backup stored (or its JSON) and sets exit code 3 on warnings.
void report_backup(Context& ctx, const archive::BackupResult& r) {
  for (const auto& w : r.warnings) std::cerr << "warning: " << w << "\n";
  if (!ctx.quiet)
    for (const auto& n : r.notices) std::cerr << "note: " << n << "\n";
  const auto& m = r.snapshot.summary;
  if (ctx.json) {
    nlohmann::json j = {{"snapshot_id", r.snapshot_id}, {"service", r.snapshot.service},
                        {"summary", r.snapshot.to_json()["summary"]}, {"engine", r.snapshot.engine},
                        {"warnings", r.warnings}, {"notices", r.notices}};
    ctx.print_json(j);
  } else if (!ctx.quiet) {
    std::cout << fmt::format(
        "snapshot {} saved\n  files: {} new, {} changed, {} unmodified\n  dirs:  {}\n"
        "  added: {} stored ({} before compression)\n  total: {} files, {} in {}\n",
        r.snapshot_id.substr(0, 8), m.files_new, m.files_changed, m.files_unmodified, m.dirs,
        core::format_bytes(m.data_added), core::format_bytes(m.data_added_raw), m.total_files,
        core::format_bytes(m.total_bytes), core::format_duration(m.duration_s));
  }
  if (!r.warnings.empty()) {
    if (!ctx.json)
      std::cerr << r.warnings.size() << " warning(s): some files could not be read or a post hook failed (exit code 3)\n";
    ctx.exit_code = kExitWarnings;
  }
}

core::Status run_service_backup(Context& ctx, BackupArgs& a);

core::Status run_backup(Context& ctx, BackupArgs& a, const std::vector<std::string>& command) {
  if (a.use_stdin && a.stdin_from_command) return core::invalid_argument("use either --stdin or --stdin-from-command");
  bool stream = a.use_stdin || a.stdin_from_command;
  if (!stream && a.paths.empty() && !a.service.empty()) return run_service_backup(ctx, a);
  if (stream && !a.paths.empty() && !a.stdin_from_command)
    return core::invalid_argument("--stdin takes no paths");
  if (!stream && a.paths.empty()) return core::invalid_argument("nothing to back up: give paths or --stdin");
  for (const auto& f : a.exclude_files) {
    std::ifstream in(f);
    if (!in) return core::errno_status(errno, "--exclude-file " + f);
    std::string line;
    while (std::getline(in, line)) {
      if (!line.empty() && line[0] != '#') a.excludes.push_back(line);
    }
  }
  // Lock first, then read the index: a two-phase prune lists the locks after
  // storing its marker, so either it waits for this backup or this backup
  // sees the marker (docs/retention.md).
  ASSIGN_OR_RETURN(auto repo, ctx.open_repository(false, Context::ReadAhead::kIndexAndSnapshots));
  ASSIGN_OR_RETURN(auto lock, ctx.lock(*repo, repo::LockMode::kShared));
  TRY(ctx.load_index(*repo));
  archive::BackupOptions opt;
  opt.excludes = a.excludes;
  opt.one_file_system = a.one_file_system;
  opt.force = a.force;
  opt.tags = split_tags(a.tags);
  opt.host = a.host.empty() ? archive::local_hostname() : a.host;
  opt.service = a.service;
  opt.read_concurrency = a.read_concurrency;
  if (!a.time.empty()) {
    auto t = repo::parse_time(a.time);
    if (!t) return core::invalid_argument("--time '" + a.time + "' is not a time (use 2026-11-25 10:31:00 or RFC 3339)");
    opt.time = *t;
  }
  std::vector<std::string> abs_paths;
  for (const auto& p : a.paths) {
    std::string s = std::filesystem::absolute(p).lexically_normal().string();
    while (s.size() > 1 && s.back() == '/') s.pop_back();
    abs_paths.push_back(s);
  }
  if (!a.parent.empty()) {
    ASSIGN_OR_RETURN(auto parent, repo->find_snapshot(a.parent));
    opt.parent = parent;
  } else if (!stream && !a.force) {
    opt.parent = archive::find_parent(*repo, opt.host, opt.service, abs_paths);
  }

  archive::BackupProgress progress;
  std::thread scanner;
  if (ctx.show_progress() && !stream) scanner = std::thread([&] { scan(a.paths, progress); });
  ProgressLine line(ctx.show_progress(), [&](double el) {
    uint64_t bytes = progress.bytes_done;
    std::string s = fmt::format("[{}] {} files, {}, {}/s", core::format_duration(el), progress.files_done.load(),
                                core::format_bytes(bytes),
                                core::format_bytes(el > 0 ? static_cast<uint64_t>(bytes / el) : 0));
    if (progress.scan_finished) {
      s += fmt::format(" of {} files, {}", progress.files_total.load(), core::format_bytes(progress.bytes_total));
      std::string e = eta(bytes, progress.bytes_total, el);
      if (!e.empty()) s += "  " + e;
    }
    if (progress.errors) s += fmt::format("  {} errors", progress.errors.load());
    return s;
  });

  core::Result<archive::BackupResult> result = core::invalid_argument("unset");
  if (a.stdin_from_command) {
    if (!a.paths.empty()) return core::invalid_argument("--stdin-from-command takes no paths (put the command after --)");
    if (command.empty()) return core::invalid_argument("--stdin-from-command needs a command after --");
    auto src = engines::exec::command_source({command, a.stdin_filename, {}, {}});
    if (!src.ok()) return src.status();
    result = archive::backup_stream(*repo, std::move(*src), opt, &progress);
  } else if (a.use_stdin) {
    archive::StreamSource src{a.stdin_filename, [](uint8_t* b, size_t n) { return read_fd(0, b, n); }, {}};
    result = archive::backup_stream(*repo, std::move(src), opt, &progress);
  } else {
    result = archive::backup_paths(*repo, a.paths, opt, &progress);
  }
  line.stop();
  if (scanner.joinable()) scanner.join();
  if (!result.ok()) return result.status();
  report_backup(ctx, *result);
  return {};
}

// Runs a hook through /bin/sh with the run's facts in the environment (and
// without the repository's secrets). Its output goes to stderr, so --json
// output stays one document.
core::Status run_hook(const std::string& command, const std::vector<std::string>& env) {
  core::ProcessOptions po;
  po.env = env;
  po.unset_env = engines::exec::repository_secret_env();
  po.forward_stderr = true;
  po.new_process_group = true;
  ASSIGN_OR_RETURN(auto p, core::Subprocess::start({"/bin/sh", "-c", command}, po));
  uint8_t buf[4096];
  for (;;) {
    auto n = p->read(buf, sizeof buf);
    if (!n.ok() || *n == 0) break;
    (void)!write(2, buf, *n);
  }
  core::Status st = p->wait();
  if (!st.ok()) return core::io_error("hook '" + command + "': " + st.message());
  return {};
}

// `cairn backup --service S`: everything from the policy file: repository,
// engine, tags, hooks. A failing pre hook means no backup; post hooks run
// after success and failure alike (CAIRN_RESULT says which), and a failing
// post hook leaves the snapshot but exits 3.
core::Status run_service_backup(Context& ctx, BackupArgs& a) {
  ASSIGN_OR_RETURN(auto catalog, ctx.load_policy());
  ASSIGN_OR_RETURN(const policy::Service* svc, find_service(catalog, a.service));
  TRY(ctx.use_service_repository(*svc));
  std::vector<std::string> env = {"CAIRN_SERVICE=" + svc->name, "CAIRN_REPOSITORY=" + ctx.repo};
  for (const auto& h : svc->hooks.pre) TRY(run_hook(h, env));

  if (engines::is_physical_database_backup(svc->engine)) ctx.default_compression = kPhysicalCompression;
  auto backup = [&]() -> core::Result<archive::BackupResult> {
    ASSIGN_OR_RETURN(auto repo, ctx.open_repository(false, Context::ReadAhead::kIndexAndSnapshots));
    ASSIGN_OR_RETURN(auto lock, ctx.lock(*repo, repo::LockMode::kShared));
    TRY(ctx.load_index(*repo));
    archive::BackupOptions opt;
    opt.tags = split_tags(a.tags);
    opt.host = a.host.empty() ? archive::local_hostname() : a.host;
    opt.force = a.force;
    if (!a.excludes.empty() || !a.exclude_files.empty() || !a.time.empty() || !a.parent.empty())
      return core::invalid_argument(
          "--exclude, --exclude-file, --time and --parent do not apply to a policy backup (set them in the "
          "service's engine instead)");
    opt.read_concurrency = a.read_concurrency;
    archive::BackupProgress progress;
    ProgressLine line(ctx.show_progress(), [&](double el) {
      return fmt::format("[{}] {} {} files, {}", core::format_duration(el), svc->name, progress.files_done.load(),
                         core::format_bytes(progress.bytes_done));
    });
    return engines::backup_service(*repo, *svc, opt, &progress);
  };
  auto result = backup();
  env.push_back(std::string("CAIRN_RESULT=") + (result.ok() ? "success" : "failure"));
  if (result.ok()) env.push_back("CAIRN_SNAPSHOT_ID=" + result->snapshot_id);
  std::vector<std::string> hook_errors;
  for (const auto& h : svc->hooks.post)
    if (auto st = run_hook(h, env); !st.ok()) hook_errors.push_back(st.message());
  if (!result.ok()) return core::Status(result.status().code(), result.status().message());
  for (const auto& e : hook_errors) result->warnings.push_back("post " + e);
  report_backup(ctx, *result);
  return {};
}
}  // namespace

void add_backup(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand("backup", "back up files, stdin or a command's output");
  auto a = std::make_shared<BackupArgs>();
  cmd->add_option("paths", a->paths, "files and directories to back up");
  cmd->add_option("-e,--exclude", a->excludes, "exclude pattern (repeatable)")
      ->allow_extra_args(false);
  cmd->add_option("--exclude-file", a->exclude_files, "file with one exclude pattern per line")
      ->allow_extra_args(false);
  cmd->add_flag("-x,--one-file-system", a->one_file_system, "do not cross file system boundaries");
  cmd->add_option("--tag", a->tags, "tag(s) for the snapshot (repeatable, comma-separated)")
      ->allow_extra_args(false);
  cmd->add_option("--host", a->host, "host name to record (default: this host)");
  cmd->add_option("--service", a->service,
                  "service the snapshot belongs to; alone (no paths, no --stdin) it runs the service's "
                  "backup from the policy file");
  cmd->add_option("--parent", a->parent, "snapshot to compare with for change detection");
  cmd->add_option("--time", a->time, "snapshot time to record (imports)");
  cmd->add_flag("-f,--force", a->force, "read every file even if unchanged");
  cmd->add_flag("--stdin", a->use_stdin, "back up standard input");
  cmd->add_option("--stdin-filename", a->stdin_filename, "file name for --stdin data (default: stdin)");
  cmd->add_flag("--stdin-from-command", a->stdin_from_command,
                "back up the stdout of the command given after --; its failure means no snapshot");
  cmd->add_option("--read-concurrency", a->read_concurrency, "files read at once (default 8)");
  cmd->callback([&ctx, a] {
    ctx.run([&] { return run_backup(ctx, *a, ctx.command); });
  });
}

}  // namespace cairn::cli
