#include "policy/catalog.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <unistd.h>

#include "policy/duration.h"

namespace cairn::policy {

namespace {

using std::chrono::seconds;

const std::vector<std::string> kTopKeys = {"version", "repository", "defaults", "services", "alerts", "daemon", "server"};
// Keys a service may set; `defaults` accepts the same except owner, engine.
const std::vector<std::string> kServiceKeys = {
    "owner",  "tier",  "description", "repository", "objectives", "engine",  "schedule",
    "retention", "drill", "hooks",    "tags",       "timeout",    "retries", "retry_delay"};
const std::vector<std::string> kDefaultsKeys = {"tier",  "repository", "schedule", "retention", "drill",
                                                "hooks", "tags",       "timeout",  "retries",   "retry_delay"};
const std::vector<std::string> kRepositoryKeys = {"location", "password_file", "password_command", "key_file",
                                                  "cacert"};
const std::vector<std::string> kObjectiveKeys = {"rpo", "rto"};
const std::vector<std::string> kRetentionKeys = {"last",    "hourly", "daily", "weekly",
                                                 "monthly", "yearly", "within", "tags"};
const std::vector<std::string> kDrillKeys = {"schedule", "checks", "max_age"};
const std::vector<std::string> kHookKeys = {"pre", "post"};
const std::vector<std::string> kTiers = {"critical", "high", "medium", "low"};
const std::vector<std::string> kEngineTypes = {"files", "exec", "postgres", "mariadb", "redis", "sqlite", "volume"};
// Engines the design names that this version does not run yet.
const std::vector<std::string> kPlannedEngines = {"mongodb"};
const std::map<std::string, std::vector<std::string>> kEngineKeys = {
    {"files", {"type", "paths", "exclude", "one_file_system"}},
    {"exec", {"type", "command", "filename", "env"}},
    {"postgres", {"type", "mode", "dsn", "bindir", "databases", "wal_archiving", "source"}},
    // --- redis, sqlite engines
    {"redis", {"type", "host", "port", "socket", "user", "password", "password_file"}},
    {"sqlite", {"type", "path"}},
    // --- end redis, sqlite engines
    // mariadb engine
    {"mariadb",
     {"type", "mode", "socket", "host", "port", "user", "password", "password_file", "databases",
      "binlog_archiving", "parallel"}},
    // volume engine
    {"volume",
     {"type", "driver", "source", "snapshot_dir", "snapshot_size", "freeze", "quiesce", "exclude"}},
};

// "files, exec, postgres, mariadb, redis, sqlite or volume" for messages: always the types this version runs.
std::string engine_type_list() {
  std::string out;
  for (size_t i = 0; i < kEngineTypes.size(); i++)
    out += (i == 0 ? "" : i + 1 == kEngineTypes.size() ? " or " : ", ") + kEngineTypes[i];
  return out;
}
// volume engine
const std::vector<std::string> kVolumeDrivers = {"btrfs", "lvm", "zfs", "auto"};
const std::vector<std::string> kQuiesceKeys = {"pre", "post"};
const std::vector<std::string> kAlertKeys = {"name",     "type",    "url",         "webhook",
                                             "alertmanager", "services", "headers", "min_severity"};
const std::vector<std::string> kDaemonKeys = {"state",  "max_jobs",       "timezone", "jitter",          "catch_up",
                                              "listen", "shutdown_grace", "prune",    "repeat_interval", "fleet_drill"};
const std::vector<std::string> kFleetDrillKeys = {"schedule", "services"};
const std::vector<std::string> kPruneKeys = {"schedule", "max_unused"};
const std::vector<std::string> kServerKeys = {"listen", "tls", "audit_log", "web", "restore_root"};
const std::vector<std::string> kServerTlsKeys = {"cert", "key"};

std::string join_dotted(const std::string& a, const std::string& b) { return a.empty() ? b : a + "." + b; }

// True when `text` has a "${" without a closing "}" or an empty "${}" (the
// same scan as expand_env, without looking at the environment).
bool malformed_env_ref(const std::string& text) {
  for (size_t i = 0; i < text.size(); i++) {
    if (text.compare(i, 3, "$${") == 0) {
      i += 2;
      continue;
    }
    if (text.compare(i, 2, "${") != 0) continue;
    size_t end = text.find('}', i + 2);
    if (end == std::string::npos || end == i + 2) return true;
    i = end;
  }
  return false;
}

// Reads YAML nodes into the model, collecting diagnostics with positions.
class Reader {
 public:
  Reader(std::string file, std::vector<Diagnostic>& out) : file_(std::move(file)), out_(out) {}

  void report(Diagnostic::Severity sev, const YAML::Node& at, const std::string& service,
              const std::string& field, const std::string& message) {
    Diagnostic d;
    d.severity = sev;
    d.file = file_;
    if (at.IsDefined() && at.Mark().line >= 0) {
      d.line = at.Mark().line + 1;
      d.column = at.Mark().column + 1;
    }
    d.service = service;
    d.field = field;
    d.message = message;
    out_.push_back(std::move(d));
  }
  void error(const YAML::Node& at, const std::string& service, const std::string& field, const std::string& msg) {
    report(Diagnostic::Severity::kError, at, service, field, msg);
  }
  void warn(const YAML::Node& at, const std::string& service, const std::string& field, const std::string& msg) {
    report(Diagnostic::Severity::kWarning, at, service, field, msg);
  }

  // True when `node` is a map; reports unknown keys (with a suggestion).
  bool map(const YAML::Node& node, const std::string& service, const std::string& field,
           const std::vector<std::string>& allowed) {
    if (!node.IsMap()) {
      error(node, service, field, "expected a mapping (key: value lines)");
      return false;
    }
    std::set<std::string> seen;
    for (auto it = node.begin(); it != node.end(); ++it) {
      std::string key = it->first.IsScalar() ? it->first.Scalar() : "?";
      // yaml-cpp keeps both copies of a repeated key and lookups see only the
      // first: the second would be ignored without a word.
      if (!seen.insert(key).second) {
        error(it->first, service, join_dotted(field, key),
              fmt::format("duplicate key \"{}\"", key));
        continue;
      }
      if (std::find(allowed.begin(), allowed.end(), key) != allowed.end()) continue;
      std::string msg = fmt::format("unknown key \"{}\"", key);
      std::string hint = did_you_mean(key, allowed);
      if (!hint.empty()) msg += fmt::format(" (did you mean \"{}\"?)", hint);
      error(it->first, service, join_dotted(field, key), msg);
    }
    return true;
  }

  std::optional<std::string> string(const YAML::Node& node, const std::string& service, const std::string& field) {
    if (!node.IsScalar()) {
      error(node, service, field, "expected a text value");
      return std::nullopt;
    }
    return node.Scalar();
  }

