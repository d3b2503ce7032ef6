// ScratchRedis: a throwaway redis-server for restore drills and tests.
#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <mutex>
#include <thread>

#include "core/file.h"
#include "engines/redis/redis.h"

namespace cairn::engines::redis {

namespace {

constexpr size_t kLogTail = 8192;

// A port on 127.0.0.1 that nothing listens on right now. Another process may
// take it before the server binds: start() retries on "Address already in use".
core::Result<int> free_port() {
  core::UniqueFd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!s.valid()) return core::errno_status(errno, "socket");
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (::bind(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(s.get(), reinterpret_cast<sockaddr*>(&a), &len) != 0)
    return core::errno_status(errno, "binding a free port on 127.0.0.1");
  return static_cast<int>(ntohs(a.sin_port));
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

}  // namespace

// The server's log (its stdout), drained by a thread so the pipe never
// fills; the tail is kept for messages. `ended` is set when the server
// (and anything it forked) closed stdout, i.e. it exited.
struct ScratchRedis::Log {
  std::mutex mu;
  std::string tail;
  bool ended = false;
  std::thread reader;
  ~Log() {
    if (reader.joinable()) reader.join();
  }
  std::string get() {
    std::lock_guard lock(mu);
    return trim(tail);
  }
  bool has_ended() {
    std::lock_guard lock(mu);
    return ended;
  }
};

core::Result<std::unique_ptr<ScratchRedis>> ScratchRedis::start(const Options& options) {
  if (options.dir.empty()) return core::invalid_argument("ScratchRedis: no directory");
  core::Status last;
  for (int attempt = 0; attempt < 5; attempt++) {
    ASSIGN_OR_RETURN(int port, free_port());
    std::vector<std::string> argv;
    if (!options.run_as.empty()) argv = {"runuser", "-u", options.run_as, "--"};
    argv.insert(argv.end(), {options.server, "--port", std::to_string(port), "--bind", "127.0.0.1",
                             "--dir", options.dir, "--dbfilename", kRdbName, "--save", "",
                             "--appendonly", "no", "--daemonize", "no", "--logfile", ""});
    core::ProcessOptions po;
    po.new_process_group = true;  // runuser's child gets the signals too
    ASSIGN_OR_RETURN(std::shared_ptr<core::Subprocess> proc, core::Subprocess::start(argv, po));
    auto self = std::unique_ptr<ScratchRedis>(new ScratchRedis());
    self->proc_ = proc;
    self->port_ = port;
    self->log_ = std::make_shared<Log>();
    self->log_->reader = std::thread([proc, log = self->log_.get()] {
      uint8_t buf[4096];
      for (;;) {
        auto n = proc->read(buf, sizeof buf);
        if (!n.ok() || *n == 0) break;
        std::lock_guard lock(log->mu);
        log->tail.append(reinterpret_cast<char*>(buf), *n);
        if (log->tail.size() > 2 * kLogTail) log->tail.erase(0, log->tail.size() - kLogTail);
      }
      std::lock_guard lock(log->mu);
      log->ended = true;
    });
    auto deadline = std::chrono::steady_clock::now() + options.start_timeout;
    bool ready = false;
    while (std::chrono::steady_clock::now() < deadline && !self->log_->has_ended()) {
      auto pong = self->command({"PING"});
      if (pong.ok() && *pong == "PONG") {
        ready = true;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (ready) return self;
    std::string log = self->log_tail();
    bool ended = self->log_->has_ended();
    (void)self->stop();
    if (ended && log.find("Address already in use") != std::string::npos) {
      last = core::io_error(fmt::format("redis-server: port {} was taken", port));
      continue;
    }
    std::string what =
        ended ? "exited" : fmt::format("did not answer PING in {}s", options.start_timeout.count());
    return core::io_error(fmt::format("redis-server on {} {}:\n{}", options.dir, what,
                                      log.empty() ? "(no log)" : log));
  }
  return last;
}

ScratchRedis::~ScratchRedis() { (void)stop(); }

Connection ScratchRedis::connection() const {
  Connection c;
  c.host = "127.0.0.1";
  c.port = port_;
  return c;
}

core::Result<std::string> ScratchRedis::command(const std::vector<std::string>& args) const {
  std::vector<std::string> argv = {"redis-cli", "-h", "127.0.0.1", "-p", std::to_string(port_)};
  argv.insert(argv.end(), args.begin(), args.end());
  ASSIGN_OR_RETURN(std::string out, core::run_and_capture(argv));
  return trim(out);
}

std::string ScratchRedis::log_tail() const { return log_ ? log_->get() : ""; }

core::Status ScratchRedis::stop() {
  if (!proc_) return {};
  // SIGTERM: with saving disabled Redis exits without writing; the watchdog
  // sends SIGKILL when it does not within 10 s.
  proc_->signal(SIGTERM);
  core::Watchdog dog(proc_, std::chrono::seconds(10), std::chrono::seconds(0));
  if (log_->reader.joinable()) log_->reader.join();
  core::Status st = proc_->wait();
  dog.disarm();
  proc_.reset();
  // Killed by our SIGTERM is the expected end.
  if (!st.ok() && st.message().find("signal 15") == std::string::npos) return st;
  return {};
}

}  // namespace cairn::engines::redis
