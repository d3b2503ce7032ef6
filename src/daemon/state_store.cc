#include "daemon/state_store.h"

#include <sqlite3.h>

#include <mutex>
#include <thread>
#include <utility>

namespace cairn::daemon {

namespace {

// Each entry moves the schema from version i to i + 1. Never edit a shipped
// entry: append a new one.
const char* const kMigrations[] = {
    R"sql(
CREATE TABLE runs (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  service TEXT NOT NULL,
  kind TEXT NOT NULL CHECK (kind IN ('backup', 'prune', 'drill', 'forget')),
  started_at INTEGER NOT NULL,
  finished_at INTEGER,
  result TEXT NOT NULL CHECK (result IN ('success', 'failure', 'cancelled', 'running')),
  attempt INTEGER NOT NULL DEFAULT 1,
  bytes_added INTEGER NOT NULL DEFAULT 0,
  total_size INTEGER NOT NULL DEFAULT 0,
  duration_s REAL NOT NULL DEFAULT 0,
  snapshot_id TEXT NOT NULL DEFAULT '',
  error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX runs_by_service ON runs (service, kind, started_at);
CREATE INDEX runs_by_result ON runs (result);
CREATE TABLE service_state (
  service TEXT PRIMARY KEY,
  last_success_at INTEGER,
  last_attempt_at INTEGER,
  next_run_at INTEGER,
  newest_restorable_point INTEGER
);
CREATE TABLE alerts (
  key TEXT PRIMARY KEY,
  service TEXT NOT NULL,
  name TEXT NOT NULL,
  severity TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('firing', 'resolved')),
  since INTEGER NOT NULL,
  ends_at INTEGER,
  last_sent_at INTEGER,
  summary TEXT NOT NULL DEFAULT '',
  description TEXT NOT NULL DEFAULT '',
  owner TEXT NOT NULL DEFAULT '',
  tier TEXT NOT NULL DEFAULT '',
  pending TEXT NOT NULL DEFAULT ''
);
)sql",
    // 2: drill reports (JSON), one per drill run.
    R"sql(
CREATE TABLE drill_reports (
  run_id INTEGER PRIMARY KEY REFERENCES runs(id),
  service TEXT NOT NULL,
  passed INTEGER NOT NULL,
  report TEXT NOT NULL
);
CREATE INDEX drill_reports_service ON drill_reports (service, run_id);
)sql",
    // 3: API tokens of `cairn server` (only hashes of their secrets).
    R"sql(
CREATE TABLE tokens (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  role TEXT NOT NULL,
  services TEXT NOT NULL,
  secret_hash TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  created_by TEXT NOT NULL DEFAULT '',
  expires_at INTEGER,
  last_used_at INTEGER,
  revoked_at INTEGER
);
CREATE INDEX tokens_by_name ON tokens (name);
)sql",
};

constexpr std::chrono::milliseconds kBusyTimeout{5000};
constexpr int kLatestVersion = static_cast<int>(std::size(kMigrations));

struct DbDeleter {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
using DbPtr = std::unique_ptr<sqlite3, DbDeleter>;

int64_t to_epoch(Time t) { return t.time_since_epoch().count(); }
Time from_epoch(int64_t s) { return Time(std::chrono::seconds(s)); }

// Receiver names never contain '\n' (AlertManager validates them).
std::string join_lines(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) {
    if (!out.empty()) out += '\n';
    out += s;
  }
  return out;
}

