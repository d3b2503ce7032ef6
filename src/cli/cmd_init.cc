// cairn init: creates a repository (config, first key, folder layout).
#include <iostream>

#include "cli/context.h"
#include "crypto/crypto.h"
#include "storage/backend.h"

namespace cairn::cli {

void add_init(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand("init", "create a new repository");
  struct Opts {
    double kdf_seconds = 0.5;
    uint64_t kdf_mem_mib = 64;
    uint64_t kdf_ops = 0;
    bool create_bucket = false;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("--kdf-seconds", o->kdf_seconds, "tune argon2id to about this long (default 0.5)");
  cmd->add_option("--kdf-memory", o->kdf_mem_mib, "argon2id memory in MiB (default 64)");
  cmd->add_option("--kdf-iterations", o->kdf_ops, "fixed argon2id iterations (skips tuning)");
  cmd->add_flag("--create-bucket", o->create_bucket,
                "S3: create the bucket when it does not exist (in AWS_DEFAULT_REGION)");
  cmd->callback([&ctx, o] {
    ctx.run([&]() -> core::Status {
      ASSIGN_OR_RETURN(auto backend, ctx.open_backend());
      ASSIGN_OR_RETURN(std::string password, read_password(true));
      repo::InitOptions init;
      init.create_container = o->create_bucket;
      uint64_t mem = o->kdf_mem_mib << 20;
      init.kdf = o->kdf_ops ? crypto::KdfParams{o->kdf_ops, mem} : crypto::calibrate_kdf(o->kdf_seconds, mem);
      ASSIGN_OR_RETURN(auto repo, repo::Repository::init(std::move(backend), password, init));
      if (ctx.json) {
        ctx.print_json({{"repository", ctx.repo}, {"id", repo->config().id}, {"key", repo->key_id()}});
      } else if (!ctx.quiet) {
        std::cout << "created cairn repository " << repo->config().id.substr(0, 10) << " at " << ctx.repo
                  << "\n\nKeep the password safe: without it the data cannot be recovered.\n";
      }
      return {};
    });
  });
}

}  // namespace cairn::cli
