// The log archive's entry formats (docs/format.md §14): version-2 entries
// (fixed pieces, no whole-file digest) and the version-1 entries older
// writers left behind, both fetched, verified and compared on a re-push.
// Push idempotence and pack damage: postgres_test.cc (LogArchiveTest).
#include "repo/log_archive.h"

#include <nlohmann/json.hpp>

#include "storage/memory_backend.h"
#include "test_util.h"

namespace cairn::repo {
namespace {

using json = nlohmann::json;
using storage::FileType;
using testing::TempDir;

constexpr char kSeg[] = "000000010000000000000001";

class LogEntryFormatTest : public testing::MemoryRepoTest {
 protected:
  json entry(LogArchive& a, const std::string& name) {
    auto plain = repo_->load_named_file(FileType::kWal, a.object_name(name));
    EXPECT_TRUE(plain.ok()) << plain.status().message();
    return json::parse(plain->begin(), plain->end());
  }
  // Replaces an entry as a writer holding the key would (entries are never
  // overwritten by cairn itself).
  void rewrite(LogArchive& a, const std::string& name, const json& j) {
    ASSERT_TRUE(backend_->remove({FileType::kWal, a.object_name(name)}).ok());
    std::string text = j.dump();
    ASSERT_TRUE(
        repo_->save_named_file(FileType::kWal, a.object_name(name), core::as_bytes(text)).ok());
  }
  core::Bytes fetched(LogArchive& a, const std::string& name) {
    auto st = a.fetch(name, dir_ / "out");
    EXPECT_TRUE(st.ok()) << st.message();
    return core::to_bytes(testing::read_file(dir_ / "out"));
  }
};

TEST_F(LogEntryFormatTest, NewEntriesAreVersion2InFixedPieces) {
  core::Bytes seg = testing::random_data((3 << 20) + 12345, 1);
  LogArchive a(*repo_, "shop");
  ASSERT_TRUE(a.push(kSeg, write("seg", seg)).value());
  json j = entry(a, kSeg);
  EXPECT_EQ(j["version"], 2);
  EXPECT_FALSE(j.contains("sha256"));
  ASSERT_EQ(j["blobs"].size(), 4u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(j["blobs"][i]["raw_length"], 1 << 20);
  EXPECT_EQ(j["blobs"][3]["raw_length"], 12345);
  EXPECT_EQ(fetched(a, kSeg), seg);
  EXPECT_FALSE(a.push(kSeg, write("again", seg)).value()) << "identical: nothing stored";
}

TEST_F(LogEntryFormatTest, EmptyAndZeroFilledFiles) {
  LogArchive a(*repo_, "shop");
  ASSERT_TRUE(a.push("00000002.history", write("h", {})).value());
  EXPECT_TRUE(fetched(a, "00000002.history").empty());
  EXPECT_FALSE(a.push("00000002.history", write("h2", {})).value());
  // A switched segment ends in zeros: equal pieces are stored once.
  core::Bytes zeros(16 << 20, 0);
  zeros[5] = 1;
  ASSERT_TRUE(a.push(kSeg, write("z", zeros)).value());
  EXPECT_EQ(entry(a, kSeg)["blobs"].size(), 16u);
  EXPECT_EQ(repo_->write_stats().data_blobs, 2u) << "one piece with the 1, one of zeros";
  EXPECT_EQ(fetched(a, kSeg), zeros);
}

TEST_F(LogEntryFormatTest, Version1EntriesStillFetchAndCompare) {
  core::Bytes seg = testing::random_data(2 << 20, 2);
  LogArchive a(*repo_, "shop");
  ASSERT_TRUE(a.push(kSeg, write("seg", seg)).value());
  // What an older cairn wrote: version 1 with the file's SHA-256.
  json j = entry(a, kSeg);
  j["version"] = 1;
  j["sha256"] = core::hex_encode(crypto::sha256(seg));
  rewrite(a, kSeg, j);
  auto e = a.find(kSeg).value();
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->sha256, j["sha256"]);
  EXPECT_EQ(fetched(a, kSeg), seg);
  EXPECT_FALSE(a.push(kSeg, write("same", seg)).value()) << "identical by its digest";
  core::Bytes other = seg;
  other[12] ^= 1;
  EXPECT_EQ(a.push(kSeg, write("other", other)).status().code(), core::Code::kAlreadyExists);

  // A version-1 entry whose content does not match its digest is damage.
  j["sha256"] = core::hex_encode(crypto::sha256(other));
  rewrite(a, kSeg, j);
  auto st = a.fetch(kSeg, dir_ / "bad");
  EXPECT_EQ(st.code(), core::Code::kCorruption) << st.message();
  EXPECT_FALSE(std::filesystem::exists(dir_ / "bad"));
  // Version 1 without its digest is not a valid entry.
  j.erase("sha256");
  rewrite(a, kSeg, j);
  EXPECT_EQ(a.find(kSeg).status().code(), core::Code::kCorruption);
}

TEST_F(LogEntryFormatTest, DamagedOrInconsistentEntriesAreDetected) {
  core::Bytes seg = testing::random_data(3 << 20, 3);
  LogArchive a(*repo_, "shop");
  ASSERT_TRUE(a.push(kSeg, write("seg", seg)).value());
  json good = entry(a, kSeg);

  // A size that does not add up.
  json j = good;
  j["size"] = seg.size() + 1;
  rewrite(a, kSeg, j);
  EXPECT_EQ(a.fetch(kSeg, dir_ / "out").code(), core::Code::kCorruption);

  // A blob id that does not match the piece its location holds.
  j = good;
  j["blobs"][1]["id"] = good["blobs"][0]["id"];
  j["blobs"][1]["pack"] = good["blobs"][1]["pack"];
  rewrite(a, kSeg, j);
  auto st = a.fetch(kSeg, dir_ / "out");
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.code(), core::Code::kNotFound);

