// Two-phase prune: the sweep decision, and the whole protocol on an
// in-memory repository with a simulated backup that overlaps the marking.
#include <gtest/gtest.h>

#include "repo/checker.h"
#include "repo/lock.h"
#include "repo/maintenance.h"
#include "repo/pruner.h"
#include "repo/repository.h"
#include "storage/local_backend.h"
#include "storage/memory_backend.h"
#include "unit/test_util.h"

namespace cairn::repo {
namespace {

using storage::FileType;
using testing::make_repo;
using testing::random_data;

Id id_of(uint8_t b) {
  Id id;
  id.bytes.fill(b);
  return id;
}

PackEntry entry(const Id& blob, uint32_t offset) {
  PackEntry e;
  e.id = blob;
  e.offset = offset;
  e.length = 100;
  e.raw_length = 72;
  return e;
}

// Hand-computed cases of the repository-wide --max-unused rule.
TEST(PruneRepackChoice, MostWastefulPacksFirstUntilTheRestIsWithinTheLimit) {
  // used / unused: 100 used in all; 5% of the result allowed = 5/95*100 = 5.26 unused.
  std::vector<PackUsage> packs = {{40, 2}, {20, 10}, {30, 1}, {10, 10}};
  // Unused 23 > 5.26: pack 3 (50% unused) goes first -> 13 left; then pack 1
  // (33%) -> 3 left, within the limit; packs 0 and 2 stay.
  EXPECT_EQ(select_repacks(packs, 0.05, UINT64_MAX), (std::vector<size_t>{3, 1}));
  // 0%: every pack with any unused byte, most wasteful first.
  EXPECT_EQ(select_repacks(packs, 0.0, UINT64_MAX), (std::vector<size_t>{3, 1, 0, 2}));
  // 20% allows 25 unused: nothing to do.
  EXPECT_TRUE(select_repacks(packs, 0.20, UINT64_MAX).empty());
  // 100%: never repack.
  EXPECT_TRUE(select_repacks(packs, 1.0, UINT64_MAX).empty());
}

TEST(PruneRepackChoice, CopyBudgetSkipsPacksThatDoNotFit) {
  std::vector<PackUsage> packs = {{40, 2}, {20, 10}, {30, 1}, {10, 10}};
  // 25 bytes to copy: pack 3 (10) fits, pack 1 (20) would make 30 -> skipped,
  // pack 0 (40) too, pack 2 (30) too.
  EXPECT_EQ(select_repacks(packs, 0.0, 25), (std::vector<size_t>{3}));
  EXPECT_TRUE(select_repacks(packs, 0.0, 0).empty());
  // Ties in share: more unused bytes first.
  std::vector<PackUsage> ties = {{10, 10}, {20, 20}, {100, 0}};
  EXPECT_EQ(select_repacks(ties, 0.0, UINT64_MAX), (std::vector<size_t>{1, 0}));
}

TEST(PruneRepackCopy, StoredBlobIsCopiedAsItIsAndDamageIsRefused) {
  auto backend = std::make_shared<storage::MemoryBackend>();
  auto repo = make_repo(backend);
  auto data = random_data(200000, 11);
  const Id id = repo->blob_id(data);
  ASSERT_TRUE(repo->save_blob(BlobType::kData, id, data).ok());
  ASSERT_TRUE(repo->flush().ok());
  auto loc = repo->index().lookup(id);
  ASSERT_TRUE(loc.has_value());
  auto stored = backend->load({FileType::kPack, loc->pack.hex()}, loc->entry.offset, loc->entry.length);
  ASSERT_TRUE(stored.ok());

  BlobScratch scratch;
  core::Bytes damaged = *stored;
  damaged[damaged.size() / 2] ^= 0x40;
  EXPECT_EQ(repo->copy_stored_blob(loc->entry, damaged, scratch).code(), core::Code::kCorruption);
  EXPECT_EQ(repo->copy_stored_blob(loc->entry, core::ByteView(*stored).first(10), scratch).code(),
            core::Code::kCorruption);

  const size_t before = repo->written_packs().size();
  ASSERT_TRUE(repo->copy_stored_blob(loc->entry, *stored, scratch).ok());
  ASSERT_TRUE(repo->flush().ok());
  auto packs = repo->written_packs();
  ASSERT_EQ(packs.size(), before + 1);
  const PackContents& copy = packs.back();
  ASSERT_EQ(copy.blobs.size(), 1u);
  EXPECT_NE(copy.pack, loc->pack);
  // The same bytes in a new pack, readable as the original blob.
  auto again = backend->load({FileType::kPack, copy.pack.hex()}, copy.blobs[0].offset, copy.blobs[0].length);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(*again == *stored);
  auto plain = repo->load_blob_at(id, BlobLocation{copy.pack, copy.blobs[0]});
  ASSERT_TRUE(plain.ok()) << plain.status().message();
  EXPECT_TRUE(*plain == data);
}

// Prune's repack keeps one stored pack's buffer for the next pack. On the
// local backend (which hands the buffer back before its fsyncs) every pack
// written that way must still hold exactly its own bytes.
TEST(PruneRepackCopy, ReusedPackBuffersLeaveEveryPackIntact) {
  testing::TempDir dir;
  auto backend = std::make_shared<storage::LocalBackend>(dir / "repo");
  auto repo = make_repo(backend);
  repo->reuse_pack_buffers();
  std::vector<std::pair<Id, core::Bytes>> blobs;
  for (uint64_t seed = 1; seed <= 12; ++seed) {  // 12 x 4 MiB, incompressible: 3+ packs
    core::Bytes data = random_data(4u << 20, seed);
    const Id id = repo->blob_id(data);
    ASSERT_TRUE(repo->save_blob(BlobType::kData, id, data).ok());
    blobs.emplace_back(id, std::move(data));
  }
  ASSERT_TRUE(repo->flush().ok());
  EXPECT_GE(repo->written_packs().size(), 3u);
  for (const auto& [id, data] : blobs) {
    auto plain = repo->load_blob(id);
    ASSERT_TRUE(plain.ok()) << plain.status().message();
    EXPECT_TRUE(*plain == data);
  }
  CheckOptions copt;
  copt.read_data = true;  // every pack's bytes against its name
  auto report = check(*repo, copt);
  ASSERT_TRUE(report.ok()) << report.status().message();
  EXPECT_TRUE(report->errors.empty());
  EXPECT_EQ(report->packs_read, repo->written_packs().size());
}

TEST(PruneSweepDecision, MarkedPackReferencedByNewSnapshotIsKept) {
  // Pack 1 holds blob a (now used by a snapshot written after the marking),
  // pack 2 holds blob b (unused), pack 3 holds blob c, which also has a copy
  // in the kept pack 9: pack 3 can go.
  Id a = id_of(0xa), b = id_of(0xb), c = id_of(0xc);
  std::vector<PackContents> marked = {{id_of(1), {entry(a, 0)}}, {id_of(2), {entry(b, 0)}},
                                      {id_of(3), {entry(c, 0)}}};
  std::unordered_set<Id, IdHash> used = {a, c};
  auto locate = [&](const Id& id) -> std::optional<BlobLocation> {
    if (id == a) return BlobLocation{id_of(1), entry(a, 0)};
    if (id == c) return BlobLocation{id_of(9), entry(c, 500)};
    return std::nullopt;
  };
  auto d = decide_sweep(marked, used, locate);
  ASSERT_TRUE(d.ok()) << d.status().message();
  ASSERT_EQ(d->rescued.size(), 1u);
  EXPECT_EQ(d->rescued[0].pack, id_of(1));
  ASSERT_EQ(d->deleted.size(), 2u);
  EXPECT_EQ(d->deleted[0].pack, id_of(2));
  EXPECT_EQ(d->deleted[1].pack, id_of(3));
}

TEST(PruneIndexExclusion, CopyOutsideMarkedPacksIsPreferredAndOnlyItCountsForDedup) {
  Id a = id_of(0xa), b = id_of(0xb);
  Index idx;
  idx.exclude_packs({id_of(1)});
  idx.add({id_of(1), {entry(a, 0), entry(b, 100)}});  // marked pack first
  idx.add({id_of(2), {entry(a, 0)}});                 // a second copy of a
  EXPECT_TRUE(idx.has(a));
  EXPECT_TRUE(idx.has(b));
  EXPECT_TRUE(idx.has_usable(a));
  EXPECT_FALSE(idx.has_usable(b));  // only in the marked pack: store a fresh copy
  EXPECT_EQ(idx.lookup(a)->pack, id_of(2));
  EXPECT_EQ(idx.lookup(b)->pack, id_of(1));  // still readable
  // Packs marked later stop counting for dedup too.
  idx.exclude_packs({id_of(2)});
  EXPECT_FALSE(idx.has_usable(a));
  EXPECT_EQ(idx.pack_ids().size(), 2u);
}

TEST(PruneSweepDecision, PackUnindexedAtMarkTimeIsRescuedWithItsEntries) {
  // A pack a running backup had stored but not yet indexed: the marker knows
  // no contents; the backup's index (read at sweep time) places blob a there.
  Id a = id_of(0xa);
  std::vector<PackContents> marked = {{id_of(1), {}}};
  auto d = decide_sweep(marked, {a}, [&](const Id&) { return BlobLocation{id_of(1), entry(a, 0)}; });
  ASSERT_TRUE(d.ok());
  ASSERT_EQ(d->rescued.size(), 1u);
  ASSERT_EQ(d->rescued[0].blobs.size(), 1u);
  EXPECT_EQ(d->rescued[0].blobs[0].id, a);
  EXPECT_TRUE(d->deleted.empty());
}

TEST(PruneSweepDecision, UsedBlobInNoIndexRefuses) {
  auto d = decide_sweep({}, {id_of(0xa)}, [](const Id&) { return std::nullopt; });
  EXPECT_EQ(d.status().code(), core::Code::kCorruption);
}

// Stores one file of `data` and a snapshot of it; returns the blob id.
Id backup(Repository& repo, const core::Bytes& data, bool write_snapshot = true) {
  Id id = repo.blob_id(data);
  EXPECT_TRUE(repo.save_blob(BlobType::kData, id, data).ok());
  Tree t;
  Node n;
  n.name = "f";
  n.size = data.size();
  n.content = {id};
  t.nodes = {n};
  Snapshot s;
  s.time = now_time();
  s.tree = repo.save_tree(t).value();
  EXPECT_TRUE(repo.flush().ok());
  if (write_snapshot) {
    EXPECT_TRUE(repo.save_snapshot(s).ok());
  }
  return id;
}

std::unique_ptr<Repository> reopen(std::shared_ptr<storage::Backend> backend) {
  auto r = Repository::open(backend, "pw");
  EXPECT_TRUE(r.ok());
  EXPECT_TRUE((*r)->load_index().ok());
  return std::move(*r);
}

size_t count(storage::Backend& b, FileType t) {
  size_t n = 0;
  EXPECT_TRUE(b.list(t, [&](const storage::FileInfo&) { ++n; }).ok());
  return n;
}

core::Result<PruneReport> run_prune(std::shared_ptr<storage::Backend> backend) {
  auto repo = reopen(backend);
  auto lock = Lock::acquire(*repo, LockMode::kMaintenance);
  if (!lock.ok()) return lock.status();
  PruneOptions opt;
  opt.max_unused = 0;
  opt.own_holder = (*lock)->holder();
  return prune(*repo, opt);
}

TEST(PruneTwoPhase, BackupOverlappingTheMarkKeepsWhatItReferences) {
  auto backend = std::make_shared<storage::MemoryBackend>();
  auto data = random_data(100000, 7);
  {
    auto repo = make_repo(backend);
    backup(*repo, data);
  }
  // Forget the only snapshot: its pack becomes unused.
  std::vector<std::string> snaps;
  ASSERT_TRUE(backend->list(FileType::kSnapshot, [&](const storage::FileInfo& fi) { snaps.push_back(fi.name); }).ok());
  ASSERT_TRUE(backend->remove({FileType::kSnapshot, snaps.at(0)}).ok());

  // A backup starts (lock, index) before prune marks, and dedups against the
  // soon-to-be-marked blob.
  auto early = reopen(backend);
  auto early_lock = Lock::acquire(*early, LockMode::kShared);
  ASSERT_TRUE(early_lock.ok());
  Id blob = early->blob_id(data);
  EXPECT_FALSE(early->save_blob(BlobType::kData, blob, data).value());  // deduplicated

  auto mark = run_prune(backend);
  ASSERT_TRUE(mark.ok()) << mark.status().message();
  EXPECT_FALSE(mark->marker.empty());
  EXPECT_GE(mark->packs_deleted, 1u);
  EXPECT_EQ(count(*backend, FileType::kMaintenance), 1u);

  // A backup that starts now does not dedup against the marked pack.
  {
    auto late = reopen(backend);
    EXPECT_FALSE(late->index().has_usable(blob));
    EXPECT_TRUE(late->index().has(blob));  // still readable
  }

  // While the early backup runs, the sweep waits and marks nothing new.
  auto wait = run_prune(backend);
  ASSERT_TRUE(wait.ok()) << wait.status().message();
  EXPECT_EQ(wait->waiting_for.size(), 1u);
  EXPECT_FALSE(wait->swept);

  // The early backup finishes with a snapshot that needs the marked pack.
  backup(*early, data);
  early_lock->reset();
  early.reset();

  auto sweep = run_prune(backend);
  ASSERT_TRUE(sweep.ok()) << sweep.status().message();
  EXPECT_TRUE(sweep->swept);
  EXPECT_GE(sweep->packs_rescued, 1u);
  EXPECT_EQ(count(*backend, FileType::kMaintenance), 0u);

  auto after = reopen(backend);
  EXPECT_EQ(after->load_blob(blob).value(), data);
  CheckOptions copt;
  copt.read_data = true;
  auto report = check(*after, copt);
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->errors.empty()) << report->errors.front();
  EXPECT_TRUE(report->warnings.empty()) << report->warnings.front();
}

TEST(PruneTwoPhase, UnreferencedMarkedPacksAreDeletedBySweep) {
  auto backend = std::make_shared<storage::MemoryBackend>();
  {
    auto repo = make_repo(backend);
    backup(*repo, random_data(100000, 1));
    backup(*repo, random_data(100000, 2), /*write_snapshot=*/false);  // an interrupted backup
  }
  size_t packs_before = count(*backend, FileType::kPack);
  auto mark = run_prune(backend);
  ASSERT_TRUE(mark.ok()) << mark.status().message();
  EXPECT_EQ(count(*backend, FileType::kPack), packs_before);  // nothing deleted yet
  auto sweep = run_prune(backend);
  ASSERT_TRUE(sweep.ok()) << sweep.status().message();
  EXPECT_TRUE(sweep->swept);
  EXPECT_EQ(sweep->packs_rescued, 0u);
  EXPECT_GE(sweep->packs_swept, 1u);
  EXPECT_LT(count(*backend, FileType::kPack), packs_before);
  auto after = reopen(backend);
  auto report = check(*after, CheckOptions{});
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->errors.empty()) << report->errors.front();
}

