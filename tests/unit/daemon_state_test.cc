// StateStore on real SQLite files in a temp folder.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <atomic>
#include <thread>

#include "daemon/state_store.h"
#include "unit/test_util.h"

namespace cairn::daemon {
namespace {

using std::chrono::seconds;

Time at(int64_t s) { return Time(seconds(s)); }

StateStore open_store(const std::string& path) {
  auto s = StateStore::open(path);
  EXPECT_TRUE(s.ok()) << s.status().to_string();
  return std::move(s).value();
}

TEST(DaemonState, RunsSurviveReopen) {
  testing::TempDir dir;
  std::string path = dir / "state.db";
  int64_t id = 0;
  {
    StateStore store = open_store(path);
    auto r = store.begin_run("db", RunKind::kBackup, at(1000), 2);
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    id = *r;
    RunOutcome out;
    out.result = RunResult::kSuccess;
    out.finished_at = at(1060);
    out.bytes_added = 123;
    out.total_size = 1'000'000'000'000;
    out.duration_s = 60.5;
    out.snapshot_id = "abcd";
    ASSERT_TRUE(store.finish_run(id, out).ok());
  }
  StateStore store = open_store(path);
  auto runs = store.recent_runs("db", RunKind::kBackup, 10);
  ASSERT_TRUE(runs.ok()) << runs.status().to_string();
  ASSERT_EQ(runs->size(), 1u);
  const RunRecord& r = (*runs)[0];
  EXPECT_EQ(r.id, id);
  EXPECT_EQ(r.service, "db");
  EXPECT_EQ(r.kind, RunKind::kBackup);
  EXPECT_EQ(r.started_at, at(1000));
  EXPECT_EQ(r.finished_at, at(1060));
  EXPECT_EQ(r.result, RunResult::kSuccess);
  EXPECT_EQ(r.attempt, 2);
  EXPECT_EQ(r.bytes_added, 123u);
  EXPECT_EQ(r.total_size, 1'000'000'000'000u);
  EXPECT_DOUBLE_EQ(r.duration_s, 60.5);
  EXPECT_EQ(r.snapshot_id, "abcd");
  EXPECT_EQ(r.error, "");
  EXPECT_EQ(StateStore::latest_schema_version(), 3);
}

TEST(DaemonState, DrillReportsNewestFirstPerServiceAndPassedOnly) {
  testing::TempDir dir;
  auto store = StateStore::open(dir.path() + "/state.db").value();
  for (int i = 0; i < 3; i++) {
    std::string svc = i == 1 ? "b" : "a";
    auto id = store.begin_run(svc, RunKind::kDrill, at(1000 + i)).value();
    ASSERT_TRUE(store.put_drill_report(id, svc, i != 2, "{\"n\":" + std::to_string(i) + "}").ok());
  }
  auto all = store.drill_reports("", 10).value();
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].report_json, "{\"n\":2}");
  EXPECT_FALSE(all[0].passed);
  auto a = store.drill_reports("a", 10).value();
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a[1].report_json, "{\"n\":0}");
  auto passed = store.drill_reports("a", 10, true).value();
  ASSERT_EQ(passed.size(), 1u);
  EXPECT_EQ(passed[0].report_json, "{\"n\":0}");
  EXPECT_EQ(store.drill_reports("a", 1).value().size(), 1u);
}