  std::optional<long> integer(const YAML::Node& node, const std::string& service, const std::string& field,
                              long min, long max) {
    if (!node.IsScalar()) {
      error(node, service, field, "expected a whole number");
      return std::nullopt;
    }
    const std::string& s = node.Scalar();
    char* end = nullptr;
    errno = 0;
    long v = std::strtol(s.c_str(), &end, 10);
    if (s.empty() || *end != '\0' || errno != 0) {
      error(node, service, field, fmt::format("\"{}\" is not a whole number", s));
      return std::nullopt;
    }
    if (v < min || v > max) {
      error(node, service, field, fmt::format("{} is out of range {}-{}", v, min, max));
      return std::nullopt;
    }
    return v;
  }

  std::optional<bool> boolean(const YAML::Node& node, const std::string& service, const std::string& field) {
    bool v = false;
    if (!node.IsScalar() || !YAML::convert<bool>::decode(node, v)) {
      error(node, service, field, "expected true or false");
      return std::nullopt;
    }
    return v;
  }

  std::optional<seconds> duration(const YAML::Node& node, const std::string& service, const std::string& field) {
    if (!node.IsScalar()) {
      error(node, service, field, "expected a duration such as 15m, 1h or 7d");
      return std::nullopt;
    }
    auto d = parse_duration(node.Scalar());
    if (!d.ok()) {
      error(node, service, field, d.status().message());
      return std::nullopt;
    }
    return *d;
  }

  // A list of strings; a single string counts as a one-element list when allowed.
  std::vector<std::string> strings(const YAML::Node& node, const std::string& service, const std::string& field,
                                   bool single_ok = true) {
    std::vector<std::string> out;
    if (node.IsScalar() && single_ok) {
      out.push_back(node.Scalar());
    } else if (node.IsSequence()) {
      for (size_t i = 0; i < node.size(); i++) {
        if (node[i].IsScalar()) {
          out.push_back(node[i].Scalar());
        } else {
          error(node[i], service, fmt::format("{}[{}]", field, i), "expected a text value");
        }
      }
    } else {
      error(node, service, field, "expected a list of text values");
    }
    return out;
  }

  std::map<std::string, std::string> string_map(const YAML::Node& node, const std::string& service,
                                                const std::string& field) {
    std::map<std::string, std::string> out;
    if (!node.IsMap()) {
      error(node, service, field, "expected a mapping (NAME: value)");
      return out;
    }
    for (auto it = node.begin(); it != node.end(); ++it) {
      std::string key = it->first.Scalar();
      if (out.count(key)) {
        error(it->first, service, join_dotted(field, key),
              fmt::format("duplicate key \"{}\"", key));
        continue;
      }
      if (auto v = string(it->second, service, join_dotted(field, key))) out[key] = *v;
    }
    return out;
  }

  std::optional<CronSchedule> schedule(const YAML::Node& node, const std::string& service, const std::string& field,
                                       std::string& text) {
    auto s = string(node, service, field);
    if (!s) return std::nullopt;
    text = *s;
    auto c = CronSchedule::parse(*s);
    if (!c.ok()) {
      error(node, service, field, c.status().message());
      return std::nullopt;
    }
    return *c;
  }

  // A string must not carry a secret in clear; ${VAR} references are the way.
  void no_inline_secret(const YAML::Node& node, const std::string& service, const std::string& field,
                        const std::string& value, bool whole_value_is_secret) {
    // key=value (libpq: "host=db password=..."), a URI's query ("...?password=...")
    // and a URI's user:password@ part.
    static const std::regex kv(R"((?:^|[\s?&])password\s*=\s*('[^']*'|[^\s&]+))",
                               std::regex::icase);
    static const std::regex uri(R"(^[a-z][a-z0-9+.-]*://[^/@:]*:([^@/]+)@)", std::regex::icase);
    std::smatch m;
    std::string secret;
    if (whole_value_is_secret) {
      secret = value;
    } else if (std::regex_search(value, m, kv) || std::regex_search(value, m, uri)) {
      secret = m[1].str();
    }
    if (!secret.empty() && secret.find("${") == std::string::npos)
      error(node, service, field,
            "a secret is written inline; reference an environment variable instead (e.g. ${PG_PASSWORD}) "
            "or use a password file");
  }

  // Unset ${VAR} references are warnings at validation time: the daemon's
  // environment may differ from the shell that validates. A malformed
  // reference ("${NAME" without "}", "${}") fails in every environment: error.
  void env_refs(const YAML::Node& node, const std::string& service, const std::string& field,
                const std::string& value) {
    auto r = expand_env(value);
    if (r.ok()) return;
    if (malformed_env_ref(value))
      error(node, service, field, r.status().message());
    else
      warn(node, service, field, r.status().message());
  }

  RepositoryRef repository(const YAML::Node& node, const std::string& service, const std::string& field) {
    RepositoryRef r;
    if (node.IsScalar()) {
      r.location = node.Scalar();
    } else if (map(node, service, field, kRepositoryKeys)) {
      if (node["location"]) r.location = string(node["location"], service, field + ".location").value_or("");
      else error(node, service, field + ".location", "missing (a path or s3:https://host/bucket/prefix)");
      if (node["password_file"])
        r.password_file =
            string(node["password_file"], service, field + ".password_file").value_or("");
      if (node["password_command"])
        r.password_command =
            string(node["password_command"], service, field + ".password_command").value_or("");
      if (node["key_file"])
        r.key_file = string(node["key_file"], service, field + ".key_file").value_or("");
      if (node["cacert"])
        r.cacert = string(node["cacert"], service, field + ".cacert").value_or("");
      int sources = !r.password_file.empty() + !r.password_command.empty() + !r.key_file.empty();
      if (sources > 1)
        error(node, service, field, "give only one of password_file, password_command and key_file");
    }
    if (r.location.empty() && node.IsScalar()) error(node, service, field, "empty repository location");
    // rest: the cairn server's repository endpoint (write-only agents, docs/repo-endpoint.md)
    const bool rest = r.location.rfind("rest:", 0) == 0;
    if (r.location.rfind("s3:", 0) != 0 && !rest && !r.location.empty() && r.location[0] != '/')
      error(node, service, field, fmt::format("\"{}\" is neither an absolute path nor s3:https://...", r.location));
    return r;
  }

  RetentionPolicy retention(const YAML::Node& node, const std::string& service, const std::string& field) {
    RetentionPolicy r;
    if (!map(node, service, field, kRetentionKeys)) return r;
    bool invalid = false;  // a value already reported: "keeps nothing" would only repeat it
    auto count = [&](const char* key, int& dst) {
      if (!node[key]) return;
      auto v = integer(node[key], service, join_dotted(field, key), 0, 100000);
      invalid |= !v;
      dst = static_cast<int>(v.value_or(0));
    };
    count("last", r.last);
    count("hourly", r.hourly);
    count("daily", r.daily);
    count("weekly", r.weekly);
    count("monthly", r.monthly);
    count("yearly", r.yearly);
    if (node["within"]) {
      auto w = string(node["within"], service, field + ".within");
      r.within = w.value_or("");
      invalid |= !w;
      if (auto st = validate_within(r.within); !r.within.empty() && !st.ok()) {
        error(node["within"], service, field + ".within", st.message());
        invalid = true;
      }
    }
    if (node["tags"]) r.keep_tags = strings(node["tags"], service, field + ".tags");
    if (r.empty() && !invalid)
      error(node, service, field, "retention keeps nothing: set at least one of last, hourly, daily, weekly, "
                                  "monthly, yearly, within or tags");
    return r;
  }

