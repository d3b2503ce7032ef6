#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "repo/checker.h"
#include "repo/compression.h"
#include "repo/file_codec.h"
#include "repo/index.h"
#include "repo/keys.h"
#include "repo/pack.h"
#include "repo/repository.h"
#include "repo/timefmt.h"
#include "repo/tree.h"
#include "storage/fault_backend.h"
#include "storage/local_backend.h"
#include "storage/memory_backend.h"
#include "unit/test_util.h"

namespace cairn::repo {
namespace {

using storage::FileType;
using testing::fast_kdf;
using testing::make_repo;
using testing::random_data;

std::shared_ptr<storage::MemoryBackend> mem() { return std::make_shared<storage::MemoryBackend>(); }

TEST(Repository, InitThenOpenWithRightAndWrongPassword) {
  auto backend = mem();
  auto repo = make_repo(backend, "correct horse");
  auto again = Repository::open(backend, "correct horse");
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_EQ((*again)->config().id, repo->config().id);
  auto wrong = Repository::open(backend, "battery staple");
  EXPECT_EQ(wrong.status().code(), core::Code::kWrongPassword);
}

TEST(Repository, InitRefusesExistingAndOpenMissingIsNotFound) {
  auto backend = mem();
  make_repo(backend);
  InitOptions opt;
  opt.kdf = fast_kdf();
  EXPECT_EQ(Repository::init(backend, "pw", opt).status().code(), core::Code::kAlreadyExists);
  EXPECT_EQ(Repository::open(mem(), "pw").status().code(), core::Code::kNotFound);
}

TEST(Repository, KeysCanBeAddedAndRemovedButNeverTheLastOrCurrent) {
  auto backend = mem();
  auto repo = make_repo(backend, "one");
  std::string first = repo->key_id();
  auto second = repo->add_key("two", fast_kdf());
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(repo->list_keys().value().size(), 2u);
  EXPECT_EQ(repo->remove_key(first.substr(0, 6)).code(), core::Code::kInvalidArgument);  // in use
  auto via_two = Repository::open(backend, "two");
  ASSERT_TRUE(via_two.ok());
  EXPECT_EQ((*via_two)->config().id, repo->config().id);
  EXPECT_TRUE((*via_two)->remove_key(first).ok());
  EXPECT_EQ(Repository::open(backend, "one").status().code(), core::Code::kWrongPassword);
  EXPECT_EQ((*via_two)->remove_key(*second).code(), core::Code::kInvalidArgument);  // last and in use
  EXPECT_EQ((*via_two)->remove_key("ffff").code(), core::Code::kNotFound);
}

TEST(Repository, CorruptOnlyKeyIsReportedNotWrongPassword) {
  auto backend = mem();
  auto repo = make_repo(backend);
  std::string key = repo->key_id();
  ASSERT_TRUE(backend->remove({FileType::kKey, key}).ok());
  ASSERT_TRUE(backend->save({FileType::kKey, key}, core::as_bytes("{\"version\":1,")).ok());
  auto r = Repository::open(backend, "pw");
  EXPECT_EQ(r.status().code(), core::Code::kCorruption);
  EXPECT_NE(r.status().message().find("keys/" + key), std::string::npos);
}

TEST(Repository, BlobsRoundTripDedupAndSurviveReopen) {
  auto backend = mem();
  auto repo = make_repo(backend);
  auto data = random_data(3 << 20, 1);
  Id id = repo->blob_id(data);
  auto first = repo->save_blob(BlobType::kData, id, data);
  ASSERT_TRUE(first.ok());
  EXPECT_TRUE(*first);
  EXPECT_FALSE(*repo->save_blob(BlobType::kData, id, data));  // dedup before flush
  ASSERT_TRUE(repo->flush().ok());
  EXPECT_FALSE(*repo->save_blob(BlobType::kData, id, data));  // dedup after flush
  auto loaded = repo->load_blob(id);
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  EXPECT_EQ(*loaded, data);

  auto reopened = Repository::open(backend, "pw");
  ASSERT_TRUE(reopened.ok());
  ASSERT_TRUE((*reopened)->load_index().ok());
  EXPECT_EQ((*reopened)->load_blob(id).value(), data);
}

TEST(Repository, CompressibleBlobIsStoredSmaller) {
  auto backend = mem();
  auto repo = make_repo(backend);
  core::Bytes text(1 << 20, 'a');
  Id id = repo->blob_id(text);
  ASSERT_TRUE(repo->save_blob(BlobType::kData, id, text).ok());
  ASSERT_TRUE(repo->flush().ok());
  auto loc = repo->index().lookup(id);
  ASSERT_TRUE(loc.has_value());
  EXPECT_TRUE(loc->entry.compressed());
  EXPECT_LT(loc->entry.length, 10000u);
  EXPECT_EQ(repo->load_blob(id).value(), text);
}

TEST(Compression, AutoSkipsIncompressibleDataButNotMixedData) {
  auto random = random_data(1 << 20, 7);
  EXPECT_FALSE(compress(random, Compression::kAuto).has_value());
  auto mixed = random;
  std::fill(mixed.begin() + mixed.size() / 3, mixed.end(), 'z');  // 2/3 compressible
  auto packed = compress(mixed, Compression::kAuto);
  ASSERT_TRUE(packed.has_value());
  EXPECT_LT(packed->size(), mixed.size() / 2);
  EXPECT_EQ(decompress(*packed, mixed.size()).value(), mixed);
  EXPECT_FALSE(compress(mixed, Compression::kOff).has_value());
}

// Contexts are pooled and shared by all levels; `auto` sets parameters of its
// own on them, which must neither leak into the next call nor depend on the
// context's previous use.
TEST(Compression, LevelsShareContextsWithoutLeakingSettings) {
  core::Bytes text;
  for (int i = 0; text.size() < (1u << 20); ++i) {
    std::string line = "line " + std::to_string(i * 7919 % 100003) + " of a log file\n";
    text.insert(text.end(), line.begin(), line.end());
  }
  auto first_auto = compress(text, Compression::kAuto);
  auto first_max = compress(text, Compression::kMax);
  ASSERT_TRUE(first_auto && first_max);
  EXPECT_NE(*first_max, *first_auto);
  for (int round = 0; round < 3; ++round) {
    for (auto c : {Compression::kMax, Compression::kAuto, Compression::kFast}) {
      auto packed = compress(text, c);
      ASSERT_TRUE(packed.has_value());
      EXPECT_EQ(decompress(*packed, text.size()).value(), text);
      if (c == Compression::kAuto) {
        EXPECT_EQ(*packed, *first_auto);
      }
      if (c == Compression::kMax) {
        EXPECT_EQ(*packed, *first_max);
      }
    }
  }
}

TEST(Repository, FlippedPackByteIsCorruptionNamingThePack) {
  auto inner = mem();
  auto faulty = std::make_shared<storage::FaultBackend>(inner);
  auto repo = make_repo(faulty);
  auto data = random_data(100000, 2);
  Id id = repo->blob_id(data);
  ASSERT_TRUE(repo->save_blob(BlobType::kData, id, data).ok());
  ASSERT_TRUE(repo->flush().ok());
  faulty->flip_byte_on_load([](const storage::Handle& h) { return h.type == FileType::kPack; }, 500);
  auto r = repo->load_blob(id);
  EXPECT_EQ(r.status().code(), core::Code::kCorruption);
  EXPECT_NE(r.status().message().find(repo->index().lookup(id)->pack.hex()), std::string::npos);
}

TEST(Repository, SnapshotForgottenWhileListingIsSkippedOtherDamageIsAProblem) {
  auto inner = mem();
  auto faulty = std::make_shared<storage::FaultBackend>(inner);
  auto repo = make_repo(faulty);
  for (int i = 0; i < 3; ++i) {
    Snapshot s;
    s.time = now_time();
    s.service = "svc" + std::to_string(i);
    ASSERT_TRUE(repo->save_snapshot(s).ok());
  }
  // The first snapshot file read is gone by then (a concurrent forget).
  faulty->fail_next(storage::FaultBackend::Op::kLoad, 1, core::Code::kNotFound);
  std::vector<std::string> problems;
  auto listed = repo->list_snapshots(&problems);
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(listed->size(), 2u);
  EXPECT_TRUE(problems.empty());
  // An unreadable one is still reported.
  faulty->fail_next(storage::FaultBackend::Op::kLoad, 1, core::Code::kIOError);
  listed = repo->list_snapshots(&problems);
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(listed->size(), 2u);
  EXPECT_EQ(problems.size(), 1u);
}

TEST(Repository, FailedPackWriteFailsFlushAndIsSticky) {
  auto inner = mem();
  auto faulty = std::make_shared<storage::FaultBackend>(inner);
  auto repo = make_repo(faulty);
  faulty->fail_next(storage::FaultBackend::Op::kSave, 1, core::Code::kNoSpace);
  auto data = random_data(1000, 3);
  ASSERT_TRUE(repo->save_blob(BlobType::kData, repo->blob_id(data), data).ok());
  auto st = repo->flush();
  EXPECT_EQ(st.code(), core::Code::kNoSpace);
  // Nothing was indexed, so the blob is unknown, not misplaced.
  EXPECT_FALSE(repo->index().has(repo->blob_id(data)));
}

// A backend whose pack saves are slow, counted, and (optionally) fail: it
// shows how many uploads the repository keeps in flight and in what order
// packs and index files arrive.
class SlowPackBackend : public storage::MemoryBackend {
 public:
  explicit SlowPackBackend(int concurrency, int fail_pack = 0)
      : concurrency_(concurrency), fail_pack_(fail_pack) {}
  int preferred_upload_concurrency() const override { return concurrency_; }

