// Runbook generation: policy + live state -> data model -> Markdown, HTML, JSON.
#include "runbook/runbook.h"

#include <date/date.h>
#include <date/tz.h>
#include <fmt/format.h>

#include <algorithm>
#include <map>

#include "core/bytes.h"
#include "policy/duration.h"
#include "repo/timefmt.h"

namespace cairn::runbook {

namespace {

using nlohmann::json;

// ---------------------------------------------------------------- shell text

// Inside "...": keep ${VAR} references live (the policy's DSNs reference the
// operator's environment on purpose), escape everything else the shell reads.
std::string dq(const std::string& s, bool keep_vars = false) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '"' || c == '\\' || c == '`' ||
        (c == '$' && !(keep_vars && i + 1 < s.size() && s[i + 1] == '{')))
      out += '\\';
    out += c;
  }
  return out;
}

std::string sq(const std::string& s) { return engines::postgres::shell_quote(s); }

// ---------------------------------------------------------------- times

std::string in_zone(std::chrono::sys_seconds t, const date::time_zone* zone) {
  if (!zone) return date::format("%Y-%m-%d %H:%M UTC", t);
  return date::format("%Y-%m-%d %H:%M %Z", date::make_zoned(zone, t));
}

std::vector<std::string> next_runs(const std::optional<policy::CronSchedule>& s,
                                   std::chrono::sys_seconds now, const date::time_zone* zone,
                                   int n) {
  std::vector<std::string> out;
  if (!s) return out;
  auto t = now;
  for (int i = 0; i < n; ++i) {
    t = s->next_after(t, zone);
    if (t == std::chrono::sys_seconds::max()) break;
    out.push_back(in_zone(t, zone));
  }
  return out;
}

std::optional<std::chrono::sys_seconds> parse_sys(const std::string& text) {
  auto t = repo::parse_time(text);
  if (!t) return std::nullopt;
  return std::chrono::sys_seconds(std::chrono::seconds(t->unix_ns / 1000000000));
}

std::string age(std::chrono::sys_seconds now, std::chrono::sys_seconds then) {
  return policy::format_duration(std::max(std::chrono::seconds(0), now - then));
}

// ---------------------------------------------------------------- policy text

std::string credential_text(const policy::RepositoryRef& r) {
  if (!r.key_file.empty()) return "key file " + r.key_file;
  if (!r.password_file.empty()) return "password file " + r.password_file;
  if (!r.password_command.empty()) return "password command `" + r.password_command + "`";
  return "none in the policy: the key comes from the environment of whoever runs the commands "
         "(CAIRN_KEY_FILE, CAIRN_PASSWORD_FILE, CAIRN_PASSWORD_COMMAND or CAIRN_PASSWORD)";
}

std::string retention_text(const policy::Service& s) {
  json r = policy::to_json(s)["retention"];
  std::vector<std::string> parts;
  for (const char* k : {"last", "hourly", "daily", "weekly", "monthly", "yearly"})
    if (r.contains(k)) parts.push_back(fmt::format("{} {}", k, r[k].get<int>()));
  if (r.contains("within")) parts.push_back("everything within " + r["within"].get<std::string>());
  if (r.contains("tags")) {
    std::string tags;
    for (const auto& t : r["tags"]) tags += (tags.empty() ? "" : ", ") + t.get<std::string>();
    parts.push_back("tagged " + tags);
  }
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : ", ") + p;
  return out.empty() ? "none" : out;
}

std::string join(const std::vector<std::string>& v, const std::string& sep) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : sep) + s;
  return out;
}

std::string command_text(const policy::EngineSpec& e) {
  if (e.command.size() == 1) return e.command[0];
  std::string out;
  for (const auto& a : e.command) out += (out.empty() ? "" : " ") + sh_word(a);
  return out;
}

// "dbname" of a key=value DSN or the path of a postgresql:// URI.
std::string dsn_dbname(const std::string& dsn) {
  if (dsn.rfind("postgres", 0) == 0 && dsn.find("://") != std::string::npos) {
    auto slash = dsn.find('/', dsn.find("://") + 3);
    if (slash == std::string::npos) return "";
    std::string db = dsn.substr(slash + 1);
    return db.substr(0, db.find('?'));
  }
  auto p = dsn.find("dbname=");
  while (p != std::string::npos && p > 0 && dsn[p - 1] != ' ') p = dsn.find("dbname=", p + 1);
  if (p == std::string::npos) return "";
  std::string v = dsn.substr(p + 7);
  return v.substr(0, v.find(' '));
}

// The DSN with its database replaced by `db` (key=value form).
std::string dsn_with_db(const std::string& dsn, const std::string& db) {
  if (dsn.rfind("postgres", 0) == 0 && dsn.find("://") != std::string::npos) {
    auto host_start = dsn.find("://") + 3;
    auto slash = dsn.find('/', host_start);
    auto q = dsn.find('?', host_start);
    std::string head = dsn.substr(0, std::min(slash, q));
    std::string query = q == std::string::npos ? "" : dsn.substr(q);
    return head + "/" + db + query;
  }
  std::string out;
  size_t i = 0;
  bool replaced = false;
  while (i < dsn.size()) {
    size_t end = dsn.find(' ', i);
    std::string word = dsn.substr(i, end == std::string::npos ? std::string::npos : end - i);
    if (word.rfind("dbname=", 0) == 0) {
      word = "dbname=" + db;
      replaced = true;
    }
    if (!word.empty()) out += (out.empty() ? "" : " ") + word;
    if (end == std::string::npos) break;
    i = end + 1;
  }
  if (!replaced) out += (out.empty() ? "" : " ") + std::string("dbname=") + db;
  return out;
}

std::string basename_of(const std::string& p) {
  auto s = p.rfind('/');
  return s == std::string::npos ? p : p.substr(s + 1);
}

// How to feed an exec stream to the tool that reads it, for the dump tools we
// recognize; "" for others (the runbook then says so in words).
std::string load_command(const policy::EngineSpec& e, const std::string& file) {
  std::string first;
  std::string all = command_text(e);
  if (e.command.size() == 1) {
    first = all.substr(0, all.find(' '));
  } else if (!e.command.empty()) {
    first = e.command[0];
  }
  first = basename_of(first);
  auto has = [&](const std::string& flag) { return all.find(flag) != std::string::npos; };
  std::string f = "\"$target/" + dq(file) + "\"";
  if (first == "mongodump") {
    std::string cmd = "mongorestore --archive=" + f;
    if (has("--gzip")) cmd += " --gzip";
    if (has("--oplog")) cmd += " --oplogReplay";
    return cmd +
           "   # add --uri or --config for the target server; --drop replaces existing collections";
  }
  if (first == "pg_dump") {
    if (has("-Fc") || has("--format=c") || has("--format=custom"))
      return "pg_restore --exit-on-error --create --dbname=postgres " + f;
    return "psql -X -v ON_ERROR_STOP=1 --dbname=postgres -f " + f;
  }
  if (first == "pg_dumpall") return "psql -X --dbname=postgres -f " + f;
  if (first == "mysqldump" || first == "mariadb-dump") return "mariadb < " + f;
  if (first == "etcdctl")
    return "etcdctl snapshot restore " + f +
           " --data-dir \"$target/etcd-data\"   # then point etcd at it";
  if (first == "tar" || (first == "sh" && has("tar "))) {
    std::string z = has(" -z") || has("czf") || has("--gzip") ? "z" : "";
    return "mkdir -p \"$target/files\" && tar -x" + z + "f " + f + " -C \"$target/files\"";
  }
  if (first == "redis-cli")
    return "# stop redis-server, copy " + f +
           " to its dir as dump.rdb (owned by redis), start it again";
  if (first == "sqlite3")
    return "# the file is an SQLite database: copy it into place while the service is stopped";
  return "";
}

// ---------------------------------------------------------------- commands

struct Ctx {
  std::string cairn;  // "cairn --config /abs/cairn.yaml"
  std::string svc;    // shell word of the service name
  std::string target_line;
};

void add(Runbook& b, std::string kind, std::string title, std::string note, std::string script) {
  b.commands.push_back({std::move(kind), std::move(title), std::move(note), std::move(script)});
}

std::string verify_exec_checks(const Runbook& b, const Ctx& c) {
  std::string out;
  for (const auto& check : b.drill_checks) {
    if (check.rfind("exec:", 0) != 0) continue;
    std::string cmd = check.substr(5);
    cmd.erase(0, cmd.find_first_not_of(' '));
    out += "(cd \"$target\" && CAIRN_DRILL_DIR=\"$target\" CAIRN_SERVICE=" + c.svc + " sh -c " +
           sq(cmd) + ") && echo " + sq("check passed: " + cmd) + " || echo " +
           sq("CHECK FAILED: " + cmd) + "\n";
  }
  return out;
}

