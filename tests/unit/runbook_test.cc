#include "runbook/runbook.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "policy/catalog.h"

namespace cairn::runbook {
namespace {

constexpr char kPolicy[] = R"(version: 1
repository:
  location: /srv/backup/fleet
  password_file: /etc/cairn/fleet.pass
services:
  web:
    owner: "team <web> & co"
    tier: critical
    objectives: { rpo: 1h, rto: 1h }
    engine: { type: files, paths: [/srv/www] }
    schedule: "0 * * * *"
    drill: { schedule: "0 3 * * 0", checks: ["exec: test -s ./srv/www/index.html"] }
  dump:
    owner: team-dump
    objectives: { rpo: 1d, rto: 1h }
    engine: { type: exec, command: [mongodump, --archive, --gzip], filename: cat.archive.gz }
    schedule: "0 1,13 * * *"
  shop:
    owner: team-shop
    objectives: { rpo: 5m, rto: 1h }
    engine: { type: postgres, mode: physical, dsn: "host=/run/postgresql dbname=shop", wal_archiving: true }
    drill: { checks: ["SELECT count(*) > 0 FROM orders"] }
  orders:
    owner: team-orders
    objectives: { rpo: 5m, rto: 1h }
    engine: { type: mariadb, mode: logical, socket: /run/mysqld/mysqld.sock, user: backup, binlog_archiving: true }
    schedule: "0 2 * * *"
    drill: { checks: ["SELECT count(*) > 0 FROM shop.orders"] }
  orders-phys:
    owner: team-orders
    objectives: { rpo: 1d, rto: 4h }
    engine: { type: mariadb, mode: physical, socket: /run/mysqld/mysqld.sock }
    schedule: "0 2 * * *"
  cache:
    owner: team-web
    objectives: { rpo: 1h, rto: 30m }
    engine: { type: redis, host: 10.0.0.12, port: 6379 }
    schedule: "0 * * * *"
    drill: { checks: ['exec: redis-cli -p $REDIS_PORT exists k1 | grep -q 1'] }
  notes:
    owner: team-notes
    objectives: { rpo: 6h, rto: 30m }
    engine: { type: sqlite, path: /var/lib/app/app.db }
    schedule: "0 */6 * * *"
    drill: { checks: ["SELECT count(*) > 0 FROM items"] }
  uploads:
    owner: team-media
    objectives: { rpo: 1d, rto: 4h }
    engine: { type: volume, driver: btrfs, source: /srv/uploads }
    schedule: "0 2 * * *"
  lvdata:
    owner: team-media
    objectives: { rpo: 1d, rto: 4h }
    engine: { type: volume, driver: lvm, source: vg0/data }
    schedule: "0 2 * * *"
)";

// The script of the one block of `kind`, or "" (and a test failure) when
// there is not exactly one.
std::string block(const Runbook& b, const std::string& kind) {
  std::string out;
  int n = 0;
  for (const auto& c : b.commands)
    if (c.kind == kind) {
      out = c.script;
      ++n;
    }
  EXPECT_EQ(n, 1) << "blocks of kind " << kind;
  return out;
}

std::vector<std::string> kinds(const Runbook& b) {
  std::vector<std::string> out;
  for (const auto& c : b.commands) out.push_back(c.kind);
  return out;
}

struct Fixture {
  policy::LoadResult policy = policy::parse_catalog(kPolicy, "/etc/cairn/cairn.yaml");
  RunbookInput input(const std::string& service) {
    RunbookInput in;
    in.service = policy.catalog.find(service);
    in.config_path = "/etc/cairn/cairn.yaml";
    in.now = std::chrono::sys_seconds(std::chrono::seconds(1795000000));
    in.repository_error = "no credential";
    in.state_path = "/var/lib/cairn/state.db";
    return in;
  }
};

TEST(Runbook, FilesCommandsAreMarkedAndCarryTheConfig) {
  Fixture f;
  ASSERT_TRUE(f.policy.ok());
  Runbook b = build(f.input("web"));
  std::string md = b.markdown();
  EXPECT_NE(
      md.find(
          "```sh restore-latest\ntarget=\"${CAIRN_RESTORE_TARGET:-/var/tmp/cairn-restore/web}\"\n"
          "cairn --config /etc/cairn/cairn.yaml restore latest --service web --target \"$target\" "
          "--verify\n```"),
      std::string::npos)
      << md;
  EXPECT_NE(md.find("```sh restore-snapshot"), std::string::npos);
  EXPECT_NE(md.find("```sh verify"), std::string::npos);
  EXPECT_NE(md.find("```sh put-back"), std::string::npos);
  EXPECT_NE(md.find("password file /etc/cairn/fleet.pass"), std::string::npos);
  EXPECT_NE(md.find("every hour at minute 0"), std::string::npos);
  // Unopened repository and a critical service with no passing drill: loud.
  ASSERT_EQ(b.warnings.size(), 2u);
  EXPECT_NE(b.warnings[0].find("could not be opened (no credential)"), std::string::npos);
  EXPECT_NE(b.warnings[1].find("CRITICAL SERVICE WITHOUT A PASSING RESTORE DRILL"),
            std::string::npos);
  EXPECT_NE(md.find("No drill recorded"), std::string::npos);
}

TEST(Runbook, HtmlIsEscapedAndSelfContained) {
  Fixture f;
  Runbook b = build(f.input("web"));
  std::string html = b.html();
  EXPECT_NE(html.find("team &lt;web&gt; &amp; co"), std::string::npos);
  EXPECT_EQ(html.find("<web>"), std::string::npos);
  EXPECT_EQ(html.find("http"), std::string::npos) << "no external resources";
  EXPECT_NE(html.find("data-kind=\"restore-latest\""), std::string::npos);
  EXPECT_NE(html.find("&quot;$target&quot;"), std::string::npos);
  EXPECT_EQ(html_escape("<a href='x'>&</a>"), "&lt;a href=&#39;x&#39;&gt;&amp;&lt;/a&gt;");
}

TEST(Runbook, ExecRecognizesTheDumpTool) {
  Fixture f;
  Runbook b = build(f.input("dump"));
  std::string md = b.markdown();
  EXPECT_NE(
      md.find("cairn --config /etc/cairn/cairn.yaml dump latest:/cat.archive.gz --service dump > "
              "\"$target/cat.archive.gz\""),
      std::string::npos)
      << md;
  EXPECT_NE(md.find("```sh restore-load\n"), std::string::npos);
  EXPECT_NE(md.find("mongorestore --archive=\"$target/cat.archive.gz\" --gzip"), std::string::npos);
  EXPECT_EQ(b.warnings.size(), 1u) << "a medium service without a drill is not a warning";
}

TEST(Runbook, PostgresPhysicalHasPitrAndSqlChecks) {
  Fixture f;
  RunbookInput in = f.input("shop");
  in.repository_opened = true;
  in.repository_error.clear();
  engines::postgres::ArchiveReport a;
  a.segments = 3;
  a.newest_time = "2026-11-18T10:00:00Z";
  in.archive = a;
  repo::SnapshotRef base;
  base.id = "0123456789abcdef";
  base.snapshot.service = "shop";
  base.snapshot.time = *repo::parse_time("2026-11-18T08:00:00Z");
  base.snapshot.engine = {{"type", "postgres"},
                          {"mode", "physical"},
                          {"stop_time", "2026-11-18T08:01:00Z"},
                          {"server_version_num", 150018}};
  in.snapshots.push_back(base);
  Runbook b = build(in);
  EXPECT_EQ(b.recovery_window_from, "2026-11-18T08:01:00Z");
  EXPECT_EQ(b.recovery_window_to, "2026-11-18T10:00:00Z");
  std::string md = b.markdown();
  EXPECT_NE(md.find("```sh restore-pitr\n"), std::string::npos);
  EXPECT_NE(md.find("--to-time \"${CAIRN_RESTORE_TIME:-2026-11-18T10:00:00Z}\""), std::string::npos)
      << md;
  EXPECT_NE(md.find("/usr/lib/postgresql/15/bin/pg_ctl"), std::string::npos);
  EXPECT_NE(md.find("-d shop -XAtc 'SELECT count(*) > 0 FROM orders'"), std::string::npos) << md;
  // The newest point (WAL, 2026-11-18 10:00) is far older than now: RPO warning.
  bool rpo = false;
  for (const auto& w : b.warnings) rpo |= w.find("more than the RPO of 5m") != std::string::npos;
  EXPECT_TRUE(rpo);
  EXPECT_EQ(b.to_json()["recovery_window"]["to"], "2026-11-18T10:00:00Z");
}

TEST(Runbook, DrillsFromTheState) {
  Fixture f;
  RunbookInput in = f.input("web");
  drill::DrillReport failed;
  failed.service = "web";
  failed.passed = false;
  failed.failure = "1 check(s) failed";
  failed.started_at = "2026-11-20T03:00:00Z";
  drill::DrillReport ok = failed;
  ok.passed = true;
  ok.failure.clear();
  ok.rto_s = 12.5;
  ok.started_at = "2026-11-13T03:00:00Z";
  in.state_available = true;
  in.last_drill = failed;
  in.last_passing_drill = ok;
  Runbook b = build(in);
  std::string md = b.markdown();
  EXPECT_NE(md.find("Last drill **FAILED** on 2026-11-20T03:00:00Z"), std::string::npos) << md;
  EXPECT_NE(md.find("Last passing drill **passed** on 2026-11-13T03:00:00Z: RTO 12.5"),
            std::string::npos)
      << md;
  bool failed_warning = false, critical = false;
  for (const auto& w : b.warnings) {
    failed_warning |= w.find("FAILED") != std::string::npos;
    critical |= w.find("CRITICAL SERVICE") != std::string::npos;
  }
  EXPECT_TRUE(failed_warning);
  EXPECT_FALSE(critical) << "a passing drill exists";
}

TEST(Runbook, MariadbLogicalWithBinlogsHasExactPitrCommands) {
  Fixture f;
  ASSERT_TRUE(f.policy.ok());
  Runbook b = build(f.input("orders"));
  EXPECT_TRUE(b.pitr);
  EXPECT_EQ(kinds(b), (std::vector<std::string>{"start-server", "restore-latest", "restore-pitr",
                                                "restore-position", "restore-snapshot", "verify",
                                                "stop-server", "drill", "fleet-restore"}));
  const std::string target = "target=\"${CAIRN_RESTORE_TARGET:-/var/tmp/cairn-restore/orders}\"\n";
  const std::string sock = "socket=\"${CAIRN_RESTORE_SOCKET:-$target/mysqld.sock}\"\n";
  const std::string cairn = "cairn --config /etc/cairn/cairn.yaml ";
  EXPECT_EQ(block(b, "restore-latest"),
            target + sock + cairn + "mariadb restore --service orders --socket \"$socket\"\n");
  EXPECT_EQ(block(b, "restore-pitr"),
            target + sock + cairn +
                "mariadb restore --service orders --socket \"$socket\" --to-time "
                "\"${CAIRN_RESTORE_TIME:?set CAIRN_RESTORE_TIME to the time to recover to, e.g. "
                "2026-11-25T10:31:00Z}\"\n");
  EXPECT_EQ(block(b, "restore-position"),
            target + sock + cairn +
                "mariadb restore --service orders --socket \"$socket\" --to-position "
                "\"${CAIRN_RESTORE_POSITION:?set CAIRN_RESTORE_POSITION to FILE:POS, e.g. "
                "binlog.000042:1234}\"\n");
  EXPECT_NE(block(b, "restore-snapshot").find("--snapshot \"$snapshot\" --base-only\n"),
            std::string::npos);
  std::string start = block(b, "start-server");
  EXPECT_NE(start.find("mariadb-install-db $u --datadir=\"$target/data\" --skip-test-db"),
            std::string::npos)
      << start;
  EXPECT_NE(
      start.find("mariadbd $u --datadir=\"$target/data\" --socket=\"$socket\" --skip-networking"),
      std::string::npos);
  EXPECT_NE(start.find("u=\"--user=mysql\""), std::string::npos) << "as root, as mysql";
  std::string verify = block(b, "verify");
  EXPECT_NE(verify.find("mariadb-check --socket=\"$socket\" --all-databases --check"),
            std::string::npos);
  EXPECT_NE(verify.find("v=$(mariadb --socket=\"$socket\" -NBe 'SELECT count(*) > 0 FROM "
                        "shop.orders' | head -n 1)"),
            std::string::npos)
      << verify;
  EXPECT_EQ(block(b, "stop-server"),
            target + sock + "mariadb-admin --socket=\"$socket\" shutdown\n");
  std::string md = b.markdown();
  EXPECT_NE(md.find("mariadb binlog-sync --service orders --flush"), std::string::npos);
  EXPECT_EQ(md.find("Point-in-time recovery window"), std::string::npos) << "PostgreSQL only";
  EXPECT_NE(md.find("```sh restore-pitr\n"), std::string::npos);
}

TEST(Runbook, MariadbPhysicalRestoresADataDirectory) {
  Fixture f;
  Runbook b = build(f.input("orders-phys"));
  EXPECT_FALSE(b.pitr) << "no binlog archiving";
  EXPECT_EQ(kinds(b),
            (std::vector<std::string>{"restore-latest", "restore-snapshot", "start-server",
                                      "verify", "stop-server", "drill", "fleet-restore"}));
  EXPECT_NE(block(b, "restore-latest")
                .find("mariadb restore --service orders-phys --target-dir \"$target/data\" "
                      "--base-only\n"),
            std::string::npos);
  std::string start = block(b, "start-server");
  EXPECT_EQ(start.find("mariadb-install-db"), std::string::npos) << "the restored datadir is used";
  EXPECT_NE(start.find("chown -R mysql:mysql \"$target\""), std::string::npos);
}

TEST(Runbook, RedisRestoresLoadsAndCounts) {
  Fixture f;
  RunbookInput in = f.input("cache");
  in.repository_opened = true;
  repo::SnapshotRef s;
  s.id = "89abcdef01234567";
  s.snapshot.service = "cache";
  s.snapshot.time = *repo::parse_time("2026-11-18T08:00:00Z");
  s.snapshot.engine = {{"type", "redis"}, {"keys", 20011}, {"redis_version", "7.0.15"}};
  in.snapshots.push_back(s);
  Runbook b = build(in);
  EXPECT_EQ(kinds(b), (std::vector<std::string>{"restore-latest", "restore-snapshot",
                                                "start-server", "verify", "stop-server", "put-back",
                                                "drill", "fleet-restore"}));
  EXPECT_EQ(block(b, "restore-latest"),
            "target=\"${CAIRN_RESTORE_TARGET:-/var/tmp/cairn-restore/cache}\"\n"
            "cairn --config /etc/cairn/cairn.yaml redis restore --service cache --target-dir "
            "\"$target\"\n");
  EXPECT_NE(block(b, "restore-snapshot").find("snapshot=\"${CAIRN_RESTORE_SNAPSHOT:-89abcdef}\""),
            std::string::npos);
  std::string start = block(b, "start-server");
  EXPECT_NE(start.find("redis-server --port \"$port\" --bind 127.0.0.1 --dir \"$target\" "
                       "--dbfilename dump.rdb --appendonly no --save ''"),
            std::string::npos)
      << start;
  EXPECT_NE(start.find("as=\"runuser -u redis --\""), std::string::npos);
  std::string verify = block(b, "verify");
  EXPECT_NE(verify.find("redis-check-rdb \"$target/dump.rdb\""), std::string::npos);
  EXPECT_NE(verify.find("(the newest snapshot recorded 20011 in all databases)"),
            std::string::npos);
  EXPECT_NE(verify.find("REDIS_HOST=127.0.0.1 REDIS_PORT=\"$port\" sh -c 'redis-cli -p "
                        "$REDIS_PORT exists k1 | grep -q 1'"),
            std::string::npos)
      << verify;
  EXPECT_NE(block(b, "put-back").find("--target-dir \"$dir\" --force"), std::string::npos);
}

TEST(Runbook, SqliteRestoresBesideAndPutsBackWithForce) {
  Fixture f;
  Runbook b = build(f.input("notes"));
  EXPECT_EQ(kinds(b), (std::vector<std::string>{"restore-latest", "restore-snapshot", "verify",
                                                "put-back", "drill", "fleet-restore"}));
  EXPECT_EQ(block(b, "restore-latest"),
            "target=\"${CAIRN_RESTORE_TARGET:-/var/tmp/cairn-restore/notes}\"\n"
            "db=\"$target/app.db\"\n"
            "cairn --config /etc/cairn/cairn.yaml sqlite restore --service notes --target "
            "\"$db\"\n");
  std::string verify = block(b, "verify");
  EXPECT_NE(verify.find("[ \"$(sqlite3 \"$db\" 'PRAGMA integrity_check')\" = ok ]"),
            std::string::npos);
  EXPECT_NE(verify.find("'SELECT count(*) > 0 FROM items'"), std::string::npos);
  EXPECT_NE(block(b, "put-back").find("--target /var/lib/app/app.db --force"), std::string::npos);
}

TEST(Runbook, VolumeComparesAndPutsBackPerDriver) {
  Fixture f;
  Runbook b = build(f.input("uploads"));
  EXPECT_NE(block(b, "restore-latest")
                .find("restore latest --service uploads --target \"$target\" --verify"),
            std::string::npos);
  EXPECT_NE(
      block(b, "verify").find("diff -rq --no-dereference /srv/uploads \"$target/srv/uploads\""),
      std::string::npos);
  EXPECT_NE(block(b, "put-back").find("btrfs subvolume create /srv/uploads.new"),
            std::string::npos);
  // LVM named as vg/lv: the recorded mount point comes from the newest snapshot.
  RunbookInput in = f.input("lvdata");
  in.repository_opened = true;
  repo::SnapshotRef s;
  s.id = "fedcba9876543210";
  s.snapshot.service = "lvdata";
  s.snapshot.time = *repo::parse_time("2026-11-18T08:00:00Z");
  s.snapshot.engine = {{"type", "volume"}, {"driver", "lvm"}, {"source", "/srv/data"}};
  in.snapshots.push_back(s);
  Runbook lv = build(in);
  EXPECT_NE(
      block(lv, "put-back")
          .find("restore \"$snapshot:/srv/data\" --service lvdata --target /srv/data --verify"),
      std::string::npos)
      << block(lv, "put-back");
  // Without a snapshot the mount point is unknown: no comparison, no put-back.
  Runbook unknown = build(f.input("lvdata"));
  EXPECT_EQ(kinds(unknown), (std::vector<std::string>{"restore-latest", "restore-snapshot", "drill",
                                                      "fleet-restore"}));
}

TEST(Runbook, EveryServiceCanProveItAndJoinAFleetRestore) {
  Fixture f;
  for (const char* name : {"web", "dump", "shop", "orders", "cache", "notes", "uploads"}) {
    Runbook b = build(f.input(name));
    EXPECT_EQ(block(b, "drill"), "cairn --config /etc/cairn/cairn.yaml drill run --service " +
                                     std::string(name) + "\n");
    EXPECT_EQ(block(b, "fleet-restore"),
              "root=\"${CAIRN_RESTORE_ROOT:-/var/tmp/cairn-restore/fleet}\"\n"
              "when=\"${CAIRN_RESTORE_TIME:-$(date -u -d +1sec +%Y-%m-%dT%H:%M:%SZ)}\"\n"
              "cairn --config /etc/cairn/cairn.yaml fleet restore --services " +
                  std::string(name) + " --to-time \"$when\" --target-root \"$root\"\n");
    std::string md = b.markdown();
    EXPECT_NE(md.find("## Prove it\n"), std::string::npos) << name;
    EXPECT_NE(md.find("```sh fleet-restore\n"), std::string::npos) << name;
  }
  // fleet restore brings MariaDB back from its dump: the runbook points to
  // restore-pitr for the exact instant.
  for (const auto& c : build(f.input("orders")).commands) {
    if (c.kind == "fleet-restore") {
      EXPECT_NE(c.note.find("use `restore-pitr`"), std::string::npos);
    }
  }
  for (const auto& c : build(f.input("notes")).commands) {
    if (c.kind == "fleet-restore") {
      EXPECT_EQ(c.note.find("restore-pitr"), std::string::npos);
    }
  }
}

TEST(Runbook, ShellWords) {
  EXPECT_EQ(sh_word("/etc/cairn/cairn.yaml"), "/etc/cairn/cairn.yaml");
  EXPECT_EQ(sh_word("/etc/my cairn/x.yaml"), "'/etc/my cairn/x.yaml'");
  EXPECT_EQ(sh_word("it's"), "'it'\\''s'");
}

TEST(DescribeSchedule, CommonForms) {
  EXPECT_EQ(describe_schedule("0 */6 * * *"), "at 00:00, 06:00, 12:00 and 18:00 every day");
  EXPECT_EQ(describe_schedule("0 3 * * 0"), "at 03:00 on Sunday");
  EXPECT_EQ(describe_schedule("30 2 * * MON-FRI"), "at 02:30 on Monday to Friday");
  EXPECT_EQ(describe_schedule("*/15 * * * *"), "every 15 minutes");
  EXPECT_EQ(describe_schedule("0 * * * *"), "every hour at minute 0");
  EXPECT_EQ(describe_schedule("0 5 1,15 * *"), "at 05:00 on days 1 and 15 of the month");
  EXPECT_EQ(describe_schedule("0 4 1 JAN,JUL *"),
            "at 04:00 on day 1 of the month in January and July");
  EXPECT_EQ(describe_schedule("@daily"), "every day at 00:00");
  EXPECT_EQ(describe_schedule("@every 90m"), "every 90m");
  EXPECT_EQ(describe_schedule(""), "not scheduled");
}

}  // namespace
}  // namespace cairn::runbook