std::vector<std::string> split_lines(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < s.size()) {
    size_t end = s.find('\n', start);
    if (end == std::string::npos) end = s.size();
    out.push_back(s.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

// A prepared statement; bind() indexes start at 1 like sqlite3_bind_*.
class Stmt {
 public:
  Stmt() = default;
  Stmt(Stmt&& o) noexcept : db_(o.db_), stmt_(std::exchange(o.stmt_, nullptr)), what_(o.what_) {}
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  ~Stmt() { sqlite3_finalize(stmt_); }

  static core::Result<Stmt> prepare(sqlite3* db, const std::string& what, const char* sql) {
    Stmt s;
    s.db_ = db;
    s.what_ = &what;
    if (sqlite3_prepare_v2(db, sql, -1, &s.stmt_, nullptr) != SQLITE_OK) {
      return core::io_error(what + ": preparing a statement: " + sqlite3_errmsg(db));
    }
    return s;
  }

  void bind(int i, int64_t v) { sqlite3_bind_int64(stmt_, i, v); }
  void bind(int i, double v) { sqlite3_bind_double(stmt_, i, v); }
  void bind(int i, const std::string& v) {
    sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  }
  void bind(int i, const char* v) { sqlite3_bind_text(stmt_, i, v, -1, SQLITE_TRANSIENT); }
  void bind(int i, std::optional<Time> t) {
    if (t) {
      sqlite3_bind_int64(stmt_, i, to_epoch(*t));
    } else {
      sqlite3_bind_null(stmt_, i);
    }
  }

  // true: a row is available; false: done.
  core::Result<bool> step() {
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return error(rc);
  }
  core::Status run() {
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_DONE || rc == SQLITE_ROW) return core::ok_status();
    return error(rc);
  }

  int64_t int64(int col) const { return sqlite3_column_int64(stmt_, col); }
  double real(int col) const { return sqlite3_column_double(stmt_, col); }
  std::string text(int col) const {
    const auto* p = sqlite3_column_text(stmt_, col);
    return p == nullptr ? std::string()
                        : std::string(reinterpret_cast<const char*>(p),
                                      static_cast<size_t>(sqlite3_column_bytes(stmt_, col)));
  }
  std::optional<Time> time(int col) const {
    if (sqlite3_column_type(stmt_, col) == SQLITE_NULL) return std::nullopt;
    return from_epoch(int64(col));
  }

 private:
  core::Status error(int rc) const {
    std::string msg = *what_ + ": " + sqlite3_errmsg(db_);
    if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) return {core::Code::kTransient, msg};
    if (rc == SQLITE_FULL) return {core::Code::kNoSpace, msg};
    if (rc == SQLITE_CORRUPT || rc == SQLITE_NOTADB) return core::corruption(msg);
    return core::io_error(msg);
  }

  sqlite3* db_ = nullptr;
  sqlite3_stmt* stmt_ = nullptr;
  const std::string* what_ = nullptr;
};

core::Status exec(sqlite3* db, const std::string& what, const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = what + ": " + (err != nullptr ? err : sqlite3_errmsg(db));
    sqlite3_free(err);
    return core::io_error(msg);
  }
  return core::ok_status();
}

// Runs fn() inside BEGIN IMMEDIATE ... COMMIT; rolls back when it fails.
template <typename Fn>
core::Status in_transaction(sqlite3* db, const std::string& what, Fn&& fn) {
  TRY(exec(db, what, "BEGIN IMMEDIATE"));
  core::Status st = fn();
  if (st.ok()) st = exec(db, what, "COMMIT");
  if (!st.ok()) (void)exec(db, what, "ROLLBACK");
  return st;
}

RunRecord read_run(const Stmt& s) {
  RunRecord r;
  r.id = s.int64(0);
  r.service = s.text(1);
  r.kind = parse_run_kind(s.text(2)).value_or(RunKind::kBackup);
  r.started_at = from_epoch(s.int64(3));
  r.finished_at = s.time(4);
  r.result = parse_run_result(s.text(5)).value_or(RunResult::kFailure);
  r.attempt = static_cast<int>(s.int64(6));
  r.bytes_added = static_cast<uint64_t>(s.int64(7));
  r.total_size = static_cast<uint64_t>(s.int64(8));
  r.duration_s = s.real(9);
  r.snapshot_id = s.text(10);
  r.error = s.text(11);
  return r;
}

AlertRecord read_alert(const Stmt& s) {
  AlertRecord a;
  a.key = s.text(0);
  a.service = s.text(1);
  a.name = s.text(2);
  a.severity = s.text(3);
  a.firing = s.text(4) == "firing";
  a.since = from_epoch(s.int64(5));
  a.ends_at = s.time(6);
  a.last_sent_at = s.time(7);
  a.summary = s.text(8);
  a.description = s.text(9);
  a.owner = s.text(10);
  a.tier = s.text(11);
  a.pending = split_lines(s.text(12));
  return a;
}

constexpr char kRunColumns[] =
    "SELECT id, service, kind, started_at, finished_at, result, attempt, bytes_added, "
    "total_size, duration_s, snapshot_id, error FROM runs ";
