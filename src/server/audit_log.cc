#include "server/audit_log.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <deque>
#include <filesystem>
#include <fstream>

#include <fmt/chrono.h>
#include <fmt/format.h>

#include "core/bytes.h"
#include "crypto/crypto.h"

namespace cairn::server {

namespace {

using nlohmann::json;

const std::string kGenesis(64, '0');

std::string serialize(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string entry_hash(json j) {
  j.erase("hash");
  return core::hex_encode(crypto::sha256(core::as_bytes(serialize(j))));
}

std::string now_text() {
  auto now = std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
  return fmt::format("{:%Y-%m-%dT%H:%M:%S}Z", now);
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// The last complete line of the file (without its newline), "" when empty.
core::Result<std::string> last_line(int fd, const std::string& path) {
  struct stat st {};
  if (fstat(fd, &st) != 0) return core::errno_status(errno, path);
  off_t end = st.st_size;
  std::string tail;
  // Lines are short (a few hundred bytes); read backwards in blocks until a
  // newline before the last one appears.
  for (off_t block = 4096; end > 0; block *= 2) {
    off_t start = end > block ? end - block : 0;
    tail.resize(static_cast<size_t>(end - start));
    if (pread(fd, tail.data(), tail.size(), start) != static_cast<ssize_t>(tail.size()))
      return core::errno_status(errno, path);
    while (!tail.empty() && tail.back() == '\n') tail.pop_back();
    auto nl = tail.rfind('\n');
    if (nl != std::string::npos) return tail.substr(nl + 1);
    if (start == 0) return tail;
  }
  return std::string();
}

core::Status write_all(int fd, const std::string& data, const std::string& path) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return core::errno_status(errno, path);
    }
    done += static_cast<size_t>(n);
  }
  return core::ok_status();
}

std::string head_path(const std::string& path) { return path + ".head"; }

}  // namespace

core::Status AuditLog::append(const AuditEntry& e) {
  std::lock_guard lock(mu_);
  std::error_code ec;
  if (auto dir = std::filesystem::path(path_).parent_path(); !dir.empty()) std::filesystem::create_directories(dir, ec);
  Fd fd(::open(path_.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
  if (fd.get() < 0) return core::errno_status(errno, "audit log " + path_);
  if (flock(fd.get(), LOCK_EX) != 0) return core::errno_status(errno, "audit log " + path_);
  ASSIGN_OR_RETURN(std::string last, last_line(fd.get(), path_));
  int64_t seq = 1;
  std::string prev = kGenesis;
  if (!last.empty()) {
    json lj = json::parse(last, nullptr, false);
    if (lj.is_discarded() || !lj.contains("seq") || !lj.contains("hash"))
      return core::corruption("audit log " + path_ + ": the last line is not an audit entry (run cairn audit verify)");
    seq = lj["seq"].get<int64_t>() + 1;
    prev = lj["hash"].get<std::string>();
  }
  json j = {{"seq", seq},           {"time", now_text()},     {"principal", e.principal}, {"role", e.role},
            {"action", e.action},   {"service", e.service},   {"object", e.object},       {"result", e.result},
            {"source", e.source},   {"prev", prev}};
  j["hash"] = entry_hash(j);
  TRY(write_all(fd.get(), serialize(j) + "\n", path_));
  if (fdatasync(fd.get()) != 0) return core::errno_status(errno, "audit log " + path_);
  // The head: fixed-size record rewritten in place (one sector, written whole).
  std::string head = fmt::format("{{\"seq\":{},\"hash\":\"{}\"}}", seq, j["hash"].get<std::string>());
  head.resize(128, ' ');
  head.back() = '\n';
  Fd hfd(::open(head_path(path_).c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
  if (hfd.get() < 0) return core::errno_status(errno, "audit head " + head_path(path_));
  if (pwrite(hfd.get(), head.data(), head.size(), 0) != static_cast<ssize_t>(head.size()) || fdatasync(hfd.get()) != 0)
    return core::errno_status(errno, "audit head " + head_path(path_));
  return core::ok_status();  // the flock goes with the descriptor
}

core::Result<std::vector<json>> AuditLog::tail(size_t limit, const std::string& service) const {
  std::ifstream in(path_);
  std::deque<json> out;
  if (!in) return std::vector<json>();
  std::string line;
  while (std::getline(in, line)) {
    json j = json::parse(line, nullptr, false);
    if (j.is_discarded()) continue;
    if (!service.empty() && j.value("service", "") != service) continue;
    out.push_back(std::move(j));
    if (out.size() > limit) out.pop_front();
  }
  return std::vector<json>(out.begin(), out.end());
}

core::Result<AuditVerification> verify_audit_log(const std::string& path) {
  std::ifstream in(path);
  if (!in) return core::not_found("audit log " + path + ": cannot be read");
  AuditVerification v;
  auto problem = [&](size_t line, std::string msg) { v.problems.push_back({line, std::move(msg)}); };
  std::string line, prev = kGenesis;
  int64_t expect_seq = 1;
  size_t n = 0;
  while (std::getline(in, line)) {
    n++;
    json j = json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("hash") || !j.contains("prev") || !j.contains("seq") ||
        !j["hash"].is_string() || !j["prev"].is_string() || !j["seq"].is_number_integer()) {
      problem(n, "not an audit entry");
      prev.clear();  // nothing after it can chain to a known hash
      expect_seq++;
      continue;
    }
    std::string hash = j["hash"];
    if (entry_hash(j) != hash) problem(n, "entry was edited (its hash does not match its contents)");
    int64_t seq = j["seq"];
    if (j["prev"] != prev) {
      problem(n, seq == expect_seq ? "chain broken: the previous entry was changed"
                                   : fmt::format("chain broken: expected entry {}, found {} (entries removed or reordered)",
                                                 expect_seq, seq));
    } else if (seq != expect_seq) {
      problem(n, fmt::format("sequence broken: expected entry {}, found {}", expect_seq, seq));
    }
    prev = hash;
    expect_seq = seq + 1;
    v.entries++;
  }
  std::ifstream head_in(head_path(path));
  if (head_in) {
    std::string head((std::istreambuf_iterator<char>(head_in)), {});
    json h = json::parse(head, nullptr, false);
    if (h.is_discarded() || !h.contains("seq") || !h.contains("hash")) {
      problem(0, head_path(path) + " is damaged");
    } else if (h["seq"].get<int64_t>() != expect_seq - 1 || h["hash"] != prev) {
      problem(n + 1, fmt::format("the log ends at entry {} but its head names entry {} (entries removed from the end)",
                                 expect_seq - 1, h["seq"].get<int64_t>()));
    }
  } else if (n > 0) {
    problem(0, head_path(path) + " is missing");
  }
  return v;
}

}  // namespace cairn::server
