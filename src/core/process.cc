#include "core/process.h"

#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>

extern char** environ;

namespace cairn::core {

namespace {

constexpr size_t kStderrTail = 4096;

// argv/envp arrays are built before fork(): the child of a threaded parent
// may only call async-signal-safe functions until exec.
std::vector<char*> c_strings(const std::vector<std::string>& v) {
  std::vector<char*> out;
  for (const auto& s : v) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

std::vector<std::string> merged_env(const std::vector<std::string>& extra,
                                    const std::vector<std::string>& unset) {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    std::string entry = *e;
    std::string name = entry.substr(0, entry.find('='));
    bool overridden = std::find(unset.begin(), unset.end(), name) != unset.end();
    for (const auto& x : extra) overridden |= x.compare(0, name.size() + 1, name + "=") == 0;
    if (!overridden) env.push_back(std::move(entry));
  }
  env.insert(env.end(), extra.begin(), extra.end());
  return env;
}

// Process groups of running children, for the termination signal handler
// (which may only touch lock-free atomics).
constexpr int kMaxGroups = 256;
std::atomic<pid_t> g_groups[kMaxGroups];

void register_group(pid_t pgid) {
  for (auto& slot : g_groups) {
    pid_t empty = 0;
    if (slot.compare_exchange_strong(empty, pgid)) return;
  }
}

void unregister_group(pid_t pgid) {
  for (auto& slot : g_groups) {
    pid_t expected = pgid;
    if (slot.compare_exchange_strong(expected, 0)) return;
  }
}

// A registered CleanupOnTermination: the handler hands the signal to the
// watcher thread through this pipe instead of dying at once.
std::atomic<bool> g_cleanup_armed{false};
int g_cleanup_pipe[2] = {-1, -1};
std::mutex g_cleanup_mu;
std::function<void()> g_cleanup;  // guarded by g_cleanup_mu

void on_termination(int sig) {
  for (auto& slot : g_groups) {
    pid_t g = slot.load();
    if (g > 0) ::kill(-g, SIGTERM);
  }
  if (g_cleanup_armed.load()) {
    unsigned char s = static_cast<unsigned char>(sig);
    if (::write(g_cleanup_pipe[1], &s, 1) == 1) return;
  }
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

void cleanup_watcher() {
  for (;;) {
    unsigned char sig = 0;
    ssize_t n = ::read(g_cleanup_pipe[0], &sig, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n != 1) return;
    {
      std::lock_guard lock(g_cleanup_mu);
      if (g_cleanup) g_cleanup();
    }
    ::signal(sig, SIG_DFL);
    ::raise(sig);
  }
}

}  // namespace

void forward_termination_signals() {
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) {
    struct sigaction sa {};
    sa.sa_handler = on_termination;
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, nullptr);
  }
}

CleanupOnTermination::CleanupOnTermination(std::function<void()> cleanup) {
  static std::once_flag started;
  std::call_once(started, [] {
    if (pipe2(g_cleanup_pipe, O_CLOEXEC) == 0) std::thread(cleanup_watcher).detach();
  });
  std::lock_guard lock(g_cleanup_mu);
  g_cleanup = std::move(cleanup);
  g_cleanup_armed = g_cleanup_pipe[1] >= 0;
}

CleanupOnTermination::~CleanupOnTermination() {
  g_cleanup_armed = false;
  std::lock_guard lock(g_cleanup_mu);
  g_cleanup = nullptr;
}