constexpr char kAlertColumns[] =
    "SELECT key, service, name, severity, state, since, ends_at, last_sent_at, summary, "
    "description, owner, tier, pending FROM alerts ";

}  // namespace

struct StateStore::Impl {
  std::string path;
  std::string what;  // "state database <path>" for messages
  DbPtr db;
  std::mutex mu;

  core::Result<Stmt> prepare(const char* sql) { return Stmt::prepare(db.get(), what, sql); }

  core::Result<int> schema_version() {
    ASSIGN_OR_RETURN(Stmt s, prepare("SELECT MAX(version) FROM schema_version"));
    ASSIGN_OR_RETURN(bool row, s.step());
    return row ? static_cast<int>(s.int64(0)) : 0;
  }

  // One transaction per step; the version is read inside it, so two
  // processes opening a new database at once do not both migrate.
  core::Status migrate() {
    TRY(exec(db.get(), what,
             "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"));
    for (bool done = false; !done;) {
      TRY(in_transaction(db.get(), what, [&]() -> core::Status {
        ASSIGN_OR_RETURN(int version, schema_version());
        if (version > kLatestVersion) {
          return core::unsupported(what + " has schema version " + std::to_string(version) +
                                   "; this cairn knows versions up to " +
                                   std::to_string(kLatestVersion));
        }
        if (version == kLatestVersion) {
          done = true;
          return core::ok_status();
        }
        TRY(exec(db.get(), what, kMigrations[version]));
        ASSIGN_OR_RETURN(Stmt s, prepare("INSERT INTO schema_version (version) VALUES (?)"));
        s.bind(1, static_cast<int64_t>(version + 1));
        return s.run();
      }));
    }
    return core::ok_status();
  }
};

const char* run_kind_name(RunKind kind) {
  switch (kind) {
    case RunKind::kBackup:
      return "backup";
    case RunKind::kPrune:
      return "prune";
    case RunKind::kDrill:
      return "drill";
    case RunKind::kForget:
      return "forget";
  }
  return "backup";
}

const char* run_result_name(RunResult result) {
  switch (result) {
    case RunResult::kSuccess:
      return "success";
    case RunResult::kFailure:
      return "failure";
    case RunResult::kCancelled:
      return "cancelled";
    case RunResult::kRunning:
      return "running";
  }
  return "failure";
}

std::optional<RunKind> parse_run_kind(std::string_view name) {
  for (RunKind k : {RunKind::kBackup, RunKind::kPrune, RunKind::kDrill, RunKind::kForget}) {
    if (name == run_kind_name(k)) return k;
  }
  return std::nullopt;
}

std::optional<RunResult> parse_run_result(std::string_view name) {
  for (RunResult r :
       {RunResult::kSuccess, RunResult::kFailure, RunResult::kCancelled, RunResult::kRunning}) {
    if (name == run_result_name(r)) return r;
  }
  return std::nullopt;
}

std::string alert_key(std::string_view name, std::string_view service) {
  std::string key(name);
  key += '/';
  key += service;
  return key;
}

StateStore::StateStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
StateStore::StateStore(StateStore&&) noexcept = default;
StateStore& StateStore::operator=(StateStore&&) noexcept = default;
StateStore::~StateStore() = default;

const std::string& StateStore::path() const { return impl_->path; }
int StateStore::latest_schema_version() { return kLatestVersion; }

core::Result<StateStore> StateStore::open(const std::string& path) {
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  impl->what = "state database " + path;
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
  impl->db.reset(raw);  // sqlite3_open_v2 hands out a handle even on failure
  if (rc != SQLITE_OK) {
    return core::io_error(impl->what + ": " +
                          (raw != nullptr ? sqlite3_errmsg(raw) : sqlite3_errstr(rc)));
  }
  sqlite3_busy_timeout(raw, static_cast<int>(kBusyTimeout.count()));
  // Switching to WAL does not call the busy handler (while another
  // connection opens the new file at the same moment it fails at once with
  // SQLITE_BUSY), so retry it here, within the same timeout.
  auto deadline = std::chrono::steady_clock::now() + kBusyTimeout;
  for (bool in_memory = path == ":memory:"; !in_memory;) {  // ":memory:": scratch state (alert test)
    ASSIGN_OR_RETURN(Stmt s, impl->prepare("PRAGMA journal_mode=WAL"));
    auto row = s.step();
    if (!row.ok() && row.status().code() == core::Code::kTransient &&
        std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      continue;
    }
    if (!row.ok()) return row.status();
    if (!*row || s.text(0) != "wal") {
      return core::io_error(impl->what + ": cannot switch to WAL journal mode");
    }
    break;
  }
  TRY(impl->migrate());
  return StateStore(std::move(impl));
}

