#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>

#include "archive/archiver.h"
#include "archive/restorer.h"
#include "archive/tree_walk.h"
#include "core/file.h"
#include "repo/checker.h"
#include "storage/local_backend.h"
#include "unit/test_util.h"

namespace cairn::archive {
namespace {

namespace fs = std::filesystem;
using repo::Id;
using repo::Node;
using repo::NodeType;
using repo::Tree;
using testing::read_file;
using testing::TempDir;
using testing::write_file;

class ArchiveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    backend_ = std::make_shared<storage::MemoryBackend>();
    repo_ = testing::make_repo(backend_);
    src_ = dir_ / "src";
    fs::create_directories(src_);
  }

  BackupResult backup(const BackupOptions& opt = {}) {
    auto r = backup_paths(*repo_, {src_}, opt, nullptr);
    EXPECT_TRUE(r.ok()) << r.status().message();
    return std::move(r).value();
  }

  RestoreResult restore_to(const repo::Snapshot& s, const std::string& target, const std::string& path = "/") {
    RestoreOptions opt;
    opt.target = target;
    opt.verify = true;
    auto r = restore(*repo_, s, path, opt, nullptr);
    EXPECT_TRUE(r.ok()) << r.status().message();
    return std::move(r).value();
  }

  // Forges a snapshot whose root tree is `t` (what an attacker with the key could write).
  repo::Snapshot forge(const Tree& t) {
    repo::Snapshot s;
    s.time = repo::now_time();
    s.tree = repo_->save_tree(t).value();
    EXPECT_TRUE(repo_->flush().ok());
    return s;
  }

  Node file_node(const std::string& name, const std::string& content) {
    Node n;
    n.name = name;
    n.type = NodeType::kFile;
    n.mode = 0644;
    n.size = content.size();
    if (!content.empty()) {
      Id id = repo_->blob_id(core::as_bytes(content));
      EXPECT_TRUE(repo_->save_blob(repo::BlobType::kData, id, core::as_bytes(content)).ok());
      n.content = {id};
    }
    return n;
  }

  TempDir dir_;
  std::string src_;
  std::shared_ptr<storage::MemoryBackend> backend_;
  std::unique_ptr<repo::Repository> repo_;
};

TEST_F(ArchiveTest, RoundTripFilesLinksAndMetadata) {
  fs::create_directories(src_ + "/sub/deeper");
  write_file(src_ + "/empty", {});
  write_file(src_ + "/small.txt", core::as_bytes("hello"));
  auto big = testing::random_data(5 << 20, 9);
  write_file(src_ + "/sub/big.bin", big);
  write_file(src_ + "/sub/deeper/odd\nname\xff", core::as_bytes("odd"));
  ASSERT_EQ(symlink("../small.txt", (src_ + "/sub/link").c_str()), 0);
  ASSERT_EQ(link((src_ + "/small.txt").c_str(), (src_ + "/hard").c_str()), 0);
  chmod((src_ + "/small.txt").c_str(), 0640);
  auto res = backup();
  EXPECT_TRUE(res.warnings.empty());
  EXPECT_EQ(res.snapshot.summary.files_new, 5u);

  std::string out = dir_ / "out";
  auto r = restore_to(res.snapshot, out);
  EXPECT_TRUE(r.errors.empty()) << r.errors.front();
  std::string base = out + src_;
  EXPECT_EQ(read_file(base + "/small.txt"), "hello");
  EXPECT_EQ(read_file(base + "/sub/big.bin"), std::string(big.begin(), big.end()));
  EXPECT_EQ(read_file(base + "/sub/deeper/odd\nname\xff"), "odd");
  EXPECT_EQ(fs::read_symlink(base + "/sub/link").string(), "../small.txt");
  struct stat a, b;
  ASSERT_EQ(stat((base + "/small.txt").c_str(), &a), 0);
  ASSERT_EQ(stat((base + "/hard").c_str(), &b), 0);
  EXPECT_EQ(a.st_ino, b.st_ino);
  EXPECT_EQ(a.st_mode & 07777, 0640u);
  struct stat orig;
  stat((src_ + "/sub/big.bin").c_str(), &orig);
  struct stat restored;
  stat((base + "/sub/big.bin").c_str(), &restored);
  EXPECT_EQ(orig.st_mtim.tv_sec, restored.st_mtim.tv_sec);
  EXPECT_EQ(orig.st_mtim.tv_nsec, restored.st_mtim.tv_nsec);
}

