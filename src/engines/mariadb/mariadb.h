// MariaDB engine: logical dumps (mariadb-dump --single-transaction, one
// stream per snapshot, binlog coordinates recorded), physical backups
// (mariadb-backup --stream=xbstream, stored as one file), binlog archiving
// into the repository's log archive, and point-in-time restores that load a
// base backup into a server and replay archived binlogs up to a time or a
// binlog position. ScratchMariadb runs a throwaway server for tests and
// restore drills.
//
// The client tools (mariadb, mariadb-dump, mariadb-binlog, mariadb-backup,
// mbstream) come from PATH. Credentials reach them through a private
// --defaults-extra-file, never through argv. A failed or killed dump never
// becomes a snapshot. docs/engines/mariadb.md is the user guide.
// Functions are thread-compatible; ScratchMariadb is not thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "archive/archiver.h"
#include "core/process.h"
#include "core/status.h"
#include "policy/catalog.h"
#include "repo/repository.h"

namespace cairn::engines::mariadb {

// How to reach a server. A socket wins over host/port. `password` is the
// secret itself (already read from a file or the environment).
struct Connection {
  std::string socket, host;
  int port = 0;
  std::string user;
  std::string password;
  // "socket /run/mysqld/mysqld.sock" or "127.0.0.1:3306" (for messages).
  std::string describe() const;
};

// The connection a service's policy describes: ${VAR} references expanded,
// the password read from password_file. With neither socket nor host, the
// Debian default socket /run/mysqld/mysqld.sock.
core::Result<Connection> connection_for(const policy::EngineSpec& engine);

// A private client options file ([client] section) that every tool reads
// with --defaults-extra-file, so no password is ever on a command line.
// Removed (with its private folder) on destruction.
class ClientOptions {
 public:
  static core::Result<std::unique_ptr<ClientOptions>> create(const Connection& conn);
  ~ClientOptions();
  ClientOptions(const ClientOptions&) = delete;
  ClientOptions& operator=(const ClientOptions&) = delete;
  // {tool, "--defaults-extra-file=..."}: the option must come first.
  std::vector<std::string> argv(const std::string& tool) const;
  const std::string& path() const { return path_; }

