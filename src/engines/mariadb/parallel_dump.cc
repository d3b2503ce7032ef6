// Parallel logical MariaDB backups: N mariadb-dump streams over disjoint
// table sets that all show one state of the server.
//
// Why they agree: before any dump starts, a control connection blocks
// commits (BACKUP STAGE BLOCK_COMMIT). Each dump opens its consistent
// snapshot (START TRANSACTION WITH CONSISTENT SNAPSHOT) and only then writes
// its CHANGE MASTER comment. Commits resume once every stream has shown that
// comment, so no commit falls between two streams' snapshots. The proof is
// checked, not assumed: every stream must name the same binlog position.
// Reads go on while commits wait, so the dumps make progress throughout;
// writers wait for as long as the slowest dump takes to open its snapshot
// (normally milliseconds; a watchdog ends the wait after kBarrierTimeout).
#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "core/file.h"
#include "core/process.h"
#include "engines/mariadb/dump_stream.h"
#include "repo/timefmt.h"

namespace cairn::engines::mariadb {

using json = nlohmann::json;

namespace {

constexpr auto kBarrierTimeout = std::chrono::seconds(120);
constexpr const char* kBlockedMarker = "cairn-commits-blocked";

struct TableInfo {
  std::string db, name;
  bool view = false;
  uint64_t bytes = 0;
  std::string qualified() const { return db + "." + name; }
};

// Names travel as hex: the client's batch output escapes tabs, newlines and
// backslashes, which a table name may hold.
core::Result<std::vector<TableInfo>> list_tables(const Connection& conn,
                                                 const std::vector<std::string>& databases) {
  ASSIGN_OR_RETURN(auto rows,
                   query(conn,
                         "SELECT HEX(table_schema), HEX(table_name), table_type = 'VIEW', "
                         "IFNULL(data_length, 0) + IFNULL(index_length, 0) "
                         "FROM information_schema.tables"));
  std::set<std::string> wanted(databases.begin(), databases.end());
  std::vector<TableInfo> out;
  for (const auto& r : rows) {
    auto db = r.size() == 4 ? core::hex_decode(r[0]) : std::nullopt;
    auto name = r.size() == 4 ? core::hex_decode(r[1]) : std::nullopt;
    if (!db || !name)
      return core::io_error("MariaDB at " + conn.describe() + " listed its tables unreadably");
    TableInfo t{std::string(core::as_chars(*db)), std::string(core::as_chars(*name)), r[2] == "1",
                std::strtoull(r[3].c_str(), nullptr, 10)};
    if (wanted.count(t.db)) out.push_back(std::move(t));
  }
  return out;
}

// Commits blocked on a control connection (a mariadb client fed through a
// pipe) until release(). Thread-safe.
class CommitBlock {
 public:
  static core::Result<std::unique_ptr<CommitBlock>> hold(const ClientOptions& opts,
                                                         const Connection& conn) {
    std::unique_ptr<CommitBlock> b(new CommitBlock());
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return core::errno_status(errno, "pipe");
    b->in_fd_ = fds[1];
    core::ProcessOptions po;
    po.stdin_fd = fds[0];
    po.new_process_group = true;
    std::vector<std::string> argv = opts.argv("mariadb");
    argv.insert(argv.end(), {"--batch", "--skip-column-names", "--unbuffered"});
    auto client = core::Subprocess::start(argv, po);
    close(fds[0]);
    if (!client.ok()) {
      close(b->in_fd_);
      b->done_ = true;
      return client.status();
    }
    b->client_ = std::move(*client);
    // lock_wait_timeout bounds the wait for running DDL or a long
    // statement to let go: the backup fails rather than stalls the server.
    std::string sql = std::string("SET SESSION lock_wait_timeout = 60; BACKUP STAGE START; ") +
                      "BACKUP STAGE BLOCK_COMMIT; SELECT '" + kBlockedMarker + "';\n";
    core::Status wrote = core::write_all(b->in_fd_, core::as_bytes(sql), "the mariadb client");
    std::string out;
    uint8_t buf[256];
    while (wrote.ok() && out.find(kBlockedMarker) == std::string::npos) {
      auto n = b->client_->read(buf, sizeof buf);
      if (!n.ok() || *n == 0) break;
      out.append(reinterpret_cast<char*>(buf), *n);
    }
    if (out.find(kBlockedMarker) == std::string::npos) {
      close(b->in_fd_);
      b->in_fd_ = -1;
      core::Status st = b->client_->wait();
      b->done_ = true;
      if (st.ok()) st = wrote.ok() ? core::io_error("the mariadb client ended early") : wrote;
      return st.with_context("blocking commits on MariaDB at " + conn.describe() +
                             " for a parallel dump (BACKUP STAGE BLOCK_COMMIT needs the RELOAD "
                             "privilege)");
    }
    return b;
  }
  ~CommitBlock() { (void)release(); }
  CommitBlock(const CommitBlock&) = delete;
  CommitBlock& operator=(const CommitBlock&) = delete;

