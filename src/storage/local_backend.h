// LocalBackend: a repository in a folder on a local (or mounted) filesystem.
// Layout: config, keys/, data/<2 hex>/, index/, snapshots/, locks/, maintenance/.
// save() writes a ".tmp-" file, fsyncs it and hard-links it into place, so an
// object appears whole or not at all and an existing one is never replaced;
// then it fsyncs the folder. SaveOptions::no_sync skips both fsyncs.
// Thread-safe (and safe against other processes using the same folder): all
// state lives in the filesystem.
#pragma once

#include <dirent.h>

#include <string>

#include "storage/backend.h"

namespace cairn::storage {

class LocalBackend : public Backend {
 public:
  // root: the repository folder (open_backend() passes an absolute path).
  explicit LocalBackend(std::string root);

  core::Status save(const Handle& h, core::ByteView data) override;
  core::Status save_with(const Handle& h, core::ByteView data, const SaveOptions& options) override;
  core::Result<core::Bytes> load(const Handle& h, uint64_t offset = 0,
                                 uint64_t length = 0) override;
  core::Status load_into(const Handle& h, uint64_t offset, uint64_t length, core::Bytes& out) override;
  core::Result<FileInfo> stat(const Handle& h) override;
  core::Status list(FileType t, const std::function<void(const FileInfo&)>& fn) override;
  core::Status remove(const Handle& h) override;
  core::Result<bool> exists() override;
  core::Status create() override;
  std::string location() const override { return root_; }
  // Two: one pack fsyncs while the next is written; more only adds seeks.
  int preferred_upload_concurrency() const override { return 2; }

  // Rejects names that are not a single safe path component: config must be
  // named "config"; other names are 1-200 of [A-Za-z0-9_.-] not starting with
  // '.' (which also keeps them apart from ".tmp-" files); pack names start with
  // two lowercase hex digits (their subfolder). Other backends call this too so
  // that every backend accepts exactly the same names.
  static core::Status check_handle(const Handle& h);

 protected:
  // Every fsync of save() goes through these two (tests count them).
  virtual core::Status sync_file(int fd, const std::string& path);
  virtual core::Status sync_dir(const std::string& dir);

 private:
  std::string path_of(const Handle& h) const { return root_ + "/" + h.to_string(); }
  core::Status ensure_pack_dir(const std::string& dir);
  // Calls fn for every entry of dir (a missing type folder lists nothing).
  core::Status for_each_entry(
      const std::string& dir,
      const std::function<core::Status(int dir_fd, const struct dirent&)>& fn) const;
  core::Status list_dir(const std::string& dir,
                        const std::function<void(const FileInfo&)>& fn) const;

  const std::string root_;
};

}  // namespace cairn::storage
