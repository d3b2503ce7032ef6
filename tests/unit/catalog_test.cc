#include "policy/catalog.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "policy/duration.h"
#include "test_util.h"

namespace cairn::policy {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

// Sets an environment variable for one test and restores the old value.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value)
      setenv(name, value, 1);
    else
      unsetenv(name);
  }
  ~ScopedEnv() {
    if (old_)
      setenv(name_.c_str(), old_->c_str(), 1);
    else
      unsetenv(name_.c_str());
  }

 private:
  std::string name_;
  std::optional<std::string> old_;
};

std::vector<std::string> diagnostics(const LoadResult& r) {
  std::vector<std::string> out;
  for (const auto& d : r.diagnostics) out.push_back(d.to_string());
  return out;
}

// One service that is valid on its own; the cases below change one thing.
// Lines: 1 version, 2 repository, 3 services, 4 web, 5 owner, 6 objectives,
// 7 schedule, 8 engine, 9 type, 10 paths.
const std::string kHead = R"(version: 1
repository: /srv/backup
services:
  web:
    owner: team-web
    objectives: {rpo: 1d, rto: 4h}
    schedule: "0 3 * * *"
    engine:
      type: files
      paths: [/srv/www]
)";

TEST(CatalogValid, MinimalServiceHasNoDiagnostics) {
  LoadResult r = parse_catalog(kHead, "cairn.yaml");
  EXPECT_THAT(diagnostics(r), IsEmpty());
  EXPECT_TRUE(r.ok());
  ASSERT_EQ(r.catalog.services.size(), 1u);
  const Service& s = r.catalog.services[0];
  EXPECT_EQ(s.name, "web");
  EXPECT_EQ(s.line, 4);
  EXPECT_EQ(s.column, 3);
  EXPECT_EQ(s.repository.location, "/srv/backup");
  EXPECT_EQ(s.objectives.rpo, std::chrono::hours(24));
  EXPECT_EQ(s.objectives.rto, std::chrono::hours(4));
  EXPECT_EQ(s.engine.paths, std::vector<std::string>{"/srv/www"});
  EXPECT_EQ(r.catalog.find("web"), &s);
  EXPECT_EQ(r.catalog.find("nope"), nullptr);
}

// The example fleet of docs/configuration.md: PostgreSQL with WAL archiving,
// plain files and MongoDB through the exec engine, with alerts and daemon
// settings. It must load without a single diagnostic.
const std::string kFleet = R"(# yaml-language-server: $schema=cairn.schema.json
version: 1

repository:
  location: /srv/backup/fleet
  password_file: /etc/cairn/fleet.password

defaults:
  schedule: "0 */6 * * *"
  retention: {daily: 7, weekly: 4, monthly: 12}
  timeout: 2h
  retries: 2
  retry_delay: 5m

services:
  shop-db:
    owner: team-shop
    tier: critical
    description: orders and customers
    objectives: {rpo: 5m, rto: 1h}
    engine:
      type: postgres
      mode: physical
      dsn: "host=/run/postgresql port=5432 user=backup password=${SHOP_PG_PASSWORD}"
      wal_archiving: true
    schedule: "0 2 * * *"
    retention: {daily: 14, weekly: 8, monthly: 12, yearly: 3}
    drill:
      schedule: "0 6 * * SUN"
      checks:
        - "SELECT count(*) > 0 FROM orders"
    tags: [pci]

  uploads:
    owner: team-web
    tier: high
    objectives: {rpo: 12h, rto: 4h}
    engine:
      type: files
      paths: [/srv/uploads, /etc/nginx]
      exclude: ["*.tmp", /srv/uploads/cache]
      one_file_system: true
    hooks:
      pre: ["sync -f /srv/uploads"]
      post: ["logger -t cairn \"uploads backup: $CAIRN_RESULT $CAIRN_SNAPSHOT_ID\""]

  catalog-mongo:
    owner: team-catalog
    objectives: {rpo: 1d, rto: 2h}
    schedule: "30 1,13 * * *"
    repository:
      location: s3:https://s3.eu-central-1.amazonaws.com/acme-backups/catalog
      password_command: "vault kv get -field=password secret/cairn/catalog"
    engine:
      type: exec
      # mongodump reads its connection string, password included, from its
      # config file (mode 0600): no secret in the argument list or in `ps`.
      command: [mongodump, --config=/etc/cairn/catalog-mongodump.yaml, --archive, --gzip]
      filename: catalog.archive.gz
      env: {TZ: UTC}
    timeout: 1h
    retries: 3
    retention: {last: 7, within: 1m}  # within: calendar units y, m (months), d, h

alerts:
  - name: oncall
    alertmanager: http://alertmanager.internal:9093
    min_severity: critical
  - webhook: https://chat.example.com/hooks/cairn
    services: [shop-db, uploads]
    headers:
      Authorization: "Bearer ${CHAT_TOKEN}"

daemon:
  state: /var/lib/cairn/state.db
  max_jobs: 2
  timezone: Europe/Berlin
  jitter: 5m
  catch_up: once
  listen: 127.0.0.1:9464
  shutdown_grace: 2m
  repeat_interval: 4h
  prune:
    schedule: "0 4 * * SUN"
    max_unused: 10%
)";

TEST(CatalogValid, ExampleFleetHasNoDiagnostics) {
  ScopedEnv a("SHOP_PG_PASSWORD", "pg-secret");
  ScopedEnv c("CHAT_TOKEN", "chat-token");
  LoadResult r = parse_catalog(kFleet, "cairn.yaml");
  EXPECT_THAT(diagnostics(r), IsEmpty());
  ASSERT_EQ(r.catalog.services.size(), 3u);
  const Service& db = r.catalog.services[0];
  EXPECT_EQ(db.name, "shop-db");
  EXPECT_TRUE(db.engine.continuous());
  EXPECT_EQ(db.retention.yearly, 3);
  EXPECT_EQ(db.timeout, std::chrono::hours(2));  // from defaults
  const Service& up = r.catalog.services[1];
  EXPECT_EQ(up.schedule_text, "0 */6 * * *");  // from defaults
  EXPECT_EQ(up.repository.password_file, "/etc/cairn/fleet.password");
  EXPECT_EQ(up.hooks.pre.size(), 1u);
  const Service& mongo = r.catalog.services[2];
  EXPECT_EQ(mongo.engine.command,
            (std::vector<std::string>{"mongodump", "--config=/etc/cairn/catalog-mongodump.yaml",
                                      "--archive", "--gzip"}));
  EXPECT_EQ(mongo.engine.filename, "catalog.archive.gz");
  EXPECT_EQ(mongo.engine.env.at("TZ"), "UTC");
  EXPECT_EQ(mongo.repository.password_command, "vault kv get -field=password secret/cairn/catalog");
  EXPECT_EQ(mongo.timeout, std::chrono::hours(1));
  EXPECT_EQ(mongo.retry_delay, std::chrono::minutes(5));
  ASSERT_EQ(r.catalog.alerts.size(), 2u);
  EXPECT_EQ(r.catalog.alerts[0].type, "alertmanager");
  EXPECT_EQ(r.catalog.alerts[0].name, "oncall");
  EXPECT_EQ(r.catalog.alerts[1].type, "webhook");
  EXPECT_EQ(r.catalog.alerts[1].name, "webhook-1");
  EXPECT_EQ(r.catalog.daemon.timezone, "Europe/Berlin");
  EXPECT_EQ(r.catalog.daemon.max_unused, "10%");
  ASSERT_TRUE(r.catalog.daemon.prune_schedule.has_value());
}

// docs/configuration.md shows the same fleet; keep the two identical so the
// documented example is known to load without a diagnostic.
TEST(CatalogValid, DocumentedExampleIsTheTestedFleet) {
  std::ifstream in(std::string(CAIRN_SOURCE_DIR) + "/docs/configuration.md");
  ASSERT_TRUE(in) << "docs/configuration.md not found under " << CAIRN_SOURCE_DIR;
  std::string line, example;
  bool marker = false, inside = false;
  while (std::getline(in, line)) {
    if (!marker) {
      marker = line == "<!-- example-fleet -->";
    } else if (!inside) {
      inside = line == "```yaml";
    } else if (line == "```") {
      break;
    } else {
      example += line + "\n";
    }
  }
  EXPECT_EQ(example, kFleet);
}

