#include "cli/context.h"

#include <fmt/format.h>
#include <pthread.h>
#include <spdlog/spdlog.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "core/bytes.h"
#include "policy/duration.h"
#include "storage/backend.h"
#include "storage/prefetch_backend.h"

namespace cairn::cli {

int exit_code_for(const core::Status& st) {
  switch (st.code()) {
    case core::Code::kOk: return kExitOk;
    case core::Code::kWrongPassword: return kExitWrongPassword;
    case core::Code::kLocked: return kExitLocked;
    case core::Code::kInvalidArgument: return kExitUsage;
    default: return kExitFailure;
  }
}

int Context::fail(const core::Status& st) const {
  if (json) {
    std::cout << json_text({{"error", st.message()}, {"code", core::code_name(st.code())}}) << std::endl;
  }
  std::cerr << "cairn: " << st.message() << std::endl;
  return exit_code_for(st);
}

void Context::run(const std::function<core::Status()>& body) {
  core::Status st;
  try {
    st = body();
  } catch (const std::exception& e) {
    st = core::Status(core::Code::kIOError, std::string("internal error: ") + e.what());
  }
  if (st.ok()) return;
  int code = fail(st);
  if (exit_code == kExitOk || exit_code == kExitWarnings) exit_code = code;
}

core::Result<std::unique_ptr<repo::Lock>> Context::shared_lock(repo::Repository& repo) const {
  if (no_lock) return std::unique_ptr<repo::Lock>();
  return lock(repo, repo::LockMode::kShared);
}

bool Context::show_progress() const { return !quiet && !json && !no_progress && isatty(2); }

std::string json_text(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void Context::print_json(const nlohmann::json& j) const { std::cout << json_text(j) << std::endl; }

core::Result<std::unique_ptr<storage::Backend>> Context::open_backend() const {
  if (repo.empty()) return core::invalid_argument("no repository given: use --repo or CAIRN_REPOSITORY");
  // --- rest: plain HTTP follows the same rule as s3:http:// (write-only agents) ---
  if (repo.rfind("rest:http://", 0) == 0) {
    if (!insecure_http)
      return core::invalid_argument("rest:http:// sends the token and the repository's objects unencrypted: "
                                    "use https, or --insecure-http for a trusted local network");
    if (!quiet)
      std::cerr << "cairn: warning: --insecure-http: traffic to the cairn server is not encrypted in transit "
                   "(backups stay encrypted at rest)\n";
  }
  // --- end rest ---
  if (repo.rfind("s3:http://", 0) == 0) {
    if (!insecure_http)
      return core::invalid_argument("s3:http:// sends requests and credentials' signatures unencrypted: use https, "
                                    "or --insecure-http for a trusted local network");
    if (!quiet)
      std::cerr << "cairn: warning: --insecure-http: traffic to the object store is not encrypted in transit "
                   "(backups stay encrypted at rest)\n";
  }
  if (s3_path_style && s3_virtual_host)
    return core::invalid_argument("--s3-path-style and --s3-virtual-host exclude each other");
  storage::OpenOptions options;
  options.ca_file = cacert;
  options.insecure_tls = insecure_tls;
  options.s3_addressing = s3_path_style     ? storage::S3Addressing::kPath
                          : s3_virtual_host ? storage::S3Addressing::kVirtualHost
                                            : storage::S3Addressing::kAuto;
  options.s3_connections = s3_connections;
  options.s3_multipart_threshold = s3_multipart_threshold;
  options.s3_part_size = s3_part_size;
  if (insecure_tls && repo.rfind("s3:https://", 0) == 0) {
    // Loud on purpose and on every run, even with --quiet: anyone on the path
    // can now read the credentials' signatures and swap the server.
    std::cerr << "cairn: WARNING: --insecure-tls: the S3 server's TLS certificate is NOT verified; "
                 "anyone between here and the server can impersonate it. Use --cacert FILE for a "
                 "private CA instead.\n";
  }
  return storage::open_backend(repo, options);
}

core::Result<std::unique_ptr<repo::Repository>> Context::open_repository(bool load_index,
                                                                         ReadAhead read_ahead) {
  ASSIGN_OR_RETURN(auto backend, open_backend());
  std::shared_ptr<storage::Backend> shared(std::move(backend));
  ASSIGN_OR_RETURN(bool exists, shared->exists());
  if (!exists) {
    exit_code = kExitNoRepository;
    return core::not_found("no repository at " + repo + " (create one with cairn init)");
  }
  if (read_ahead == ReadAhead::kAuto)
    read_ahead = load_index ? ReadAhead::kIndexAndSnapshots : ReadAhead::kNone;
  std::shared_ptr<storage::PrefetchBackend> read_ahead_backend;
  if (read_ahead != ReadAhead::kNone) {
    // Index and snapshot files are immutable, so reading them before the
    // caller's lock is safe: it still lists them itself after locking.
    std::vector<storage::FileType> types{storage::FileType::kSnapshot};
    if (read_ahead == ReadAhead::kIndexAndSnapshots)
      types.insert(types.begin(), storage::FileType::kIndex);
    read_ahead_backend = std::make_shared<storage::PrefetchBackend>(shared, std::move(types));
    shared = read_ahead_backend;
  }
  std::string password;
  if (!key_file.empty()) {
    ASSIGN_OR_RETURN(password, read_key_file(key_file));
  } else {
    ASSIGN_OR_RETURN(password, read_password(false));
  }
  auto r = repo::Repository::open(shared, password);
  if (!r.ok()) return r.status();
  if (read_ahead_backend && (*r)->is_agent()) read_ahead_backend->cancel();
  auto c = repo::parse_compression(compression.empty() ? default_compression : compression);
  if (!c) return core::invalid_argument("--compression must be off, fast, auto or max");
  (*r)->set_compression(*c);
  if (load_index) TRY(this->load_index(**r));
  return r;
}

core::Status Context::load_index(repo::Repository& repo) const {
  std::vector<std::string> problems;
  TRY(repo.load_index(&problems));
  for (const auto& p : problems) std::cerr << "cairn: warning: skipping unreadable " << p << "\n";
  return {};
}

static std::string trim_newline(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

static core::Result<std::string> prompt(const char* text) {
  std::cerr << text << std::flush;
  struct termios old, quiet;
  tcgetattr(0, &old);
  quiet = old;
  quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
  tcsetattr(0, TCSANOW, &quiet);
  std::string line;
  std::getline(std::cin, line);
  tcsetattr(0, TCSANOW, &old);
  std::cerr << "\n";
  return trim_newline(line);
}

core::Result<std::string> read_key_file(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  if (!in) return core::errno_status(errno, "key file " + path);
  std::getline(in, line);
  line = trim_newline(line);
  if (line.size() < 40)
    return core::invalid_argument("key file " + path +
                                  " holds no key (make one with cairn key add --new-key-file)");
  return line;
}

core::Result<std::string> read_password(bool confirm) {
  if (const char* p = getenv("CAIRN_PASSWORD"); p && *p) return std::string(p);
  if (const char* f = getenv("CAIRN_PASSWORD_FILE"); f && *f) {
    std::ifstream in(f);
    if (!in) return core::errno_status(errno, std::string("CAIRN_PASSWORD_FILE ") + f);
    std::string line;
    std::getline(in, line);
    line = trim_newline(line);
    if (line.empty()) return core::invalid_argument(std::string("password file ") + f + " is empty");
    return line;
  }
  if (const char* c = getenv("CAIRN_PASSWORD_COMMAND"); c && *c) {
    FILE* pipe = popen(c, "r");
    if (!pipe) return core::io_error("CAIRN_PASSWORD_COMMAND could not be started");
    std::string out;
    char buf[256];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, pipe)) > 0) out.append(buf, n);
    int rc = pclose(pipe);
    if (rc != 0) return core::io_error("CAIRN_PASSWORD_COMMAND failed (exit status " + std::to_string(WEXITSTATUS(rc)) + ")");
    out = trim_newline(out);
    if (out.empty()) return core::invalid_argument("CAIRN_PASSWORD_COMMAND printed no password");
    return out;
  }
  if (!isatty(0))
    return core::invalid_argument("no password: set CAIRN_PASSWORD, CAIRN_PASSWORD_FILE or CAIRN_PASSWORD_COMMAND");
  ASSIGN_OR_RETURN(std::string pw, prompt("enter password for repository: "));
  if (confirm) {
    ASSIGN_OR_RETURN(std::string again, prompt("enter password again: "));
    if (again != pw) return core::invalid_argument("passwords do not match");
  }
  if (pw.empty()) return core::invalid_argument("empty password");
  return pw;
}