  void engine(const YAML::Node& node, Service& s) {
    const std::string& svc = s.name;
    EngineSpec& e = s.engine;
    if (!node.IsMap()) {
      error(node, svc, "engine", "expected a mapping with a type (" + engine_type_list() + ")");
      return;
    }
    if (!node["type"]) {
      error(node, svc, "engine.type", "missing (" + engine_type_list() + ")");
      return;
    }
    e.type = string(node["type"], svc, "engine.type").value_or("");
    auto keys = kEngineKeys.find(e.type);
    if (keys == kEngineKeys.end()) {
      std::string msg;
      if (std::find(kPlannedEngines.begin(), kPlannedEngines.end(), e.type) != kPlannedEngines.end()) {
        msg = fmt::format("engine \"{}\" is not available in this version; use exec with the database's own "
                          "dump tool for now",
                          e.type);
      } else {
        msg = fmt::format("unknown engine \"{}\" ({})", e.type, engine_type_list());
        std::string hint = did_you_mean(e.type, kEngineTypes);
        if (!hint.empty()) msg += fmt::format("; did you mean \"{}\"?", hint);
      }
      error(node["type"], svc, "engine.type", msg);
      return;
    }
    map(node, svc, "engine", keys->second);
    if (e.type == "files") {
      if (node["paths"]) e.paths = strings(node["paths"], svc, "engine.paths");
      if (e.paths.empty()) error(node, svc, "engine.paths", "missing: the files engine needs at least one path");
      for (const auto& p : e.paths)
        if (p.empty() || p[0] != '/') error(node["paths"], svc, "engine.paths", fmt::format("\"{}\" is not absolute", p));
      if (node["exclude"]) e.exclude = strings(node["exclude"], svc, "engine.exclude");
      if (node["one_file_system"])
        e.one_file_system = boolean(node["one_file_system"], svc, "engine.one_file_system").value_or(false);
    } else if (e.type == "exec") {
      if (node["command"]) {
        e.command = strings(node["command"], svc, "engine.command");
        if (node["command"].IsScalar() && !e.command.empty()) e.command = {"/bin/sh", "-c", e.command[0]};
      }
      if (e.command.empty() || e.command.back().empty())
        error(node, svc, "engine.command", "missing: the command whose standard output is the backup");
      for (const auto& arg : e.command) env_refs(node["command"], svc, "engine.command", arg);
      e.filename = svc + ".dump";
      if (node["filename"]) e.filename = string(node["filename"], svc, "engine.filename").value_or(e.filename);
      if (e.filename.find('/') != std::string::npos || e.filename == "." || e.filename == "..")
        error(node["filename"], svc, "engine.filename", "must be a plain file name");
      if (node["env"]) {
        e.env = string_map(node["env"], svc, "engine.env");
        static const std::regex secretish("password|secret|token|key", std::regex::icase);
        // MONGO_PASSWORD_FILE=/run/secrets/x names where the secret is: that is the advice.
        static const std::regex reference("_(file|path|dir)$", std::regex::icase);
        for (const auto& [k, v] : e.env) {
          bool secret = std::regex_search(k, secretish) && !std::regex_search(k, reference);
          no_inline_secret(node["env"][k], svc, "engine.env." + k, v, secret);
          env_refs(node["env"][k], svc, "engine.env." + k, v);
        }
      }
    } else if (e.type == "postgres") {
      if (node["mode"]) e.mode = string(node["mode"], svc, "engine.mode").value_or("");
      if (e.mode != "logical" && e.mode != "physical")
        error(node["mode"] ? node["mode"] : node, svc, "engine.mode",
              e.mode.empty() ? "missing (logical or physical)"
                             : fmt::format("\"{}\" is not logical or physical", e.mode));
      if (node["dsn"]) {
        e.dsn = string(node["dsn"], svc, "engine.dsn").value_or("");
        no_inline_secret(node["dsn"], svc, "engine.dsn", e.dsn, false);
        env_refs(node["dsn"], svc, "engine.dsn", e.dsn);
      } else {
        error(node, svc, "engine.dsn", "missing (a libpq connection string, e.g. \"host=/run/postgresql dbname=shop\")");
      }
      if (node["bindir"]) e.bindir = string(node["bindir"], svc, "engine.bindir").value_or("");
      if (node["databases"]) e.databases = strings(node["databases"], svc, "engine.databases");
      e.wal_archiving = e.mode == "physical";
      if (node["wal_archiving"]) {
        e.wal_archiving = boolean(node["wal_archiving"], svc, "engine.wal_archiving").value_or(false);
        if (e.wal_archiving && e.mode == "logical")
          error(node["wal_archiving"], svc, "engine.wal_archiving", "WAL archiving needs mode: physical");
      }
      if (node["source"]) {
        e.pg_source = string(node["source"], svc, "engine.source").value_or("auto");
        if (e.pg_source != "auto" && e.pg_source != "datadir" && e.pg_source != "stream")
          error(node["source"], svc, "engine.source",
                fmt::format("\"{}\" is not auto, datadir or stream", e.pg_source));
        else if (e.mode == "logical")
          error(node["source"], svc, "engine.source", "a base backup source needs mode: physical");
      }
    } else if (e.type == "redis" || e.type == "sqlite") {
      redis_sqlite_engine(node, s);
    } else if (e.type == "mariadb") {
      mariadb_engine(node, s);
    } else if (e.type == "volume") {
      volume_engine(node, e, svc);
    }
  }

  // --- redis, sqlite engines (docs/engines/redis.md, docs/engines/sqlite.md)
  void redis_sqlite_engine(const YAML::Node& node, Service& s) {
    const std::string& svc = s.name;
    EngineSpec& e = s.engine;
    auto absolute = [&](const char* key, std::string& dst) {
      auto v = string(node[key], svc, std::string("engine.") + key);
      if (!v) return;
      dst = *v;
      if (dst.empty() || dst[0] != '/')
        error(node[key], svc, std::string("engine.") + key, fmt::format("\"{}\" is not absolute", dst));
    };
    if (e.type == "sqlite") {
      if (node["path"]) absolute("path", e.sqlite.path);
      else error(node, svc, "engine.path", "missing: the database file (e.g. /var/lib/app/app.db)");
      return;
    }
    EngineSpec::Redis& r = e.redis;
    if (node["host"]) {
      r.host = string(node["host"], svc, "engine.host").value_or("");
      if (r.host.empty()) error(node["host"], svc, "engine.host", "must not be empty");
    }
    if (node["port"]) r.port = static_cast<int>(integer(node["port"], svc, "engine.port", 1, 65535).value_or(r.port));
    if (node["socket"]) {
      absolute("socket", r.socket);
      if (node["host"] || node["port"])
        error(node["socket"], svc, "engine.socket", "give socket or host/port, not both");
    }
    if (node["user"]) r.user = string(node["user"], svc, "engine.user").value_or("");
    if (node["password"]) {
      r.password = string(node["password"], svc, "engine.password").value_or("");
      no_inline_secret(node["password"], svc, "engine.password", r.password, true);
      env_refs(node["password"], svc, "engine.password", r.password);
    }
    if (node["password_file"]) {
      absolute("password_file", r.password_file);
      if (node["password"])
        error(node["password_file"], svc, "engine.password_file", "give password or password_file, not both");
    }
  }
  // --- end redis, sqlite engines

