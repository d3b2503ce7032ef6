#include "archive/restorer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <unordered_map>

#include "archive/fs_meta.h"
#include "archive/tree_prefetch.h"
#include "archive/tree_walk.h"
#include "core/file.h"
#include "core/thread_pool.h"
#include "repo/pack.h"

namespace cairn::archive {

using core::Bytes;
using repo::Id;
using repo::Node;
using repo::NodeType;

namespace {

// Largest merged ranged read of a pack; kept under the 2 MiB mmap threshold
// (cli/main.cc) so read buffers are reused instead of mapped and faulted in.
constexpr uint64_t kMaxRun = 1792u << 10;
constexpr uint64_t kMaxGap = 256u << 10;
// A streamed run (S3) holds one blob at a time, so it is only cut where the
// pack has a gap of unneeded blobs worth a request of its own.
constexpr uint64_t kMaxStreamGap = 4u << 20;
constexpr size_t kMaxOpenFilesPerWorker = 16;

struct FileState {
  uint64_t size = 0;
  size_t meta = 0;                   // its entry (and path) in Restorer::meta_
  std::atomic<uint32_t> pending{0};  // blob writes still to come
  std::atomic<bool> failed{false};
  std::atomic<bool> hole{false};      // an all-zero blob was skipped, not written
  std::atomic<bool> finished{false};  // final size and metadata in place
  std::string error;  // guarded by Restorer::mu_
};

struct Target {
  uint32_t file;
  uint64_t offset;
};

// What set_metadata() applies: the part of a Node kept for every entry
// until the end (a whole Node is ~300 bytes; a restore plans millions).
struct EntryMeta {
  NodeType type = NodeType::kFile;
  uint32_t mode = 0, uid = 0, gid = 0;
  int64_t mtime_ns = 0;
  uint64_t size = 0;
  std::vector<repo::Xattr> xattrs;
  static EntryMeta of(const Node& n) {
    return {n.type, n.mode, n.uid, n.gid, n.mtime_ns, n.size, n.xattrs};
  }
};

struct MetaEntry {
  std::string path;
  EntryMeta meta;
  int file = -1;  // index into files_ for regular files
};

class Restorer {
 public:
  Restorer(repo::Repository& repo, const RestoreOptions& opt, RestoreProgress* progress)
      : repo_(repo), opt_(opt), progress_(progress ? progress : &own_progress_) {}

  core::Result<RestoreResult> run(const Located& start);

 private:
  // `fresh`: dirfd was made by this restore, so none of its names exist yet.
  // `slot`: the folder's tree as prefetch_ loads it (null: queue it now).
  void restore_tree(const Id& tree_id, const TreePrefetch::SlotPtr& slot, int dirfd, bool fresh,
                    const std::string& dir_path, const std::string& snap_path,
                    bool ancestor_included, size_t& restored);
  bool restore_node(const Node& n, const TreePrefetch::SlotPtr& slot, int dirfd, bool fresh,
                    const std::string& dir_path, const std::string& snap_path,
                    bool ancestor_included);
  void plan_file(const Node& n);
  void write_data();
  using PackBlob = std::pair<repo::PackEntry, const std::vector<Target>*>;
  using OpenFiles = std::unordered_map<uint32_t, core::UniqueFd>;  // a worker's, by file
  void process_pack(const Id& pack, std::vector<PackBlob>& blobs);
  void stream_run(const Id& pack, const storage::Handle& handle, std::vector<PackBlob>& blobs,
                  size_t i, size_t j, uint64_t start, uint64_t end, OpenFiles& fds);
  void write_blob(const Id& pack, const PackBlob& blob, core::Result<core::ByteView> sealed,
                  OpenFiles& fds);
  void fail_file(uint32_t file, const std::string& why);
  const std::string& path_of(const FileState& f) const { return meta_[f.meta].path; }
  core::Result<core::UniqueFd> open_for_write(FileState& f);
  void finish_file(uint32_t file, int fd);
  void apply_metadata();
  void verify();
  void error(const std::string& e) {
    std::lock_guard lock(mu_);
    result_.errors.push_back(e);
  }

