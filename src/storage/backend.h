// storage::Backend: the dumb object store under a repository (local folder,
// S3, ...). Knows names and bytes, nothing about encryption or packs.
//
// Contract (every backend passes tests/storage/conformance_test.cc):
// - save() is atomic: a reader sees the whole object or nothing. Objects are
//   immutable: saving an existing name fails with kAlreadyExists and leaves
//   the old bytes untouched. A successful save is durable (fsync'd), unless
//   the caller asked for SaveOptions::no_sync.
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

enum class FileType { kConfig, kKey, kPack, kIndex, kSnapshot, kLock, kMaintenance, kWal };
constexpr size_t kFileTypeCount = 8;  // keep in step with FileType (arrays indexed by it)

// "keys", "data", "index", "snapshots", "locks", "maintenance", "wal"; "" for config
const char* type_dir(FileType t);

struct Handle {
  FileType type;
  std::string name;  // hex id; "config" for the config object
  std::string to_string() const;  // "data/1a/1a2b..." (the object's path in the repository)
};

struct FileInfo {
  std::string name;
  uint64_t size = 0;
};

// How one save() is carried out. The default is the safe choice; `no_*`
// flags trade durability for speed.
struct SaveOptions {
  // No fsync of the object or of its folder: a crash of the machine (power
  // loss, kernel panic) may lose the object or leave it empty. While the
  // system runs the save is still atomic and never replaces an object. Only
  // for objects whose loss in such a crash is harmless: lock files (a crash
  // that loses one ended its holder too; docs/retention.md, "Locks").
  bool no_sync = false;
  // Called (at most once, on the saving thread) as soon as the backend will
  // not read `data` again, which may be before save_with() returns: a local
  // save is done with the bytes before its fsyncs. The repository frees a
  // ~16 MiB pack buffer there instead of holding it through them. Backends
  // that keep the bytes to the end (retries) simply never call it, and a
  // decorator that may pass `data` on again after its inner save (a retry
  // wrapper) must not forward it.
  std::function<void()> data_consumed;
  // Lowercase hex SHA-256 of `data`, when the caller has it already (packs
  // and index/snapshot files are named by it): a backend that must send the
  // hash (S3's signed payload hash) takes it instead of hashing the bytes
  // again. It must be right: S3 refuses a body that does not match it.
  std::string sha256_hex;
};

class Backend {
 public:
  virtual ~Backend() = default;

  virtual core::Status save(const Handle& h, core::ByteView data) = 0;
  // save() with options. A backend that cannot honour one ignores it (an
  // object store is durable once it answers): the default is save().
  virtual core::Status save_with(const Handle& h, core::ByteView data, const SaveOptions& options) {
    (void)options;
    return save(h, data);
  }
  // length == 0 means "to the end".
  virtual core::Result<core::Bytes> load(const Handle& h, uint64_t offset = 0,
                                         uint64_t length = 0) = 0;
  // load() into a caller's buffer, whose capacity is reused: a loop over
  // many packs then faults in fresh pages once, not for every pack.
  virtual core::Status load_into(const Handle& h, uint64_t offset, uint64_t length, core::Bytes& out) {
    ASSIGN_OR_RETURN(out, load(h, offset, length));
    return core::ok_status();
  }
  // Receives the bytes of a streamed load in order, a piece at a time; an
  // error it returns stops the load and becomes load_stream()'s result.
  using ByteSink = std::function<core::Status(core::ByteView piece)>;
  // load(h, offset, length) handed to `sink` piece by piece, so the caller
  // never holds the whole range: one request for many blobs of a pack.
  // length > 0. A backend that retries a broken transfer resumes after the
  // last byte delivered: the sink never sees a byte twice or out of order.
  // Errors are load()'s (kNotFound, kInvalidArgument beyond the end, ...),
  // possibly after some pieces were delivered. The default loads the range
  // and delivers it as one piece.
  virtual core::Status load_stream(const Handle& h, uint64_t offset, uint64_t length,
                                   const ByteSink& sink) {
    if (length == 0) return core::invalid_argument(h.to_string() + ": load_stream needs a length");
    ASSIGN_OR_RETURN(core::Bytes data, load(h, offset, length));
    return sink(data);
  }
  virtual core::Result<FileInfo> stat(const Handle& h) = 0;
  virtual core::Status list(FileType t, const std::function<void(const FileInfo&)>& fn) = 0;
  virtual core::Status remove(const Handle& h) = 0;
  // True when the repository location exists (config present is checked by repo).
  virtual core::Result<bool> exists() = 0;
  // Creates the location's folder layout (init only).
  virtual core::Status create() = 0;
  // Human-readable location ("/srv/backups/repo", "s3:https://...").
  virtual std::string location() const = 0;
  // Creates a missing container (an S3 bucket) before create(); kUnsupported
  // where there is none to make (a folder backend creates its folder in create()).
  virtual core::Status create_container() {
    return core::Status(core::Code::kUnsupported, location() + ": nothing to create");
  }

  // How many save() calls the repository should keep in flight at once
  // (its upload threads; each holds one ~16 MiB pack). A capability, so
  // callers never need to know the concrete backend.
  virtual int preferred_upload_concurrency() const { return 1; }
  // Whether one large read is much cheaper than many small ones (object
  // stores: a request costs a round trip and money). The repository then
  // reads whole tree packs once instead of one request per directory.
  virtual bool prefers_whole_reads() const { return false; }
};

// S3 addressing: path style (https://host/bucket/key) or virtual-host style
// (https://bucket.host/key). kAuto = virtual-host for *.amazonaws.com, path style elsewhere.
enum class S3Addressing { kAuto, kPath, kVirtualHost };

// Settings of the command line that shape how a location is opened. The
// defaults are the safe choice (TLS verified against the system store).
struct OpenOptions {
  std::string ca_file;        // extra CA bundle (--cacert; wins over CAIRN_S3_CACERT)
  bool insecure_tls = false;  // --insecure-tls: no certificate or host name checks
  S3Addressing s3_addressing = S3Addressing::kAuto;
  int s3_connections = 0;  // uploads in flight (--s3-connections); 0 = the backend's default
  // Multipart uploads above this size, in parts of this size (0 = default).
  uint64_t s3_multipart_threshold = 0;
  uint64_t s3_part_size = 0;
};

// Opens a backend from a location string: "/path", "local:/path" or
// "s3:http(s)://host[:port]/bucket[/prefix]" (credentials from the environment,
// see storage/s3_backend.h) or "rest:http(s)://host[:port]/<service>" (the
// cairn server's repository endpoint, storage/rest/rest_backend.h).
core::Result<std::unique_ptr<Backend>> open_backend(const std::string& location,
                                                    const OpenOptions& options = {});

}  // namespace cairn::storage