TEST(DaemonState, RecentRunsNewestFirstFilteredAndLimited) {
  testing::TempDir dir;
  StateStore store = open_store(dir / "state.db");
  for (int i = 0; i < 6; ++i) {
    auto id = store.begin_run("db", RunKind::kBackup, at(100 * i));
    ASSERT_TRUE(id.ok());
    RunOutcome out;
    out.result = i % 2 == 0 ? RunResult::kSuccess : RunResult::kFailure;
    out.finished_at = at(100 * i + 10);
    ASSERT_TRUE(store.finish_run(*id, out).ok());
  }
  ASSERT_TRUE(store.begin_run("db", RunKind::kPrune, at(9999)).ok());
  ASSERT_TRUE(store.begin_run("other", RunKind::kBackup, at(9999)).ok());

  auto all = store.recent_runs("db", RunKind::kBackup, 4);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 4u);
  EXPECT_EQ((*all)[0].started_at, at(500));
  EXPECT_EQ((*all)[3].started_at, at(200));

  auto ok_runs = store.recent_runs("db", RunKind::kBackup, 10, RunResult::kSuccess);
  ASSERT_TRUE(ok_runs.ok());
  ASSERT_EQ(ok_runs->size(), 3u);
  for (const auto& r : *ok_runs) EXPECT_EQ(r.result, RunResult::kSuccess);

  auto counts = store.run_counts("db", RunKind::kBackup);
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ((*counts)[RunResult::kSuccess], 3);
  EXPECT_EQ((*counts)[RunResult::kFailure], 3);
  EXPECT_EQ(counts->count(RunResult::kRunning), 0u);
}

TEST(DaemonState, FinishRunErrors) {
  testing::TempDir dir;
  StateStore store = open_store(dir / "state.db");
  RunOutcome out;
  EXPECT_EQ(store.finish_run(42, out).code(), core::Code::kNotFound);
  out.result = RunResult::kRunning;
  EXPECT_EQ(store.finish_run(42, out).code(), core::Code::kInvalidArgument);
}

TEST(DaemonState, InterruptedRunsBecomeFailuresAfterReopen) {
  testing::TempDir dir;
  std::string path = dir / "state.db";
  {
    StateStore store = open_store(path);
    ASSERT_TRUE(store.begin_run("db", RunKind::kBackup, at(1000)).ok());
    auto done = store.begin_run("db", RunKind::kBackup, at(500));
    ASSERT_TRUE(done.ok());
    RunOutcome out;
    out.finished_at = at(600);
    ASSERT_TRUE(store.finish_run(*done, out).ok());
    // No finish: the daemon "crashes" with the first run still running.
  }
  StateStore store = open_store(path);
  ASSERT_TRUE(store.mark_interrupted_runs(at(1300)).ok());
  auto runs = store.recent_runs("db", RunKind::kBackup, 10);
  ASSERT_TRUE(runs.ok());
  ASSERT_EQ(runs->size(), 2u);
  const RunRecord& r = (*runs)[0];
  EXPECT_EQ(r.result, RunResult::kFailure);
  EXPECT_EQ(r.error, kInterruptedRunError);
  EXPECT_EQ(r.finished_at, at(1300));
  EXPECT_DOUBLE_EQ(r.duration_s, 300);
  EXPECT_EQ((*runs)[1].result, RunResult::kSuccess);  // untouched
  EXPECT_EQ((*runs)[1].error, "");
}

TEST(DaemonState, ServiceStateRoundTrip) {
  testing::TempDir dir;
  std::string path = dir / "state.db";
  {
    StateStore store = open_store(path);
    auto none = store.service_state("db");
    ASSERT_TRUE(none.ok());
    EXPECT_FALSE(none->has_value());
    ServiceState st;
    st.service = "db";
    st.last_success_at = at(10);
    st.next_run_at = at(3610);
    ASSERT_TRUE(store.put_service_state(st).ok());
    st.last_attempt_at = at(20);  // replace
    ASSERT_TRUE(store.put_service_state(st).ok());
  }
  StateStore store = open_store(path);
  auto st = store.service_state("db");
  ASSERT_TRUE(st.ok());
  ASSERT_TRUE(st->has_value());
  EXPECT_EQ((*st)->last_success_at, at(10));
  EXPECT_EQ((*st)->last_attempt_at, at(20));
  EXPECT_EQ((*st)->next_run_at, at(3610));
  EXPECT_FALSE((*st)->newest_restorable_point.has_value());
}

