// MariaDB engine: binlog coordinates from dumps, mariadb-backup logs and
// --to-position, the binlog event walk, archive gap detection, base backup
// choice, and the engine's policy keys.
#include "engines/mariadb/mariadb.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "engines/mariadb/dump_stream.h"
#include "policy/catalog.h"
#include "repo/timefmt.h"

namespace cairn::engines::mariadb {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

TEST(MariadbPosition, ParsesFileColonOffset) {
  auto p = parse_position("binlog.000042:1234");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->file, "binlog.000042");
  EXPECT_EQ(p->position, 1234u);
  EXPECT_EQ(parse_position("mysql-bin.000001:4")->file, "mysql-bin.000001");
}

TEST(MariadbPosition, RejectsMalformedPositions) {
  for (const char* bad :
       {"", "binlog.000042", "binlog.000042:", ":12", "binlog.000042:12x", "binlog:12",
        "../binlog.000001:4", "binlog.000001:-4", "bin log.000001:4"})
    EXPECT_FALSE(parse_position(bad)) << bad;
}

TEST(MariadbPosition, SequenceAndOrder) {
  EXPECT_EQ(binlog_sequence("binlog.000042"), 42u);
  EXPECT_EQ(binlog_sequence("a.b.000007"), 7u);
  EXPECT_FALSE(binlog_sequence("binlog"));
  EXPECT_FALSE(binlog_sequence("binlog.index"));
  EXPECT_EQ(binlog_stem("a.b.000007"), "a.b");
  EXPECT_TRUE(position_before({"binlog.000001", 900}, {"binlog.000002", 4}));
  EXPECT_TRUE(position_before({"binlog.000002", 4}, {"binlog.000002", 5}));
  EXPECT_FALSE(position_before({"binlog.000002", 5}, {"binlog.000002", 5}));
  EXPECT_FALSE(position_before({"binlog.000010", 4}, {"binlog.000009", 999999}));
}

TEST(MariadbPosition, ChangeMasterCommentOfADump) {
  std::string head =
      "-- MariaDB dump 10.19  Distrib 10.11.19-MariaDB\n--\n"
      "-- Position to start replication or point-in-time recovery from\n--\n\n"
      "-- CHANGE MASTER TO MASTER_LOG_FILE='binlog.000003', MASTER_LOG_POS=1108;\n\n"
      "-- Current Database: `shop`\n";
  auto p = parse_change_master(head);
  ASSERT_TRUE(p);
  EXPECT_EQ(*p, (BinlogPosition{"binlog.000003", 1108}));
  EXPECT_FALSE(parse_change_master("-- CHANGE MASTER TO MASTER_LOG_FILE='binlog.000003'"));
  // Only the first digits have arrived yet: not a position.
  EXPECT_FALSE(parse_change_master(
      "-- CHANGE MASTER TO MASTER_LOG_FILE='binlog.000003', MASTER_LOG_POS=11"));
  EXPECT_FALSE(
      parse_change_master("-- CHANGE MASTER TO MASTER_LOG_FILE='../x', MASTER_LOG_POS=4;"));
  EXPECT_FALSE(parse_change_master(""));
}

// A dump stream watched as it passes, in pieces of every size: the
// CHANGE MASTER comment is reported once, when its last byte arrives; the
// end must be the "-- Dump completed" line.
TEST(MariadbDumpWatch, FindsTheCommentAcrossPiecesAndChecksTheEnd) {
  std::string dump =
      "-- MariaDB dump 10.19\n--\n-- Position to start replication or point-in-time recovery from\n"
      "--\n\n-- CHANGE MASTER TO MASTER_LOG_FILE='binlog.000007', MASTER_LOG_POS=1234;\n\n" +
      std::string(100 << 10, 'x') + "\n-- Dump completed on 2026-11-27  0:10:00\n";
  for (size_t piece : {size_t{1}, size_t{7}, size_t{4096}, dump.size()}) {
    DumpWatch w;
    int found = 0;
    size_t found_at = 0;
    for (size_t off = 0; off < dump.size(); off += piece) {
      size_t n = std::min(piece, dump.size() - off);
      if (w.observe(reinterpret_cast<const uint8_t*>(dump.data() + off), n)) {
        found++;
        found_at = off + n;
      }
    }
    EXPECT_EQ(found, 1) << piece;
    EXPECT_GE(found_at, dump.find("1234;") + 4) << piece;
    ASSERT_TRUE(w.position().has_value()) << piece;
    EXPECT_EQ(*w.position(), (BinlogPosition{"binlog.000007", 1234}));
    EXPECT_TRUE(w.check_complete("mariadb-dump").ok()) << piece;
  }
  // Cut short: no final line. Without the comment in the first 64 KiB the
  // watch stops looking (the head is done) and has no position.
  DumpWatch cut;
  std::string head = "-- MariaDB dump\n" + std::string(70 << 10, 'y');
  EXPECT_FALSE(cut.observe(reinterpret_cast<const uint8_t*>(head.data()), head.size()));
  EXPECT_TRUE(cut.head_done());
  EXPECT_FALSE(cut.position().has_value());
  auto st = cut.check_complete("mariadb-dump");
  ASSERT_FALSE(st.ok());
  EXPECT_THAT(st.message(), HasSubstr("a cut dump"));
}