// Files get their metadata from the worker that writes their last blob;
// this checks every shape of file for that, into a new target and again over
// the first restore (where every entry already exists, some read-only).
TEST_F(ArchiveTest, EveryKindOfFileGetsItsSizeModeAndTimes) {
  fs::create_directories(src_ + "/d");
  write_file(src_ + "/empty", {});
  write_file(src_ + "/small", core::as_bytes("small"));
  write_file(src_ + "/d/multi", testing::random_data(6 << 20, 3));  // several blobs
  write_file(src_ + "/zeros", core::Bytes(3 << 20, 0));             // holes only
  auto tail = testing::random_data(1 << 20, 4);
  tail.resize(4 << 20, 0);  // data, then a hole to the end
  write_file(src_ + "/tail-hole", tail);
  const std::map<std::string, mode_t> modes = {{"/empty", 0600},
                                               {"/small", 0400},
                                               {"/d/multi", 0444},
                                               {"/zeros", 0751},
                                               {"/tail-hole", 0640}};
  int64_t sec = 1600000000;
  for (const auto& [name, mode] : modes) {
    std::string p = src_ + name;
    ASSERT_EQ(chmod(p.c_str(), mode), 0);
    struct timespec ts[2] = {{sec, 123456789}, {sec, 123456789}};
    ASSERT_EQ(utimensat(AT_FDCWD, p.c_str(), ts, 0), 0);
    sec += 1000;
  }
  struct timespec dir_ts[2] = {{sec, 5}, {sec, 5}};
  ASSERT_EQ(utimensat(AT_FDCWD, (src_ + "/d").c_str(), dir_ts, 0), 0);
  auto res = backup();
  std::string out = dir_ / "out";
  for (int round = 0; round < 2; ++round) {
    auto r = restore_to(res.snapshot, out);
    ASSERT_TRUE(r.errors.empty()) << r.errors.front();
    EXPECT_TRUE(r.warnings.empty()) << r.warnings.front();
    for (const auto& [name, mode] : modes) {
      struct stat a, b;
      ASSERT_EQ(stat((src_ + name).c_str(), &a), 0);
      ASSERT_EQ(stat((out + src_ + name).c_str(), &b), 0) << name;
      EXPECT_EQ(b.st_size, a.st_size) << name;
      EXPECT_EQ(b.st_mode & 07777, mode) << name << " round " << round;
      EXPECT_EQ(b.st_mtim.tv_sec, a.st_mtim.tv_sec) << name;
      EXPECT_EQ(b.st_mtim.tv_nsec, a.st_mtim.tv_nsec) << name;
      EXPECT_EQ(read_file(out + src_ + name), read_file(src_ + name)) << name;
    }
    struct stat d;
    ASSERT_EQ(stat((out + src_ + "/d").c_str(), &d), 0);
    EXPECT_EQ(d.st_mtim.tv_sec, sec);  // set after its entries were made
    struct stat zeros;
    ASSERT_EQ(stat((out + src_ + "/zeros").c_str(), &zeros), 0);
    EXPECT_LT(zeros.st_blocks * 512, 1 << 20);  // stays sparse
  }
}

TEST_F(ArchiveTest, UnchangedFilesAreReusedFromParent) {
  for (int i = 0; i < 20; ++i) write_file(src_ + "/f" + std::to_string(i), testing::random_data(1000 + i, i));
  auto first = backup();
  BackupOptions opt;
  opt.parent = repo::SnapshotRef{first.snapshot_id, first.snapshot};
  auto second = backup(opt);
  EXPECT_EQ(second.snapshot.summary.files_unmodified, 20u);
  EXPECT_EQ(second.snapshot.summary.data_blobs, 0u);
  // The source folder's tree is reused as is. (Not the root tree: that also
  // records /tmp, which other tests running in parallel change.)
  auto src_tree = [&](const repo::Snapshot& s) { return locate(*repo_, s.tree, src_).value().node.subtree; };
  EXPECT_EQ(src_tree(second.snapshot), src_tree(first.snapshot));
  write_file(src_ + "/f3", core::as_bytes("changed"));
  opt.parent = repo::SnapshotRef{second.snapshot_id, second.snapshot};
  auto third = backup(opt);
  EXPECT_EQ(third.snapshot.summary.files_changed, 1u);
  EXPECT_EQ(third.snapshot.summary.files_unmodified, 19u);
}

