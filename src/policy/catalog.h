// The service catalog: cairn.yaml read into typed policy, validated as a
// whole, with every problem reported at its file:line:column together with
// the service and field it concerns (docs/configuration.md is the reference).
//
// Loading never stops at the first problem: load_catalog() returns the model
// (as far as it could be read) and every diagnostic, so `cairn policy
// validate` can list them all. Values are immutable after loading;
// thread-compatible.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "policy/cron.h"
#include "policy/retention.h"

namespace cairn::policy {

struct Diagnostic {
  enum class Severity { kError, kWarning };
  Severity severity = Severity::kError;
  std::string file;
  int line = 0, column = 0;  // 1-based; 0 when unknown
  std::string service;       // "" for fleet-wide settings
  std::string field;         // dotted path inside the service (or the top level)
  std::string message;
  // "cairn.yaml:12:5: error: service "shop": objectives.rpo: ..."
  std::string to_string() const;
};

// Where a repository lives and how its key is unlocked. Secrets are never
// inline: a password file, a command, or a key file (docs/configuration.md).
struct RepositoryRef {
  std::string location;  // /path or s3:https://host/bucket/prefix
  std::string password_file, password_command, key_file;
  std::string cacert;
  // Identifies the key source, for the "one path, two keys" check.
  std::string key_source() const;
  bool operator==(const RepositoryRef&) const = default;
};

struct Objectives {
  std::chrono::seconds rpo{0}, rto{0};
};

// The engine and its options. Option values keep ${VAR} references unexpanded;
// expand_env() resolves them when the job runs.
struct EngineSpec {
  std::string type;  // files | exec | postgres | mariadb | redis | sqlite | volume
  // files
  std::vector<std::string> paths, exclude;
  bool one_file_system = false;
  // exec
  std::vector<std::string> command;  // argv; a single string runs through /bin/sh -c
  std::string filename;              // name of the stream in the snapshot
  std::map<std::string, std::string> env;
  // postgres
  std::string mode;  // logical | physical
  std::string dsn, bindir;
  std::vector<std::string> databases;
  bool wal_archiving = false;  // physical: WAL is archived continuously (RPO independent of schedule)
  std::string pg_source = "auto";  // physical: auto | datadir | stream (postgres::PhysicalOptions)
  // redis (docs/engines/redis.md): TCP host:port or a unix socket; the
  // password only as a ${VAR} reference or a file.
  struct Redis {
    std::string host = "127.0.0.1";
    int port = 6379;
    std::string socket, user, password, password_file;
  } redis;
  // sqlite (docs/engines/sqlite.md): the database file.
  struct Sqlite {
    std::string path;
  } sqlite;
  // mariadb (mode and databases above apply too)
  std::string socket, host, user;
  int port = 0;
  std::string password_file;  // a file holding the password
  std::string password;       // only a ${VAR} reference, never the secret itself
  bool binlog_archiving = false;  // closed binlogs go to the log archive (cairn mariadb binlog-sync)
  size_t parallel = 1;  // logical: dump streams held at one point (mariadb::LogicalOptions)
  // volume (docs/engines/volume.md): a file system snapshot backed up as files (`exclude` too)
  std::string driver;         // btrfs | lvm | zfs | auto
  std::string source;         // btrfs subvolume / mount point, LV (vg/lv), ZFS dataset
  std::string snapshot_dir;   // btrfs: where snapshots are made; lvm: where they are mounted
  std::string snapshot_size;  // lvm: lvcreate -L SIZE, or -l N%ORIGIN|VG|FREE
  bool freeze = false;        // fsfreeze the file system around the snapshot (lvm)
  std::vector<std::string> quiesce_pre, quiesce_post;  // shell commands just before / after the snapshot
  // PostgreSQL base backups with the WAL archived (point-in-time recovery).
  bool postgres_wal() const { return type == "postgres" && mode == "physical" && wal_archiving; }
  // MariaDB dumps with the binlogs archived (point-in-time recovery).
  bool mariadb_binlogs() const { return type == "mariadb" && binlog_archiving; }
  // Engines that keep the recovery point current between scheduled runs.
  bool continuous() const { return postgres_wal() || mariadb_binlogs(); }
};

struct DrillSpec {
  std::string schedule_text;
  std::optional<CronSchedule> schedule;
  std::vector<std::string> checks;  // SQL that must return true, or "exec: <command>"
  // DrillOverdue fires when no drill passed for this long (default: the
  // schedule's longest interval plus the drill's own time limit).
  std::optional<std::chrono::seconds> max_age;
};

struct Hooks {
  std::vector<std::string> pre, post;  // shell commands; a failing pre hook fails the run
};

struct Service {
  std::string name;
  int line = 0, column = 0;
  std::string owner, tier;  // tier: critical | high | medium | low
  RepositoryRef repository;
  Objectives objectives;
  EngineSpec engine;
  std::string schedule_text;
  std::optional<CronSchedule> schedule;  // none: not scheduled by the daemon
  RetentionPolicy retention;
  DrillSpec drill;
  Hooks hooks;
  std::vector<std::string> tags;
  std::chrono::seconds timeout{6 * 3600};
  int retries = 2;
  std::chrono::seconds retry_delay{60};
};

// One alert receiver: a JSON webhook or an Alertmanager (v2 API).
struct AlertReceiver {
  std::string name;
  std::string type;  // webhook | alertmanager
  std::string url;
  std::vector<std::string> services;  // empty: every service
  std::map<std::string, std::string> headers;
  std::string min_severity = "warning";  // info | warning | critical
};

struct DaemonSettings {
  std::string state = "/var/lib/cairn/state.db";
  int max_jobs = 0;  // 0: number of cores
  std::string timezone = "UTC";
  std::chrono::seconds jitter{0};
  std::string catch_up = "once";  // once | skip: after downtime, run a missed job once or wait
  std::string listen;             // metrics address "127.0.0.1:9464" ("" = off)
  std::chrono::seconds shutdown_grace{60};
  std::string prune_schedule_text = "0 4 * * 0";
  std::optional<CronSchedule> prune_schedule;
  std::string max_unused = "5%";
  std::chrono::seconds repeat_interval{4 * 3600};  // re-notify a firing alert
  // A scheduled `drill run --fleet` (e.g. quarterly): every service, or these.
  std::string fleet_drill_schedule_text;
  std::optional<CronSchedule> fleet_drill_schedule;
  std::vector<std::string> fleet_drill_services;
};

// The HTTPS API server (`cairn server`, docs/security.md).
struct ServerSettings {
  bool configured = false;  // the policy has a server block: CLI actions are audited too
  std::string listen = "127.0.0.1:8443";
  std::string tls_cert, tls_key;  // PEM files; both or neither
  std::string audit_log;          // hash-chained JSON lines ("" = audit.log beside daemon.state)
  std::string web;                // dashboard folder ("" = the web/ installed with cairn)
  std::string restore_root;       // restores started through the API go below it ("" = restores/ beside daemon.state)
  std::string restore_root_path(const DaemonSettings& d) const;
  std::string audit_log_path(const DaemonSettings& d) const;
};

struct Catalog {
  std::string path;
  std::vector<Service> services;  // in file order
  std::vector<AlertReceiver> alerts;
  DaemonSettings daemon;
  ServerSettings server;
  const Service* find(const std::string& name) const;
};

struct LoadResult {
  Catalog catalog;
  std::vector<Diagnostic> diagnostics;
  bool ok() const;  // no errors (warnings allowed)
};

// The effective policy with every default filled in (`cairn policy show`).
nlohmann::json to_json(const Service& service);
nlohmann::json to_json(const Catalog& catalog);

// Reads and validates a policy file. A file that cannot be read or parsed
// yields a single error diagnostic.
LoadResult load_catalog(const std::string& path);
// The same for text already in memory (tests); `name` is used in messages.
LoadResult parse_catalog(const std::string& text, const std::string& name);

// --config, else CAIRN_CONFIG, else ./cairn.yaml, else /etc/cairn/cairn.yaml.
std::string find_config(const std::string& flag);

// Replaces ${NAME} with the environment variable's value; kInvalidArgument
// naming the variable when it is unset. "$${" is a literal "${".
core::Result<std::string> expand_env(const std::string& text);

// The closest of `candidates` to `word` (edit distance ≤ 2), or "".
std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace cairn::policy
