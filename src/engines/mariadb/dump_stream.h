// Internal to the MariaDB engine: what backup.cc and parallel_dump.cc share
// about mariadb-dump streams. Not thread-safe (one DumpWatch per stream).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/process.h"
#include "engines/mariadb/mariadb.h"

namespace cairn::engines::mariadb {

// Watches one mariadb-dump stream as it passes: the binlog coordinates of
// its consistent point (the CHANGE MASTER comment, written right after the
// dump opened its snapshot and before any data) and its last bytes, which
// must hold "-- Dump completed" (a dump cut short lacks it).
class DumpWatch {
 public:
  // Returns true when this call's bytes completed the CHANGE MASTER comment.
  bool observe(const uint8_t* data, size_t n);
  // Seen the comment, or gave up looking (it comes within the first 64 KiB).
  bool head_done() const { return head_done_; }
  const std::optional<BinlogPosition>& position() const { return position_; }
  // An error naming `tool` unless the stream ended with "-- Dump completed".
  core::Status check_complete(const std::string& tool) const;
  // Waits for the dump process that fed this watch: it must exit 0, have
  // written something, and end with its completion line.
  core::Status finish(core::Subprocess& dump) const;

 private:
  static constexpr size_t kHeadLimit = 64 << 10;
  std::string head_, tail_;
  bool head_done_ = false;
  std::optional<BinlogPosition> position_;
};

// mariadb-dump's options common to every logical backup: one transaction
// per stream, routines/triggers/events, binary-safe output, and with the
// binlog the CHANGE MASTER comment (--master-data=2).
std::vector<std::string> dump_argv(const ClientOptions& opts, bool log_bin);
// mariadb-dump of the accounts and grants (users.sql).
std::vector<std::string> users_dump_argv(const ClientOptions& opts);

struct ServerFacts {
  std::string version;
  bool log_bin = false;
  std::string log_bin_basename;
};
core::Result<ServerFacts> server_facts(const Connection& conn);

// The entries of a parallel logical backup of `databases`
// (LogicalOptions::parallel streams, see mariadb.h), with their processes
// running and held at one consistent point (parallel_dump.cc).
core::Result<archive::EntrySource> parallel_dump_source(const LogicalOptions& opt,
                                                        const ServerFacts& facts,
                                                        const std::vector<std::string>& databases,
                                                        std::shared_ptr<ClientOptions> opts);

}  // namespace cairn::engines::mariadb
