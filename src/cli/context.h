// Shared state and helpers of the cairn command line: global options,
// repository opening, secrets, exit codes, progress display, JSON output.
#pragma once

#include <CLI/CLI.hpp>
#include <signal.h>
#include <atomic>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>

#include "core/status.h"
#include "policy/catalog.h"
#include "repo/lock.h"
#include "repo/repository.h"
#include "storage/backend.h"

namespace cairn::cli {

// JSON text for output. File names need not be UTF-8: bytes that are not
// become U+FFFD here instead of an exception.
std::string json_text(const nlohmann::json& j);

// Exit codes scripts can trust (docs/cli.md).
enum ExitCode {
  kExitOk = 0,
  kExitFailure = 1,
  kExitUsage = 2,
  kExitWarnings = 3,
  kExitNoRepository = 10,
  kExitLocked = 11,
  kExitWrongPassword = 12,
};

// Physical database backups (pg base backups, mariadb-backup streams) default
// to zstd level 1: on the 1.3 GB MariaDB benchmark it cut cairn's CPU by 44 %
// (3.9 s user instead of 6.9 s) for 3 % more stored bytes, and it runs on the
// database host. Levels do not affect blob ids, so dedup is unchanged.
inline constexpr const char* kPhysicalCompression = "fast";

struct Context {
  std::string repo;  // --repo or CAIRN_REPOSITORY
  std::function<bool()> repo_from_flag;  // --repo given: it wins over a service's policy
  std::string config;           // --config (policy::find_config resolves the default)
  bool json = false;
  bool quiet = false;
  int verbose = 0;
  std::string compression;  // --compression; empty: default_compression
  // What a command compresses with unless --compression says otherwise:
  // zstd 3, or zstd 1 for physical database backups (docs/cli.md).
  std::string default_compression = "auto";
  bool no_progress = false;
  bool no_lock = false;
  bool insecure_http = false;  // allow s3:http:// (no TLS)
  std::string key_file;        // --key-file or CAIRN_KEY_FILE: a generated key file's secret
  // How S3 locations are opened: --cacert, --insecure-tls, --s3-path-style /
  // --s3-virtual-host, --s3-connections.
  std::string cacert;
  bool insecure_tls = false;
  bool s3_path_style = false;
  bool s3_virtual_host = false;
  int s3_connections = 8;
  uint64_t s3_multipart_threshold = 0;  // 0 = the backend's default (32 MiB)
  uint64_t s3_part_size = 0;            // 0 = the backend's default (8 MiB)
  std::string retry_lock;  // --retry-lock: keep trying a held lock this long ("10m")
  int exit_code = kExitOk;
  std::vector<std::string> command;  // arguments after "--"
  // The key settings before the first use_service_repository(): restored
  // before each later call.
  std::optional<std::vector<std::pair<std::string, std::optional<std::string>>>> secrets_before_policy;
  std::string key_file_before_policy;

  // Prints the error to stderr (or as JSON) and returns the matching exit code.
  int fail(const core::Status& st) const;
  // Runs a subcommand body: on failure prints the error and sets exit_code
  // (keeping a more specific code, e.g. 10, that the body already set).
  void run(const std::function<core::Status()>& body);
  // Opens the backend of --repo, refusing plain HTTP unless --insecure-http.
  core::Result<std::unique_ptr<storage::Backend>> open_backend() const;
  // What open_repository() reads ahead while the key is derived
  // (storage/prefetch_backend.h). kAuto: the index and snapshots when it
  // loads the index, nothing otherwise (wal-push, key commands).
  enum class ReadAhead { kAuto, kNone, kSnapshots, kIndexAndSnapshots };
  // Opens the repository named by --repo with the password from the environment.
  core::Result<std::unique_ptr<repo::Repository>> open_repository(
      bool load_index = true, ReadAhead read_ahead = ReadAhead::kAuto);
  // Reads the index (and maintenance markers), printing unreadable index files
  // as warnings. Writers and long readers call it after taking their lock, so
  // a prune that marks packs meanwhile either sees their lock or they see its marker.
  core::Status load_index(repo::Repository& repo) const;
  bool show_progress() const;
  // Takes a lock, retrying for --retry-lock while another process holds a
  // conflicting one (then kLocked, exit code 11).
  core::Result<std::unique_ptr<repo::Lock>> lock(repo::Repository& repo, repo::LockMode mode) const;
  // A shared lock unless --no-lock (then null).
  core::Result<std::unique_ptr<repo::Lock>> shared_lock(repo::Repository& repo) const;
  void print_json(const nlohmann::json& j) const;
  // Loads the policy file: warnings go to stderr, errors fail with all of
  // them listed (kInvalidArgument, exit code 2).
  core::Result<policy::Catalog> load_policy() const;
  // Points this command at a service's repository and key, unless --repo
  // was given. Secrets are taken from the files/commands the policy names.
  // Each call starts from the environment's own secrets, so a command that
  // goes through several services (fleet) never carries one's key to another.
  core::Status use_service_repository(const policy::Service& service);
  // use_service_repository() for a service of the policy file, when a policy
  // file is configured (--config, CAIRN_CONFIG, ./cairn.yaml) and names it;
  // `required`: a missing file or service is an error.
  core::Status apply_service_policy(const std::string& service, bool required);
};

int exit_code_for(const core::Status& st);

// The path of this cairn binary (for restore_command and the daemon's jobs).
std::string self_exe();

// Global options a child job needs to reach its repository the way this
// command was told to (TLS, addressing): for the daemon's and server's jobs.
std::vector<std::string> job_args(const Context& ctx);

// Long-running commands (daemon, server): blocks SIGTERM, SIGINT and SIGHUP
// in this thread and every thread created after it (so one thread can take
// them with sigwait), and sets the log line format. Call before any thread starts.
sigset_t take_termination_signals(const Context& ctx);
// Runs `run` while a signal thread calls `reload` on SIGHUP and `stop` on
// SIGTERM or SIGINT; `run` must return after `stop`.
core::Status run_until_signalled(const sigset_t& set, const std::function<core::Status()>& run,
                                 const std::function<void()>& stop, const std::function<void()>& reload);

// The service named `name` of the catalog, or kInvalidArgument with a suggestion.
core::Result<const policy::Service*> find_service(const policy::Catalog& catalog, const std::string& name);

// The services named (all when `names` is empty); kInvalidArgument with a
// suggestion for an unknown name.
core::Result<std::vector<const policy::Service*>> services_named(const policy::Catalog& catalog,
                                                                 const std::vector<std::string>& names);
// The default fleet recovery point: the newest instant that the WAL archive
// of every continuous PostgreSQL service among `services` reaches; now when
// there is none.
core::Result<std::string> fleet_recovery_point(Context& ctx, const std::vector<const policy::Service*>& services);

// Password from CAIRN_PASSWORD, CAIRN_PASSWORD_FILE, CAIRN_PASSWORD_COMMAND,
// or a prompt when stdin is a terminal (asked twice when `confirm`).
core::Result<std::string> read_password(bool confirm);
// The secret stored in a key file made by `cairn key add --new-key-file`.
core::Result<std::string> read_key_file(const std::string& path);

// Redraws one status line on stderr every 250 ms while alive.
class ProgressLine {
 public:
  ProgressLine(bool enabled, std::function<std::string(double elapsed)> render);
  ~ProgressLine();
  void stop();

