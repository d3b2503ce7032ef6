// Redis backups: INFO for the engine metadata, then `redis-cli --rdb -`
// streamed into the repository through the exec engine's command runner.
#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <regex>

#include "engines/exec/exec.h"
#include "engines/redis/redis.h"

namespace cairn::engines::redis {

namespace {

// With diskless replication (the default since Redis 7) the server ends the
// transfer with a 40-byte random mark, and `redis-cli --rdb -` copies that
// mark to stdout too (it can only truncate a file, not a pipe). The last
// bytes are held back until the end, when redis-cli's own report ("after N
// bytes") says whether they are the mark. 9 more bytes keep the RDB's EOF
// opcode and checksum in view.
constexpr size_t kEofMark = 40;
constexpr size_t kHold = kEofMark + 9;
constexpr uint8_t kRdbOpcodeEof = 0xFF;

std::vector<std::string> cli_argv(const Connection& c) {
  std::vector<std::string> argv = {c.cli};
  if (!c.socket.empty()) {
    argv.insert(argv.end(), {"-s", c.socket});
  } else {
    argv.insert(argv.end(), {"-h", c.host, "-p", std::to_string(c.port)});
  }
  if (!c.user.empty()) argv.insert(argv.end(), {"--user", c.user});
  return argv;
}

std::vector<std::string> cli_env(const Connection& c) {
  if (c.password.empty()) return {};
  return {"REDISCLI_AUTH=" + c.password};
}

// The first line of redis-cli's complaint, for a message.
std::string first_line(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  size_t nl = s.find('\n');
  if (nl != std::string::npos) s = s.substr(0, nl);
  if (!s.empty() && s.back() == '\r') s.pop_back();
  return s;
}

// Reads redis-cli's stdout, holding back the last kHold bytes (see above).
class RdbStream {
 public:
  explicit RdbStream(exec::RunningCommand cmd) : cmd_(std::move(cmd)) {}

  core::Result<size_t> read(uint8_t* buf, size_t cap) {
    if (done_) return emit_tail(buf, cap);
    for (;;) {
      if (held_.size() > kHold) {  // left over from a read into a small buffer
        size_t n = std::min(cap, held_.size() - kHold);
        return emit_front(buf, n);
      }
      size_t n = 0;
      if (cap > kHold) {
        // Held bytes go first; new data lands right after them in `buf`.
        size_t held = held_.size();
        std::memcpy(buf, held_.data(), held);
        ASSIGN_OR_RETURN(n, cmd_.proc->read(buf + held, cap - held));
        if (n > 0) {
          note_head(buf + held, n);
          size_t total = held + n;
          size_t keep = std::min(total, kHold);
          held_.assign(reinterpret_cast<char*>(buf) + total - keep, keep);
          emitted_ += total - keep;
          if (total > keep) return total - keep;
          continue;
        }
      } else {
        uint8_t small[4096];
        ASSIGN_OR_RETURN(n, cmd_.proc->read(small, sizeof small));
        note_head(small, n);
        held_.append(reinterpret_cast<char*>(small), n);
        if (n > 0) continue;
      }
      done_ = true;
      finish_ = cmd_.finish();  // reaps redis-cli: its stderr is complete now
      strip_mark();
      return emit_tail(buf, cap);
    }
  }

  core::Status finish() {
    if (!done_)
      return core::io_error("the RDB stream was not read to its end: no snapshot written");
    TRY(finish_);
    if (head_ != "REDIS")
      return core::corruption(
          "redis-cli's output is not an RDB file (no REDIS header): no snapshot written");
    if (!ends_with_eof_opcode_)
      return core::corruption(
          "the RDB stream from redis-cli ends without its EOF record (truncated?): "
          "no snapshot written");
    return {};
  }

 private:
  void strip_mark() {
    if (!finish_.ok()) return;
    static const std::regex after(R"(Transfer finished with success after (\d+) bytes)");
    std::string err = cmd_.proc->stderr_tail();
    std::smatch m;
    if (std::regex_search(err, m, after)) {
      uint64_t payload = std::stoull(m[1].str());
      if (emitted_ + held_.size() == payload + kEofMark && held_.size() >= kEofMark)
        held_.resize(held_.size() - kEofMark);
    }
    ends_with_eof_opcode_ =
        held_.size() >= 9 && static_cast<uint8_t>(held_[held_.size() - 9]) == kRdbOpcodeEof;
  }

  core::Result<size_t> emit_tail(uint8_t* buf, size_t cap) {
    return emit_front(buf, std::min(cap, held_.size()));
  }

  size_t emit_front(uint8_t* buf, size_t n) {
    std::memcpy(buf, held_.data(), n);
    held_.erase(0, n);
    emitted_ += n;
    return n;
  }

  // Keeps the stream's first bytes for the magic check.
  void note_head(const uint8_t* p, size_t n) {
    if (head_.size() < 5)
      head_.append(reinterpret_cast<const char*>(p), std::min(n, 5 - head_.size()));
  }