// A volume snapshot is read from its snapshot folder but recorded under the
// source's path; excludes match the recorded path.
TEST_F(ArchiveTest, RedirectReadsFromSnapshotAndRecordsTheSourcePath) {
  std::string live = src_ + "/live", snap = src_ + "/.snap";
  fs::create_directories(live);
  fs::create_directories(snap + "/sub");
  write_file(live + "/a.txt", core::as_bytes("live"));
  write_file(snap + "/a.txt", core::as_bytes("frozen"));
  write_file(snap + "/sub/b.txt", core::as_bytes("b"));
  write_file(snap + "/skip.tmp", core::as_bytes("x"));
  ASSERT_EQ(symlink("a.txt", (snap + "/link").c_str()), 0);
  BackupOptions opt;
  opt.redirects = {{live, snap}};
  opt.excludes = {live + "/*.tmp"};
  auto r = backup_paths(*repo_, {live}, opt, nullptr);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_TRUE(r->warnings.empty());
  EXPECT_EQ(r->snapshot.paths, std::vector<std::string>{live});
  EXPECT_EQ(r->snapshot.summary.files_new, 2u);
  std::string out = dir_ / "out";
  restore_to(r->snapshot, out);
  EXPECT_EQ(read_file(out + live + "/a.txt"), "frozen");
  EXPECT_EQ(read_file(out + live + "/sub/b.txt"), "b");
  EXPECT_EQ(fs::read_symlink(out + live + "/link").string(), "a.txt");
  EXPECT_FALSE(fs::exists(out + live + "/skip.tmp"));
  EXPECT_FALSE(fs::exists(out + snap));
  // The source path itself need not exist, only the snapshot.
  opt.redirects = {{src_ + "/gone", snap}};
  auto g = backup_paths(*repo_, {src_ + "/gone"}, opt, nullptr);
  ASSERT_TRUE(g.ok()) << g.status().message();
  EXPECT_EQ(g->snapshot.summary.total_files, 3u);  // the exclude names the other path
}

TEST_F(ArchiveTest, SparseFileKeepsHoles) {
  std::string path = src_ + "/sparse";
  {
    auto fd = core::open_file(path, O_WRONLY | O_CREAT, 0644);
    ASSERT_TRUE(fd.ok());
    ASSERT_EQ(ftruncate(fd->get(), 1ll << 30), 0);
    ASSERT_EQ(pwrite(fd->get(), "data", 4, 512ll << 20), 4);
  }
  auto res = backup();
  EXPECT_EQ(res.snapshot.summary.total_bytes, 1ull << 30);
  std::string out = dir_ / "out";
  auto r = restore_to(res.snapshot, out);
  EXPECT_TRUE(r.errors.empty());
  struct stat st;
  ASSERT_EQ(stat((out + path).c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 1ll << 30);
  EXPECT_LT(st.st_blocks * 512, 64ll << 20);  // still sparse
  auto fd = core::open_file(out + path, O_RDONLY);
  char buf[4];
  ASSERT_EQ(pread(fd->get(), buf, 4, 512ll << 20), 4);
  EXPECT_EQ(std::string(buf, 4), "data");
}

TEST_F(ArchiveTest, RestoreRefusesTraversalNames) {
  std::string out = dir_ / "out";
  for (std::string bad : {"..", "../escape", "/etc/passwd", "a/../../b"}) {
    Tree t;
    t.nodes.push_back(file_node(bad, "pwned"));
    auto s = forge(t);
    RestoreOptions opt;
    opt.target = out;
    auto r = restore(*repo_, s, "/", opt, nullptr);
    ASSERT_TRUE(r.ok());
    EXPECT_FALSE(r->errors.empty()) << bad;
    EXPECT_EQ(r->files, 0u);
  }
  EXPECT_FALSE(fs::exists(dir_ / "escape"));
  EXPECT_FALSE(fs::exists(dir_.path() + "/b"));
  EXPECT_TRUE(fs::is_empty(out));
}

TEST_F(ArchiveTest, RestoreNeverWritesThroughSymlinks) {
  std::string outside = dir_ / "outside";
  fs::create_directories(outside);
  // Duplicate names: a symlink "d" to outside and a directory "d" with a file.
  Tree inner;
  inner.nodes.push_back(file_node("victim", "pwned"));
  Node link;
  link.name = "d";
  link.type = NodeType::kSymlink;
  link.link_target = outside;
  Node dir;
  dir.name = "d";
  dir.type = NodeType::kDir;
  dir.mode = 0755;
  dir.subtree = repo_->save_tree(inner).value();
  Tree root;
  root.nodes = {link, dir};
  auto s = forge(root);
  std::string out = dir_ / "out";
  RestoreOptions opt;
  opt.target = out;
  auto r = restore(*repo_, s, "/", opt, nullptr);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->errors.empty());
  EXPECT_TRUE(fs::is_empty(outside));

  // A symlink already in the target where the snapshot has a directory.
  Tree root2;
  root2.nodes = {dir};
  auto s2 = forge(root2);
  std::string out2 = dir_ / "out2";
  fs::create_directories(out2);
  fs::create_directory_symlink(outside, out2 + "/d");
  opt.target = out2;
  auto r2 = restore(*repo_, s2, "/", opt, nullptr);
  ASSERT_TRUE(r2.ok());
  EXPECT_FALSE(r2->errors.empty());
  EXPECT_TRUE(fs::is_empty(outside));
}