  core::Status save(const storage::Handle& h, core::ByteView data) override {
    if (h.type == FileType::kIndex) {
      std::lock_guard lock(mu_);
      index_saved_after_packs_done_ = in_flight_ == 0 && packs_done_ == packs_started_;
    }
    if (h.type != FileType::kPack) return MemoryBackend::save(h, data);
    int n;
    {
      std::lock_guard lock(mu_);
      n = ++packs_started_;
      max_in_flight_ = std::max(max_in_flight_, ++in_flight_);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(60));
    core::Status st = n == fail_pack_ ? core::io_error("injected upload failure")
                                      : MemoryBackend::save(h, data);
    std::lock_guard lock(mu_);
    --in_flight_;
    ++packs_done_;
    if (!st.ok()) failed_pack_ = h.name;
    return st;
  }

  int max_in_flight() const {
    std::lock_guard lock(mu_);
    return max_in_flight_;
  }
  bool index_saved_after_packs_done() const {
    std::lock_guard lock(mu_);
    return index_saved_after_packs_done_;
  }
  std::string failed_pack() const {
    std::lock_guard lock(mu_);
    return failed_pack_;
  }

 private:
  const int concurrency_;
  const int fail_pack_;
  mutable std::mutex mu_;
  int in_flight_ = 0, max_in_flight_ = 0, packs_started_ = 0, packs_done_ = 0;
  bool index_saved_after_packs_done_ = false;
  std::string failed_pack_;
};

// Stores `packs` packs' worth of 1 MiB blobs from 4 threads; returns the
// blob ids and the first save_blob error (if any).
std::pair<std::vector<Id>, core::Status> fill_packs(Repository& repo, int packs) {
  const core::Bytes base = random_data(1 << 20, 7);
  const int blobs = packs * 16;  // 16 sealed 1 MiB blobs (+ nonce and tag) fill a pack
  std::vector<Id> ids(blobs);
  std::mutex mu;
  core::Status first;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      core::Bytes data = base;
      for (int i = t; i < blobs; i += 4) {
        std::memcpy(data.data(), &i, sizeof i);
        Id id = repo.blob_id(data);
        ids[i] = id;
        auto r = repo.save_blob(BlobType::kData, id, data);
        if (!r.ok()) {
          std::lock_guard lock(mu);
          if (first.ok()) first = r.status();
          return;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  return {ids, first};
}

TEST(Repository, UploadsRunInParallelBoundedAndBeforeTheIndex) {
  auto backend = std::make_shared<SlowPackBackend>(3);
  auto repo = make_repo(backend);
  repo->set_compression(Compression::kOff);
  auto [ids, st] = fill_packs(*repo, 5);
  ASSERT_TRUE(st.ok()) << st.to_string();
  ASSERT_TRUE(repo->flush().ok());
  EXPECT_LE(backend->max_in_flight(), 3);
  EXPECT_GE(backend->max_in_flight(), 2) << "uploads did not overlap";
  EXPECT_TRUE(backend->index_saved_after_packs_done());
  EXPECT_EQ(repo->write_stats().packs, 5u);
  // Everything is findable after a fresh open (the index names every pack).
  auto reopened = Repository::open(backend, "pw");
  ASSERT_TRUE(reopened.ok());
  ASSERT_TRUE((*reopened)->load_index().ok());
  for (const Id& id : ids) EXPECT_TRUE((*reopened)->index().has(id)) << id.hex();
}

// Files of one type (index by default) load like S3 round trips: each takes
// a while; counts overlap.
class SlowFileBackend : public storage::MemoryBackend {
 public:
  explicit SlowFileBackend(FileType slow = FileType::kIndex) : slow_(slow) {}
  int preferred_upload_concurrency() const override { return 4; }
  core::Result<core::Bytes> load(const storage::Handle& h, uint64_t offset,
                                 uint64_t length) override {
    if (h.type != slow_) return MemoryBackend::load(h, offset, length);
    {
      std::lock_guard lock(mu_);
      max_in_flight_ = std::max(max_in_flight_, ++in_flight_);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    auto r = MemoryBackend::load(h, offset, length);
    std::lock_guard lock(mu_);
    --in_flight_;
    return r;
  }
  int max_in_flight() const {
    std::lock_guard lock(mu_);
    return max_in_flight_;
  }

 private:
  FileType slow_;
  mutable std::mutex mu_;
  int in_flight_ = 0, max_in_flight_ = 0;
};

// One blob per flush, so one index file each; returns the blobs' ids.
std::vector<Id> blobs_in_separate_index_files(Repository& repo, int n) {
  std::vector<Id> ids;
  for (int i = 0; i < n; ++i) {
    auto data = random_data(1000 + static_cast<size_t>(i), static_cast<uint64_t>(i) + 7);
    Id id = repo.blob_id(data);
    EXPECT_TRUE(repo.save_blob(BlobType::kData, id, data).ok());
    EXPECT_TRUE(repo.flush().ok());
    ids.push_back(id);
  }
  return ids;
}

TEST(Repository, IndexFilesAreReadSeveralAtOnceAndAllLoaded) {
  auto backend = std::make_shared<SlowFileBackend>();
  auto repo = make_repo(backend);
  std::vector<Id> ids = blobs_in_separate_index_files(*repo, 11);
  auto reopened = Repository::open(backend, "pw");
  ASSERT_TRUE(reopened.ok());
  std::vector<std::string> problems;
  ASSERT_TRUE((*reopened)->load_index(&problems).ok());
  EXPECT_TRUE(problems.empty());
  EXPECT_EQ((*reopened)->loaded_index_files().size(), 11u);
  for (const Id& id : ids) EXPECT_TRUE((*reopened)->index().has(id)) << id.hex();
  EXPECT_GE(backend->max_in_flight(), 2) << "index files were read one by one";
  EXPECT_LE(backend->max_in_flight(), 4);
  // A second load reads nothing again and changes nothing.
  ASSERT_TRUE((*reopened)->load_index().ok());
  EXPECT_EQ((*reopened)->loaded_index_files().size(), 11u);
}

TEST(Repository, SnapshotFilesAreReadSeveralAtOnceAndListedInTimeOrder) {
  auto backend = std::make_shared<SlowFileBackend>(FileType::kSnapshot);
  auto repo = make_repo(backend);
  std::vector<std::string> ids;
  for (int i = 0; i < 9; ++i) {
    Snapshot s;
    s.time = Time{1700000000000000000LL + (i * 7 % 9) * 1000000000LL, 0};  // saved out of order
    s.service = "svc" + std::to_string(i * 7 % 9);
    ids.push_back(repo->save_snapshot(s).value());
  }
  auto listed = repo->list_snapshots();
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 9u);
  for (size_t i = 0; i < 9; ++i)
    EXPECT_EQ((*listed)[i].snapshot.service, "svc" + std::to_string(i));
  EXPECT_GE(backend->max_in_flight(), 2) << "snapshot files were read one by one";
  EXPECT_LE(backend->max_in_flight(), 4);
}

TEST(Repository, AnUnreadableIndexFileIsReportedAndTheOthersLoad) {
  auto inner = mem();
  auto faulty = std::make_shared<storage::FaultBackend>(inner);
  auto repo = make_repo(faulty);
  std::vector<Id> ids = blobs_in_separate_index_files(*repo, 5);
  std::vector<std::string> names;
  ASSERT_TRUE(
      inner->list(FileType::kIndex, [&](const storage::FileInfo& fi) { names.push_back(fi.name); })
          .ok());
  ASSERT_EQ(names.size(), 5u);
  const std::string bad = names[2];
  faulty->flip_byte_on_load(
      [bad](const storage::Handle& h) { return h.type == FileType::kIndex && h.name == bad; }, 10);
  auto reopened = Repository::open(faulty, "pw");
  ASSERT_TRUE(reopened.ok());
  std::vector<std::string> problems;
  ASSERT_TRUE((*reopened)->load_index(&problems).ok());
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_NE(problems[0].find("index/" + bad), std::string::npos) << problems[0];
  size_t found = 0;
  for (const Id& id : ids) found += (*reopened)->index().has(id) ? 1 : 0;
  EXPECT_EQ(found, 4u);
  EXPECT_EQ((*reopened)->loaded_index_files().size(), 4u);
}

// The local backend hands a pack's bytes back (data_consumed) before its
// fsyncs and the repository frees the buffer there: every blob still reads
// back, also after a fresh open.
TEST(Repository, LocalPacksFreedBeforeTheirSyncReadBack) {
  cairn::testing::TempDir dir;
  auto backend = std::make_shared<storage::LocalBackend>(dir / "repo");
  auto repo = make_repo(backend);
  repo->set_compression(Compression::kOff);
  auto [ids, st] = fill_packs(*repo, 3);
  ASSERT_TRUE(st.ok()) << st.to_string();
  ASSERT_TRUE(repo->flush().ok());
  EXPECT_EQ(repo->write_stats().packs, 3u);
  auto reopened = Repository::open(backend, "pw");
  ASSERT_TRUE(reopened.ok());
  ASSERT_TRUE((*reopened)->load_index().ok());
  for (const Id& id : ids) {
    auto blob = (*reopened)->load_blob(id);
    ASSERT_TRUE(blob.ok()) << id.hex() << ": " << blob.status().to_string();
    EXPECT_EQ(blob->size(), 1u << 20);
  }
}

TEST(Repository, FailedUploadIsStickyNamedAndNeverIndexed) {
  auto backend = std::make_shared<SlowPackBackend>(2, /*fail_pack=*/2);
  auto repo = make_repo(backend);
  repo->set_compression(Compression::kOff);
  auto [ids, st] = fill_packs(*repo, 5);
  core::Status flushed = repo->flush();
  ASSERT_FALSE(flushed.ok());
  const std::string failed = backend->failed_pack();
  ASSERT_FALSE(failed.empty());
  EXPECT_NE(flushed.message().find("storing pack " + failed), std::string::npos)
      << flushed.to_string();
  if (!st.ok()) {
    EXPECT_EQ(st.message(), flushed.message()) << "one sticky error";
  }
  // No index file names the pack that was not stored.
  auto reopened = Repository::open(backend, "pw");
  ASSERT_TRUE(reopened.ok());
  ASSERT_TRUE((*reopened)->load_index().ok());
  for (const Id& id : ids) {
    auto loc = (*reopened)->index().lookup(id);
    if (loc) {
      EXPECT_NE(loc->pack.hex(), failed);
    }
  }
  // The error stays: a second flush cannot pretend the backup is whole.
  EXPECT_EQ(repo->flush().message(), flushed.message());
}

TEST(Repository, FindSnapshotByPrefixAndLatest) {
  auto repo = make_repo(mem());
  Tree empty;
  auto root = repo->save_tree(empty);
  ASSERT_TRUE(root.ok());
  ASSERT_TRUE(repo->flush().ok());
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    Snapshot s;
    s.time = Time{1700000000000000000LL + i * 1000000000LL, 3600};
    s.tree = *root;
    s.service = i == 2 ? "shop" : "media";
    ids.push_back(repo->save_snapshot(s).value());
  }
  EXPECT_EQ(repo->find_snapshot("latest").value().id, ids[2]);
  EXPECT_EQ(repo->find_snapshot("latest", "media").value().id, ids[1]);
  EXPECT_EQ(repo->find_snapshot(ids[0].substr(0, 10)).value().id, ids[0]);
  EXPECT_EQ(repo->find_snapshot("abc").status().code(), core::Code::kInvalidArgument);
  EXPECT_EQ(repo->find_snapshot("latest", "nope").status().code(), core::Code::kNotFound);
}

// One scratch serves blob after blob of any size and kind: every view holds
// exactly that blob's plaintext, damage is refused, and a refusal does not
// spoil the next blob.
TEST(PackFormat, OpenBlobIntoReusesScratchAcrossBlobsAndRefusesDamage) {
  const auto enc = crypto::random_key(), mac = crypto::random_key();
  struct Sealed {
    core::Bytes plain, stored;
    PackEntry entry;
  };
  auto make = [&](core::Bytes plain) {
    Sealed b;
    auto packed = compress(plain, Compression::kAuto);
    b.stored = crypto::seal(enc, packed ? *packed : plain);
    b.entry.flags = packed ? kBlobCompressed : 0;
    const auto id = crypto::hmac_sha256(mac, plain);
    std::copy(id.begin(), id.end(), b.entry.id.bytes.begin());
    b.entry.length = static_cast<uint32_t>(b.stored.size());
    b.entry.raw_length = static_cast<uint32_t>(plain.size());
    b.plain = std::move(plain);
    return b;
  };
  core::Bytes text_big(1u << 20), text_small(300000);
  for (size_t i = 0; i < text_big.size(); ++i) text_big[i] = static_cast<uint8_t>("cairn "[i % 6]);
  for (size_t i = 0; i < text_small.size(); ++i) text_small[i] = static_cast<uint8_t>(i / 1000);
  const Sealed big = make(text_big), small = make(text_small), random = make(random_data(100000, 7));
  ASSERT_TRUE(big.entry.compressed() && small.entry.compressed() && !random.entry.compressed());

  BlobScratch scratch;
  for (const Sealed* b : {&big, &small, &random, &small, &big}) {
    auto view = open_blob_into(enc, mac, b->entry, b->stored, scratch);
    ASSERT_TRUE(view.ok()) << view.status().message();
    EXPECT_TRUE(std::equal(view->begin(), view->end(), b->plain.begin(), b->plain.end()));
  }
  core::Bytes damaged = random.stored;
  damaged[damaged.size() / 3] ^= 1;
  EXPECT_EQ(open_blob_into(enc, mac, random.entry, damaged, scratch).status().code(), core::Code::kCorruption);
  PackEntry wrong_id = small.entry;
  wrong_id.id.bytes[0] ^= 1;
  EXPECT_EQ(open_blob_into(enc, mac, wrong_id, small.stored, scratch).status().code(), core::Code::kCorruption);
  auto again = open_blob_into(enc, mac, small.entry, small.stored, scratch);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(std::equal(again->begin(), again->end(), small.plain.begin(), small.plain.end()));
  // The by-value form gives the same bytes.
  auto owned = open_blob(enc, mac, big.entry, big.stored);
  ASSERT_TRUE(owned.ok());
  EXPECT_TRUE(*owned == big.plain);
}

TEST(PackFormat, HeaderRoundTripAndTruncation) {
  auto key = crypto::random_key();
  std::vector<PackEntry> entries(3);
  uint32_t off = 0;
  for (int i = 0; i < 3; ++i) {
    entries[i].type = i == 1 ? BlobType::kTree : BlobType::kData;
    entries[i].flags = i == 2 ? kBlobCompressed : 0;
    entries[i].length = 100 + i;
    entries[i].raw_length = 90 + i;
    entries[i].id.bytes[0] = static_cast<uint8_t>(i + 1);
    entries[i].offset = off;
    off += entries[i].length;
  }
  core::Bytes pack(off, 0x5a);
  auto header = encode_pack_header(key, entries);
  pack.insert(pack.end(), header.begin(), header.end());
  auto r = decode_pack_header(key, pack, pack.size());
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->entries.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(r->entries[i].offset, entries[i].offset);
    EXPECT_EQ(r->entries[i].id, entries[i].id);
    EXPECT_EQ(r->entries[i].type, entries[i].type);
  }
  // A short tail asks for more bytes instead of failing.
  auto tail = core::ByteView(pack).last(8);
  auto more = decode_pack_header(key, tail, pack.size());
  ASSERT_TRUE(more.ok());
  EXPECT_EQ(more->needed, header.size());
  // A truncated pack (length field gone) is corruption.
  core::Bytes cut(pack.begin(), pack.end() - 3);
  EXPECT_FALSE(decode_pack_header(key, cut, cut.size()).ok());
}

TEST(IndexFormat, RoundTripAndRejectsGarbage) {
  std::vector<PackContents> packs(2);
  packs[0].pack.bytes[0] = 1;
  packs[1].pack.bytes[0] = 2;
  PackEntry e;
  e.id.bytes[5] = 9;
  e.offset = 7;
  e.length = 8;
  e.raw_length = 9;
  e.flags = kBlobCompressed;
  packs[1].blobs.push_back(e);
  auto enc = encode_index(packs);
  auto dec = decode_index(enc);
  ASSERT_TRUE(dec.ok());
  ASSERT_EQ(dec->size(), 2u);
  EXPECT_EQ((*dec)[1].blobs[0].id, e.id);
  EXPECT_EQ((*dec)[1].blobs[0].raw_length, 9u);
  EXPECT_FALSE(decode_index(core::ByteView(enc.data(), enc.size() - 1)).ok());
  enc.push_back(0);
  EXPECT_FALSE(decode_index(enc).ok());
  EXPECT_FALSE(decode_index(core::as_bytes("nonsense")).ok());
}

TEST(FileCodec, CompressesAndDetectsTampering) {
  auto key = crypto::random_key();
  std::string text(5000, 'x');
  auto stored = encode_file(key, core::as_bytes(text), true);
  EXPECT_LT(stored.size(), 200u);
  EXPECT_EQ(core::as_chars(decode_file(key, stored).value()), text);
  stored[stored.size() / 2] ^= 1;
  EXPECT_EQ(decode_file(key, stored).status().code(), core::Code::kCorruption);
}

TEST(TimeFormat, RoundTripKeepsOffsetAndNanoseconds) {
  Time t{1764108497123456789LL, -5 * 3600};
  std::string s = format_time(t);
  EXPECT_EQ(s, "2025-11-25T17:08:17.123456789-05:00");
  auto back = parse_time(s);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->unix_ns, t.unix_ns);
  EXPECT_EQ(back->utc_offset_s, t.utc_offset_s);
  EXPECT_EQ(parse_time("2025-11-25T22:08:17Z")->unix_ns, 1764108497000000000LL);
  EXPECT_FALSE(parse_time("yesterday").has_value());
  EXPECT_FALSE(parse_time("2025-11-25T22:08:17Zjunk").has_value());
  // PostgreSQL's timestamptz output: space, microseconds, "+hh" or "+hhmm".
  EXPECT_EQ(parse_time("2025-11-25 22:08:17.5+00")->unix_ns, 1764108497500000000LL);
  EXPECT_EQ(parse_time("2025-11-26 03:38:17+0530")->unix_ns, 1764108497000000000LL);
  EXPECT_EQ(parse_time("2025-11-25 20:08:17-02:00")->unix_ns, 1764108497000000000LL);
  EXPECT_FALSE(parse_time("2025-11-25 22:08:17+5").has_value());
  EXPECT_FALSE(parse_time("2025-11-25 22:08:17+05:3").has_value());
}

TEST(TreeFormat, RoundTripOddNamesAndDeterminism) {
  Tree t;
  Node a;
  a.name = "b\xff\xfe-not-utf8";
  a.type = NodeType::kFile;
  a.size = 3;
  a.content.push_back(Id{});
  a.xattrs.push_back({"user.k", core::to_bytes("v\0x")});
  Node b;
  b.name = "a with\nnewline";
  b.type = NodeType::kSymlink;
  b.link_target = "../t\xff";
  t.nodes = {a, b};
  std::string enc = encode_tree(t);
  Tree reversed;
  reversed.nodes = {b, a};
  EXPECT_EQ(encode_tree(reversed), enc);  // order-independent
  auto dec = decode_tree(core::as_bytes(enc));
  ASSERT_TRUE(dec.ok()) << dec.status().message();
  ASSERT_EQ(dec->nodes.size(), 2u);
  EXPECT_EQ(dec->nodes[0].name, b.name);
  EXPECT_EQ(dec->nodes[0].link_target, b.link_target);
  EXPECT_EQ(dec->nodes[1].name, a.name);
  EXPECT_EQ(dec->nodes[1].xattrs[0].value, a.xattrs[0].value);
}

// encode_tree writes its JSON by hand: it must stay byte-identical to the
// nlohmann DOM it replaced (tree ids of unchanged directories must not move).
static std::string dom_encode_tree(const Tree& tree) {
  using ojson = nlohmann::ordered_json;
  auto put_raw = [](ojson& j, const char* key, const std::string& raw) {
    if (core::is_valid_utf8(raw)) {
      j[key] = raw;
    } else {
      j[std::string(key) + "_b64"] = core::base64_encode(core::as_bytes(raw));
    }
  };
  std::vector<const Node*> sorted;
  for (const auto& n : tree.nodes) sorted.push_back(&n);
  std::sort(sorted.begin(), sorted.end(),
            [](const Node* a, const Node* b) { return a->name < b->name; });
  ojson nodes = ojson::array();
  for (const Node* n : sorted) {
    ojson j;
    put_raw(j, "name", n->name);
    j["type"] = node_type_name(n->type);
    j["mode"] = n->mode;
    j["uid"] = n->uid;
    j["gid"] = n->gid;
    if (!n->user.empty()) j["user"] = n->user;
    if (!n->group.empty()) j["group"] = n->group;
    j["mtime_ns"] = n->mtime_ns;
    j["ctime_ns"] = n->ctime_ns;
    j["inode"] = n->inode;
    j["device_id"] = n->device_id;
    j["links"] = n->links;
    if (n->type == NodeType::kFile) {
      j["size"] = n->size;
      ojson c = ojson::array();
      for (const auto& id : n->content) c.push_back(id.hex());
      j["content"] = std::move(c);
    }
    if (n->subtree) j["subtree"] = n->subtree->hex();
    if (n->type == NodeType::kSymlink) put_raw(j, "link_target", n->link_target);
    if (n->type == NodeType::kBlockDev || n->type == NodeType::kCharDev) j["rdev"] = n->rdev;
    if (!n->xattrs.empty()) {
      ojson xs = ojson::array();
      for (const auto& x : n->xattrs) {
        ojson xj;
        put_raw(xj, "name", x.name);
        xj["value_b64"] = core::base64_encode(x.value);
        xs.push_back(std::move(xj));
      }
      j["xattrs"] = std::move(xs);
    }
    nodes.push_back(std::move(j));
  }
  ojson root;
  root["nodes"] = std::move(nodes);
  return root.dump();
}

TEST(TreeFormat, EncodingMatchesTheJsonDom) {
  Tree t;
  EXPECT_EQ(encode_tree(t), dom_encode_tree(t));  // empty directory
  std::string every_control;
  for (int c = 1; c < 0x20; ++c) every_control += static_cast<char>(c);
  const std::vector<std::string> names = {"plain.txt",
                                          "quote\"back\\slash/slash",
                                          every_control,
                                          "del\x7f",
                                          "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
                                          "b\xff\xfe-not-utf8",
                                          std::string("nul\0in", 6),
                                          "z"};
  const NodeType types[] = {NodeType::kFile,     NodeType::kDir,     NodeType::kSymlink,
                            NodeType::kBlockDev, NodeType::kCharDev, NodeType::kFifo,
                            NodeType::kSocket};
  uint8_t seed = 1;
  for (size_t i = 0; i < names.size() * 7; ++i) {
    Node n;
    n.name = names[i % names.size()] + std::to_string(i);
    n.type = types[i % 7];
    n.mode = static_cast<uint32_t>(04755 + i);
    n.uid = i % 2 ? 0 : 4294967295u;
    n.gid = static_cast<uint32_t>(i * 1000);
    if (i % 3) n.user = i % 4 ? "root" : "us\"er";
    if (i % 5) n.group = "wheel";
    n.mtime_ns = i % 2 ? -1234567890123456789LL : INT64_MAX;
    n.ctime_ns = INT64_MIN;
    n.inode = UINT64_MAX - i;
    n.device_id = i;
    n.links = i + 1;
    n.size = i * 12345678901ull;
    n.rdev = 0x0801;
    for (size_t k = 0; k < i % 4; ++k) {
      Id id;
      for (auto& b : id.bytes) b = seed++;
      n.content.push_back(id);
    }
    if (i % 2) {
      Id sub;
      for (auto& b : sub.bytes) b = seed++;
      n.subtree = sub;
    }
    n.link_target = i % 2 ? "../t\xff" : "target \"x\"\n";
    if (i % 3 == 0) {
      n.xattrs.push_back({"user.k", core::to_bytes(std::string("v\0x", 3))});
      n.xattrs.push_back({"user.\xff", core::Bytes{}});
    }
    t.nodes.push_back(n);
  }
  const std::string enc = encode_tree(t);
  EXPECT_EQ(enc, dom_encode_tree(t));
  auto dec = decode_tree(core::as_bytes(enc));
  ASSERT_TRUE(dec.ok()) << dec.status().message();
  EXPECT_EQ(dec->nodes.size(), t.nodes.size());
}

TEST(TreeFormat, ValidationRefusesUnsafeNames) {
  for (const std::string& bad : std::vector<std::string>{"..", ".", "", "a/b", "/etc", std::string("x\0y", 3)}) {
    Tree t;
    Node n;
    n.name = bad;
    t.nodes.push_back(n);
    EXPECT_FALSE(validate_tree(t).ok()) << printable_name(bad);
  }
  Tree dup;
  Node n;
  n.name = "same";
  dup.nodes = {n, n};
  EXPECT_FALSE(validate_tree(dup).ok());
  Tree fine;
  n.name = "..hidden";
  fine.nodes = {n};
  EXPECT_TRUE(validate_tree(fine).ok());
}

TEST(Checker, CleanRepositoryHasNoErrors) {
  auto backend = mem();
  auto repo = make_repo(backend);
  auto data = random_data(2 << 20, 4);
  Id id = repo->blob_id(data);
  ASSERT_TRUE(repo->save_blob(BlobType::kData, id, data).ok());
  Tree t;
  Node n;
  n.name = "f";
  n.size = data.size();
  n.content = {id};
  t.nodes = {n};
  Snapshot s;
  s.time = now_time();
  s.tree = repo->save_tree(t).value();
  ASSERT_TRUE(repo->flush().ok());
  ASSERT_TRUE(repo->save_snapshot(s).ok());
  CheckOptions opt;
  opt.read_data = true;
  auto report = check(*repo, opt);
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->errors.empty()) << report->errors.front();
  EXPECT_EQ(report->snapshots, 1u);
  EXPECT_GE(report->packs_read, 1u);
}