TEST(CatalogValid, UnsetVariablesAreWarningsNotErrors) {
  ScopedEnv a("SHOP_PG_PASSWORD", nullptr);
  ScopedEnv c("CHAT_TOKEN", nullptr);
  LoadResult r = parse_catalog(kFleet, "cairn.yaml");
  EXPECT_TRUE(r.ok());
  EXPECT_THAT(
      diagnostics(r),
      ElementsAre(
          "cairn.yaml:24:12: warning: service \"shop-db\": engine.dsn: environment variable "
          "SHOP_PG_PASSWORD is not set",
          "cairn.yaml:72:22: warning: alerts[1].headers.Authorization: environment variable "
          "CHAT_TOKEN is not set"));
  for (const auto& d : r.diagnostics) EXPECT_EQ(d.severity, Diagnostic::Severity::kWarning);
}

struct Case {
  const char* name;
  std::string text;
  std::vector<std::string> want;  // Diagnostic::to_string(), in order
};

void check(const std::vector<Case>& cases) {
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    LoadResult r = parse_catalog(c.text, "cairn.yaml");
    EXPECT_EQ(diagnostics(r), c.want) << c.text;
    bool has_error = false;
    for (const auto& d : r.diagnostics) has_error |= d.severity == Diagnostic::Severity::kError;
    EXPECT_EQ(r.ok(), !has_error);
  }
}

TEST(CatalogUnknownKeys, SuggestTheClosestKey) {
  check({
      {"top level",
       kHead + "daemn: {}\n",
       {"cairn.yaml:11:1: error: daemn: unknown key \"daemn\" (did you mean \"daemon\"?)"}},
      {"top level, nothing close",
       kHead + "colour: blue\n",
       {"cairn.yaml:11:1: error: colour: unknown key \"colour\""}},
      {"service",
       kHead + "    retenion: {daily: 7}\n",
       {"cairn.yaml:11:5: error: service \"web\": retenion: unknown key \"retenion\" (did you "
        "mean \"retention\"?)"}},
      {"engine",
       kHead + "      exclud: [\"*.tmp\"]\n",
       {"cairn.yaml:11:7: error: service \"web\": engine.exclud: unknown key \"exclud\" (did "
        "you mean \"exclude\"?)"}},
      {"engine key of another engine type",
       kHead + "      dsn: host=db\n",
       {"cairn.yaml:11:7: error: service \"web\": engine.dsn: unknown key \"dsn\""}},
      {"objectives",
       R"(version: 1
repository: /srv/backup
services:
  web:
    owner: team-web
    objectives: {rpo: 1d, rt0: 4h}
    schedule: "0 3 * * *"
    engine: {type: files, paths: [/srv/www]}
)",
       {"cairn.yaml:6:17: error: service \"web\": objectives.rto: missing",
        "cairn.yaml:6:27: error: service \"web\": objectives.rt0: unknown key \"rt0\" (did you "
        "mean \"rto\"?)"}},
      {"retention",
       kHead + "    retention:\n      daily: 7\n      weeky: 4\n",
       {"cairn.yaml:13:7: error: service \"web\": retention.weeky: unknown key \"weeky\" (did "
        "you mean \"weekly\"?)"}},
      {"drill",
       kHead + "    drill:\n      schedule: \"0 5 * * 0\"\n      check: [\"SELECT 1\"]\n",
       {"cairn.yaml:13:7: error: service \"web\": drill.check: unknown key \"check\" (did you "
        "mean \"checks\"?)"}},
      {"hooks",
       kHead + "    hooks:\n      pree: [\"true\"]\n",
       {"cairn.yaml:12:7: error: service \"web\": hooks.pree: unknown key \"pree\" (did you "
        "mean \"pre\"?)"}},
      {"repository",
       R"(version: 1
repository:
  location: /srv/backup
  pasword_file: /etc/cairn/pw
services:
  web:
    owner: team-web
    objectives: {rpo: 1d, rto: 4h}
    schedule: "0 3 * * *"
    engine: {type: files, paths: [/srv/www]}
)",
       {"cairn.yaml:4:3: error: repository.pasword_file: unknown key \"pasword_file\" (did you "
        "mean \"password_file\"?)"}},
      {"defaults",
       "defaults:\n  retension: {daily: 1}\n" + kHead,
       {"cairn.yaml:2:3: error: defaults.retension: unknown key \"retension\" (did you mean "
        "\"retention\"?)"}},
      {"defaults do not take a service's own keys",
       "defaults:\n  owner: ops\n" + kHead,
       {"cairn.yaml:2:3: error: defaults.owner: unknown key \"owner\""}},
      {"daemon",
       kHead + "daemon:\n  timezon: UTC\n  max_job: 4\n",
       {"cairn.yaml:12:3: error: daemon.timezon: unknown key \"timezon\" (did you mean "
        "\"timezone\"?)",
        "cairn.yaml:13:3: error: daemon.max_job: unknown key \"max_job\" (did you mean "
        "\"max_jobs\"?)"}},
      {"daemon prune",
       kHead + "daemon:\n  prune:\n    max_unsued: 5%\n",
       {"cairn.yaml:13:5: error: daemon.prune.max_unsued: unknown key \"max_unsued\" (did you "
        "mean \"max_unused\"?)"}},
      {"alerts",
       kHead + "alerts:\n  - webhook: https://hooks.example.com/x\n    header: {}\n",
       {"cairn.yaml:13:5: error: alerts[0].header: unknown key \"header\" (did you mean "
        "\"headers\"?)"}},
  });
}

TEST(CatalogTypes, WrongShapesAndValues) {
  check({
      {"services as a list",
       "version: 1\nrepository: /srv/backup\nservices:\n  - web\n",
       {"cairn.yaml:4:3: error: services: expected a mapping of service names to their settings "
        "(services: NAME: {...})"}},
      {"no services",
       "version: 1\nrepository: /srv/backup\n",
       {"cairn.yaml:1:1: error: services: no services defined (services: NAME: {...})"}},
      {"service as text",
       "repository: /srv/backup\nservices:\n  web: files\n",
       {"cairn.yaml:3:8: error: service \"web\": expected a mapping (key: value lines)"}},
      {"document as a list",
       "- web\n",
       {"cairn.yaml:1:1: error: expected a mapping (key: value lines)"}},
      {"engine as a list",
       R"(repository: /srv/backup
services:
  web:
    owner: team-web
    objectives: {rpo: 1d, rto: 4h}
    schedule: "0 3 * * *"
    engine: [files, /srv/www]
)",
       {"cairn.yaml:7:13: error: service \"web\": engine: expected a mapping with a type (files, "
        "exec, postgres, mariadb, redis, sqlite or volume)"}},
      {"retention as a list",
       kHead + "    retention: [7, 4]\n",
       {"cairn.yaml:11:16: error: service \"web\": retention: expected a mapping (key: value "
        "lines)"}},
      {"text where a number is expected",
       kHead + "    retries: many\n",
       {"cairn.yaml:11:14: error: service \"web\": retries: \"many\" is not a whole number"}},
      {"fraction where a whole number is expected",
       kHead + "    retention: {daily: 1.5}\n",
       {"cairn.yaml:11:24: error: service \"web\": retention.daily: \"1.5\" is not a whole "
        "number"}},
      {"list where a number is expected",
       kHead + "    retries: [1]\n",
       {"cairn.yaml:11:14: error: service \"web\": retries: expected a whole number"}},
      {"number out of range",
       kHead + "    retries: 1000\n",
       {"cairn.yaml:11:14: error: service \"web\": retries: 1000 is out of range 0-100"}},
      {"negative count",
       kHead + "    retention: {last: -1}\n",
       {"cairn.yaml:11:23: error: service \"web\": retention.last: -1 is out of range 0-100000"}},
      {"map where a list is expected",
       kHead + "    tags: {a: b}\n",
       {"cairn.yaml:11:11: error: service \"web\": tags: expected a list of text values"}},
      {"map inside a list of text",
       kHead + "    tags: [a, {b: c}]\n",
       {"cairn.yaml:11:15: error: service \"web\": tags[1]: expected a text value"}},
      {"not a boolean",
       kHead + "      one_file_system: maybe\n",
       {"cairn.yaml:11:24: error: service \"web\": engine.one_file_system: expected true or "
        "false"}},
      {"list where text is expected",
       kHead + "    tier: [a, b]\n",
       {"cairn.yaml:11:11: error: service \"web\": tier: expected a text value"}},
      {"unsupported version",
       "version: 2\n" + kHead.substr(kHead.find('\n') + 1),
       {"cairn.yaml:1:10: error: version: version 2 is not supported (this cairn reads version "
        "1)"}},
      {"unknown tier",
       kHead + "    tier: critcal\n",
       {"cairn.yaml:11:11: error: service \"web\": tier: \"critcal\" is not one of critical, "
        "high, medium, low (did you mean \"critical\"?)"}},
      {"bad service name",
       R"(repository: /srv/backup
services:
  Web Shop:
    owner: team-web
    objectives: {rpo: 1d, rto: 4h}
    schedule: "0 3 * * *"
    engine: {type: files, paths: [/srv/www]}
)",
       {"cairn.yaml:3:3: error: service \"Web Shop\": service names are lower-case letters, "
        "digits, '.', '_' and '-' (at most 63)"}},
      {"relative path",
       R"(repository: backups
services:
  web:
    owner: team-web
    objectives: {rpo: 1d, rto: 4h}
    schedule: "0 3 * * *"
    engine: {type: files, paths: [www]}
)",
       {"cairn.yaml:1:13: error: repository: \"backups\" is neither an absolute path nor "
        "s3:https://...",
        "cairn.yaml:7:34: error: service \"web\": engine.paths: \"www\" is not absolute"}},
      {"missing pieces",
       R"(services:
  web:
    tier: low
)",
       {"cairn.yaml:3:5: error: service \"web\": owner: missing: the team that answers for this "
        "service's data",
        "cairn.yaml:3:5: error: service \"web\": repository: missing: set repository here or at "
        "the top of the file",
        "cairn.yaml:3:5: error: service \"web\": objectives: missing: every service defines its "
        "rpo and rto (ADR-025)",
        "cairn.yaml:3:5: error: service \"web\": engine: missing: how to back this service up "
        "(files, exec, postgres, mariadb, redis, sqlite or volume)"}},
      {"not YAML",
       "services: [a\n",
       {"cairn.yaml:2:1: error: not valid YAML: end of sequence flow not found"}},
  });
}