TEST(MariadbPosition, MariabackupLogAndBinlogInfo) {
  std::string log =
      "[00] 2026-11-26 07:12:53 Executing FLUSH NO_WRITE_TO_BINLOG ENGINE LOGS...\n"
      "[00] 2026-11-26 07:12:53 MySQL binlog position: filename 'binlog.000003', position '379', "
      "GTID "
      "of the last change '0-1-6'\n[00] 2026-11-26 07:12:53 completed OK!\n";
  EXPECT_EQ(parse_backup_binlog_info(log), (BinlogPosition{"binlog.000003", 379}));
  EXPECT_EQ(parse_backup_binlog_info("binlog.000003\t379\t0-1-6\n"),
            (BinlogPosition{"binlog.000003", 379}));
  EXPECT_EQ(parse_backup_binlog_info("mysql-bin.000012\t4"),
            (BinlogPosition{"mysql-bin.000012", 4}));
  EXPECT_FALSE(parse_backup_binlog_info("completed OK!\n"));
}

// A binlog file of format v4: magic, then events (19-byte header + body).
class BinlogBuilder {
 public:
  BinlogBuilder() { bytes_ = {0xfe, 'b', 'i', 'n'}; }
  void event(uint32_t when, uint8_t type, std::vector<uint8_t> body) {
    uint32_t len = static_cast<uint32_t>(19 + body.size());
    uint32_t next = static_cast<uint32_t>(bytes_.size()) + len;
    put32(when);
    bytes_.push_back(type);
    put32(1);  // server id
    put32(len);
    put32(next);
    bytes_.push_back(0);
    bytes_.push_back(0);
    bytes_.insert(bytes_.end(), body.begin(), body.end());
  }
  // A Format_description event whose last 5 bytes are checksum alg + CRC.
  void fde(uint32_t when, bool crc) {
    std::vector<uint8_t> body(57 + 40, 0);
    body.push_back(crc ? 1 : 0);
    body.insert(body.end(), 4, 0);
    event(when, 15, body);
  }
  void rotate(uint32_t when, const std::string& next, bool crc) {
    std::vector<uint8_t> body(8, 0);
    body[0] = 4;
    body.insert(body.end(), next.begin(), next.end());
    if (crc) body.insert(body.end(), 4, 0xab);
    event(when, 4, body);
  }
  std::vector<uint8_t> bytes_;

 private:
  void put32(uint32_t v) {
    for (int i = 0; i < 4; i++) bytes_.push_back(static_cast<uint8_t>(v >> (8 * i)));
  }
};

TEST(MariadbBinlogScan, TimesEndAndRotation) {
  BinlogBuilder b;
  b.fde(1000, true);
  b.event(1001, 2, std::vector<uint8_t>(30, 'q'));  // a query
  b.event(1005, 16, std::vector<uint8_t>(12, 0));   // an xid
  b.rotate(1007, "binlog.000004", true);
  auto s = scan_binlog(b.bytes_.data(), b.bytes_.size());
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_EQ(s->events, 4u);
  EXPECT_EQ(s->first_time, 1000u);
  EXPECT_EQ(s->last_time, 1007u);
  EXPECT_TRUE(s->rotated);
  EXPECT_EQ(s->next_file, "binlog.000004");
  EXPECT_EQ(s->end_position, b.bytes_.size());
}

