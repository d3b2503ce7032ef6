// Redis engine against real redis-server processes (ScratchRedis): backup
// over `redis-cli --rdb -` (diskless and disk-based replication), restore +
// redis-check-rdb, a second server loading the restored dump, and failures
// that write no snapshot. Skipped when redis-server is not installed. The
// CLI round trip with every key type: tests/e2e/test_redis.sh.
#include "engines/redis/redis.h"

#include <pwd.h>
#include <unistd.h>

#include <filesystem>

#include "engines/engine_snapshot.h"
#include "storage/memory_backend.h"
#include "test_util.h"

namespace cairn::engines::redis {
namespace {

using testing::TempDir;

ScratchRedis::Options in_dir(const std::string& dir) {
  ScratchRedis::Options o;
  o.dir = dir;
  return o;
}

bool have_redis() {
  return access("/usr/bin/redis-server", X_OK) == 0 &&
         access("/usr/bin/redis-check-rdb", X_OK) == 0;
}

class RedisTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!have_redis())
      GTEST_SKIP() << "redis-server is not installed (apt-get install redis-server)";
    repo_ = testing::make_repo(std::make_shared<storage::MemoryBackend>());
    std::filesystem::create_directories(tmp_ / "src");
    auto s = ScratchRedis::start(in_dir(tmp_ / "src"));
    ASSERT_TRUE(s.ok()) << s.status().message();
    src_ = std::move(*s);
    // Redis waits 5 s for more replicas before a disk-less transfer; not here.
    cmd({"CONFIG", "SET", "repl-diskless-sync-delay", "0"});
  }
  void cmd(const std::vector<std::string>& args) {
    auto r = src_->command(args);
    ASSERT_TRUE(r.ok()) << r.status().message();
  }
  core::Result<archive::BackupResult> run_backup(const Connection& c) {
    BackupOptions o;
    o.conn = c;
    archive::BackupOptions b;
    b.service = "cache";
    return backup(*repo_, o, b, nullptr);
  }

  TempDir tmp_;
  std::unique_ptr<repo::Repository> repo_;
  std::unique_ptr<ScratchRedis> src_;
};

TEST_F(RedisTest, BackupRestoreAndLoadInANewServer) {
  cmd({"SET", "greeting", "hello"});
  cmd({"RPUSH", "queue", "a", "b", "c"});
  cmd({"SET", "session", "s1", "EX", "3600"});
  for (bool diskless : {true, false}) {
    SCOPED_TRACE(diskless ? "diskless replication" : "disk-based replication");
    cmd({"CONFIG", "SET", "repl-diskless-sync", diskless ? "yes" : "no"});
    auto r = run_backup(src_->connection());
    ASSERT_TRUE(r.ok()) << r.status().message();
    const auto& e = r->snapshot.engine;
    EXPECT_EQ(e["type"], "redis");
    EXPECT_EQ(e["file"], "dump.rdb");
    EXPECT_EQ(e["keys"], 3);
    EXPECT_EQ(e["expires"], 1);
    EXPECT_EQ(e["role"], "master");
    EXPECT_FALSE(e.value("redis_version", "").empty());

    auto snap = find_engine_snapshot(*repo_, "cache", "redis", r->snapshot_id);
    ASSERT_TRUE(snap.ok()) << snap.status().message();
    std::string dir = tmp_ / (diskless ? "restored-diskless" : "restored-disk");
    auto rr = restore(*repo_, *snap, {dir, false});
    ASSERT_TRUE(rr.ok()) << rr.status().message();
    EXPECT_EQ(rr->check, "RDB looks OK: 3 keys read, 1 expires, 0 already expired");
    EXPECT_FALSE(rr->aof_present);
    // The stored file is exactly an RDB: it ends with the EOF opcode and an
    // 8-byte checksum, not with the replication EOF mark.
    std::string rdb = testing::read_file(dir + "/dump.rdb");
    ASSERT_GT(rdb.size(), 9u);
    EXPECT_EQ(rdb.compare(0, 5, "REDIS"), 0);
    EXPECT_EQ(static_cast<uint8_t>(rdb[rdb.size() - 9]), 0xFF);
    EXPECT_EQ(rr->bytes, rdb.size());
    EXPECT_EQ(r->snapshot.summary.total_bytes, rdb.size());

    auto copy = ScratchRedis::start(in_dir(dir));
    ASSERT_TRUE(copy.ok()) << copy.status().message();
    EXPECT_EQ(*(*copy)->command({"DBSIZE"}), "3");
    EXPECT_EQ(*(*copy)->command({"GET", "greeting"}), "hello");
    EXPECT_EQ(*(*copy)->command({"LRANGE", "queue", "0", "-1"}), "a\nb\nc");
    auto ttl = (*copy)->command({"TTL", "session"});
    ASSERT_TRUE(ttl.ok());
    EXPECT_GT(std::stoi(*ttl), 3000);
    ASSERT_TRUE((*copy)->stop().ok());
    EXPECT_EQ(testing::read_file(dir + "/dump.rdb"), rdb) << "a scratch server never writes";

    // An existing dump.rdb is replaced only with force.
    EXPECT_EQ(restore(*repo_, *snap, {dir, false}).status().code(), core::Code::kAlreadyExists);
    EXPECT_TRUE(restore(*repo_, *snap, {dir, true}).ok());
  }
}

