// Redis engine: the server's RDB snapshot, taken over the replication
// protocol with `redis-cli --rdb -` and streamed into the repository as one
// file, /dump.rdb (never staged on disk). Restore writes dump.rdb into a
// directory for a stopped instance (or a new one) and checks it with
// redis-check-rdb. docs/engines/redis.md is the user guide.
//
// A failed, killed or timed-out redis-cli, an empty stream or one that is not
// an RDB file never becomes a snapshot. Functions are thread-compatible;
// ScratchRedis owns one child process (not thread-safe).
#pragma once

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "archive/archiver.h"
#include "core/process.h"
#include "core/status.h"
#include "repo/repository.h"

namespace cairn::engines::redis {

// How redis-cli reaches the server. The password travels in redis-cli's
// environment (REDISCLI_AUTH), never on its command line.
struct Connection {
  std::string host = "127.0.0.1";
  int port = 6379;
  std::string socket;  // a unix socket; wins over host/port
  std::string user;    // ACL user (AUTH user password); "" = default user
  std::string password;
  std::string cli = "redis-cli";
  // Where it is, for messages: "127.0.0.1:6379" or the socket path.
  std::string where() const;
};

// Reads a password file: its first line, without the line break.
core::Result<std::string> read_password_file(const std::string& path);

// The fields of INFO cairn records: redis_version, role, keys, expires,
// used_memory, aof_enabled (and the server's `dir`/`dbfilename` are not
// included: CONFIG may be disabled). kIOError naming the server when it
// cannot be reached, refuses the credentials or does not answer within
// `timeout` (redis-cli is then stopped).
inline constexpr std::chrono::seconds kInfoTimeout{30};
core::Result<nlohmann::json> server_info(const Connection& conn,
                                         std::chrono::seconds timeout = kInfoTimeout);

struct BackupOptions {
  Connection conn;
  std::chrono::seconds timeout{0};  // 0: none; redis-cli gets SIGTERM, then SIGKILL
};

// Snapshot layout: /dump.rdb. Engine metadata: type, file and the INFO
// fields above (as INFO said just before the transfer).
inline constexpr const char* kRdbName = "dump.rdb";
core::Result<archive::BackupResult> backup(repo::Repository& repo, const BackupOptions& opt,
                                           const archive::BackupOptions& backup,
                                           archive::BackupProgress* progress);

// Runs redis-check-rdb on `path`: its "[info]" lines (keys read, expires) on
// success; kCorruption with the tool's error report otherwise.
core::Result<std::string> check_rdb(const std::string& path);

struct RestoreOptions {
  std::string target_dir;  // created if missing
  bool force = false;      // replace an existing dump.rdb
};
struct RestoreResult {
  std::string path;  // target_dir/dump.rdb
  uint64_t bytes = 0;
  std::string check;         // check_rdb's summary
  bool aof_present = false;  // target_dir holds AOF files that Redis would load instead
};
// Writes the snapshot's dump.rdb to a temporary name in target_dir, checks it
// with redis-check-rdb and only then renames it to dump.rdb (owned by the
// directory's owner when run as root). A failed check leaves nothing behind.
core::Result<RestoreResult> restore(repo::Repository& repo, const repo::SnapshotRef& snapshot,
                                    const RestoreOptions& opt);

// A temporary redis-server on a free 127.0.0.1 port serving the dump.rdb of
// `dir` (restore drills, tests). It never writes: no RDB saves, no AOF.
// Stopped (SIGTERM, then SIGKILL) when destroyed.
class ScratchRedis {
 public:
  struct Options {
    std::string dir;     // holds dump.rdb
    std::string run_as;  // "": this user; else via runuser -u (root only)
    std::string server = "redis-server";
    std::chrono::seconds start_timeout{60};  // loading a big RDB takes a while
  };
  // Starts the server and waits until it answers PING (the dataset is loaded).
  static core::Result<std::unique_ptr<ScratchRedis>> start(const Options& options);
  ~ScratchRedis();
  ScratchRedis(const ScratchRedis&) = delete;
  ScratchRedis& operator=(const ScratchRedis&) = delete;

  int port() const { return port_; }
  Connection connection() const;
  // Runs one redis-cli command against it and returns its output ("DBSIZE").
  core::Result<std::string> command(const std::vector<std::string>& args) const;
  // The tail of the server's log (for messages).
  std::string log_tail() const;
  // Stops the server now; the destructor then does nothing.
  core::Status stop();

 private:
  ScratchRedis() = default;
  struct Log;
  std::shared_ptr<core::Subprocess> proc_;
  std::shared_ptr<Log> log_;
  int port_ = 0;
};

}  // namespace cairn::engines::redis