  // Lets commits go on (BACKUP STAGE END, then the session ends). Idempotent.
  core::Status release() {
    std::lock_guard lock(mu_);
    if (done_) return result_;
    done_ = true;
    const std::string end = "BACKUP STAGE END;\n";
    result_ = core::write_all(in_fd_, core::as_bytes(end), "the mariadb client");
    close(in_fd_);
    in_fd_ = -1;
    core::Status waited = client_->wait();
    if (result_.ok()) result_ = waited;
    return result_;
  }

 private:
  CommitBlock() = default;
  std::mutex mu_;
  int in_fd_ = -1;
  std::unique_ptr<core::Subprocess> client_;
  bool done_ = false;
  core::Status result_;
};

// The running dumps, handed out as entries that are all read at once.
class ParallelDump {
 public:
  struct Stream {
    std::string filename;
    std::vector<std::string> argv;
    bool held = false;  // part of the consistent point (every dump stream; not users.sql)
  };

  ParallelDump(std::shared_ptr<ClientOptions> opts, std::vector<Stream> streams)
      : opts_(std::move(opts)) {
    for (auto& s : streams) {
      runs_.emplace_back();
      runs_.back().spec = std::move(s);
    }
  }
  ~ParallelDump() {
    stop_watchdog();
    if (block_) (void)block_->release();
  }

  // Blocks commits, then starts every dump and the watchdog.
  core::Status start(const Connection& conn) {
    ASSIGN_OR_RETURN(block_, CommitBlock::hold(*opts_, conn));
    for (auto& r : runs_) {
      if (r.spec.held) waiting_++;
      core::ProcessOptions po;
      po.new_process_group = true;  // a signal to cairn reaches the dump too
      ASSIGN_OR_RETURN(r.proc, core::Subprocess::start(r.spec.argv, po));
    }
    watchdog_ = std::thread([this] { watch(); });
    return {};
  }

  size_t size() const { return runs_.size(); }

  core::Result<std::optional<archive::StreamEntry>> next() {
    if (next_ == runs_.size()) return std::optional<archive::StreamEntry>();
    size_t i = next_++;
    archive::StreamEntry e;
    e.path = runs_[i].spec.filename;
    e.mode = 0600;
    e.read = [this, i](uint8_t* b, size_t n) -> core::Result<size_t> {
      Run& r = runs_[i];
      ASSIGN_OR_RETURN(size_t got, r.proc->read(b, n));
      r.watch.observe(b, got);
      // Seen the comment (or given up on it), or the stream ended.
      if (r.spec.held && !r.reported && (r.watch.head_done() || got == 0)) {
        r.reported = true;
        arrive(i);
      }
      return got;
    };
    return std::optional<archive::StreamEntry>(std::move(e));
  }

  // Every dump must have ended well, with the same binlog position.
  core::Status finish() {
    core::Status released = block_ ? block_->release() : core::Status();
    stop_watchdog();
    core::Status st;
    const Run* first = nullptr;
    for (auto& r : runs_) {
      core::Status one = r.watch.finish(*r.proc);
      if (one.ok() && r.spec.held) {
        if (!r.watch.position()) {
          one = core::io_error(r.spec.filename + " has no binlog coordinates");
        } else if (!first) {
          first = &r;
        } else if (!(*r.watch.position() == *first->watch.position())) {
          one = core::io_error(fmt::format(
              "the parallel dump streams are not consistent: {} starts at {}:{}, {} at {}:{} "
              "(a commit got through while they opened their snapshots)",
              first->spec.filename, first->watch.position()->file,
              first->watch.position()->position, r.spec.filename, r.watch.position()->file,
              r.watch.position()->position));
        }
      }
      if (st.ok() && !one.ok()) st = one.with_context(r.spec.filename);
    }
    std::lock_guard lock(mu_);
    if (st.ok()) st = barrier_error_;
    if (st.ok()) st = released.with_context("ending the commit block");
    if (st.ok() && first) position_ = first->watch.position();
    return st;
  }

  json metadata() const {
    json j = json::object();
    if (position_) {
      j["binlog_file"] = position_->file;
      j["binlog_position"] = position_->position;
    }
    j["consistent_time"] = consistent_time_;
    j["layout"] = "parallel";
    json streams = json::array();
    for (const auto& r : runs_)
      if (r.spec.held) streams.push_back(r.spec.filename);
    j["streams"] = streams;
    return j;
  }

 private:
  struct Run {
    Stream spec;
    std::unique_ptr<core::Subprocess> proc;
    DumpWatch watch;        // only the stream's reading thread touches it (and finish())
    bool reported = false;  // likewise
    bool arrived = false;   // guarded by mu_
  };