  // --- mariadb engine ---
  void mariadb_engine(const YAML::Node& node, Service& s) {
    const std::string& svc = s.name;
    EngineSpec& e = s.engine;
    e.mode = "logical";
    if (node["mode"]) e.mode = string(node["mode"], svc, "engine.mode").value_or("");
    if (e.mode != "logical" && e.mode != "physical")
      error(node["mode"], svc, "engine.mode", fmt::format("\"{}\" is not logical or physical", e.mode));
    for (auto [key, dst] : std::initializer_list<std::pair<const char*, std::string*>>{
             {"socket", &e.socket}, {"host", &e.host}, {"user", &e.user}, {"password_file", &e.password_file}}) {
      if (!node[key]) continue;
      *dst = string(node[key], svc, std::string("engine.") + key).value_or("");
      env_refs(node[key], svc, std::string("engine.") + key, *dst);
    }
    if (!e.socket.empty() && e.socket[0] != '/' && e.socket[0] != '$')
      error(node["socket"], svc, "engine.socket", fmt::format("\"{}\" is not an absolute path", e.socket));
    if (node["port"]) e.port = static_cast<int>(integer(node["port"], svc, "engine.port", 1, 65535).value_or(0));
    if (!e.socket.empty() && (!e.host.empty() || e.port > 0))
      error(node["socket"], svc, "engine.socket", "give socket or host/port, not both");
    if (node["password"]) {
      e.password = string(node["password"], svc, "engine.password").value_or("");
      no_inline_secret(node["password"], svc, "engine.password", e.password, true);
      env_refs(node["password"], svc, "engine.password", e.password);
      if (!e.password_file.empty())
        error(node["password"], svc, "engine.password", "give password (a ${VAR}) or password_file, not both");
    }
    if (node["databases"]) e.databases = strings(node["databases"], svc, "engine.databases");
    if (node["binlog_archiving"])
      e.binlog_archiving = boolean(node["binlog_archiving"], svc, "engine.binlog_archiving").value_or(false);
    if (node["parallel"]) {
      e.parallel =
          static_cast<size_t>(integer(node["parallel"], svc, "engine.parallel", 1, 64).value_or(1));
      if (e.parallel > 1 && e.mode != "logical")
        error(node["parallel"], svc, "engine.parallel",
              "parallel dump streams apply to mode logical only");
    }
  }
  // --- end mariadb engine ---

  // --- volume engine ---
  void volume_engine(const YAML::Node& node, EngineSpec& e, const std::string& svc) {
    e.driver = "auto";
    if (node["driver"]) {
      e.driver = string(node["driver"], svc, "engine.driver").value_or("auto");
      if (std::find(kVolumeDrivers.begin(), kVolumeDrivers.end(), e.driver) == kVolumeDrivers.end()) {
        std::string hint = did_you_mean(e.driver, kVolumeDrivers);
        error(node["driver"], svc, "engine.driver",
              fmt::format("\"{}\" is not btrfs, lvm, zfs or auto{}", e.driver,
                          hint.empty() ? "" : fmt::format(" (did you mean \"{}\"?)", hint)));
      }
    }
    if (node["source"]) e.source = string(node["source"], svc, "engine.source").value_or("");
    if (e.source.empty()) {
      error(node["source"] ? node["source"] : node, svc, "engine.source",
            "missing: the btrfs subvolume or mount point, the LV (vg/lv) or the ZFS dataset to snapshot");
    } else if (e.driver == "btrfs" && e.source[0] != '/') {
      error(node["source"], svc, "engine.source", fmt::format("\"{}\" is not absolute (a btrfs subvolume path)", e.source));
    } else if (e.source[0] != '/' && std::count(e.source.begin(), e.source.end(), '/') == 0) {
      error(node["source"], svc, "engine.source",
            fmt::format("\"{}\" is neither an absolute path nor vg/lv or pool/dataset", e.source));
    }
    if (node["snapshot_dir"]) {
      e.snapshot_dir = string(node["snapshot_dir"], svc, "engine.snapshot_dir").value_or("");
      if (e.driver == "zfs")
        error(node["snapshot_dir"], svc, "engine.snapshot_dir",
              "does not apply to zfs (a ZFS snapshot is read under <mountpoint>/.zfs/snapshot)");
      else if (e.snapshot_dir.empty() || e.snapshot_dir[0] != '/')
        error(node["snapshot_dir"], svc, "engine.snapshot_dir", fmt::format("\"{}\" is not absolute", e.snapshot_dir));
    }
    if (node["snapshot_size"]) {
      e.snapshot_size = string(node["snapshot_size"], svc, "engine.snapshot_size").value_or("");
      static const std::regex size_re(R"(^([0-9]+(\.[0-9]+)?[bBsSkKmMgGtTpPeE]?|[0-9]+%(ORIGIN|VG|FREE|PVS))$)");
      if (e.driver == "btrfs" || e.driver == "zfs")
        error(node["snapshot_size"], svc, "engine.snapshot_size", "applies to lvm only (the size of the LVM snapshot)");
      else if (!std::regex_match(e.snapshot_size, size_re))
        error(node["snapshot_size"], svc, "engine.snapshot_size",
              fmt::format("\"{}\" is not an LVM size such as 2G or 20%ORIGIN", e.snapshot_size));
    }
    if (node["freeze"]) {
      e.freeze = boolean(node["freeze"], svc, "engine.freeze").value_or(false);
      // Measured: a btrfs snapshot of a frozen file system blocks until it is
      // thawed, so freeze and snapshot cannot be held together.
      if (e.freeze && (e.driver == "btrfs" || e.driver == "zfs"))
        error(node["freeze"], svc, "engine.freeze",
              fmt::format("freeze cannot be used with {}: {}; use quiesce hooks to pause the application", e.driver,
                          e.driver == "btrfs" ? "a btrfs snapshot of a frozen file system waits for the thaw, and a "
                                                "btrfs snapshot is atomic on its own"
                                              : "ZFS does not support fsfreeze, and a ZFS snapshot is atomic on its own"));
    }
    if (node["quiesce"] && map(node["quiesce"], svc, "engine.quiesce", kQuiesceKeys)) {
      if (node["quiesce"]["pre"]) e.quiesce_pre = strings(node["quiesce"]["pre"], svc, "engine.quiesce.pre");
      if (node["quiesce"]["post"]) e.quiesce_post = strings(node["quiesce"]["post"], svc, "engine.quiesce.post");
    }
    if (node["exclude"]) e.exclude = strings(node["exclude"], svc, "engine.exclude");
  }
  // --- end volume engine ---

