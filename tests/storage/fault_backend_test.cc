// FaultBackend's knobs: programmed failures, load mutations, counters.
#include "storage/fault_backend.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "storage/memory_backend.h"

namespace cairn::storage {
namespace {

using core::Bytes;
using core::Code;
using Op = FaultBackend::Op;
using When = FaultBackend::When;

class FaultBackendTest : public ::testing::Test {
 protected:
  Handle pack(char c) { return Handle{FileType::kPack, std::string(64, c)}; }

  std::shared_ptr<MemoryBackend> mem_ = std::make_shared<MemoryBackend>();
  FaultBackend fb_{mem_};
};

TEST_F(FaultBackendTest, ForwardsAndCounts) {
  ASSERT_TRUE(fb_.save(pack('a'), core::to_bytes("abc")).ok());
  ASSERT_TRUE(fb_.load(pack('a')).ok());
  ASSERT_TRUE(fb_.load(pack('a'), 1, 1).ok());
  ASSERT_TRUE(fb_.stat(pack('a')).ok());
  int n = 0;
  ASSERT_TRUE(fb_.list(FileType::kPack, [&](const FileInfo&) { ++n; }).ok());
  ASSERT_TRUE(fb_.remove(pack('a')).ok());
  ASSERT_TRUE(fb_.exists().ok());
  ASSERT_TRUE(fb_.create().ok());
  EXPECT_EQ(n, 1);
  EXPECT_EQ(fb_.calls(Op::kSave), 1u);
  EXPECT_EQ(fb_.calls(Op::kLoad), 2u);
  EXPECT_EQ(fb_.calls(Op::kStat), 1u);
  EXPECT_EQ(fb_.calls(Op::kList), 1u);
  EXPECT_EQ(fb_.calls(Op::kRemove), 1u);
  EXPECT_EQ(fb_.calls(Op::kExists), 1u);
  EXPECT_EQ(fb_.calls(Op::kCreate), 1u);
  EXPECT_EQ(fb_.location(), mem_->location());
  EXPECT_FALSE(mem_->stat(pack('a')).ok());  // the remove reached the inner backend
}

// Records the options of the saves it receives.
class OptionsRecordingBackend : public MemoryBackend {
 public:
  core::Status save_with(const Handle& h, core::ByteView data,
                         const SaveOptions& options) override {
    no_sync.push_back(options.no_sync);
    return MemoryBackend::save(h, data);
  }
  std::vector<bool> no_sync;
};

TEST_F(FaultBackendTest, SaveWithForwardsOptionsAndCountsAsSave) {
  auto rec = std::make_shared<OptionsRecordingBackend>();
  FaultBackend fb(rec);
  SaveOptions volatile_save;
  volatile_save.no_sync = true;
  ASSERT_TRUE(fb.save_with(pack('a'), core::to_bytes("a"), volatile_save).ok());
  ASSERT_TRUE(fb.save(pack('b'), core::to_bytes("b")).ok());
  EXPECT_EQ(rec->no_sync, (std::vector<bool>{true, false}));
  EXPECT_EQ(fb.calls(Op::kSave), 2u);
  fb.fail_next(Op::kSave, 1, Code::kIOError);
  EXPECT_EQ(fb.save_with(pack('c'), core::to_bytes("c"), volatile_save).code(), Code::kIOError);
  EXPECT_EQ(rec->no_sync.size(), 2u);  // failed before the inner call
}

TEST_F(FaultBackendTest, FailsNthCallOnly) {
  ASSERT_TRUE(fb_.save(pack('a'), core::to_bytes("x")).ok());
  fb_.fail_nth(Op::kLoad, 3, Code::kTransient);
  EXPECT_TRUE(fb_.load(pack('a')).ok());
  EXPECT_TRUE(fb_.load(pack('a')).ok());
  auto third = fb_.load(pack('a'));
  ASSERT_FALSE(third.ok());
  EXPECT_EQ(third.status().code(), Code::kTransient);
  EXPECT_NE(third.status().message().find(pack('a').to_string()), std::string::npos);
  EXPECT_TRUE(fb_.load(pack('a')).ok());
  EXPECT_EQ(fb_.calls(Op::kLoad), 4u);
  EXPECT_EQ(fb_.injected(Op::kLoad), 1u);
  // Other operations are unaffected.
  EXPECT_EQ(fb_.injected(Op::kSave), 0u);
}

TEST_F(FaultBackendTest, FailBeforeSkipsInnerCall) {
  fb_.fail_nth(Op::kSave, 1, Code::kNoSpace);
  EXPECT_EQ(fb_.save(pack('b'), core::to_bytes("x")).code(), Code::kNoSpace);
  EXPECT_EQ(mem_->stat(pack('b')).status().code(), Code::kNotFound);
  // A retry goes through.
  EXPECT_TRUE(fb_.save(pack('b'), core::to_bytes("x")).ok());
}

TEST_F(FaultBackendTest, FailAfterRunsInnerCall) {
  // The upload happened but its response was lost: the retry sees kAlreadyExists.
  fb_.fail_nth(Op::kSave, 1, Code::kTransient, When::kAfter);
  EXPECT_EQ(fb_.save(pack('c'), core::to_bytes("x")).code(), Code::kTransient);
  EXPECT_TRUE(mem_->stat(pack('c')).ok());
  EXPECT_EQ(fb_.save(pack('c'), core::to_bytes("x")).code(), Code::kAlreadyExists);

  fb_.fail_nth(Op::kRemove, 1, Code::kIOError, When::kAfter);
  EXPECT_EQ(fb_.remove(pack('c')).code(), Code::kIOError);
  EXPECT_FALSE(mem_->stat(pack('c')).ok());
}

TEST_F(FaultBackendTest, FailNextCountsDown) {
  fb_.fail_next(Op::kStat, 2, Code::kIOError);
  EXPECT_EQ(fb_.stat(pack('a')).status().code(), Code::kIOError);
  EXPECT_EQ(fb_.stat(pack('a')).status().code(), Code::kIOError);
  EXPECT_EQ(fb_.stat(pack('a')).status().code(), Code::kNotFound);  // the real answer
  EXPECT_EQ(fb_.injected(Op::kStat), 2u);
}

TEST_F(FaultBackendTest, FailsListExistsCreate) {
  fb_.fail_nth(Op::kList, 1, Code::kTransient);
  int n = 0;
  EXPECT_EQ(fb_.list(FileType::kKey, [&](const FileInfo&) { ++n; }).code(), Code::kTransient);
  fb_.fail_nth(Op::kExists, 1, Code::kPermissionDenied);
  EXPECT_EQ(fb_.exists().status().code(), Code::kPermissionDenied);
  fb_.fail_nth(Op::kCreate, 1, Code::kIOError);
  EXPECT_EQ(fb_.create().code(), Code::kIOError);
  EXPECT_EQ(n, 0);
}

TEST_F(FaultBackendTest, FlipsOneByteOfMatchingLoads) {
  Bytes data(100, 0x11);
  ASSERT_TRUE(fb_.save(pack('a'), data).ok());
  ASSERT_TRUE(fb_.save(pack('b'), data).ok());
  fb_.flip_byte_on_load([](const Handle& h) { return h.name[0] == 'a'; });

  auto a = fb_.load(pack('a'));
  ASSERT_TRUE(a.ok());
  int diffs = 0;
  for (size_t i = 0; i < data.size(); ++i) diffs += (*a)[i] != data[i];
  EXPECT_EQ(diffs, 1);
  EXPECT_EQ((*a)[50], 0x11 ^ 0xff);
  EXPECT_EQ(fb_.load(pack('b')).value(), data);
  // The stored bytes are untouched.
  EXPECT_EQ(mem_->load(pack('a')).value(), data);

  fb_.clear_faults();
  EXPECT_EQ(fb_.load(pack('a')).value(), data);
}

TEST_F(FaultBackendTest, FlipsChosenIndexWithinRangedLoad) {
  ASSERT_TRUE(fb_.save(pack('a'), Bytes(100, 0)).ok());
  fb_.flip_byte_on_load(nullptr, 3);
  auto r = fb_.load(pack('a'), 10, 10);
  ASSERT_TRUE(r.ok());
  Bytes want(10, 0);
  want[3] = 0xff;
  EXPECT_EQ(*r, want);
  // Empty data has nothing to flip.
  ASSERT_TRUE(fb_.save(pack('e'), {}).ok());
  EXPECT_TRUE(fb_.load(pack('e'))->empty());
}

TEST_F(FaultBackendTest, TruncatesLoads) {
  Bytes data = core::to_bytes("0123456789");
  ASSERT_TRUE(fb_.save(pack('a'), data).ok());
  fb_.truncate_on_load([](const Handle& h) { return h.type == FileType::kPack; }, 4);
  EXPECT_EQ(fb_.load(pack('a')).value(), core::to_bytes("0123"));
  EXPECT_EQ(fb_.load(pack('a'), 8, 0).value(), core::to_bytes("89"));
  // stat still reports the real size: the truncation looks like a short read.
  EXPECT_EQ(fb_.stat(pack('a'))->size, 10u);
}

TEST_F(FaultBackendTest, ThreadSafeCountingAndFailures) {
  ASSERT_TRUE(fb_.save(pack('a'), core::to_bytes("x")).ok());
  fb_.fail_next(Op::kLoad, 100, Code::kTransient);
  std::atomic<int> failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 500; ++i) {
        if (!fb_.load(pack('a')).ok()) ++failed;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(fb_.calls(Op::kLoad), 4000u);
  EXPECT_EQ(failed.load(), 100);
  EXPECT_EQ(fb_.injected(Op::kLoad), 100u);
}

}  // namespace
}  // namespace cairn::storage