 private:
  bool enabled_;
  std::function<std::string(double)> render_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// "1m12s ETA" style helpers.
std::string eta(uint64_t done, uint64_t total, double elapsed);

// Subcommand registration (one file per subcommand).
void add_init(CLI::App& app, Context& ctx);
void add_backup(CLI::App& app, Context& ctx);
void add_snapshots(CLI::App& app, Context& ctx);
void add_ls(CLI::App& app, Context& ctx);
void add_diff(CLI::App& app, Context& ctx);
void add_dump(CLI::App& app, Context& ctx);
void add_restore(CLI::App& app, Context& ctx);
void add_cat(CLI::App& app, Context& ctx);
void add_check(CLI::App& app, Context& ctx);
void add_stats(CLI::App& app, Context& ctx);
void add_key(CLI::App& app, Context& ctx);
void add_forget(CLI::App& app, Context& ctx);
void add_unlock(CLI::App& app, Context& ctx);
void add_prune(CLI::App& app, Context& ctx);
void add_pg(CLI::App& app, Context& ctx);
void add_wal(CLI::App& app, Context& ctx);
void add_repair(CLI::App& app, Context& ctx);
void add_copy(CLI::App& app, Context& ctx);
void add_policy(CLI::App& app, Context& ctx);
void add_daemon(CLI::App& app, Context& ctx);
void add_drill(CLI::App& app, Context& ctx);
void add_fleet(CLI::App& app, Context& ctx);
// runbooks and policy scaffolding (docs/runbooks.md)
void add_runbook(CLI::App& app, Context& ctx);
void add_service(CLI::App& app, Context& ctx);
void add_redis(CLI::App& app, Context& ctx);   // redis, sqlite engines
void add_sqlite(CLI::App& app, Context& ctx);  // redis, sqlite engines
void add_mariadb(CLI::App& app, Context& ctx);  // mariadb engine
// HTTPS API and access control (docs/security.md)
void add_server(CLI::App& app, Context& ctx);
void add_token(CLI::App& app, Context& ctx);
void add_audit(CLI::App& app, Context& ctx);
// Appends the command just run to the audit log when the policy has a server block.
void audit_cli_action(const CLI::App& app, const Context& ctx);
}  // namespace cairn::cli

#include "repo/pruner.h"

namespace cairn::cli {
// Runs prune on an open, exclusively locked repository and prints the report.
core::Status prune_and_report(Context& ctx, repo::Repository& repo, const repo::PruneOptions& options);
core::Status parse_max_unused(const std::string& s, repo::PruneOptions& options);

// --service/--host options that pick which snapshot 'latest' means.
void add_latest_filter(CLI::App* cmd, std::string& service, std::string& host);

// "<snapshot>[:path]" -> (snapshot ref, path).
std::pair<std::string, std::string> split_snapshot_path(const std::string& arg);
nlohmann::json snapshot_json(const repo::SnapshotRef& s);

}  // namespace cairn::cli
