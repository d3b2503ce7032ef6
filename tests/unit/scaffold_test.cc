#include "policy/scaffold.h"

#include <gtest/gtest.h>

#include <string>

#include "policy/catalog.h"

namespace cairn::policy {
namespace {

constexpr char kHeader[] = "version: 1\nrepository: /srv/backup/fleet\n";

ScaffoldOptions opts(const std::string& name, const std::string& engine,
                     const std::string& tier = "medium", const std::string& mode = "",
                     int indent = 2) {
  ScaffoldOptions o;
  o.name = name;
  o.engine = engine;
  o.tier = tier;
  o.mode = mode;
  o.indent = indent;
  return o;
}

std::string errors_of(const LoadResult& r) {
  std::string out;
  for (const auto& d : r.diagnostics)
    if (d.severity == Diagnostic::Severity::kError) out += d.to_string() + "\n";
  return out;
}

// Every engine this cairn validates, in every tier, with the file's
// repository and with one of its own: the scaffold passes validation.
TEST(Scaffold, ValidatesForEveryValidatedEngineAndTier) {
  struct Case {
    std::string engine, mode;
  };
  for (const Case& c : {Case{"files", ""}, Case{"exec", ""}, Case{"postgres", "physical"},
                        Case{"postgres", "logical"}}) {
    for (const auto& t : all_tier_defaults()) {
      for (bool own_repo : {false, true}) {
        ScaffoldOptions o;
        o.name = "svc-" + c.engine;
        o.engine = c.engine;
        o.mode = c.mode;
        o.tier = t.tier;
        if (own_repo) {
          o.repository_location = "/srv/backup/own";
          o.password_file = "/etc/cairn/own.password";
        }
        auto entry = scaffold_service(o);
        ASSERT_TRUE(entry.ok()) << entry.status().message();
        for (const char* zone : {"UTC", "Europe/Berlin", "America/New_York"}) {
          std::string text = std::string(own_repo ? "version: 1\n" : kHeader) + "services:\n" +
                             *entry + "daemon: { timezone: " + zone + " }\n";
          LoadResult r = parse_catalog(text, "cairn.yaml");
          EXPECT_EQ(errors_of(r), "")
              << c.engine << " " << c.mode << " tier " << t.tier << " in " << zone << ":\n"
              << text;
          const Service* s = r.catalog.find(o.name);
          ASSERT_NE(s, nullptr);
          EXPECT_EQ(s->tier, t.tier);
          EXPECT_FALSE(s->drill.schedule_text.empty()) << "every tier is drilled";
        }
      }
    }
  }
}

TEST(Scaffold, TierDefaults) {
  const TierDefaults* c = tier_defaults("critical");
  ASSERT_NE(c, nullptr);
  EXPECT_STREQ(c->rpo, "15m");
  EXPECT_STREQ(c->rto, "1h");
  EXPECT_STREQ(c->continuous_schedule, "0 */6 * * *");
  EXPECT_EQ(tier_defaults("urgent"), nullptr);
  ScaffoldOptions o = opts("shop", "postgres", "critical");
  auto e = scaffold_service(o);
  ASSERT_TRUE(e.ok());
  EXPECT_NE(e->find("mode: physical"), std::string::npos);
  EXPECT_NE(e->find("wal_archiving: true"), std::string::npos);
  EXPECT_NE(e->find("schedule: \"0 */6 * * *\""), std::string::npos);
  EXPECT_NE(e->find("rpo: 15m, rto: 1h"), std::string::npos);
  EXPECT_NE(e->find("owner: team-shop"), std::string::npos);
}

// The engines other changes add: the documented fields, even though this
// branch does not validate them yet.
TEST(Scaffold, EnginesValidatedElsewhere) {
  auto entry = [](const std::string& engine) {
    ScaffoldOptions o = opts("db", engine);
    auto e = scaffold_service(o);
    EXPECT_TRUE(e.ok());
    return e.ok() ? *e : std::string();
  };
  EXPECT_NE(entry("mariadb").find(
                "{ type: mariadb, mode: logical, socket: /run/mysqld/mysqld.sock, user: root }"),
            std::string::npos);
  EXPECT_NE(entry("redis").find("{ type: redis, host: 127.0.0.1, port: 6379 }"), std::string::npos);
  EXPECT_NE(entry("sqlite").find("{ type: sqlite, path: /var/lib/db/db.db }"), std::string::npos);
}

TEST(Scaffold, RefusesBadInput) {
  EXPECT_FALSE(scaffold_service(opts("Shop", "files")).ok());
  EXPECT_FALSE(scaffold_service(opts("shop", "mongodb")).ok());
  EXPECT_FALSE(scaffold_service(opts("shop", "files", "urgent")).ok());
  EXPECT_FALSE(scaffold_service(opts("shop", "files", "medium", "logical")).ok());
  EXPECT_FALSE(scaffold_service(opts("shop", "postgres", "medium", "dump")).ok());
}

TEST(Scaffold, IndentFollowsTheFile) {
  ScaffoldOptions o = opts("web", "files", "medium", "", 4);
  auto e = scaffold_service(o);
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->rfind("    web:\n        owner", 0), std::string::npos);  // comment line comes first
  EXPECT_EQ(e->rfind("    web:\n        # scaffolded", 0), 0u) << *e;
  LoadResult r = parse_catalog(std::string(kHeader) + "services:\n" + *e, "x");
  EXPECT_EQ(errors_of(r), "");
}

TEST(InsertService, KeepsTextAndCommentsAndLandsInServices) {
  const std::string text =
      "# fleet policy\nversion: 1   # keep me\nrepository: /srv/r\nservices:\n  a:   # first\n    "
      "owner: x\n"
      "    objectives: {rpo: 1d, rto: 1d}\n    engine: {type: files, paths: [/a]}\n    schedule: "
      "'@hourly'\n"
      "    # trailing comment of a\n\n# about the daemon\ndaemon:\n  timezone: UTC\n";
  const std::string entry =
      "  b:\n    owner: y\n    objectives: {rpo: 1d, rto: 1d}\n"
      "    engine: {type: files, paths: [/b]}\n    schedule: '@hourly'\n";
  auto out = insert_service(text, entry);
  ASSERT_TRUE(out.ok()) << out.status().message();
  // Every original line is still there, in order.
  size_t pos = 0;
  for (size_t start = 0; start < text.size();) {
    size_t end = text.find('\n', start);
    std::string line = text.substr(start, end - start);
    pos = out->find(line, pos);
    ASSERT_NE(pos, std::string::npos) << "lost line: " << line << "\n" << *out;
    start = end + 1;
  }
  EXPECT_LT(out->find("  b:\n"), out->find("# about the daemon"));
  EXPECT_GT(out->find("  b:\n"), out->find("# trailing comment of a"));
  LoadResult r = parse_catalog(*out, "x");
  EXPECT_EQ(errors_of(r), "") << *out;
  ASSERT_EQ(r.catalog.services.size(), 2u);
  EXPECT_EQ(r.catalog.services[1].name, "b");
  EXPECT_EQ(r.catalog.daemon.timezone, "UTC");
}

TEST(InsertService, ServicesLastNoFinalNewlineAndNoServices) {
  const std::string entry = "  b:\n    owner: y\n";
  auto last = insert_service("services:\n  a:\n    owner: x", entry);
  ASSERT_TRUE(last.ok());
  EXPECT_EQ(*last, "services:\n  a:\n    owner: x\n\n  b:\n    owner: y\n");
  auto none = insert_service("version: 1\n", entry);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(*none, "version: 1\nservices:\n  b:\n    owner: y\n");
  auto before = insert_service("services:\n  a:\n    owner: x\ndaemon:\n  timezone: UTC", entry);
  ASSERT_TRUE(before.ok());
  EXPECT_EQ(*before,
            "services:\n  a:\n    owner: x\n\n  b:\n    owner: y\n\ndaemon:\n  timezone: UTC");
  EXPECT_FALSE(insert_service("services: {a: {owner: x}}\n", entry).ok());
}

TEST(Outline, NamesRepositoryAndIndent) {
  auto o = outline(
      "defaults:\n  repository: /r\nservices:\n    # c\n    a: {owner: x}\n    b: {owner: y}\n",
      "x");
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->services, (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(o->has_repository);
  EXPECT_EQ(o->indent, 4);
  auto empty = outline("", "x");
  ASSERT_TRUE(empty.ok());
  EXPECT_FALSE(empty->has_repository);
  EXPECT_FALSE(outline("services: [\n", "x").ok());
}

}  // namespace
}  // namespace cairn::policy
