#include "engines/sqlite/db.h"

#include <fmt/format.h>

namespace cairn::engines::sqlite {

namespace {

// A prepared statement owned by RAII.
struct Stmt {
  sqlite3_stmt* s = nullptr;
  ~Stmt() { sqlite3_finalize(s); }
};

}  // namespace

core::Result<Db> Db::open(const std::string& path, bool create) {
  Db db;
  db.path_ = path;
  sqlite3* raw = nullptr;
  // READWRITE falls back to read-only by itself when the file is write-protected.
  int flags = SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0);
  int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
  db.db_.reset(raw);
  if (rc != SQLITE_OK) return db.error(rc, "cannot open");
  sqlite3_extended_result_codes(raw, 1);
  // Wait for a writer's lock rather than fail at once (rollback-journal
  // databases lock readers out while a transaction commits).
  sqlite3_busy_timeout(raw, 10000);
  return db;
}

core::Status Db::error(int rc, const std::string& what) const {
  const char* msg = db_ ? sqlite3_errmsg(db_.get()) : sqlite3_errstr(rc);
  std::string m =
      fmt::format("SQLite database {}: {}: {}", path_, what, msg ? msg : sqlite3_errstr(rc));
  switch (rc & 0xff) {
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
      return core::corruption(m);
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return core::Status(core::Code::kTransient, m);
    case SQLITE_FULL:
      return core::Status(core::Code::kNoSpace, m);
    case SQLITE_PERM:
    case SQLITE_AUTH:
      return core::Status(core::Code::kPermissionDenied, m);
    default:
      return core::io_error(m);
  }
}

core::Status Db::exec(const std::string& sql) {
  int rc = sqlite3_exec(db_.get(), sql.c_str(), nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return error(rc, sql);
  return {};
}

core::Result<std::vector<std::string>> Db::column(const std::string& sql) {
  Stmt st;
  int rc = sqlite3_prepare_v2(db_.get(), sql.c_str(), -1, &st.s, nullptr);
  if (rc != SQLITE_OK) return error(rc, sql);
  std::vector<std::string> out;
  while ((rc = sqlite3_step(st.s)) == SQLITE_ROW) {
    const unsigned char* t = sqlite3_column_text(st.s, 0);
    out.emplace_back(t ? reinterpret_cast<const char*>(t) : "");
  }
  if (rc != SQLITE_DONE) return error(rc, sql);
  return out;
}

core::Result<std::string> Db::text(const std::string& sql) {
  ASSIGN_OR_RETURN(auto rows, column(sql));
  if (rows.empty())
    return core::io_error(fmt::format("SQLite database {}: {} returned no row", path_, sql));
  return rows[0];
}

core::Result<int64_t> Db::integer(const std::string& sql) {
  ASSIGN_OR_RETURN(std::string t, text(sql));
  try {
    return static_cast<int64_t>(std::stoll(t));
  } catch (const std::exception&) {
    return core::io_error(fmt::format("SQLite database {}: {} returned \"{}\"", path_, sql, t));
  }
}

core::Status Db::close() {
  if (!db_) return {};
  int rc = sqlite3_close(db_.get());
  if (rc != SQLITE_OK) return error(rc, "close");
  (void)db_.release();
  return {};
}

}  // namespace cairn::engines::sqlite