  void service(const YAML::Node& node, Service& s, const RepositoryRef* global_repo) {
    const std::string& svc = s.name;
    if (node["owner"]) s.owner = string(node["owner"], svc, "owner").value_or("");
    if (s.owner.empty()) error(node, svc, "owner", "missing: the team that answers for this service's data");
    s.tier = "medium";
    if (node["tier"]) {
      s.tier = string(node["tier"], svc, "tier").value_or("medium");
      if (std::find(kTiers.begin(), kTiers.end(), s.tier) == kTiers.end()) {
        std::string hint = did_you_mean(s.tier, kTiers);
        error(node["tier"], svc, "tier",
              fmt::format("\"{}\" is not one of critical, high, medium, low{}", s.tier,
                          hint.empty() ? "" : fmt::format(" (did you mean \"{}\"?)", hint)));
      }
    }
    if (node["repository"]) {
      s.repository = repository(node["repository"], svc, "repository");
    } else if (global_repo) {
      s.repository = *global_repo;
    } else {
      error(node, svc, "repository", "missing: set repository here or at the top of the file");
    }
    if (!node["objectives"]) {
      error(node, svc, "objectives", "missing: every service defines its rpo and rto (ADR-025)");
    } else if (map(node["objectives"], svc, "objectives", kObjectiveKeys)) {
      for (const char* k : {"rpo", "rto"}) {
        const YAML::Node& o = node["objectives"][k];
        std::string field = std::string("objectives.") + k;
        if (!o) {
          error(node["objectives"], svc, field, "missing");
          continue;
        }
        auto d = duration(o, svc, field);
        if (d && d->count() <= 0) error(o, svc, field, "must be more than zero");
        if (d) (std::string(k) == "rpo" ? s.objectives.rpo : s.objectives.rto) = *d;
      }
    }
    if (node["engine"]) engine(node["engine"], s);
    else error(node, svc, "engine", "missing: how to back this service up (" + engine_type_list() + ")");
    if (node["schedule"]) s.schedule = schedule(node["schedule"], svc, "schedule", s.schedule_text);
    if (node["retention"]) {
      s.retention = retention(node["retention"], svc, "retention");
    } else {
      s.retention.daily = 7;  // ADR-025's example: 7 daily, 4 weekly, 12 monthly
      s.retention.weekly = 4;
      s.retention.monthly = 12;
    }
    if (node["drill"] && map(node["drill"], svc, "drill", kDrillKeys)) {
      if (node["drill"]["schedule"])
        s.drill.schedule = schedule(node["drill"]["schedule"], svc, "drill.schedule", s.drill.schedule_text);
      if (node["drill"]["checks"]) s.drill.checks = strings(node["drill"]["checks"], svc, "drill.checks");
      if (node["drill"]["max_age"]) s.drill.max_age = duration(node["drill"]["max_age"], svc, "drill.max_age");
    }
    if (node["hooks"] && map(node["hooks"], svc, "hooks", kHookKeys)) {
      if (node["hooks"]["pre"]) s.hooks.pre = strings(node["hooks"]["pre"], svc, "hooks.pre");
      if (node["hooks"]["post"]) s.hooks.post = strings(node["hooks"]["post"], svc, "hooks.post");
    }
    if (node["tags"]) s.tags = strings(node["tags"], svc, "tags");
    if (node["timeout"]) s.timeout = duration(node["timeout"], svc, "timeout").value_or(s.timeout);
    if (node["retries"]) s.retries = static_cast<int>(integer(node["retries"], svc, "retries", 0, 100).value_or(2));
    if (node["retry_delay"]) s.retry_delay = duration(node["retry_delay"], svc, "retry_delay").value_or(s.retry_delay);
  }

  // Checks that need the whole service: objectives against the schedule, tier.
  void service_rules(const YAML::Node& node, const Service& s, const date::time_zone* zone) {
    const std::string& svc = s.name;
    if (s.engine.type.empty()) return;
    if (s.objectives.rpo.count() > 0 && !s.engine.continuous()) {
      if (!s.schedule && s.schedule_text.empty()) {
        error(node, svc, "schedule",
              fmt::format("missing: objectives.rpo {} needs a schedule (or continuous WAL archiving)",
                          format_duration(s.objectives.rpo)));
      } else if (s.schedule) {
        seconds gap = s.schedule->max_interval(zone);
        if (gap > s.objectives.rpo)
          error(node["schedule"], svc, "schedule",
                fmt::format("\"{}\" leaves up to {} between backups, more than objectives.rpo {}; run it "
                            "more often{}",
                            s.schedule_text, format_duration(gap), format_duration(s.objectives.rpo),
                            s.engine.type == "postgres"  ? " or use mode: physical with WAL archiving"
                            : s.engine.type == "mariadb" ? " or turn on engine.binlog_archiving"
                                                         : ""));
      }
    }
    if (s.tier == "critical" && !s.drill.schedule && s.drill.schedule_text.empty()) {
      error(node["drill"] ? node["drill"] : node, svc, "drill.schedule",
            "a critical service needs a restore drill schedule (ADR-025: recovery testing is mandatory)");
    }
  }

  void alerts(const YAML::Node& node, Catalog& c) {
    if (!node.IsSequence()) {
      error(node, "", "alerts", "expected a list of receivers (- webhook: URL or - alertmanager: URL)");
      return;
    }
    for (size_t i = 0; i < node.size(); i++) {
      const YAML::Node& a = node[i];
      std::string field = fmt::format("alerts[{}]", i);
      if (!map(a, "", field, kAlertKeys)) continue;
      AlertReceiver r;
      // The key that holds the URL, for the message's position and field.
      const char* url_key = a["webhook"] ? "webhook" : a["alertmanager"] ? "alertmanager" : "url";
      if (a["webhook"]) {
        r.type = "webhook";
        r.url = string(a["webhook"], "", field + ".webhook").value_or("");
      } else if (a["alertmanager"]) {
        r.type = "alertmanager";
        r.url = string(a["alertmanager"], "", field + ".alertmanager").value_or("");
      } else {
        if (a["type"]) r.type = string(a["type"], "", field + ".type").value_or("");
        if (a["url"]) r.url = string(a["url"], "", field + ".url").value_or("");
        if (r.type != "webhook" && r.type != "alertmanager")
          error(a["type"] ? a["type"] : a, "", field + ".type", "must be webhook or alertmanager");
      }
      if (r.url.rfind("http://", 0) != 0 && r.url.rfind("https://", 0) != 0)
        error(a[url_key] ? a[url_key] : a, "", field + "." + url_key,
              r.url.empty() ? "missing: the receiver's http(s) URL"
                            : fmt::format("\"{}\" is not an http(s) URL", r.url));
      r.name = a["name"] ? string(a["name"], "", field + ".name").value_or("") : fmt::format("{}-{}", r.type, i);
      if (a["services"]) {
        r.services = strings(a["services"], "", field + ".services");
        for (const auto& name : r.services) {
          if (c.find(name)) continue;
          std::vector<std::string> names;
          for (const auto& s : c.services) names.push_back(s.name);
          std::string hint = did_you_mean(name, names);
          error(a["services"], "", field + ".services",
                fmt::format("no service named \"{}\"{}", name,
                            hint.empty() ? "" : fmt::format(" (did you mean \"{}\"?)", hint)));
        }
      }
      if (a["headers"]) {
        r.headers = string_map(a["headers"], "", field + ".headers");
        static const std::regex secretish("authorization|token|key|secret", std::regex::icase);
        for (const auto& [k, v] : r.headers) {
          no_inline_secret(a["headers"][k], "", field + ".headers." + k, v, std::regex_search(k, secretish));
          env_refs(a["headers"][k], "", field + ".headers." + k, v);
        }
      }
      if (a["min_severity"]) {
        r.min_severity = string(a["min_severity"], "", field + ".min_severity").value_or("warning");
        if (r.min_severity != "info" && r.min_severity != "warning" && r.min_severity != "critical")
          error(a["min_severity"], "", field + ".min_severity", "must be info, warning or critical");
      }
      c.alerts.push_back(std::move(r));
    }
  }