Result<std::unique_ptr<Subprocess>> Subprocess::start(const std::vector<std::string>& argv,
                                                      const ProcessOptions& options) {
  if (argv.empty()) return invalid_argument("no command to run");
  int out[2] = {-1, -1}, err[2];
  if (options.capture_stdout && pipe2(out, O_CLOEXEC) != 0) return errno_status(errno, "pipe");
  // A 1 MiB pipe instead of 64 KiB: a dump tool and cairn then switch places
  // on the CPU 16 times less often (best effort: the limit may be lower).
  if (out[0] >= 0) (void)fcntl(out[0], F_SETPIPE_SZ, 1 << 20);
  if (pipe2(err, O_CLOEXEC) != 0) {
    int e = errno;
    if (out[0] >= 0) close(out[0]), close(out[1]);
    return errno_status(e, "pipe");
  }
  std::vector<std::string> env = merged_env(options.env, options.unset_env);
  std::vector<char*> args = c_strings(argv), envp = c_strings(env);
  pid_t pid = fork();
  if (pid < 0) {
    int e = errno;
    if (out[0] >= 0) close(out[0]), close(out[1]);
    close(err[0]), close(err[1]);
    return errno_status(e, "fork");
  }
  if (pid == 0) {
    int in = options.stdin_fd >= 0 ? options.stdin_fd : open("/dev/null", O_RDONLY);
    if (in >= 0) dup2(in, 0);
    if (out[1] >= 0)
      dup2(out[1], 1);
    else if (options.stdout_fd >= 0)
      dup2(options.stdout_fd, 1);
    dup2(err[1], 2);
    ::signal(SIGPIPE, SIG_DFL);
    sigset_t none;  // a parent that waits for signals in a thread blocks them; the child must not
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    if (options.new_process_group) setpgid(0, 0);
    if ((options.gid >= 0 &&
         (setgroups(0, nullptr) != 0 || setgid(static_cast<gid_t>(options.gid)) != 0)) ||
        (options.uid >= 0 && setuid(static_cast<uid_t>(options.uid)) != 0)) {
      const char* msg = strerror(errno);
      (void)!write(2, "cannot switch user: ", 20);
      (void)!write(2, msg, strlen(msg));
      _exit(126);
    }
    execvpe(args[0], args.data(), envp.data());
    const char* msg = strerror(errno);
    (void)!write(2, "cannot run ", 11);
    (void)!write(2, args[0], strlen(args[0]));
    (void)!write(2, ": ", 2);
    (void)!write(2, msg, strlen(msg));
    _exit(127);
  }
  auto p = std::unique_ptr<Subprocess>(new Subprocess());
  p->name_ = argv[0];
  p->forward_stderr_ = options.forward_stderr;
  p->pid_ = pid;
  p->sig_pid_ = pid;
  p->group_ = options.new_process_group;
  // Also from the parent, so a signal sent right after start() finds the group.
  if (options.new_process_group) {
    setpgid(pid, pid);
    register_group(pid);
  }
  if (out[1] >= 0) close(out[1]);
  p->out_fd_ = out[0];
  close(err[1]);
  p->err_fd_ = err[0];
  bool forward = options.forward_stderr;
  Subprocess* self = p.get();
  p->err_reader_ = std::thread([self, forward] {
    char buf[4096];
    for (;;) {
      ssize_t n = ::read(self->err_fd_, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      if (forward) (void)!::write(2, buf, static_cast<size_t>(n));
      std::lock_guard lock(self->err_mu_);
      self->err_tail_.append(buf, static_cast<size_t>(n));
      if (self->err_tail_.size() > 2 * kStderrTail)
        self->err_tail_.erase(0, self->err_tail_.size() - kStderrTail);
    }
  });
  return p;
}

Subprocess::~Subprocess() {
  if (pid_ > 0) {
    signal(SIGKILL);
    (void)wait();
  }
  if (err_reader_.joinable()) err_reader_.join();
  if (err_fd_ >= 0) close(err_fd_);
}

Result<size_t> Subprocess::read(uint8_t* buf, size_t cap) {
  if (out_fd_ < 0) return size_t{0};
  for (;;) {
    ssize_t r = ::read(out_fd_, buf, cap);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return errno_status(errno, "reading the output of " + name_);
    bytes_read_ += static_cast<uint64_t>(r);
    return static_cast<size_t>(r);
  }
}

std::string Subprocess::stderr_tail() {
  std::lock_guard lock(err_mu_);
  std::string t =
      err_tail_.size() > kStderrTail ? err_tail_.substr(err_tail_.size() - kStderrTail) : err_tail_;
  while (!t.empty() && (t.back() == '\n' || t.back() == ' ')) t.pop_back();
  return t;
}

void Subprocess::signal(int sig) {
  std::lock_guard lock(sig_mu_);
  if (sig_pid_ <= 0) return;
  if (group_)
    ::kill(-sig_pid_, sig);
  else
    ::kill(sig_pid_, sig);
}

bool Subprocess::running() {
  if (pid_ <= 0) return false;
  siginfo_t info{};
  if (waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) != 0) return false;
  return info.si_pid == 0;
}

Status Subprocess::wait() {
  if (pid_ <= 0) return invalid_argument(name_ + " was already waited for");
  if (out_fd_ >= 0) {
    close(out_fd_);
    out_fd_ = -1;
  }
  // Wait without reaping first: until the zombie is reaped its pid cannot be
  // reused, so a concurrent signal() never hits an unrelated process.
  siginfo_t info;
  while (waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOWAIT) < 0 && errno == EINTR) {
  }
  {
    std::lock_guard lock(sig_mu_);
    sig_pid_ = -1;
  }
  if (group_) unregister_group(pid_);
  int status = 0;
  while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
  exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  if (err_reader_.joinable()) err_reader_.join();
  std::string tail = stderr_tail();
  std::string detail = tail.empty() || forward_stderr_ ? "" : ":\n" + tail;
  if (WIFSIGNALED(status))
    return io_error(name_ + " was killed by signal " + std::to_string(WTERMSIG(status)) + detail);
  if (WEXITSTATUS(status) != 0)
    return io_error(name_ + " exited with status " + std::to_string(WEXITSTATUS(status)) + detail);
  return {};
}

Watchdog::Watchdog(std::shared_ptr<Subprocess> proc, std::chrono::seconds timeout,
                   std::chrono::seconds kill_grace)
    : proc_(std::move(proc)) {
  thread_ = std::thread([this, timeout, kill_grace] {
    std::unique_lock lock(mu_);
    auto stop = [this] { return done_ || cancelled_; };
    if (timeout.count() > 0) {
      cv_.wait_for(lock, timeout, stop);
    } else {
      cv_.wait(lock, stop);
    }
    if (done_) return;
    fired_ = true;
    proc_->signal(SIGTERM);
    if (cv_.wait_for(lock, kill_grace, [this] { return done_; })) return;
    proc_->signal(SIGKILL);
  });
}

Watchdog::~Watchdog() { disarm(); }

void Watchdog::cancel() {
  {
    std::lock_guard lock(mu_);
    cancelled_ = true;
  }
  cv_.notify_all();
}

void Watchdog::disarm() {
  {
    std::lock_guard lock(mu_);
    done_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool Watchdog::fired() {
  std::lock_guard lock(mu_);
  return fired_;
}

bool Watchdog::timed_out() {
  std::lock_guard lock(mu_);
  return fired_ && !cancelled_;
}

Result<std::string> run_and_capture(const std::vector<std::string>& argv,
                                    const ProcessOptions& options) {
  ASSIGN_OR_RETURN(auto p, Subprocess::start(argv, options));
  std::string out;
  uint8_t buf[8192];
  for (;;) {
    ASSIGN_OR_RETURN(size_t n, p->read(buf, sizeof buf));
    if (n == 0) break;
    out.append(reinterpret_cast<char*>(buf), n);
  }
  TRY(p->wait());
  return out;
}

}  // namespace cairn::core
