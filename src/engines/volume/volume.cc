#include "engines/volume/volume.h"

#include <dirent.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <csignal>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>

#include "core/process.h"
#include "engines/exec/exec.h"
#include "engines/volume/mounts.h"

namespace cairn::engines::volume {

namespace fs = std::filesystem;

namespace {

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n"), e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

std::vector<std::string> lines(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  std::string l;
  while (std::getline(in, l))
    if (!trim(l).empty()) out.push_back(trim(l));
  return out;
}

bool have_tool(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::istringstream in(path ? path : "/usr/sbin:/usr/bin:/sbin:/bin");
  std::string dir;
  while (std::getline(in, dir, ':'))
    if (!dir.empty() && access((dir + "/" + name).c_str(), X_OK) == 0) return true;
  return false;
}

core::Status run(const std::vector<std::string>& argv) {
  return core::run_and_capture(argv).status();
}

std::string real_path(const std::string& p) {
  char buf[PATH_MAX];
  return realpath(p.c_str(), buf) ? std::string(buf) : std::string();
}

// Seconds since the epoch at which process `pid` started, or -1.
long long process_start(long pid) {
  std::ifstream stat_file(fmt::format("/proc/{}/stat", pid));
  std::string text((std::istreambuf_iterator<char>(stat_file)), std::istreambuf_iterator<char>());
  size_t close = text.rfind(')');  // the command name may hold spaces and parentheses
  if (close == std::string::npos) return -1;
  std::istringstream rest(text.substr(close + 2));
  std::string field;
  unsigned long long ticks = 0;
  for (int i = 3; i <= 22 && rest >> field; i++)
    if (i == 22) ticks = std::strtoull(field.c_str(), nullptr, 10);
  std::ifstream proc_stat("/proc/stat");
  std::string key;
  long long btime = -1;
  while (proc_stat >> key)
    if (key == "btime") {
      proc_stat >> btime;
      break;
    }
  if (btime < 0) return -1;
  return btime +
         static_cast<long long>(ticks / static_cast<unsigned long long>(sysconf(_SC_CLK_TCK)));
}

// --- drivers ---------------------------------------------------------------

// One snapshot mechanism, resolved for one source.
class Driver {
 public:
  virtual ~Driver() = default;
  virtual std::string name() const = 0;
  virtual std::string prefix() const = 0;  // of snapshot names
  // The path the files are recorded under: the subvolume or mount point.
  virtual std::string record_path() const = 0;
  // The mount point that `freeze` freezes.
  virtual std::string mount_point() const = 0;
  // Snapshot names of this source (any service's, as far as they start with prefix()).
  virtual core::Result<std::vector<std::string>> list() = 0;
  // Takes snapshot `name`; returns the folder its files are read from.
  virtual core::Result<std::string> create(const std::string& name) = 0;
  // Deletes snapshot `name` and whatever create() made for it; what is gone
  // already is fine, so it may run twice and after a half-done create().
  virtual core::Status remove(const std::string& name) = 0;
  // Where the snapshot is, for messages ("delete it by hand").
  virtual std::string where(const std::string& name) const = 0;
  // Recorded paths to leave out (a snapshot folder inside the source).
  virtual std::vector<std::string> excludes() const { return {}; }
};

// btrfs: `btrfs subvolume snapshot -r SRC DIR/NAME` next to the subvolume
// (its parent folder, when that is on the same mount), else in
// SRC/.cairn-snapshots, or in snapshot_dir.
class Btrfs : public Driver {
 public:
  static core::Result<std::unique_ptr<Driver>> open(const VolumeOptions& o) {
    if (!have_tool("btrfs"))
      return core::unsupported("btrfs-progs is not installed (no btrfs command)");
    auto d = std::make_unique<Btrfs>();
    d->source_ = real_path(o.source);
    if (d->source_.empty()) return core::errno_status(errno, "source " + o.source);
    std::string type = fs_type(d->source_);
    if (type != "btrfs")
      return core::invalid_argument(fmt::format("source {} is on {}, not btrfs", o.source, type));
    struct stat st;
    if (stat(d->source_.c_str(), &st) != 0) return core::errno_status(errno, "source " + o.source);
    if (st.st_ino != 256)  // BTRFS_FIRST_FREE_OBJECTID: the root of a subvolume
      return core::invalid_argument(
          fmt::format("source {} is a folder, not a btrfs subvolume: only subvolumes can be "
                      "snapshotted (give the subvolume "
                      "that holds it, or make it one with `btrfs subvolume create`)",
                      o.source));
    ASSIGN_OR_RETURN(Mount m, mount_of(d->source_));
    d->mount_ = m.mount_point;
    if (!o.snapshot_dir.empty()) {
      d->dir_ = o.snapshot_dir;
    } else {
      std::string parent = fs::path(d->source_).parent_path().string();
      auto pm = d->source_ == "/" ? core::Result<Mount>(core::not_found("/")) : mount_of(parent);
      d->dir_ = pm.ok() && pm->id == m.id
                    ? parent
                    : (d->source_ == "/" ? "" : d->source_) + "/.cairn-snapshots";
    }
    return std::unique_ptr<Driver>(std::move(d));
  }
  std::string name() const override { return "btrfs"; }
  std::string prefix() const override { return ".cairn-snap-"; }
  std::string record_path() const override { return source_; }
  std::string mount_point() const override { return mount_; }
  std::string where(const std::string& n) const override { return dir_ + "/" + n; }
  std::vector<std::string> excludes() const override {
    std::string dir = real_path(dir_).empty() ? dir_ : real_path(dir_);
    if (dir.size() > source_.size() && dir.compare(0, source_.size(), source_) == 0 &&
        (source_ == "/" || dir[source_.size()] == '/'))
      return {glob_escape(dir)};
    return {};
  }
  core::Result<std::vector<std::string>> list() override {
    std::vector<std::string> out;
    DIR* d = opendir(dir_.c_str());
    if (!d) {
      if (errno == ENOENT) return out;
      return core::errno_status(errno, "snapshot folder " + dir_);
    }
    while (struct dirent* e = readdir(d)) {
      std::string n = e->d_name;
      if (n.rfind(prefix(), 0) == 0) out.push_back(n);
    }
    closedir(d);
    return out;
  }
  core::Result<std::string> create(const std::string& n) override {
    std::error_code ec;
    fs::create_directories(dir_, ec);
    if (ec) return core::io_error(fmt::format("snapshot folder {}: {}", dir_, ec.message()));
    std::string dest = where(n);
    core::Status st = run({"btrfs", "subvolume", "snapshot", "-r", source_, dest});
    if (!st.ok()) return st;
    return dest;
  }
  core::Status remove(const std::string& n) override {
    std::string path = where(n);
    struct stat st;
    if (lstat(path.c_str(), &st) != 0)
      return errno == ENOENT ? core::Status() : core::errno_status(errno, path);
    return run({"btrfs", "subvolume", "delete", path});
  }