TEST_F(RedisTest, PasswordsAndUnreachableServers) {
  cmd({"SET", "k", "v"});
  cmd({"CONFIG", "SET", "requirepass", "s3cret pass"});
  Connection c = src_->connection();
  c.password = "p4ss-not-right";
  auto wrong = run_backup(c);
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.status().message().find("WRONGPASS"), std::string::npos)
      << wrong.status().message();
  EXPECT_EQ(wrong.status().message().find("p4ss-not-right"), std::string::npos)
      << "no password in messages";
  c.password = "";
  auto none = run_backup(c);
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("NOAUTH"), std::string::npos) << none.status().message();
  c.password = "s3cret pass";
  auto good = run_backup(c);
  ASSERT_TRUE(good.ok()) << good.status().message();

  Connection gone;
  gone.port = 1;
  auto unreachable = run_backup(gone);
  ASSERT_FALSE(unreachable.ok());
  EXPECT_NE(unreachable.status().message().find("127.0.0.1:1"), std::string::npos)
      << unreachable.status().message();
  EXPECT_EQ(repo_->list_snapshots()->size(), 1u) << "only the good backup is a snapshot";
}

TEST_F(RedisTest, CheckRdbRejectsDamage) {
  cmd({"SET", "k", std::string(1000, 'v')});
  auto r = run_backup(src_->connection());
  ASSERT_TRUE(r.ok()) << r.status().message();
  auto snap = find_engine_snapshot(*repo_, "cache", "redis", "latest");
  ASSERT_TRUE(snap.ok());
  ASSERT_TRUE(restore(*repo_, *snap, {tmp_ / "r", false}).ok());
  std::string rdb = testing::read_file(tmp_ / "r/dump.rdb");
  std::string cut = tmp_ / "cut.rdb";
  testing::write_file(cut,
                      core::ByteView(reinterpret_cast<const uint8_t*>(rdb.data()), rdb.size() / 2));
  auto c = check_rdb(cut);
  EXPECT_EQ(c.status().code(), core::Code::kCorruption);
  EXPECT_NE(c.status().message().find("Unexpected EOF"), std::string::npos) << c.status().message();
  EXPECT_TRUE(check_rdb(tmp_ / "r/dump.rdb").ok());
}

TEST(ScratchRedisTest, ReportsAServerThatCannotStart) {
  if (!have_redis()) GTEST_SKIP() << "redis-server is not installed";
  TempDir tmp;
  testing::write_file(tmp / "dump.rdb",
                      core::ByteView(reinterpret_cast<const uint8_t*>("REDIS0010garbage"), 16));
  auto s = ScratchRedis::start(in_dir(tmp.path()));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("exited"), std::string::npos) << s.status().message();
}

TEST(ScratchRedisTest, RunsAsAnotherUserAndStopsCompletely) {
  if (!have_redis()) GTEST_SKIP() << "redis-server is not installed";
  struct passwd* pw = getpwnam("redis");
  if (geteuid() != 0 || !pw) GTEST_SKIP() << "needs root and a redis user";
  TempDir tmp;
  ASSERT_EQ(chown(tmp.path().c_str(), pw->pw_uid, pw->pw_gid), 0);
  ScratchRedis::Options o = in_dir(tmp.path());
  o.run_as = "redis";
  auto s = ScratchRedis::start(o);
  ASSERT_TRUE(s.ok()) << s.status().message();
  auto dir = (*s)->command({"CONFIG", "GET", "dir"});
  ASSERT_TRUE(dir.ok());
  EXPECT_EQ(*dir, "dir\n" + tmp.path());
  int port = (*s)->port();
  ASSERT_TRUE((*s)->stop().ok()) << (*s)->log_tail();
  // Nothing answers on the port any more: runuser passed the signal on.
  auto gone = core::run_and_capture({"redis-cli", "-p", std::to_string(port), "PING"});
  EXPECT_TRUE(!gone.ok() || gone->find("PONG") == std::string::npos);
}

}  // namespace
}  // namespace cairn::engines::redis