  repo::Repository& repo_;
  const RestoreOptions& opt_;
  RestoreProgress own_progress_;
  RestoreProgress* progress_;
  std::mutex mu_;
  RestoreResult result_;
  std::vector<std::unique_ptr<FileState>> files_;
  std::vector<std::vector<Id>> file_content_;  // for --verify
  std::unordered_map<Id, std::vector<Target>, repo::IdHash> targets_;
  std::deque<MetaEntry> meta_;  // post-order: children before their directory
  std::map<std::pair<uint64_t, uint64_t>, std::string> hardlinks_;
  bool is_root_ = geteuid() == 0;
  std::optional<TreePrefetch> prefetch_;  // during pass 1
};

core::Result<RestoreResult> Restorer::run(const Located& start) {
  struct stat st;
  bool fresh = lstat(opt_.target.c_str(), &st) != 0 && errno == ENOENT;
  TRY(core::make_dirs(opt_.target, 0755));
  auto root = core::open_file(opt_.target, O_RDONLY | O_DIRECTORY);
  if (!root.ok()) return root.status();
  prefetch_.emplace(repo_, [this](const std::string& path, const Node&) {
    return !matches_any(opt_.excludes, path);
  });
  if (start.node.type == NodeType::kDir) {
    if (!start.node.subtree) return core::corruption("directory " + start.path + " has no tree");
    size_t restored = 0;
    std::string snap = start.path == "/" ? "" : start.path;
    restore_tree(*start.node.subtree, prefetch_->root(*start.node.subtree, snap), root->get(),
                 fresh, opt_.target, snap, false, restored);
  } else {
    auto slash = start.path.rfind('/');
    restore_node(start.node, nullptr, root->get(), fresh, opt_.target, start.path.substr(0, slash),
                 true);
  }
  prefetch_.reset();
  write_data();
  apply_metadata();
  if (opt_.verify) verify();
  return std::move(result_);
}

void Restorer::restore_tree(const Id& tree_id, const TreePrefetch::SlotPtr& slot, int dirfd,
                            bool fresh, const std::string& dir_path, const std::string& snap_path,
                            bool ancestor_included, size_t& restored) {
  auto [tree, subfolders] = prefetch_->take(slot ? slot : prefetch_->root(tree_id, snap_path));
  if (!tree.ok()) return error(snap_path + ": " + tree.status().message());
  if (auto st = repo::validate_tree(*tree); !st.ok())
    return error("refusing to restore " + (snap_path.empty() ? "/" : snap_path) + ": " + st.message());
  for (size_t i = 0; i < tree->nodes.size(); ++i)
    if (restore_node(tree->nodes[i], subfolders[i], dirfd, fresh, dir_path, snap_path,
                     ancestor_included))
      ++restored;
}

bool Restorer::restore_node(const Node& n, const TreePrefetch::SlotPtr& slot, int dirfd, bool fresh,
                            const std::string& dir_path, const std::string& snap_path,
                            bool ancestor_included) {
  if (!repo::is_safe_name(n.name)) {
    error("refusing unsafe name '" + repo::printable_name(n.name) + "' in " + snap_path);
    return false;
  }
  std::string snap = snap_path + "/" + n.name;
  std::string path = dir_path + "/" + n.name;
  if (matches_any(opt_.excludes, snap)) return false;
  bool included = opt_.includes.empty() || ancestor_included || matches_any(opt_.includes, snap);
  const char* name = n.name.c_str();
  switch (n.type) {
    case NodeType::kDir: {
      bool made = mkdirat(dirfd, name, 0700) == 0;
      if (!made && errno != EEXIST) {
        error(core::errno_status(errno, path).message());
        return false;
      }
      int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0) {
        error(path + ": exists and is not a directory (not following symlinks)");
        return false;
      }
      size_t restored = 0;
      if (n.subtree)
        restore_tree(*n.subtree, slot, fd, made, path, snap, included && !opt_.includes.empty(),
                     restored);
      close(fd);
      if (!included && restored == 0) {
        unlinkat(dirfd, name, AT_REMOVEDIR);  // only made on the way to includes
        return false;
      }
      result_.dirs++;
      meta_.push_back({path, EntryMeta::of(n), -1});
      return true;
    }
    case NodeType::kFile: {
      if (!included) return false;
      if (n.links > 1) {
        auto key = std::make_pair(n.device_id, n.inode);
        auto it = hardlinks_.find(key);
        if (it != hardlinks_.end()) {
          if (!fresh) unlinkat(dirfd, name, 0);
          if (linkat(AT_FDCWD, it->second.c_str(), dirfd, name, 0) == 0) {
            result_.links++;
            return true;
          }
          // Fall through: restore as an independent copy.
        } else {
          hardlinks_[key] = path;
        }
      }
      // Replace, never truncate: an existing entry may be a hard link to a
      // file outside the target, or read-only from an earlier restore.
      if (!fresh && unlinkat(dirfd, name, 0) != 0 && errno != ENOENT) {
        error(core::errno_status(errno, path).message() + " (cannot replace the existing entry)");
        return false;
      }
      // Files with data are created by the first write (one open instead of
      // two); empty files and hard-link targets must exist now.
      bool create_now = n.content.empty() || n.links > 1;
      if (create_now) {
        int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0) {
          error(core::errno_status(errno, path).message() + " (not following symlinks)");
          return false;
        }
        bool sized = ftruncate(fd, static_cast<off_t>(n.size)) == 0;
        close(fd);
        if (!sized) {
          error(core::errno_status(errno, path).message());
          return false;
        }
      }
      plan_file(n);
      files_.back()->meta = meta_.size();
      meta_.push_back({path, EntryMeta::of(n), static_cast<int>(files_.size() - 1)});
      result_.files++;
      return true;
    }
    case NodeType::kSymlink: {
      if (!included) return false;
      if (!fresh) unlinkat(dirfd, name, 0);  // replace a previous restore's link; never a directory
      if (symlinkat(n.link_target.c_str(), dirfd, name) != 0) {
        error(core::errno_status(errno, path).message());
        return false;
      }
      meta_.push_back({path, EntryMeta::of(n), -1});
      return true;
    }
    case NodeType::kFifo:
    case NodeType::kBlockDev:
    case NodeType::kCharDev: {
      if (!included) return false;
      mode_t type = n.type == NodeType::kFifo ? S_IFIFO : n.type == NodeType::kBlockDev ? S_IFBLK : S_IFCHR;
      if (type != S_IFIFO && !is_root_) {
        std::lock_guard lock(mu_);
        result_.warnings.push_back(path + ": device node not restored (needs root)");
        return false;
      }
      if (!fresh) unlinkat(dirfd, name, 0);  // replace a previous restore's node; never a directory
      if (mknodat(dirfd, name, type | 0600, static_cast<dev_t>(n.rdev)) != 0) {
        error(core::errno_status(errno, path).message());
        return false;
      }
      meta_.push_back({path, EntryMeta::of(n), -1});
      return true;
    }
    case NodeType::kSocket:
      return false;  // sockets are recreated by their servers
  }
  return false;
}