 private:
  std::string source_, mount_, dir_;
};

// LVM: `lvcreate -s -n NAME -L|-l SIZE vg/lv`, mounted read-only under
// snapshot_dir (default /run/cairn/volume).
class Lvm : public Driver {
 public:
  static core::Result<std::unique_ptr<Driver>> open(const VolumeOptions& o) {
    if (!have_tool("lvcreate") || !have_tool("lvs"))
      return core::unsupported("lvm2 is not installed (no lvcreate / lvs command)");
    auto d = std::make_unique<Lvm>();
    std::string lv_arg = o.source;
    std::optional<Mount> mount;
    if (!o.source.empty() && o.source[0] == '/' && o.source.rfind("/dev/", 0) != 0) {
      ASSIGN_OR_RETURN(Mount m, mount_of(o.source));
      if (real_path(o.source) != m.mount_point)
        return core::invalid_argument(
            fmt::format("source {} is not a mount point: an LVM snapshot is of a whole volume; "
                        "give its mount point ({} "
                        "holds this path)",
                        o.source, m.mount_point));
      lv_arg = m.source;
      mount = m;
    }
    auto out = core::run_and_capture(
        {"lvs", "--noheadings", "--separator", "/", "-o", "vg_name,lv_name", lv_arg});
    if (!out.ok() || trim(*out).find('/') == std::string::npos)
      return core::invalid_argument(fmt::format("source {} is not an LVM logical volume{}",
                                                o.source,
                                                out.ok() ? "" : ": " + out.status().message()));
    std::string vglv = trim(*out);
    d->vg_ = vglv.substr(0, vglv.find('/'));
    d->lv_ = vglv.substr(vglv.find('/') + 1);
    if (!mount) {
      struct stat st;
      std::string dev = "/dev/" + d->vg_ + "/" + d->lv_;
      if (stat(dev.c_str(), &st) != 0) return core::errno_status(errno, dev);
      ASSIGN_OR_RETURN(auto mounts, read_mounts());
      for (const auto& m : mounts)
        if (m.device == st.st_rdev && m.root == "/") mount = m;
      if (!mount)
        return core::invalid_argument(fmt::format(
            "LV {} is not mounted: the volume engine backs up the files of a mounted file system",
            vglv));
    }
    d->mount_ = mount->mount_point;
    d->fstype_ = mount->fstype;
    d->dir_ = o.snapshot_dir.empty() ? "/run/cairn/volume" : o.snapshot_dir;
    d->size_ = o.snapshot_size.empty() ? "10%ORIGIN" : o.snapshot_size;
    return std::unique_ptr<Driver>(std::move(d));
  }
  std::string name() const override { return "lvm"; }
  std::string prefix() const override { return "cairn-snap-"; }
  std::string record_path() const override { return mount_; }
  std::string mount_point() const override { return mount_; }
  std::string where(const std::string& n) const override {
    return fmt::format("LV {}/{} mounted on {}/{}", vg_, n, dir_, n);
  }
  core::Result<std::vector<std::string>> list() override {
    ASSIGN_OR_RETURN(std::string out,
                     core::run_and_capture({"lvs", "--noheadings", "-o", "lv_name", vg_}));
    std::vector<std::string> names;
    for (const auto& l : lines(out))
      if (l.rfind(prefix(), 0) == 0) names.push_back(l);
    return names;
  }
  core::Result<std::string> create(const std::string& n) override {
    bool extents = size_.find('%') != std::string::npos;
    TRY(run({"lvcreate", "--quiet", "-s", "-n", n, extents ? "-l" : "-L", size_, vg_ + "/" + lv_}));
    std::string mp = dir_ + "/" + n;
    std::error_code ec;
    fs::create_directories(mp, ec);
    if (ec) return core::io_error(fmt::format("mount folder {}: {}", mp, ec.message()));
    // XFS refuses a second file system with the same UUID unless told.
    std::string opts = fstype_ == "xfs" ? "ro,nouuid" : "ro";
    TRY(run({"mount", "-t", fstype_, "-o", opts, "/dev/" + vg_ + "/" + n, mp}));
    return mp;
  }
  core::Status remove(const std::string& n) override {
    std::string mp = dir_ + "/" + n;
    if (auto m = mount_of(mp); m.ok() && m->mount_point == real_path(mp)) TRY(run({"umount", mp}));
    if (rmdir(mp.c_str()) != 0 && errno != ENOENT) return core::errno_status(errno, mp);
    if (!core::run_and_capture({"lvs", vg_ + "/" + n}).ok()) return {};  // no such LV (any more)
    return run({"lvremove", "--quiet", "-f", vg_ + "/" + n});
  }