void files_commands(Runbook& b, const policy::Service& s, const Ctx& c, const std::string& newest) {
  add(b, "restore-latest", "Restore the newest snapshot",
      "Restores every file into the target folder, with its absolute path below it (`/srv/www` → "
      "`$target/srv/www`), and re-reads each file against the snapshot (`--verify`). Nothing live "
      "is touched.",
      c.target_line + c.cairn + " restore latest --service " + c.svc +
          " --target \"$target\" --verify\n");
  add(b, "restore-snapshot", "Restore an older restore point",
      "Set `" + std::string(kSnapshotEnv) +
          "` to an id from the restore points above (the newest snapshot at or "
          "before the moment you need).",
      c.target_line + "snapshot=\"${" + kSnapshotEnv + ":-" + dq(newest) + "}\"\n" + c.cairn +
          " restore \"$snapshot\" --service " + c.svc + " --target \"$target\" --verify\n");
  std::string put;
  for (const auto& p : s.engine.paths)
    put += "cp -a \"$target" + dq(p) + "/.\" " + sh_word(p) + "/\n";
  add(b, "put-back", "Put the files back",
      "Only after checking the restored copy, with the service stopped: copy it over the live "
      "folders "
      "(files deleted since the snapshot stay; remove the live folder first for an exact copy).",
      c.target_line + put);
}

void exec_commands(Runbook& b, const policy::Service& s, const Ctx& c, const std::string& newest) {
  const std::string& file = s.engine.filename;
  std::string out = " > \"$target/" + dq(file) + "\"\n";
  add(b, "restore-latest", "Fetch the newest dump",
      "The backup is the output of `" + command_text(s.engine) + "`, stored as `/" + file +
          "`. This writes it to `$target/" + file + "`.",
      c.target_line + "mkdir -p \"$target\"\n" + c.cairn + " dump latest:/" + sh_word(file) +
          " --service " + c.svc + out);
  add(b, "restore-snapshot", "Fetch an older dump",
      "Set `" + std::string(kSnapshotEnv) + "` to an id from the restore points above.",
      c.target_line + "snapshot=\"${" + kSnapshotEnv + ":-" + dq(newest) +
          "}\"\nmkdir -p \"$target\"\n" + c.cairn + " dump \"$snapshot:/" + dq(file) +
          "\" --service " + c.svc + out);
  std::string load = load_command(s.engine, file);
  if (!load.empty()) {
    add(b, "restore-load", "Load the dump into the service",
        "Feeds the dump to the tool that reads what `" + command_text(s.engine) +
            "` writes. Check the target first.",
        c.target_line + load + "\n");
  } else {
    b.notes.push_back("Load `$target/" + file + "` with the restore counterpart of `" +
                      command_text(s.engine) +
                      "` (cairn stores the command's output byte for byte).");
  }
}

void pg_logical_commands(Runbook& b, const policy::Service& s, const Ctx& c,
                         const std::string& newest) {
  std::vector<std::string> dbs = s.engine.databases;
  if (dbs.empty() && !dsn_dbname(s.engine.dsn).empty()) dbs.push_back(dsn_dbname(s.engine.dsn));
  std::string dsn_line = "dsn=\"${" + std::string(kDsnEnv) + ":-" +
                         dq(dsn_with_db(s.engine.dsn, "postgres"), true) + "}\"\n";
  auto restore = [&](const std::string& snapshot_flag) {
    std::string out = dsn_line + c.cairn + " pg restore --service " + c.svc + snapshot_flag +
                      " --dsn \"$dsn\" --globals\n";
    if (dbs.empty()) {
      out +=
          c.cairn + " pg restore --service " + c.svc + snapshot_flag + " --dsn \"$dsn\" --create\n";
    }
    for (const auto& db : dbs)
      out += c.cairn + " pg restore --service " + c.svc + snapshot_flag +
             " --dsn \"$dsn\" --database " + sh_word(db) + " --create\n";
    return out;
  };
  std::string note =
      "Restores roles (`--globals`; existing roles are reported and kept) and recreates each "
      "database "
      "(`--create`) on the server `" +
      std::string(kDsnEnv) +
      "` names (key=value form, a maintenance database such as `postgres`). `--create` fails when "
      "the database exists: restore to another server, or rename the damaged database first.";
  add(b, "restore-latest", "Restore the newest dump", note, restore(""));
  add(b, "restore-snapshot", "Restore an older dump",
      "Set `" + std::string(kSnapshotEnv) + "` to an id from the restore points above.",
      "snapshot=\"${" + std::string(kSnapshotEnv) + ":-" + dq(newest) + "}\"\n" +
          restore(" --snapshot \"$snapshot\""));
}

std::string pg_bindir(const policy::Service& s, const std::vector<repo::SnapshotRef>& snaps) {
  if (!s.engine.bindir.empty()) return s.engine.bindir + "/";
  for (auto it = snaps.rbegin(); it != snaps.rend(); ++it) {
    int v = it->snapshot.engine.value("server_version_num", 0);
    if (v > 0) return fmt::format("/usr/lib/postgresql/{}/bin/", v / 10000);
  }
  return "";
}

void pg_physical_commands(Runbook& b, const policy::Service& s, const Ctx& c,
                          const RunbookInput& in) {
  add(b, "restore-latest", "Restore to the newest point",
      "Restores the newest base backup into the new, empty folder, checks it with "
      "`pg_verifybackup` and writes "
      "the recovery settings (WAL from the archive up to its end). The server is not started yet.",
      c.target_line + c.cairn + " pg restore --service " + c.svc + " --target-dir \"$target\"\n");
  if (s.engine.wal_archiving) {
    std::string def = b.recovery_window_to.empty() ? "" : b.recovery_window_to;
    std::string time_expr = def.empty()
                                ? "${" + std::string(kTimeEnv) + ":?set " + kTimeEnv +
                                      " to the time to recover to, e.g. 2026-11-25 10:31:00+00}"
                                : "${" + std::string(kTimeEnv) + ":-" + dq(def) + "}";
    add(b, "restore-pitr", "Restore to a point in time",
        "Set `" + std::string(kTimeEnv) +
            "` to the moment to recover to (inside the recovery window above; "
            "`2026-11-25 10:31:00+00` or RFC 3339). cairn picks the newest base backup that ended "
            "before it; recovery "
            "stops after the last transaction committed at or before it and promotes.",
        c.target_line + c.cairn + " pg restore --service " + c.svc +
            " --target-dir \"$target\" --to-time \"" + time_expr + "\"\n");
  }
  std::string bindir = pg_bindir(s, in.snapshots);
  std::string port = "port=\"${" + std::string(kPortEnv) + ":-5433}\"\n";
  std::string as =
      "as=\"\"; [ \"$(id -u)\" = 0 ] && as=\"runuser -u $(stat -c %U \"$target\") --\"\n";
  add(b, "start-server", "Start the restored server",
      "Runs the restored copy on its own port with its socket in the target folder and archiving "
      "off, so it "
      "cannot write into this service's WAL archive. PostgreSQL replays the archived WAL through "
      "`cairn wal-get`.",
      c.target_line + port + as +
          "cat >> \"$target/postgresql.auto.conf\" <<EOF\n"
          "port = $port\n"
          "unix_socket_directories = '$target'\n"
          "listen_addresses = ''\n"
          "archive_mode = off\n"
          "EOF\n"
          "$as " +
          bindir + "pg_ctl -D \"$target\" -l \"$target/cairn-restore.log\" -w -t 3600 start\n");
  std::string db = dsn_dbname(s.engine.dsn);
  if (db.empty()) db = "postgres";
  std::string v =
      c.target_line + port + as + "for i in $(seq 1 3600); do r=$($as " + bindir +
      "psql -h \"$target\" -p \"$port\" -d postgres -XAtc "
      "'select pg_is_in_recovery()' 2>/dev/null) && [ \"$r\" = f ] && break; sleep 1; done\n"
      "[ \"$r\" = f ] && echo 'recovery finished, server promoted' || echo \"recovery not "
      "finished: see "
      "$target/cairn-restore.log\"\n";
  for (const auto& check : b.drill_checks) {
    if (check.rfind("exec:", 0) == 0) continue;
    v += "[ \"$($as " + bindir + "psql -h \"$target\" -p \"$port\" -d " + sh_word(db) + " -XAtc " +
         sq(check) + ")\" = t ] && echo " + sq("check passed: " + check) + " || echo " +
         sq("CHECK FAILED: " + check) + "\n";
  }
  add(b, "verify", "Verify",
      "Waits for the end of recovery, then runs the drill's SQL checks against the restored "
      "server.",
      v);
  b.notes.push_back(
      "After verifying: stop the restored server (`pg_ctl -D \"$target\" stop`), or make it the "
      "new "
      "primary — then set `port`, `archive_mode = on` and `archive_command` for this service again "
      "and take a new base backup (`cairn backup --service " +
      s.name + "`).");
}

