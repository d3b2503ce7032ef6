// ScratchMariadb: a throwaway mariadbd for restore drills and tests.
#include <fmt/format.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "core/file.h"
#include "engines/mariadb/mariadb.h"

namespace cairn::engines::mariadb {

namespace fs = std::filesystem;

namespace {

core::Result<int> free_port() {
  core::UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) return core::errno_status(errno, "socket");
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
    return core::errno_status(errno, "bind 127.0.0.1:0");
  socklen_t len = sizeof a;
  if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&a), &len) != 0)
    return core::errno_status(errno, "getsockname");
  return static_cast<int>(ntohs(a.sin_port));
}

bool socket_accepts(const std::string& path) {
  core::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (path.size() >= sizeof a.sun_path) return false;
  std::copy(path.begin(), path.end(), a.sun_path);
  return ::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
}

// True once the child closed its stdout (it exited), waiting up to `ms`.
// mariadbd keeps its stdout open until it exits unless --log-error
// redirects it, which is why the log goes to the stderr pipe instead.
bool exited_within(core::Subprocess& p, int ms) {
  pollfd pfd{p.stdout_fd(), POLLIN, 0};
  if (::poll(&pfd, 1, ms) <= 0) return false;
  uint8_t b[256];
  auto n = p.read(b, sizeof b);
  return !n.ok() || *n == 0;
}

std::string find_mariadbd() {
  for (const char* p : {"/usr/sbin/mariadbd", "/usr/libexec/mariadbd", "/usr/bin/mariadbd"})
    if (::access(p, X_OK) == 0) return p;
  return "mariadbd";
}

}  // namespace

core::Result<std::unique_ptr<ScratchMariadb>> ScratchMariadb::start(const Options& o) {
  std::unique_ptr<ScratchMariadb> s(new ScratchMariadb());
  std::string tmpl = (fs::path(o.parent_dir) / "cairn-scratch-mariadb.XXXXXX").string();
  if (!mkdtemp(tmpl.data())) return core::errno_status(errno, "temp folder " + tmpl);
  s->dir_ = tmpl;
  ::chmod(s->dir_.c_str(), 0755);  // the server's user must reach the socket and data
  bool root = ::geteuid() == 0;
  const passwd* mysql = root ? ::getpwnam("mysql") : nullptr;
  if (root && !mysql)
    return core::not_found("user 'mysql' does not exist (install mariadb-server)");
  if (mysql && ::chown(s->dir_.c_str(), mysql->pw_uid, mysql->pw_gid) != 0)
    return core::errno_status(errno, "chown " + s->dir_);
  s->socket_ = s->dir_ + "/mysqld.sock";
  // A private tmpdir: servers bootstrapped at the same time in the shared
  // /tmp remove each other's temporary tables ("Could not remove temporary
  // table '/tmp/#sql-temptable-...'", then the install fails).
  const std::string tmpdir = s->dir_ + "/tmp";
  if (::mkdir(tmpdir.c_str(), 0700) != 0) return core::errno_status(errno, tmpdir);
  if (mysql && ::chown(tmpdir.c_str(), mysql->pw_uid, mysql->pw_gid) != 0)
    return core::errno_status(errno, "chown " + tmpdir);
  if (o.datadir.empty()) {
    s->datadir_ = s->dir_ + "/data";
    std::vector<std::string> argv = {"mariadb-install-db",
                                     "--no-defaults",
                                     "--datadir=" + s->datadir_,
                                     "--skip-test-db",
                                     "--auth-root-authentication-method=socket",
                                     "--tmpdir=" + tmpdir};
    if (mysql) argv.push_back("--user=mysql");
    auto r = core::run_and_capture(argv);
    if (!r.ok()) return r.status().with_context("mariadb-install-db in " + s->datadir_);
  } else {
    s->datadir_ = fs::absolute(o.datadir).string();
  }
  ASSIGN_OR_RETURN(s->port_, free_port());
  std::vector<std::string> argv = {find_mariadbd(),
                                   "--no-defaults",
                                   "--datadir=" + s->datadir_,
                                   "--socket=" + s->socket_,
                                   fmt::format("--port={}", s->port_),
                                   "--bind-address=127.0.0.1",
                                   "--pid-file=" + s->dir_ + "/mysqld.pid",
                                   "--tmpdir=" + tmpdir,
                                   "--innodb-buffer-pool-size=64M"};
  if (mysql) argv.push_back("--user=mysql");
  if (o.log_bin) argv.insert(argv.end(), {"--log-bin=" + s->datadir_ + "/binlog", "--server-id=1"});
  argv.insert(argv.end(), o.extra_args.begin(), o.extra_args.end());
  core::ProcessOptions po;
  po.new_process_group = true;
  ASSIGN_OR_RETURN(std::unique_ptr<core::Subprocess> proc, core::Subprocess::start(argv, po));
  s->proc_ = std::move(proc);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (!socket_accepts(s->socket_)) {
    if (exited_within(*s->proc_, 100)) {
      core::Status st = s->proc_->wait();
      s->proc_.reset();
      return core::io_error("mariadbd on " + s->datadir_ +
                            " exited during startup: " + st.message());
    }
    if (std::chrono::steady_clock::now() > deadline)
      return core::io_error("mariadbd on " + s->datadir_ +
                            " did not accept connections within 120 s:\n" +
                            s->proc_->stderr_tail());
  }
  return s;
}

Connection ScratchMariadb::connection() const {
  Connection c;
  c.socket = socket_;
  c.user = "root";
  return c;
}

core::Status ScratchMariadb::stop() {
  if (!proc_) return {};
  proc_->signal(SIGTERM);
  if (!exited_within(*proc_, 60'000)) {
    // exited_within() may return early on a stray byte: keep waiting a bit.
    for (int i = 0; i < 600 && !exited_within(*proc_, 100); i++) {
    }
  }
  proc_->signal(SIGKILL);  // a no-op when it is gone
  core::Status st = proc_->wait();
  proc_.reset();
  // SIGTERM is a clean shutdown for mariadbd; its exit status then is 0.
  if (!st.ok()) return st.with_context("stopping mariadbd on " + datadir_);
  return {};
}

ScratchMariadb::~ScratchMariadb() {
  (void)stop();
  std::error_code ec;
  if (!dir_.empty()) fs::remove_all(dir_, ec);
}

}  // namespace cairn::engines::mariadb
