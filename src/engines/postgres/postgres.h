// PostgreSQL engine: logical dumps (pg_dump -Fc per database plus
// pg_dumpall --globals-only, streamed), physical base backups (the tar stream
// of pg_basebackup stored file by file, so unchanged relation files dedup
// across base backups), and the pieces of point-in-time recovery: picking
// the base backup for a target and writing the recovery settings.
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

struct LogicalOptions {
  std::string dsn;
  std::string bindir;
  std::vector<std::string> databases;  // empty: the DSN's own database
  bool globals = true;                 // roles and tablespaces (pg_dumpall -g)
};
// Snapshot layout: /globals.sql, /<database>.dump (custom format) each.
core::Result<archive::BackupResult> logical_backup(repo::Repository& repo, const LogicalOptions& opt,
                                                   const archive::BackupOptions& backup,
                                                   archive::BackupProgress* progress);

struct PhysicalOptions {
  std::string dsn;
  std::string bindir;
  bool fast_checkpoint = true;
};
// The cluster's files (with the WAL needed to make them consistent, so a base
// backup restores even without the WAL archive). Engine metadata: start/stop
// LSN, timeline, system identifier, server version, stop time.
core::Result<archive::BackupResult> physical_backup(repo::Repository& repo, const PhysicalOptions& opt,
                                                    const archive::BackupOptions& backup,
                                                    archive::BackupProgress* progress);

// "16/B374D848" -> 0x16B374D848.
std::optional<uint64_t> parse_lsn(const std::string& s);

struct RecoveryTarget {
  enum class Kind { kLatest, kImmediate, kTime, kLsn, kXid, kName };
  Kind kind = Kind::kLatest;
  std::string value;              // time, LSN, xid or restore point name
  std::string action = "promote";  // promote | pause | shutdown
  std::string timeline = "latest";
};

// The newest physical base backup of `service` that can reach the target:
// one that ended before the target time / LSN (for xid and name targets, and
// latest, the newest base backup). kNotFound explains what exists.
core::Result<repo::SnapshotRef> choose_base_backup(const std::vector<repo::SnapshotRef>& snapshots,
                                                   const std::string& service,
                                                   const RecoveryTarget& target);

// Appends the recovery settings to DIR/postgresql.auto.conf and creates
// DIR/recovery.signal.
core::Status write_recovery_config(const std::string& dir, const RecoveryTarget& target,
                                   const std::string& restore_command);

// Quotes an argument for /bin/sh (PostgreSQL runs restore_command through it).
std::string shell_quote(const std::string& s);

struct LogicalRestoreOptions {
  std::string dsn;     // target server/database
  std::string bindir;  // default: from the target server's version
  std::string database;  // which dump of the snapshot (default: the only one)
  bool create = false, clean = false, globals = false;
  int jobs = 1;
  std::vector<std::string> tables, schemas;
};
// Streams the dump from the snapshot into pg_restore (psql for globals).
core::Status logical_restore(repo::Repository& repo, const repo::SnapshotRef& snapshot,
                             const LogicalRestoreOptions& opt);

}  // namespace cairn::engines::postgres
