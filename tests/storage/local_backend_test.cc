// LocalBackend specifics (layout, temp files, disk full) and open_backend().
#include "storage/local_backend.h"

#include <gtest/gtest.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

namespace cairn::storage {
namespace {

namespace fs = std::filesystem;
using core::Bytes;
using core::Code;

std::string hex_id(std::mt19937_64& rng, const std::string& prefix = "") {
  Bytes id(32);
  for (auto& b : id) b = static_cast<uint8_t>(rng());
  std::string s = core::hex_encode(id);
  return prefix + s.substr(prefix.size());
}

// Every ".tmp-" file anywhere under dir.
std::vector<std::string> temp_files(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    if (it->path().filename().string().starts_with(".tmp-")) out.push_back(it->path().string());
  }
  return out;
}

class LocalBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "cairn-local-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    root_ = dir_ + "/repo";
    backend_ = std::make_unique<LocalBackend>(root_);
  }
  void TearDown() override {
    if (mounted_) ::umount2(mount_point_.c_str(), MNT_DETACH);
    std::error_code ec;
    fs::permissions(dir_, fs::perms::owner_all, fs::perm_options::add, ec);
    fs::remove_all(dir_, ec);
  }

  std::string dir_, root_;
  std::unique_ptr<LocalBackend> backend_;
  std::mt19937_64 rng_{7};
  bool mounted_ = false;
  std::string mount_point_;
};

TEST(BackendHandleTest, PathsInRepository) {
  const std::string id = "1a2b3c";
  EXPECT_EQ((Handle{FileType::kPack, id}).to_string(), "data/1a/1a2b3c");
  EXPECT_EQ((Handle{FileType::kKey, id}).to_string(), "keys/1a2b3c");
  EXPECT_EQ((Handle{FileType::kIndex, id}).to_string(), "index/1a2b3c");
  EXPECT_EQ((Handle{FileType::kSnapshot, id}).to_string(), "snapshots/1a2b3c");
  EXPECT_EQ((Handle{FileType::kLock, id}).to_string(), "locks/1a2b3c");
  EXPECT_EQ((Handle{FileType::kConfig, "config"}).to_string(), "config");
  EXPECT_STREQ(type_dir(FileType::kConfig), "");
  EXPECT_STREQ(type_dir(FileType::kPack), "data");
}

TEST(OpenBackendTest, LocalLocations) {
  auto abs = open_backend("/srv/backups/repo/");
  ASSERT_TRUE(abs.ok()) << abs.status().to_string();
  EXPECT_EQ((*abs)->location(), "/srv/backups/repo");

  auto prefixed = open_backend("local:/srv/backups/./repo");
  ASSERT_TRUE(prefixed.ok());
  EXPECT_EQ((*prefixed)->location(), "/srv/backups/repo");

  auto rel = open_backend("some/repo");
  ASSERT_TRUE(rel.ok());
  EXPECT_EQ((*rel)->location(), (fs::current_path() / "some/repo").string());

  // A colon after a slash is part of a path, not a scheme.
  auto colon = open_backend("./backup:2024");
  ASSERT_TRUE(colon.ok());
  EXPECT_TRUE((*colon)->location().ends_with("/backup:2024"));
}