 private:
  std::string vg_, lv_, mount_, fstype_, dir_, size_;
};

// ZFS: `zfs snapshot ds@NAME`, read under <mountpoint>/.zfs/snapshot/NAME.
class Zfs : public Driver {
 public:
  static core::Result<std::unique_ptr<Driver>> open(const VolumeOptions& o) {
    if (!have_tool("zfs")) return core::unsupported("ZFS is not installed (no zfs command)");
    auto d = std::make_unique<Zfs>();
    if (!o.source.empty() && o.source[0] == '/') {
      ASSIGN_OR_RETURN(Mount m, mount_of(o.source));
      if (m.fstype != "zfs")
        return core::invalid_argument(
            fmt::format("source {} is on {}, not ZFS", o.source, m.fstype));
      if (real_path(o.source) != m.mount_point)
        return core::invalid_argument(
            fmt::format("source {} is not a dataset's mount point ({} is; a ZFS snapshot is of a "
                        "whole dataset)",
                        o.source, m.mount_point));
      d->dataset_ = m.source;
      d->mount_ = m.mount_point;
    } else {
      auto out = core::run_and_capture({"zfs", "list", "-H", "-o", "name", o.source});
      if (!out.ok())
        return core::invalid_argument(
            fmt::format("source {} is not a ZFS dataset: {}", o.source, out.status().message()));
      d->dataset_ = trim(*out);
      ASSIGN_OR_RETURN(auto mounts, read_mounts());
      for (const auto& m : mounts)
        if (m.fstype == "zfs" && m.source == d->dataset_) d->mount_ = m.mount_point;
      if (d->mount_.empty())
        return core::invalid_argument(
            fmt::format("ZFS dataset {} is not mounted: the volume engine backs up the files of a "
                        "mounted file system",
                        d->dataset_));
    }
    return std::unique_ptr<Driver>(std::move(d));
  }
  std::string name() const override { return "zfs"; }
  std::string prefix() const override { return "cairn-snap-"; }
  std::string record_path() const override { return mount_; }
  std::string mount_point() const override { return mount_; }
  std::string where(const std::string& n) const override { return dataset_ + "@" + n; }
  core::Result<std::vector<std::string>> list() override {
    ASSIGN_OR_RETURN(std::string out, core::run_and_capture({"zfs", "list", "-H", "-t", "snapshot",
                                                             "-o", "name", "-d", "1", dataset_}));
    std::vector<std::string> names;
    for (const auto& l : lines(out)) {
      auto at = l.find('@');
      if (at != std::string::npos && l.compare(at + 1, prefix().size(), prefix()) == 0)
        names.push_back(l.substr(at + 1));
    }
    return names;
  }
  core::Result<std::string> create(const std::string& n) override {
    TRY(run({"zfs", "snapshot", where(n)}));
    return mount_ + "/.zfs/snapshot/" + n;
  }
  core::Status remove(const std::string& n) override {
    if (!core::run_and_capture({"zfs", "list", "-H", "-t", "snapshot", "-o", "name", where(n)})
             .ok())
      return {};
    return run({"zfs", "destroy", where(n)});
  }