TEST(CatalogDurations, BadDurationsNameTheText) {
  check({
      {"bare number",
       kHead + "    timeout: 90\n",
       {"cairn.yaml:11:14: error: service \"web\": timeout: invalid duration \"90\": \"90\" has "
        "no unit (w, d, h, m or s)"}},
      {"unit order",
       kHead + "    retry_delay: 30m1h\n",
       {"cairn.yaml:11:18: error: service \"web\": retry_delay: invalid duration \"30m1h\": each "
        "unit at most once, largest first (e.g. 1h30m)"}},
      {"negative",
       R"(repository: /srv/backup
services:
  web:
    owner: team-web
    objectives: {rpo: -5m, rto: 4h}
    schedule: "0 3 * * *"
    engine: {type: files, paths: [/srv/www]}
)",
       {"cairn.yaml:5:23: error: service \"web\": objectives.rpo: invalid duration \"-5m\": "
        "negative durations are not allowed"}},
      {"zero rpo",
       R"(repository: /srv/backup
services:
  web:
    owner: team-web
    objectives: {rpo: 0s, rto: 4h}
    schedule: "0 3 * * *"
    engine: {type: files, paths: [/srv/www]}
)",
       {"cairn.yaml:5:23: error: service \"web\": objectives.rpo: must be more than zero"}},
      {"unknown unit",
       kHead + "daemon: {jitter: 5min}\n",
       {"cairn.yaml:11:18: error: daemon.jitter: invalid duration \"5min\": expected a number at "
        "\"in\""}},
      {"duration as a map",
       kHead + "    timeout: {hours: 1}\n",
       {"cairn.yaml:11:14: error: service \"web\": timeout: expected a duration such as 15m, 1h "
        "or 7d"}},
  });
}

TEST(CatalogSchedules, CronErrorsComeFromCronSchedule) {
  check({
      {"minute out of range",
       R"(repository: /srv/backup
services:
  web:
    owner: team-web
    objectives: {rpo: 1d, rto: 4h}
    schedule: "61 3 * * *"
    engine: {type: files, paths: [/srv/www]}
)",
       {"cairn.yaml:6:15: error: service \"web\": schedule: minute field \"61\": value out of "
        "range 0-59"}},
      {"four fields",
       R"(repository: /srv/backup
services:
  web:
    owner: team-web
    objectives: {rpo: 1d, rto: 4h}
    schedule: 0 3 * *
    engine: {type: files, paths: [/srv/www]}
)",
       {"cairn.yaml:6:15: error: service \"web\": schedule: expected 5 fields, got 4"}},
      {"never fires",
       R"(repository: /srv/backup
services:
  web:
    owner: team-web
    objectives: {rpo: 1d, rto: 4h}
    schedule: "0 0 31 2 *"
    engine: {type: files, paths: [/srv/www]}
)",
       {"cairn.yaml:6:15: error: service \"web\": schedule: never fires: day-of-month \"31\" "
        "does not occur in month \"2\""}},
      {"drill of a critical service",
       kHead + "    tier: critical\n    drill:\n      schedule: "
               "\"0 5 * * FRY\"\n",
       // Reported once: the bad schedule, not also "needs a drill schedule".
       {"cairn.yaml:13:17: error: service \"web\": drill.schedule: unknown weekday name "
        "\"FRY\""}},
      {"daemon prune",
       kHead + "daemon:\n  prune: {schedule: \"@every 0s\"}\n",
       {"cairn.yaml:12:21: error: daemon.prune.schedule: @every \"0s\": interval must be at "
        "least 1s"}},
      {"unknown time zone",
       kHead + "daemon: {timezone: Mars/Olympus_Mons}\n",
       {"cairn.yaml:11:20: error: daemon.timezone: unknown time zone \"Mars/Olympus_Mons\""}},
  });
}

TEST(CatalogSchedules, InvalidPruneScheduleLeavesNoSchedule) {
  LoadResult r =
      parse_catalog(kHead + "daemon:\n  prune:\n    schedule: \"99 * * * *\"\n", "cairn.yaml");
  EXPECT_FALSE(r.ok());
  EXPECT_FALSE(r.catalog.daemon.prune_schedule.has_value());
  LoadResult ok = parse_catalog(kHead, "cairn.yaml");
  ASSERT_TRUE(ok.catalog.daemon.prune_schedule.has_value());
  EXPECT_EQ(ok.catalog.daemon.prune_schedule->expression(), "0 4 * * 0");
}

TEST(CatalogObjectives, RpoTheScheduleCannotMeet) {
  check({
      {"daily schedule, hourly rpo",
       R"(repository: /srv/backup
services:
  web:
    owner: team-web
    objectives: {rpo: 1h, rto: 4h}
    schedule: "0 3 * * *"
    engine: {type: files, paths: [/srv/www]}
)",
       {"cairn.yaml:6:15: error: service \"web\": schedule: \"0 3 * * *\" leaves up to 1d "
        "between backups, more than objectives.rpo 1h; run it more often"}},
      {"weekdays only",
       R"(repository: /srv/backup
services:
  web:
    owner: team-web
    objectives: {rpo: 1d, rto: 4h}
    schedule: "0 9 * * MON-FRI"
    engine: {type: files, paths: [/srv/www]}
)",
       {"cairn.yaml:6:15: error: service \"web\": schedule: \"0 9 * * MON-FRI\" leaves up to 3d "
        "between backups, more than objectives.rpo 1d; run it more often"}},
      {"daily in a zone with DST: 25h",
       R"(repository: /srv/backup
services:
  web:
    owner: team-web
    objectives: {rpo: 1d, rto: 4h}
    schedule: "0 3 * * *"
    engine: {type: files, paths: [/srv/www]}
daemon: {timezone: Europe/Berlin}
)",
       {"cairn.yaml:6:15: error: service \"web\": schedule: \"0 3 * * *\" leaves up to 1d1h "
        "between backups, more than objectives.rpo 1d; run it more often"}},
      {"exactly the rpo is enough",
       R"(repository: /srv/backup
services:
  web:
    owner: team-web
    objectives: {rpo: 15m, rto: 4h}
    schedule: "*/15 * * * *"
    engine: {type: files, paths: [/srv/www]}
)",
       {}},
      {"no schedule",
       R"(repository: /srv/backup
services:
  web:
    owner: team-web
    objectives: {rpo: 1d, rto: 4h}
    engine: {type: files, paths: [/srv/www]}
)",
       {"cairn.yaml:4:5: error: service \"web\": schedule: missing: objectives.rpo 1d needs a "
        "schedule (or continuous WAL archiving)"}},
      {"postgres logical is told about WAL archiving",
       R"(repository: /srv/backup
services:
  db:
    owner: team-db
    objectives: {rpo: 1h, rto: 4h}
    schedule: "@daily"
    engine: {type: postgres, mode: logical, dsn: "dbname=shop"}
)",
       {"cairn.yaml:6:15: error: service \"db\": schedule: \"@daily\" leaves up to 1d between "
        "backups, more than objectives.rpo 1h; run it more often or use mode: physical with WAL "
        "archiving"}},
      {"postgres physical without WAL archiving",
       R"(repository: /srv/backup
services:
  db:
    owner: team-db
    objectives: {rpo: 1h, rto: 4h}
    schedule: "@daily"
    engine: {type: postgres, mode: physical, dsn: "dbname=shop", wal_archiving: false}
)",
       {"cairn.yaml:6:15: error: service \"db\": schedule: \"@daily\" leaves up to 1d between "
        "backups, more than objectives.rpo 1h; run it more often or use mode: physical with WAL "
        "archiving"}},
      {"postgres physical with WAL archiving: no RPO error",
       R"(repository: /srv/backup
services:
  db:
    owner: team-db
    objectives: {rpo: 1m, rto: 4h}
    schedule: "@weekly"
    engine: {type: postgres, mode: physical, dsn: "dbname=shop", wal_archiving: true}
)",
       {}},
      {"physical archives WAL by default; no schedule needed",
       R"(repository: /srv/backup
services:
  db:
    owner: team-db
    objectives: {rpo: 1m, rto: 4h}
    engine: {type: postgres, mode: physical, dsn: "dbname=shop"}
)",
       {}},
      {"WAL archiving needs physical",
       R"(repository: /srv/backup
services:
  db:
    owner: team-db
    objectives: {rpo: 1d, rto: 4h}
    schedule: "@daily"
    engine: {type: postgres, mode: logical, dsn: "dbname=shop", wal_archiving: true}
)",
       {"cairn.yaml:7:80: error: service \"db\": engine.wal_archiving: WAL archiving needs mode: "
        "physical"}},
      {"base backup source: a typo, and a source for a logical dump",
       R"(repository: /srv/backup
services:
  db:
    owner: team-db
    objectives: {rpo: 1d, rto: 4h}
    engine: {type: postgres, mode: physical, dsn: "dbname=shop", source: tape}
  dump:
    owner: team-db
    objectives: {rpo: 1d, rto: 4h}
    schedule: "@daily"
    engine: {type: postgres, mode: logical, dsn: "dbname=shop", source: datadir}
)",
       {"cairn.yaml:6:74: error: service \"db\": engine.source: \"tape\" is not auto, datadir or "
        "stream",
        "cairn.yaml:11:73: error: service \"dump\": engine.source: a base backup source needs mode: "
        "physical"}},
  });
}

