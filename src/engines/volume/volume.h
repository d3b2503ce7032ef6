// The volume engine: a read-only file system snapshot (btrfs subvolume
// snapshot, LVM snapshot volume, ZFS snapshot) backed up with the files
// archiver, recorded under the source's own path. Quiesce hooks run just
// before the snapshot and their post hooks right after it, so an application
// pauses only for the snapshot instant, not for the upload. The snapshot is
// always deleted: after success, after a failed backup, on SIGTERM/SIGINT
// (CleanupOnTermination), and after SIGKILL by the next run of the service,
// which removes snapshots named for it whose process is gone.
// docs/engines/volume.md is the user guide. Thread-compatible; one backup
// per process at a time (one CleanupOnTermination registration).
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "archive/archiver.h"
#include "core/status.h"
#include "repo/repository.h"

namespace cairn::engines::volume {

struct VolumeOptions {
  std::string service;          // names the snapshots (and finds leftovers)
  std::string driver = "auto";  // btrfs | lvm | zfs | auto
  std::string source;           // subvolume / mount point, vg/lv, or pool/dataset
  std::string snapshot_dir;     // btrfs: where to snapshot; lvm: where to mount
  std::string snapshot_size;    // lvm: "2G" (-L) or "20%ORIGIN" (-l); default 10%ORIGIN
  bool freeze = false;          // FIFREEZE the file system around the snapshot (lvm)
  std::vector<std::string> quiesce_pre, quiesce_post;  // /bin/sh commands
  std::vector<std::string> excludes;
  std::chrono::seconds hook_timeout{0};  // per quiesce hook; 0: none
};

// Snapshot naming: "<prefix><service>-<pid>-<unix seconds>", prefix
// ".cairn-snap-" (btrfs, a hidden folder) or "cairn-snap-" (LV, ZFS names).
std::string snapshot_name(const std::string& prefix, const std::string& service, long pid,
                          long long time);
// True when `name` is a snapshot of `service` made by a process that is gone
// (no such pid, or the pid now belongs to a process started after the
// snapshot was made).
bool is_orphan(const std::string& name, const std::string& prefix, const std::string& service);

// Engine metadata: type volume, driver, source, snapshot (name), freeze,
// quiesced.
core::Result<archive::BackupResult> backup(repo::Repository& repo, const VolumeOptions& opt,
                                           archive::BackupOptions backup,
                                           archive::BackupProgress* progress);

}  // namespace cairn::engines::volume
