// A sqlite3 connection owned by RAII, with the few calls the SQLite engine
// needs; errors name the database file. One owner per connection
// (thread-compatible).
#pragma once

#include <sqlite3.h>

#include <memory>
#include <string>
#include <vector>

#include "core/status.h"

namespace cairn::engines::sqlite {

class Db {
 public:
  // Opens an existing database (never creates one unless `create`):
  // read-write, or read-only when the file or its folder is not writable.
  static core::Result<Db> open(const std::string& path, bool create = false);

  sqlite3* get() const { return db_.get(); }
  const std::string& path() const { return path_; }
  // Runs statements that return nothing of interest.
  core::Status exec(const std::string& sql);
  // The first column of every row.
  core::Result<std::vector<std::string>> column(const std::string& sql);
  // The first column of the first row.
  core::Result<std::string> text(const std::string& sql);
  core::Result<int64_t> integer(const std::string& sql);
  // A Status for return code `rc` of a call on this connection.
  core::Status error(int rc, const std::string& what) const;
  // Closes now; a close failure is reported (the destructor ignores it).
  core::Status close();

 private:
  struct Closer {
    void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
  };
  std::unique_ptr<sqlite3, Closer> db_;
  std::string path_;
};

}  // namespace cairn::engines::sqlite
