// SQLite engine: a consistent copy of a live database made with SQLite's
// online backup API, then streamed into the repository as one file named
// after the database (/app.db). Restore writes it to a new file and accepts
// it only when `PRAGMA integrity_check` says ok. docs/engines/sqlite.md is
// the user guide.
//
// The backup API needs a database to write to, so the copy is staged in a
// private temporary directory under $TMPDIR (default /tmp), unlinked as soon
// as it is open for streaming and removed on every error path. A database
// that is missing or not a database writes no snapshot.
// Functions are thread-compatible (each opens its own connections).
#pragma once

#include <cstdint>
#include <string>

#include "archive/archiver.h"
#include "core/status.h"
#include "repo/repository.h"

namespace cairn::engines::sqlite {

struct BackupOptions {
  std::string path;      // the live database file
  std::string temp_dir;  // "": $TMPDIR, else /tmp
  // Pages copied per sqlite3_backup_step(). Between steps of a database in
  // rollback-journal mode the source is unlocked so writers can commit.
  int pages_per_step = 1024;
};

// Engine metadata: type, file, journal_mode, page_size, page_count,
// freelist_count, bytes, user_version, sqlite_version, restarts (copies
// started over because a writer changed a rollback-journal database).
core::Result<archive::BackupResult> backup(repo::Repository& repo, const BackupOptions& opt,
                                           const archive::BackupOptions& backup,
                                           archive::BackupProgress* progress);

// Runs `PRAGMA integrity_check` on the database at `path`: a summary ("ok:
// 120 pages of 4096 bytes, 3 tables") when it returns ok; kCorruption with
// its first complaints (or "not a database") otherwise.
core::Result<std::string> integrity_check(const std::string& path);

struct RestoreOptions {
  std::string target;  // the database file to create
  bool force = false;  // replace an existing file (and remove its -wal, -shm, -journal)
};
struct RestoreResult {
  std::string path;
  uint64_t bytes = 0;
  std::string check;  // integrity_check's summary
};
// Writes the snapshot's database to a temporary name beside `target`, checks
// it, and only then renames it into place. Without `force` an existing
// target (or a leftover -wal/-journal of one) is refused.
core::Result<RestoreResult> restore(repo::Repository& repo, const repo::SnapshotRef& snapshot,
                                    const RestoreOptions& opt);

}  // namespace cairn::engines::sqlite