  // A "host:port" listen address (port 0..65535).
  std::string host_port(const YAML::Node& node, const std::string& field) {
    std::string v = string(node, "", field).value_or("");
    auto colon = v.rfind(':');
    std::string port = colon == std::string::npos ? "" : v.substr(colon + 1);
    bool numeric = !port.empty() && port.size() <= 5 &&
                   std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }) &&
                   std::stoi(port) <= 65535;
    if (colon == 0 || !numeric) error(node, "", field, fmt::format("\"{}\" is not host:port", v));
    return v;
  }

  // server: the HTTPS API (docs/security.md).
  void server(const YAML::Node& node, ServerSettings& s) {
    if (!map(node, "", "server", kServerKeys)) return;
    s.configured = true;
    if (node["listen"]) s.listen = host_port(node["listen"], "server.listen");
    if (node["tls"] && map(node["tls"], "", "server.tls", kServerTlsKeys)) {
      if (node["tls"]["cert"]) s.tls_cert = string(node["tls"]["cert"], "", "server.tls.cert").value_or("");
      if (node["tls"]["key"]) s.tls_key = string(node["tls"]["key"], "", "server.tls.key").value_or("");
      if (s.tls_cert.empty() != s.tls_key.empty())
        error(node["tls"], "", s.tls_cert.empty() ? "server.tls.cert" : "server.tls.key",
              "missing: the certificate and its private key go together");
    }
    if (node["audit_log"]) s.audit_log = string(node["audit_log"], "", "server.audit_log").value_or("");
    if (node["web"]) s.web = string(node["web"], "", "server.web").value_or("");
    if (node["restore_root"]) s.restore_root = string(node["restore_root"], "", "server.restore_root").value_or("");
  }

  void daemon(const YAML::Node& node, DaemonSettings& d) {
    if (!map(node, "", "daemon", kDaemonKeys)) return;
    if (node["state"]) d.state = string(node["state"], "", "daemon.state").value_or(d.state);
    if (node["max_jobs"]) d.max_jobs = static_cast<int>(integer(node["max_jobs"], "", "daemon.max_jobs", 1, 1024).value_or(0));
    if (node["timezone"]) {
      d.timezone = string(node["timezone"], "", "daemon.timezone").value_or("UTC");
      auto z = find_zone(d.timezone);
      if (!z.ok()) error(node["timezone"], "", "daemon.timezone", z.status().message());
    }
    if (node["jitter"]) d.jitter = duration(node["jitter"], "", "daemon.jitter").value_or(d.jitter);
    if (node["catch_up"]) {
      d.catch_up = string(node["catch_up"], "", "daemon.catch_up").value_or("once");
      if (d.catch_up != "once" && d.catch_up != "skip")
        error(node["catch_up"], "", "daemon.catch_up", "must be once or skip");
    }
    if (node["listen"]) d.listen = host_port(node["listen"], "daemon.listen");
    if (node["shutdown_grace"])
      d.shutdown_grace = duration(node["shutdown_grace"], "", "daemon.shutdown_grace").value_or(d.shutdown_grace);
    if (node["repeat_interval"])
      d.repeat_interval = duration(node["repeat_interval"], "", "daemon.repeat_interval").value_or(d.repeat_interval);
    if (node["fleet_drill"] && map(node["fleet_drill"], "", "daemon.fleet_drill", kFleetDrillKeys)) {
      if (node["fleet_drill"]["schedule"])
        d.fleet_drill_schedule =
            schedule(node["fleet_drill"]["schedule"], "", "daemon.fleet_drill.schedule", d.fleet_drill_schedule_text);
      else
        error(node["fleet_drill"], "", "daemon.fleet_drill.schedule", "missing: when the fleet is drilled (cron)");
      if (node["fleet_drill"]["services"])
        d.fleet_drill_services = strings(node["fleet_drill"]["services"], "", "daemon.fleet_drill.services");
    }
    if (node["prune"] && map(node["prune"], "", "daemon.prune", kPruneKeys)) {
      if (node["prune"]["schedule"])
        d.prune_schedule = schedule(node["prune"]["schedule"], "", "daemon.prune.schedule", d.prune_schedule_text);
      if (node["prune"]["max_unused"]) {
        d.max_unused = string(node["prune"]["max_unused"], "", "daemon.prune.max_unused").value_or("5%");
        static const std::regex pct(R"(^\d+(\.\d+)?%$)");
        if (!std::regex_match(d.max_unused, pct))
          error(node["prune"]["max_unused"], "", "daemon.prune.max_unused",
                fmt::format("\"{}\" is not a percentage such as 5%", d.max_unused));
      }
    }
    // An invalid schedule was reported above; keep the field empty then (the
    // catalog is not ok) rather than reading the value of a failed parse.
    if (!d.prune_schedule) {
      if (auto c = CronSchedule::parse(d.prune_schedule_text); c.ok()) d.prune_schedule = *c;
    }
  }

 private:
  std::string file_;
  std::vector<Diagnostic>& out_;
};

// The service node with the `defaults` keys it does not set itself. The
// document is changed in place (it is read once): a YAML::Clone would lose
// every line:column of the service's own values. Unknown keys in `defaults`
// are reported there and not copied.
YAML::Node with_defaults(const YAML::Node& service, const YAML::Node& defaults) {
  YAML::Node merged = service;  // a handle to the same node
  if (!defaults || !defaults.IsMap() || !service.IsMap()) return merged;
  for (auto it = defaults.begin(); it != defaults.end(); ++it) {
    std::string key = it->first.Scalar();
    if (std::find(kDefaultsKeys.begin(), kDefaultsKeys.end(), key) == kDefaultsKeys.end()) continue;
    if (!merged[key]) merged[key] = it->second;
  }
  return merged;
}

}  // namespace

std::string Diagnostic::to_string() const {
  std::string out = file;
  if (line > 0) out += fmt::format(":{}:{}", line, column);
  out += severity == Severity::kError ? ": error: " : ": warning: ";
  if (!service.empty()) out += fmt::format("service \"{}\": ", service);
  if (!field.empty()) out += field + ": ";
  return out + message;
}