void generic_commands(Runbook& b, const policy::Service& s, const Ctx& c,
                      const std::string& newest) {
  add(b, "restore-latest", "Restore the newest snapshot",
      "Restores the snapshot's files into the target folder (`--verify` re-reads them against the "
      "snapshot). "
      "Engine `" +
          s.engine.type + "`: load them with the engine's own procedure (docs/" + s.engine.type +
          ".md).",
      c.target_line + c.cairn + " restore latest --service " + c.svc +
          " --target \"$target\" --verify\n");
  add(b, "restore-snapshot", "Restore an older restore point",
      "Set `" + std::string(kSnapshotEnv) + "` to an id from the restore points above.",
      c.target_line + "snapshot=\"${" + kSnapshotEnv + ":-" + dq(newest) + "}\"\n" + c.cairn +
          " restore \"$snapshot\" --service " + c.svc + " --target \"$target\" --verify\n");
}

// ---------------------------------------------------------------- newer engines

std::string code_span(const std::string& s);  // documents, below

// The newest snapshot's engine metadata value, or `def`.
std::string newest_meta(const RunbookInput& in, const std::string& key, const std::string& def) {
  for (auto it = in.snapshots.rbegin(); it != in.snapshots.rend(); ++it) {
    const auto& e = it->snapshot.engine;
    if (e.contains(key) && e[key].is_string()) return e[key].get<std::string>();
    if (e.contains(key) && e[key].is_number()) return e[key].dump();
  }
  return def;
}

std::string snapshot_line(const std::string& newest) {
  return "snapshot=\"${" + std::string(kSnapshotEnv) + ":-" + dq(newest) + "}\"\n";
}

// Drill checks of the SQL kind, run by `runner` (a shell command that prints
// the first column of the first row); pass when it is neither empty nor 0.
std::string sql_checks(const Runbook& b, const std::string& runner) {
  std::string out;
  for (const auto& check : b.drill_checks) {
    if (check.rfind("exec:", 0) == 0) continue;
    out += "v=$(" + runner + " " + sq(check) +
           " | head -n 1); [ -n \"$v\" ] && [ \"$v\" != 0 ] && echo " +
           sq("check passed: " + check) + " || echo " + sq("CHECK FAILED: " + check) + "\n";
  }
  return out;
}

// Drill `exec:` checks with extra variables, as the engine's drill sets them.
std::string exec_checks_with(const Runbook& b, const Ctx& c, const std::string& vars) {
  std::string out;
  for (const auto& check : b.drill_checks) {
    if (check.rfind("exec:", 0) != 0) continue;
    std::string cmd = check.substr(5);
    cmd.erase(0, cmd.find_first_not_of(' '));
    out += "(cd \"$target\" && CAIRN_DRILL_DIR=\"$target\" CAIRN_SERVICE=" + c.svc + " " + vars +
           " sh -c " + sq(cmd) + ") && echo " + sq("check passed: " + cmd) + " || echo " +
           sq("CHECK FAILED: " + cmd) + "\n";
  }
  return out;
}

void sqlite_commands(Runbook& b, const policy::Service& s, const Ctx& c,
                     const std::string& newest) {
  const std::string live = s.engine.sqlite.path;
  std::string file = basename_of(live.empty() ? s.name + ".db" : live);
  std::string db_line = "db=\"$target/" + dq(file) + "\"\n";
  add(b, "restore-latest", "Restore the newest backup",
      "Writes the database to `$target/" + file +
          "` (a new file beside nothing live), accepted only when `PRAGMA integrity_check` says "
          "`ok`. The application's own file `" +
          live + "` is not touched.",
      c.target_line + db_line + c.cairn + " sqlite restore --service " + c.svc +
          " --target \"$db\"\n");
  add(b, "restore-snapshot", "Restore an older backup",
      "Set `" + std::string(kSnapshotEnv) +
          "` to an id from the restore points above; the restored file replaces an earlier "
          "restore in the target folder.",
      c.target_line + db_line + snapshot_line(newest) + c.cairn + " sqlite restore --service " +
          c.svc + " --snapshot \"$snapshot\" --target \"$db\" --force\n");
  std::string v = c.target_line + db_line +
                  "[ \"$(sqlite3 \"$db\" 'PRAGMA integrity_check')\" = ok ] && echo "
                  "'integrity_check: ok' || echo 'INTEGRITY CHECK FAILED'\n"
                  "sqlite3 \"$db\" \"SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY "
                  "name\" | while read -r t; do\n"
                  "  echo \"$t: $(sqlite3 \"$db\" \"SELECT count(*) FROM \\\"$t\\\"\") rows\"\n"
                  "done\n";
  v += sql_checks(b, "sqlite3 \"$db\"");
  v += exec_checks_with(b, c, "CAIRN_DRILL_DB=\"$db\"");
  add(b, "verify", "Verify",
      "Checks the restored file (`PRAGMA integrity_check`), counts the rows of every table and "
      "runs the drill's checks against it (SQL checks pass when the first column is neither empty "
      "nor 0).",
      v);
  add(b, "put-back", "Put the database back",
      "Only after checking the restored copy, with the application **stopped** (a process that "
      "still has the old file open keeps using it): `--force` replaces `" +
          live +
          "` atomically, keeping its owner and mode, and removes its `-wal`, `-shm` and "
          "`-journal`. "
          "`" +
          kSnapshotEnv + "` picks the snapshot you verified.",
      snapshot_line("latest") + c.cairn + " sqlite restore --service " + c.svc +
          " --snapshot \"$snapshot\" --target " + sh_word(live) + " --force\n");
}

void redis_commands(Runbook& b, const Ctx& c, const std::string& newest, const RunbookInput& in) {
  std::string port = "port=\"${" + std::string(kPortEnv) + ":-6380}\"\n";
  add(b, "restore-latest", "Restore the newest backup",
      "Writes the snapshot's RDB to `$target/dump.rdb`, checked with `redis-check-rdb` before it "
      "gets its name. Nothing live is touched.",
      c.target_line + c.cairn + " redis restore --service " + c.svc +
          " --target-dir \"$target\"\n");
  add(b, "restore-snapshot", "Restore an older backup",
      "Set `" + std::string(kSnapshotEnv) + "` to an id from the restore points above.",
      c.target_line + snapshot_line(newest) + c.cairn + " redis restore --service " + c.svc +
          " --snapshot \"$snapshot\" --target-dir \"$target\" --force\n");
  add(b, "start-server", "Load it into a scratch server",
      "Starts `redis-server` on the restored folder, on 127.0.0.1 port `" + std::string(kPortEnv) +
          "` (default 6380), with saving and AOF off so it never rewrites the file; as root it "
          "runs as the `redis` user. Waits until the dataset is loaded.",
      c.target_line + port +
          "as=\"\"\n"
          "if [ \"$(id -u)\" = 0 ] && id redis >/dev/null 2>&1; then\n"
          "  chown -R redis: \"$target\"\n"
          "  runuser -u redis -- test -r \"$target/dump.rdb\" && as=\"runuser -u redis --\"\n"
          "fi\n"
          "$as redis-server --port \"$port\" --bind 127.0.0.1 --dir \"$target\" --dbfilename "
          "dump.rdb --appendonly no --save '' --daemonize yes --pidfile "
          "\"$target/redis-server.pid\" --logfile \"$target/redis-server.log\"\n"
          "for i in $(seq 1 600); do [ \"$(redis-cli -p \"$port\" ping 2>/dev/null)\" = PONG ] && "
          "break; sleep 1; done\n"
          "[ \"$(redis-cli -p \"$port\" ping)\" = PONG ]\n");
  std::string keys = newest_meta(in, "keys", "");
  std::string v =
      c.target_line + port +
      "r=$(redis-check-rdb \"$target/dump.rdb\" 2>&1) && echo \"$r\" | grep -E 'looks OK|keys "
      "read|expires' || { echo \"$r\" | tail -n 5; echo 'REDIS-CHECK-RDB FAILED'; }\n" +
      "echo \"db 0 holds $(redis-cli -p \"$port\" dbsize) keys" +
      (keys.empty() ? "" : " (the newest snapshot recorded " + keys + " in all databases)") +
      "\"\nredis-cli -p \"$port\" info keyspace | grep '^db'\n";
  for (const auto& check : b.drill_checks)
    if (check.rfind("exec:", 0) != 0)
      b.notes.push_back("The drill check " + code_span(check) +
                        " is not a command: Redis drills run `exec:` checks only.");
  v += exec_checks_with(b, c, "REDIS_HOST=127.0.0.1 REDIS_PORT=\"$port\"");
  add(b, "verify", "Verify",
      "Checks the file with `redis-check-rdb`, counts the keys the scratch server loaded, and runs "
      "the drill's `exec:` checks (with `REDIS_HOST` / `REDIS_PORT` of the scratch server).",
      v);
  add(b, "stop-server", "Stop the scratch server", "Stops it without saving.",
      port + "redis-cli -p \"$port\" shutdown nosave || true\n");
  add(b, "put-back", "Put the data back",
      "Only after checking the restored copy. Redis must **not** be running on that folder "
      "(`systemctl stop redis-server`), and with `appendonly yes` it loads `appendonlydir/` "
      "instead: move that away or start with `appendonly no`. `" +
          std::string(kRedisDirEnv) +
          "` is the server's `dir` (default `/var/lib/redis`); then "
          "start Redis again and check `redis-cli DBSIZE`.",
      "dir=\"${" + std::string(kRedisDirEnv) + ":-/var/lib/redis}\"\n" + snapshot_line("latest") +
          c.cairn + " redis restore --service " + c.svc +
          " --snapshot \"$snapshot\" --target-dir \"$dir\" --force\n");
}