TEST(CatalogRetention, KeepingNothingIsAnError) {
  check({
      {"all zero",
       kHead + "    retention: {last: 0, daily: 0}\n",
       {"cairn.yaml:11:16: error: service \"web\": retention: retention keeps nothing: set at "
        "least one of last, hourly, daily, weekly, monthly, yearly, within or tags"}},
      {"empty map",
       kHead + "    retention: {}\n",
       {"cairn.yaml:11:16: error: service \"web\": retention: retention keeps nothing: set at "
        "least one of last, hourly, daily, weekly, monthly, yearly, within or tags"}},
      {"only a typo",
       kHead + "    retention: {dayly: 7}\n",
       {"cairn.yaml:11:16: error: service \"web\": retention: retention keeps nothing: set at "
        "least one of last, hourly, daily, weekly, monthly, yearly, within or tags",
        "cairn.yaml:11:17: error: service \"web\": retention.dayly: unknown key \"dayly\" (did "
        "you mean \"daily\"?)"}},
      {"a bad value is reported once",
       kHead + "    retention: {daily: seven}\n",
       {"cairn.yaml:11:24: error: service \"web\": retention.daily: \"seven\" is not a whole "
        "number"}},
      {"bad within",
       kHead + "    retention: {within: 7x}\n",
       {"cairn.yaml:11:25: error: service \"web\": retention.within: --keep-within '7x': unit "
        "must be y, m, d or h"}},
      {"tags alone keep something", kHead + "    retention: {tags: [release]}\n", {}},
      {"within alone keeps something", kHead + "    retention: {within: 1y2m}\n", {}},
      {"keeping nothing in defaults is reported for each service",
       "defaults:\n  retention: {last: 0}\n" + kHead,
       {"cairn.yaml:2:14: error: service \"web\": retention: retention keeps nothing: set at "
        "least one of last, hourly, daily, weekly, monthly, yearly, within or tags"}},
  });
}

TEST(CatalogTiers, CriticalNeedsADrillSchedule) {
  check({
      {"no drill",
       kHead + "    tier: critical\n",
       {"cairn.yaml:5:5: error: service \"web\": drill.schedule: a critical service needs a "
        "restore drill schedule (ADR-025: recovery testing is mandatory)"}},
      {"drill without a schedule",
       kHead + "    tier: critical\n    drill: {checks: [\"exec: true\"]}\n",
       {"cairn.yaml:12:12: error: service \"web\": drill.schedule: a critical service needs a "
        "restore drill schedule (ADR-025: recovery testing is mandatory)"}},
      {"with a drill schedule",
       kHead + "    tier: critical\n    drill: {schedule: \"@weekly\"}\n",
       {}},
      {"high needs none", kHead + "    tier: high\n", {}},
  });
}

TEST(CatalogRepository, OneLocationOneKey) {
  check({
      {"two password files",
       R"(services:
  a:
    owner: team-a
    objectives: {rpo: 1d, rto: 4h}
    schedule: "@daily"
    engine: {type: files, paths: [/srv/a]}
    repository: {location: /srv/repo, password_file: /etc/cairn/a.pw}
  b:
    owner: team-b
    objectives: {rpo: 1d, rto: 4h}
    schedule: "@daily"
    engine: {type: files, paths: [/srv/b]}
    repository: {location: /srv/repo, password_file: /etc/cairn/b.pw}
)",
       {"cairn.yaml:13:17: error: service \"b\": repository: writes to /srv/repo like service "
        "\"a\" but with a different key (password_file /etc/cairn/b.pw vs password_file "
        "/etc/cairn/a.pw)"}},
      {"a key file and the environment",
       R"(repository: /srv/repo
services:
  a:
    owner: team-a
    objectives: {rpo: 1d, rto: 4h}
    schedule: "@daily"
    engine: {type: files, paths: [/srv/a]}
  b:
    owner: team-b
    objectives: {rpo: 1d, rto: 4h}
    schedule: "@daily"
    engine: {type: files, paths: [/srv/b]}
    repository: {location: /srv/repo, key_file: /etc/cairn/b.key}
)",
       {"cairn.yaml:13:17: error: service \"b\": repository: writes to /srv/repo like service "
        "\"a\" but with a different key (key_file /etc/cairn/b.key vs the environment "
        "(CAIRN_PASSWORD...))"}},
      {"same key, same location",
       R"(services:
  a:
    owner: team-a
    objectives: {rpo: 1d, rto: 4h}
    schedule: "@daily"
    engine: {type: files, paths: [/srv/a]}
    repository: {location: /srv/repo, password_file: /etc/cairn/pw}
  b:
    owner: team-b
    objectives: {rpo: 1d, rto: 4h}
    schedule: "@daily"
    engine: {type: files, paths: [/srv/b]}
    repository: {location: /srv/repo, password_file: /etc/cairn/pw}
)",
       {}},
      {"two key sources",
       R"(repository:
  location: /srv/repo
  password_file: /etc/cairn/pw
  key_file: /etc/cairn/key
)" + kHead.substr(kHead.find("services:")),
       {"cairn.yaml:2:3: error: repository: give only one of password_file, password_command "
        "and key_file"}},
      {"missing location",
       "repository: {password_file: /etc/cairn/pw}\n" + kHead.substr(kHead.find("services:")),
       {"cairn.yaml:1:13: error: repository.location: missing (a path or "
        "s3:https://host/bucket/prefix)"}},
      {"password file as a list",
       "repository: {location: /srv/r, password_file: [a]}\n" +
           kHead.substr(kHead.find("services:")),
       {"cairn.yaml:1:47: error: repository.password_file: expected a text value"}},
  });
}