TEST(OpenBackendTest, RejectsOtherSchemes) {
  // (s3: locations are covered by tests/storage/s3_backend_test.cc.)
  for (const char* bad : {"ftp:host/repo", "sftp:user@host:/repo", "", "local:"}) {
    auto r = open_backend(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << bad;
  }
}

TEST_F(LocalBackendTest, CreateMakesLayout) {
  ASSERT_TRUE(backend_->create().ok());
  for (const char* sub : {"", "/keys", "/data", "/index", "/snapshots", "/locks", "/data/00",
                          "/data/7f", "/data/ff"}) {
    struct stat st;
    ASSERT_EQ(::stat((root_ + sub).c_str(), &st), 0) << sub;
    EXPECT_TRUE(S_ISDIR(st.st_mode)) << sub;
    EXPECT_EQ(st.st_mode & 077, 0u) << sub;
  }
  int subdirs = 0;
  for (const auto& e : fs::directory_iterator(root_ + "/data")) subdirs += e.is_directory();
  EXPECT_EQ(subdirs, 256);
  auto ex = backend_->exists();
  ASSERT_TRUE(ex.ok());
  EXPECT_FALSE(*ex);  // no config yet
}

TEST_F(LocalBackendTest, CreateRefusedOnceConfigExists) {
  ASSERT_TRUE(backend_->create().ok());
  // An interrupted init (no config yet) may be re-run.
  ASSERT_TRUE(backend_->create().ok());
  ASSERT_TRUE(backend_->save(Handle{FileType::kConfig, "config"}, core::to_bytes("{}")).ok());
  core::Status st = backend_->create();
  EXPECT_EQ(st.code(), Code::kAlreadyExists);
  EXPECT_NE(st.message().find(root_), std::string::npos);
  auto ex = backend_->exists();
  ASSERT_TRUE(ex.ok());
  EXPECT_TRUE(*ex);
}

TEST_F(LocalBackendTest, ExistsFalseWithoutRoot) {
  auto ex = backend_->exists();
  ASSERT_TRUE(ex.ok());
  EXPECT_FALSE(*ex);
  // Saving into a repository that was never created fails rather than creating one.
  EXPECT_FALSE(backend_->save(Handle{FileType::kPack, hex_id(rng_)}, core::to_bytes("x")).ok());
  EXPECT_FALSE(fs::exists(root_));
  EXPECT_FALSE(backend_->list(FileType::kPack, [](const FileInfo&) {}).ok());
}

TEST_F(LocalBackendTest, ObjectsLandAtTheirPaths) {
  ASSERT_TRUE(backend_->create().ok());
  Handle h{FileType::kPack, hex_id(rng_, "c3")};
  ASSERT_TRUE(backend_->save(h, core::to_bytes("pack")).ok());
  EXPECT_TRUE(fs::is_regular_file(root_ + "/data/c3/" + h.name));
  EXPECT_EQ(fs::file_size(root_ + "/" + h.to_string()), 4u);
}

// Counts the fsyncs of save() (files and folders).
class CountingLocalBackend : public LocalBackend {
 public:
  using LocalBackend::LocalBackend;
  int file_syncs = 0, dir_syncs = 0;

 protected:
  core::Status sync_file(int fd, const std::string& path) override {
    ++file_syncs;
    return LocalBackend::sync_file(fd, path);
  }
  core::Status sync_dir(const std::string& dir) override {
    ++dir_syncs;
    return LocalBackend::sync_dir(dir);
  }
};

// Pages of `path` in the page cache.
size_t resident_pages(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return 0;
  struct stat st;
  ::fstat(fd, &st);
  size_t pages = (static_cast<size_t>(st.st_size) + 4095) / 4096;
  void* map = ::mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) return 0;
  std::vector<unsigned char> in(pages);
  ::mincore(map, static_cast<size_t>(st.st_size), in.data());
  ::munmap(map, static_cast<size_t>(st.st_size));
  size_t n = 0;
  for (unsigned char c : in) n += c & 1;
  return n;
}

