// Policy scaffolding: tier defaults, engine stanzas, text insertion.
#include "policy/scaffold.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <sstream>

namespace cairn::policy {

namespace {

// Every schedule meets its tier's RPO in any time zone, DST included
// (policy validate measures the longest gap): "*/15" and "0 *" run on real
// instants, "0 */6" leaves at most 7 h and "0 1,13" at most 13 h across a
// DST change.
const std::vector<TierDefaults> kTiers = {
    {"critical", "15m", "1h", "*/15 * * * *", "0 */6 * * *", "0 3 * * 0",
     "{ hourly: 24, daily: 7, weekly: 4, monthly: 12 }"},
    {"high", "1h", "4h", "0 * * * *", "0 2 * * *", "0 4 * * 0",
     "{ hourly: 24, daily: 7, weekly: 4, monthly: 12 }"},
    {"medium", "8h", "8h", "0 */6 * * *", "0 2 * * *", "0 5 1,15 * *",
     "{ daily: 7, weekly: 4, monthly: 6 }"},
    {"low", "1d", "1d", "0 1,13 * * *", "0 2 * * 0", "0 5 1 * *",
     "{ daily: 7, weekly: 4, monthly: 3 }"},
};

const std::vector<std::string> kEngines = {"postgres", "mariadb", "redis",
                                           "sqlite",   "files",   "exec"};

bool valid_name(const std::string& n) {
  if (n.empty() || n.size() > 63) return false;
  auto ok = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
  };
  if (!std::all_of(n.begin(), n.end(), ok)) return false;
  return (n[0] >= 'a' && n[0] <= 'z') || (n[0] >= '0' && n[0] <= '9');
}

std::string join(const std::vector<std::string>& v, const std::string& sep) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : sep) + s;
  return out;
}

bool is_top_level_content(const std::string& line) {
  return !line.empty() && line[0] != ' ' && line[0] != '\t' && line[0] != '#' && line[0] != '\r';
}

bool is_blank_or_comment(const std::string& line) {
  auto p = line.find_first_not_of(" \t\r");
  return p == std::string::npos || line[p] == '#';
}

}  // namespace

const TierDefaults* tier_defaults(const std::string& tier) {
  for (const auto& t : kTiers)
    if (tier == t.tier) return &t;
  return nullptr;
}

const std::vector<TierDefaults>& all_tier_defaults() { return kTiers; }

const std::vector<std::string>& scaffold_engines() { return kEngines; }

core::Result<std::string> scaffold_service(const ScaffoldOptions& o) {
  if (!valid_name(o.name))
    return core::invalid_argument(
        "service name \"" + o.name +
        "\": lower-case letters, digits, '.', '_' and '-' (at most 63), starting with a "
        "letter or digit");
  if (std::find(kEngines.begin(), kEngines.end(), o.engine) == kEngines.end())
    return core::invalid_argument("unknown engine \"" + o.engine + "\" (" + join(kEngines, ", ") +
                                  ")");
  const TierDefaults* t = tier_defaults(o.tier);
  if (!t)
    return core::invalid_argument("unknown tier \"" + o.tier +
                                  "\" (critical, high, medium or low)");
  std::string mode = o.mode;
  if (o.engine == "postgres" && mode.empty()) mode = "physical";
  if (!mode.empty() && o.engine != "postgres")
    return core::invalid_argument("--mode applies to the postgres engine only");
  if (o.engine == "postgres" && mode != "physical" && mode != "logical")
    return core::invalid_argument("postgres mode \"" + mode + "\" is not physical or logical");

  const std::string& n = o.name;
  std::string i1(o.indent, ' '), i2(2 * o.indent, ' '), i3(3 * o.indent, ' '),
      i4(4 * o.indent, ' ');
  bool continuous = o.engine == "postgres" && mode == "physical";
  std::string engine, check, check_comment;
  if (o.engine == "files") {
    engine = "{ type: files, paths: [/srv/" + n + "] }";
    check = "'exec: test -n \"$(ls -A ./srv/" + n + ")\"'";
  } else if (o.engine == "exec") {
    engine = "\n" + i3 + "type: exec\n" + i3 +
             "# the command whose standard output is the backup (list: no shell)\n" + i3 +
             "command: \"echo 'service " + n +
             ": set engine.command in cairn.yaml to the dump command' >&2; exit 1\"\n" + i3 +
             "filename: " + n + ".dump";
    check = "'exec: test -s ./" + n + ".dump'";
  } else if (o.engine == "postgres" && continuous) {
    engine =
        "{ type: postgres, mode: physical, dsn: \"host=/run/postgresql user=postgres\", "
        "wal_archiving: true }";
    check = "'exec: test -s ./PG_VERSION'";
    check_comment =
        "# - \"SELECT count(*) > 0 FROM orders\"   (SQL checks need a scratch server: "
        "docs/drills.md)";
  } else if (o.engine == "postgres") {
    engine =
        "{ type: postgres, mode: logical, dsn: \"host=/run/postgresql user=postgres dbname=" + n +
        "\" }";
    check = "'exec: pg_restore --list ./" + n + ".dump > /dev/null'";
  } else if (o.engine == "mariadb") {
    engine = "{ type: mariadb, mode: logical, socket: /run/mysqld/mysqld.sock, user: root }";
    check_comment = "# - 'exec: ...'   (docs/drills.md)";
  } else if (o.engine == "redis") {
    engine = "{ type: redis, host: 127.0.0.1, port: 6379 }";
    check_comment = "# - 'exec: ...'   (docs/drills.md)";
  } else {  // sqlite
    engine = "{ type: sqlite, path: /var/lib/" + n + "/" + n + ".db }";
    check_comment = "# - 'exec: ...'   (docs/drills.md)";
  }
  std::string owner = o.owner.empty() ? "team-" + n : o.owner;
  std::ostringstream y;
  y << i1 << n << ":\n";
  y << i2 << "# scaffolded by `cairn service new` with the defaults of tier " << o.tier
    << " (docs/cli.md)\n";
  y << i2 << "owner: " << owner << "\n";
  y << i2 << "tier: " << o.tier << "\n";
  if (!o.repository_location.empty()) {
    y << i2 << "repository:\n" << i3 << "location: " << o.repository_location << "\n";
    if (!o.password_file.empty()) y << i3 << "password_file: " << o.password_file << "\n";
  }
  y << i2 << "objectives: { rpo: " << t->rpo << ", rto: " << t->rto << " }\n";
  y << i2 << "engine:" << (engine[0] == '\n' ? "" : " ") << engine << "\n";
  if (continuous)
    y << i2 << "schedule: \"" << t->continuous_schedule
      << "\"   # base backups; the WAL archive keeps the RPO\n";
  else
    y << i2 << "schedule: \"" << t->schedule << "\"\n";
  y << i2 << "retention: " << t->retention << "\n";
  y << i2 << "drill:\n" << i3 << "schedule: \"" << t->drill << "\"\n";
  if (!check.empty()) {
    y << i3 << "checks:\n" << i4 << "- " << check << "\n";
    if (!check_comment.empty()) y << i4 << check_comment << "\n";
  } else {
    y << i3 << "# checks:\n" << i3 << check_comment << "\n";
  }
  return y.str();
}

