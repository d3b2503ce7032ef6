// cairn: backup and recovery for microservice fleets. Entry point: parses the
// command line (CLI11) and dispatches to one subcommand file each.
#include <malloc.h>
#include <signal.h>
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <iostream>

#include "cli/context.h"
#include "core/process.h"
#include "crypto/crypto.h"

// Blocks at least this large get their own mapping (see main()).
constexpr int kMmapThreshold = 2 << 20;

int main(int argc, char** argv) {
  using namespace cairn;
  // Fix the mmap threshold: glibc raises it after the first free of a large
  // block and then keeps 8-24 MiB chunk and pack buffers in per-thread arenas,
  // which tripled peak RSS in the benchmark. Below 2 MiB (typical chunks) the
  // heap reuses memory without page faults; above, buffers are unmapped on free.
  mallopt(M_MMAP_THRESHOLD, kMmapThreshold);
  mallopt(M_ARENA_MAX, 4);
  signal(SIGPIPE, SIG_IGN);
  // Parallel readers and restore workers hold many files open at once.
  struct rlimit nofile;
  if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
    nofile.rlim_cur = nofile.rlim_max;
    setrlimit(RLIMIT_NOFILE, &nofile);
  }  // a closed pipe is an EPIPE error, not a silent death
  if (auto st = crypto::init(); !st.ok()) {
    std::cerr << "cairn: " << st.message() << "\n";
    return cli::kExitFailure;
  }
  core::forward_termination_signals();
  cli::Context ctx;
  if (const char* r = getenv("CAIRN_REPOSITORY")) ctx.repo = r;
  if (const char* k = getenv("CAIRN_KEY_FILE")) ctx.key_file = k;

  CLI::App app{"cairn: backups that prove they can be restored"};
  app.set_version_flag("--version", "cairn 0.1.0");
  app.require_subcommand(1);
  app.fallthrough();
  auto* repo_opt = app.add_option("-r,--repo", ctx.repo, "repository location (or CAIRN_REPOSITORY)");
  app.add_option("--config", ctx.config,
                 "policy file (or CAIRN_CONFIG, ./cairn.yaml, /etc/cairn/cairn.yaml)");
  ctx.repo_from_flag = [repo_opt] { return repo_opt->count() > 0; };
  app.add_flag("--json", ctx.json, "machine-readable output on stdout");
  app.add_flag("-q,--quiet", ctx.quiet, "print only errors");
  app.add_flag("-v,--verbose", ctx.verbose, "more output (repeatable)");
  app.add_flag("--no-progress", ctx.no_progress, "never draw progress bars");
  app.add_option("--key-file", ctx.key_file,
                 "open the repository with a key file instead of a password (or CAIRN_KEY_FILE)");
  app.add_flag("--insecure-http", ctx.insecure_http, "allow s3:http:// repositories (no TLS)");
  app.add_option("--cacert", ctx.cacert,
                 "extra CA certificate(s) (PEM) to trust for s3:https:// (or CAIRN_S3_CACERT)")
      ->check(CLI::ExistingFile);
  app.add_flag("--insecure-tls", ctx.insecure_tls,
               "do not verify the S3 server's TLS certificate (prints a warning; tests only)");
  app.add_flag("--s3-path-style", ctx.s3_path_style,
               "S3 path-style addressing (https://host/bucket/key)");
  app.add_flag("--s3-virtual-host", ctx.s3_virtual_host,
               "S3 virtual-host addressing (https://bucket.host/key; default for *.amazonaws.com)");
  app.add_option("--s3-connections", ctx.s3_connections,
                 "S3 uploads in flight (default 8; each holds a 16 MiB pack)")
      ->check(CLI::Range(1, 64));
  app.add_option("--s3-multipart-threshold", ctx.s3_multipart_threshold,
                 "S3 objects above this size (e.g. 32MiB, the default) go up in parts")
      ->transform(CLI::AsSizeValue(false));
  app.add_option("--s3-part-size", ctx.s3_part_size,
                 "part size of S3 multipart uploads (default 8MiB, at least 5MiB)")
      ->transform(CLI::AsSizeValue(false))
      ->check(CLI::Range(uint64_t{5} << 20, uint64_t{5} << 30));
  app.add_option("--retry-lock", ctx.retry_lock,
                 "wait up to this long (e.g. 10m) for a lock another process holds");
  app.add_flag("--no-lock", ctx.no_lock, "restore/check without taking a lock (read-only repositories)");
  app.add_option("--compression", ctx.compression,
                 "off, fast (zstd 1), auto (zstd 3) or max; default auto, fast for physical database "
                 "backups")
      ->check(CLI::IsMember({"off", "fast", "auto", "max"}));

  cli::add_init(app, ctx);
  cli::add_backup(app, ctx);
  cli::add_snapshots(app, ctx);
  cli::add_ls(app, ctx);
  cli::add_diff(app, ctx);
  cli::add_dump(app, ctx);
  cli::add_restore(app, ctx);
  cli::add_cat(app, ctx);
  cli::add_check(app, ctx);
  cli::add_stats(app, ctx);
  cli::add_key(app, ctx);
  cli::add_forget(app, ctx);
  cli::add_unlock(app, ctx);
  cli::add_prune(app, ctx);
  cli::add_pg(app, ctx);
  cli::add_wal(app, ctx);
  cli::add_repair(app, ctx);
  cli::add_copy(app, ctx);
  cli::add_policy(app, ctx);
  cli::add_daemon(app, ctx);
  cli::add_drill(app, ctx);
  cli::add_fleet(app, ctx);
  // runbooks and policy scaffolding (docs/runbooks.md)
  cli::add_runbook(app, ctx);
  cli::add_service(app, ctx);
  cli::add_redis(app, ctx);   // redis, sqlite engines
  cli::add_sqlite(app, ctx);  // redis, sqlite engines
  cli::add_mariadb(app, ctx);  // mariadb engine
  cli::add_server(app, ctx);  // HTTPS API, tokens, audit
  cli::add_token(app, ctx);
  cli::add_audit(app, ctx);

  // Everything after "--" is a command line of its own (backup
  // --stdin-from-command); CLI11 never sees it.
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--") {
      ctx.command.assign(argv + i + 1, argv + argc);
      argc = i;
      break;
    }
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : cli::kExitUsage;
  }
  cli::audit_cli_action(app, ctx);
  return ctx.exit_code;
}
