// storage::Backend: the dumb object store under a repository (local folder,
// S3, ...). Knows names and bytes, nothing about encryption or packs.
//
// Contract (every backend passes tests/storage/conformance_test.cc):
// - save() is atomic: a reader sees the whole object or nothing. Objects are
//   immutable: saving an existing name fails with kAlreadyExists and leaves
//   the old bytes untouched. A successful save is durable (fsync'd).
// - load() of a missing object fails with kNotFound; a range past the end
//   fails with kInvalidArgument (a short object is corruption for callers).
// - remove() of a missing object succeeds.
// - list() reports every object of a type, in unspecified order.
// All methods are thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "core/bytes.h"
#include "core/status.h"

namespace cairn::storage {

enum class FileType { kConfig, kKey, kPack, kIndex, kSnapshot, kLock, kMaintenance };

const char* type_dir(FileType t);  // "keys", "data", "index", "snapshots", "locks", "maintenance"; "" for config

struct Handle {
  FileType type;
  std::string name;  // hex id; "config" for the config object
  std::string to_string() const;  // "data/1a/1a2b..." (the object's path in the repository)
};

struct FileInfo {
  std::string name;
  uint64_t size = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;

  virtual core::Status save(const Handle& h, core::ByteView data) = 0;
  // length == 0 means "to the end".
  virtual core::Result<core::Bytes> load(const Handle& h, uint64_t offset = 0,
                                         uint64_t length = 0) = 0;
  virtual core::Result<FileInfo> stat(const Handle& h) = 0;
  virtual core::Status list(FileType t, const std::function<void(const FileInfo&)>& fn) = 0;
  virtual core::Status remove(const Handle& h) = 0;
  // True when the repository location exists (config present is checked by repo).
  virtual core::Result<bool> exists() = 0;
  // Creates the location's folder layout (init only).
  virtual core::Status create() = 0;
  // Human-readable location ("/srv/backups/repo", "s3:https://...").
  virtual std::string location() const = 0;
};

// Opens a backend from a location string: "/path", "local:/path" or
// "s3:http(s)://host[:port]/bucket[/prefix]" (credentials from the environment,
// see storage/s3_backend.h).
core::Result<std::unique_ptr<Backend>> open_backend(const std::string& location);

}  // namespace cairn::storage