TEST_F(ArchiveTest, SymlinkPointingOutsideIsRestoredAsLinkOnly) {
  Tree t;
  Node link;
  link.name = "escape";
  link.type = NodeType::kSymlink;
  link.link_target = "../../../../etc";
  t.nodes = {link};
  auto s = forge(t);
  std::string out = dir_ / "out";
  auto r = restore_to(s, out);
  EXPECT_TRUE(r.errors.empty());
  EXPECT_TRUE(fs::is_symlink(out + "/escape"));
}

TEST_F(ArchiveTest, CorruptBlobMeansFileIsNotWritten) {
  write_file(src_ + "/good", core::as_bytes("good content"));
  auto res = backup();
  write_file(src_ + "/bad", testing::random_data(200000, 5));
  BackupOptions opt;
  opt.parent = repo::SnapshotRef{res.snapshot_id, res.snapshot};
  auto res2 = backup(opt);
  // Damage the pack holding "bad" (the newest data pack).
  auto tree = locate(*repo_, res2.snapshot.tree, src_ + "/bad").value();
  auto loc = repo_->index().lookup(tree.node.content[0]).value();
  auto bytes = backend_->load({storage::FileType::kPack, loc.pack.hex()}).value();
  bytes[loc.entry.offset + 20] ^= 0xff;
  ASSERT_TRUE(backend_->remove({storage::FileType::kPack, loc.pack.hex()}).ok());
  ASSERT_TRUE(backend_->save({storage::FileType::kPack, loc.pack.hex()}, bytes).ok());

  std::string out = dir_ / "out";
  RestoreOptions ro;
  ro.target = out;
  auto r = restore(*repo_, res2.snapshot, "/", ro, nullptr);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->errors.empty());
  EXPECT_FALSE(fs::exists(out + src_ + "/bad"));
  EXPECT_EQ(read_file(out + src_ + "/good"), "good content");

  repo::CheckOptions co;
  co.read_data = true;
  auto report = repo::check(*repo_, co).value();
  ASSERT_FALSE(report.errors.empty());
  EXPECT_EQ(report.damaged_packs, std::vector<std::string>{loc.pack.hex()});
  EXPECT_EQ(report.affected_snapshots, std::vector<std::string>{res2.snapshot_id});
}

// A store with costly requests, like S3: the restorer streams long runs of a
// pack. This one hands them over in odd-sized pieces, and can break off.
class PieceBackend : public storage::MemoryBackend {
 public:
  bool prefers_whole_reads() const override { return true; }
  core::Status load_stream(const storage::Handle& h, uint64_t offset, uint64_t length,
                           const ByteSink& sink) override {
    ++streams;
    ASSIGN_OR_RETURN(core::Bytes data, load(h, offset, length));
    for (size_t at = 0; at < data.size(); at += kPiece) {
      if (break_after >= 0 && delivered >= break_after)
        return core::Status(core::Code::kTransient, h.to_string() + ": connection reset (gave up)");
      size_t n = std::min(kPiece, data.size() - at);
      TRY(sink(core::ByteView(data.data() + at, n)));
      delivered += static_cast<int64_t>(n);
    }
    return core::ok_status();
  }
  static constexpr size_t kPiece = 7777;
  std::atomic<int> streams{0};
  std::atomic<int64_t> delivered{0};
  int64_t break_after = -1;  // bytes over all streams; -1: never
};