void mariadb_commands(Runbook& b, const policy::Service& s, const Ctx& c,
                      const std::string& newest) {
  const auto& e = s.engine;
  bool physical = e.mode == "physical";
  bool pitr = e.binlog_archiving;
  std::string sock = "socket=\"${" + std::string(kSocketEnv) + ":-$target/mysqld.sock}\"\n";
  std::string as_mysql = "u=\"\"; [ \"$(id -u)\" = 0 ] && u=\"--user=mysql\"\n";
  std::string own = "[ \"$(id -u)\" = 0 ] && chown -R mysql:mysql \"$target\"\n";
  std::string run =
      "mariadbd $u --datadir=\"$target/data\" --socket=\"$socket\" --skip-networking "
      "--pid-file=\"$target/mysqld.pid\" --log-error=\"$target/mysqld.err\" >/dev/null 2>&1 &\n"
      "for i in $(seq 1 600); do mariadb-admin --socket=\"$socket\" ping >/dev/null 2>&1 && "
      "break; sleep 1; done\n"
      "mariadb-admin --socket=\"$socket\" ping\n";
  std::string base_only = pitr ? "" : " --base-only";
  std::string sync_note =
      pitr ? " Run `" + c.cairn + " mariadb binlog-sync --service " + s.name +
                 " --flush` first (on a host that reaches the server) so the newest binlog is "
                 "archived too."
           : "";
  std::string time_expr = "${" + std::string(kTimeEnv) + ":?set " + kTimeEnv +
                          " to the time to recover to, e.g. 2026-11-25T10:31:00Z}";
  std::string pos_expr = "${" + std::string(kPositionEnv) + ":?set " + kPositionEnv +
                         " to FILE:POS, e.g. binlog.000042:1234}";
  if (!physical) {
    add(b, "start-server", "Start a scratch server to restore into",
        "A new, empty MariaDB in `$target/data`, reachable only over the socket `" +
            std::string(kSocketEnv) +
            "` (default `$target/mysqld.sock`); as root it runs as `mysql`. The dump drops and "
            "recreates its tables, so never point the restore at the live server before you have "
            "checked the copy.",
        c.target_line + sock + as_mysql + "mkdir -p \"$target/data\"\n" + own +
            "mariadb-install-db $u --datadir=\"$target/data\" --skip-test-db "
            ">\"$target/install.log\" "
            "2>&1\n" +
            run);
    std::string conn = " --socket \"$socket\"";
    std::string dump = s.engine.parallel > 1
                           ? "`dump/tables-*.sql` at once, then `dump/objects.sql`"
                           : "`dump.sql`";
    add(b, "restore-latest", pitr ? "Restore to the newest point" : "Restore the newest backup",
        pitr
            ? "Loads the newest logical base (" + dump +
                  ") and replays every archived binlog after "
                  "it (add `--with-users` to run `users.sql` too: accounts and grants)." +
                  sync_note
            : "Loads the newest logical backup (" + dump +
                  "; add `--with-users` to run `users.sql` "
                  "too). "
                  "No binlog is archived for this service (`binlog_archiving` is off): the base is "
                  "the recovery point.",
        c.target_line + sock + c.cairn + " mariadb restore --service " + c.svc + conn + base_only +
            "\n");
    if (pitr) {
      add(b, "restore-pitr", "Restore to a point in time",
          "Into a **fresh** scratch server (start one as above with another target). Set `" +
              std::string(kTimeEnv) +
              "` (RFC 3339): cairn picks the newest base before it and replays the archived "
              "binlogs up to and including that whole second." +
              sync_note,
          c.target_line + sock + c.cairn + " mariadb restore --service " + c.svc + conn +
              " --to-time \"" + time_expr + "\"\n");
      add(b, "restore-position", "Restore up to a binlog position",
          "Set `" + std::string(kPositionEnv) +
              "` to `FILE:POS` (`SHOW MASTER STATUS` after the last transaction to keep, or an "
              "`end_log_pos` of `mariadb-binlog`): every event before it is applied.",
          c.target_line + sock + c.cairn + " mariadb restore --service " + c.svc + conn +
              " --to-position \"" + pos_expr + "\"\n");
    }
    add(b, "restore-snapshot", "Restore an older backup as it is",
        "Set `" + std::string(kSnapshotEnv) +
            "` to an id from the restore points above; loads that base only.",
        c.target_line + sock + snapshot_line(newest) + c.cairn + " mariadb restore --service " +
            c.svc + conn + " --snapshot \"$snapshot\" --base-only\n");
  } else {
    add(b, "restore-latest", pitr ? "Restore to the newest point" : "Restore the newest backup",
        "Extracts the newest `mariadb-backup` stream into the new folder `$target/data` and "
        "prepares it" +
            std::string(pitr ? "; a temporary server then replays every archived binlog after it." +
                                   sync_note
                             : " (no binlog is archived for this service).") +
            " The server is not started yet.",
        c.target_line + c.cairn + " mariadb restore --service " + c.svc +
            " --target-dir \"$target/data\"" + base_only + "\n");
    if (pitr) {
      add(b, "restore-pitr", "Restore to a point in time",
          "Into a new folder (another target). Set `" + std::string(kTimeEnv) +
              "` (RFC 3339): the newest base before it, binlogs replayed up to and including that "
              "whole second." +
              sync_note,
          c.target_line + c.cairn + " mariadb restore --service " + c.svc +
              " --target-dir \"$target/data\" --to-time \"" + time_expr + "\"\n");
      add(b, "restore-position", "Restore up to a binlog position",
          "Set `" + std::string(kPositionEnv) +
              "` to `FILE:POS`: every event before it is applied.",
          c.target_line + c.cairn + " mariadb restore --service " + c.svc +
              " --target-dir \"$target/data\" --to-position \"" + pos_expr + "\"\n");
    }
    add(b, "restore-snapshot", "Restore an older backup as it is",
        "Set `" + std::string(kSnapshotEnv) + "` to an id from the restore points above.",
        c.target_line + snapshot_line(newest) + c.cairn + " mariadb restore --service " + c.svc +
            " --snapshot \"$snapshot\" --target-dir \"$target/data\" --base-only\n");
    add(b, "start-server", "Start the restored server",
        "Runs the restored data directory on the socket `" + std::string(kSocketEnv) +
            "` (default `$target/mysqld.sock`) without networking; as root it runs as `mysql`.",
        c.target_line + sock + as_mysql + own + run);
  }
  std::string v = c.target_line + sock +
                  "mariadb-check --socket=\"$socket\" --all-databases --check "
                  "--silent && echo 'CHECK TABLE: every table OK' || echo 'CHECK TABLE FAILED'\n"
                  "mariadb --socket=\"$socket\" -NBe \"SELECT table_schema, count(*) FROM "
                  "information_schema.tables WHERE table_schema NOT IN ('mysql', 'sys', "
                  "'information_schema', 'performance_schema') GROUP BY table_schema\" | while "
                  "read -r db n; do echo \"$db: $n tables\"; done\n";
  v += sql_checks(b, "mariadb --socket=\"$socket\" -NBe");
  add(b, "verify", "Verify",
      "Runs `CHECK TABLE` on every table (`mariadb-check`), lists the restored databases and runs "
      "the drill's SQL checks (pass when the first column is neither empty nor 0).",
      v);
  add(b, "stop-server", "Stop the scratch server", "A clean shutdown.",
      c.target_line + sock + "mariadb-admin --socket=\"$socket\" shutdown\n");
  b.notes.push_back(
      physical
          ? "After verifying: `$target/data` is a ready data directory. To replace the live "
            "server's data: stop it, empty its datadir, copy `$target/data/.` into it (`cp -a`, "
            "or `mariadb-backup --copy-back --target-dir=$target/data`), `chown -R mysql:mysql`, "
            "start it (docs/engines/mariadb.md)."
          : "After verifying: to load the same point into the live server, stop the "
            "application, then run the restore command with the live server's `--socket` (or "
            "`--host --port --user --password-file`): the dump drops and recreates its tables "
            "(docs/engines/mariadb.md).");
}

