// Connections to a MariaDB server through its client tools: the private
// options file that carries the credentials, and SQL through `mariadb`.
#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/file.h"
#include "core/process.h"
#include "engines/mariadb/mariadb.h"

namespace cairn::engines::mariadb {

namespace fs = std::filesystem;

std::string Connection::describe() const {
  if (!socket.empty()) return "socket " + socket;
  return fmt::format("{}:{}", host.empty() ? "localhost" : host, port > 0 ? port : 3306);
}

core::Result<Connection> connection_for(const policy::EngineSpec& e) {
  Connection c;
  ASSIGN_OR_RETURN(c.socket, policy::expand_env(e.socket));
  ASSIGN_OR_RETURN(c.host, policy::expand_env(e.host));
  ASSIGN_OR_RETURN(c.user, policy::expand_env(e.user));
  ASSIGN_OR_RETURN(c.password, policy::expand_env(e.password));
  c.port = e.port;
  if (!e.password_file.empty()) {
    ASSIGN_OR_RETURN(std::string file, policy::expand_env(e.password_file));
    std::ifstream in(file);
    if (!in) return core::errno_status(errno, "password_file " + file);
    std::getline(in, c.password);
    if (!c.password.empty() && c.password.back() == '\r') c.password.pop_back();
  }
  if (c.socket.empty() && c.host.empty()) c.socket = "/run/mysqld/mysqld.sock";
  return c;
}

namespace {

// Option file values are quoted; backslash escapes keep any byte intact.
std::string option_value(const std::string& v) {
  std::string out = "\"";
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out + "\"";
}

}  // namespace

core::Result<std::unique_ptr<ClientOptions>> ClientOptions::create(const Connection& conn) {
  std::unique_ptr<ClientOptions> o(new ClientOptions());
  std::string tmpl = (fs::temp_directory_path() / "cairn-mariadb.XXXXXX").string();
  if (!mkdtemp(tmpl.data())) return core::errno_status(errno, "temp folder for client options");
  o->dir_ = tmpl;
  o->path_ = o->dir_ + "/client.cnf";
  std::string text = "[client]\n";
  if (!conn.socket.empty()) {
    text += "socket=" + option_value(conn.socket) + "\n";
  } else {
    if (!conn.host.empty()) text += "host=" + option_value(conn.host) + "\n";
    if (conn.port > 0) text += fmt::format("port={}\n", conn.port);
    // "localhost" means the socket to the client library: be explicit.
    if (!conn.host.empty() && conn.host != "localhost") text += "protocol=TCP\n";
  }
  if (!conn.user.empty()) text += "user=" + option_value(conn.user) + "\n";
  if (!conn.password.empty()) text += "password=" + option_value(conn.password) + "\n";
  ASSIGN_OR_RETURN(core::UniqueFd fd,
                   core::open_file(o->path_, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  TRY(core::write_all(fd.get(), core::as_bytes(text), o->path_));
  TRY(fd.close(o->path_));
  return o;
}

ClientOptions::~ClientOptions() {
  std::error_code ec;
  if (!dir_.empty()) fs::remove_all(dir_, ec);
}

std::vector<std::string> ClientOptions::argv(const std::string& tool) const {
  return {tool, "--defaults-extra-file=" + path_};
}

core::Result<std::vector<std::vector<std::string>>> query(const Connection& conn,
                                                          const std::string& sql) {
  ASSIGN_OR_RETURN(auto opts, ClientOptions::create(conn));
  std::vector<std::string> argv = opts->argv("mariadb");
  argv.insert(argv.end(), {"--batch", "--skip-column-names", "--execute=" + sql});
  auto out = core::run_and_capture(argv);
  if (!out.ok())
    return core::Status(out.status().code(),
                        "MariaDB at " + conn.describe() + ": " + out.status().message());
  std::vector<std::vector<std::string>> rows;
  std::istringstream in(*out);
  for (std::string line; std::getline(in, line);) {
    std::vector<std::string> cols;
    size_t start = 0;
    for (;;) {
      size_t tab = line.find('\t', start);
      cols.push_back(
          line.substr(start, tab == std::string::npos ? std::string::npos : tab - start));
      if (tab == std::string::npos) break;
      start = tab + 1;
    }
    rows.push_back(std::move(cols));
  }
  return rows;
}

}  // namespace cairn::engines::mariadb