core::Result<int64_t> StateStore::begin_run(const std::string& service, RunKind kind,
                                            Time started_at, int attempt) {
  std::lock_guard lock(impl_->mu);
  ASSIGN_OR_RETURN(Stmt s, impl_->prepare("INSERT INTO runs (service, kind, started_at, result, "
                                          "attempt) VALUES (?, ?, ?, 'running', ?)"));
  s.bind(1, service);
  s.bind(2, run_kind_name(kind));
  s.bind(3, to_epoch(started_at));
  s.bind(4, static_cast<int64_t>(attempt));
  TRY(s.run());
  return static_cast<int64_t>(sqlite3_last_insert_rowid(impl_->db.get()));
}

core::Status StateStore::finish_run(int64_t id, const RunOutcome& outcome) {
  if (outcome.result == RunResult::kRunning) {
    return core::invalid_argument("run " + std::to_string(id) + ": outcome cannot be 'running'");
  }
  std::lock_guard lock(impl_->mu);
  ASSIGN_OR_RETURN(Stmt s, impl_->prepare("UPDATE runs SET finished_at = ?, result = ?, "
                                          "bytes_added = ?, total_size = ?, duration_s = ?, "
                                          "snapshot_id = ?, error = ? WHERE id = ?"));
  s.bind(1, to_epoch(outcome.finished_at));
  s.bind(2, run_result_name(outcome.result));
  s.bind(3, static_cast<int64_t>(outcome.bytes_added));
  s.bind(4, static_cast<int64_t>(outcome.total_size));
  s.bind(5, outcome.duration_s);
  s.bind(6, outcome.snapshot_id);
  s.bind(7, outcome.error);
  s.bind(8, id);
  TRY(s.run());
  if (sqlite3_changes(impl_->db.get()) == 0) {
    return core::not_found(impl_->what + ": no run with id " + std::to_string(id));
  }
  return core::ok_status();
}

core::Result<std::vector<RunRecord>> StateStore::recent_runs(const std::string& service,
                                                             RunKind kind, int limit,
                                                             std::optional<RunResult> result) {
  std::lock_guard lock(impl_->mu);
  std::string sql = std::string(kRunColumns) + "WHERE service = ? AND kind = ? " +
                    (result ? "AND result = ? " : "") + "ORDER BY started_at DESC, id DESC LIMIT ?";
  ASSIGN_OR_RETURN(Stmt s, impl_->prepare(sql.c_str()));
  int i = 1;
  s.bind(i++, service);
  s.bind(i++, run_kind_name(kind));
  if (result) s.bind(i++, run_result_name(*result));
  s.bind(i++, static_cast<int64_t>(limit));
  std::vector<RunRecord> out;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, s.step());
    if (!row) break;
    out.push_back(read_run(s));
  }
  return out;
}

core::Result<std::map<RunResult, int64_t>> StateStore::run_counts(const std::string& service,
                                                                  RunKind kind) {
  std::lock_guard lock(impl_->mu);
  ASSIGN_OR_RETURN(Stmt s, impl_->prepare("SELECT result, COUNT(*) FROM runs WHERE service = ? "
                                          "AND kind = ? GROUP BY result"));
  s.bind(1, service);
  s.bind(2, run_kind_name(kind));
  std::map<RunResult, int64_t> out;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, s.step());
    if (!row) break;
    if (auto r = parse_run_result(s.text(0))) out[*r] = s.int64(1);
  }
  return out;
}