namespace {
std::string beside_state(const DaemonSettings& d, const std::string& name) {
  auto slash = d.state.rfind('/');
  return slash == std::string::npos ? name : d.state.substr(0, slash + 1) + name;
}
}  // namespace

std::string ServerSettings::restore_root_path(const DaemonSettings& d) const {
  return restore_root.empty() ? beside_state(d, "restores") : restore_root;
}
std::string ServerSettings::audit_log_path(const DaemonSettings& d) const {
  return audit_log.empty() ? beside_state(d, "audit.log") : audit_log;
}

std::string RepositoryRef::key_source() const {
  if (!key_file.empty()) return "key_file " + key_file;
  if (!password_file.empty()) return "password_file " + password_file;
  if (!password_command.empty()) return "password_command " + password_command;
  return "the environment (CAIRN_PASSWORD...)";
}

const Service* Catalog::find(const std::string& name) const {
  for (const auto& s : services)
    if (s.name == name) return &s;
  return nullptr;
}

bool LoadResult::ok() const {
  return std::none_of(diagnostics.begin(), diagnostics.end(),
                      [](const Diagnostic& d) { return d.severity == Diagnostic::Severity::kError; });
}

LoadResult parse_catalog(const std::string& text, const std::string& name) {
  LoadResult out;
  out.catalog.path = name;
  Reader rd(name, out.diagnostics);
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    Diagnostic d;
    d.file = name;
    d.line = e.mark.line + 1;
    d.column = e.mark.column + 1;
    d.message = "not valid YAML: " + e.msg;
    out.diagnostics.push_back(d);
    return out;
  }
  try {
    if (!rd.map(root, "", "", kTopKeys)) return out;
    if (root["version"]) {
      auto v = rd.integer(root["version"], "", "version", 1, 1000);
      if (v && *v != 1)
        rd.error(root["version"], "", "version",
                 fmt::format("version {} is not supported (this cairn reads version 1)", *v));
    }
    std::optional<RepositoryRef> global_repo;
    if (root["repository"]) global_repo = rd.repository(root["repository"], "", "repository");
    YAML::Node defaults = root["defaults"];
    if (defaults) rd.map(defaults, "", "defaults", kDefaultsKeys);
    if (root["daemon"]) rd.daemon(root["daemon"], out.catalog.daemon);
    else out.catalog.daemon.prune_schedule = CronSchedule::parse(out.catalog.daemon.prune_schedule_text).value();
    if (root["server"]) rd.server(root["server"], out.catalog.server);
    const date::time_zone* zone = nullptr;
    if (auto z = find_zone(out.catalog.daemon.timezone); z.ok()) zone = *z;

    YAML::Node services = root["services"];
    if (services && !services.IsMap() && !services.IsNull()) {
      rd.error(services, "", "services",
               "expected a mapping of service names to their settings (services: NAME: {...})");
    } else if (!services || !services.IsMap() || services.size() == 0) {
      rd.error(services ? services : root, "", "services", "no services defined (services: NAME: {...})");
    } else {
      static const std::regex name_re("^[a-z0-9][a-z0-9._-]{0,62}$");
      std::map<std::string, const Service*> by_location;
      std::set<std::string> seen;
      for (auto it = services.begin(); it != services.end(); ++it) {
        Service s;
        s.name = it->first.Scalar();
        s.line = it->first.Mark().line + 1;
        s.column = it->first.Mark().column + 1;
        if (!std::regex_match(s.name, name_re))
          rd.error(it->first, s.name, "",
                   "service names are lower-case letters, digits, '.', '_' and '-' (at most 63)");
        if (!seen.insert(s.name).second) {
          rd.error(it->first, s.name, "", "defined twice (service names must be unique)");
          continue;
        }
        if (!rd.map(it->second, s.name, "", kServiceKeys)) continue;
        YAML::Node node = with_defaults(it->second, defaults);
        rd.service(node, s, global_repo ? &*global_repo : nullptr);
        rd.service_rules(node, s, zone);
        out.catalog.services.push_back(std::move(s));
      }
      // One repository location, one key: two services that disagree on how
      // to unlock the same repository would lock one of them out.
      for (const auto& s : out.catalog.services) {
        if (s.repository.location.empty()) continue;
        auto [pos, inserted] = by_location.emplace(s.repository.location, &s);
        if (inserted || pos->second->repository.key_source() == s.repository.key_source()) continue;
        YAML::Node at = services[s.name]["repository"] ? services[s.name]["repository"] : services[s.name];
        rd.error(at, s.name, "repository",
                 fmt::format("writes to {} like service \"{}\" but with a different key ({} vs {})",
                             s.repository.location, pos->second->name, s.repository.key_source(),
                             pos->second->repository.key_source()));
      }
    }
    for (const auto& name : out.catalog.daemon.fleet_drill_services) {
      if (out.catalog.find(name)) continue;
      std::vector<std::string> names;
      for (const auto& s : out.catalog.services) names.push_back(s.name);
      std::string hint = did_you_mean(name, names);
      rd.error(root["daemon"]["fleet_drill"]["services"], "", "daemon.fleet_drill.services",
               fmt::format("no service \"{}\"{}", name, hint.empty() ? "" : " (did you mean \"" + hint + "\"?)"));
    }
    if (root["alerts"]) rd.alerts(root["alerts"], out.catalog);
  } catch (const YAML::Exception& e) {  // yaml-cpp throws on some malformed shapes
    Diagnostic d;
    d.file = name;
    d.line = e.mark.line + 1;
    d.column = e.mark.column + 1;
    d.message = e.msg;
    out.diagnostics.push_back(d);
  }
  std::stable_sort(out.diagnostics.begin(), out.diagnostics.end(), [](const Diagnostic& a, const Diagnostic& b) {
    return std::tie(a.line, a.column) < std::tie(b.line, b.column);
  });
  return out;
}