void Restorer::plan_file(const Node& n) {
  auto idx = static_cast<uint32_t>(files_.size());
  auto fs = std::make_unique<FileState>();
  fs->size = n.size;
  files_.push_back(std::move(fs));
  uint64_t offset = 0;
  for (const auto& id : n.content) {
    auto loc = repo_.index().lookup(id);
    if (!loc) {
      fail_file(idx, "blob " + id.hex() + " is missing from the index");
      break;
    }
    targets_[id].push_back({idx, offset});
    files_[idx]->pending++;
    offset += loc->entry.raw_length;
  }
  if (offset != n.size && !files_[idx]->failed)
    fail_file(idx, "content length " + std::to_string(offset) + " differs from size " + std::to_string(n.size));
  if (opt_.verify) {
    file_content_.resize(idx + 1);
    file_content_[idx] = n.content;
  }
  progress_->files_total++;
  progress_->bytes_total += n.size;
}

core::Result<core::UniqueFd> Restorer::open_for_write(FileState& f) {
  // O_CREAT without O_EXCL: several workers may hold parts of one file. The
  // old entry was removed in pass 1, and O_NOFOLLOW refuses a symlink.
  return core::open_file(path_of(f), O_WRONLY | O_CREAT | O_NOFOLLOW, 0600);
}

