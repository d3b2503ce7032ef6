// Pieces of the PostgreSQL engine that need no server: LSN and segment
// names, base backup choice, recovery settings, DSN handling, and the log
// archive (WAL) in the repository. The server parts: tests/e2e/test_pg.sh.
#include "engines/postgres/postgres.h"

#include <fstream>

#include "engines/postgres/pg_conn.h"
#include "repo/log_archive.h"
#include "storage/memory_backend.h"
#include "test_util.h"

namespace cairn::engines::postgres {
namespace {

using testing::TempDir;

TEST(PostgresTest, ParsesLsns) {
  EXPECT_EQ(parse_lsn("0/3000060"), 0x3000060u);
  EXPECT_EQ(parse_lsn("16/B374D848"), 0x16B374D848u);
  EXPECT_FALSE(parse_lsn("3000060").has_value());
  EXPECT_FALSE(parse_lsn("0/").has_value());
  EXPECT_FALSE(parse_lsn("x/1").has_value());
  EXPECT_FALSE(parse_lsn("1/2/3").has_value());
  EXPECT_FALSE(parse_lsn("100000000/0").has_value());
}

TEST(PostgresTest, SegmentNamesRoundTrip) {
  auto s = parse_segment_name("00000002000000010000003F", 256);
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->timeline, 2u);
  EXPECT_EQ(s->segno, 256u + 0x3F);
  EXPECT_EQ(segment_file_name(2, 256 + 0x3F, 256), "00000002000000010000003F");
  // A backup history file carries its segment's name first.
  EXPECT_EQ(parse_segment_name("000000010000000000000002.00000028.backup", 256)->segno, 2u);
  EXPECT_FALSE(parse_segment_name("00000002.history", 256).has_value());
  EXPECT_FALSE(parse_segment_name("0000000100000000000001FF", 256).has_value());  // low part >= 256
  EXPECT_FALSE(parse_segment_name("00000001000000000000000g", 256).has_value());
}

repo::SnapshotRef base(const std::string& id, const std::string& service,
                       const std::string& stop_time, const std::string& stop_lsn) {
  repo::SnapshotRef r;
  r.id = id;
  r.snapshot.service = service;
  r.snapshot.engine = {
      {"type", "postgres"}, {"mode", "physical"}, {"stop_time", stop_time}, {"stop_lsn", stop_lsn}};
  return r;
}

TEST(PostgresTest, ChoosesTheNewestBaseBackupBeforeTheTarget) {
  std::vector<repo::SnapshotRef> snaps = {base("a1", "shop", "2026-11-20T10:00:00Z", "0/5000000"),
                                          base("b2", "shop", "2026-11-21T10:00:00Z", "0/9000000"),
                                          base("c3", "other", "2026-11-22T10:00:00Z", "0/F000000"),
                                          base("d4", "shop", "2026-11-23T10:00:00Z", "1/0")};
  snaps.back().snapshot.engine["mode"] = "logical";  // not a base backup
  using Kind = RecoveryTarget::Kind;
  auto pick = [&](Kind k, const std::string& v) {
    return choose_base_backup(snaps, "shop", {k, v});
  };
  EXPECT_EQ(pick(Kind::kTime, "2026-11-21 12:00:00+00")->id, "b2");
  EXPECT_EQ(pick(Kind::kTime, "2026-11-21T09:59:59Z")->id, "a1");
  EXPECT_EQ(pick(Kind::kLsn, "0/8FFFFFF")->id, "a1");
  EXPECT_EQ(pick(Kind::kLsn, "0/9000000")->id, "b2");
  EXPECT_EQ(pick(Kind::kLatest, "")->id, "b2");
  EXPECT_EQ(pick(Kind::kXid, "1234")->id, "b2");
  auto early = pick(Kind::kTime, "2026-11-19T00:00:00Z");
  EXPECT_EQ(early.status().code(), core::Code::kNotFound);
  EXPECT_NE(early.status().message().find("no base backup"), std::string::npos);
  EXPECT_EQ(pick(Kind::kTime, "last tuesday").status().code(), core::Code::kInvalidArgument);
  EXPECT_EQ(pick(Kind::kLsn, "12").status().code(), core::Code::kInvalidArgument);
  EXPECT_EQ(choose_base_backup(snaps, "nobody", {}).status().code(), core::Code::kNotFound);
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(PostgresTest, RecoverySettingsAreQuotedAndSignalled) {
  TempDir dir;
  { std::ofstream(dir / "postgresql.auto.conf") << "# existing\n"; }
  RecoveryTarget t{RecoveryTarget::Kind::kName, "before 'deploy'", "pause", "latest"};
  ASSERT_TRUE(write_recovery_config(dir.path(), t, "cairn wal-get --service 'it''s' %f %p").ok());
  std::string conf = slurp(dir / "postgresql.auto.conf");
  EXPECT_EQ(conf.rfind("# existing\n", 0), 0u) << "appends, keeps what was there";
  EXPECT_NE(conf.find("restore_command = 'cairn wal-get --service ''it''''s'' %f %p'"),
            std::string::npos)
      << conf;
  EXPECT_NE(conf.find("recovery_target_name = 'before ''deploy'''"), std::string::npos) << conf;
  EXPECT_NE(conf.find("recovery_target_action = 'pause'"), std::string::npos);
  EXPECT_TRUE(std::filesystem::exists(dir / "recovery.signal"));
  EXPECT_EQ(shell_quote("a'b c"), "'a'\\''b c'");
}

TEST(PostgresTest, DsnPasswordsStayOutOfMessages) {
  EXPECT_EQ(redact_dsn("host=/tmp port=5432 user=app password=s3cret dbname=shop").find("s3cret"),
            std::string::npos);
  EXPECT_EQ(redact_dsn("postgresql://app:s3cret@db:5432/shop").find("s3cret"), std::string::npos);
  auto d = with_dbname("host=/tmp dbname=shop user=app", "other");
  ASSERT_TRUE(d.ok());
  EXPECT_NE(d->find("dbname='other'"), std::string::npos);
  EXPECT_EQ(d->find("shop"), std::string::npos);
  auto bad = PgConn::connect("host=/tmp password=s3cret dbname='open");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), core::Code::kInvalidArgument);
  EXPECT_EQ(bad.status().message().find("s3cret"), std::string::npos);
}