void volume_commands(Runbook& b, const policy::Service& s, const Ctx& c, const std::string& newest,
                     const RunbookInput& in) {
  const auto& e = s.engine;
  std::string src = newest_meta(in, "source", e.source.rfind('/', 0) == 0 ? e.source : "");
  std::string driver = newest_meta(in, "driver", e.driver.empty() ? "auto" : e.driver);
  std::string where = src.empty() ? "$target/<mount point>" : "$target" + src;
  add(b, "restore-latest", "Restore the newest snapshot",
      "Restores the volume's files into the target folder under their recorded path (`" + where +
          "`) and re-reads each file against the snapshot (`--verify`). Nothing live is touched.",
      c.target_line + c.cairn + " restore latest --service " + c.svc +
          " --target \"$target\" --verify\n");
  add(b, "restore-snapshot", "Restore an older restore point",
      "Set `" + std::string(kSnapshotEnv) + "` to an id from the restore points above.",
      c.target_line + snapshot_line(newest) + c.cairn + " restore \"$snapshot\" --service " +
          c.svc + " --target \"$target\" --verify\n");
  if (!src.empty()) {
    std::string live = sh_word(src);
    add(b, "verify", "Verify",
        "`--verify` already compared every restored byte with the snapshot. This compares the "
        "restored files with the live volume (a full read of both): differences are what changed "
        "since the snapshot.",
        c.target_line + "diff -rq --no-dereference " + live + " \"$target" + dq(src) +
            "\" && echo 'identical to the live volume' || echo 'the differences above are "
            "changes since the snapshot'\n" +
            verify_exec_checks(b, c));
    std::string put;
    std::string note;
    if (driver == "btrfs") {
      note =
          "Only after checking the restored copy, with the application stopped: restores into a "
          "new subvolume beside the live one and swaps them (the old one stays as `" +
          src +
          ".old` until you delete it with `btrfs subvolume delete`). For a subvolume "
          "mounted with `subvol=`, change the mount option instead of `mv` "
          "(docs/engines/volume.md).";
      put = snapshot_line("latest") + "btrfs subvolume create " + sh_word(src + ".new") + "\n" +
            c.cairn + " restore \"$snapshot:" + dq(src) + "\" --service " + c.svc + " --target " +
            sh_word(src + ".new") + " --verify\n" + "mv " + live + " " + sh_word(src + ".old") +
            " && mv " + sh_word(src + ".new") + " " + live + "\n";
    } else {
      note =
          "Only after checking the restored copy, with the application stopped: restores straight "
          "into the mounted volume (existing files are replaced, files created since the snapshot "
          "stay; restore into a fresh volume for an exact copy). Driver `" +
          driver + "` (docs/engines/volume.md).";
      put = snapshot_line("latest") + c.cairn + " restore \"$snapshot:" + dq(src) +
            "\" --service " + c.svc + " --target " + live + " --verify\n";
    }
    add(b, "put-back", "Put the files back onto the volume", note, put);
  }
}

// Every service: a drill proves the backup restores; a fleet restore brings
// it back to one instant with the others.
void proof_commands(Runbook& b, const policy::Service& s, const Ctx& c, const RunbookInput& in) {
  add(b, "drill", "Prove it",
      "A restore drill restores the newest snapshot into a scratch folder, runs the checks, "
      "measures RTO and RPO and records the report (the daemon runs it on the drill schedule).",
      c.cairn + " drill run --service " + c.svc + "\n");
  std::string root =
      "root=\"${" + std::string(kRootEnv) + ":-" + dq(in.target_root + "/fleet") + "}\"\n";
  add(b, "fleet-restore", "Restore with the rest of the fleet",
      "Brings this service back to the instant `" + std::string(kTimeEnv) +
          "` (RFC 3339; default: now, rounded up to the next second) into `" + kRootEnv + "/" +
          s.name + "` — " +
          (s.engine.postgres_wal()
               ? "point-in-time recovery from the archived WAL"
               : "the newest snapshot at or before it, and the gap is reported") +
          ". Add the other services of an incident to `--services` (comma-separated) to "
          "restore them to the same instant." +
          (s.engine.mariadb_binlogs()
               ? " `fleet restore` restores this service's dump (binlog replay needs a running "
                 "server): for exactly the instant, use `restore-pitr` with the same `" +
                     std::string(kTimeEnv) + "`."
               : ""),
      root + "when=\"${" + kTimeEnv + ":-$(date -u -d +1sec +%Y-%m-%dT%H:%M:%SZ)}\"\n" + c.cairn +
          " fleet restore --services " + c.svc + " --to-time \"$when\" --target-root \"$root\"\n");
}

// ---------------------------------------------------------------- documents

// A small document model rendered both as Markdown and as HTML, so the two
// formats cannot say different things. Inline text may use `code` and **bold**.
struct Element {
  enum Kind { kHeading, kPara, kTable, kCode, kWarning, kList } kind;
  std::string text;
  int level = 2;
  std::vector<std::string> headers;
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> items;
  std::string info;
};

using Doc = std::vector<Element>;

Element heading(std::string t, int level = 2) {
  return {Element::kHeading, std::move(t), level, {}, {}, {}, {}};
}
Element para(std::string t) { return {Element::kPara, std::move(t), 2, {}, {}, {}, {}}; }
Element warning(std::string t) { return {Element::kWarning, std::move(t), 2, {}, {}, {}, {}}; }
Element list(std::vector<std::string> items) {
  return {Element::kList, "", 2, {}, {}, std::move(items), {}};
}
Element table(std::vector<std::string> h, std::vector<std::vector<std::string>> rows) {
  return {Element::kTable, "", 2, std::move(h), std::move(rows), {}, {}};
}
Element code(std::string info, std::string text) {
  return {Element::kCode, std::move(text), 2, {}, {}, {}, std::move(info)};
}

std::string code_span(const std::string& s) {
  // A span that contains a backtick needs a longer fence.
  std::string fence = s.find('`') == std::string::npos ? "`" : "``";
  std::string pad = s.find('`') == std::string::npos ? "" : " ";
  return fence + pad + s + pad + fence;
}

// "2026-11-26T07:32:41.446931820Z" -> "2026-11-26T07:32:41Z": seconds are enough on a page.
std::string short_time(const std::string& t) {
  if (t.size() < 20 || t[19] != '.') return t;
  auto end = t.find_first_of("Z+-", 20);
  return end == std::string::npos ? t.substr(0, 19) : t.substr(0, 19) + t.substr(end);
}

std::string drill_line(const drill::DrillReport& d) {
  return fmt::format(
      "{} on {}: RTO {} (objective {}), RPO {} (objective {}), snapshot `{}`{}",
      d.passed ? "**passed**" : "**FAILED**", short_time(d.started_at),
      core::format_duration(d.rto_s),
      policy::format_duration(std::chrono::seconds(static_cast<int64_t>(d.rto_objective_s))),
      policy::format_duration(std::chrono::seconds(static_cast<int64_t>(d.rpo_s))),
      policy::format_duration(std::chrono::seconds(static_cast<int64_t>(d.rpo_objective_s))),
      d.snapshot_id.substr(0, 8), d.passed || d.failure.empty() ? "" : " — " + d.failure);
}

