// Archiver: turns files, directories or a byte stream into a snapshot.
//
// Pipeline: one walker thread (lstat, change detection against the parent
// snapshot) -> a pool of reader threads (many reads in flight: cold disks
// and object stores reward concurrency) -> chunker -> a CPU pool (blob id,
// compress, encrypt) -> packer -> backend. A byte budget bounds the data in
// flight, so memory stays flat whatever the file sizes. Directories are
// serialised as trees as soon as their last entry completes.
#pragma once

#include <atomic>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "repo/repository.h"

namespace cairn::archive {

// Live counters for progress display; written by the archiver, read by anyone.
struct BackupProgress {
  std::atomic<uint64_t> files_done{0}, bytes_done{0}, dirs_done{0};
  std::atomic<uint64_t> files_total{0}, bytes_total{0};  // from the scanner, when enabled
  std::atomic<bool> scan_finished{false};
  std::atomic<uint64_t> errors{0};
};

struct BackupOptions {
  std::vector<std::string> excludes;
  bool one_file_system = false;
  bool force = false;  // read every file even if the parent says it is unchanged
  std::vector<std::string> tags;
  std::string host;  // default: this machine's hostname
  std::string service;
  std::optional<repo::Time> time;
  std::optional<repo::SnapshotRef> parent;
  size_t read_concurrency = 8;
  size_t cpu_threads = 0;  // 0: hardware concurrency
  bool scan = false;       // count totals first (for an ETA); costs an extra walk
  nlohmann::json engine = nlohmann::json::object();
  // Files recorded under `path` are read from `read_from` instead (both
  // absolute): a volume snapshot is backed up under the location it was taken
  // of, so listings, restores and runbooks show the real path. Excludes match
  // the recorded path.
  struct Redirect {
    std::string path, read_from;
  };
  std::vector<Redirect> redirects;
  // > 0 for a recorded path: that file's content is cut every so many bytes
  // (see StreamEntry::fixed_chunk), whatever its size.
  std::function<size_t(const std::string& path)> fixed_chunk;
  // A file or directory that disappears between listing and reading is left
  // out silently (a database dropping a table while its files are copied)
  // instead of becoming a warning (exit code 3).
  bool vanished_ok = false;
  // Called for every regular file in the snapshot (recorded path, final node
  // with size and mtime), from the reader threads: must be thread-safe.
  std::function<void(const std::string& path, const repo::Node& node)> on_file;
};

struct BackupResult {
  std::string snapshot_id;
  repo::Snapshot snapshot;
  std::vector<std::string> warnings;  // unreadable files etc.: exit code 3
  std::vector<std::string> notices;   // e.g. files that changed while read: exit code 0
};

// Backs up paths (files or directories). Fails (and writes no snapshot) only
// on repository errors; unreadable sources become warnings.
core::Result<BackupResult> backup_paths(repo::Repository& repo, const std::vector<std::string>& paths,
                                        const BackupOptions& options, BackupProgress* progress);

// Backs up a byte stream as a single file named `filename`. `read` returns
// the number of bytes read, 0 at end of stream. `finish` is called at end of
// stream and may veto the snapshot (e.g. the producing command failed).
struct StreamSource {
  std::string filename;
  std::function<core::Result<size_t>(uint8_t*, size_t)> read;
  std::function<core::Status()> finish;
};
core::Result<BackupResult> backup_stream(repo::Repository& repo, StreamSource source,
                                         const BackupOptions& options, BackupProgress* progress);

// One entry of a tree that comes from a stream rather than a file system
// walk: the members of a tar stream (a PostgreSQL base backup), the files
// of a dump command. Directories named in paths are created as needed.
struct StreamEntry {
  std::string path;  // relative, '/'-separated, each part a safe name
  repo::NodeType type = repo::NodeType::kFile;  // kFile, kDir or kSymlink
  uint32_t mode = 0600;
  std::optional<uint32_t> uid, gid;  // default: this process's
  int64_t mtime_ns = 0;              // 0: now
  std::string link_target;           // kSymlink
  // kFile: the contents; returns 0 at end of the entry.
  std::function<core::Result<size_t>(uint8_t*, size_t)> read;
  // > 0: cut the content every `fixed_chunk` bytes instead of at
  // content-defined boundaries. For files changed in place page by page
  // (database relation files), where nothing shifts and small aligned
  // chunks keep a few scattered page changes from dirtying whole 1 MiB chunks.
  size_t fixed_chunk = 0;
};

// Entries one after another. next() returns nullopt at the end; it is called
// again only after the previous entry's data was read to its end (unless
// `concurrency` says otherwise). `finish` may veto the snapshot (e.g. the
// producing command failed).
struct EntrySource {
  std::function<core::Result<std::optional<StreamEntry>>()> next;
  std::function<core::Status()> finish;
  // Engine metadata only known at the end (e.g. a base backup's stop LSN):
  // merged into the snapshot's `engine` after finish() succeeds.
  std::function<nlohmann::json()> engine;
  // > 1: that many entries are read at once, each on its own thread, for
  // producers whose streams must all flow together (parallel dumps that
  // wait for each other). next() is then called again before earlier
  // entries end (never concurrently with itself), and `read` of different
  // entries runs concurrently.
  size_t concurrency = 1;
};

// Backs up every entry of `source` as one snapshot whose paths are the
// top-level entries ("/name"). Any error, or a veto, means no snapshot.
core::Result<BackupResult> backup_entries(repo::Repository& repo, EntrySource source,
                                          const BackupOptions& options, BackupProgress* progress);

// backup_paths(), then the entries of `extra`, read once the walk has ended
// (files that exist only then, e.g. a base backup's backup_label and WAL):
// each top-level entry replaces the walked node of the same name. A failure
// or veto of `extra` means no snapshot; extra.engine is merged into the
// snapshot's engine metadata.
core::Result<BackupResult> backup_paths_then_entries(repo::Repository& repo,
                                                     const std::vector<std::string>& paths,
                                                     EntrySource extra, const BackupOptions& options,
                                                     BackupProgress* progress);

// The newest snapshot with the same host, service and paths (parent for
// change detection), if any.
std::optional<repo::SnapshotRef> find_parent(repo::Repository& repo, const std::string& host,
                                             const std::string& service,
                                             const std::vector<std::string>& paths);

std::string local_hostname();

}  // namespace cairn::archive
