#include "engines/postgres/scratch_server.h"

#include <fcntl.h>
#include <libpq-fe.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "core/file.h"
#include "engines/postgres/postgres.h"

namespace cairn::engines::postgres {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

core::Status write_owned(const std::string& path, const std::string& text, std::pair<int, int> id) {
  std::ofstream f(path, std::ios::trunc);
  f << text;
  f.close();
  if (!f) return core::io_error("cannot write " + path);
  if (id.first >= 0 &&
      chown(path.c_str(), static_cast<uid_t>(id.first), static_cast<gid_t>(id.second)) != 0)
    return core::errno_status(errno, "chown " + path);
  return {};
}

int read_major(const std::string& data_dir) {
  std::ifstream f(data_dir + "/PG_VERSION");
  int major = 0;
  f >> major;
  return major;
}

std::string user_name(int uid) {
  struct passwd* pw = getpwuid(uid >= 0 ? static_cast<uid_t>(uid) : geteuid());
  return pw ? pw->pw_name : "postgres";
}

// A value in a libpq connection string.
std::string conninfo_value(const std::string& v) {
  std::string out = "'";
  for (char c : v) {
    if (c == '\'' || c == '\\') out += '\\';
    out += c;
  }
  return out + "'";
}

// Running, not a zombie waiting for its parent (the drill) to reap it.
bool alive(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(f, line)) return false;
  auto paren = line.rfind(')');
  return paren != std::string::npos && paren + 2 < line.size() && line[paren + 2] != 'Z' &&
         line[paren + 2] != 'X';
}

bool process_is_postgres(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/comm");
  std::string comm;
  std::getline(f, comm);
  return comm.find("postgres") != std::string::npos;
}

}  // namespace

std::pair<int, int> server_identity(const std::string& data_dir) {
  if (geteuid() != 0) return {-1, -1};
  struct stat st;
  if (::stat((data_dir + "/PG_VERSION").c_str(), &st) == 0 && st.st_uid != 0)
    return {static_cast<int>(st.st_uid), static_cast<int>(st.st_gid)};
  if (struct passwd* pw = getpwnam("postgres"))
    return {static_cast<int>(pw->pw_uid), static_cast<int>(pw->pw_gid)};
  return {-1, -1};
}

core::Result<std::unique_ptr<ScratchServer>> ScratchServer::start(const ScratchServerOptions& opt) {
  auto s = std::unique_ptr<ScratchServer>(new ScratchServer());
  s->data_dir_ = opt.data_dir;
  s->socket_dir_ = opt.socket_dir;
  s->major_ = read_major(opt.data_dir);
  if (s->major_ <= 0)
    return core::invalid_argument(opt.data_dir +
                                  " is not a PostgreSQL data directory (no PG_VERSION)");
  s->bindir_ = find_bindir(opt.bindir, s->major_ * 10000);
  auto id = server_identity(opt.data_dir);
  s->user_ = user_name(id.first);
  if (id.first >= 0) {
    for (const std::string& dir : {opt.socket_dir, opt.data_dir})
      if (chown(dir.c_str(), static_cast<uid_t>(id.first), static_cast<gid_t>(id.second)) != 0)
        return core::errno_status(errno, "chown " + dir);
  }
  chmod(opt.data_dir.c_str(), 0700);
  // Only local connections, from this host's processes that can enter the
  // private socket folder: trust is safe and needs no production password.
  TRY(write_owned(opt.socket_dir + "/pg_hba.conf", "local all all trust\n", id));
  TRY(write_owned(opt.socket_dir + "/pg_ident.conf", "", id));
  // Clusters whose configuration lives outside the data directory (Debian's
  // /etc/postgresql) restore without one; the server needs the file.
  std::error_code ec;
  if (!fs::exists(opt.data_dir + "/postgresql.conf", ec))
    TRY(write_owned(opt.data_dir + "/postgresql.conf", "# written by cairn for a restore drill\n",
                    id));

  std::vector<std::string> argv = {tool_path(s->bindir_, "postgres"), "-D", opt.data_dir};
  // Settings that make the copy harmless and runnable on a drill host:
  // no archiving (the production archive stays untouched), no replication
  // connections to production, no synchronous standbys to wait for, no TCP.
  for (const std::string& c :
       {"port=" + std::to_string(s->port_), std::string("listen_addresses="),
        "unix_socket_directories=" + opt.socket_dir, "hba_file=" + opt.socket_dir + "/pg_hba.conf",
        "ident_file=" + opt.socket_dir + "/pg_ident.conf", std::string("archive_mode=off"),
        std::string("hot_standby=off"), std::string("primary_conninfo="),
        std::string("primary_slot_name="), std::string("synchronous_standby_names="),
        std::string("ssl=off"), std::string("logging_collector=off"),
        std::string("log_destination=stderr"), std::string("shared_buffers=128MB"),
        std::string("huge_pages=off"), std::string("cluster_name=cairn-drill")}) {
    argv.push_back("-c");
    argv.push_back(c);
  }
  core::UniqueFd devnull(open("/dev/null", O_WRONLY | O_CLOEXEC));
  core::ProcessOptions po;
  po.capture_stdout = false;
  po.stdout_fd = devnull.get();
  po.new_process_group = true;
  po.uid = id.first;
  po.gid = id.second;
  ASSIGN_OR_RETURN(auto proc, core::Subprocess::start(argv, po));
  s->proc_ = std::move(proc);
  return s;
}