Doc document(const Runbook& b) {
  Doc d;
  d.push_back(heading("Restore runbook: " + b.service, 1));
  d.push_back(para("Generated by cairn " + b.program_version + " at " + b.generated_at + " from `" +
                   b.config_path + "` and the live state. Regenerate with " +
                   code_span("cairn --config " + sh_word(b.config_path) + " runbook --service " +
                             sh_word(b.service)) +
                   "."));
  for (const auto& w : b.warnings) d.push_back(warning(w));

  d.push_back(heading("Service"));
  std::vector<std::vector<std::string>> rows = {
      {"owner", b.owner},
      {"tier", b.tier},
      {"objectives", "RPO " + b.rpo + ", RTO " + b.rto},
      {"engine", b.engine_summary},
      {"schedule", b.schedule.empty()
                       ? "not scheduled"
                       : code_span(b.schedule) + " — " + b.schedule_text + " (" + b.timezone + ")"},
      {"next backups", b.next_runs.empty() ? "—" : join(b.next_runs, ", ")},
      {"retention", b.retention},
      {"drill", b.drill_schedule.empty()
                    ? "no drill schedule"
                    : code_span(b.drill_schedule) + " — " + b.drill_schedule_text +
                          (b.drill_next_runs.empty() ? "" : "; next " + b.drill_next_runs[0])},
      {"drill checks",
       b.drill_checks.empty() ? "restored data verified against the snapshot only" : ""},
      {"repository", code_span(b.repository)},
      {"credential", b.credential},
  };
  if (!b.drill_checks.empty()) {
    std::vector<std::string> cs;
    for (const auto& c : b.drill_checks) cs.push_back(code_span(c));
    rows[8][1] = join(cs, "; ");
  }
  if (!b.s3_credentials.empty()) rows.push_back({"S3 credentials", b.s3_credentials});
  d.push_back(table({"", ""}, rows));

  d.push_back(heading("Restore points"));
  if (!b.repository_opened) {
    d.push_back(para("The repository could not be opened: " + b.repository_error +
                     ". The restore points are unknown; the commands below work once it opens."));
  } else if (b.restore_points.empty()) {
    d.push_back(para("The repository holds no snapshot of this service."));
  } else {
    std::vector<std::vector<std::string>> pts;
    for (const auto& p : b.restore_points)
      pts.push_back({code_span(p.id.substr(0, 8)), p.time, p.host, p.kind, std::to_string(p.files),
                     core::format_bytes(p.bytes)});
    d.push_back(table({"snapshot", "time", "host", "kind", "files", "size"}, pts));
    if (b.restore_points_total > b.restore_points.size())
      d.push_back(para(fmt::format("The {} newest of {}; all: ", b.restore_points.size(),
                                   b.restore_points_total) +
                       code_span("cairn --config " + sh_word(b.config_path) +
                                 " snapshots --service " + sh_word(b.service)) +
                       "."));
  }
  if (b.pitr && b.engine_type == "postgres") {
    d.push_back(heading("Point-in-time recovery window"));
    if (b.archive) {
      const auto& a = *b.archive;
      std::vector<std::vector<std::string>> ar = {
          {"window", b.recovery_window_from.empty()
                         ? "no base backup yet"
                         : "from " + b.recovery_window_from + " to " +
                               (b.recovery_window_to.empty() ? "?" : b.recovery_window_to)},
          {"base backups", std::to_string(a.base_backups)},
          {"archived WAL segments", std::to_string(a.segments)},
          {"newest segment", a.newest_segment.empty()
                                 ? "none"
                                 : code_span(a.newest_segment) + " archived " + a.newest_time},
          {"continuity", a.missing.empty() && a.problems.empty()
                             ? "continuous"
                             : "**GAPS**: recovery cannot pass them"},
      };
      d.push_back(table({"", ""}, ar));
      std::vector<std::string> gaps;
      for (const auto& m : a.missing) gaps.push_back("missing " + code_span(m));
      for (const auto& p : a.problems) gaps.push_back(p);
      if (!gaps.empty()) d.push_back(list(gaps));
    } else {
      d.push_back(para(
          "The WAL archive could not be read: " +
          (b.archive_error.empty() ? std::string("the repository is not open") : b.archive_error) +
          "."));
    }
  }

  d.push_back(heading("Last restore drill"));
  if (b.last_drill) {
    d.push_back(para("Last drill " + drill_line(*b.last_drill) + "."));
    if (b.last_passing_drill && b.last_passing_drill->started_at != b.last_drill->started_at)
      d.push_back(para("Last passing drill " + drill_line(*b.last_passing_drill) + "."));
    else if (!b.last_passing_drill)
      d.push_back(para("No drill of this service has passed."));
  } else {
    d.push_back(para("No drill recorded" +
                     (b.state_available ? std::string(" in ") + code_span(b.state_path)
                                        : " (" +
                                              (b.state_error.empty()
                                                   ? "state database " + code_span(b.state_path) +
                                                         " does not exist"
                                                   : b.state_error) +
                                              ")") +
                     ". Run one: " +
                     code_span("cairn --config " + sh_word(b.config_path) +
                               " drill run --service " + sh_word(b.service)) +
                     "."));
  }

  d.push_back(heading("Restore"));
  d.push_back(para(
      "Every command below runs exactly as printed (copy the whole block). They restore into `" +
      b.target_default + "` unless `" + kTargetEnv +
      "` names another folder; the repository and its " +
      "key come from the policy file (`--config`)."));
  auto elsewhere = [](const std::string& kind) {
    return kind == "verify" || kind == "stop-server" || kind == "put-back" || kind == "drill" ||
           kind == "fleet-restore";
  };
  for (const auto& c : b.commands) {
    if (elsewhere(c.kind)) continue;
    d.push_back(heading(c.title, 3));
    if (!c.note.empty()) d.push_back(para(c.note));
    d.push_back(code("sh " + c.kind, c.script));
  }
  for (const auto& n : b.notes) d.push_back(para(n));

  d.push_back(heading("Verify"));
  bool any = false;
  for (const auto& c : b.commands) {
    if (c.kind != "verify") continue;
    if (!c.note.empty()) d.push_back(para(c.note));
    d.push_back(code("sh " + c.kind, c.script));
    any = true;
  }
  if (!any)
    d.push_back(
        para("The restore commands above verify every restored byte against the snapshot."));
  for (const auto& c : b.commands) {
    if (c.kind != "stop-server") continue;
    d.push_back(heading(c.title, 3));
    if (!c.note.empty()) d.push_back(para(c.note));
    d.push_back(code("sh " + c.kind, c.script));
  }
  for (const char* kind : {"drill", "fleet-restore", "put-back"}) {
    for (const auto& c : b.commands) {
      if (c.kind != kind) continue;
      d.push_back(heading(c.title));
      if (!c.note.empty()) d.push_back(para(c.note));
      d.push_back(code("sh " + c.kind, c.script));
    }
  }
  return d;
}

std::string md_cell(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '|')
      out += "\\|";
    else if (c == '\n')
      out += " ";
    else
      out += c;
  }
  return out;
}

std::string render_md(const Doc& doc) {
  std::string out;
  for (const auto& e : doc) {
    switch (e.kind) {
      case Element::kHeading:
        out += std::string(e.level, '#') + " " + e.text + "\n\n";
        break;
      case Element::kPara:
        out += e.text + "\n\n";
        break;
      case Element::kWarning:
        out += "> **⚠ WARNING:** " + e.text + "\n\n";
        break;
      case Element::kList:
        for (const auto& i : e.items) out += "- " + i + "\n";
        out += "\n";
        break;
      case Element::kTable: {
        bool blank = std::all_of(e.headers.begin(), e.headers.end(),
                                 [](const std::string& h) { return h.empty(); });
        out += "|";
        for (const auto& h : e.headers) out += " " + (blank ? std::string() : md_cell(h)) + " |";
        out += "\n|";
        for (size_t i = 0; i < e.headers.size(); ++i) out += "---|";
        out += "\n";
        for (const auto& r : e.rows) {
          out += "|";
          for (const auto& c : r) out += " " + md_cell(c) + " |";
          out += "\n";
        }
        out += "\n";
        break;
      }
      case Element::kCode: {
        std::string fence = e.text.find("```") == std::string::npos ? "```" : "````";
        out +=
            fence + e.info + "\n" + e.text + (e.text.ends_with("\n") ? "" : "\n") + fence + "\n\n";
        break;
      }
    }
  }
  return out;
}