// Packs go to disk with O_DIRECT (through an aligned bounce buffer, the last
// block padded and cut back): every length round-trips exactly, and a
// durable pack leaves (almost) nothing in the page cache.
TEST_F(LocalBackendTest, PacksOfAnyLengthRoundTripThroughDirectWrites) {
  ASSERT_TRUE(backend_->create().ok());
  int probe = ::open((dir_ + "/probe").c_str(), O_WRONLY | O_CREAT | O_DIRECT, 0600);
  bool direct = probe >= 0;
  if (probe >= 0) ::close(probe);
  for (size_t size : {size_t{1}, size_t{(256 << 10) - 1}, size_t{256 << 10}, size_t{(256 << 10) + 1},
                      size_t{2 << 20}, size_t{(2 << 20) + 4095}, size_t{(5 << 20) + 17}}) {
    for (bool no_sync : {false, true}) {
      Bytes data(size);
      for (auto& b : data) b = static_cast<uint8_t>(rng_());
      Handle h{FileType::kPack, hex_id(rng_)};
      SaveOptions opt;
      opt.no_sync = no_sync;
      ASSERT_TRUE(backend_->save_with(h, data, opt).ok()) << size;
      auto back = backend_->load(h, 0, 0);
      ASSERT_TRUE(back.ok()) << size;
      EXPECT_EQ(*back, data) << size << (no_sync ? " no_sync" : "");
      std::string path = root_ + "/" + h.to_string();
      EXPECT_EQ(fs::file_size(path), size);
      if (direct && !no_sync && size >= (256 << 10) && size % 4096 == 0) {
        // Read back above through the cache: drop it and look again.
        int fd = ::open(path.c_str(), O_RDONLY);
        ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        ::close(fd);
        Handle h2{FileType::kPack, hex_id(rng_)};
        ASSERT_TRUE(backend_->save(h2, data).ok());
        EXPECT_LT(resident_pages(root_ + "/" + h2.to_string()), size / 4096 / 2) << size;
      }
    }
  }
  EXPECT_TRUE(temp_files(root_).empty());
}

TEST_F(LocalBackendTest, SaveSyncsFileAndFolder) {
  CountingLocalBackend b(root_);
  ASSERT_TRUE(b.create().ok());
  for (FileType t : {FileType::kPack, FileType::kIndex, FileType::kWal, FileType::kLock}) {
    ASSERT_TRUE(b.save(Handle{t, hex_id(rng_)}, core::to_bytes("x")).ok());
  }
  ASSERT_TRUE(b.save_with(Handle{FileType::kSnapshot, hex_id(rng_)}, core::to_bytes("x"), {}).ok());
  EXPECT_EQ(b.file_syncs, 5);
  EXPECT_EQ(b.dir_syncs, 5);
}

// data_consumed (the repository frees a pack's buffer there) comes once per
// save, after the write and before any fsync.
TEST_F(LocalBackendTest, DataConsumedComesOnceBeforeTheSyncs) {
  CountingLocalBackend b(root_);
  ASSERT_TRUE(b.create().ok());
  for (bool no_sync : {false, true}) {
    const int syncs_before = b.file_syncs + b.dir_syncs;
    int calls = 0, syncs_at_call = -1;
    SaveOptions options;
    options.no_sync = no_sync;
    options.data_consumed = [&] {
      ++calls;
      syncs_at_call = b.file_syncs + b.dir_syncs;
    };
    Handle h{FileType::kSnapshot, hex_id(rng_)};  // its folder exists: no syncs to make one
    ASSERT_TRUE(b.save_with(h, core::to_bytes("pack bytes"), options).ok());
    EXPECT_EQ(calls, 1);
    EXPECT_EQ(syncs_at_call, syncs_before);
    EXPECT_EQ(b.load(h).value(), core::to_bytes("pack bytes"));
  }
}

