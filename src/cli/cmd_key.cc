// cairn key list|add|remove|passwd: the passwords that open a repository.
#include <fmt/format.h>

#include <fcntl.h>
#include <unistd.h>

#include <fstream>
#include <iostream>

#include "cli/context.h"
#include "core/file.h"
#include "crypto/crypto.h"

namespace cairn::cli {

namespace {

struct KdfOpts {
  double seconds = 0.5;
  uint64_t mem_mib = 64;
  uint64_t ops = 0;
  crypto::KdfParams params() const {
    uint64_t mem = mem_mib << 20;
    return ops ? crypto::KdfParams{ops, mem} : crypto::calibrate_kdf(seconds, mem);
  }
};

void add_kdf_options(CLI::App* cmd, KdfOpts& k) {
  cmd->add_option("--kdf-seconds", k.seconds, "tune argon2id to about this long (default 0.5)");
  cmd->add_option("--kdf-memory", k.mem_mib, "argon2id memory in MiB (default 64)");
  cmd->add_option("--kdf-iterations", k.ops, "fixed argon2id iterations (skips tuning)");
}

// The new password: CAIRN_NEW_PASSWORD, CAIRN_NEW_PASSWORD_FILE, or a prompt.
core::Result<std::string> read_new_password() {
  if (const char* p = getenv("CAIRN_NEW_PASSWORD"); p && *p) return std::string(p);
  if (const char* f = getenv("CAIRN_NEW_PASSWORD_FILE"); f && *f) {
    std::ifstream in(f);
    std::string line;
    if (!in || !std::getline(in, line) || line.empty())
      return core::invalid_argument(std::string("cannot read a password from CAIRN_NEW_PASSWORD_FILE ") + f);
    return line;
  }
  // read_password(true) prompts twice on a terminal; the environment variables
  // for the current password must not be mistaken for the new one.
  if (!isatty(0)) return core::invalid_argument("no new password: set CAIRN_NEW_PASSWORD or CAIRN_NEW_PASSWORD_FILE");
  unsetenv("CAIRN_PASSWORD");
  unsetenv("CAIRN_PASSWORD_FILE");
  unsetenv("CAIRN_PASSWORD_COMMAND");
  return read_password(true);
}

}  // namespace

void add_key(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand("key", "manage the passwords (key files) of a repository");
  cmd->require_subcommand(1);

  auto* list = cmd->add_subcommand("list", "list key files");
  list->callback([&ctx] {
    ctx.run([&]() -> core::Status {
      ASSIGN_OR_RETURN(auto repo, ctx.open_repository(false));
      ASSIGN_OR_RETURN(auto keys, repo->list_keys());
      nlohmann::json arr = nlohmann::json::array();
      if (!ctx.json) std::cout << fmt::format(" {:<10} {:<10} {:<12} {:<16} {}\n", "ID", "Type", "User", "Host", "Created");
      for (const auto& k : keys) {
        bool current = k.id == repo->key_id();
        if (ctx.json) {
          arr.push_back({{"id", k.id}, {"current", current}, {"type", k.type}, {"append_only", k.append_only},
                         {"username", k.username},
                         {"hostname", k.hostname}, {"created", k.created},
                         {"kdf", k.type == "keyfile" || k.agent_secret_is_key_file
                                     ? nlohmann::json{{"algorithm", "hmac-sha256"}}
                                     : nlohmann::json{{"algorithm", "argon2id"}, {"ops", k.kdf.ops},
                                                      {"mem", k.kdf.mem}}}});
        } else {
          std::cout << fmt::format("{}{:<10} {:<10} {:<12} {:<16} {}\n", current ? "*" : " ", k.id.substr(0, 8),
                                   k.append_only ? k.type + "(ao)" : k.type,
                                   k.username, k.hostname, k.created.substr(0, 19));
        }
      }
      if (ctx.json) ctx.print_json(arr);
      return {};
    });
  });

  auto add_opts = std::make_shared<KdfOpts>();
  auto add_append_only = std::make_shared<bool>(false);
  auto new_key_file = std::make_shared<std::string>();
  auto* add = cmd->add_subcommand("add", "add a password (new password from CAIRN_NEW_PASSWORD[_FILE] or a prompt)");
  add_kdf_options(add, *add_opts);
  add->add_flag("--append-only", *add_append_only,
                "the new key may add backups but not forget snapshots or remove keys (advisory; docs/cli.md)");
  add->add_option("--new-key-file", *new_key_file,
                  "instead of a password, write a new random key to this file (mode 0600, must not exist); "
                  "opening with it (--key-file) costs no key derivation");
  // --- key add --agent (write-only agents, docs/security.md) ---
  auto add_agent = std::make_shared<bool>(false);
  add->add_flag("--agent", *add_agent,
                "a write-only agent key: it may add backups but cannot read, list or delete any "
                "(data sealed to the repository's X25519 key; docs/security.md)");
  // --- end key add --agent ---
  add->callback([&ctx, add_opts, add_append_only, new_key_file, add_agent] {
    ctx.run([&]() -> core::Status {
      ASSIGN_OR_RETURN(auto repo, ctx.open_repository(false));
      std::string id;
      if (!new_key_file->empty()) {
        // The file is written (and synced) before the key exists in the
        // repository: a crash leaves an unused file, never a key nobody has.
        std::string secret = repo::generate_key_file_secret();
        ASSIGN_OR_RETURN(core::UniqueFd fd,
                         core::open_file(*new_key_file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
        TRY(core::write_all(fd.get(), core::as_bytes(secret + "\n"), *new_key_file));
        if (fsync(fd.get()) != 0) return core::errno_status(errno, "fsync " + *new_key_file);
        if (*add_agent) {
          ASSIGN_OR_RETURN(id, repo->add_agent_key(secret, {}, repo::SecretKind::kKeyFile));
        } else {
          ASSIGN_OR_RETURN(id, repo->add_key(secret, {}, *add_append_only, repo::SecretKind::kKeyFile));
        }
      } else {
        ASSIGN_OR_RETURN(std::string pw, read_new_password());
        if (*add_agent) {
          ASSIGN_OR_RETURN(id, repo->add_agent_key(pw, add_opts->params(), repo::SecretKind::kPassword));
        } else {
          ASSIGN_OR_RETURN(id, repo->add_key(pw, add_opts->params(), *add_append_only));
        }
      }
      if (ctx.json) {
        ctx.print_json({{"added", id}});
      } else if (!ctx.quiet) {
        std::cout << "added key " << id.substr(0, 8) << "\n";
      }
      return {};
    });
  });

  auto remove_id = std::make_shared<std::string>();
  auto* remove = cmd->add_subcommand("remove", "remove a key file (not the one in use, not the last)");
  remove->add_option("id", *remove_id, "key id or unique prefix")->required();
  remove->callback([&ctx, remove_id] {
    ctx.run([&]() -> core::Status {
      ASSIGN_OR_RETURN(auto repo, ctx.open_repository(false));
      TRY(repo->remove_key(*remove_id));
      if (ctx.json) {
        ctx.print_json({{"removed", *remove_id}});
      } else if (!ctx.quiet) {
        std::cout << "removed key " << *remove_id << "\n";
      }
      return {};
    });
  });

  auto passwd_opts = std::make_shared<KdfOpts>();
  auto* passwd = cmd->add_subcommand("passwd", "change the password of the key in use (add new, then remove old)");
  add_kdf_options(passwd, *passwd_opts);
  passwd->callback([&ctx, passwd_opts] {
    ctx.run([&]() -> core::Status {
      ASSIGN_OR_RETURN(auto repo, ctx.open_repository(false));
      ASSIGN_OR_RETURN(std::string pw, read_new_password());
      ASSIGN_OR_RETURN(std::string id, repo->add_key(pw, passwd_opts->params()));  // keeps append-only
      // The new key is stored before the old one goes: a crash in between
      // leaves two working keys, never none.
      std::string old = repo->key_id();
      TRY(repo->backend().remove({storage::FileType::kKey, old}));
      if (ctx.json) {
        ctx.print_json({{"added", id}, {"removed", old}});
      } else if (!ctx.quiet) {
        std::cout << "password changed: key " << old.substr(0, 8) << " replaced by " << id.substr(0, 8) << "\n";
      }
      return {};
    });
  });
}

}  // namespace cairn::cli