TEST(DaemonState, AlertRoundTrip) {
  testing::TempDir dir;
  std::string path = dir / "state.db";
  AlertRecord a;
  a.key = alert_key("BackupFailed", "db");
  a.name = "BackupFailed";
  a.service = "db";
  a.severity = "critical";
  a.firing = true;
  a.since = at(100);
  a.last_sent_at = at(100);
  a.summary = "backup of db failed";
  a.description = "pg_dump: exit 1\nline two";
  a.owner = "team-a";
  a.tier = "gold";
  a.pending = {"hook", "am"};
  {
    StateStore store = open_store(path);
    ASSERT_TRUE(store.put_alert(a).ok());
    AlertRecord bad = a;
    bad.pending = {"x\ny"};
    EXPECT_EQ(store.put_alert(bad).code(), core::Code::kInvalidArgument);
  }
  StateStore store = open_store(path);
  auto got = store.alert(a.key);
  ASSERT_TRUE(got.ok());
  ASSERT_TRUE(got->has_value());
  const AlertRecord& g = **got;
  EXPECT_EQ(g.name, a.name);
  EXPECT_EQ(g.service, a.service);
  EXPECT_EQ(g.severity, a.severity);
  EXPECT_TRUE(g.firing);
  EXPECT_EQ(g.since, a.since);
  EXPECT_FALSE(g.ends_at.has_value());
  EXPECT_EQ(g.last_sent_at, a.last_sent_at);
  EXPECT_EQ(g.description, a.description);
  EXPECT_EQ(g.owner, "team-a");
  EXPECT_EQ(g.tier, "gold");
  EXPECT_EQ(g.pending, a.pending);
  auto all = store.alerts();
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 1u);
  auto missing = store.alert("nope/none");
  ASSERT_TRUE(missing.ok());
  EXPECT_FALSE(missing->has_value());
}

TEST(DaemonState, WalModeAndConcurrentWriters) {
  testing::TempDir dir;
  StateStore store = open_store(dir / "state.db");
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&store, t] {
      for (int i = 0; i < 25; ++i) {
        auto id = store.begin_run("svc" + std::to_string(t), RunKind::kBackup, at(i));
        ASSERT_TRUE(id.ok());
        ASSERT_TRUE(store.finish_run(*id, RunOutcome{}).ok());
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < 4; ++t) {
    auto runs = store.recent_runs("svc" + std::to_string(t), RunKind::kBackup, 100);
    ASSERT_TRUE(runs.ok());
    EXPECT_EQ(runs->size(), 25u);
  }
  EXPECT_TRUE(std::filesystem::exists(dir / "state.db-wal"));
  // A second connection (e.g. `cairn daemon status`) reads the same data.
  StateStore reader = open_store(dir / "state.db");
  auto runs = reader.recent_runs("svc0", RunKind::kBackup, 100);
  ASSERT_TRUE(runs.ok());
  EXPECT_EQ(runs->size(), 25u);
}

TEST(DaemonState, ConcurrentFirstOpensMigrateOnce) {
  testing::TempDir dir;
  std::string path = dir / "state.db";
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      auto s = StateStore::open(path);
      EXPECT_TRUE(s.ok()) << s.status().to_string();
      if (s.ok()) ++ok;
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok, 4);
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  ASSERT_EQ(
      sqlite3_prepare_v2(db, "SELECT COUNT(*), MAX(version) FROM schema_version", -1, &st, nullptr),
      SQLITE_OK);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(st, 0), StateStore::latest_schema_version());
  EXPECT_EQ(sqlite3_column_int(st, 1), StateStore::latest_schema_version());
  sqlite3_finalize(st);
  sqlite3_close(db);
}

TEST(DaemonState, RejectsNewerSchemaAndNonDatabase) {
  testing::TempDir dir;
  std::string path = dir / "state.db";
  { StateStore store = open_store(path); }
  // A database written by a newer cairn.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "INSERT INTO schema_version VALUES (99)", nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  auto newer = StateStore::open(path);
  ASSERT_FALSE(newer.ok());
  EXPECT_EQ(newer.status().code(), core::Code::kUnsupported);
  EXPECT_NE(newer.status().message().find("99"), std::string::npos);

  std::ofstream(dir / "junk.db") << std::string(4096, 'x');
  auto junk = StateStore::open(dir / "junk.db");
  ASSERT_FALSE(junk.ok());
  EXPECT_NE(junk.status().message().find("junk.db"), std::string::npos);
}

}  // namespace
}  // namespace cairn::daemon
