#include "storage/s3_fixture.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <random>
#include <sstream>
#include <string_view>
#include <thread>
#include <vector>

#ifndef CAIRN_SOURCE_DIR
#error "CAIRN_SOURCE_DIR must name the source tree (CMakeLists.txt defines it)"
#endif

namespace cairn::storage::s3test {

namespace fs = std::filesystem;

namespace {

bool is_executable(const std::string& path) { return ::access(path.c_str(), X_OK) == 0; }

std::string read_tail(const std::string& path, size_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  return s.size() > max_bytes ? s.substr(s.size() - max_bytes) : s;
}

// The port in s3rver's "S3rver listening on 127.0.0.1:PORT" line; 0 until
// the whole line is there.
int logged_port(const std::string& log) {
  const std::string marker = "S3rver listening on 127.0.0.1:";
  auto at = log.rfind(marker);
  if (at == std::string::npos) return 0;
  auto digits = at + marker.size();
  auto end = log.find('\n', digits);
  if (end == std::string::npos || end == digits) return 0;
  return std::atoi(log.substr(digits, end - digits).c_str());
}

}  // namespace

int closed_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

std::string unique_prefix() {
  static std::atomic<int> counter{0};
  static std::mt19937_64 rng{std::random_device{}()};
  char buf[64];
  std::snprintf(buf, sizeof buf, "t-%d-%d-%08x", static_cast<int>(::getpid()), counter++,
                static_cast<unsigned>(rng()));
  return buf;
}

std::string S3rver::find_binary() {
  if (const char* env = std::getenv("CAIRN_S3RVER"); env != nullptr && *env != '\0') {
    return is_executable(env) ? std::string(env) : std::string();
  }
  std::string local = std::string(CAIRN_SOURCE_DIR) + "/tools/node_modules/.bin/s3rver";
  return is_executable(local) ? local : std::string();
}

std::string s3rver_missing_message() {
  return "*** S3 TESTS SKIPPED: s3rver is not installed. Run scripts/install-s3rver (needs node "
         "and npm) or point CAIRN_S3RVER at an s3rver executable. ***";
}

// Runs a shell command (test setup only); true when it exits 0.
static bool run_quietly(const std::string& cmd) {
  int rc = std::system((cmd + " >/dev/null 2>&1").c_str());
  return rc == 0;
}

// A test CA and a server certificate for 127.0.0.1 / localhost in dir.
static bool make_test_certificates(const std::string& dir) {
  const std::string d = "'" + dir + "'";
  return run_quietly("cd " + d +
                     " && openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "
                     "'/CN=cairn test CA' -keyout ca.key -out ca.pem"
                     " -addext basicConstraints=critical,CA:TRUE"
                     " -addext keyUsage=critical,keyCertSign,cRLSign") &&
         run_quietly("cd " + d +
                     " && openssl req -newkey rsa:2048 -nodes -subj '/CN=localhost' "
                     "-keyout server.key -out server.csr") &&
         run_quietly("cd " + d +
                     " && printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                     "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > ext.cnf"
                     " && openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key "
                     "-CAcreateserial -days 2 -extfile ext.cnf -out server.pem");
}

S3Options S3rver::options(const std::string& prefix) const {
  S3Options o;
  o.ca_file = ca_file_;
  o.endpoint = endpoint();
  o.bucket = bucket_;
  o.prefix = prefix;
  o.access_key_id = kAccessKeyId;
  o.secret_access_key = kSecretAccessKey;
  o.max_attempts = 4;
  o.initial_backoff = std::chrono::milliseconds(20);
  o.max_backoff = std::chrono::milliseconds(200);
  o.max_total_backoff = std::chrono::milliseconds(1000);
  o.connect_timeout = std::chrono::milliseconds(2000);
  o.stall_timeout = std::chrono::seconds(20);
  return o;
}

S3Options S3rver::vhost_options(const std::string& prefix) const {
  S3Options o = options(prefix);
  o.endpoint = std::string(https_ ? "https" : "http") + "://s3.localhost:" + std::to_string(port_);
  o.addressing = S3Addressing::kVirtualHost;
  o.resolve = {bucket_ + ".s3.localhost:" + std::to_string(port_) + ":127.0.0.1"};
  return o;
}

std::unique_ptr<S3rver> S3rver::start(const std::string& bucket, Tls tls) {
  const std::string bin = find_binary();
  if (bin.empty()) {
    std::cerr << s3rver_missing_message() << "\n";
    return nullptr;
  }
  std::string tmpl = (fs::temp_directory_path() / "cairn-s3rver-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr) {
    std::cerr << "S3rver: mkdtemp failed\n";
    return nullptr;
  }
  std::unique_ptr<S3rver> server(new S3rver());
  server->bucket_ = bucket;
  server->dir_ = tmpl;
  server->data_dir_ = tmpl + "/data";
  fs::create_directories(server->data_dir_);
  const std::string log = tmpl + "/s3rver.log";
  if (tls == Tls::kOn) {
    if (!make_test_certificates(tmpl)) {
      std::cerr << "S3rver: openssl could not make the test certificates\n";
      return nullptr;
    }
    server->https_ = true;
    server->ca_file_ = tmpl + "/ca.pem";
  }

  // s3rver binds a port of its own choosing (-p 0) and logs it. A port picked
  // here could be taken by a parallel test's server before ours binds it; the
  // probe below would then talk to that server, whose data goes away with it.
  for (int attempt = 0; attempt < 3; ++attempt) {
    server->port_ = 0;
    ::truncate(log.c_str(), 0);  // no "listening" line from an earlier attempt
    std::vector<std::string> args = {bin, "-d", server->data_dir_, "-a", "127.0.0.1", "-p", "0",
                                     "--configure-bucket", bucket,
                                     // Virtual-host requests: "<bucket>.s3.localhost".
                                     "--service-endpoint", "localhost"};
    if (server->https_) {
      for (const char* a : {"--key", "server.key", "--cert", "server.pem"}) {
        args.push_back(a[0] == '-' ? std::string(a) : tmpl + "/" + a);
      }
    }
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    // s3rver makes ListObjectsV2 continuation tokens with DES, which OpenSSL 3
    // only has in its legacy provider: without it every truncated listing
    // fails with a 500.
    std::vector<std::string> env_strings;
    for (char** e = environ; *e != nullptr; ++e) {
      if (!std::string_view(*e).starts_with("NODE_OPTIONS=")) env_strings.emplace_back(*e);
    }
    // The preload makes a PUT answer only once the object is on disk (see
    // the script): s3rver alone is not read-after-write consistent.
    std::string node_options = "NODE_OPTIONS=--openssl-legacy-provider --require " +
                               std::string(CAIRN_SOURCE_DIR) + "/tests/tools/s3rver_durable_put.js";
    if (const char* old = std::getenv("NODE_OPTIONS"); old != nullptr && *old != '\0') {
      node_options += std::string(" ") + old;
    }
    env_strings.push_back(node_options);
    std::vector<char*> envp;
    for (auto& e : env_strings) envp.push_back(e.data());
    envp.push_back(nullptr);

    pid_t pid = ::fork();
    if (pid < 0) {
      std::cerr << "S3rver: fork failed\n";
      return nullptr;
    }
    if (pid == 0) {
      // Child: only async-signal-safe calls until exec. Dies with the test.
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
      }
      int devnull = ::open("/dev/null", O_RDONLY);
      if (devnull >= 0) ::dup2(devnull, 0);
      ::execve(argv[0], argv.data(), envp.data());
      ::_exit(127);
    }
    server->pid_ = pid;

    // Ready once it has logged its port and the bucket answers through the
    // real backend.
    std::optional<S3Backend> probe;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pid, &status, WNOHANG) == pid) {
        server->pid_ = -1;
        break;  // exited: try again
      }
      if (!probe) {
        server->port_ = logged_port(read_tail(log, 4096));
        if (server->port_ > 0) {
          S3Options probe_options = server->options("");
          probe_options.max_attempts = 1;
          probe.emplace(probe_options);
        }
      }
      if (probe && probe->create().ok()) return server;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    server->stop();
  }
  std::cerr << "S3rver: " << bin << " did not come up; its log ends with:\n"
            << read_tail(log, 2000) << "\n";
  return nullptr;
}

void S3rver::stop() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);
  for (int i = 0; i < 100; ++i) {
    int status = 0;
    pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_ || r < 0) {
      pid_ = -1;
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ::kill(pid_, SIGKILL);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
}

S3rver::~S3rver() {
  stop();
  std::error_code ec;
  if (!dir_.empty()) fs::remove_all(dir_, ec);
}

S3rver* shared_s3rver() {
  static std::unique_ptr<S3rver> server = S3rver::start();
  return server.get();
}

S3rver* shared_https_s3rver() {
  static std::unique_ptr<S3rver> server = S3rver::start("cairn-test", S3rver::Tls::kOn);
  return server.get();
}

}  // namespace cairn::storage::s3test