// The log archive (PostgreSQL WAL) inside a repository.
class LogArchiveTest : public testing::MemoryRepoTest {};

TEST_F(LogArchiveTest, PushIsIdempotentAndRefusesDifferentContent) {
  core::Bytes seg = testing::random_data(3 << 20, 1);
  std::string path = write("000000010000000000000001", seg);
  repo::LogArchive a(*repo_, "shop");
  EXPECT_TRUE(a.push("000000010000000000000001", path).value());
  EXPECT_FALSE(a.push("000000010000000000000001", path).value()) << "same content: nothing stored";
  core::Bytes other = seg;
  other[100] ^= 1;
  auto changed = a.push("000000010000000000000001", write("changed", other));
  EXPECT_EQ(changed.status().code(), core::Code::kAlreadyExists);
  // Another service's archive is separate.
  repo::LogArchive b(*repo_, "billing");
  EXPECT_FALSE(b.find("000000010000000000000001").value().has_value());
  EXPECT_EQ(a.list().value().size(), 1u);
  EXPECT_EQ(repo::list_all_log_entries(*repo_, nullptr).value().size(), 1u);

  // Fetch works without an index (locations recorded in the entry) and
  // from a fresh session.
  auto reopened = repo::Repository::open(backend_, "pw").value();
  repo::LogArchive fresh(*reopened, "shop");
  ASSERT_TRUE(fresh.fetch("000000010000000000000001", dir_ / "out").ok());
  EXPECT_EQ(core::to_bytes(testing::read_file(dir_ / "out")), seg);
  EXPECT_EQ(fresh.fetch("000000010000000000000002", dir_ / "none").code(), core::Code::kNotFound);
  EXPECT_EQ(fresh.find("../etc/passwd").status().code(), core::Code::kInvalidArgument);
}

TEST_F(LogArchiveTest, DamageIsAnErrorNotAMissingFile) {
  std::string path = write("seg", testing::random_data(1 << 20, 2));
  repo::LogArchive a(*repo_, "shop");
  ASSERT_TRUE(a.push("000000010000000000000007", path).ok());
  // Flip a byte in every stored pack: the fetch must fail as corruption.
  std::vector<std::string> packs;
  ASSERT_TRUE(backend_
                  ->list(storage::FileType::kPack,
                         [&](const storage::FileInfo& fi) { packs.push_back(fi.name); })
                  .ok());
  for (const auto& p : packs) {
    core::Bytes b = backend_->load({storage::FileType::kPack, p}).value();
    b[10] ^= 0xff;
    ASSERT_TRUE(backend_->remove({storage::FileType::kPack, p}).ok());
    ASSERT_TRUE(backend_->save({storage::FileType::kPack, p}, b).ok());
  }
  auto st = a.fetch("000000010000000000000007", dir_ / "out");
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.code(), core::Code::kNotFound);
  EXPECT_NE(st.message().find("000000010000000000000007"), std::string::npos) << st.message();
  EXPECT_FALSE(std::filesystem::exists(dir_ / "out"));
  EXPECT_FALSE(std::filesystem::exists(dir_ / "out.cairn-tmp"));
}

}  // namespace
}  // namespace cairn::engines::postgres
