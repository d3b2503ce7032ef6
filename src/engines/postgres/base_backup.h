// Internals shared by the two ways a physical base backup is taken
// (backup.cc): pg_basebackup's tar stream, and reading the data directory
// on this host between pg_backup_start() and pg_backup_stop()
// (datadir_backup.cc). Not part of the engine's interface.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "archive/archiver.h"
#include "core/status.h"
#include "engines/postgres/pg_conn.h"
#include "engines/postgres/postgres.h"
#include "repo/repository.h"

namespace cairn::engines::postgres {

// Relation files change in place, 8 KiB page by page: aligned fixed-size
// chunks dedup what content-defined 1 MiB chunks cannot. Both ways cut them
// alike, so base backups taken either way dedup against each other.
constexpr size_t kRelationChunk = 64 << 10;
bool is_relation_path(const std::string& relative_path);  // "base/..." or "global/..."

// start_lsn, start_wal_file, timeline and start_time_label from a backup_label.
nlohmann::json label_metadata(const std::string& label);

// The data directory of the server behind `conn` when this host can read
// it: the server is a primary, reports its data_directory, and the
// global/pg_control found there carries the server's system identifier.
// Otherwise kUnsupported saying why.
core::Result<std::string> local_data_directory(PgConn& conn);

// The base backup read from `data_dir` (see local_data_directory), with the
// WAL that makes it consistent and a backup_manifest (sizes, no checksums:
// cairn verifies every blob itself) for pg_verifybackup. kUnsupported only
// when the backup could not start (nothing was read or written).
core::Result<archive::BackupResult> datadir_backup(repo::Repository& repo, PgConn& conn,
                                                   const std::string& data_dir,
                                                   const PhysicalOptions& opt,
                                                   archive::BackupOptions backup,
                                                   archive::BackupProgress* progress);

}  // namespace cairn::engines::postgres
