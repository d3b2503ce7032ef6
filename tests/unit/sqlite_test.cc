// SQLite engine on real database files: backup of WAL and rollback-journal
// databases into a repository, restore with integrity_check, refusals
// (existing target, missing file, not a database, corrupt copy). The
// concurrent-writer test is tests/e2e/test_sqlite.sh.
#include "engines/sqlite/sqlite.h"

#include <sqlite3.h>
#include <sys/stat.h>

#include <filesystem>

#include "engines/engine_snapshot.h"
#include "engines/sqlite/db.h"
#include "storage/memory_backend.h"
#include "test_util.h"

namespace cairn::engines::sqlite {
namespace {

using testing::TempDir;

void make_db(const std::string& path, const std::string& journal_mode, int rows) {
  auto db = Db::open(path, true);
  ASSERT_TRUE(db.ok()) << db.status().message();
  ASSERT_TRUE(db->exec("PRAGMA journal_mode=" + journal_mode).ok());
  ASSERT_TRUE(db->exec("PRAGMA user_version=7; CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);"
                       "CREATE INDEX t_v ON t(v);")
                  .ok());
  ASSERT_TRUE(db->exec("BEGIN").ok());
  for (int i = 0; i < rows; i++)
    ASSERT_TRUE(db->exec("INSERT INTO t(v) VALUES ('row " + std::to_string(i) + " " +
                         std::string(100, 'x') + "')")
                    .ok());
  ASSERT_TRUE(db->exec("COMMIT").ok());
  ASSERT_TRUE(db->close().ok());
}

int64_t count_rows(const std::string& path) {
  auto db = Db::open(path);
  EXPECT_TRUE(db.ok()) << db.status().message();
  auto n = db->integer("SELECT count(*) FROM t");
  EXPECT_TRUE(n.ok()) << n.status().message();
  return n.ok() ? *n : -1;
}

size_t entries(const std::string& dir) {
  size_t n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir)) n++;
  return n;
}

class SqliteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    repo_ = testing::make_repo(std::make_shared<storage::MemoryBackend>());
    std::filesystem::create_directories(tmp_ / "staging");
  }
  core::Result<archive::BackupResult> run_backup(const std::string& path) {
    BackupOptions o;
    o.path = path;
    o.temp_dir = tmp_ / "staging";
    o.pages_per_step = 7;  // many steps, also for a small database
    archive::BackupOptions b;
    b.service = "app";
    return backup(*repo_, o, b, nullptr);
  }
  size_t snapshots() { return repo_->list_snapshots()->size(); }

  TempDir tmp_;
  std::unique_ptr<repo::Repository> repo_;
};

