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
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

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

bool file_exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

// Identity of a file as the worker read it: a NAME.ok only vouches for the
// very file PostgreSQL offers now (a recycled name with new content must be
// pushed, and checked, again).
std::string file_identity(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return {};
  return std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino) + ":" +
         std::to_string(st.st_size) + ":" + std::to_string(st.st_mtim.tv_sec) + "." +
         std::to_string(st.st_mtim.tv_nsec);
}

std::string read_small_file(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

// Writes a small marker file (content: a message) in the spool folder.
void write_marker(const std::string& path, const std::string& text) {
  std::ofstream out(path + ".tmp");
  out << text;
  out.close();
  std::rename((path + ".tmp").c_str(), path.c_str());
}

struct AsyncOptions {
  std::string spool;
  int timeout_s = 60;
  size_t batch = 32;
};

// The background worker of `wal-push --async`: while PostgreSQL has files
// marked ready in pg_wal/archive_status, pushes them in batches (one
// repository session, shared packs, one index file per batch) and leaves
// NAME.ok -- only once the entry is durable -- or NAME.error in the spool
// folder. One worker per spool folder (flock); it exits after 1 s idle.
void run_worker(Context& ctx, const std::string& service, const std::string& wal_dir,
                const AsyncOptions& opt) {
  int lock_fd = ::open((opt.spool + "/worker.lock").c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0600);
  if (lock_fd < 0 || flock(lock_fd, LOCK_EX | LOCK_NB) != 0) return;  // another worker runs
  auto fail_all = [&](const std::string& msg) {
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(wal_dir + "/archive_status", ec)) {
      std::string f = e.path().filename().string();
      if (f.ends_with(".ready"))
        write_marker(opt.spool + "/" + f.substr(0, f.size() - 6) + ".error", msg);
    }
  };
  auto repo = ctx.open_repository(false);
  if (!repo.ok()) return fail_all(repo.status().message());
  auto lock = ctx.shared_lock(**repo);
  if (!lock.ok()) return fail_all(lock.status().message());
  repo::LogArchive archive(**repo, service);
  for (int idle = 0; idle < 10;) {
    std::vector<std::string> ready;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(wal_dir + "/archive_status", ec)) {
      std::string f = e.path().filename().string();
      if (!f.ends_with(".ready")) continue;
      std::string name = f.substr(0, f.size() - 6);
      if (!file_exists(opt.spool + "/" + name + ".ok") &&
          !file_exists(opt.spool + "/" + name + ".error"))
        ready.push_back(name);
    }
    // Markers of files PostgreSQL no longer offers are stale: drop them.
    for (const auto& e : std::filesystem::directory_iterator(opt.spool, ec)) {
      std::string f = e.path().filename().string();
      if (f.ends_with(".ok") &&
          !file_exists(wal_dir + "/archive_status/" + f.substr(0, f.size() - 3) + ".ready"))
        std::filesystem::remove(e.path(), ec);
    }
    if (ready.empty()) {
      idle++;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    idle = 0;
    std::sort(ready.begin(), ready.end());  // oldest first: PostgreSQL asks in order
    if (ready.size() > opt.batch) ready.resize(opt.batch);
    std::vector<std::pair<std::string, std::string>> files;
    std::vector<std::string> identities;
    for (const auto& n : ready) {
      files.emplace_back(n, wal_dir + "/" + n);
      identities.push_back(file_identity(wal_dir + "/" + n));  // before reading it
    }
    auto results = archive.push_batch(files);
    bool failed = false;
    for (size_t i = 0; i < files.size(); ++i) {
      const std::string marker = opt.spool + "/" + files[i].first;
      if (results[i].ok()) {
        write_marker(marker + ".ok", identities[i]);
      } else {
        write_marker(marker + ".error", results[i].status().message());
        failed = true;
      }
    }
    // A repository session that failed a write stays failed (sticky error):
    // the next call starts a fresh worker.
    if (failed) return;
  }
}

