// core::Subprocess options and termination handling: running(), stdout_fd,
// uid/gid, and CleanupOnTermination running before a signal ends the process.
#include "core/process.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <pwd.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

namespace cairn::core {
namespace {

namespace fs = std::filesystem;

std::string temp_dir() {
  std::string tmpl = (fs::temp_directory_path() / "cairn-process-test.XXXXXX").string();
  EXPECT_NE(mkdtemp(tmpl.data()), nullptr);
  return tmpl;
}

TEST(Subprocess, RunningUntilTheChildExits) {
  ProcessOptions po;
  po.capture_stdout = false;
  auto p = Subprocess::start({"sleep", "0.3"}, po);
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_TRUE((*p)->running());
  for (int i = 0; i < 100 && (*p)->running(); i++)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_FALSE((*p)->running());
  EXPECT_TRUE((*p)->wait().ok());
  EXPECT_FALSE((*p)->running());
}

TEST(Subprocess, StdoutToAFile) {
  std::string dir = temp_dir();
  std::string path = dir + "/out.txt";
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0);
  ProcessOptions po;
  po.capture_stdout = false;
  po.stdout_fd = fd;
  auto p = Subprocess::start({"echo", "to the file"}, po);
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE((*p)->wait().ok());
  close(fd);
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, "to the file");
  fs::remove_all(dir);
}

TEST(Subprocess, RunsAsAnotherUser) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root";
  struct passwd* nobody = getpwnam("nobody");
  if (!nobody) GTEST_SKIP() << "no user nobody";
  ProcessOptions po;
  po.uid = static_cast<int>(nobody->pw_uid);
  po.gid = static_cast<int>(nobody->pw_gid);
  auto out = run_and_capture({"id", "-u"}, po);
  ASSERT_TRUE(out.ok()) << out.status().message();
  EXPECT_EQ(*out, std::to_string(nobody->pw_uid) + "\n");
}

// In a forked child: register a cleanup that writes a file, then SIGTERM
// ourselves. The cleanup must have run and the child must die of the signal.
TEST(CleanupOnTermination, RunsBeforeTheSignalEndsTheProcess) {
  std::string dir = temp_dir();
  std::string mark = dir + "/cleaned";
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    forward_termination_signals();
    CleanupOnTermination guard([mark] { std::ofstream(mark) << "done"; });
    ::kill(getpid(), SIGTERM);
    for (int i = 0; i < 500; i++) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    _exit(0);  // not reached: the watcher re-raises SIGTERM
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFSIGNALED(status));
  if (WIFSIGNALED(status)) {
    EXPECT_EQ(WTERMSIG(status), SIGTERM);
  }
  EXPECT_TRUE(fs::exists(mark));
  fs::remove_all(dir);
}

TEST(CleanupOnTermination, GoneAfterItsScope) {
  std::string dir = temp_dir();
  std::string mark = dir + "/cleaned";
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    forward_termination_signals();
    {
      CleanupOnTermination guard([mark] { std::ofstream(mark) << "done"; });
    }
    ::kill(getpid(), SIGTERM);
    // The watcher thread takes the signal and re-raises it; wait for that
    // (a bare _exit here raced it and sometimes won under load).
    for (int i = 0; i < 500; i++) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFSIGNALED(status));
  EXPECT_FALSE(fs::exists(mark));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace cairn::core