TEST(CatalogSecrets, NoInlineSecrets) {
  const std::string head = R"(repository: /srv/backup
services:
  db:
    owner: team-db
    objectives: {rpo: 1d, rto: 4h}
    schedule: "@daily"
    engine:
      type: postgres
      mode: logical
)";
  const std::string inline_secret =
      "a secret is written inline; reference an environment variable instead (e.g. "
      "${PG_PASSWORD}) or use a password file";
  ScopedEnv pw("CAIRN_TEST_PG_PASSWORD", "from-the-environment");
  ScopedEnv token("CAIRN_TEST_TOKEN", "t0ken");
  check({
      {"dsn key=value",
       head + "      dsn: host=db user=backup password=hunter2\n",
       {"cairn.yaml:10:12: error: service \"db\": engine.dsn: " + inline_secret}},
      {"dsn key=value, quoted",
       head + "      dsn: \"host=db password='hunter 2'\"\n",
       {"cairn.yaml:10:12: error: service \"db\": engine.dsn: " + inline_secret}},
      {"dsn URI user:password@",
       head + "      dsn: postgresql://backup:hunter2@db:5432/shop\n",
       {"cairn.yaml:10:12: error: service \"db\": engine.dsn: " + inline_secret}},
      {"dsn URI query",
       head + "      dsn: postgresql://backup@db/shop?sslmode=require&password=hunter2\n",
       {"cairn.yaml:10:12: error: service \"db\": engine.dsn: " + inline_secret}},
      {"dsn key=value with ${VAR}",
       head + "      dsn: host=db user=backup password=${CAIRN_TEST_PG_PASSWORD}\n",
       {}},
      {"dsn URI with ${VAR}",
       head + "      dsn: postgresql://backup:${CAIRN_TEST_PG_PASSWORD}@db:5432/shop\n",
       {}},
      {"dsn URI with a port, no password",
       head + "      dsn: postgresql://backup@db:5432/shop\n",
       {}},
      {"dsn without a password", head + "      dsn: host=/run/postgresql dbname=shop\n", {}},
      {"dsn missing",
       head,
       {"cairn.yaml:8:7: error: service \"db\": engine.dsn: missing (a libpq connection string, "
        "e.g. \"host=/run/postgresql dbname=shop\")"}},
  });
  const std::string exec = R"(repository: /srv/backup
services:
  mongo:
    owner: team-db
    objectives: {rpo: 1d, rto: 4h}
    schedule: "@daily"
    engine:
      type: exec
      command: mongodump --archive
      env:
)";
  check({
      {"exec env password",
       exec + "        MONGO_PASSWORD: hunter2\n",
       {"cairn.yaml:11:25: error: service \"mongo\": engine.env.MONGO_PASSWORD: " + inline_secret}},
      {"exec env token",
       exec + "        API_TOKEN: abc123\n",
       {"cairn.yaml:11:20: error: service \"mongo\": engine.env.API_TOKEN: " + inline_secret}},
      {"exec env ${VAR}", exec + "        MONGO_PASSWORD: ${CAIRN_TEST_PG_PASSWORD}\n", {}},
      {"exec env naming a file", exec + "        MONGO_PASSWORD_FILE: /run/secrets/mongo\n", {}},
      {"exec env, not secret", exec + "        TZ: UTC\n", {}},
      {"exec env as a list",
       R"(repository: /srv/backup
services:
  mongo:
    owner: team-db
    objectives: {rpo: 1d, rto: 4h}
    schedule: "@daily"
    engine:
      type: exec
      command: mongodump --archive
      env: [A=b]
)",
       {"cairn.yaml:10:12: error: service \"mongo\": engine.env: expected a mapping (NAME: "
        "value)"}},
  });
  check({
      {"alert header",
       kHead + "alerts:\n  - webhook: https://x.example.com\n    headers:\n"
               "      Authorization: Bearer abc123\n",
       {"cairn.yaml:14:22: error: alerts[0].headers.Authorization: " + inline_secret}},
      {"alert header ${VAR}",
       kHead + "alerts:\n  - webhook: https://x.example.com\n    headers:\n"
               "      Authorization: Bearer ${CAIRN_TEST_TOKEN}\n",
       {}},
      {"alert header, not secret",
       kHead + "alerts:\n  - webhook: https://x.example.com\n"
               "    headers: {X-Team: web}\n",
       {}},
  });
}

TEST(CatalogEnv, UnsetAndMalformedReferences) {
  ScopedEnv unset("CAIRN_TEST_UNSET", nullptr);
  const std::string exec = R"(repository: /srv/backup
services:
  job:
    owner: team-ops
    objectives: {rpo: 1d, rto: 4h}
    schedule: "@daily"
    engine:
      type: exec
)";
  check({
      {"unset in a command",
       exec + "      command: [dump, \"--to=${CAIRN_TEST_UNSET}\"]\n",
       {"cairn.yaml:9:16: warning: service \"job\": engine.command: environment variable "
        "CAIRN_TEST_UNSET is not set"}},
      {"unterminated",
       exec + "      command: [dump, \"--to=${CAIRN_TEST_UNSET\"]\n",
       {"cairn.yaml:9:16: error: service \"job\": engine.command: unterminated ${ in "
        "\"--to=${CAIRN_TEST_UNSET\""}},
      {"empty name",
       exec + "      command: \"dump ${}\"\n",
       {"cairn.yaml:9:16: error: service \"job\": engine.command: empty ${} in \"dump ${}\""}},
      {"escaped", exec + "      command: \"echo $${CAIRN_TEST_UNSET}\"\n", {}},
  });
  LoadResult r = parse_catalog(exec + "      command: [dump, \"${CAIRN_TEST_UNSET}\"]\n", "c.yaml");
  EXPECT_TRUE(r.ok());
  ASSERT_EQ(r.diagnostics.size(), 1u);
  EXPECT_EQ(r.diagnostics[0].severity, Diagnostic::Severity::kWarning);
  EXPECT_EQ(r.diagnostics[0].service, "job");
  EXPECT_EQ(r.diagnostics[0].field, "engine.command");
  EXPECT_EQ(r.diagnostics[0].line, 9);
  EXPECT_EQ(r.diagnostics[0].column, 16);
}

TEST(CatalogEngines, TypesAndOptions) {
  const std::string head = R"(repository: /srv/backup
services:
  db:
    owner: team-db
    objectives: {rpo: 1d, rto: 4h}
    schedule: "@daily"
    engine:
)";
  check({
      {"unknown type with a suggestion",
       head + "      type: file\n",
       {"cairn.yaml:8:13: error: service \"db\": engine.type: unknown engine \"file\" (files, "
        "exec, postgres, mariadb, redis, sqlite or volume); did you mean \"files\"?"}},
      {"unknown type",
       head + "      type: tape\n",
       {"cairn.yaml:8:13: error: service \"db\": engine.type: unknown engine \"tape\" (files, "
        "exec, postgres, mariadb, redis, sqlite or volume)"}},
      {"planned: mongodb",
       head + "      type: mongodb\n",
       {"cairn.yaml:8:13: error: service \"db\": engine.type: engine \"mongodb\" is not "
        "available in this version; use exec with the database's own dump tool for now"}},
      {"no type",
       head + "      paths: [/srv]\n",
       {"cairn.yaml:8:7: error: service \"db\": engine.type: missing (files, exec, postgres, "
        "mariadb, redis, sqlite or volume)"}},
      {"files without paths",
       head + "      type: files\n",
       {"cairn.yaml:8:7: error: service \"db\": engine.paths: missing: the files engine needs at "
        "least one path"}},
      {"exec without a command",
       head + "      type: exec\n",
       {"cairn.yaml:8:7: error: service \"db\": engine.command: missing: the command whose "
        "standard output is the backup"}},
      {"exec file name with a slash",
       head + "      type: exec\n      command: [dump]\n"
              "      filename: a/b.dump\n",
       {"cairn.yaml:10:17: error: service \"db\": engine.filename: must be a plain file name"}},
      {"postgres mode",
       head + "      type: postgres\n      mode: logicial\n      dsn: dbname=x\n",
       {"cairn.yaml:9:13: error: service \"db\": engine.mode: \"logicial\" is not logical or "
        "physical"}},
      {"postgres without mode",
       head + "      type: postgres\n      dsn: dbname=x\n",
       {"cairn.yaml:8:7: error: service \"db\": engine.mode: missing (logical or physical)"}},
  });
  // A single command string runs through /bin/sh -c; a list is argv; the
  // stream is named after the service unless `filename` says otherwise.
  LoadResult r = parse_catalog(
      head + "      type: exec\n      command: \"mongodump --archive | cat\"\n", "cairn.yaml");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.catalog.services[0].engine.command,
            (std::vector<std::string>{"/bin/sh", "-c", "mongodump --archive | cat"}));
  EXPECT_EQ(r.catalog.services[0].engine.filename, "db.dump");
}