// Sets ownership, mode, xattrs and times of one entry, through `fd` when it
// is open (no path lookups), else by path without following a symlink. The
// order matters: chown clears set-id bits and capabilities (an xattr), and
// the times go last because every other change would touch them.
void set_metadata(int fd, const std::string& path, const EntryMeta& n, bool as_root,
                  std::vector<std::string>& warnings) {
  const char* p = path.c_str();
  auto warn = [&](const std::string& what) {
    warnings.push_back(core::errno_status(errno, path + ": " + what).message());
  };
  if (as_root && (fd >= 0 ? fchown(fd, n.uid, n.gid) : lchown(p, n.uid, n.gid)) != 0) warn("chown");
  if (n.type != NodeType::kSymlink && (fd >= 0 ? fchmod(fd, n.mode) : chmod(p, n.mode)) != 0)
    warn("chmod");
  for (const auto& x : n.xattrs) {
    int rc = fd >= 0 ? fsetxattr(fd, x.name.c_str(), x.value.data(), x.value.size(), 0)
                     : lsetxattr(p, x.name.c_str(), x.value.data(), x.value.size(), 0);
    if (rc != 0) warn("xattr " + x.name);
  }
  struct timespec ts[2];
  ts[0].tv_sec = ts[1].tv_sec = static_cast<time_t>(n.mtime_ns / 1000000000);
  ts[0].tv_nsec = ts[1].tv_nsec = static_cast<long>(n.mtime_ns % 1000000000);
  if (fd >= 0)
    futimens(fd, ts);
  else
    utimensat(AT_FDCWD, p, ts, AT_SYMLINK_NOFOLLOW);
}

// Called once per file, after its last blob was written (or at the end for
// files without blobs): sets the final size if a hole was skipped (it may be
// the file's end), then the metadata, while the worker still holds the file
// open.
void Restorer::finish_file(uint32_t file, int fd) {
  FileState& f = *files_[file];
  if (f.failed) return;  // removed in the metadata pass
  core::UniqueFd own;
  if (fd < 0) {
    auto opened = open_for_write(f);
    if (!opened.ok()) return fail_file(file, opened.status().message());
    own = std::move(*opened);
    fd = own.get();
  }
  if (f.hole && ftruncate(fd, static_cast<off_t>(f.size)) != 0)
    return fail_file(file, core::errno_status(errno, path_of(f)).message());
  std::vector<std::string> warnings;
  set_metadata(fd, path_of(f), meta_[f.meta].meta, is_root_, warnings);
  f.finished = true;
  progress_->files_done++;
  if (warnings.empty()) return;
  std::lock_guard lock(mu_);
  for (auto& w : warnings) result_.warnings.push_back(std::move(w));
}

void Restorer::fail_file(uint32_t file, const std::string& why) {
  FileState& f = *files_[file];
  std::lock_guard lock(mu_);
  if (!f.failed.exchange(true)) f.error = why;
}

void Restorer::write_data() {
  std::map<Id, std::vector<std::pair<repo::PackEntry, const std::vector<Target>*>>> by_pack;
  for (const auto& [id, targets] : targets_) {
    auto loc = repo_.index().lookup(id);
    if (loc) by_pack[loc->pack].push_back({loc->entry, &targets});
  }
  {
    core::ThreadPool pool(std::max<size_t>(1, opt_.workers), 64);
    for (auto& [pack, blobs] : by_pack) {
      pool.submit([this, &pack = pack, &blobs = blobs] { process_pack(pack, blobs); });
    }
    pool.wait_idle();
  }
}

