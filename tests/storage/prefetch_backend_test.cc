// PrefetchBackend: objects read once from the inner backend, served once from
// memory, and every error, range and other type left to the inner backend.
#include "storage/prefetch_backend.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <thread>

#include "storage/fault_backend.h"
#include "storage/memory_backend.h"

namespace cairn::storage {
namespace {

using core::Bytes;
using core::Code;
using Op = FaultBackend::Op;

Handle index_file(int i) { return {FileType::kIndex, std::string(63, 'a') + char('0' + i)}; }
Handle snapshot_file(int i) { return {FileType::kSnapshot, std::string(63, 'b') + char('0' + i)}; }
Handle pack_file() { return {FileType::kPack, std::string(64, 'c')}; }
Bytes content(const Handle& h) { return core::to_bytes("bytes of " + h.to_string()); }

// A MemoryBackend whose loads take a while and are counted per object.
class SlowCountingBackend : public MemoryBackend {
 public:
  explicit SlowCountingBackend(std::chrono::milliseconds delay) : delay_(delay) {}
  core::Result<Bytes> load(const Handle& h, uint64_t offset = 0, uint64_t length = 0) override {
    {
      std::lock_guard lock(mu_);
      ++loads_[h.to_string()];
    }
    std::this_thread::sleep_for(delay_);
    return MemoryBackend::load(h, offset, length);
  }
  int loads(const Handle& h) {
    std::lock_guard lock(mu_);
    return loads_[h.to_string()];
  }