// --- redis, sqlite engines
TEST(CatalogEngines, RedisAndSqlite) {
  const std::string head = R"(repository: /srv/backup
services:
  db:
    owner: team-db
    objectives: {rpo: 1d, rto: 4h}
    schedule: "@daily"
    engine:
)";
  check({
      {"redis defaults", head + "      type: redis\n", {}},
      {"redis over a socket with a password reference",
       head + "      type: redis\n      socket: /run/redis/redis.sock\n      user: backup\n"
              "      password: ${CAIRN_TEST_REDIS_PW_UNSET_X}\n",
       {"cairn.yaml:11:17: warning: service \"db\": engine.password: environment variable "
        "CAIRN_TEST_REDIS_PW_UNSET_X is not set"}},
      {"redis inline password",
       head + "      type: redis\n      password: hunter2\n",
       {"cairn.yaml:9:17: error: service \"db\": engine.password: a secret is written inline; "
        "reference an environment variable instead (e.g. ${PG_PASSWORD}) or use a password file"}},
      {"redis key typo",
       head + "      type: redis\n      prot: 6380\n",
       {"cairn.yaml:9:7: error: service \"db\": engine.prot: unknown key \"prot\" (did you mean "
        "\"port\"?)"}},
      {"redis port range",
       head + "      type: redis\n      port: 70000\n",
       {"cairn.yaml:9:13: error: service \"db\": engine.port: 70000 is out of range 1-65535"}},
      {"redis socket and port",
       head + "      type: redis\n      port: 6380\n      socket: /run/redis.sock\n",
       {"cairn.yaml:10:15: error: service \"db\": engine.socket: give socket or host/port, not both"}},
      {"redis password and password_file",
       head + "      type: redis\n      password: ${HOME}\n      password_file: /etc/redis.pw\n",
       {"cairn.yaml:10:22: error: service \"db\": engine.password_file: give password or "
        "password_file, not both"}},
      {"redis relative password file",
       head + "      type: redis\n      password_file: redis.pw\n",
       {"cairn.yaml:9:22: error: service \"db\": engine.password_file: \"redis.pw\" is not absolute"}},
      {"sqlite", head + "      type: sqlite\n      path: /var/lib/app/app.db\n", {}},
      {"sqlite without a path",
       head + "      type: sqlite\n",
       {"cairn.yaml:8:7: error: service \"db\": engine.path: missing: the database file (e.g. "
        "/var/lib/app/app.db)"}},
      {"sqlite relative path",
       head + "      type: sqlite\n      path: app.db\n",
       {"cairn.yaml:9:13: error: service \"db\": engine.path: \"app.db\" is not absolute"}},
      {"sqlite key of another engine",
       head + "      type: sqlite\n      path: /a.db\n      dsn: x\n",
       {"cairn.yaml:10:7: error: service \"db\": engine.dsn: unknown key \"dsn\""}},
      {"engine type typo",
       head + "      type: sqlit\n",
       {"cairn.yaml:8:13: error: service \"db\": engine.type: unknown engine \"sqlit\" (files, "
        "exec, postgres, mariadb, redis, sqlite or volume); did you mean \"sqlite\"?"}},
  });
  setenv("CAIRN_TEST_REDIS_PW", "x", 1);
  LoadResult r = parse_catalog(head + "      type: redis\n      host: cache.internal\n      port: 6380\n"
                                      "      password: ${CAIRN_TEST_REDIS_PW}\n",
                               "cairn.yaml");
  ASSERT_TRUE(r.ok());
  const EngineSpec& e = r.catalog.services[0].engine;
  EXPECT_EQ(e.redis.host, "cache.internal");
  EXPECT_EQ(e.redis.port, 6380);
  EXPECT_EQ(e.redis.password, "${CAIRN_TEST_REDIS_PW}");  // expanded when the job runs
  EXPECT_EQ(to_json(r.catalog.services[0])["engine"],
            (nlohmann::json{{"type", "redis"}, {"host", "cache.internal"}, {"port", 6380},
                            {"password", "${CAIRN_TEST_REDIS_PW}"}}));
  r = parse_catalog(head + "      type: sqlite\n      path: /var/lib/app/app.db\n", "cairn.yaml");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.catalog.services[0].engine.sqlite.path, "/var/lib/app/app.db");
  EXPECT_EQ(to_json(r.catalog.services[0])["engine"],
            (nlohmann::json{{"type", "sqlite"}, {"path", "/var/lib/app/app.db"}}));
}
// --- end redis, sqlite engines
// volume engine
TEST(CatalogEngines, Volume) {
  const std::string head = R"(repository: /srv/backup
services:
  vol:
    owner: team-storage
    objectives: {rpo: 1d, rto: 4h}
    schedule: "@daily"
    engine:
      type: volume
)";
  check({
      {"no source", head, {"cairn.yaml:8:7: error: service \"vol\": engine.source: missing: the btrfs "
                           "subvolume or mount point, the LV (vg/lv) or the ZFS dataset to snapshot"}},
      {"driver typo", head + "      driver: zsf\n      source: tank/data\n",
       {"cairn.yaml:9:15: error: service \"vol\": engine.driver: \"zsf\" is not btrfs, lvm, zfs or auto (did "
        "you mean \"zfs\"?)"}},
      {"btrfs needs a path", head + "      driver: btrfs\n      source: data\n",
       {"cairn.yaml:10:15: error: service \"vol\": engine.source: \"data\" is not absolute (a btrfs subvolume "
        "path)"}},
      {"freeze on zfs", head + "      driver: zfs\n      source: tank/data\n      freeze: true\n",
       {"cairn.yaml:11:15: error: service \"vol\": engine.freeze: freeze cannot be used with zfs: ZFS does not "
        "support fsfreeze, and a ZFS snapshot is atomic on its own; use quiesce hooks to pause the "
        "application"}},
      {"snapshot_dir on zfs", head + "      driver: zfs\n      source: tank/data\n      snapshot_dir: /x\n",
       {"cairn.yaml:11:21: error: service \"vol\": engine.snapshot_dir: does not apply to zfs (a ZFS snapshot "
        "is read under <mountpoint>/.zfs/snapshot)"}},
      {"lvm size", head + "      driver: lvm\n      source: vg/lv\n      snapshot_size: 10%\n",
       {"cairn.yaml:11:22: error: service \"vol\": engine.snapshot_size: \"10%\" is not an LVM size such as "
        "2G or 20%ORIGIN"}},
      {"quiesce typo", head + "      source: /srv\n      quiesce: {pre: [a], postt: [b]}\n",
       {"cairn.yaml:10:27: error: service \"vol\": engine.quiesce.postt: unknown key \"postt\" (did you mean "
        "\"post\"?)"}},
  });
  LoadResult r = parse_catalog(head + "      source: vg0/data\n      snapshot_size: 2G\n      freeze: true\n"
                                      "      quiesce: {pre: [\"fsync-app\"], post: resume-app}\n"
                                      "      exclude: [\"*.tmp\"]\n",
                               "cairn.yaml");
  ASSERT_TRUE(r.ok()) << diagnostics(r).front();
  const EngineSpec& e = r.catalog.services[0].engine;
  EXPECT_EQ(e.driver, "auto");
  EXPECT_EQ(e.source, "vg0/data");
  EXPECT_TRUE(e.freeze);
  EXPECT_EQ(e.quiesce_pre, std::vector<std::string>{"fsync-app"});
  EXPECT_EQ(e.quiesce_post, std::vector<std::string>{"resume-app"});
  auto j = to_json(r.catalog.services[0])["engine"];
  EXPECT_EQ(j["snapshot_size"], "2G");
  EXPECT_EQ(j["quiesce"]["post"][0], "resume-app");
  EXPECT_EQ(j["exclude"][0], "*.tmp");
}

TEST(CatalogAlerts, Receivers) {
  check({
      {"not a list",
       kHead + "alerts: {webhook: https://x}\n",
       {"cairn.yaml:11:9: error: alerts: expected a list of receivers (- webhook: URL or - "
        "alertmanager: URL)"}},
      {"not a URL",
       kHead + "alerts:\n  - webhook: hooks.example.com/x\n",
       {"cairn.yaml:12:14: error: alerts[0].webhook: \"hooks.example.com/x\" is not an http(s) "
        "URL"}},
      {"type and url",
       kHead + "alerts:\n  - {type: slack, url: https://x}\n",
       {"cairn.yaml:12:12: error: alerts[0].type: must be webhook or alertmanager"}},
      {"no URL",
       kHead + "alerts:\n  - {type: webhook}\n",
       {"cairn.yaml:12:5: error: alerts[0].url: missing: the receiver's http(s) URL"}},
      {"unknown service",
       kHead + "alerts:\n  - webhook: https://x\n    services: [wbe]\n",
       {"cairn.yaml:13:15: error: alerts[0].services: no service named \"wbe\" (did you mean "
        "\"web\"?)"}},
      {"severity",
       kHead + "alerts:\n  - webhook: https://x\n    min_severity: high\n",
       {"cairn.yaml:13:19: error: alerts[0].min_severity: must be info, warning or critical"}},
  });
}