TEST_F(SqliteTest, WalDatabaseRoundTrip) {
  std::string db = tmp_ / "app.db";
  make_db(db, "wal", 3000);
  // A second connection keeps the database open, so its WAL stays in use.
  auto live = Db::open(db);
  ASSERT_TRUE(live.ok());
  ASSERT_TRUE(live->exec("INSERT INTO t(v) VALUES ('in the wal')").ok());

  auto r = run_backup(db);
  ASSERT_TRUE(r.ok()) << r.status().message();
  const auto& e = r->snapshot.engine;
  EXPECT_EQ(e["type"], "sqlite");
  EXPECT_EQ(e["file"], "app.db");
  EXPECT_EQ(e["journal_mode"], "wal");
  EXPECT_EQ(e["user_version"], 7);
  EXPECT_GT(e["page_count"].get<int64_t>(), 50);
  EXPECT_EQ(e["bytes"].get<int64_t>(),
            e["page_count"].get<int64_t>() * e["page_size"].get<int64_t>());
  EXPECT_EQ(e["restarts"], 0);
  EXPECT_EQ(entries(tmp_ / "staging"), 0u) << "the temporary copy is removed";

  auto snap = find_engine_snapshot(*repo_, "app", "sqlite", "latest");
  ASSERT_TRUE(snap.ok()) << snap.status().message();
  std::string target = tmp_ / "restored/app.db";
  auto rr = restore(*repo_, *snap, {target, false});
  ASSERT_TRUE(rr.ok()) << rr.status().message();
  EXPECT_EQ(rr->bytes, static_cast<uint64_t>(e["bytes"].get<int64_t>()));
  EXPECT_EQ(rr->check.rfind("ok: ", 0), 0u) << rr->check;
  EXPECT_EQ(count_rows(target), 3001);
  EXPECT_EQ(entries(tmp_ / "restored"), 1u) << "no temporary file or -wal left beside the target";

  // Refused without --force; with it, the old file and a stale -wal go.
  auto again = restore(*repo_, *snap, {target, false});
  EXPECT_EQ(again.status().code(), core::Code::kAlreadyExists);
  testing::write_file(target + "-wal",
                      core::ByteView(reinterpret_cast<const uint8_t*>("stale"), 5));
  chmod(target.c_str(), 0640);
  auto forced = restore(*repo_, *snap, {target, true});
  ASSERT_TRUE(forced.ok()) << forced.status().message();
  EXPECT_FALSE(std::filesystem::exists(target + "-wal"));
  struct stat st;
  ASSERT_EQ(stat(target.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u) << "the replaced file's mode is kept";
  EXPECT_EQ(count_rows(target), 3001);
}

TEST_F(SqliteTest, RollbackJournalDatabase) {
  std::string db = tmp_ / "legacy.sqlite";
  make_db(db, "delete", 500);
  auto r = run_backup(db);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->snapshot.engine["journal_mode"], "delete");
  EXPECT_EQ(r->snapshot.engine["file"], "legacy.sqlite");
  auto snap = find_engine_snapshot(*repo_, "app", "sqlite", "");
  ASSERT_TRUE(snap.ok());
  std::string target = tmp_ / "legacy.restored";
  ASSERT_TRUE(restore(*repo_, *snap, {target, false}).ok());
  EXPECT_EQ(count_rows(target), 500);
}

TEST_F(SqliteTest, MissingFileOrNotADatabaseWritesNoSnapshot) {
  auto missing = run_backup(tmp_ / "nope.db");
  EXPECT_EQ(missing.status().code(), core::Code::kNotFound);
  EXPECT_NE(missing.status().message().find("nope.db does not exist"), std::string::npos)
      << missing.status().message();
  EXPECT_FALSE(std::filesystem::exists(tmp_ / "nope.db")) << "a backup never creates the database";

  std::string junk = tmp_ / "junk.db";
  auto bytes = testing::random_data(64 * 1024, 1);
  testing::write_file(junk, bytes);
  auto notdb = run_backup(junk);
  EXPECT_EQ(notdb.status().code(), core::Code::kCorruption);
  EXPECT_NE(notdb.status().message().find("not a database"), std::string::npos)
      << notdb.status().message();
  EXPECT_EQ(testing::read_file(junk).size(), bytes.size()) << "the file is left alone";

  EXPECT_EQ(snapshots(), 0u);
  EXPECT_EQ(entries(tmp_ / "staging"), 0u);
}

TEST_F(SqliteTest, IntegrityCheckFindsDamage) {
  std::string db = tmp_ / "bad.db";
  make_db(db, "delete", 2000);
  EXPECT_TRUE(integrity_check(db).ok());
  // Garbage over a page in the middle of the table's b-tree.
  std::string data = testing::read_file(db);
  ASSERT_GT(data.size(), 40u * 4096);
  for (size_t i = 20 * 4096 + 100; i < 20 * 4096 + 600; i++) data[i] = static_cast<char>(i * 7);
  testing::write_file(db,
                      core::ByteView(reinterpret_cast<const uint8_t*>(data.data()), data.size()));
  auto r = integrity_check(db);
  EXPECT_EQ(r.status().code(), core::Code::kCorruption) << r.status().message();
  EXPECT_EQ(integrity_check(tmp_ / "none.db").status().code(), core::Code::kNotFound);
}

TEST_F(SqliteTest, RestoreRefusesASnapshotOfAnotherEngine) {
  std::string db = tmp_ / "app.db";
  make_db(db, "wal", 10);
  ASSERT_TRUE(run_backup(db).ok());
  EXPECT_EQ(find_engine_snapshot(*repo_, "app", "redis", "latest").status().code(),
            core::Code::kNotFound);
  EXPECT_EQ(find_engine_snapshot(*repo_, "other", "sqlite", "latest").status().code(),
            core::Code::kNotFound);
}

}  // namespace
}  // namespace cairn::engines::sqlite