 private:
  ClientOptions() = default;
  std::string dir_, path_;
};

// Runs SQL through the mariadb client and returns the rows (tab-separated
// columns, no header). Errors name the server.
core::Result<std::vector<std::vector<std::string>>> query(const Connection& conn,
                                                          const std::string& sql);

// ---- binlog coordinates -------------------------------------------------

struct BinlogPosition {
  std::string file;  // "binlog.000042"
  uint64_t position = 0;
  bool operator==(const BinlogPosition&) const = default;
};
// "binlog.000042:1234" (the --to-position syntax).
std::optional<BinlogPosition> parse_position(const std::string& text);
// The numeric suffix of a binlog file name ("binlog.000042" -> 42), and the
// part before it ("binlog").
std::optional<uint64_t> binlog_sequence(const std::string& file);
std::string binlog_stem(const std::string& file);
// Orders positions: file sequence, then offset. Only meaningful for files of
// one stem.
bool position_before(const BinlogPosition& a, const BinlogPosition& b);
// Finds "CHANGE MASTER TO MASTER_LOG_FILE='f', MASTER_LOG_POS=p" (the comment
// that mariadb-dump --master-data=2 writes near the top of a dump).
std::optional<BinlogPosition> parse_change_master(const std::string& text);
// Finds "MySQL binlog position: filename 'f', position 'p'" (mariadb-backup's
// log) or the "f<TAB>p[<TAB>gtid]" line of xtrabackup_binlog_info.
std::optional<BinlogPosition> parse_backup_binlog_info(const std::string& text);

// What scanning a binlog file's event headers tells (format v4).
struct BinlogScan {
  uint64_t events = 0;
  uint32_t first_time = 0, last_time = 0;  // event timestamps (unix seconds)
  uint64_t end_position = 0;               // where the last complete event ends
  bool rotated = false;                    // ends with a Rotate event
  std::string next_file;                   // the Rotate event's next file
  bool stopped = false;                    // ends with a Stop event (shutdown)
  bool encrypted = false;                  // Start_encryption: events after it are opaque
};
core::Result<BinlogScan> scan_binlog(const uint8_t* data, size_t size);
core::Result<BinlogScan> scan_binlog_file(const std::string& path);

// ---- backups ------------------------------------------------------------

struct LogicalOptions {
  Connection conn;
  std::vector<std::string> databases;  // empty: every database except the system schemas
  bool users = true;                   // users.sql: CREATE USER / GRANT statements
  bool require_binlog = false;         // fail when the server does not write a binlog
  // > 1: up to that many mariadb-dump streams over disjoint table sets
  // (balanced by size), all started at one consistent point: commits are
  // blocked (BACKUP STAGE BLOCK_COMMIT, needs RELOAD) until every stream has
  // opened its snapshot, and the backup fails unless all name the same
  // binlog position. Needs the binlog.
  size_t parallel = 1;
};
// Snapshot layout: /dump.sql (one consistent mariadb-dump stream of every
// selected database), /users.sql. Engine metadata: server_version,
// databases, binlog_file/binlog_position of the dump's consistent point and
// consistent_time (a time at or after that point).
// With `parallel`: /dump/tables-NN.sql (tables, their data and triggers),
// /dump/objects.sql (views, routines, events; loaded last), /users.sql;
// engine.layout = "parallel" and engine.streams lists the dump files.
core::Result<archive::BackupResult> logical_backup(repo::Repository& repo,
                                                   const LogicalOptions& opt,
                                                   const archive::BackupOptions& backup,
                                                   archive::BackupProgress* progress);

struct PhysicalOptions {
  Connection conn;
  bool require_binlog = false;
};
// Snapshot layout: /backup.xbstream (mariadb-backup --backup --stream=xbstream).
// Runs where the server's data directory is readable. Engine metadata as for
// logical backups (the binlog position from mariadb-backup's log).
core::Result<archive::BackupResult> physical_backup(repo::Repository& repo,
                                                    const PhysicalOptions& opt,
                                                    const archive::BackupOptions& backup,
                                                    archive::BackupProgress* progress);

// ---- binlog archiving ---------------------------------------------------

struct BinlogSyncOptions {
  Connection conn;
  bool flush = false;  // FLUSH BINARY LOGS first, so the current file closes too
  // Folder of the binlog files when it differs from @@log_bin_basename's
  // (e.g. a mounted copy); "" = that folder if readable, else fetched from
  // the server (mariadb-binlog --read-from-remote-server --raw).
  std::string binlog_dir;
  bool remote = false;  // always fetch from the server
};
struct BinlogSyncReport {
  std::vector<std::string> pushed;  // archived now, in order
  size_t already = 0;               // closed files archived before
  std::string current;              // the open binlog (not archived)
  std::string newest_archived;
  std::vector<std::string> missing;  // gaps in the archive (an error)
};
// Archives every closed binlog not yet in the archive, oldest first; stops at
// the first failure so the archive never has a hole it did not report.
// kAlreadyExists when a file's name is archived with other content.
core::Result<BinlogSyncReport> sync_binlogs(repo::Repository& repo, const std::string& service,
                                            const BinlogSyncOptions& opt);
// File names absent between the oldest and newest archived binlog.
std::vector<std::string> find_gaps(const std::vector<std::string>& names);

// ---- restore ------------------------------------------------------------

struct RecoveryTarget {
  enum class Kind { kLatest, kTime, kPosition, kBaseOnly };
  Kind kind = Kind::kLatest;
  int64_t time = 0;  // kTime: unix seconds; transactions with binlog time <= time are applied
  BinlogPosition position;  // kPosition: replay stops before the event at this offset
  std::string text;         // as the user gave it (messages)
};
// "2026-11-25T10:31:00Z" -> kTime (fractions are cut: binlog times have seconds).
core::Result<RecoveryTarget> parse_time_target(const std::string& text);

// The newest base backup of `service` (mode "logical" or "physical", "" =
// either) whose consistent point precedes the target. kNotFound explains
// what exists.
core::Result<repo::SnapshotRef> choose_base(const std::vector<repo::SnapshotRef>& snapshots,
                                            const std::string& service, const std::string& mode,
                                            const RecoveryTarget& target);

// Loads a logical snapshot's dump.sql (and users.sql when `users`) into the
// server behind `target` through the mariadb client, streamed. A parallel
// backup's table streams load concurrently, then its objects.sql.
core::Status restore_logical(repo::Repository& repo, const repo::SnapshotRef& snapshot,
                             const Connection& target, bool users);

// Extracts a physical snapshot into `dir` (mbstream -x) and prepares it
// (mariadb-backup --prepare): `dir` is then a data directory, owned by the
// mysql user when run as root. Returns the base's binlog position.
core::Result<std::optional<BinlogPosition>> restore_physical(repo::Repository& repo,
                                                             const repo::SnapshotRef& snapshot,
                                                             const std::string& dir);

struct ReplayReport {
  std::vector<std::string> files;  // binlog files replayed (whole or in part)
  BinlogPosition from;
  std::string until;  // what the replay stopped at ("end of archive", a time, a position)
};
// Replays archived binlogs of `service` from `from` up to `target` into the
// server behind `conn` (mariadb-binlog | mariadb). Checks first that the
// archive has every file from `from` on and reaches the target. `database`:
// only that database's events (a base of one database).
core::Result<ReplayReport> replay_binlogs(repo::Repository& repo, const std::string& service,
                                          const BinlogPosition& from, const RecoveryTarget& target,
                                          const Connection& conn, const std::string& database = "");

struct PointInTimeReport {
  repo::SnapshotRef base;
  std::optional<ReplayReport> replay;
};
// restore_logical of the base chosen for `target` (or `snapshot` when given),
// then replay_binlogs from its position. The one call a restore drill needs.
core::Result<PointInTimeReport> restore_point_in_time(repo::Repository& repo,
                                                      const std::string& service,
                                                      const RecoveryTarget& target,
                                                      const Connection& conn, bool users = false,
                                                      const std::string& snapshot = "");

// A throwaway MariaDB server: mariadb-install-db + mariadbd in a private temp
// folder (or on a given data directory), on a free TCP port on 127.0.0.1 and a
// socket in that folder, as the mysql user when run as root. Stopped (and
// its folder removed) on destruction.
class ScratchMariadb {
 public:
  struct Options {
    std::string datadir;   // existing data directory to run on ("" = a new one)
    bool log_bin = false;  // --log-bin (and a server id)
    std::string parent_dir = "/tmp";
    std::vector<std::string> extra_args;  // more mariadbd options
  };
  static core::Result<std::unique_ptr<ScratchMariadb>> start(const Options& options);
  ~ScratchMariadb();
  ScratchMariadb(const ScratchMariadb&) = delete;
  ScratchMariadb& operator=(const ScratchMariadb&) = delete;
  // root over the socket (unix_socket authentication).
  Connection connection() const;
  const std::string& datadir() const { return datadir_; }
  const std::string& socket() const { return socket_; }
  int port() const { return port_; }
  // Shuts the server down (SIGTERM, SIGKILL after 60 s).
  core::Status stop();

 private:
  ScratchMariadb() = default;
  std::string dir_, datadir_, socket_;
  int port_ = 0;
  std::shared_ptr<core::Subprocess> proc_;
};

}  // namespace cairn::engines::mariadb