TEST(CatalogDaemon, Settings) {
  check({
      {"catch_up",
       kHead + "daemon: {catch_up: always}\n",
       {"cairn.yaml:11:20: error: daemon.catch_up: must be once or skip"}},
      {"listen",
       kHead + "daemon: {listen: 9464}\n",
       {"cairn.yaml:11:18: error: daemon.listen: \"9464\" is not host:port"}},
      {"max_jobs",
       kHead + "daemon: {max_jobs: 0}\n",
       {"cairn.yaml:11:20: error: daemon.max_jobs: 0 is out of range 1-1024"}},
      {"max_unused",
       kHead + "daemon: {prune: {max_unused: 5}}\n",
       {"cairn.yaml:11:30: error: daemon.prune.max_unused: \"5\" is not a percentage such as "
        "5%"}},
      {"fleet drill of an unknown service",
       kHead + "daemon: {fleet_drill: {schedule: \"@daily\", services: [wbe]}}\n",
       {"cairn.yaml:11:54: error: daemon.fleet_drill.services: no service \"wbe\" (did you mean \"web\"?)"}},
      {"fleet drill without a schedule",
       kHead + "daemon: {fleet_drill: {services: [web]}}\n",
       {"cairn.yaml:11:23: error: daemon.fleet_drill.schedule: missing: when the fleet is drilled (cron)"}},
      {"fleet drill",
       kHead + "daemon: {fleet_drill: {schedule: \"0 5 1 1,4,7,10 *\", services: [web]}}\n",
       {}},
      {"daemon as a list",
       kHead + "daemon: [a]\n",
       {"cairn.yaml:11:9: error: daemon: expected a mapping (key: value lines)"}},
  });
}

TEST(CatalogDuplicates, RepeatedKeysAndServices) {
  check({
      {"repeated key in a service",
       kHead + "    schedule: \"@hourly\"\n",
       {"cairn.yaml:11:5: error: service \"web\": schedule: duplicate key \"schedule\""}},
      {"repeated service",
       kHead + "  web:\n    owner: someone-else\n",
       {"cairn.yaml:11:3: error: service \"web\": defined twice (service names must be "
        "unique)"}},
      {"repeated env name",
       R"(repository: /srv/backup
services:
  job:
    owner: team-ops
    objectives: {rpo: 1d, rto: 4h}
    schedule: "@daily"
    engine:
      type: exec
      command: [dump]
      env: {TZ: UTC, TZ: CET}
)",
       {"cairn.yaml:10:22: error: service \"job\": engine.env.TZ: duplicate key \"TZ\""}},
  });
  LoadResult r = parse_catalog(kHead + "  web:\n    owner: someone-else\n", "cairn.yaml");
  ASSERT_EQ(r.catalog.services.size(), 1u);
  EXPECT_EQ(r.catalog.services[0].owner, "team-web");
}

TEST(CatalogDefaults, ServicesInheritAndOwnValuesWin) {
  const std::string text = R"(repository: /srv/backup
defaults:
  tier: high
  schedule: "@hourly"
  retention: {daily: 3}
  hooks: {pre: [sync]}
  tags: [fleet]
  timeout: 30m
  retries: 5
  retry_delay: 10s
services:
  plain:
    owner: team-a
    objectives: {rpo: 1h, rto: 4h}
    engine: {type: files, paths: [/srv/a]}
  own:
    owner: team-b
    tier: low
    objectives: {rpo: 1d, rto: 4h}
    schedule: "0 2 * * *"
    retention: {last: 5}
    hooks: {post: [echo done]}
    tags: [special]
    timeout: 1h
    retries: 0
    retry_delay: 1m
    repository: /srv/other
    engine: {type: files, paths: [/srv/b]}
)";
  LoadResult r = parse_catalog(text, "cairn.yaml");
  EXPECT_THAT(diagnostics(r), IsEmpty());
  ASSERT_EQ(r.catalog.services.size(), 2u);
  const Service& plain = r.catalog.services[0];
  EXPECT_EQ(plain.tier, "high");
  EXPECT_EQ(plain.schedule_text, "@hourly");
  EXPECT_EQ(plain.retention.daily, 3);
  EXPECT_EQ(plain.retention.weekly, 0);
  EXPECT_EQ(plain.hooks.pre, std::vector<std::string>{"sync"});
  EXPECT_EQ(plain.tags, std::vector<std::string>{"fleet"});
  EXPECT_EQ(plain.timeout, std::chrono::minutes(30));
  EXPECT_EQ(plain.retries, 5);
  EXPECT_EQ(plain.retry_delay, std::chrono::seconds(10));
  EXPECT_EQ(plain.repository.location, "/srv/backup");
  const Service& own = r.catalog.services[1];
  EXPECT_EQ(own.tier, "low");
  EXPECT_EQ(own.schedule_text, "0 2 * * *");
  // A section replaces the default as a whole; it is not merged key by key.
  EXPECT_EQ(own.retention.last, 5);
  EXPECT_EQ(own.retention.daily, 0);
  EXPECT_TRUE(own.hooks.pre.empty());
  EXPECT_EQ(own.hooks.post, std::vector<std::string>{"echo done"});
  EXPECT_EQ(own.tags, std::vector<std::string>{"special"});
  EXPECT_EQ(own.timeout, std::chrono::hours(1));
  EXPECT_EQ(own.retries, 0);
  EXPECT_EQ(own.retry_delay, std::chrono::minutes(1));
  EXPECT_EQ(own.repository.location, "/srv/other");
}

TEST(CatalogDefaults, DiagnosticsPointAtTheLineThatSetsTheValue) {
  // A problem in an inherited value is reported at the defaults' line, with
  // the service it breaks; a problem in a service's own value at its line,
  // also when a defaults section exists.
  check({
      {"inherited schedule too rare",
       R"(repository: /srv/backup
defaults:
  schedule: "0 3 * * *"
services:
  web:
    owner: team-web
    objectives: {rpo: 1h, rto: 4h}
    engine: {type: files, paths: [/srv/www]}
)",
       {"cairn.yaml:3:13: error: service \"web\": schedule: \"0 3 * * *\" leaves up to 1d "
        "between backups, more than objectives.rpo 1h; run it more often"}},
      {"own value next to defaults",
       R"(repository: /srv/backup
defaults:
  retention: {daily: 7}
services:
  web:
    owner: team-web
    tier: critcal
    objectives: {rpo: 1d, rto: 4h}
    schedule: "0 3 * * *"
    engine: {type: files, paths: [www]}
)",
       {"cairn.yaml:7:11: error: service \"web\": tier: \"critcal\" is not one of critical, "
        "high, medium, low (did you mean \"critical\"?)",
        "cairn.yaml:10:34: error: service \"web\": engine.paths: \"www\" is not absolute"}},
      {"missing owner next to defaults",
       R"(repository: /srv/backup
defaults:
  schedule: "@daily"
services:
  web:
    objectives: {rpo: 1d, rto: 4h}
    engine: {type: files, paths: [/srv/www]}
)",
       {"cairn.yaml:6:5: error: service \"web\": owner: missing: the team that answers for this "
        "service's data"}},
  });
}

TEST(CatalogDefaults, BuiltInDefaults) {
  LoadResult r = parse_catalog(kHead, "cairn.yaml");
  ASSERT_TRUE(r.ok());
  const Service& s = r.catalog.services[0];
  EXPECT_EQ(s.tier, "medium");
  EXPECT_EQ(s.retention.daily, 7);
  EXPECT_EQ(s.retention.weekly, 4);
  EXPECT_EQ(s.retention.monthly, 12);
  EXPECT_EQ(s.timeout, std::chrono::hours(6));
  EXPECT_EQ(s.retries, 2);
  EXPECT_EQ(s.retry_delay, std::chrono::minutes(1));
  const DaemonSettings& d = r.catalog.daemon;
  EXPECT_EQ(d.state, "/var/lib/cairn/state.db");
  EXPECT_EQ(d.max_jobs, 0);
  EXPECT_EQ(d.timezone, "UTC");
  EXPECT_EQ(d.catch_up, "once");
  EXPECT_EQ(d.listen, "");
  EXPECT_EQ(d.shutdown_grace, std::chrono::minutes(1));
  EXPECT_EQ(d.repeat_interval, std::chrono::hours(4));
  EXPECT_EQ(d.max_unused, "5%");
}

