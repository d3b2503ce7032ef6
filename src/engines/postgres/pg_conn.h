// PgConn: one libpq connection (RAII) for the few queries the engine needs:
// server version, system identifier, database list, WAL position. Errors
// carry libpq's message and the connection string without its password.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/status.h"

struct pg_conn;

namespace cairn::engines::postgres {

class PgConn {
 public:
  static core::Result<PgConn> connect(const std::string& dsn);
  PgConn(PgConn&&) noexcept = default;
  PgConn& operator=(PgConn&&) noexcept = default;
  ~PgConn();

  // Rows of text values (NULL as ""); kIOError naming the query on failure.
  core::Result<std::vector<std::vector<std::string>>> query(const std::string& sql);
  // The first column of the first row.
  core::Result<std::string> value(const std::string& sql);
  int server_version_num() const;  // e.g. 150018

 private:
  struct Closer {
    void operator()(pg_conn* c) const;
  };
  explicit PgConn(pg_conn* c) : conn_(c) {}
  std::unique_ptr<pg_conn, Closer> conn_;
};

// 'v' with single quotes doubled: an SQL string literal, and a value in
// postgresql.conf syntax.
std::string quote_literal(const std::string& v);

// The DSN (key=value or URI) with its password removed, for messages.
std::string redact_dsn(const std::string& dsn);
// The DSN with dbname replaced (as key=value pairs).
core::Result<std::string> with_dbname(const std::string& dsn, const std::string& dbname);

}  // namespace cairn::engines::postgres