TEST_F(LocalBackendTest, VolatileSaveIsReadableAndNotSynced) {
  CountingLocalBackend b(root_);
  ASSERT_TRUE(b.create().ok());
  SaveOptions volatile_save;
  volatile_save.no_sync = true;
  Handle h{FileType::kLock, hex_id(rng_)};
  ASSERT_TRUE(b.save_with(h, core::to_bytes("lock record"), volatile_save).ok());
  EXPECT_EQ(b.file_syncs, 0);
  EXPECT_EQ(b.dir_syncs, 0);
  EXPECT_TRUE(fs::is_regular_file(root_ + "/locks/" + h.name));
  EXPECT_EQ(b.load(h).value(), core::to_bytes("lock record"));
  EXPECT_EQ(fs::status(root_ + "/locks/" + h.name).permissions(),
            fs::perms::owner_read | fs::perms::owner_write);
  // Still immutable, and no temp file stays behind either way.
  EXPECT_EQ(b.save_with(h, core::to_bytes("other"), volatile_save).code(), Code::kAlreadyExists);
  EXPECT_EQ(b.load(h).value(), core::to_bytes("lock record"));
  EXPECT_EQ(temp_files(root_), std::vector<std::string>{});
  int listed = 0;
  ASSERT_TRUE(b.list(FileType::kLock, [&](const FileInfo& fi) {
                 EXPECT_EQ(fi.name, h.name);
                 ++listed;
               }).ok());
  EXPECT_EQ(listed, 1);
  EXPECT_EQ(b.file_syncs, 0);
  EXPECT_EQ(b.dir_syncs, 0);
}

TEST_F(LocalBackendTest, VolatileSaveStillMakesAMissingTypeFolderDurably) {
  // A repository from an older version may lack a type folder: it is made
  // (and its parent synced) once, even for a volatile save.
  CountingLocalBackend b(root_);
  ASSERT_TRUE(b.create().ok());
  fs::remove(root_ + "/locks");
  SaveOptions volatile_save;
  volatile_save.no_sync = true;
  Handle h{FileType::kLock, hex_id(rng_)};
  ASSERT_TRUE(b.save_with(h, core::to_bytes("l"), volatile_save).ok());
  EXPECT_EQ(b.load(h).value(), core::to_bytes("l"));
  EXPECT_EQ(b.file_syncs, 0);
  EXPECT_EQ(b.dir_syncs, 1);
}

TEST_F(LocalBackendTest, NoTempFilesLeftAfterSaves) {
  ASSERT_TRUE(backend_->create().ok());
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(backend_->save(Handle{FileType::kPack, hex_id(rng_)}, Bytes(i * 100, 1)).ok());
  }
  ASSERT_TRUE(backend_->save(Handle{FileType::kSnapshot, hex_id(rng_)}, Bytes(10, 2)).ok());
  ASSERT_TRUE(backend_->save(Handle{FileType::kConfig, "config"}, Bytes(10, 3)).ok());
  EXPECT_EQ(temp_files(root_), std::vector<std::string>{});
}

TEST_F(LocalBackendTest, RefusedOverwriteLeavesNoTempFile) {
  // The temp file is fully written before link() refuses: it must still go.
  ASSERT_TRUE(backend_->create().ok());
  Handle h{FileType::kIndex, hex_id(rng_)};
  ASSERT_TRUE(backend_->save(h, core::to_bytes("one")).ok());
  EXPECT_EQ(backend_->save(h, Bytes(100000, 9)).code(), Code::kAlreadyExists);
  EXPECT_EQ(temp_files(root_), std::vector<std::string>{});
  EXPECT_EQ(backend_->load(h).value(), core::to_bytes("one"));
}

TEST_F(LocalBackendTest, SaveWhereFolderIsAFileFails) {
  ASSERT_TRUE(backend_->create().ok());
  fs::remove(root_ + "/keys");
  std::ofstream(root_ + "/keys") << "not a folder";
  core::Status st = backend_->save(Handle{FileType::kKey, hex_id(rng_)}, core::to_bytes("k"));
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find(root_ + "/keys/"), std::string::npos) << st.to_string();
  EXPECT_EQ(temp_files(root_), std::vector<std::string>{});
}

TEST_F(LocalBackendTest, SaveInReadOnlyFolderFails) {
  if (::geteuid() == 0) GTEST_SKIP() << "root ignores directory permissions";
  ASSERT_TRUE(backend_->create().ok());
  fs::permissions(root_ + "/snapshots", fs::perms::owner_read | fs::perms::owner_exec);
  core::Status st = backend_->save(Handle{FileType::kSnapshot, hex_id(rng_)}, Bytes(10, 1));
  EXPECT_EQ(st.code(), Code::kPermissionDenied) << st.to_string();
  fs::permissions(root_ + "/snapshots", fs::perms::owner_all);
  EXPECT_EQ(temp_files(root_), std::vector<std::string>{});
}