TEST(PruneTwoPhase, ReaderFindsTheOtherCopyWhenASweepDeletedTheOneItChose) {
  // Blob b has copies in two packs, both marked; a reader loaded the index
  // before the sweep deleted the copy its index points at.
  auto backend = std::make_shared<storage::MemoryBackend>();
  auto data = random_data(50000, 9);
  Id b;
  {
    auto repo = make_repo(backend);
    b = repo->blob_id(data);
    ASSERT_TRUE(repo->save_blob(BlobType::kData, b, data).ok());
    ASSERT_TRUE(repo->flush().ok());
    ASSERT_TRUE(repo->save_blob_copy(BlobType::kData, b, data).ok());
    ASSERT_TRUE(repo->flush().ok());
    auto packs = repo->written_packs();
    ASSERT_EQ(packs.size(), 2u);
    Marker m;
    m.state = MarkerState::kMarked;
    m.time = now_time();
    m.packs = packs;
    ASSERT_TRUE(save_marker(*repo, m).ok());
  }
  auto reader = reopen(backend);
  auto chosen = reader->index().lookup(b);
  ASSERT_TRUE(chosen.has_value());
  ASSERT_TRUE(backend->remove({FileType::kPack, chosen->pack.hex()}).ok());
  auto got = reader->load_blob(b);
  ASSERT_TRUE(got.ok()) << got.status().message();
  EXPECT_EQ(*got, data);
  EXPECT_NE(reader->index().lookup(b)->pack, chosen->pack);
}

TEST(PruneTwoPhase, MarkerRoundTrip) {
  Marker m;
  m.state = MarkerState::kSweeping;
  m.time = now_time();
  m.packs = {{id_of(1), {entry(id_of(0xa), 0)}}};
  m.rescued = {{id_of(2), {}}};
  m.obsolete_index = {"ab", "cd"};
  m.waits_for = {"h1"};
  m.supersedes = "ef";
  auto back = decode_marker(encode_marker(m));
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back->state, MarkerState::kSweeping);
  EXPECT_EQ(back->packs.size(), 1u);
  EXPECT_EQ(back->rescued.size(), 1u);
  EXPECT_EQ(back->obsolete_index, m.obsolete_index);
  EXPECT_EQ(back->waits_for, m.waits_for);
  EXPECT_EQ(back->supersedes, "ef");
  EXPECT_FALSE(decode_marker(core::as_bytes("CMRK")).ok());
}

}  // namespace
}  // namespace cairn::repo
