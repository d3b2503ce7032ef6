// cairn dump: one file to stdout, or a directory as a tar stream (libarchive).
#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>
#include <unistd.h>

#include <iostream>

#include "archive/tree_walk.h"
#include "cli/context.h"
#include "core/file.h"

namespace cairn::cli {

namespace {

struct ArchiveDeleter {
  void operator()(struct archive* a) const { archive_write_free(a); }
};

core::Status dump_tar(repo::Repository& repo, const archive::Located& start) {
  std::unique_ptr<struct archive, ArchiveDeleter> ar(archive_write_new());
  archive_write_set_format_pax_restricted(ar.get());
  if (archive_write_open_fd(ar.get(), 1) != ARCHIVE_OK)
    return core::io_error(std::string("tar: ") + archive_error_string(ar.get()));
  auto check = [&](int rc) -> core::Status {
    if (rc < ARCHIVE_WARN) return core::io_error(std::string("tar: ") + archive_error_string(ar.get()));
    return {};
  };
  core::Status result;
  auto add = [&](const std::string& path, const repo::Node& n) -> bool {
    if (!result.ok()) return false;
    std::unique_ptr<struct archive_entry, decltype(&archive_entry_free)> e(archive_entry_new(), archive_entry_free);
    std::string rel = path.substr(start.path == "/" ? 1 : start.path.size() + 1);
    if (rel.empty()) return true;
    archive_entry_set_pathname(e.get(), rel.c_str());
    archive_entry_set_perm(e.get(), n.mode);
    archive_entry_set_uid(e.get(), n.uid);
    archive_entry_set_gid(e.get(), n.gid);
    if (!n.user.empty()) archive_entry_set_uname(e.get(), n.user.c_str());
    if (!n.group.empty()) archive_entry_set_gname(e.get(), n.group.c_str());
    archive_entry_set_mtime(e.get(), n.mtime_ns / 1000000000, n.mtime_ns % 1000000000);
    switch (n.type) {
      case repo::NodeType::kDir: archive_entry_set_filetype(e.get(), AE_IFDIR); break;
      case repo::NodeType::kSymlink:
        archive_entry_set_filetype(e.get(), AE_IFLNK);
        archive_entry_set_symlink(e.get(), n.link_target.c_str());
        break;
      case repo::NodeType::kFile:
        archive_entry_set_filetype(e.get(), AE_IFREG);
        archive_entry_set_size(e.get(), static_cast<la_int64_t>(n.size));
        break;
      case repo::NodeType::kFifo: archive_entry_set_filetype(e.get(), AE_IFIFO); break;
      default: return true;  // devices and sockets are not dumped
    }
    if ((result = check(archive_write_header(ar.get(), e.get()))).ok() && n.type == repo::NodeType::kFile) {
      result = archive::stream_file(repo, n, [&](core::ByteView b) -> core::Status {
        if (archive_write_data(ar.get(), b.data(), b.size()) < 0)
          return core::io_error(std::string("tar: ") + archive_error_string(ar.get()));
        return {};
      });
    }
    return result.ok();
  };
  TRY(archive::walk(repo, *start.node.subtree, start.path, add));
  TRY(result);
  return check(archive_write_close(ar.get()));
}

}  // namespace

void add_dump(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand("dump", "write a file (or a directory as tar) from a snapshot to stdout");
  auto ref = std::make_shared<std::string>();
  auto service = std::make_shared<std::string>();
  auto host = std::make_shared<std::string>();
  cmd->add_option("target", *ref, "<snapshot>:<path>")->required();
  add_latest_filter(cmd, *service, *host);
  cmd->callback([&ctx, ref, service, host] {
    ctx.run([&]() -> core::Status {
      // With --service: the service's repository and key from the policy file.
      if (!service->empty()) TRY(ctx.apply_service_policy(*service, false));
      ASSIGN_OR_RETURN(auto repo, ctx.open_repository());
      auto [sref, path] = split_snapshot_path(*ref);
      ASSIGN_OR_RETURN(auto snap, repo->find_snapshot(sref, *service, *host));
      ASSIGN_OR_RETURN(auto start, archive::locate(*repo, snap.snapshot.tree, path));
      if (start.node.type == repo::NodeType::kDir) return dump_tar(*repo, start);
      if (start.node.type != repo::NodeType::kFile)
        return core::invalid_argument(start.path + " is not a file or directory");
      return archive::stream_file(*repo, start.node, [](core::ByteView b) {
        return core::write_all(1, b, "stdout");
      });
    });
  });
}

}  // namespace cairn::cli