  // Stream i has opened its snapshot (or ended, or passed the point where
  // the comment would be). The last one lets commits go on.
  void arrive(size_t i) {
    {
      std::lock_guard lock(mu_);
      if (runs_[i].arrived) return;
      runs_[i].arrived = true;
      if (--waiting_ > 0) return;
      // Taken while commits are still blocked: at or after the consistent point.
      consistent_time_ = repo::format_time(repo::now_time());
    }
    cv_.notify_all();
    (void)block_->release();  // its error is reported by finish()
  }

  // Commits must not wait forever on a dump that never opens its snapshot.
  void watch() {
    std::unique_lock lock(mu_);
    if (cv_.wait_for(lock, kBarrierTimeout, [&] { return waiting_ == 0 || stopping_; })) return;
    std::string late;
    for (const auto& r : runs_)
      if (r.spec.held && !r.arrived) late += (late.empty() ? "" : ", ") + r.spec.filename;
    barrier_error_ = core::io_error(fmt::format(
        "{} did not open its snapshot within {} s; commits were blocked that long, the dump is "
        "abandoned",
        late, kBarrierTimeout.count()));
    lock.unlock();
    (void)block_->release();
    for (auto& r : runs_) r.proc->signal(SIGTERM);
  }

  void stop_watchdog() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    if (watchdog_.joinable()) watchdog_.join();
  }

  std::shared_ptr<ClientOptions> opts_;  // the options file lives as long as the commands
  std::vector<Run> runs_;
  std::unique_ptr<CommitBlock> block_;
  size_t next_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  size_t waiting_ = 0;
  bool stopping_ = false;
  core::Status barrier_error_;
  std::string consistent_time_;
  std::optional<BinlogPosition> position_;
  std::thread watchdog_;
};

// Largest first onto the least loaded set: sets of near-equal size, so the
// streams end together.
std::vector<std::vector<const TableInfo*>> balance(const std::vector<TableInfo>& tables,
                                                   size_t sets) {
  std::vector<const TableInfo*> order;
  for (const auto& t : tables)
    if (!t.view) order.push_back(&t);
  std::stable_sort(order.begin(), order.end(),
                   [](const TableInfo* a, const TableInfo* b) { return a->bytes > b->bytes; });
  std::vector<std::vector<const TableInfo*>> out(sets);
  std::vector<uint64_t> load(sets, 0);
  for (const TableInfo* t : order) {
    size_t k = std::min_element(load.begin(), load.end()) - load.begin();
    out[k].push_back(t);
    load[k] += std::max<uint64_t>(t->bytes, 1);
  }
  return out;
}

}  // namespace

core::Result<archive::EntrySource> parallel_dump_source(const LogicalOptions& opt,
                                                        const ServerFacts& facts,
                                                        const std::vector<std::string>& databases,
                                                        std::shared_ptr<ClientOptions> opts) {
  if (!facts.log_bin)
    return core::unsupported("parallel dumps of MariaDB at " + opt.conn.describe() +
                             " need the binlog (log_bin is off): the streams prove that they "
                             "are consistent by their binlog positions; dump with one stream "
                             "(parallel: 1) or start the server with --log-bin");
  ASSIGN_OR_RETURN(auto tables, list_tables(opt.conn, databases));
  size_t base_tables = std::count_if(tables.begin(), tables.end(), [](auto& t) { return !t.view; });
  size_t sets = std::clamp<size_t>(opt.parallel, 1, std::max<size_t>(base_tables, 1));
  auto balanced = balance(tables, sets);

  auto with_databases = [&](std::vector<std::string> argv) {
    argv.push_back("--databases");  // options first: what follows are names
    argv.insert(argv.end(), databases.begin(), databases.end());
    return argv;
  };
  std::vector<ParallelDump::Stream> streams;
  for (size_t k = 0; k < sets; ++k) {
    // Tables with their data and triggers; views, routines and events go
    // to objects.sql, every other set's tables to their own stream.
    std::vector<std::string> argv = dump_argv(*opts, true);
    argv.insert(argv.end(), {"--skip-routines", "--skip-events"});
    std::set<const TableInfo*> mine(balanced[k].begin(), balanced[k].end());
    for (const auto& t : tables)
      if (!mine.count(&t)) argv.push_back("--ignore-table=" + t.qualified());
    streams.push_back({fmt::format("dump/tables-{:02}.sql", k + 1), with_databases(argv), true});
  }
  std::vector<std::string> objects = dump_argv(*opts, true);
  for (const auto& t : tables)
    if (!t.view) objects.push_back("--ignore-table=" + t.qualified());
  streams.push_back({"dump/objects.sql", with_databases(objects), true});
  if (opt.users) streams.push_back({"users.sql", users_dump_argv(*opts), false});

  auto dump = std::make_shared<ParallelDump>(opts, std::move(streams));
  TRY(dump->start(opt.conn));
  archive::EntrySource src;
  src.concurrency = dump->size();  // every stream must flow for the point to be reached
  src.next = [dump] { return dump->next(); };
  src.finish = [dump] { return dump->finish(); };
  src.engine = [dump] { return dump->metadata(); };
  return src;
}

}  // namespace cairn::engines::mariadb