core::Status StateStore::mark_interrupted_runs(Time now) {
  std::lock_guard lock(impl_->mu);
  ASSIGN_OR_RETURN(Stmt s, impl_->prepare("UPDATE runs SET result = 'failure', finished_at = ?, "
                                          "duration_s = MAX(0, ? - started_at), error = ? "
                                          "WHERE result = 'running'"));
  s.bind(1, to_epoch(now));
  s.bind(2, to_epoch(now));
  s.bind(3, kInterruptedRunError);
  return s.run();
}

core::Result<std::optional<ServiceState>> StateStore::service_state(const std::string& service) {
  std::lock_guard lock(impl_->mu);
  ASSIGN_OR_RETURN(Stmt s, impl_->prepare("SELECT last_success_at, last_attempt_at, next_run_at, "
                                          "newest_restorable_point FROM service_state "
                                          "WHERE service = ?"));
  s.bind(1, service);
  ASSIGN_OR_RETURN(bool row, s.step());
  if (!row) return std::optional<ServiceState>();
  ServiceState st;
  st.service = service;
  st.last_success_at = s.time(0);
  st.last_attempt_at = s.time(1);
  st.next_run_at = s.time(2);
  st.newest_restorable_point = s.time(3);
  return std::optional<ServiceState>(std::move(st));
}

core::Status StateStore::put_service_state(const ServiceState& state) {
  std::lock_guard lock(impl_->mu);
  ASSIGN_OR_RETURN(Stmt s, impl_->prepare("INSERT OR REPLACE INTO service_state (service, "
                                          "last_success_at, last_attempt_at, next_run_at, "
                                          "newest_restorable_point) VALUES (?, ?, ?, ?, ?)"));
  s.bind(1, state.service);
  s.bind(2, state.last_success_at);
  s.bind(3, state.last_attempt_at);
  s.bind(4, state.next_run_at);
  s.bind(5, state.newest_restorable_point);
  return s.run();
}

core::Result<std::optional<AlertRecord>> StateStore::alert(const std::string& key) {
  std::lock_guard lock(impl_->mu);
  ASSIGN_OR_RETURN(Stmt s, impl_->prepare((std::string(kAlertColumns) + "WHERE key = ?").c_str()));
  s.bind(1, key);
  ASSIGN_OR_RETURN(bool row, s.step());
  if (!row) return std::optional<AlertRecord>();
  return std::optional<AlertRecord>(read_alert(s));
}

core::Status StateStore::put_alert(const AlertRecord& a) {
  for (const auto& r : a.pending) {
    if (r.empty() || r.find('\n') != std::string::npos) {
      return core::invalid_argument("alert " + a.key + ": bad receiver name in pending list");
    }
  }
  std::lock_guard lock(impl_->mu);
  ASSIGN_OR_RETURN(Stmt s, impl_->prepare("INSERT OR REPLACE INTO alerts (key, service, name, "
                                          "severity, state, since, ends_at, last_sent_at, "
                                          "summary, description, owner, tier, pending) "
                                          "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"));
  s.bind(1, a.key);
  s.bind(2, a.service);
  s.bind(3, a.name);
  s.bind(4, a.severity);
  s.bind(5, a.firing ? "firing" : "resolved");
  s.bind(6, to_epoch(a.since));
  s.bind(7, a.ends_at);
  s.bind(8, a.last_sent_at);
  s.bind(9, a.summary);
  s.bind(10, a.description);
  s.bind(11, a.owner);
  s.bind(12, a.tier);
  s.bind(13, join_lines(a.pending));
  return s.run();
}

core::Result<std::vector<AlertRecord>> StateStore::alerts() {
  std::lock_guard lock(impl_->mu);
  ASSIGN_OR_RETURN(Stmt s, impl_->prepare((std::string(kAlertColumns) + "ORDER BY key").c_str()));
  std::vector<AlertRecord> out;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, s.step());
    if (!row) break;
    out.push_back(read_alert(s));
  }
  return out;
}

core::Status StateStore::put_drill_report(int64_t run_id, const std::string& service, bool passed,
                                          const std::string& report_json) {
  std::lock_guard lock(impl_->mu);
  ASSIGN_OR_RETURN(Stmt s, impl_->prepare("INSERT OR REPLACE INTO drill_reports (run_id, service, passed, report) "
                                          "VALUES (?, ?, ?, ?)"));
  s.bind(1, run_id);
  s.bind(2, service);
  s.bind(3, static_cast<int64_t>(passed ? 1 : 0));
  s.bind(4, report_json);
  return s.run();
}