TEST_F(LocalBackendTest, PackFolderCreatedOnDemand) {
  ASSERT_TRUE(backend_->create().ok());
  fs::remove_all(root_ + "/data");
  Handle h{FileType::kPack, hex_id(rng_, "ab")};
  ASSERT_TRUE(backend_->save(h, core::to_bytes("p")).ok());
  EXPECT_TRUE(fs::is_directory(root_ + "/data/ab"));
  int n = 0;
  ASSERT_TRUE(backend_
                  ->list(FileType::kPack,
                         [&](const FileInfo& fi) {
                           EXPECT_EQ(fi.name, h.name);
                           ++n;
                         })
                  .ok());
  EXPECT_EQ(n, 1);
}

TEST_F(LocalBackendTest, ListIgnoresTempAndStrayEntries) {
  ASSERT_TRUE(backend_->create().ok());
  Handle h{FileType::kPack, hex_id(rng_, "ab")};
  ASSERT_TRUE(backend_->save(h, core::to_bytes("p")).ok());
  std::ofstream(root_ + "/data/ab/.tmp-" + h.name + "-123") << "partial";
  std::ofstream(root_ + "/data/README") << "stray";
  fs::create_directory(root_ + "/data/ab/subdir");
  fs::create_directory(root_ + "/index/subdir");
  std::ofstream(root_ + "/index/.tmp-x") << "partial";
  std::vector<std::string> packs, indexes;
  ASSERT_TRUE(
      backend_->list(FileType::kPack, [&](const FileInfo& fi) { packs.push_back(fi.name); }).ok());
  ASSERT_TRUE(
      backend_->list(FileType::kIndex, [&](const FileInfo& fi) { indexes.push_back(fi.name); })
          .ok());
  EXPECT_EQ(packs, std::vector<std::string>{h.name});
  EXPECT_TRUE(indexes.empty());
}

TEST_F(LocalBackendTest, DiskFullIsNoSpace) {
  if (::geteuid() != 0) GTEST_SKIP() << "mounting a small tmpfs needs root";
  mount_point_ = dir_ + "/small";
  fs::create_directory(mount_point_);
  if (::mount("tmpfs", mount_point_.c_str(), "tmpfs", 0, "size=4m") != 0) {
    GTEST_SKIP() << "cannot mount tmpfs: " << std::strerror(errno);
  }
  mounted_ = true;
  const std::string root = mount_point_ + "/repo";
  LocalBackend small(root);
  ASSERT_TRUE(small.create().ok());

  std::vector<std::pair<Handle, Bytes>> saved;
  core::Status st;
  for (int i = 0; i < 64 && st.ok(); ++i) {
    Handle h{FileType::kPack, hex_id(rng_)};
    Bytes data(256 << 10, static_cast<uint8_t>(i));
    st = small.save(h, data);
    if (st.ok()) saved.emplace_back(h, std::move(data));
  }
  ASSERT_FALSE(st.ok()) << "4 MiB tmpfs never filled up";
  EXPECT_EQ(st.code(), Code::kNoSpace) << st.to_string();
  EXPECT_NE(st.message().find(root + "/data/"), std::string::npos) << st.to_string();
  EXPECT_GT(saved.size(), 5u);
  for (const auto& [h, data] : saved) {
    auto r = small.load(h);
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    EXPECT_TRUE(*r == data);
  }
  EXPECT_EQ(temp_files(root), std::vector<std::string>{});

  ASSERT_EQ(::umount(mount_point_.c_str()), 0) << std::strerror(errno);
  mounted_ = false;
}

}  // namespace
}  // namespace cairn::storage
