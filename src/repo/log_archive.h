// LogArchive: files a database hands over one at a time as it fills them --
// PostgreSQL WAL segments, timeline histories and backup history files (and
// later MariaDB binlogs). Each file is stored as data blobs in packs (cut
// into fixed 1 MiB pieces: log files never share shifted content), plus one
// small encrypted entry under wal/<id> with
//   id = hex HMAC-SHA-256(id key, "log" NUL service NUL name)
// so a reader finds an entry by name without listing, and the store reveals
// no names. The entry records where its blobs were written, so fetching one
// needs no index load (the locations are hints: after a repack the index is
// consulted). docs/format.md §14 is the exact format.
//
// Write order: pack -> index -> entry. An entry is never overwritten: a push
// of a name that exists with the same content succeeds without writing, with
// different content it fails (kAlreadyExists) -- PostgreSQL must not archive
// two different segments under one name.
//
// Not thread-safe; one archive object per command.
#pragma once

#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/status.h"
#include "repo/index.h"
#include "repo/repository.h"

namespace cairn::repo {

struct LogBlob {
  Id id;
  std::optional<BlobLocation> where;  // where it was written (a hint)
};

struct LogEntry {
  std::string service, name;
  uint64_t size = 0;
  // Hex SHA-256 of the file's content: version-1 entries only. Version 2
  // (written since) relies on the blob ids, which prove the content as well.
  std::string sha256;
  std::string time;  // when it was archived (RFC 3339, UTC)
  std::vector<LogBlob> blobs;
};

class LogArchive {
 public:
  LogArchive(Repository& repo, std::string service);

  // Name of the wal/ object holding entry `name` of this service.
  std::string object_name(const std::string& name) const;

  // Archives the file at `path` as `name`. Returns true if stored, false if
  // an identical file was archived before. Durable when it returns.
  core::Result<bool> push(const std::string& name, const std::string& path);
  // push() for several (name, path) files with one flush (packs shared, one
  // index file): the results in order, each as push() would give it.
  std::vector<core::Result<bool>> push_batch(
      const std::vector<std::pair<std::string, std::string>>& files);
  // Writes entry `name` to `dest` (temp file + rename; every blob verified
  // against its id, the size, and for version-1 entries the SHA-256).
  // kNotFound when never archived.
  core::Status fetch(const std::string& name, const std::string& dest);
  core::Result<std::optional<LogEntry>> find(const std::string& name);
  // Every entry of this service (unreadable ones go to `problems`).
  core::Result<std::vector<LogEntry>> list(std::vector<std::string>* problems = nullptr);
  // Removes an entry (its data goes with the next prune).
  core::Status remove(const std::string& name);

 private:
  struct Staged;
  core::Result<Staged> stage(const std::string& name, const std::string& path);
  // Whether the file at `path` has the content entry `e` records.
  core::Result<bool> same_content(const LogEntry& e, const std::string& path);
  core::Result<bool> commit(Staged& staged,
                            const std::unordered_map<Id, BlobLocation, IdHash>& where);
  std::unordered_map<Id, BlobLocation, IdHash> written_locations() const;
  core::Result<LogEntry> load_entry(const std::string& object);
  Repository& repo_;
  std::string service_;
};

// Every entry of every service: prune and check treat their blobs as used.
core::Result<std::vector<LogEntry>> list_all_log_entries(Repository& repo,
                                                         std::vector<std::string>* problems);

}  // namespace cairn::repo