TEST(Checker, SubsetParsing) {
  CheckOptions o;
  EXPECT_TRUE(parse_subset("10%", o).ok());
  EXPECT_EQ(o.subset_percent, 10);
  EXPECT_TRUE(parse_subset("2/5", o).ok());
  EXPECT_EQ(o.subset_m, 5u);
  EXPECT_FALSE(parse_subset("0%", o).ok());
  EXPECT_FALSE(parse_subset("6/5", o).ok());
  EXPECT_FALSE(parse_subset("half", o).ok());
}

}  // namespace
}  // namespace cairn::repo

namespace cairn::repo {
namespace {

// A memory backend that, like S3, prefers whole reads, and counts pack loads.
class WholeReadBackend : public storage::MemoryBackend {
 public:
  bool prefers_whole_reads() const override { return true; }
  core::Result<core::Bytes> load(const storage::Handle& h, uint64_t offset, uint64_t length) override {
    if (h.type == storage::FileType::kPack) pack_loads++;
    return MemoryBackend::load(h, offset, length);
  }
  std::atomic<int> pack_loads{0};
};

TEST(TreeCache, ObjectStoresReadEachTreePackOnce) {
  auto backend = std::make_shared<WholeReadBackend>();
  auto repo = testing::make_repo(backend);
  std::vector<Id> trees;
  for (int i = 0; i < 200; ++i) {  // 200 small directories: one tree pack
    Tree t;
    Node n;
    n.name = "dir-" + std::to_string(i);
    n.type = NodeType::kFile;
    t.nodes.push_back(n);
    trees.push_back(repo->save_tree(t).value());
  }
  ASSERT_TRUE(repo->flush().ok());
  auto fresh = Repository::open(backend, "pw").value();
  ASSERT_TRUE(fresh->load_index().ok());
  backend->pack_loads = 0;
  for (const auto& id : trees) ASSERT_TRUE(fresh->load_tree(id).ok());
  EXPECT_EQ(backend->pack_loads.load(), 1) << "one request for the whole tree pack, not one per directory";

  // A damaged cached pack is caught by its name (the SHA-256 of its bytes).
  std::vector<std::string> packs;
  ASSERT_TRUE(backend->list(storage::FileType::kPack, [&](const storage::FileInfo& fi) { packs.push_back(fi.name); }).ok());
  ASSERT_EQ(packs.size(), 1u);
  core::Bytes b = backend->MemoryBackend::load({storage::FileType::kPack, packs[0]}, 0, 0).value();
  b[b.size() / 2] ^= 1;
  ASSERT_TRUE(backend->remove({storage::FileType::kPack, packs[0]}).ok());
  ASSERT_TRUE(backend->save({storage::FileType::kPack, packs[0]}, b).ok());
  auto other = Repository::open(backend, "pw").value();
  ASSERT_TRUE(other->load_index().ok());
  auto bad = other->load_tree(trees[0]);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), core::Code::kCorruption);
}

}  // namespace
}  // namespace cairn::repo