void Restorer::process_pack(const Id& pack, std::vector<PackBlob>& blobs) {
  std::sort(blobs.begin(), blobs.end(), [](const auto& a, const auto& b) { return a.first.offset < b.first.offset; });
  // Backends with costly requests (S3) stream long runs; the others read
  // short ones whole into a buffer.
  const bool stream = repo_.backend().prefers_whole_reads();
  const uint64_t max_gap = stream ? kMaxStreamGap : kMaxGap;
  const uint64_t max_run = stream ? UINT64_MAX : kMaxRun;
  const storage::Handle handle{storage::FileType::kPack, pack.hex()};
  OpenFiles fds;
  size_t i = 0;
  while (i < blobs.size()) {
    // Merge neighbouring blobs into one ranged read.
    size_t j = i + 1;
    uint64_t start = blobs[i].first.offset;
    uint64_t end = start + blobs[i].first.length;
    while (j < blobs.size()) {
      const auto& e = blobs[j].first;
      if (e.offset > end + max_gap || e.offset + e.length - start > max_run) break;
      end = std::max<uint64_t>(end, e.offset + e.length);
      ++j;
    }
    if (stream) {
      stream_run(pack, handle, blobs, i, j, start, end, fds);
    } else {
      auto data = repo_.backend().load(handle, start, end - start);
      for (size_t k = i; k < j; ++k) {
        const repo::PackEntry& e = blobs[k].first;
        write_blob(pack, blobs[k],
                   data.ok() ? core::Result<core::ByteView>(
                                   core::ByteView(data->data() + (e.offset - start), e.length))
                             : core::Result<core::ByteView>(data.status()),
                   fds);
      }
    }
    i = j;
  }
}

// One request for blobs [i, j) of a pack: each blob is handed on as soon as
// its last byte arrives (straight from the piece when it lies inside one),
// so a worker holds one blob, not the run. A load that breaks off for good
// fails the blobs not yet complete.
void Restorer::stream_run(const Id& pack, const storage::Handle& handle,
                          std::vector<PackBlob>& blobs, size_t i, size_t j, uint64_t start,
                          uint64_t end, OpenFiles& fds) {
  Bytes partial;  // the current blob's bytes so far, when it spans pieces
  size_t k = i;
  uint64_t pos = start;
  core::Status st =
      repo_.backend().load_stream(handle, start, end - start, [&](core::ByteView piece) {
        while (!piece.empty() && k < j) {
          const repo::PackEntry& e = blobs[k].first;
          if (pos < e.offset) {  // a gap between blobs
            uint64_t skip = std::min<uint64_t>(piece.size(), e.offset - pos);
            piece = piece.subspan(skip);
            pos += skip;
            continue;
          }
          if (partial.empty() && pos > e.offset) {  // only a damaged index overlaps blobs
            write_blob(pack, blobs[k++], core::corruption("overlaps another blob in the index"),
                       fds);
            continue;
          }
          size_t take =
              static_cast<size_t>(std::min<uint64_t>(piece.size(), e.offset + e.length - pos));
          if (partial.empty() && take == e.length) {
            write_blob(pack, blobs[k], core::ByteView(piece.data(), take), fds);
          } else {
            partial.insert(partial.end(), piece.begin(),
                           piece.begin() + static_cast<ptrdiff_t>(take));
            if (partial.size() == e.length) {
              write_blob(pack, blobs[k], core::ByteView(partial), fds);
              partial.clear();
            }
          }
          piece = piece.subspan(take);
          pos += take;
          if (pos == e.offset + e.length) ++k;
        }
        return core::ok_status();
      });
  for (; k < j; ++k)
    write_blob(pack, blobs[k], st.ok() ? core::io_error("stream ended early") : st, fds);
}