  // A flipped byte in the stored entry: the AEAD tag fails.
  rewrite(a, kSeg, good);
  const std::string obj = a.object_name(kSeg);
  core::Bytes stored = backend_->load({FileType::kWal, obj}).value();
  stored[stored.size() / 2] ^= 0x20;
  ASSERT_TRUE(backend_->remove({FileType::kWal, obj}).ok());
  ASSERT_TRUE(backend_->save({FileType::kWal, obj}, stored).ok());
  st = a.fetch(kSeg, dir_ / "out");
  EXPECT_EQ(st.code(), core::Code::kCorruption) << st.message();
  EXPECT_EQ(a.push(kSeg, write("seg2", seg)).status().code(), core::Code::kCorruption)
      << "a damaged entry is never silently replaced";
  EXPECT_FALSE(std::filesystem::exists(dir_ / "out"));
}

TEST_F(LogEntryFormatTest, RepushComparesEntriesWithoutLocations) {
  core::Bytes seg = testing::random_data((2 << 20) + 7, 4);
  LogArchive a(*repo_, "shop");
  ASSERT_TRUE(a.push(kSeg, write("seg", seg)).value());
  // Locations are hints: without them the pieces are read back through the
  // index and compared byte for byte.
  json j = entry(a, kSeg);
  for (auto& b : j["blobs"])
    for (const char* k : {"pack", "offset", "length", "raw_length", "flags"}) b.erase(k);
  rewrite(a, kSeg, j);
  auto fresh = Repository::open(backend_, "pw").value();
  ASSERT_TRUE(fresh->load_index().ok());
  LogArchive b(*fresh, "shop");
  EXPECT_FALSE(b.push(kSeg, write("same", seg)).value());
  core::Bytes other = seg;
  other.back() ^= 1;
  EXPECT_EQ(b.push(kSeg, write("other", other)).status().code(), core::Code::kAlreadyExists);
  core::Bytes longer = seg;
  longer.push_back(0);
  EXPECT_EQ(b.push(kSeg, write("longer", longer)).status().code(), core::Code::kAlreadyExists);
  EXPECT_EQ(fetched(b, kSeg), seg);
}

}  // namespace
}  // namespace cairn::repo