 private:
  std::string dataset_, mount_;
};

core::Result<std::unique_ptr<Driver>> open_driver(const VolumeOptions& o) {
  if (o.driver == "btrfs") return Btrfs::open(o);
  if (o.driver == "lvm") return Lvm::open(o);
  if (o.driver == "zfs") return Zfs::open(o);
  if (o.driver != "auto" && !o.driver.empty())
    return core::invalid_argument("unknown volume driver \"" + o.driver +
                                  "\" (btrfs, lvm, zfs or auto)");
  if (o.source.rfind("/dev/", 0) == 0) return Lvm::open(o);
  if (!o.source.empty() && o.source[0] == '/') {
    if (real_path(o.source).empty()) return core::errno_status(errno, "source " + o.source);
    std::string type = fs_type(o.source);
    if (type == "btrfs") return Btrfs::open(o);
    if (type == "zfs") return Zfs::open(o);
    if (have_tool("lvs")) {
      auto lvm = Lvm::open(o);
      if (lvm.ok()) return lvm;
    }
    return core::invalid_argument(
        fmt::format("source {} is on {}, which cannot be snapshotted here: the volume engine needs "
                    "a btrfs subvolume, a "
                    "mounted LVM logical volume or a ZFS dataset (driver: auto)",
                    o.source, type));
  }
  if (have_tool("zfs") && core::run_and_capture({"zfs", "list", "-H", "-o", "name", o.source}).ok())
    return Zfs::open(o);
  if (have_tool("lvs")) return Lvm::open(o);
  return core::invalid_argument(
      fmt::format("source {} is neither a path nor a ZFS dataset or LVM volume that this machine "
                  "knows (no zfs or lvm2 "
                  "tools found)",
                  o.source));
}

// --- one backup's snapshot ------------------------------------------------

// Runs a quiesce hook through /bin/sh, without the repository's secrets;
// its output goes to stderr.
core::Status run_hook(const std::string& command, const std::vector<std::string>& env,
                      std::chrono::seconds timeout) {
  core::ProcessOptions po;
  po.env = env;
  po.unset_env = exec::repository_secret_env();
  po.capture_stdout = false;
  po.stdout_fd = 2;
  po.forward_stderr = true;
  po.new_process_group = true;
  ASSIGN_OR_RETURN(std::shared_ptr<core::Subprocess> p,
                   core::Subprocess::start({"/bin/sh", "-c", command}, po));
  core::Watchdog dog(p, timeout);
  core::Status st = p->wait();
  dog.disarm();
  if (dog.timed_out()) return core::io_error(fmt::format("quiesce hook '{}' timed out", command));
  if (!st.ok()) return core::io_error(fmt::format("quiesce hook '{}': {}", command, st.message()));
  return {};
}

// The state that the main thread and the signal watcher share: each step
// (quiesce, freeze, snapshot) has one undo that runs exactly once, whoever
// gets there first.
class Session {
 public:
  Session(std::unique_ptr<Driver> driver, const VolumeOptions& opt, std::string name)
      : driver_(std::move(driver)), opt_(opt), name_(std::move(name)) {
    env_ = {"CAIRN_SERVICE=" + opt.service, "CAIRN_VOLUME_DRIVER=" + driver_->name(),
            "CAIRN_VOLUME_SOURCE=" + driver_->record_path()};
  }
  Driver& driver() { return *driver_; }
  const std::string& name() const { return name_; }

