#include "runbook/runbook.h"

#include <gtest/gtest.h>

#include <string>

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
)";

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