class StreamedRestoreTest : public ArchiveTest {
 protected:
  void SetUp() override {
    pieces_ = std::make_shared<PieceBackend>();
    backend_ = pieces_;
    repo_ = testing::make_repo(backend_);
    src_ = dir_ / "src";
    fs::create_directories(src_);
    for (int i = 0; i < 30; ++i)
      write_file(src_ + "/small" + std::to_string(i), testing::random_data(3000 + 1000 * i, i));
    write_file(src_ + "/big", testing::random_data(5 << 20, 99));  // several blobs
  }
  std::shared_ptr<PieceBackend> pieces_;
};

TEST_F(StreamedRestoreTest, BlobsAreAssembledFromPiecesAcrossGaps) {
  auto res = backup();
  std::string out = dir_ / "out";
  auto r = restore_to(res.snapshot, out);
  ASSERT_TRUE(r.errors.empty()) << r.errors.front();
  EXPECT_GT(pieces_->streams.load(), 0);
  for (int i = 0; i < 30; ++i) {
    std::string name = "/small" + std::to_string(i);
    EXPECT_EQ(read_file(out + src_ + name), read_file(src_ + name)) << name;
  }
  EXPECT_EQ(read_file(out + src_ + "/big"), read_file(src_ + "/big"));
  // Every other small file only: the runs skip the blobs in between.
  std::string some = dir_ / "some";
  RestoreOptions opt;
  opt.target = some;
  opt.includes = {"small1*", "small3"};
  auto part = restore(*repo_, res.snapshot, "/", opt, nullptr);
  ASSERT_TRUE(part.ok());
  ASSERT_TRUE(part->errors.empty()) << part->errors.front();
  EXPECT_EQ(read_file(some + src_ + "/small3"), read_file(src_ + "/small3"));
  EXPECT_EQ(read_file(some + src_ + "/small12"), read_file(src_ + "/small12"));
  EXPECT_FALSE(fs::exists(some + src_ + "/small2"));
  EXPECT_FALSE(fs::exists(some + src_ + "/big"));
}

TEST_F(StreamedRestoreTest, AStreamThatBreaksOffFailsOnlyWhatHadNotArrived) {
  auto res = backup();
  pieces_->break_after = 2 << 20;  // part of the data, then every stream fails
  std::string out = dir_ / "out";
  RestoreOptions opt;
  opt.target = out;
  opt.workers = 1;
  auto r = restore(*repo_, res.snapshot, "/", opt, nullptr);
  ASSERT_TRUE(r.ok());
  ASSERT_FALSE(r->errors.empty());
  EXPECT_NE(r->errors.front().find("connection reset"), std::string::npos) << r->errors.front();
  size_t restored = 0;
  for (const auto& name : fs::directory_iterator(src_)) {
    std::string rel = "/" + name.path().filename().string();
    if (!fs::exists(out + src_ + rel)) continue;                           // not restored: reported
    EXPECT_EQ(read_file(out + src_ + rel), read_file(src_ + rel)) << rel;  // never partial
    ++restored;
  }
  EXPECT_EQ(restored + r->errors.size(), 31u);
  EXPECT_GT(restored, 0u);
}

TEST_F(ArchiveTest, UnreadableFileIsAWarningNotAFailure) {
  if (geteuid() == 0) GTEST_SKIP() << "root reads everything";
  write_file(src_ + "/ok", core::as_bytes("ok"));
  write_file(src_ + "/secret", core::as_bytes("no"));
  chmod((src_ + "/secret").c_str(), 0);
  auto res = backup();
  EXPECT_EQ(res.warnings.size(), 1u);
  EXPECT_EQ(res.snapshot.summary.total_files, 1u);
}

TEST_F(ArchiveTest, FileGrowingDuringBackupStaysConsistent) {
  std::string path = src_ + "/growing.log";
  write_file(path, testing::random_data(4 << 20, 11));
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    auto fd = core::open_file(path, O_WRONLY | O_APPEND);
    auto chunk = testing::random_data(64 << 10, 12);
    for (int i = 0; i < 400 && !stop; ++i) (void)!write(fd->get(), chunk.data(), chunk.size());
  });
  auto res = backup();
  stop = true;
  writer.join();
  std::string out = dir_ / "out";
  auto r = restore_to(res.snapshot, out);
  EXPECT_TRUE(r.errors.empty());
  // Appends only: what was captured is a prefix of the final file, with the recorded size.
  std::string restored = read_file(out + path);
  std::string final_content = read_file(path);
  auto node = locate(*repo_, res.snapshot.tree, path).value().node;
  EXPECT_EQ(restored.size(), node.size);
  EXPECT_EQ(final_content.compare(0, restored.size(), restored), 0);
}

