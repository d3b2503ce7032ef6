// The hash-chained audit log on real files: every kind of tampering is
// detected and named by line.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/bytes.h"
#include "crypto/crypto.h"
#include "server/audit_log.h"
#include "unit/test_util.h"

namespace cairn::server {
namespace {

std::vector<std::string> lines_of(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> out;
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}
void write_lines(const std::string& path, const std::vector<std::string>& lines) {
  std::ofstream out(path, std::ios::trunc);
  for (const auto& l : lines) out << l << "\n";
}

AuditEntry entry(int i) {
  return {"alice", "restorer", "snapshot.download", "shop", "obj" + std::to_string(i), "ok", "127.0.0.1"};
}

std::string write_log(const testing::TempDir& dir, int n) {
  std::string path = dir / "audit.log";
  AuditLog log(path);
  for (int i = 0; i < n; i++) EXPECT_TRUE(log.append(entry(i)).ok());
  return path;
}

AuditVerification verify(const std::string& path) {
  auto v = verify_audit_log(path);
  EXPECT_TRUE(v.ok()) << v.status().to_string();
  return *v;
}

TEST(AuditLog, IntactChainVerifies) {
  testing::TempDir dir;
  std::string path = write_log(dir, 5);
  auto v = verify(path);
  EXPECT_TRUE(v.ok());
  EXPECT_EQ(v.entries, 5u);
  auto lines = lines_of(path);
  ASSERT_EQ(lines.size(), 5u);
  auto j = nlohmann::json::parse(lines[2]);
  EXPECT_EQ(j["seq"], 3);
  EXPECT_EQ(j["principal"], "alice");
  EXPECT_EQ(j["object"], "obj2");
  EXPECT_EQ(j["prev"], nlohmann::json::parse(lines[1])["hash"]);
}

TEST(AuditLog, EditedLineIsNamed) {
  testing::TempDir dir;
  std::string path = write_log(dir, 5);
  auto lines = lines_of(path);
  auto pos = lines[2].find("\"ok\"");
  ASSERT_NE(pos, std::string::npos);
  lines[2].replace(pos, 4, "\"no\"");
  write_lines(path, lines);
  auto v = verify(path);
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.problems[0].line, 3u);
  EXPECT_NE(v.problems[0].message.find("edited"), std::string::npos);
}

TEST(AuditLog, RehashedEditStillBreaksTheChain) {
  // An editor who recomputes the edited line's own hash is caught by the next line.
  testing::TempDir dir;
  std::string path = write_log(dir, 4);
  auto lines = lines_of(path);
  auto j = nlohmann::json::parse(lines[1]);
  j["result"] = "denied";
  j.erase("hash");
  std::string body = j.dump();
  // Recompute like the log does (SHA-256 of the entry without "hash").
  auto digest = crypto::sha256(core::as_bytes(body));
  j["hash"] = core::hex_encode(digest);
  lines[1] = j.dump();
  write_lines(path, lines);
  auto v = verify(path);
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.problems[0].line, 3u);
  EXPECT_NE(v.problems[0].message.find("chain broken"), std::string::npos);
}

TEST(AuditLog, RemovedLineIsNamed) {
  testing::TempDir dir;
  std::string path = write_log(dir, 5);
  auto lines = lines_of(path);
  lines.erase(lines.begin() + 1);
  write_lines(path, lines);
  auto v = verify(path);
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.problems[0].line, 2u);
  EXPECT_NE(v.problems[0].message.find("expected entry 2, found 3"), std::string::npos);
}

TEST(AuditLog, ReorderedLinesAreNamed) {
  testing::TempDir dir;
  std::string path = write_log(dir, 5);
  auto lines = lines_of(path);
  std::swap(lines[1], lines[2]);
  write_lines(path, lines);
  auto v = verify(path);
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.problems[0].line, 2u);
}

TEST(AuditLog, TruncatedEndIsDetectedByTheHead) {
  testing::TempDir dir;
  std::string path = write_log(dir, 5);
  auto lines = lines_of(path);
  lines.pop_back();
  write_lines(path, lines);
  auto v = verify(path);
  ASSERT_FALSE(v.ok());
  EXPECT_NE(v.problems[0].message.find("removed from the end"), std::string::npos);
}

TEST(AuditLog, GarbageLineIsNamed) {
  testing::TempDir dir;
  std::string path = write_log(dir, 3);
  auto lines = lines_of(path);
  lines.insert(lines.begin() + 1, "not json");
  write_lines(path, lines);
  auto v = verify(path);
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.problems[0].line, 2u);
  // Appending after a damaged last line refuses rather than chaining to garbage.
  write_lines(path, {lines[0], "{broken"});
  EXPECT_EQ(AuditLog(path).append(entry(9)).code(), core::Code::kCorruption);
}

TEST(AuditLog, ConcurrentProcessesKeepOneChain) {
  testing::TempDir dir;
  std::string path = dir / "audit.log";
  constexpr int kProcs = 4, kEach = 25;
  std::vector<pid_t> pids;
  for (int p = 0; p < kProcs; p++) {
    pid_t pid = fork();
    if (pid == 0) {
      AuditLog log(path);
      for (int i = 0; i < kEach; i++)
        if (!log.append(entry(p * 100 + i)).ok()) _exit(1);
      _exit(0);
    }
    pids.push_back(pid);
  }
  for (pid_t pid : pids) {
    int status = 0;
    waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  auto v = verify(path);
  EXPECT_TRUE(v.ok()) << (v.problems.empty() ? "" : v.problems[0].message);
  EXPECT_EQ(v.entries, static_cast<size_t>(kProcs * kEach));
}

TEST(AuditLog, TailFiltersByService) {
  testing::TempDir dir;
  std::string path = dir / "audit.log";
  AuditLog log(path);
  for (int i = 0; i < 6; i++) {
    AuditEntry e = entry(i);
    e.service = i % 2 ? "blog" : "shop";
    ASSERT_TRUE(log.append(e).ok());
  }
  auto t = log.tail(2, "shop");
  ASSERT_TRUE(t.ok());
  ASSERT_EQ(t->size(), 2u);
  EXPECT_EQ((*t)[0]["object"], "obj2");
  EXPECT_EQ((*t)[1]["object"], "obj4");
}

TEST(AuditLog, MissingFileIsNotFound) {
  testing::TempDir dir;
  EXPECT_EQ(verify_audit_log(dir / "none.log").status().code(), core::Code::kNotFound);
}

}  // namespace
}  // namespace cairn::server