 private:
  std::chrono::milliseconds delay_;
  std::mutex mu_;
  std::map<std::string, int> loads_;
};

class PrefetchBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(mem_->save(index_file(i), content(index_file(i))).ok());
    for (int i = 0; i < 2; ++i)
      ASSERT_TRUE(mem_->save(snapshot_file(i), content(snapshot_file(i))).ok());
    ASSERT_TRUE(mem_->save(pack_file(), content(pack_file())).ok());
  }
  // Waits until the inner backend has seen `n` loads (the prefetch is done).
  void wait_for_loads(uint64_t n) {
    for (int i = 0; i < 500 && fault_->calls(Op::kLoad) < n; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    ASSERT_EQ(fault_->calls(Op::kLoad), n);
  }

  std::shared_ptr<MemoryBackend> mem_ = std::make_shared<MemoryBackend>();
  std::shared_ptr<FaultBackend> fault_ = std::make_shared<FaultBackend>(mem_);
  const std::vector<FileType> types_{FileType::kIndex, FileType::kSnapshot};
};

TEST_F(PrefetchBackendTest, ServesEachPrefetchedObjectOnceFromMemory) {
  PrefetchBackend pf(fault_, types_);
  wait_for_loads(7);  // 5 index + 2 snapshot files, not the pack
  for (int i = 0; i < 5; ++i) EXPECT_EQ(pf.load(index_file(i)).value(), content(index_file(i)));
  Bytes out;
  ASSERT_TRUE(pf.load_into(snapshot_file(0), 0, 0, out).ok());
  EXPECT_EQ(out, content(snapshot_file(0)));
  EXPECT_EQ(pf.load(snapshot_file(1)).value(), content(snapshot_file(1)));
  EXPECT_EQ(pf.served(), 7u);
  EXPECT_EQ(fault_->calls(Op::kLoad), 7u);
  // Served once: the next load of the same object asks the inner backend.
  EXPECT_EQ(pf.load(index_file(0)).value(), content(index_file(0)));
  EXPECT_EQ(fault_->calls(Op::kLoad), 8u);
  EXPECT_EQ(pf.served(), 7u);
}

TEST_F(PrefetchBackendTest, RangesAndOtherTypesGoToTheInnerBackend) {
  PrefetchBackend pf(fault_, types_);
  wait_for_loads(7);
  EXPECT_EQ(pf.load(pack_file()).value(), content(pack_file()));
  const Bytes whole = content(index_file(2));
  EXPECT_EQ(pf.load(index_file(2), 0, 5).value(), Bytes(whole.begin(), whole.begin() + 5));
  EXPECT_EQ(fault_->calls(Op::kLoad), 9u);
  EXPECT_EQ(pf.served(), 0u);
  // The range did not use up the held copy.
  EXPECT_EQ(pf.load(index_file(2)).value(), content(index_file(2)));
  EXPECT_EQ(pf.served(), 1u);
  int listed = 0;
  ASSERT_TRUE(pf.list(FileType::kIndex, [&](const FileInfo&) { ++listed; }).ok());
  EXPECT_EQ(listed, 5);
}

TEST_F(PrefetchBackendTest, AFailedPrefetchIsForgottenAndTheCallerLoadsItself) {
  fault_->fail_next(Op::kLoad, 7, Code::kIOError);  // every prefetch load fails
  PrefetchBackend pf(fault_, types_);
  wait_for_loads(7);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(pf.load(index_file(i)).value(), content(index_file(i)));
  EXPECT_EQ(pf.served(), 0u);
  // And the caller's own errors are the inner backend's.
  fault_->fail_next(Op::kLoad, 1, Code::kPermissionDenied);
  EXPECT_EQ(pf.load(snapshot_file(0)).status().code(), Code::kPermissionDenied);
}

TEST_F(PrefetchBackendTest, StopsAtItsByteLimit) {
  const uint64_t one = content(index_file(0)).size();
  PrefetchBackend pf(fault_, types_, 2 * one + one / 2);
  wait_for_loads(2);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(fault_->calls(Op::kLoad), 2u);  // no third one
  for (int i = 0; i < 5; ++i) EXPECT_EQ(pf.load(index_file(i)).value(), content(index_file(i)));
  EXPECT_EQ(pf.served(), 2u);
  EXPECT_EQ(fault_->calls(Op::kLoad), 5u);
}

TEST_F(PrefetchBackendTest, ARemovedObjectIsNotServed) {
  PrefetchBackend pf(fault_, types_);
  wait_for_loads(7);
  ASSERT_TRUE(pf.remove(index_file(3)).ok());
  EXPECT_EQ(pf.load(index_file(3)).status().code(), Code::kNotFound);
  EXPECT_EQ(pf.served(), 0u);
}

TEST_F(PrefetchBackendTest, CancelDropsWhatIsHeldAndReadsNothingMore) {
  PrefetchBackend pf(fault_, types_);
  wait_for_loads(7);
  pf.cancel();
  for (int i = 0; i < 5; ++i) EXPECT_EQ(pf.load(index_file(i)).value(), content(index_file(i)));
  EXPECT_EQ(pf.served(), 0u);
  EXPECT_EQ(fault_->calls(Op::kLoad), 12u);
}

// Whatever the timing - the caller before, during or after the prefetch of an
// object - each object is read from the inner backend exactly once.
TEST(PrefetchBackend, EachObjectIsReadOnceWhateverTheTiming) {
  for (int delay_before_loading : {0, 5, 30, 200}) {
    auto slow = std::make_shared<SlowCountingBackend>(std::chrono::milliseconds(20));
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(slow->save(index_file(i), content(index_file(i))).ok());
    PrefetchBackend pf(slow, {FileType::kIndex}, 1 << 20, 2);
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_before_loading));
    std::vector<std::thread> callers;
    std::atomic<int> right{0};
    for (int i = 0; i < 5; ++i)
      callers.emplace_back([&, i] {
        if (pf.load(index_file(i)).value() == content(index_file(i))) ++right;
      });
    for (auto& t : callers) t.join();
    EXPECT_EQ(right.load(), 5) << delay_before_loading;
    for (int i = 0; i < 5; ++i)
      EXPECT_EQ(slow->loads(index_file(i)), 1) << "object " << i << ", " << delay_before_loading;
  }
}

TEST(PrefetchBackend, DestroyedWhileLoadingWaitsForItsThreads) {
  auto slow = std::make_shared<SlowCountingBackend>(std::chrono::milliseconds(30));
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(slow->save(index_file(i), content(index_file(i))).ok());
  {
    PrefetchBackend pf(slow, {FileType::kIndex}, 1 << 20, 2);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  // Stopped early: at most the loads in flight (one per reader) were made.
  int total = 0;
  for (int i = 0; i < 5; ++i) total += slow->loads(index_file(i));
  EXPECT_LE(total, 2);
}

}  // namespace
}  // namespace cairn::storage