TEST_F(ArchiveTest, StreamVetoedByFinishWritesNoSnapshot) {
  size_t calls = 0;
  StreamSource src;
  src.filename = "dump.sql";
  src.read = [&](uint8_t* b, size_t n) -> core::Result<size_t> {
    if (calls++ > 0) return size_t{0};
    std::memset(b, 'x', std::min<size_t>(n, 100));
    return std::min<size_t>(n, 100);
  };
  src.finish = [] { return core::io_error("pg_dump exited with status 1"); };
  auto r = backup_stream(*repo_, src, {}, nullptr);
  EXPECT_FALSE(r.ok());
  EXPECT_TRUE(repo_->list_snapshots().value().empty());

  calls = 0;
  src.finish = [] { return core::Status(); };
  auto ok = backup_stream(*repo_, src, {}, nullptr);
  ASSERT_TRUE(ok.ok()) << ok.status().message();
  EXPECT_EQ(ok->snapshot.summary.total_bytes, 100u);
  EXPECT_EQ(repo_->list_snapshots().value().size(), 1u);
}

// Entries from a stream (a tar of a base backup): nested paths with implied
// parents, directory metadata arriving after its contents, symlinks.
TEST_F(ArchiveTest, StreamEntriesBecomeATree) {
  std::vector<StreamEntry> entries;
  auto file = [](std::string path, std::string content) {
    StreamEntry e;
    e.path = std::move(path);
    e.mode = 0640;
    auto data = std::make_shared<std::string>(std::move(content));
    auto pos = std::make_shared<size_t>(0);
    e.read = [data, pos](uint8_t* b, size_t n) -> core::Result<size_t> {
      size_t k = std::min(n, data->size() - *pos);
      std::memcpy(b, data->data() + *pos, k);
      *pos += k;
      return k;
    };
    return e;
  };
  entries.push_back(file("./global/pg_control", "control"));
  entries.push_back(file("base/1/1259", std::string(3 << 20, 'r')));
  StreamEntry base;
  base.path = "base/";
  base.type = NodeType::kDir;
  base.mode = 0700;
  base.mtime_ns = 1'000'000'000;
  entries.push_back(base);
  StreamEntry link;
  link.path = "pg_tblspc/16384";
  link.type = NodeType::kSymlink;
  link.link_target = "/srv/ts";
  entries.push_back(link);
  size_t next = 0;
  EntrySource src;
  src.next = [&]() -> core::Result<std::optional<StreamEntry>> {
    if (next == entries.size()) return std::optional<StreamEntry>();
    return std::optional<StreamEntry>(entries[next++]);
  };
  auto r = backup_entries(*repo_, src, {}, nullptr);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->snapshot.paths, (std::vector<std::string>{"/global", "/base", "/pg_tblspc"}));
  EXPECT_EQ(r->snapshot.summary.total_files, 2u);
  EXPECT_EQ(r->snapshot.summary.total_bytes, 7u + (3u << 20));
  auto root = repo_->load_tree(r->snapshot.tree).value();
  ASSERT_EQ(root.nodes.size(), 3u);
  auto base_node = std::find_if(root.nodes.begin(), root.nodes.end(), [](auto& n) { return n.name == "base"; });
  ASSERT_NE(base_node, root.nodes.end());
  EXPECT_EQ(base_node->mtime_ns, 1'000'000'000);
  auto base_tree = repo_->load_tree(*base_node->subtree).value();
  ASSERT_EQ(base_tree.nodes.size(), 1u);
  auto one = repo_->load_tree(*base_tree.nodes[0].subtree).value();
  ASSERT_EQ(one.nodes.size(), 1u);
  EXPECT_EQ(one.nodes[0].name, "1259");
  EXPECT_EQ(one.nodes[0].size, 3u << 20);
  EXPECT_EQ(one.nodes[0].mode, 0640u);

  // Unsafe and repeated paths are refused, and nothing is written.
  for (std::string bad : {"a/../../etc/passwd", "global/pg_control"}) {
    entries = {file("global/pg_control", "x"), file(bad, "y")};
    next = 0;
    auto b = backup_entries(*repo_, src, {}, nullptr);
    EXPECT_FALSE(b.ok()) << bad;
    EXPECT_EQ(b.status().code(), core::Code::kInvalidArgument);
  }
  EXPECT_EQ(repo_->list_snapshots().value().size(), 1u);
}