  core::Status quiesce() {
    std::lock_guard lock(mu_);
    if (opt_.quiesce_pre.empty() && opt_.quiesce_post.empty()) return {};
    quiesced_ = true;  // from the first pre hook on, the post hooks must run
    for (const auto& h : opt_.quiesce_pre) TRY(run_hook(h, env_, opt_.hook_timeout));
    return {};
  }
  core::Status freeze() {
    std::lock_guard lock(mu_);
    ASSIGN_OR_RETURN(freeze_, Freeze::start(driver_->mount_point()));
    return {};
  }
  core::Result<std::string> snapshot() {
    std::lock_guard lock(mu_);
    if (done_) return core::cancelled("interrupted");
    created_ = true;  // a half-made snapshot (LV made, mount failed) is removed too
    return driver_->create(name_);
  }
  core::Status thaw() {
    std::lock_guard lock(mu_);
    return freeze_ ? freeze_->thaw() : core::Status();
  }
  // Runs the post hooks once; returns their failures.
  std::vector<std::string> unquiesce(bool snapshot_ok) {
    std::lock_guard lock(mu_);
    std::vector<std::string> errors;
    if (!quiesced_) return errors;
    quiesced_ = false;
    auto env = env_;
    env.push_back(std::string("CAIRN_RESULT=") + (snapshot_ok ? "success" : "failure"));
    for (const auto& h : opt_.quiesce_post)
      if (auto st = run_hook(h, env, opt_.hook_timeout); !st.ok()) errors.push_back(st.message());
    return errors;
  }
  core::Status remove() {
    std::lock_guard lock(mu_);
    done_ = true;
    if (!created_) return {};
    core::Status st = driver_->remove(name_);
    if (st.ok()) created_ = false;
    return st;
  }
  // SIGTERM/SIGINT/SIGHUP: undo everything now.
  void cleanup() {
    (void)thaw();
    (void)unquiesce(false);
    if (auto st = remove(); !st.ok())
      fmt::print(stderr, "cairn: volume snapshot {} was not deleted: {}\n", driver_->where(name_),
                 st.message());
  }