TEST(MariadbBinlogScan, WithoutChecksumsAndWithATornLastEvent) {
  BinlogBuilder b;
  b.fde(50, false);
  b.rotate(60, "binlog.000002", false);
  auto s = scan_binlog(b.bytes_.data(), b.bytes_.size());
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->next_file, "binlog.000002");
  size_t whole = b.bytes_.size();
  b.event(70, 2, std::vector<uint8_t>(100, 'x'));
  auto torn = scan_binlog(b.bytes_.data(), b.bytes_.size() - 10);
  ASSERT_TRUE(torn.ok());
  EXPECT_EQ(torn->end_position, whole);
  EXPECT_EQ(torn->last_time, 60u);
  EXPECT_FALSE(torn->stopped);
}

TEST(MariadbBinlogScan, RejectsWhatIsNotABinlog) {
  std::string text = "hello world, not a binlog";
  EXPECT_FALSE(scan_binlog(reinterpret_cast<const uint8_t*>(text.data()), text.size()).ok());
  BinlogBuilder b;
  b.event(1, 2, {});
  b.bytes_[4 + 9] = 3;  // event length 3 < header size
  EXPECT_EQ(scan_binlog(b.bytes_.data(), b.bytes_.size()).status().code(), core::Code::kCorruption);
}

TEST(MariadbGaps, ListsMissingNumbersKeepingWidth) {
  EXPECT_THAT(find_gaps({"binlog.000001", "binlog.000002", "binlog.000003"}), IsEmpty());
  EXPECT_THAT(find_gaps({"binlog.000003", "binlog.000001", "binlog.000004"}),
              ElementsAre("binlog.000002"));
  EXPECT_THAT(find_gaps({"binlog.000009", "binlog.000012"}),
              ElementsAre("binlog.000010", "binlog.000011"));
  EXPECT_THAT(find_gaps({}), IsEmpty());
}

TEST(MariadbTarget, TimeIsCutToWholeSeconds) {
  auto t = parse_time_target("2026-11-25T10:31:00.900Z");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->kind, RecoveryTarget::Kind::kTime);
  EXPECT_EQ(t->time, repo::parse_time("2026-11-25T10:31:00Z")->unix_ns / 1'000'000'000);
  EXPECT_EQ(parse_time_target("yesterday").status().code(), core::Code::kInvalidArgument);
}

repo::SnapshotRef base(const std::string& id, const std::string& mode,
                       const std::string& consistent, const std::string& file, uint64_t pos) {
  repo::SnapshotRef s;
  s.id = id;
  s.snapshot.service = "shop";
  s.snapshot.time = *repo::parse_time(consistent);
  s.snapshot.engine = {{"type", "mariadb"}, {"mode", mode}, {"consistent_time", consistent}};
  if (!file.empty()) {
    s.snapshot.engine["binlog_file"] = file;
    s.snapshot.engine["binlog_position"] = pos;
  }
  return s;
}

TEST(MariadbChooseBase, NewestBeforeTheTarget) {
  std::vector<repo::SnapshotRef> all = {
      base("a1", "logical", "2026-11-25T10:00:00Z", "binlog.000002", 100),
      base("b2", "logical", "2026-11-25T11:00:00.5Z", "binlog.000005", 400),
      base("c3", "physical", "2026-11-25T12:00:00Z", "binlog.000007", 4)};
  auto t = parse_time_target("2026-11-25T10:59:59Z");
  EXPECT_EQ(choose_base(all, "shop", "logical", *t)->id, "a1");
  // The target's whole second counts: a base inside it precedes it.
  EXPECT_EQ(choose_base(all, "shop", "logical", *parse_time_target("2026-11-25T11:00:00Z"))->id,
            "b2");
  EXPECT_EQ(choose_base(all, "shop", "", *parse_time_target("2026-11-25T13:00:00Z"))->id, "c3");
  RecoveryTarget pos;
  pos.kind = RecoveryTarget::Kind::kPosition;
  pos.position = {"binlog.000005", 399};
  EXPECT_EQ(choose_base(all, "shop", "logical", pos)->id, "a1");
  pos.position = {"binlog.000005", 400};
  EXPECT_EQ(choose_base(all, "shop", "logical", pos)->id, "b2");
  auto early = choose_base(all, "shop", "logical", *parse_time_target("2026-11-25T09:00:00Z"));
  EXPECT_EQ(early.status().code(), core::Code::kNotFound);
  EXPECT_THAT(early.status().message(), HasSubstr("precedes"));
  EXPECT_THAT(choose_base(all, "cart", "", RecoveryTarget{}).status().message(),
              HasSubstr("no MariaDB backup"));
}