TEST(CatalogJson, ToJsonFillsDefaults) {
  LoadResult r = parse_catalog(kHead, "cairn.yaml");
  ASSERT_TRUE(r.ok());
  nlohmann::json want = nlohmann::json::parse(R"({
    "owner": "team-web",
    "tier": "medium",
    "repository": {"location": "/srv/backup"},
    "objectives": {"rpo": "1d", "rto": "4h"},
    "engine": {"type": "files", "paths": ["/srv/www"], "exclude": [], "one_file_system": false},
    "schedule": "0 3 * * *",
    "retention": {"daily": 7, "weekly": 4, "monthly": 12},
    "drill": {"schedule": "", "checks": []},
    "hooks": {"pre": [], "post": []},
    "tags": [],
    "timeout": "6h",
    "retries": 2,
    "retry_delay": "1m"
  })");
  EXPECT_EQ(to_json(r.catalog.services[0]), want) << to_json(r.catalog.services[0]).dump(2);

  nlohmann::json all = to_json(r.catalog);
  EXPECT_EQ(all["services"]["web"], want);
  EXPECT_EQ(all["alerts"], nlohmann::json::array());
  EXPECT_EQ(all["daemon"], nlohmann::json::parse(R"({
    "state": "/var/lib/cairn/state.db", "max_jobs": 0, "timezone": "UTC", "jitter": "0s",
    "catch_up": "once", "listen": "", "shutdown_grace": "1m", "repeat_interval": "4h",
    "prune": {"schedule": "0 4 * * 0", "max_unused": "5%"}
  })"));
}

TEST(CatalogJson, EngineSectionsAndSecretsStayReferences) {
  ScopedEnv a("SHOP_PG_PASSWORD", "pg-secret");
  ScopedEnv c("CHAT_TOKEN", "chat-token");
  LoadResult r = parse_catalog(kFleet, "cairn.yaml");
  ASSERT_TRUE(r.ok());
  nlohmann::json j = to_json(r.catalog);
  EXPECT_EQ(j["services"]["shop-db"]["engine"], nlohmann::json::parse(R"({
    "type": "postgres", "mode": "physical",
    "dsn": "host=/run/postgresql port=5432 user=backup password=${SHOP_PG_PASSWORD}",
    "databases": [], "wal_archiving": true, "source": "auto"})"));
  EXPECT_EQ(j["services"]["catalog-mongo"]["engine"]["filename"], "catalog.archive.gz");
  EXPECT_EQ(j["services"]["catalog-mongo"]["engine"]["env"], nlohmann::json({{"TZ", "UTC"}}));
  EXPECT_EQ(j["services"]["catalog-mongo"]["repository"]["password_command"],
            "vault kv get -field=password secret/cairn/catalog");
  EXPECT_EQ(j["services"]["uploads"]["schedule"], "0 */6 * * *");
  EXPECT_EQ(j["services"]["uploads"]["timeout"], "2h");
  EXPECT_EQ(j["services"]["catalog-mongo"]["retention"],
            nlohmann::json::parse(R"({"last": 7, "within": "1m"})"));
  EXPECT_EQ(j["alerts"][1]["headers"]["Authorization"], "Bearer ${CHAT_TOKEN}");
  EXPECT_EQ(j["alerts"][0]["min_severity"], "critical");
  EXPECT_EQ(j["alerts"][1]["min_severity"], "warning");
  EXPECT_EQ(j["daemon"]["prune"]["schedule"], "0 4 * * SUN");
  EXPECT_EQ(j.dump().find("pg-secret"), std::string::npos);
}

TEST(CatalogDiagnostic, ToString) {
  Diagnostic d;
  d.file = "cairn.yaml";
  d.line = 12;
  d.column = 5;
  d.service = "shop";
  d.field = "objectives.rpo";
  d.message = "must be more than zero";
  EXPECT_EQ(d.to_string(),
            "cairn.yaml:12:5: error: service \"shop\": objectives.rpo: must be more than zero");
  d.severity = Diagnostic::Severity::kWarning;
  d.service.clear();
  EXPECT_EQ(d.to_string(), "cairn.yaml:12:5: warning: objectives.rpo: must be more than zero");
  d.line = 0;
  d.field.clear();
  EXPECT_EQ(d.to_string(), "cairn.yaml: warning: must be more than zero");
}

TEST(CatalogLoad, MissingFileIsOneError) {
  LoadResult r = load_catalog("/nonexistent/cairn.yaml");
  EXPECT_FALSE(r.ok());
  EXPECT_THAT(diagnostics(r), ElementsAre("/nonexistent/cairn.yaml: error: cannot read the policy "
                                          "file: No such file or directory"));
}

TEST(CatalogLoad, ReadsAFileAndNamesIt) {
  testing::TempDir dir;
  std::ofstream(dir / "cairn.yaml") << kHead << "    retries: x\n";
  LoadResult r = load_catalog(dir / "cairn.yaml");
  EXPECT_THAT(diagnostics(r), ElementsAre(dir / "cairn.yaml" +
                                          ":11:14: error: service \"web\": retries: \"x\" is not a "
                                          "whole number"));
}

TEST(CatalogExpandEnv, ReferencesEscapesAndErrors) {
  ScopedEnv a("CAIRN_TEST_A", "alpha");
  ScopedEnv b("CAIRN_TEST_EMPTY", "");
  ScopedEnv u("CAIRN_TEST_UNSET", nullptr);
  EXPECT_EQ(expand_env("plain text").value(), "plain text");
  EXPECT_EQ(expand_env("${CAIRN_TEST_A}").value(), "alpha");
  EXPECT_EQ(expand_env("x=${CAIRN_TEST_A},y=${CAIRN_TEST_A}").value(), "x=alpha,y=alpha");
  EXPECT_EQ(expand_env("[${CAIRN_TEST_EMPTY}]").value(), "[]");  // set but empty is fine
  EXPECT_EQ(expand_env("$${CAIRN_TEST_A}").value(), "${CAIRN_TEST_A}");
  // "$${" is always the escape, also after another "$".
  EXPECT_EQ(expand_env("$$${CAIRN_TEST_A}").value(), "$${CAIRN_TEST_A}");
  EXPECT_EQ(expand_env("cost: $5, $HOME").value(), "cost: $5, $HOME");  // only ${...} expands
  auto unset = expand_env("a ${CAIRN_TEST_UNSET} b");
  ASSERT_FALSE(unset.ok());
  EXPECT_EQ(unset.status().code(), core::Code::kInvalidArgument);
  EXPECT_EQ(unset.status().message(), "environment variable CAIRN_TEST_UNSET is not set");
  auto open = expand_env("${CAIRN_TEST_A");
  ASSERT_FALSE(open.ok());
  EXPECT_EQ(open.status().message(), "unterminated ${ in \"${CAIRN_TEST_A\"");
  auto empty = expand_env("${}");
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.status().message(), "empty ${} in \"${}\"");
}

TEST(CatalogDidYouMean, ClosestWithinTwoEdits) {
  std::vector<std::string> keys = {"schedule", "retention", "retries", "tier", "tags"};
  EXPECT_EQ(did_you_mean("scheduel", keys), "schedule");
  EXPECT_EQ(did_you_mean("retenion", keys), "retention");
  EXPECT_EQ(did_you_mean("Retention", keys), "retention");  // case does not count
  EXPECT_EQ(did_you_mean("retires", keys), "retries");
  EXPECT_EQ(did_you_mean("tag", keys), "tags");
  EXPECT_EQ(did_you_mean("schedule", keys), "schedule");
  EXPECT_EQ(did_you_mean("frequency", keys), "");
  EXPECT_EQ(did_you_mean("shedul", keys), "schedule");  // two edits
  EXPECT_EQ(did_you_mean("shdul", keys), "");           // three
  EXPECT_EQ(did_you_mean("anything", {}), "");
}

// find_config: --config, then CAIRN_CONFIG, then ./cairn.yaml, then /etc.
TEST(CatalogFindConfig, LookupOrder) {
  testing::TempDir dir;
  char old_cwd[4096];
  ASSERT_NE(getcwd(old_cwd, sizeof old_cwd), nullptr);
  ASSERT_EQ(chdir(dir.path().c_str()), 0);
  {
    ScopedEnv unset("CAIRN_CONFIG", nullptr);
    EXPECT_EQ(find_config(""), "/etc/cairn/cairn.yaml");
    std::ofstream("cairn.yaml") << "services: {}\n";
    EXPECT_EQ(find_config(""), "cairn.yaml");
    EXPECT_EQ(find_config("/x/flag.yaml"), "/x/flag.yaml");
  }
  {
    ScopedEnv env("CAIRN_CONFIG", "/x/env.yaml");
    EXPECT_EQ(find_config(""), "/x/env.yaml");               // over ./cairn.yaml
    EXPECT_EQ(find_config("/x/flag.yaml"), "/x/flag.yaml");  // the flag wins
  }
  {
    ScopedEnv empty("CAIRN_CONFIG", "");
    EXPECT_EQ(find_config(""), "cairn.yaml");  // an empty variable counts as unset
  }
  ASSERT_EQ(chdir(old_cwd), 0);
}

}  // namespace
}  // namespace cairn::policy
