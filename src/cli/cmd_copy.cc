// cairn copy: copies snapshots from another repository into --repo,
// re-encrypting (and re-identifying) every blob. Shared locks on both.
#include <fmt/format.h>

#include <fstream>
#include <iostream>
#include <set>

#include "cli/context.h"
#include "repo/copier.h"
#include "repo/lock.h"

namespace cairn::cli {

namespace {

struct CopyArgs {
  std::string from_repo, from_password_file, service, host;
  std::vector<std::string> ids;
};

// Source password: --from-password-file, CAIRN_FROM_PASSWORD, CAIRN_FROM_PASSWORD_FILE.
core::Result<std::string> source_password(const CopyArgs& a) {
  std::string file = a.from_password_file;
  if (file.empty()) {
    if (const char* p = getenv("CAIRN_FROM_PASSWORD"); p && *p) return std::string(p);
    if (const char* f = getenv("CAIRN_FROM_PASSWORD_FILE"); f && *f) file = f;
  }
  if (file.empty())
    return core::invalid_argument(
        "no password for the source repository: use --from-password-file, CAIRN_FROM_PASSWORD or "
        "CAIRN_FROM_PASSWORD_FILE");
  std::ifstream in(file);
  if (!in) return core::errno_status(errno, "source password file " + file);
  std::string line;
  std::getline(in, line);
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
  if (line.empty()) return core::invalid_argument("source password file " + file + " is empty");
  return line;
}

core::Status run_copy(Context& ctx, const CopyArgs& a) {
  if (a.from_repo.empty()) return core::invalid_argument("copy needs --from-repo");
  if (!a.ids.empty() && (!a.service.empty() || !a.host.empty()))
    return core::invalid_argument("give either snapshot ids or --service/--host, not both");
  if (a.from_repo.rfind("s3:http://", 0) == 0 && !ctx.insecure_http)
    return core::invalid_argument("--from-repo s3:http:// needs --insecure-http");
  if (a.from_repo.rfind("rest:http://", 0) == 0 && !ctx.insecure_http)  // rest: (write-only agents)
    return core::invalid_argument("--from-repo rest:http:// needs --insecure-http");
  ASSIGN_OR_RETURN(auto src_backend, storage::open_backend(a.from_repo));
  std::shared_ptr<storage::Backend> src_shared(std::move(src_backend));
  ASSIGN_OR_RETURN(bool exists, src_shared->exists());
  if (!exists) {
    ctx.exit_code = kExitNoRepository;
    return core::not_found("no source repository at " + a.from_repo);
  }
  ASSIGN_OR_RETURN(std::string src_pw, source_password(a));
  auto src_open = repo::Repository::open(src_shared, src_pw);
  if (!src_open.ok()) return src_open.status().with_context("source repository " + a.from_repo);
  auto& src = **src_open;
  ASSIGN_OR_RETURN(auto dst, ctx.open_repository(false));
  if (dst->config().id == src.config().id)
    return core::invalid_argument("source and destination are the same repository");

  // Locks before index reads (a prune in either repository then either
  // waits for us or we see its markers).
  ASSIGN_OR_RETURN(auto src_lock, ctx.lock(src, repo::LockMode::kShared));
  ASSIGN_OR_RETURN(auto dst_lock, ctx.lock(*dst, repo::LockMode::kShared));
  std::vector<repo::SnapshotRef> chosen;
  if (!a.ids.empty()) {
    for (const auto& id : a.ids) {
      ASSIGN_OR_RETURN(auto s, src.find_snapshot(id));
      chosen.push_back(std::move(s));
    }
  } else {
    ASSIGN_OR_RETURN(auto all, src.list_snapshots());
    for (auto& s : all) {
      if (!a.service.empty() && s.snapshot.service != a.service) continue;
      if (!a.host.empty() && s.snapshot.hostname != a.host) continue;
      chosen.push_back(std::move(s));
    }
  }
  TRY(ctx.load_index(src));
  TRY(ctx.load_index(*dst));
  ASSIGN_OR_RETURN(auto existing, dst->list_snapshots());
  std::set<std::string> have;
  for (const auto& s : existing)
    if (!s.snapshot.original.empty()) have.insert(s.snapshot.original);

  repo::Copier copier(src, *dst);
  nlohmann::json copied = nlohmann::json::array(), skipped = nlohmann::json::array();
  for (const auto& s : chosen) {
    std::string original = repo::Copier::original_of(s);
    if (have.count(original)) {
      skipped.push_back(s.id);
      if (!ctx.json && !ctx.quiet)
        std::cout << fmt::format("snapshot {} is already in the destination, skipped\n",
                                 s.id.substr(0, 8));
      continue;
    }
    ASSIGN_OR_RETURN(std::string id, copier.copy_snapshot(s));
    have.insert(original);
    copied.push_back({{"source", s.id}, {"snapshot_id", id}});
    if (!ctx.json && !ctx.quiet)
      std::cout << fmt::format("snapshot {} copied as {}\n", s.id.substr(0, 8), id.substr(0, 8));
  }
  const auto& st = copier.stats();
  if (ctx.json) {
    ctx.print_json({{"copied", copied},
                    {"skipped", skipped},
                    {"data_blobs_added", st.data_added},
                    {"trees_added", st.trees_added},
                    {"bytes_read", st.bytes_read}});
  } else if (!ctx.quiet) {
    std::cout << fmt::format(
        "copied {} snapshot(s), skipped {}; {} data blobs and {} trees added ({} read)\n",
        copied.size(), skipped.size(), st.data_added, st.trees_added,
        core::format_bytes(st.bytes_read));
  }
  return {};
}

}  // namespace

void add_copy(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand("copy", "copy snapshots from another repository into --repo");
  auto a = std::make_shared<CopyArgs>();
  cmd->add_option("snapshots", a->ids, "source snapshot ids (default: all)");
  cmd->add_option("--from-repo", a->from_repo, "source repository")->required();
  cmd->add_option(
      "--from-password-file", a->from_password_file,
      "file holding the source password (or CAIRN_FROM_PASSWORD / CAIRN_FROM_PASSWORD_FILE)");
  cmd->add_option("--service", a->service, "only snapshots of this service");
  cmd->add_option("--host", a->host, "only snapshots of this host");
  cmd->callback([&ctx, a] { ctx.run([&] { return run_copy(ctx, *a); }); });
}

}  // namespace cairn::cli
