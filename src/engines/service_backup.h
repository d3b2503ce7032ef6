// Runs the backup that a service's policy (cairn.yaml) describes, with the
// engine it names: files, exec, postgres, mariadb, redis, sqlite or volume. The one entry point that
// `cairn backup --service`, the daemon and drills share. Thread-compatible.
#pragma once

#include "archive/archiver.h"
#include "core/status.h"
#include "policy/catalog.h"
#include "repo/repository.h"

namespace cairn::engines {

// `base` carries host, tags and time; service, engine settings and (for
// files) the parent snapshot are filled in here. ${VAR} references in the
// engine's options are expanded now, so an unset variable fails the run
// before anything is started.
core::Result<archive::BackupResult> backup_service(repo::Repository& repo, const policy::Service& service,
                                                   archive::BackupOptions base, archive::BackupProgress* progress);

// A PostgreSQL base backup or a mariadb-backup stream: large, page-shaped data
// read on the database host (the CLI compresses these faster by default).
bool is_physical_database_backup(const policy::EngineSpec& engine);

}  // namespace cairn::engines