TEST(MariadbChooseBase, ReplayNeedsABinlogPosition) {
  std::vector<repo::SnapshotRef> all = {base("a1", "logical", "2026-11-25T10:00:00Z", "", 0)};
  EXPECT_THAT(choose_base(all, "shop", "logical", RecoveryTarget{}).status().message(),
              HasSubstr("binlog position"));
  RecoveryTarget only;
  only.kind = RecoveryTarget::Kind::kBaseOnly;
  EXPECT_EQ(choose_base(all, "shop", "logical", only)->id, "a1");
}

const std::string kPolicy = R"(repository: /srv/backup
services:
  shop:
    owner: team-shop
    objectives: {rpo: 5m, rto: 1h}
    schedule: "0 3 * * *"
    engine:
      type: mariadb
)";

TEST(MariadbPolicy, BinlogArchivingMakesTheEngineContinuous) {
  auto r = policy::parse_catalog(kPolicy +
                                     "      socket: /run/mysqld/mysqld.sock\n"
                                     "      password: ${MARIADB_PASSWORD}\n"
                                     "      databases: [shop]\n      binlog_archiving: true\n",
                                 "cairn.yaml");
  for (const auto& d : r.diagnostics)
    EXPECT_EQ(d.severity, policy::Diagnostic::Severity::kWarning) << d.to_string();  // unset ${VAR}
  const auto& e = r.catalog.services.at(0).engine;
  EXPECT_EQ(e.mode, "logical");
  EXPECT_TRUE(e.continuous());
  EXPECT_EQ(policy::to_json(r.catalog.services.at(0))["engine"]["password"], "${MARIADB_PASSWORD}");
}

TEST(MariadbPolicy, RpoWithoutBinlogArchivingNeedsTheSchedule) {
  auto r = policy::parse_catalog(kPolicy, "cairn.yaml");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.diagnostics.at(0).to_string(), HasSubstr("or turn on engine.binlog_archiving"));
}

TEST(MariadbPolicy, TyposAndInlineSecretsAreErrors) {
  struct Case {
    std::string yaml, message;
  };
  for (const auto& c : std::vector<Case>{
           {"      binlog_archving: true\n",
            "unknown key \"binlog_archving\" (did you mean \"binlog_archiving\"?)"},
           {"      password: hunter2\n", "a secret is written inline"},
           {"      mode: logicial\n", "\"logicial\" is not logical or physical"},
           {"      port: 99999\n", "out of range"},
           {"      socket: run/mysqld.sock\n", "is not an absolute path"},
           {"      socket: /s\n      host: db\n", "give socket or host/port, not both"},
           {"      password_file: /p\n      password: ${X}\n", "not both"},
           {"      dsn: x\n", "unknown key \"dsn\""},
       }) {
    auto r =
        policy::parse_catalog(kPolicy + c.yaml + "      binlog_archiving: true\n", "cairn.yaml");
    std::string all;
    for (const auto& d : r.diagnostics) all += d.to_string() + "\n";
    EXPECT_FALSE(r.ok()) << c.yaml;
    EXPECT_THAT(all, HasSubstr(c.message)) << c.yaml;
  }
}

TEST(MariadbPolicy, ConnectionExpandsVariablesAndReadsThePasswordFile) {
  policy::EngineSpec e;
  e.type = "mariadb";
  e.host = "${CAIRN_TEST_MDB_HOST}";
  e.port = 3307;
  setenv("CAIRN_TEST_MDB_HOST", "db.internal", 1);
  auto c = connection_for(e);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->host, "db.internal");
  EXPECT_EQ(c->describe(), "db.internal:3307");
  unsetenv("CAIRN_TEST_MDB_HOST");
  EXPECT_EQ(connection_for(e).status().code(), core::Code::kInvalidArgument);
  policy::EngineSpec d;
  EXPECT_EQ(connection_for(d)->socket, "/run/mysqld/mysqld.sock");
  d.password_file = "/nonexistent/cairn-password";
  EXPECT_FALSE(connection_for(d).ok());
}

}  // namespace
}  // namespace cairn::engines::mariadb
