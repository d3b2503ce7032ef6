#include "engines/volume/volume.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "engines/volume/mounts.h"
#include "unit/test_util.h"

namespace cairn::engines::volume {
namespace {

namespace fs = std::filesystem;

TEST(VolumeMounts, ParsesMountinfo) {
  auto m = parse_mountinfo(
      "22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
      "43 22 0:39 /data /srv/my\\040data rw,relatime shared:5 master:2 - btrfs /dev/loop0 "
      "rw,subvol=/data\n"
      "44 22 0:45 / /tank rw - zfs tank/ds rw,xattr\n"
      "garbage line\n");
  ASSERT_EQ(m.size(), 3u);
  EXPECT_EQ(m[1].id, 43);
  EXPECT_EQ(m[1].root, "/data");
  EXPECT_EQ(m[1].mount_point, "/srv/my data");
  EXPECT_EQ(m[1].fstype, "btrfs");
  EXPECT_EQ(m[1].source, "/dev/loop0");
  EXPECT_EQ(m[1].device, makedev(0, 39));
  EXPECT_EQ(m[2].source, "tank/ds");
}

TEST(VolumeMounts, MountOfAPath) {
  auto m = mount_of("/proc/self");
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ(m->mount_point, "/proc");
  EXPECT_EQ(m->fstype, "proc");
  EXPECT_FALSE(mount_of("/no/such/path").ok());
}

TEST(VolumeMounts, GlobEscape) { EXPECT_EQ(glob_escape("/a[1]/*?\\"), "/a\\[1\\]/\\*\\?\\\\"); }

TEST(VolumeNames, OrphansAreThisServicesSnapshotsOfGoneProcesses) {
  long long now = static_cast<long long>(time(nullptr));
  EXPECT_EQ(snapshot_name(".cairn-snap-", "shop", 42, 1700000000),
            ".cairn-snap-shop-42-1700000000");
  // This process is alive and started before `now`.
  EXPECT_FALSE(
      is_orphan(snapshot_name(".cairn-snap-", "shop", getpid(), now), ".cairn-snap-", "shop"));
  // A pid that cannot exist (above pid_max's ceiling).
  EXPECT_TRUE(
      is_orphan(snapshot_name(".cairn-snap-", "shop", 99999999, now), ".cairn-snap-", "shop"));
  // Our pid, but the snapshot is older than this process: the pid was reused.
  EXPECT_TRUE(
      is_orphan(snapshot_name(".cairn-snap-", "shop", getpid(), 1000), ".cairn-snap-", "shop"));
  // Another service's (whose name starts like ours), other prefixes, junk.
  EXPECT_FALSE(
      is_orphan(snapshot_name(".cairn-snap-", "shop-eu", 99999999, now), ".cairn-snap-", "shop"));
  EXPECT_FALSE(is_orphan("cairn-snap-shop-99999999-1", ".cairn-snap-", "shop"));
  EXPECT_FALSE(is_orphan(".cairn-snap-shop-x-1", ".cairn-snap-", "shop"));
  EXPECT_FALSE(is_orphan(".cairn-snap-shop-1-", ".cairn-snap-", "shop"));
}

// The freeze guard on a real file system: a loop-mounted ext4 image (root only).
class FreezeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (getuid() != 0) GTEST_SKIP() << "needs root (loop mount, FIFREEZE)";
    if (system("command -v mkfs.ext4 >/dev/null && command -v fsfreeze >/dev/null") != 0)
      GTEST_SKIP() << "needs mkfs.ext4 and fsfreeze";
    img_ = dir_ / "fs.img";
    mnt_ = dir_ / "mnt";
    fs::create_directories(mnt_);
    std::string cmd = "truncate -s 64M " + img_ + " && mkfs.ext4 -q " + img_ +
                      " && mount -o loop " + img_ + " " + mnt_;
    if (system(cmd.c_str()) != 0) GTEST_SKIP() << "cannot loop-mount an ext4 image here";
    mounted_ = true;
  }
  void TearDown() override {
    if (!mounted_) return;
    (void)!system(("fsfreeze -u " + mnt_ + " 2>/dev/null; umount " + mnt_).c_str());
  }
  // True while the file system is frozen: a second FIFREEZE fails with EBUSY.
  bool frozen() {
    int fd = open(mnt_.c_str(), O_RDONLY | O_DIRECTORY);
    if (ioctl(fd, FIFREEZE, 0) == 0) {
      ioctl(fd, FITHAW, 0);
      close(fd);
      return false;
    }
    int e = errno;
    close(fd);
    return e == EBUSY;
  }
  testing::TempDir dir_;
  std::string img_, mnt_;
  bool mounted_ = false;
};

TEST_F(FreezeTest, FreezesUntilThawedOrDestroyed) {
  {
    auto f = Freeze::start(mnt_);
    ASSERT_TRUE(f.ok()) << f.status().message();
    EXPECT_TRUE(frozen());
    EXPECT_TRUE((*f)->thaw().ok());
    EXPECT_FALSE(frozen());
    EXPECT_TRUE((*f)->thaw().ok());  // twice is fine
    auto g = Freeze::start(mnt_);
    ASSERT_TRUE(g.ok());
    EXPECT_TRUE(frozen());
  }  // destroyed without thaw()
  EXPECT_FALSE(frozen());
  EXPECT_FALSE(Freeze::start(dir_ / "missing").ok());
}

TEST_F(FreezeTest, GuardianThawsWhenTheFreezerIsKilled) {
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto f = Freeze::start(mnt_);
    if (!f.ok()) _exit(1);
    (void)f->release();  // never thawed by us
    raise(SIGKILL);
    _exit(2);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "child status " << status;
  // The guardian sees end of file on its stdin and thaws; wait for it.
  bool thawed = false;
  for (int i = 0; i < 600 && !thawed; i++) {
    thawed = !frozen();
    if (!thawed) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(thawed);
}

}  // namespace
}  // namespace cairn::engines::volume