  exec::RunningCommand cmd_;
  std::string held_, head_;
  uint64_t emitted_ = 0;
  bool done_ = false, ends_with_eof_opcode_ = false;
  core::Status finish_;
};

}  // namespace

std::string Connection::where() const {
  return socket.empty() ? fmt::format("{}:{}", host, port) : socket;
}

core::Result<std::string> read_password_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return core::errno_status(errno, "password file " + path);
  std::string line;
  std::getline(in, line);
  if (!line.empty() && line.back() == '\r') line.pop_back();
  if (line.empty()) return core::invalid_argument("password file " + path + " is empty");
  return line;
}

core::Result<nlohmann::json> server_info(const Connection& conn, std::chrono::seconds timeout) {
  exec::ExecOptions x;
  x.command = cli_argv(conn);
  x.command.push_back("INFO");
  x.env = cli_env(conn);
  x.timeout = timeout;
  x.forward_stderr = false;
  ASSIGN_OR_RETURN(exec::RunningCommand cmd, exec::start_command(x));
  auto& proc = cmd.proc;
  std::string out;
  uint8_t buf[8192];
  for (;;) {
    ASSIGN_OR_RETURN(size_t n, proc->read(buf, sizeof buf));
    if (n == 0) break;
    if (out.size() < (1u << 20)) out.append(reinterpret_cast<char*>(buf), n);
  }
  core::Status st = proc->wait();
  cmd.dog->disarm();
  if (cmd.dog->fired())
    return core::io_error(
        fmt::format("redis at {}: no answer to INFO within {}s", conn.where(), timeout.count()));
  std::string err = proc->stderr_tail();
  if (!st.ok()) {
    std::string why = first_line(err.empty() ? st.message() : err);
    if (why.find(conn.where()) != std::string::npos) return core::io_error(why);
    return core::io_error(fmt::format("redis at {}: {}", conn.where(), why));
  }
  // redis-cli prints a refused AUTH on stderr, the server's error reply on
  // stdout, and exits 0: only the reply's contents tell.
  if (out.find("redis_version:") == std::string::npos) {
    std::string why = first_line(err);
    if (why.empty()) why = first_line(out);
    return core::io_error(
        fmt::format("redis at {}: INFO failed: {}", conn.where(), why.empty() ? "no answer" : why));
  }
  nlohmann::json info = nlohmann::json::object();
  uint64_t keys = 0, expires = 0;
  static const std::regex db_line(R"(^db\d+:keys=(\d+),expires=(\d+))");
  size_t pos = 0;
  while (pos < out.size()) {
    size_t nl = out.find('\n', pos);
    std::string line = out.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    pos = nl == std::string::npos ? out.size() : nl + 1;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    std::smatch m;
    if (std::regex_search(line, m, db_line)) {
      keys += std::stoull(m[1].str());
      expires += std::stoull(m[2].str());
      continue;
    }
    size_t colon = line.find(':');
    if (colon == std::string::npos || line[0] == '#') continue;
    std::string k = line.substr(0, colon), v = line.substr(colon + 1);
    if (k == "redis_version" || k == "role" || k == "redis_mode") {
      info[k] = v;
    } else if (k == "used_memory" || k == "aof_enabled" || k == "rdb_changes_since_last_save") {
      try {
        info[k] = std::stoull(v);
      } catch (const std::exception&) {
      }
    }
  }
  info["keys"] = keys;
  info["expires"] = expires;
  return info;
}

core::Result<archive::BackupResult> backup(repo::Repository& repo, const BackupOptions& opt,
                                           const archive::BackupOptions& backup,
                                           archive::BackupProgress* progress) {
  auto info_timeout = opt.timeout.count() > 0 ? std::min(opt.timeout, kInfoTimeout) : kInfoTimeout;
  auto info = server_info(opt.conn, info_timeout);
  if (!info.ok())
    return core::Status(info.status().code(), info.status().message() + ": no snapshot written");
  exec::ExecOptions x;
  x.command = cli_argv(opt.conn);
  x.command.insert(x.command.end(), {"--rdb", "-"});
  x.env = cli_env(opt.conn);
  x.timeout = opt.timeout;
  x.filename = kRdbName;
  x.forward_stderr = false;  // progress chatter; its tail is in the error of a failed run
  ASSIGN_OR_RETURN(exec::RunningCommand cmd, exec::start_command(x));
  auto stream = std::make_shared<RdbStream>(std::move(cmd));
  archive::StreamSource src;
  src.filename = kRdbName;
  src.read = [stream](uint8_t* buf, size_t cap) { return stream->read(buf, cap); };
  src.finish = [stream, where = opt.conn.where()]() -> core::Status {
    core::Status st = stream->finish();
    if (st.ok()) return st;
    return core::Status(st.code(), "redis at " + where + ": " + st.message());
  };
  archive::BackupOptions o = backup;
  o.engine = *info;
  o.engine["type"] = "redis";
  o.engine["file"] = kRdbName;
  return archive::backup_stream(repo, std::move(src), o, progress);
}

}  // namespace cairn::engines::redis