 private:
  std::mutex mu_;
  std::unique_ptr<Driver> driver_;
  const VolumeOptions opt_;
  std::string name_;
  std::vector<std::string> env_;
  std::unique_ptr<Freeze> freeze_;
  bool quiesced_ = false, created_ = false, done_ = false;
};

}  // namespace

std::string snapshot_name(const std::string& prefix, const std::string& service, long pid,
                          long long time) {
  return fmt::format("{}{}-{}-{}", prefix, service, pid, time);
}

bool is_orphan(const std::string& name, const std::string& prefix, const std::string& service) {
  std::string head = prefix + service + "-";
  if (name.rfind(head, 0) != 0) return false;
  std::string rest =
      name.substr(head.size());  // "<pid>-<time>", nothing else (not another service's)
  size_t dash = rest.find('-');
  if (dash == std::string::npos || dash == 0 || dash + 1 == rest.size()) return false;
  std::string pid_s = rest.substr(0, dash), time_s = rest.substr(dash + 1);
  auto digits = [](const std::string& s) {
    return s.find_first_not_of("0123456789") == std::string::npos;
  };
  if (!digits(pid_s) || !digits(time_s) || pid_s.size() > 9 || time_s.size() > 18) return false;
  long pid = std::stol(pid_s);
  long long made = std::stoll(time_s);
  if (pid <= 0) return true;
  if (kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) return true;
  // The pid was reused by a process that started after the snapshot was made.
  long long started = process_start(pid);
  return started > made + 1;
}

core::Result<archive::BackupResult> backup(repo::Repository& repo, const VolumeOptions& opt,
                                           archive::BackupOptions base,
                                           archive::BackupProgress* progress) {
  ASSIGN_OR_RETURN(std::unique_ptr<Driver> driver, open_driver(opt));
  if (opt.freeze && driver->name() != "lvm")
    return core::invalid_argument(fmt::format(
        "freeze cannot be used with {} (a {} snapshot is atomic on its own{}); use quiesce hooks "
        "to pause the "
        "application",
        driver->name(), driver->name(),
        driver->name() == "btrfs" ? ", and it waits for a frozen btrfs to be thawed" : ""));
  // Snapshots left by a killed run of this service.
  std::vector<std::string> notices, warnings;
  auto existing = driver->list();
  if (!existing.ok()) {
    warnings.push_back("could not look for leftover snapshots: " + existing.status().message());
  } else {
    for (const auto& n : *existing) {
      if (!is_orphan(n, driver->prefix(), opt.service)) continue;
      if (auto st = driver->remove(n); st.ok())
        notices.push_back("deleted leftover volume snapshot " + driver->where(n) +
                          " (its backup was killed)");
      else
        warnings.push_back("could not delete leftover volume snapshot " + driver->where(n) + ": " +
                           st.message());
    }
  }
  std::string name =
      snapshot_name(driver->prefix(), opt.service, getpid(), static_cast<long long>(time(nullptr)));
  auto session = std::make_shared<Session>(std::move(driver), opt, name);
  Driver& d = session->driver();
  core::CleanupOnTermination on_signal([session] { session->cleanup(); });

  std::string read_from;
  core::Status st = session->quiesce();
  if (st.ok() && opt.freeze) st = session->freeze();
  if (st.ok()) {
    auto dir = session->snapshot();
    if (dir.ok())
      read_from = *dir;
    else
      st = dir.status().with_context("snapshot of " + d.record_path());
  }
  core::Status thawed = session->thaw();
  for (const auto& e : session->unquiesce(st.ok())) warnings.push_back(e);
  if (st.ok() && !thawed.ok()) st = thawed;

  core::Result<archive::BackupResult> result = st;
  if (st.ok()) {
    std::string record = d.record_path();
    base.redirects = {{record, read_from}};
    base.excludes = opt.excludes;
    for (const auto& x : d.excludes()) base.excludes.push_back(x);
    base.engine = {{"type", "volume"},     {"driver", d.name()},
                   {"source", record},     {"snapshot", name},
                   {"freeze", opt.freeze}, {"quiesced", !opt.quiesce_pre.empty()}};
    if (!base.parent && !base.force)
      base.parent = archive::find_parent(repo, base.host, base.service, {record});
    result = archive::backup_paths(repo, {record}, base, progress);
  }
  core::Status removed = session->remove();
  if (!result.ok()) {
    core::Status err = result.status();
    if (!removed.ok())
      return core::Status(
          err.code(), err.message() + fmt::format("; the volume snapshot {} was not deleted: {}",
                                                  d.where(name), removed.message()));
    return err;
  }
  if (!removed.ok())
    warnings.push_back(
        fmt::format("volume snapshot {} was not deleted: {}", d.where(name), removed.message()));
  for (auto& w : warnings) result->warnings.push_back(std::move(w));
  for (auto& n : notices) result->notices.push_back(std::move(n));
  return result;
}

}  // namespace cairn::engines::volume