ProgressLine::ProgressLine(bool enabled, std::function<std::string(double)> render)
    : enabled_(enabled), render_(std::move(render)) {
  if (!enabled_) return;
  thread_ = std::thread([this] {
    auto start = std::chrono::steady_clock::now();
    while (!stop_) {
      double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      std::string line = render_(el);
      std::cerr << "\r\033[K" << line << std::flush;
      for (int i = 0; i < 5 && !stop_; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    std::cerr << "\r\033[K" << std::flush;
  });
}

ProgressLine::~ProgressLine() { stop(); }

void ProgressLine::stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

std::string eta(uint64_t done, uint64_t total, double elapsed) {
  if (done == 0 || total <= done || elapsed <= 0) return "";
  double rate = done / elapsed;
  return "ETA " + core::format_duration((total - done) / rate);
}

void add_latest_filter(CLI::App* cmd, std::string& service, std::string& host) {
  cmd->add_option("--service", service, "with 'latest': the newest snapshot of this service");
  cmd->add_option("--host", host, "with 'latest': the newest snapshot of this host");
}

std::pair<std::string, std::string> split_snapshot_path(const std::string& arg) {
  auto colon = arg.find(':');
  if (colon == std::string::npos) return {arg, "/"};
  return {arg.substr(0, colon), arg.substr(colon + 1).empty() ? "/" : arg.substr(colon + 1)};
}

nlohmann::json snapshot_json(const repo::SnapshotRef& s) {
  nlohmann::json j = s.snapshot.to_json();
  j["id"] = s.id;
  j["short_id"] = s.id.substr(0, 8);
  if (s.written_by_agent) j["written_by_agent"] = true;  // write-only agents (docs/security.md)
  return j;
}

core::Result<std::unique_ptr<repo::Lock>> Context::lock(repo::Repository& repo, repo::LockMode mode) const {
  std::chrono::seconds budget{0};
  if (!retry_lock.empty()) {
    auto d = policy::parse_duration(retry_lock);
    if (!d.ok()) return core::invalid_argument("--retry-lock: " + d.status().message());
    budget = *d;
  }
  auto deadline = std::chrono::steady_clock::now() + budget;
  std::chrono::milliseconds wait{500};
  for (;;) {
    auto l = repo::Lock::acquire(repo, mode);
    if (l.ok() || l.status().code() != core::Code::kLocked || std::chrono::steady_clock::now() + wait > deadline)
      return l;
    std::this_thread::sleep_for(wait);
    wait = std::min<std::chrono::milliseconds>(wait * 2, std::chrono::seconds(5));
  }
}

core::Result<policy::Catalog> Context::load_policy() const {
  policy::LoadResult r = policy::load_catalog(policy::find_config(config));
  std::string errors;
  for (const auto& d : r.diagnostics) {
    if (d.severity == policy::Diagnostic::Severity::kWarning) {
      if (!quiet) std::cerr << d.to_string() << "\n";
    } else {
      errors += (errors.empty() ? "" : "\n") + d.to_string();
    }
  }
  if (!errors.empty()) return core::invalid_argument("the policy file has errors:\n" + errors);
  return std::move(r.catalog);
}

core::Status Context::apply_service_policy(const std::string& service, bool required) {
  bool configured = !config.empty() || getenv("CAIRN_CONFIG") || access("cairn.yaml", R_OK) == 0;
  if (!configured && !required) return {};
  ASSIGN_OR_RETURN(auto catalog, load_policy());
  auto svc = find_service(catalog, service);
  if (!svc.ok()) return required ? svc.status() : core::Status();
  return use_service_repository(**svc);
}

std::string self_exe() {
  std::error_code ec;
  auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? "cairn" : p.string();
}

core::Result<const policy::Service*> find_service(const policy::Catalog& catalog, const std::string& name) {
  if (const policy::Service* s = catalog.find(name)) return s;
  std::vector<std::string> names;
  for (const auto& s : catalog.services) names.push_back(s.name);
  std::string hint = policy::did_you_mean(name, names);
  return core::invalid_argument("no service \"" + name + "\" in " + catalog.path +
                                (hint.empty() ? "" : " (did you mean \"" + hint + "\"?)"));
}

core::Status Context::use_service_repository(const policy::Service& service) {
  const policy::RepositoryRef& r = service.repository;
  if (repo_from_flag && repo_from_flag()) return {};
  if (!secrets_before_policy) {
    secrets_before_policy.emplace();
    for (const char* v : {"CAIRN_PASSWORD", "CAIRN_PASSWORD_FILE", "CAIRN_PASSWORD_COMMAND"}) {
      const char* value = getenv(v);
      secrets_before_policy->emplace_back(v, value ? std::optional<std::string>(value) : std::nullopt);
    }
    key_file_before_policy = key_file;
  } else {
    for (const auto& [name, value] : *secrets_before_policy) {
      if (value) setenv(name.c_str(), value->c_str(), 1);
      else unsetenv(name.c_str());
    }
    key_file = key_file_before_policy;
  }
  repo = r.location;
  if (cacert.empty()) cacert = r.cacert;
  // The policy's key source replaces whatever the environment offers, so a
  // service never opens its repository with another service's password.
  auto only = [](const char* name, const std::string& value) {
    for (const char* v : {"CAIRN_PASSWORD", "CAIRN_PASSWORD_FILE", "CAIRN_PASSWORD_COMMAND"}) unsetenv(v);
    setenv(name, value.c_str(), 1);
  };
  if (!r.key_file.empty()) {
    key_file = r.key_file;
  } else if (!r.password_file.empty()) {
    key_file.clear();
    only("CAIRN_PASSWORD_FILE", r.password_file);
  } else if (!r.password_command.empty()) {
    key_file.clear();
    only("CAIRN_PASSWORD_COMMAND", r.password_command);
  }
  return {};
}

std::vector<std::string> job_args(const Context& ctx) {
  std::vector<std::string> out;
  if (!ctx.cacert.empty()) out.insert(out.end(), {"--cacert", ctx.cacert});
  if (ctx.insecure_tls) out.push_back("--insecure-tls");
  if (ctx.insecure_http) out.push_back("--insecure-http");
  if (ctx.s3_path_style) out.push_back("--s3-path-style");
  if (ctx.s3_virtual_host) out.push_back("--s3-virtual-host");
  if (ctx.s3_connections != Context{}.s3_connections)
    out.insert(out.end(), {"--s3-connections", std::to_string(ctx.s3_connections)});
  if (ctx.s3_multipart_threshold != 0)
    out.insert(out.end(), {"--s3-multipart-threshold", std::to_string(ctx.s3_multipart_threshold)});
  if (ctx.s3_part_size != 0) out.insert(out.end(), {"--s3-part-size", std::to_string(ctx.s3_part_size)});
  return out;
}

sigset_t take_termination_signals(const Context& ctx) {
  sigset_t set;
  sigemptyset(&set);
  for (int s : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&set, s);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S%z %l %v");
  if (ctx.verbose) spdlog::set_level(spdlog::level::debug);
  return set;
}

core::Status run_until_signalled(const sigset_t& set, const std::function<core::Status()>& run,
                                 const std::function<void()>& stop, const std::function<void()>& reload) {
  std::thread signals([&set, &stop, &reload] {
    for (;;) {
      int sig = 0;
      if (sigwait(&set, &sig) != 0) continue;
      if (sig == SIGHUP) {
        spdlog::info("SIGHUP: reloading the policy");
        reload();
        continue;
      }
      spdlog::info("{}: shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
      stop();
      return;
    }
  });
  core::Status st = run();
  // run() returns only after stop(); if it failed early, wake the signal thread.
  if (!st.ok()) pthread_kill(signals.native_handle(), SIGTERM);
  signals.join();
  return st;
}

}  // namespace cairn::cli