// Starts a detached worker (double fork: init reaps it; PostgreSQL's shell
// does not wait for it). Harmless when one already runs: it exits at once.
void spawn_worker(Context& ctx, const std::string& service, const std::string& wal_dir,
                  const AsyncOptions& opt) {
  pid_t child = fork();
  if (child < 0) return;
  if (child == 0) {
    if (fork() != 0) _exit(0);
    setsid();
    int null_fd = ::open("/dev/null", O_RDWR);
    int log_fd = ::open((opt.spool + "/worker.log").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    dup2(null_fd, 0);
    dup2(null_fd, 1);
    dup2(log_fd >= 0 ? log_fd : null_fd, 2);
    run_worker(ctx, service, wal_dir, opt);
    _exit(0);
  }
  while (waitpid(child, nullptr, 0) < 0 && errno == EINTR) {
  }
}

// The archive_command side of --async: succeeds once the worker reports the
// file durable, fails with the worker's message, or after the timeout.
core::Status push_async(Context& ctx, const std::string& service, const std::string& path,
                        const AsyncOptions& opt) {
  std::error_code ec;
  std::filesystem::create_directories(opt.spool, ec);
  if (ec) return core::errno_status(ec.value(), "--spool-dir " + opt.spool);
  const std::string name = base_name(path);
  std::string wal_dir = std::filesystem::path(path).parent_path().string();
  if (wal_dir.empty()) wal_dir = ".";
  const std::string ok = opt.spool + "/" + name + ".ok", err = opt.spool + "/" + name + ".error";
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(opt.timeout_s);
  auto next_spawn = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() < deadline) {
    if (file_exists(ok)) {
      bool same = read_small_file(ok) == file_identity(path);
      ::unlink(ok.c_str());
      if (same) {
        if (ctx.verbose > 0) std::cerr << "archived " << name << " (asynchronously)\n";
        return {};
      }
      // A marker for an earlier file of that name: have this one pushed.
      next_spawn = std::chrono::steady_clock::now();
    }
    if (file_exists(err)) {
      std::string msg = read_small_file(err);
      ::unlink(err.c_str());
      return core::io_error("asynchronous archiving of " + name + " failed: " + msg);
    }
    if (std::chrono::steady_clock::now() >= next_spawn) {
      spawn_worker(ctx, service, wal_dir, opt);
      next_spawn = std::chrono::steady_clock::now() + std::chrono::milliseconds(250);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return core::io_error("asynchronous archiving of " + name + " did not finish within " +
                        std::to_string(opt.timeout_s) + " s (see " + opt.spool + "/worker.log)");
}

}  // namespace

void add_wal(CLI::App& app, Context& ctx) {
  auto push_service = std::make_shared<std::string>();
  auto push_path = std::make_shared<std::string>();
  auto* push = app.add_subcommand("wal-push",
                                  "archive one WAL segment or history file (archive_command; %p)");
  push->add_option("--service", *push_service, "service the archive belongs to (or CAIRN_SERVICE)");
  push->add_option("path", *push_path, "the file PostgreSQL hands over (%p)")->required();
  auto async = std::make_shared<AsyncOptions>();
  auto use_async = std::make_shared<bool>(false);
  push->add_flag("--async", *use_async,
                 "a background worker pushes every ready segment in batches; this call only waits "
                 "for its own");
  push->add_option("--spool-dir", async->spool,
                   "--async: folder for the worker's lock, log and status files");
  push->add_option("--async-timeout", async->timeout_s,
                   "--async: seconds to wait before failing (default 60)");
  push->add_option("--batch", async->batch, "--async: files per batch (default 32)");
  push->callback([&ctx, push_service, push_path, async, use_async] {
    ctx.run([&]() -> core::Status {
      ASSIGN_OR_RETURN(std::string service, service_or_env(*push_service));
      if (*use_async) {
        if (async->spool.empty()) return core::invalid_argument("--async needs --spool-dir");
        if (async->batch == 0 || async->timeout_s <= 0)
          return core::invalid_argument("--batch and --async-timeout must be positive");
        return push_async(ctx, service, *push_path, *async);
      }
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
    ctx.fail(core::Status(st.code(),
                          st.message() + " (exit status 126: PostgreSQL stops recovery here)"));
    ctx.exit_code = kExitAbortRecovery;
  });
}

}  // namespace cairn::cli