// Verifies one stored blob and writes it to each of its places; the write
// that completes a file finishes it.
void Restorer::write_blob(const Id& pack, const PackBlob& blob, core::Result<core::ByteView> sealed,
                          OpenFiles& fds) {
  const auto& [entry, targets] = blob;
  core::Result<Bytes> plain =
      sealed.ok() ? repo_.open_blob(entry, *sealed) : core::Result<Bytes>(sealed.status());
  if (!plain.ok()) {
    for (const auto& t : *targets) {
      fail_file(t.file, "pack " + pack.hex() + ", blob " + entry.id.short_hex() + ": " +
                            plain.status().message());
      --files_[t.file]->pending;
    }
    return;
  }
  bool zero = core::is_all_zero(*plain);
  for (const auto& t : *targets) {
    FileState& f = *files_[t.file];
    progress_->bytes_done += plain->size();
    auto it = fds.find(t.file);
    if (zero) {
      f.hole = true;  // left as a hole: finish_file sets the size
    } else if (!f.failed) {
      if (it == fds.end()) {
        // Packs of small files touch thousands of files: keep few open.
        if (fds.size() >= kMaxOpenFilesPerWorker) fds.clear();
        auto fd = open_for_write(f);
        if (fd.ok())
          it = fds.emplace(t.file, std::move(*fd)).first;
        else
          fail_file(t.file, fd.status().message());
      }
      size_t done = 0;
      while (it != fds.end() && done < plain->size()) {
        ssize_t w = pwrite(it->second.get(), plain->data() + done, plain->size() - done,
                           static_cast<off_t>(t.offset + done));
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
          fail_file(t.file, core::errno_status(errno, path_of(f)).message());
          break;
        }
        done += static_cast<size_t>(w);
      }
    }
    if (--f.pending > 0) continue;
    finish_file(t.file, it == fds.end() ? -1 : it->second.get());
    if (it != fds.end()) fds.erase(it);  // no more writes will come
  }
}

// Files got their metadata from the worker that finished them; this pass
// does the rest, children before their directory (post-order), because
// creating or removing an entry changes its directory's mtime.
void Restorer::apply_metadata() {
  for (auto& m : meta_) {
    if (m.file >= 0) {
      auto file = static_cast<uint32_t>(m.file);
      FileState& f = *files_[file];
      if (!f.failed && !f.finished) finish_file(file, -1);  // no blobs: empty
      if (f.failed) {
        unlink(m.path.c_str());  // never leave a file with unverified content
        result_.errors.push_back(m.path + ": not restored: " + f.error);
        result_.files--;
        continue;
      }
      result_.bytes += m.meta.size;
      continue;
    }
    set_metadata(-1, m.path, m.meta, is_root_, result_.warnings);
  }
}

void Restorer::verify() {
  core::ThreadPool pool(std::max<size_t>(1, opt_.workers), 64);
  for (size_t i = 0; i < files_.size(); ++i) {
    if (files_[i]->failed) continue;
    pool.submit([this, i] {
      const auto& ids = file_content_[i];
      auto fd = core::open_file(path_of(*files_[i]), O_RDONLY | O_NOFOLLOW);
      if (!fd.ok()) return error("verify: " + fd.status().message());
      Bytes buf;
      uint64_t off = 0;
      for (const auto& id : ids) {
        auto loc = repo_.index().lookup(id);
        if (!loc) return;
        buf.resize(loc->entry.raw_length);
        if (!core::pread_all(fd->get(), buf.data(), buf.size(), off, path_of(*files_[i])).ok() ||
            !(repo_.blob_id(buf) == id))
          return error("verify: " + path_of(*files_[i]) + ": content differs at offset " +
                       std::to_string(off));
        off += buf.size();
      }
    });
  }
  pool.wait_idle();
}

}  // namespace

core::Result<RestoreResult> restore(repo::Repository& repo, const repo::Snapshot& snapshot,
                                    const std::string& path, const RestoreOptions& options,
                                    RestoreProgress* progress) {
  if (options.target.empty()) return core::invalid_argument("restore needs --target");
  ASSIGN_OR_RETURN(Located start, locate(repo, snapshot.tree, path));
  Restorer r(repo, options, progress);
  return r.run(start);
}

}  // namespace cairn::archive