core::Result<std::vector<DrillRecord>> StateStore::drill_reports(const std::string& service, int limit,
                                                                 bool passed_only) {
  std::lock_guard lock(impl_->mu);
  std::string sql = "SELECT run_id, service, passed, report FROM drill_reports WHERE (? = '' OR service = ?)";
  if (passed_only) sql += " AND passed = 1";
  sql += " ORDER BY run_id DESC LIMIT ?";
  ASSIGN_OR_RETURN(Stmt s, impl_->prepare(sql.c_str()));
  s.bind(1, service);
  s.bind(2, service);
  s.bind(3, static_cast<int64_t>(limit));
  std::vector<DrillRecord> out;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, s.step());
    if (!row) break;
    DrillRecord r;
    r.run_id = s.int64(0);
    r.service = s.text(1);
    r.passed = s.int64(2) != 0;
    r.report_json = s.text(3);
    out.push_back(std::move(r));
  }
  return out;
}

namespace {
constexpr char kTokenColumns[] =
    "SELECT id, name, role, services, secret_hash, created_at, created_by, expires_at, last_used_at, revoked_at "
    "FROM tokens ";

TokenRecord read_token(const Stmt& s) {
  TokenRecord t;
  t.id = s.text(0);
  t.name = s.text(1);
  t.role = s.text(2);
  t.services = split_lines(s.text(3));
  t.secret_hash = s.text(4);
  t.created_at = from_epoch(s.int64(5));
  t.created_by = s.text(6);
  t.expires_at = s.time(7);
  t.last_used_at = s.time(8);
  t.revoked_at = s.time(9);
  return t;
}
}  // namespace

core::Status StateStore::put_token(const TokenRecord& t) {
  std::lock_guard lock(impl_->mu);
  ASSIGN_OR_RETURN(Stmt s, impl_->prepare("INSERT INTO tokens (id, name, role, services, secret_hash, created_at, "
                                          "created_by, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"));
  s.bind(1, t.id);
  s.bind(2, t.name);
  s.bind(3, t.role);
  s.bind(4, join_lines(t.services));
  s.bind(5, t.secret_hash);
  s.bind(6, to_epoch(t.created_at));
  s.bind(7, t.created_by);
  s.bind(8, t.expires_at);
  return s.run();
}

core::Result<std::optional<TokenRecord>> StateStore::token(const std::string& id) {
  std::lock_guard lock(impl_->mu);
  std::string sql = std::string(kTokenColumns) + "WHERE id = ?";
  ASSIGN_OR_RETURN(Stmt s, impl_->prepare(sql.c_str()));
  s.bind(1, id);
  ASSIGN_OR_RETURN(bool row, s.step());
  if (!row) return std::optional<TokenRecord>();
  return std::optional<TokenRecord>(read_token(s));
}

core::Result<std::vector<TokenRecord>> StateStore::tokens() {
  std::lock_guard lock(impl_->mu);
  std::string sql = std::string(kTokenColumns) + "ORDER BY created_at, id";
  ASSIGN_OR_RETURN(Stmt s, impl_->prepare(sql.c_str()));
  std::vector<TokenRecord> out;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, s.step());
    if (!row) break;
    out.push_back(read_token(s));
  }
  return out;
}

core::Status StateStore::touch_token(const std::string& id, Time used_at) {
  std::lock_guard lock(impl_->mu);
  ASSIGN_OR_RETURN(Stmt s, impl_->prepare("UPDATE tokens SET last_used_at = ? WHERE id = ?"));
  s.bind(1, to_epoch(used_at));
  s.bind(2, id);
  return s.run();
}

core::Status StateStore::revoke_token(const std::string& id, Time at) {
  std::lock_guard lock(impl_->mu);
  ASSIGN_OR_RETURN(Stmt s, impl_->prepare("UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL"));
  s.bind(1, to_epoch(at));
  s.bind(2, id);
  TRY(s.run());
  if (sqlite3_changes(impl_->db.get()) == 0)
    return core::not_found(impl_->what + ": no active token with id " + id);
  return core::ok_status();
}

}  // namespace cairn::daemon