ScratchServer::~ScratchServer() {
  if (!proc_ || !proc_->running()) return;
  proc_->signal(SIGQUIT);  // immediate shutdown: the copy is thrown away
  for (int i = 0; i < 50 && proc_->running(); i++) std::this_thread::sleep_for(100ms);
  proc_.reset();  // SIGKILLs the group if it is still there, and reaps
}

std::string ScratchServer::dsn(const std::string& dbname) const {
  return "host=" + conninfo_value(socket_dir_) + " port=" + std::to_string(port_) +
         " user=" + conninfo_value(user_) + " dbname=" + conninfo_value(dbname) +
         " connect_timeout=10";
}

std::vector<std::string> ScratchServer::client_env(const std::string& dbname) const {
  return {"PGHOST=" + socket_dir_, "PGPORT=" + std::to_string(port_), "PGUSER=" + user_,
          "PGDATABASE=" + dbname};
}

std::string ScratchServer::log_tail() {
  std::string t = proc_ ? proc_->stderr_tail() : "";
  if (t.size() > 1500) t = "..." + t.substr(t.size() - 1500);
  return t;
}

core::Status ScratchServer::wait_ready(std::chrono::seconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string conninfo = dsn("postgres");
  while (std::chrono::steady_clock::now() < deadline) {
    if (PQping(conninfo.c_str()) == PQPING_OK) return {};
    if (!proc_->running()) {
      (void)proc_->wait();
      return core::io_error("the scratch PostgreSQL server stopped before it was ready:\n" +
                            log_tail());
    }
    std::this_thread::sleep_for(100ms);
  }
  return core::io_error("the scratch PostgreSQL server was not ready within " +
                        std::to_string(timeout.count()) + "s:\n" + log_tail());
}

core::Status ScratchServer::stop() {
  if (!proc_->running()) return proc_->wait();
  proc_->signal(SIGINT);  // fast shutdown: a clean stop that pg_checksums accepts
  core::Watchdog dog(proc_, 120s);
  core::Status st = proc_->wait();
  dog.disarm();
  return st;
}

core::Status init_scratch_cluster(const std::string& data_dir,
                                  const std::string& configured_bindir) {
  std::string bindir = configured_bindir;
  if (bindir.empty()) {
    int best = 0;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator("/usr/lib/postgresql", ec)) {
      int v = std::atoi(e.path().filename().c_str());
      if (v > best && fs::exists(e.path() / "bin/initdb", ec)) best = v;
    }
    if (best > 0) bindir = "/usr/lib/postgresql/" + std::to_string(best) + "/bin";
  }
  auto id = server_identity(data_dir);
  core::ProcessOptions po;
  po.uid = id.first;
  po.gid = id.second;
  po.capture_stdout = true;
  auto out =
      core::run_and_capture({tool_path(bindir, "initdb"), "--pgdata=" + data_dir, "--auth=trust",
                             "--encoding=UTF8", "--no-sync", "--no-instructions"},
                            po);
  if (!out.ok())
    return core::io_error("initdb of the scratch cluster failed: " + out.status().message());
  return {};
}

void stop_stale_server(const std::string& data_dir) {
  std::ifstream f(data_dir + "/postmaster.pid");
  pid_t pid = 0;
  if (!(f >> pid) || pid <= 0 || !process_is_postgres(pid)) return;
  ::kill(pid, SIGQUIT);
  for (int i = 0; i < 50 && alive(pid); i++) std::this_thread::sleep_for(100ms);
  ::kill(-pid, SIGKILL);  // the postmaster leads its process group (ScratchServer starts it so)
  ::kill(pid, SIGKILL);
}

}  // namespace cairn::engines::postgres