// Streams that only flow together (parallel dumps held at a common point):
// with `concurrency`, every entry is read at once and each file keeps its
// own content; read one after another, the first stream would wait forever
// (here: a few seconds, then an error).
class TogetherSource {
 public:
  TogetherSource(size_t streams, size_t bytes_each, int fail_stream = -1,
                 std::chrono::seconds patience = std::chrono::seconds(10))
      : streams_(streams), bytes_(bytes_each), fail_(fail_stream), patience_(patience) {}

  EntrySource source(size_t concurrency) {
    EntrySource src;
    src.concurrency = concurrency;
    src.next = [this]() -> core::Result<std::optional<StreamEntry>> {
      if (next_ == streams_) return std::optional<StreamEntry>();
      size_t i = next_++;
      StreamEntry e;
      e.path = "dump/part-" + std::to_string(i) + ".sql";
      auto sent = std::make_shared<size_t>(0);
      e.read = [this, i, sent](uint8_t* b, size_t n) -> core::Result<size_t> {
        if (*sent == 0) TRY(wait_for_all());
        if (static_cast<int>(i) == fail_ && *sent > bytes_ / 2)
          return core::io_error("stream broke");
        // The failing case's healthy streams never end: only the failure stops them.
        size_t left = fail_ >= 0 ? n : std::min(n, bytes_ - *sent);
        for (size_t k = 0; k < left; ++k) b[k] = static_cast<uint8_t>((*sent + k) * (i + 1) / 4099);
        *sent += left;
        return left;
      };
      return std::optional<StreamEntry>(std::move(e));
    };
    return src;
  }

 private:
  core::Status wait_for_all() {
    std::unique_lock lock(mu_);
    started_++;
    cv_.notify_all();
    if (!cv_.wait_for(lock, patience_, [&] { return started_ >= streams_; }))
      return core::io_error("the other streams never started");
    return {};
  }
  size_t streams_, bytes_;
  int fail_;
  std::chrono::seconds patience_;
  size_t next_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  size_t started_ = 0;
};

TEST_F(ArchiveTest, ConcurrentEntriesFlowTogetherAndKeepTheirContent) {
  const size_t kStreams = 3, kBytes = 5u << 20;
  TogetherSource together(kStreams, kBytes);
  auto r = backup_entries(*repo_, together.source(kStreams), {}, nullptr);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->snapshot.summary.total_files, kStreams);
  EXPECT_EQ(r->snapshot.summary.total_bytes, kStreams * kBytes);
  std::string out = dir_ / "out";
  auto restored = restore_to(r->snapshot, out);
  EXPECT_TRUE(restored.errors.empty());
  for (size_t i = 0; i < kStreams; ++i) {
    std::string got = read_file(out + "/dump/part-" + std::to_string(i) + ".sql");
    ASSERT_EQ(got.size(), kBytes) << i;
    bool same = true;
    for (size_t k = 0; k < got.size() && same; ++k)
      same = static_cast<uint8_t>(got[k]) == static_cast<uint8_t>(k * (i + 1) / 4099);
    EXPECT_TRUE(same) << "content of stream " << i;
  }
}

TEST_F(ArchiveTest, ConcurrentEntriesReadOneByOneWouldStall) {
  TogetherSource together(2, 1u << 20, -1, std::chrono::seconds(1));
  auto r = backup_entries(*repo_, together.source(1), {}, nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("never started"), std::string::npos) << r.status().message();
}

TEST_F(ArchiveTest, OneFailingConcurrentEntryStopsTheOthersAndWritesNoSnapshot) {
  TogetherSource together(3, 4u << 20, /*fail_stream=*/1);
  auto r = backup_entries(*repo_, together.source(3), {}, nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("stream broke"), std::string::npos) << r.status().message();
  EXPECT_TRUE(repo_->list_snapshots().value().empty());
}

