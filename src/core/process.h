// Subprocess: runs a program (pg_dump, pg_basebackup, a user's dump command)
// with its stdout on a pipe that the caller streams, and the tail of its
// stderr kept for the error message. Never through a shell.
//
// Not thread-safe; one owner reads and waits. The destructor kills (SIGKILL)
// and reaps a child that is still running, so an error path never leaves a
// dump running in the background.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/status.h"

namespace cairn::core {

struct ProcessOptions {
  std::vector<std::string> env;  // extra "NAME=value" entries
  // Variables of ours the child must not see (our repository secrets when
  // running a user's command).
  std::vector<std::string> unset_env;
  bool capture_stdout = true;  // false: the child inherits our stdout (or stdout_fd)
  int stdout_fd = -1;          // with capture_stdout false: the child's stdout instead of ours
  int stdin_fd = -1;           // -1: /dev/null; else the child's stdin
  // Copy the child's stderr to ours as it comes (then wait()'s error does not
  // repeat it); otherwise its tail goes into wait()'s error message.
  bool forward_stderr = false;
  // Start the child in its own process group, so signal() reaches what it
  // spawns too (a `sh -c` pipeline, a dump tool's helpers).
  bool new_process_group = false;
  // >= 0: the child runs as this user and group (no supplementary groups).
  // For servers that refuse root (PostgreSQL) started by cairn running as root.
  int uid = -1, gid = -1;
};

class Subprocess {
 public:
  static Result<std::unique_ptr<Subprocess>> start(const std::vector<std::string>& argv,
                                                   const ProcessOptions& options = {});
  ~Subprocess();
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  // Reads the child's stdout; 0 at end of stream.
  Result<size_t> read(uint8_t* buf, size_t cap);
  int stdout_fd() const { return out_fd_; }
  // Closes our end of stdout and reaps the child. Ok only for exit status 0;
  // otherwise an error naming the program, its status and its last stderr lines.
  Status wait();
  // False once the child has exited (it stays unreaped until wait()).
  bool running();
  // After wait(): the exit status, or -1 when a signal ended the child.
  int exit_code() const { return exit_code_; }
  // Bytes read from stdout so far.
  uint64_t bytes_read() const { return bytes_read_; }
  const std::string& name() const { return name_; }
  std::string stderr_tail();
  // Sends `sig` to the child (its group with new_process_group). Safe from
  // another thread (a timeout watchdog) at any time; a no-op once reaped.
  void signal(int sig);

 private:
  Subprocess() = default;
  std::string name_;
  pid_t pid_ = -1;
  int out_fd_ = -1;
  int err_fd_ = -1;
  uint64_t bytes_read_ = 0;
  int exit_code_ = -1;
  bool forward_stderr_ = false;
  bool group_ = false;
  std::mutex sig_mu_;
  pid_t sig_pid_ = -1;  // guarded by sig_mu_; -1 once the child is reaped
  std::thread err_reader_;
  std::mutex err_mu_;
  std::string err_tail_;
};

// Stops a child that runs past its timeout (or is cancelled): SIGTERM, then
// SIGKILL after a grace period. Disarmed when the child ends first.
// Thread-safe.
class Watchdog {
 public:
  // timeout 0: only cancel() fires it.
  Watchdog(std::shared_ptr<Subprocess> proc, std::chrono::seconds timeout,
           std::chrono::seconds kill_grace = std::chrono::seconds(10));
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;
  // Fires now (shutdown). Returns at once.
  void cancel();
  // Stops watching; call after the child was reaped.
  void disarm();
  bool fired();      // the timeout or cancel() signalled the child
  bool timed_out();  // the timeout did (not cancel())

 private:
  std::shared_ptr<Subprocess> proc_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false, fired_ = false, cancelled_ = false;
  std::thread thread_;
};

// Makes SIGTERM, SIGINT and SIGHUP reach the process groups of running
// children started with new_process_group before this process dies of the
// signal, so `kill <cairn>` never leaves a dump tool running on its own.
// Call once, early in main().
void forward_termination_signals();

// Runs `cleanup` when a termination signal arrives, before the process dies
// of it: for what an interrupted command must not leave behind (a drill's
// scratch server and folder). The signal is handled on a watcher thread, so
// `cleanup` may do anything; the main thread keeps running until it is done.
// One registration at a time; forward_termination_signals() must be active.
class CleanupOnTermination {
 public:
  explicit CleanupOnTermination(std::function<void()> cleanup);
  ~CleanupOnTermination();
  CleanupOnTermination(const CleanupOnTermination&) = delete;
  CleanupOnTermination& operator=(const CleanupOnTermination&) = delete;
};

// Runs argv to completion and returns its stdout (meant for small outputs
// such as `pg_config --bindir`).
Result<std::string> run_and_capture(const std::vector<std::string>& argv,
                                    const ProcessOptions& options = {});

}  // namespace cairn::core
