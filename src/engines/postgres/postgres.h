// PostgreSQL engine: logical dumps (pg_dump -Fc per database plus
// pg_dumpall --globals-only, streamed), physical base backups (the tar stream
// of pg_basebackup, or the data directory read directly, stored file by
// file, so unchanged relation files dedup across base backups), and the
// pieces of point-in-time recovery: picking the base backup for a target and
// writing the recovery settings.
//
// The client programs come from the server's major version
// (/usr/lib/postgresql/<major>/bin) unless a bindir is given. A failed or
// killed dump never becomes a snapshot. docs/postgres.md is the user guide.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "archive/archiver.h"
#include "core/status.h"
#include "repo/repository.h"

namespace cairn::engines::postgres {

// Directory of pg_dump & co. for a server version (e.g. 150018); `configured`
// wins when set. Falls back to PATH ("") when the versioned folder is absent.
std::string find_bindir(const std::string& configured, int server_version_num);
// bindir/name, or just name (looked up in PATH) when bindir is empty.
std::string tool_path(const std::string& bindir, const std::string& name);

struct LogicalOptions {
  std::string dsn;
  std::string bindir;
  std::vector<std::string> databases;  // empty: the DSN's own database
  bool globals = true;                 // roles and tablespaces (pg_dumpall -g)
};
// Snapshot layout: /globals.sql, /<database>.dump (custom format) each.
core::Result<archive::BackupResult> logical_backup(repo::Repository& repo,
                                                   const LogicalOptions& opt,
                                                   const archive::BackupOptions& backup,
                                                   archive::BackupProgress* progress);

struct PhysicalOptions {
  std::string dsn;
  std::string bindir;
  bool fast_checkpoint = true;
  // Where the files come from. "datadir": read the data directory on this
  // host between pg_backup_start() and pg_backup_stop(), many files at once;
  // "stream": pg_basebackup's tar stream (works from any host); "auto":
  // datadir when the server's data directory is readable here, else stream.
  std::string source = "auto";
};
// The cluster's files (with the WAL needed to make them consistent, so a base
// backup restores even without the WAL archive). Engine metadata: start/stop
// LSN, timeline, system identifier, server version, stop time, source. When
// "auto" falls back to streaming, the result's notices say why.
core::Result<archive::BackupResult> physical_backup(repo::Repository& repo,
                                                    const PhysicalOptions& opt,
                                                    const archive::BackupOptions& backup,
                                                    archive::BackupProgress* progress);

// "16/B374D848" -> 0x16B374D848.
std::optional<uint64_t> parse_lsn(const std::string& s);

struct RecoveryTarget {
  enum class Kind { kLatest, kImmediate, kTime, kLsn, kXid, kName };
  Kind kind = Kind::kLatest;
  std::string value;               // time, LSN, xid or restore point name
  std::string action = "promote";  // promote | pause | shutdown
  std::string timeline = "latest";
};

// The newest physical base backup of `service` that can reach the target:
// one that ended before the target time / LSN (for xid and name targets, and
// latest, the newest base backup). kNotFound explains what exists.
core::Result<repo::SnapshotRef> choose_base_backup(const std::vector<repo::SnapshotRef>& snapshots,
                                                   const std::string& service,
                                                   const RecoveryTarget& target);

// Checks a restored base backup against its backup_manifest with
// pg_verifybackup (file sizes and checksums, and the WAL it includes).
// kUnsupported when the snapshot has no manifest or the tool is missing.
core::Status verify_base_backup(const std::string& dir, const repo::SnapshotRef& base,
                                const std::string& bindir);

// Appends the recovery settings to DIR/postgresql.auto.conf and creates
// DIR/recovery.signal.
core::Status write_recovery_config(const std::string& dir, const RecoveryTarget& target,
                                   const std::string& restore_command);

// Quotes an argument for /bin/sh (PostgreSQL runs restore_command through it).
std::string shell_quote(const std::string& s);

struct LogicalRestoreOptions {
  std::string dsn;       // target server/database
  std::string bindir;    // default: from the target server's version
  std::string database;  // which dump of the snapshot (default: the only one)
  bool create = false, clean = false, globals = false;
  int jobs = 1;
  std::vector<std::string> tables, schemas;
};
// Streams the dump from the snapshot into pg_restore (psql for globals).
core::Status logical_restore(repo::Repository& repo, const repo::SnapshotRef& snapshot,
                             const LogicalRestoreOptions& opt);

// A WAL segment file name "TTTTTTTTXXXXXXXXYYYYYYYY" as (timeline, segment
// number), given the number of segments per 4 GiB "xlogid".
struct SegmentName {
  uint32_t timeline = 0;
  uint64_t segno = 0;
};
std::optional<SegmentName> parse_segment_name(const std::string& name, uint64_t segments_per_id);
std::string segment_file_name(uint32_t timeline, uint64_t segno, uint64_t segments_per_id);

// Copies from the service's WAL archive what recovery from `base` can ask
// for: every timeline history file and each segment from the base's start
// segment on (on its timeline or later ones), into `dir`, so that a
// restore_command that only copies files serves the recovery.
struct FetchedWal {
  uint64_t files = 0, bytes = 0;
};
core::Result<FetchedWal> fetch_wal_since(repo::Repository& repo, const std::string& service,
                                         const repo::SnapshotRef& base, const std::string& dir);

// What `cairn pg check` reports about a service's WAL archive.
struct ArchiveReport {
  size_t segments = 0, history_files = 0, other_files = 0, base_backups = 0;
  std::string newest_segment, newest_time;  // the archive's recovery point
  double newest_age_s = -1;                 // seconds since it was archived
  std::string oldest_needed;                // start segment of the oldest base backup
  std::vector<std::string> missing;         // segment names absent inside the covered range
  std::vector<std::string> problems;        // unreadable entries, base backups without WAL, ...
  std::vector<std::pair<std::string, std::string>> files;  // (name, wal/ object) of every entry
};
core::Result<ArchiveReport> check_archive(repo::Repository& repo, const std::string& service);

// Removes archived WAL that no kept base backup can use: segments (and
// backup history files) older than the start segment of the oldest physical
// base backup of `service`. Timeline history files are always kept.
// Returns the names removed (dry_run: the names that would be).
core::Result<std::vector<std::string>> expire_wal(repo::Repository& repo,
                                                  const std::string& service, bool dry_run);

}  // namespace cairn::engines::postgres