// A base backup read from a data directory: the directory's contents become
// the root, excluded paths are left out, relation files are cut in fixed
// chunks, and entries that exist only after the walk are added (replacing a
// walked node of the same name).
TEST_F(ArchiveTest, PathsThenEntriesMergesLateEntriesIntoTheRoot) {
  std::string data = src_ + "/data";
  fs::create_directories(data + "/base/1");
  fs::create_directories(data + "/pg_wal");
  write_file(data + "/PG_VERSION", core::as_bytes("15"));
  write_file(data + "/postmaster.pid", core::as_bytes("123"));
  write_file(data + "/pg_wal/000000010000000000000001", core::as_bytes("live wal"));
  std::string rel(200 << 10, '\0');
  for (size_t i = 0; i < rel.size(); ++i) rel[i] = static_cast<char>(i * 7 / 8192);
  write_file(data + "/base/1/1259", core::as_bytes(rel));
  BackupOptions opt;
  opt.redirects = {{"/", data}};
  opt.excludes = {"/pg_wal", "/postmaster.pid"};
  opt.fixed_chunk = [](const std::string& p) { return p.starts_with("/base/") ? size_t{64 << 10} : 0; };
  std::mutex mu;
  std::vector<std::string> seen;
  opt.on_file = [&](const std::string& p, const Node& n) {
    std::lock_guard lock(mu);
    seen.push_back(p + ":" + std::to_string(n.size));
  };
  std::vector<std::pair<std::string, std::string>> late = {{"backup_label", "START WAL LOCATION"},
                                                           {"pg_wal/000000010000000000000002", "wal"},
                                                           {"PG_VERSION", "16"}};
  size_t next = 0;
  bool veto = false;
  auto source = [&] {
    EntrySource src;
    src.next = [&]() -> core::Result<std::optional<StreamEntry>> {
      if (next == late.size()) return std::optional<StreamEntry>();
      StreamEntry e;
      e.path = late[next].first;
      auto text = std::make_shared<std::string>(late[next++].second);
      auto pos = std::make_shared<size_t>(0);
      e.read = [text, pos](uint8_t* b, size_t n) -> core::Result<size_t> {
        size_t k = std::min(n, text->size() - *pos);
        std::memcpy(b, text->data() + *pos, k);
        *pos += k;
        return k;
      };
      return std::optional<StreamEntry>(std::move(e));
    };
    src.finish = [&]() -> core::Status { return veto ? core::io_error("vetoed") : core::Status(); };
    src.engine = [] { return nlohmann::json{{"stop_lsn", "0/3000000"}}; };
    return src;
  };
  auto r = backup_paths_then_entries(*repo_, {"/"}, source(), opt, nullptr);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_TRUE(r->warnings.empty());
  EXPECT_EQ(r->snapshot.engine.value("stop_lsn", ""), "0/3000000");
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen, (std::vector<std::string>{"/PG_VERSION:2", "/base/1/1259:204800"}));
  auto root = repo_->load_tree(r->snapshot.tree).value();
  std::vector<std::string> names;
  for (const auto& n : root.nodes) names.push_back(n.name);
  EXPECT_EQ(names, (std::vector<std::string>{"PG_VERSION", "backup_label", "base", "pg_wal"}));
  auto base = repo_->load_tree(*root.nodes[2].subtree).value();
  auto one = repo_->load_tree(*base.nodes[0].subtree).value();
  EXPECT_EQ(one.nodes[0].content.size(), 4u);  // 3 x 64 KiB + 8 KiB
  std::string out = dir_ / "out";
  restore_to(r->snapshot, out);
  EXPECT_EQ(read_file(out + "/PG_VERSION"), "16");
  EXPECT_EQ(read_file(out + "/base/1/1259"), rel);
  EXPECT_EQ(read_file(out + "/pg_wal/000000010000000000000002"), "wal");
  EXPECT_FALSE(fs::exists(out + "/pg_wal/000000010000000000000001"));
  EXPECT_FALSE(fs::exists(out + "/postmaster.pid"));

  // A veto from the late entries means no snapshot.
  next = 0;
  veto = true;
  auto v = backup_paths_then_entries(*repo_, {"/"}, source(), opt, nullptr);
  EXPECT_FALSE(v.ok());
  EXPECT_EQ(repo_->list_snapshots().value().size(), 1u);
}

}  // namespace
}  // namespace cairn::archive