nlohmann::json to_json(const Service& s) {
  using nlohmann::json;
  json repo = {{"location", s.repository.location}};
  if (!s.repository.key_file.empty()) repo["key_file"] = s.repository.key_file;
  if (!s.repository.password_file.empty()) repo["password_file"] = s.repository.password_file;
  if (!s.repository.password_command.empty()) repo["password_command"] = s.repository.password_command;
  if (!s.repository.cacert.empty()) repo["cacert"] = s.repository.cacert;
  const EngineSpec& e = s.engine;
  json engine = {{"type", e.type}};
  if (e.type == "files") {
    engine["paths"] = e.paths;
    engine["exclude"] = e.exclude;
    engine["one_file_system"] = e.one_file_system;
  } else if (e.type == "exec") {
    engine["command"] = e.command;
    engine["filename"] = e.filename;
    engine["env"] = e.env;
  } else if (e.type == "postgres") {
    engine["mode"] = e.mode;
    engine["dsn"] = e.dsn;  // ${VAR} references stay unexpanded: no secret is printed
    if (!e.bindir.empty()) engine["bindir"] = e.bindir;
    engine["databases"] = e.databases;
    engine["wal_archiving"] = e.wal_archiving;
    if (e.mode == "physical") engine["source"] = e.pg_source;
  } else if (e.type == "redis") {  // --- redis, sqlite engines
    if (e.redis.socket.empty()) {
      engine["host"] = e.redis.host;
      engine["port"] = e.redis.port;
    } else {
      engine["socket"] = e.redis.socket;
    }
    if (!e.redis.user.empty()) engine["user"] = e.redis.user;
    if (!e.redis.password.empty()) engine["password"] = e.redis.password;  // a ${VAR} reference
    if (!e.redis.password_file.empty()) engine["password_file"] = e.redis.password_file;
  } else if (e.type == "sqlite") {
    engine["path"] = e.sqlite.path;
  } else if (e.type == "mariadb") {
    engine["mode"] = e.mode;
    if (!e.socket.empty()) engine["socket"] = e.socket;
    if (!e.host.empty()) engine["host"] = e.host;
    if (e.port > 0) engine["port"] = e.port;
    if (!e.user.empty()) engine["user"] = e.user;
    if (!e.password_file.empty()) engine["password_file"] = e.password_file;
    if (!e.password.empty()) engine["password"] = e.password;  // a ${VAR} reference, never a secret
    engine["databases"] = e.databases;
    engine["binlog_archiving"] = e.binlog_archiving;
    engine["parallel"] = e.parallel;
  } else if (e.type == "volume") {  // volume engine
    engine["driver"] = e.driver;
    engine["source"] = e.source;
    if (!e.snapshot_dir.empty()) engine["snapshot_dir"] = e.snapshot_dir;
    if (!e.snapshot_size.empty()) engine["snapshot_size"] = e.snapshot_size;
    engine["freeze"] = e.freeze;
    engine["quiesce"] = {{"pre", e.quiesce_pre}, {"post", e.quiesce_post}};
    engine["exclude"] = e.exclude;
  }
  json retention = json::object();
  const RetentionPolicy& r = s.retention;
  for (auto [k, v] : std::initializer_list<std::pair<const char*, int>>{
           {"last", r.last}, {"hourly", r.hourly}, {"daily", r.daily}, {"weekly", r.weekly},
           {"monthly", r.monthly}, {"yearly", r.yearly}})
    if (v > 0) retention[k] = v;
  if (!r.within.empty()) retention["within"] = r.within;
  if (!r.keep_tags.empty()) retention["tags"] = r.keep_tags;
  json out = {
      {"owner", s.owner},
      {"tier", s.tier},
      {"repository", repo},
      {"objectives", {{"rpo", format_duration(s.objectives.rpo)}, {"rto", format_duration(s.objectives.rto)}}},
      {"engine", engine},
      {"schedule", s.schedule_text},
      {"retention", retention},
      {"drill", {{"schedule", s.drill.schedule_text}, {"checks", s.drill.checks}}},
      {"hooks", {{"pre", s.hooks.pre}, {"post", s.hooks.post}}},
      {"tags", s.tags},
      {"timeout", format_duration(s.timeout)},
      {"retries", s.retries},
      {"retry_delay", format_duration(s.retry_delay)},
  };
  if (s.drill.max_age) out["drill"]["max_age"] = format_duration(*s.drill.max_age);
  return out;
}

nlohmann::json to_json(const Catalog& c) {
  using nlohmann::json;
  json services = json::object();
  for (const auto& s : c.services) services[s.name] = to_json(s);
  json alerts = json::array();
  for (const auto& a : c.alerts)
    alerts.push_back({{"name", a.name}, {"type", a.type}, {"url", a.url}, {"services", a.services},
                      {"headers", a.headers}, {"min_severity", a.min_severity}});
  const DaemonSettings& d = c.daemon;
  json daemon = {{"state", d.state},
                 {"max_jobs", d.max_jobs},
                 {"timezone", d.timezone},
                 {"jitter", format_duration(d.jitter)},
                 {"catch_up", d.catch_up},
                 {"listen", d.listen},
                 {"shutdown_grace", format_duration(d.shutdown_grace)},
                 {"repeat_interval", format_duration(d.repeat_interval)},
                 {"prune", {{"schedule", d.prune_schedule_text}, {"max_unused", d.max_unused}}}};
  if (d.fleet_drill_schedule)
    daemon["fleet_drill"] = {{"schedule", d.fleet_drill_schedule_text}, {"services", d.fleet_drill_services}};
  const ServerSettings& sv = c.server;
  json server = {{"listen", sv.listen},
                 {"tls", {{"cert", sv.tls_cert}, {"key", sv.tls_key}}},
                 {"audit_log", sv.audit_log_path(d)},
                 {"web", sv.web},
                 {"restore_root", sv.restore_root_path(d)}};
  return {{"services", services}, {"alerts", alerts}, {"daemon", daemon}, {"server", server}};
}

LoadResult load_catalog(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    LoadResult out;
    out.catalog.path = path;
    Diagnostic d;
    d.file = path;
    d.message = fmt::format("cannot read the policy file: {}", std::strerror(errno));
    out.diagnostics.push_back(d);
    return out;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_catalog(ss.str(), path);
}

std::string find_config(const std::string& flag) {
  if (!flag.empty()) return flag;
  if (const char* e = std::getenv("CAIRN_CONFIG"); e && *e) return e;
  if (access("cairn.yaml", R_OK) == 0) return "cairn.yaml";
  return "/etc/cairn/cairn.yaml";
}

core::Result<std::string> expand_env(const std::string& text) {
  std::string out;
  for (size_t i = 0; i < text.size(); i++) {
    if (text.compare(i, 3, "$${") == 0) {
      out += "${";
      i += 2;
      continue;
    }
    if (text.compare(i, 2, "${") != 0) {
      out += text[i];
      continue;
    }
    size_t end = text.find('}', i + 2);
    if (end == std::string::npos) return core::invalid_argument("unterminated ${ in \"" + text + "\"");
    std::string name = text.substr(i + 2, end - i - 2);
    if (name.empty()) return core::invalid_argument("empty ${} in \"" + text + "\"");
    const char* v = std::getenv(name.c_str());
    if (!v) return core::invalid_argument(fmt::format("environment variable {} is not set", name));
    out += v;
    i = end;
  }
  return out;
}

std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates) {
  auto distance = [](const std::string& a, const std::string& b) {
    std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
    for (size_t j = 0; j <= b.size(); j++) prev[j] = j;
    for (size_t i = 1; i <= a.size(); i++) {
      cur[0] = i;
      for (size_t j = 1; j <= b.size(); j++) {
        size_t sub = prev[j - 1] + (std::tolower(a[i - 1]) == std::tolower(b[j - 1]) ? 0 : 1);
        cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
      }
      std::swap(prev, cur);
    }
    return prev[b.size()];
  };
  std::string best;
  size_t best_d = 3;
  for (const auto& c : candidates) {
    size_t d = distance(word, c);
    if (d < best_d) {
      best_d = d;
      best = c;
    }
  }
  return best;
}

}  // namespace cairn::policy