// `code` and **bold** of inline text, everything else escaped.
std::string html_inline(const std::string& s) {
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    if (s[i] == '`') {
      size_t n = s.compare(i, 2, "``") == 0 ? 2 : 1;
      size_t end = s.find(std::string(n, '`'), i + n);
      if (end != std::string::npos) {
        std::string inner = s.substr(i + n, end - i - n);
        if (n == 2 && inner.size() >= 2 && inner.front() == ' ' && inner.back() == ' ')
          inner = inner.substr(1, inner.size() - 2);
        out += "<code>" + html_escape(inner) + "</code>";
        i = end + n;
        continue;
      }
    }
    if (s.compare(i, 2, "**") == 0) {
      size_t end = s.find("**", i + 2);
      if (end != std::string::npos) {
        out += "<strong>" + html_inline(s.substr(i + 2, end - i - 2)) + "</strong>";
        i = end + 2;
        continue;
      }
    }
    out += html_escape(std::string(1, s[i]));
    ++i;
  }
  return out;
}

constexpr char kCss[] =
    R"(body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#1b1f24}
h1{font-size:1.6rem;border-bottom:2px solid #d0d7de;padding-bottom:.3rem}h2{font-size:1.25rem;margin-top:2rem;border-bottom:1px solid #d0d7de}h3{font-size:1.05rem}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #d0d7de;padding:.25rem .6rem;text-align:left;vertical-align:top}th{background:#f6f8fa}
code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.9em;background:#f6f8fa;padding:.1rem .25rem;border-radius:3px}
pre{background:#0d1117;color:#e6edf3;padding:.8rem 1rem;border-radius:6px;overflow-x:auto}pre code{background:none;color:inherit;padding:0}
.warning{background:#fff1e5;border-left:5px solid #d1242f;padding:.6rem 1rem;margin:1rem 0;font-weight:600}
.kind{font-size:.75rem;color:#57606a;font-family:ui-monospace,monospace})";

std::string render_html(const Doc& doc, const std::string& title) {
  std::string out =
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>" +
      html_escape(title) + "</title>\n<style>\n" + kCss + "\n</style>\n</head>\n<body>\n";
  for (const auto& e : doc) {
    switch (e.kind) {
      case Element::kHeading:
        out += fmt::format("<h{0}>{1}</h{0}>\n", e.level, html_inline(e.text));
        break;
      case Element::kPara:
        out += "<p>" + html_inline(e.text) + "</p>\n";
        break;
      case Element::kWarning:
        out += "<div class=\"warning\">⚠ WARNING: " + html_inline(e.text) + "</div>\n";
        break;
      case Element::kList:
        out += "<ul>\n";
        for (const auto& i : e.items) out += "<li>" + html_inline(i) + "</li>\n";
        out += "</ul>\n";
        break;
      case Element::kTable: {
        out += "<table>\n";
        bool blank = std::all_of(e.headers.begin(), e.headers.end(),
                                 [](const std::string& h) { return h.empty(); });
        if (!blank) {
          out += "<tr>";
          for (const auto& h : e.headers) out += "<th>" + html_inline(h) + "</th>";
          out += "</tr>\n";
        }
        for (const auto& r : e.rows) {
          out += "<tr>";
          for (size_t i = 0; i < r.size(); ++i)
            out += (blank && i == 0 ? "<th>" : "<td>") + html_inline(r[i]) +
                   (blank && i == 0 ? "</th>" : "</td>");
          out += "</tr>\n";
        }
        out += "</table>\n";
        break;
      }
      case Element::kCode: {
        std::string kind = e.info.substr(e.info.find(' ') + 1);
        out += "<div class=\"kind\">" + html_escape(kind) +
               "</div>\n<pre><code class=\"language-sh " + html_escape(kind) + "\" data-kind=\"" +
               html_escape(kind) + "\">" + html_escape(e.text) + "</code></pre>\n";
        break;
      }
    }
  }
  return out + "</body>\n</html>\n";
}

json drill_json(const std::optional<drill::DrillReport>& d) {
  if (!d) return nullptr;
  return d->to_json();
}

}  // namespace

std::string sh_word(const std::string& s) {
  if (s.empty()) return "''";
  bool plain = std::all_of(s.begin(), s.end(), [](unsigned char c) {
    return std::isalnum(c) ||
           std::string_view("_@%+=:,./-").find(static_cast<char>(c)) != std::string_view::npos;
  });
  return plain ? s : sq(s);
}

Runbook build(const RunbookInput& in) {
  const policy::Service& s = *in.service;
  Runbook b;
  b.service = s.name;
  b.owner = s.owner;
  b.tier = s.tier;
  b.config_path = in.config_path;
  b.program_version = in.program_version;
  b.generated_at = date::format("%Y-%m-%dT%H:%M:%SZ", in.now);
  b.rpo = policy::format_duration(s.objectives.rpo);
  b.rto = policy::format_duration(s.objectives.rto);
  b.engine_type = s.engine.type;
  b.engine = policy::to_json(s)["engine"];
  const policy::EngineSpec& e = s.engine;
  if (e.type == "files") {
    std::vector<std::string> ps;
    for (const auto& p : e.paths) ps.push_back(code_span(p));
    b.engine_summary = "files: " + join(ps, ", ");
    if (!e.exclude.empty()) b.engine_summary += " (excluding " + join(e.exclude, ", ") + ")";
  } else if (e.type == "exec") {
    b.engine_summary = "exec: the output of " + code_span(command_text(e)) + ", stored as " +
                       code_span("/" + e.filename);
  } else if (e.type == "postgres") {
    b.engine_summary =
        "PostgreSQL " + e.mode +
        (e.mode == "physical" ? (e.wal_archiving ? " (base backups + continuous WAL archive)"
                                                 : " (base backups, no WAL archive)")
                              : " (pg_dump -Fc per database + globals)") +
        ", " + code_span(e.dsn);
  } else {
    b.engine_summary = e.type;
  }

  const date::time_zone* zone = nullptr;
  if (auto z = policy::find_zone(in.timezone); z.ok() && in.timezone != "UTC") zone = *z;
  b.timezone = in.timezone;
  b.schedule = s.schedule_text;
  b.schedule_text = describe_schedule(s.schedule_text);
  b.next_runs = next_runs(s.schedule, in.now, zone, 3);
  b.retention = retention_text(s);
  b.drill_schedule = s.drill.schedule_text;
  b.drill_schedule_text = describe_schedule(s.drill.schedule_text);
  b.drill_next_runs = next_runs(s.drill.schedule, in.now, zone, 3);
  b.drill_checks = s.drill.checks;
  b.repository = s.repository.location;
  b.credential = credential_text(s.repository);
  if (s.repository.location.rfind("s3:", 0) == 0) {
    b.s3_credentials =
        "from the environment: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), "
        "AWS_DEFAULT_REGION";
    if (!s.repository.cacert.empty()) b.s3_credentials += "; CA certificate " + s.repository.cacert;
  }

  b.repository_opened = in.repository_opened;
  b.repository_error = in.repository_error;
  b.restore_points_total = in.snapshots.size();
  for (auto it = in.snapshots.rbegin(); it != in.snapshots.rend() && b.restore_points.size() < 10;
       ++it) {
    const auto& sn = it->snapshot;
    RestorePoint p;
    p.id = it->id;
    p.time = short_time(repo::format_time(sn.time));
    p.host = sn.hostname;
    std::string type = sn.engine.value("type", e.type);
    std::string mode = sn.engine.value("mode", "");
    p.kind = type + (mode.empty() ? "" : " " + mode);
    p.files = sn.summary.total_files;
    p.bytes = sn.summary.total_bytes;
    p.tags = sn.tags;
    b.restore_points.push_back(std::move(p));
  }

  b.pitr =
      (e.type == "postgres" && e.mode == "physical") || (e.type == "mariadb" && e.binlog_archiving);
  b.archive = in.archive;
  b.archive_error = in.archive_error;
  if (b.pitr && e.type == "postgres") {
    for (const auto& sn : in.snapshots) {
      if (sn.snapshot.engine.value("mode", "") != "physical") continue;
      std::string stop = sn.snapshot.engine.value("stop_time", "");
      if (stop.empty()) continue;
      if (b.recovery_window_from.empty()) b.recovery_window_from = stop;
      b.recovery_window_to = stop;  // newest base backup, unless WAL reaches further
    }
    if (in.archive && !in.archive->newest_time.empty() && !b.recovery_window_from.empty()) {
      auto wal = parse_sys(in.archive->newest_time), base = parse_sys(b.recovery_window_to);
      if (wal && (!base || *wal > *base)) b.recovery_window_to = in.archive->newest_time;
    }
  }

  b.state_path = in.state_path;
  b.state_available = in.state_available;
  b.state_error = in.state_error;
  b.last_drill = in.last_drill;
  b.last_passing_drill = in.last_passing_drill;

  // Warnings: everything that makes this runbook less than a promise.
  if (!in.repository_opened) {
    b.warnings.push_back("The repository could not be opened (" + in.repository_error +
                         "): the restore points are unknown.");
  } else if (in.snapshots.empty()) {
    b.warnings.push_back(
        "The repository holds **no snapshot** of this service: there is nothing to restore.");
  } else {
    // The recovery point now, against the RPO.
    auto newest = parse_sys(b.restore_points.front().time);
    if (b.pitr && e.wal_archiving && in.archive && !in.archive->newest_time.empty()) {
      auto wal = parse_sys(in.archive->newest_time);
      if (wal && (!newest || *wal > *newest)) newest = wal;
    }
    if (newest && in.now - *newest > s.objectives.rpo)
      b.warnings.push_back("The newest restore point is " + age(in.now, *newest) +
                           " old, more than the RPO of " + b.rpo + ".");
  }
  if (b.pitr && e.wal_archiving && in.repository_opened) {
    if (!in.archive) {
      b.warnings.push_back("The WAL archive could not be read: " + in.archive_error + ".");
    } else if (!in.archive->missing.empty() || !in.archive->problems.empty()) {
      b.warnings.push_back(
          fmt::format("The WAL archive has {} missing segment(s) and {} problem(s): point-in-time "
                      "recovery cannot pass them.",
                      in.archive->missing.size(), in.archive->problems.size()));
    } else if (in.archive->segments == 0) {
      b.warnings.push_back(
          "No WAL is archived for this service: check archive_command (docs/postgres.md).");
    }
  }
  if (in.last_drill && !in.last_drill->passed)
    b.warnings.push_back("The last restore drill (" + short_time(in.last_drill->started_at) +
                         ") **FAILED**: " + in.last_drill->failure + ".");
  if (s.tier == "critical" && !in.last_passing_drill)
    b.warnings.push_back(
        "**CRITICAL SERVICE WITHOUT A PASSING RESTORE DRILL**: nothing proves this backup "
        "restores. "
        "Run `cairn --config " +
        sh_word(in.config_path) + " drill run --service " + sh_word(s.name) + "`.");

  // Commands.
  b.target_default = in.target_root + "/" + s.name;
  Ctx c;
  c.cairn = "cairn --config " + sh_word(in.config_path);
  c.svc = sh_word(s.name);
  c.target_line = "target=\"${" + std::string(kTargetEnv) + ":-" + dq(b.target_default) + "}\"\n";
  std::string newest = in.snapshots.empty() ? "latest" : in.snapshots.back().id.substr(0, 8);
  if (e.type == "files") {
    files_commands(b, s, c, newest);
  } else if (e.type == "exec") {
    exec_commands(b, s, c, newest);
  } else if (e.type == "postgres" && e.mode == "logical") {
    pg_logical_commands(b, s, c, newest);
  } else if (e.type == "postgres") {
    pg_physical_commands(b, s, c, in);
  } else if (e.type == "sqlite") {
    sqlite_commands(b, s, c, newest);
  } else if (e.type == "redis") {
    redis_commands(b, c, newest, in);
  } else if (e.type == "mariadb") {
    mariadb_commands(b, s, c, newest);
  } else if (e.type == "volume") {
    volume_commands(b, s, c, newest, in);
  } else {
    generic_commands(b, s, c, newest);
  }
  // Engines with their own verify block run the drill's checks there.
  bool own_verify = std::any_of(b.commands.begin(), b.commands.end(),
                                [](const CommandBlock& k) { return k.kind == "verify"; });
  std::string checks = verify_exec_checks(b, c);
  if (!checks.empty() && e.type != "postgres" && e.type != "mariadb" && !own_verify) {
    add(b, "verify", "Verify",
        "Runs the drill's `exec:` checks against the restored copy, as a drill does "
        "(`CAIRN_DRILL_DIR` = the "
        "target folder).",
        c.target_line + checks);
  }
  proof_commands(b, s, c, in);
  return b;
}

json Runbook::to_json() const {
  json points = json::array();
  for (const auto& p : restore_points)
    points.push_back({{"id", p.id},
                      {"time", p.time},
                      {"host", p.host},
                      {"kind", p.kind},
                      {"files", p.files},
                      {"bytes", p.bytes},
                      {"tags", p.tags}});
  json blocks = json::array();
  for (const auto& c : commands)
    blocks.push_back(
        {{"kind", c.kind}, {"title", c.title}, {"note", c.note}, {"script", c.script}});
  json archive_j = nullptr;
  if (archive) {
    archive_j = {{"segments", archive->segments},
                 {"base_backups", archive->base_backups},
                 {"newest_segment", archive->newest_segment},
                 {"newest_time", archive->newest_time},
                 {"missing", archive->missing},
                 {"problems", archive->problems}};
  }
  return {{"service", service},
          {"owner", owner},
          {"tier", tier},
          {"config", config_path},
          {"generated_at", generated_at},
          {"objectives", {{"rpo", rpo}, {"rto", rto}}},
          {"engine", engine},
          {"engine_summary", engine_summary},
          {"schedule",
           {{"expression", schedule},
            {"text", schedule_text},
            {"next", next_runs},
            {"timezone", timezone}}},
          {"retention", retention},
          {"drill",
           {{"schedule", drill_schedule},
            {"text", drill_schedule_text},
            {"next", drill_next_runs},
            {"checks", drill_checks},
            {"last", drill_json(last_drill)},
            {"last_passed", drill_json(last_passing_drill)},
            {"state", state_path},
            {"state_available", state_available}}},
          {"repository",
           {{"location", repository},
            {"credential", credential},
            {"opened", repository_opened},
            {"error", repository_error}}},
          {"restore_points", points},
          {"restore_points_total", restore_points_total},
          {"pitr", pitr},
          {"recovery_window", {{"from", recovery_window_from}, {"to", recovery_window_to}}},
          {"wal_archive", archive_j},
          {"target_default", target_default},
          {"target_env", kTargetEnv},
          {"commands", blocks},
          {"notes", notes},
          {"warnings", warnings}};
}

std::string Runbook::markdown() const { return render_md(document(*this)); }

std::string Runbook::html() const {
  return render_html(document(*this), "Restore runbook: " + service);
}

namespace {

Doc index_doc(const std::vector<Runbook>& books, const std::string& ext) {
  Doc d;
  d.push_back(heading("Restore runbooks", 1));
  if (!books.empty())
    d.push_back(para("Generated by cairn " + books[0].program_version + " at " +
                     books[0].generated_at + " from `" + books[0].config_path + "`."));
  std::vector<std::vector<std::string>> rows;
  for (const auto& b : books) {
    std::string drill = b.last_drill ? (b.last_drill->passed ? "passed " : "FAILED ") +
                                           short_time(b.last_drill->started_at)
                                     : "none recorded";
    std::string link = ext == "html" ? "<" + b.service + ".html>"
                                     : "[" + b.service + "](" + b.service + "." + ext + ")";
    rows.push_back({link, b.owner, b.tier, "RPO " + b.rpo + ", RTO " + b.rto, b.engine_type,
                    b.restore_points.empty() ? "—" : b.restore_points.front().time, drill,
                    b.warnings.empty() ? "" : fmt::format("**{} warning(s)**", b.warnings.size())});
  }
  d.push_back(
      table({"service", "owner", "tier", "objectives", "engine", "newest point", "last drill", ""},
            rows));
  return d;
}

}  // namespace

std::string index_markdown(const std::vector<Runbook>& books, const std::string& extension) {
  return render_md(index_doc(books, extension));
}

std::string index_html(const std::vector<Runbook>& books) {
  // Links are real anchors in HTML: build the table cells' HTML by hand.
  Doc d = index_doc(books, "html");
  std::string out = render_html(d, "Restore runbooks");
  for (const auto& b : books) {
    std::string escaped = html_escape("<" + b.service + ".html>");
    auto pos = out.find(escaped);
    if (pos != std::string::npos)
      out.replace(
          pos, escaped.size(),
          "<a href=\"" + html_escape(b.service) + ".html\">" + html_escape(b.service) + "</a>");
  }
  return out;
}

}  // namespace cairn::runbook
