// The exec engine: any command whose standard output is the backup
// (`mongodump --archive`, `etcdctl snapshot save -`, a vendor's dump tool).
// The output is streamed into one file of the snapshot, never staged on disk.
// A command that fails, is killed, times out or prints nothing writes no
// snapshot. Thread-compatible.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "archive/archiver.h"
#include "core/process.h"
#include "core/status.h"
#include "repo/repository.h"

namespace cairn::engines::exec {

struct ExecOptions {
  std::vector<std::string> command;  // argv (never through a shell unless argv says so)
  std::string filename = "stdout";   // name of the stream in the snapshot
  std::vector<std::string> env;      // extra "NAME=value" entries, already expanded
  // 0: none. On expiry the command's process group gets SIGTERM, then SIGKILL
  // after a 10 s grace.
  std::chrono::seconds timeout{0};
  // Copy the command's stderr to ours as it comes; otherwise only its tail
  // appears, in the error message of a failed run.
  bool forward_stderr = true;
};

// Environment variables that unlock repositories (CAIRN_PASSWORD*, key
// files, AWS keys). User commands (exec engines, hooks) run without them;
// what a command needs is passed explicitly through engine.env.
const std::vector<std::string>& repository_secret_env();

// A started command with its timeout watchdog, for engines that look at the
// stream on its way (redis strips the replication EOF mark).
struct RunningCommand {
  std::shared_ptr<core::Subprocess> proc;
  std::shared_ptr<core::Watchdog> dog;
  std::chrono::seconds timeout{0};
  // Reaps the command: ok only for exit status 0 within the timeout and some
  // output; the error says why and that no snapshot is written.
  core::Status finish() const;
};
core::Result<RunningCommand> start_command(const ExecOptions& opt);

// The command's stdout as a stream whose finish() is RunningCommand::finish().
core::Result<archive::StreamSource> command_source(const ExecOptions& opt);

core::Result<archive::BackupResult> backup(repo::Repository& repo, const ExecOptions& opt,
                                           const archive::BackupOptions& backup,
                                           archive::BackupProgress* progress);

}  // namespace cairn::engines::exec
