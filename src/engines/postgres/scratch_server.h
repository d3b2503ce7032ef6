// ScratchServer: a throw-away PostgreSQL server for restore drills, on a data
// directory cairn restored (or initialised). It listens only on a Unix socket
// in a private folder (no TCP), archives nothing (so a drill never writes WAL
// or a new timeline into the production archive), trusts local connections,
// and is stopped with an immediate shutdown when the object goes away.
//
// When cairn runs as root the server runs as the data directory's owner
// (PostgreSQL refuses root). Not thread-safe.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "core/process.h"
#include "core/status.h"

namespace cairn::engines::postgres {

struct ScratchServerOptions {
  std::string data_dir;    // a cluster: PG_VERSION inside
  std::string socket_dir;  // private folder: socket, pg_hba.conf
  std::string bindir;      // "" = /usr/lib/postgresql/<PG_VERSION>/bin
};

class ScratchServer {
 public:
  // Starts the postmaster; recovery (recovery.signal) begins at once.
  static core::Result<std::unique_ptr<ScratchServer>> start(const ScratchServerOptions& options);
  ~ScratchServer();
  ScratchServer(const ScratchServer&) = delete;
  ScratchServer& operator=(const ScratchServer&) = delete;

  // Until the server accepts connections: recovery has ended and the server
  // was promoted. Fails with the server's last log lines when it exits first
  // (a recovery target that the archive cannot reach, a damaged cluster).
  core::Status wait_ready(std::chrono::seconds timeout);
  // Fast shutdown, waiting until it is down (a clean cluster for pg_checksums).
  core::Status stop();

  // A libpq connection string for `dbname` as the bootstrap superuser.
  std::string dsn(const std::string& dbname) const;
  // PGHOST/PGPORT/PGUSER/PGDATABASE for a user's check command.
  std::vector<std::string> client_env(const std::string& dbname) const;
  const std::string& bindir() const { return bindir_; }
  int major_version() const { return major_; }
  std::string log_tail();

 private:
  ScratchServer() = default;
  std::shared_ptr<core::Subprocess> proc_;
  std::string data_dir_, socket_dir_, bindir_, user_;
  int major_ = 0;
  int port_ = 5432;  // names the socket file only: no TCP listener
};

// The uid/gid a PostgreSQL process should run as for `data_dir` when we are
// root: the owner of PG_VERSION, else the "postgres" user. {-1,-1} when not root.
std::pair<int, int> server_identity(const std::string& data_dir);

// Creates an empty cluster in `data_dir` (initdb, trust auth) for a logical
// restore; `bindir` "" = the newest installed major version.
core::Status init_scratch_cluster(const std::string& data_dir, const std::string& bindir);

// Stops a postmaster that a killed drill left running on `data_dir`
// (postmaster.pid names it): immediate shutdown, then SIGKILL.
void stop_stale_server(const std::string& data_dir);

}  // namespace cairn::engines::postgres
