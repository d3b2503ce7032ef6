#include "engines/postgres/pg_conn.h"

#include <libpq-fe.h>

namespace cairn::engines::postgres {

void PgConn::Closer::operator()(pg_conn* c) const { PQfinish(c); }

PgConn::~PgConn() = default;

namespace {

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// Quotes a value for a key=value connection string.
std::string quote(const std::string& v) {
  std::string out = "'";
  for (char c : v) {
    if (c == '\'' || c == '\\') out += '\\';
    out += c;
  }
  return out + "'";
}

// Re-serialises a parsed DSN, dropping or replacing one keyword.
core::Result<std::string> rebuild(const std::string& dsn, const std::string& drop,
                                  const std::string& replace_key,
                                  const std::string& replace_value) {
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(dsn.c_str(), &err);
  if (opts == nullptr) {
    std::string msg = err ? trim(err) : "out of memory";
    PQfreemem(err);
    return core::invalid_argument("invalid PostgreSQL connection string: " + msg);
  }
  std::string out;
  bool replaced = false;
  for (PQconninfoOption* o = opts; o->keyword != nullptr; ++o) {
    if (o->val == nullptr || *o->val == '\0' || drop == o->keyword) continue;
    std::string v = o->val;
    if (replace_key == o->keyword) {
      v = replace_value;
      replaced = true;
    }
    out += std::string(out.empty() ? "" : " ") + o->keyword + "=" + quote(v);
  }
  PQconninfoFree(opts);
  if (!replace_key.empty() && !replaced)
    out += std::string(out.empty() ? "" : " ") + replace_key + "=" + quote(replace_value);
  return out;
}

}  // namespace

std::string quote_literal(const std::string& v) {
  std::string out = "'";
  for (char c : v) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}

std::string redact_dsn(const std::string& dsn) {
  auto r = rebuild(dsn, "password", "", "");
  return r.ok() ? *r : "<unparsable connection string>";
}

core::Result<std::string> with_dbname(const std::string& dsn, const std::string& dbname) {
  return rebuild(dsn, "", "dbname", dbname);
}

core::Result<PgConn> PgConn::connect(const std::string& dsn) {
  // Fail fast on a bad string before libpq tries to connect with it.
  TRY(rebuild(dsn, "", "", "").status());
  pg_conn* c = PQconnectdb(dsn.c_str());
  if (c == nullptr) return core::io_error("out of memory connecting to PostgreSQL");
  if (PQstatus(c) != CONNECTION_OK) {
    std::string msg = trim(PQerrorMessage(c));
    PQfinish(c);
    core::Code code = msg.find("password authentication failed") != std::string::npos ||
                              msg.find("no password supplied") != std::string::npos
                          ? core::Code::kPermissionDenied
                          : core::Code::kIOError;
    return core::Status(code, "cannot connect to PostgreSQL (" + redact_dsn(dsn) + "): " + msg);
  }
  return PgConn(c);
}

core::Result<std::vector<std::vector<std::string>>> PgConn::query(const std::string& sql) {
  PGresult* r = PQexec(conn_.get(), sql.c_str());
  std::unique_ptr<PGresult, decltype(&PQclear)> guard(r, &PQclear);
  auto st = PQresultStatus(r);
  if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK)
    return core::io_error("PostgreSQL query '" + sql +
                          "' failed: " + trim(PQerrorMessage(conn_.get())));
  std::vector<std::vector<std::string>> rows;
  for (int i = 0; i < PQntuples(r); ++i) {
    std::vector<std::string> row;
    for (int j = 0; j < PQnfields(r); ++j) row.emplace_back(PQgetvalue(r, i, j));
    rows.push_back(std::move(row));
  }
  return rows;
}

core::Result<std::string> PgConn::value(const std::string& sql) {
  ASSIGN_OR_RETURN(auto rows, query(sql));
  if (rows.empty() || rows[0].empty())
    return core::io_error("PostgreSQL query '" + sql + "' returned no rows");
  return rows[0][0];
}

int PgConn::server_version_num() const { return PQserverVersion(conn_.get()); }

}  // namespace cairn::engines::postgres
