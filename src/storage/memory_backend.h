// MemoryBackend: an in-process object store with the same semantics as
// LocalBackend (immutable objects, same name rules, same error codes), for
// tests. Nothing is persisted. Thread-safe (one mutex; objects are shared
// immutable buffers, so loads copy outside the lock).
#pragma once

#include <array>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "storage/backend.h"

namespace cairn::storage {

class MemoryBackend : public Backend {
 public:
  MemoryBackend() = default;

  core::Status save(const Handle& h, core::ByteView data) override;
  // Refuses a save whose options.sha256_hex does not match the bytes, as S3
  // does, so repository tests catch a wrong hash that s3rver would accept.
  core::Status save_with(const Handle& h, core::ByteView data, const SaveOptions& options) override;
  core::Result<core::Bytes> load(const Handle& h, uint64_t offset = 0,
                                 uint64_t length = 0) override;
  core::Result<FileInfo> stat(const Handle& h) override;
  core::Status list(FileType t, const std::function<void(const FileInfo&)>& fn) override;
  core::Status remove(const Handle& h) override;
  // True once a config object has been saved (like LocalBackend).
  core::Result<bool> exists() override;
  // Nothing to lay out; refuses like LocalBackend when a config exists. save()
  // works without it, so tests may skip create().
  core::Status create() override;
  std::string location() const override { return "memory:"; }
  int preferred_upload_concurrency() const override { return 2; }

 private:
  using Object = std::shared_ptr<const core::Bytes>;
  Object find(const Handle& h);

  std::mutex mu_;
  std::array<std::map<std::string, Object>, kFileTypeCount> objects_;  // indexed by FileType
};

}  // namespace cairn::storage