core::Result<PolicyOutline> outline(const std::string& text, const std::string& name) {
  PolicyOutline out;
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return core::invalid_argument(name + ": not valid YAML: " + e.msg);
  }
  if (root.IsNull()) return out;
  if (!root.IsMap())
    return core::invalid_argument(name + ": expected a mapping (key: value lines)");
  if (root["repository"]) out.has_repository = true;
  if (root["defaults"] && root["defaults"].IsMap() && root["defaults"]["repository"])
    out.has_repository = true;
  if (auto services = root["services"]; services && services.IsMap()) {
    for (const auto& kv : services) out.services.push_back(kv.first.as<std::string>());
  }
  // Indentation of the first service name under a block-style services:.
  std::istringstream in(text);
  bool inside = false;
  for (std::string line; std::getline(in, line);) {
    if (is_top_level_content(line)) {
      inside = line.rfind("services:", 0) == 0;
      continue;
    }
    if (inside && !is_blank_or_comment(line)) {
      out.indent = static_cast<int>(line.find_first_not_of(' '));
      if (out.indent <= 0) out.indent = 2;
      break;
    }
  }
  return out;
}

core::Result<std::string> insert_service(const std::string& text, const std::string& entry) {
  std::vector<std::string> lines;
  {
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) lines.push_back(line);
  }
  std::string base = text;
  if (!base.empty() && base.back() != '\n') base += '\n';
  size_t start = lines.size();
  for (size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].rfind("services:", 0) != 0) continue;
    std::string rest = lines[i].substr(9);
    auto p = rest.find_first_not_of(" \t\r");
    if (p != std::string::npos && rest[p] != '#')
      return core::invalid_argument(
          "services: is written in flow style ({...}) in this file; add the entry by hand (cairn "
          "service new --print)");
    start = i;
    break;
  }
  if (start == lines.size()) return base + "services:\n" + entry;
  // The block ends at the next top-level key; comment lines at column 0 just
  // before that key introduce it, so the entry goes above them.
  size_t end = lines.size();
  for (size_t i = start + 1; i < lines.size(); ++i)
    if (is_top_level_content(lines[i])) {
      end = i;
      break;
    }
  size_t last = end;  // one past the last line that belongs to services
  auto trailing = [](const std::string& l) {
    return l.find_first_not_of(" \t\r") == std::string::npos || l[0] == '#';
  };
  while (last > start + 1 && trailing(lines[last - 1])) --last;
  std::string out;
  for (size_t i = 0; i < last; ++i) out += lines[i] + "\n";
  out += (last > start + 1 ? "\n" : "") + entry;
  if (last < lines.size()) {
    if (!lines[last].empty()) out += "\n";
    for (size_t i = last; i < lines.size(); ++i) out += lines[i] + "\n";
  }
  // The original's final line had no newline: keep it that way.
  if (!text.empty() && text.back() != '\n' && last < lines.size()) out.pop_back();
  return out;
}

}  // namespace cairn::policy
