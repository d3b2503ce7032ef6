// repo/lock: lock files are saved without fsync (and everything else with),
// and what a crash can leave of an unsynced lock blocks nobody.
#include "repo/lock.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <mutex>
#include <vector>

#include "storage/local_backend.h"
#include "test_util.h"

namespace cairn::repo {
namespace {

using storage::FileType;

// Records the type and options of every save it receives.
class RecordingBackend : public storage::MemoryBackend {
 public:
  struct Saved {
    FileType type;
    bool no_sync;
  };
  core::Status save_with(const storage::Handle& h, core::ByteView data,
                         const storage::SaveOptions& options) override {
    {
      std::lock_guard lock(mu);
      saved.push_back({h.type, options.no_sync});
    }
    return MemoryBackend::save(h, data);
  }
  core::Status save(const storage::Handle& h, core::ByteView data) override {
    return save_with(h, data, {});
  }
  std::mutex mu;
  std::vector<Saved> saved;
};

TEST(LockDurability, LockFilesAreSavedWithoutSyncEverythingElseWith) {
  auto backend = std::make_shared<RecordingBackend>();
  auto repo = testing::make_repo(backend);
  {
    auto lock = Lock::acquire(*repo, LockMode::kShared);
    ASSERT_TRUE(lock.ok()) << lock.status().to_string();
    ASSERT_TRUE(
        repo->save_blob(BlobType::kData, repo->blob_id(core::to_bytes("d")), core::to_bytes("d"))
            .ok());
    ASSERT_TRUE(repo->flush().ok());
  }
  auto exclusive = Lock::acquire(*repo, LockMode::kExclusive);
  ASSERT_TRUE(exclusive.ok()) << exclusive.status().to_string();
  int locks = 0, others = 0;
  for (const auto& s : backend->saved) {
    if (s.type == FileType::kLock) {
      ++locks;
      EXPECT_TRUE(s.no_sync);
    } else {
      ++others;
      EXPECT_FALSE(s.no_sync) << storage::type_dir(s.type);
    }
  }
  EXPECT_EQ(locks, 2);
  EXPECT_GE(others, 4);  // config, key, pack, index
}

// What a crash may leave of an unsynced lock: the name with no (or torn)
// content. Its holder died in the same crash, so it must block nobody.
TEST(LockDurability, LockLeftEmptyByACrashIsStaleAndRemovable) {
  testing::TempDir dir;
  const std::string root = dir / "repo";
  auto repo = testing::make_repo(std::make_shared<storage::LocalBackend>(root));
  const std::string empty = std::string(64, 'e');
  std::ofstream(root + "/locks/" + empty).flush();  // zero bytes
  std::ofstream(root + "/locks/" + std::string(64, 'f')) << "torn";

  auto locks = list_locks(*repo);
  ASSERT_TRUE(locks.ok()) << locks.status().to_string();
  ASSERT_EQ(locks->size(), 2u);
  for (const auto& l : *locks) EXPECT_TRUE(l.stale) << l.id;

  {
    auto exclusive = Lock::acquire(*repo, LockMode::kExclusive);
    ASSERT_TRUE(exclusive.ok()) << exclusive.status().to_string();
  }
  auto removed = remove_locks(*repo, false);
  ASSERT_TRUE(removed.ok()) << removed.status().to_string();
  EXPECT_EQ(*removed, 2u);
  EXPECT_TRUE(std::filesystem::is_empty(root + "/locks"));
}

TEST(LockDurability, LocalLockIsReadableAfterAVolatileSave) {
  testing::TempDir dir;
  const std::string root = dir / "repo";
  auto repo = testing::make_repo(std::make_shared<storage::LocalBackend>(root));
  auto lock = Lock::acquire(*repo, LockMode::kMaintenance);
  ASSERT_TRUE(lock.ok()) << lock.status().to_string();
  auto locks = list_locks(*repo);
  ASSERT_TRUE(locks.ok());
  ASSERT_EQ(locks->size(), 1u);
  EXPECT_FALSE((*locks)[0].stale);
  EXPECT_TRUE((*locks)[0].maintenance);
  EXPECT_EQ((*locks)[0].holder, (*lock)->holder());
  // A second maintenance lock conflicts with it (exit code 11).
  auto second = Lock::acquire(*repo, LockMode::kMaintenance);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), core::Code::kLocked);
}

}  // namespace
}  // namespace cairn::repo
