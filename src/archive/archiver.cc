#include "archive/archiver.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>

#include "archive/fs_meta.h"
#include "core/file.h"
#include "core/thread_pool.h"

namespace cairn::archive {

using core::Bytes;
using core::ByteView;
using repo::Id;
using repo::Node;
using repo::NodeType;
using repo::Tree;

std::string local_hostname() {
  char buf[256] = {};
  gethostname(buf, sizeof buf - 1);
  return buf;
}

namespace {

// Bytes of chunk data queued for the CPU pool at once (memory ceiling).
constexpr uint64_t kBytesInFlight = 8ull << 20;
// Files read through the chunker at once. Each holds up to max_size of
// look-ahead, and large files are CPU-bound anyway; small files, where read
// concurrency pays off, are not limited.
constexpr uint64_t kLargeFilesInFlight = 2;

// Where the file recorded at `path` is read from (BackupOptions::redirects).
std::string read_path(const BackupOptions& opt, const std::string& path) {
  for (const auto& r : opt.redirects) {
    if (r.path == "/") return path == "/" ? r.read_from : r.read_from + path;
    if (path == r.path) return r.read_from;
    if (path.size() > r.path.size() && path.compare(0, r.path.size(), r.path) == 0 && path[r.path.size()] == '/')
      return r.read_from + path.substr(r.path.size());
  }
  return path;
}

// A directory being assembled: its nodes are complete before any child job
// starts; `pending` counts the walker's own token plus unfinished children.
struct DirJob {
  std::string path;
  std::vector<Node> nodes;
  std::vector<char> drop;  // 1 = omit from the tree (unreadable)
  std::atomic<int> pending{1};
  DirJob* parent = nullptr;
  size_t index_in_parent = 0;
  // The parent snapshot's version of this directory: when the finished nodes
  // equal it, its tree id is reused without serialising or hashing again.
  std::optional<Id> old_id;
  std::vector<Node> old_nodes;
};

class Pipeline {
 public:
  Pipeline(repo::Repository& repo, const BackupOptions& opt, BackupProgress* progress)
      : repo_(repo),
        opt_(opt),
        progress_(progress ? progress : &own_progress_),
        cpu_(opt.cpu_threads ? opt.cpu_threads : std::max(2u, std::thread::hardware_concurrency()),
             64),
        budget_(kBytesInFlight) {}

  repo::Repository& repo() { return repo_; }
  BackupProgress& progress() { return *progress_; }

  void fail(const core::Status& st) {
    std::lock_guard lock(mu_);
    if (error_.ok()) error_ = st;
    failed_ = true;
  }
  bool failed() const { return failed_; }
  core::Status error() {
    std::lock_guard lock(mu_);
    return error_;
  }
  void warn(const std::string& w) {
    progress_->errors++;
    std::lock_guard lock(mu_);
    warnings_.push_back(w);
  }
  std::vector<std::string> warnings() {
    std::lock_guard lock(mu_);
    return warnings_;
  }
  // Something worth telling that does not make the snapshot incomplete.
  void notice(const std::string& n) {
    std::lock_guard lock(mu_);
    notices_.push_back(n);
  }
  std::vector<std::string> notices() {
    std::lock_guard lock(mu_);
    return notices_;
  }

  // Stores one chunk in the calling thread.
  core::Result<Id> store_chunk(ByteView data) {
    Id id = repo_.blob_id(data);
    ASSIGN_OR_RETURN(bool added, repo_.save_blob(repo::BlobType::kData, id, data));
    (void)added;
    return id;
  }

  // Chunks a stream, hashing/compressing/encrypting chunks on the CPU pool.
  // Returns ids in stream order; `bytes` receives the stream length.
  // `fixed_chunk` > 0 cuts every that many bytes instead (see StreamEntry).
  core::Status store_stream(const repo::Chunker::ReadFn& read, std::vector<Id>& ids, uint64_t& bytes,
                            size_t fixed_chunk = 0) {
    struct Shared {
      std::mutex mu;
      std::condition_variable cv;
      size_t outstanding = 0;
      core::Status error;
      std::deque<Id> ids;
    };
    auto shared = std::make_shared<Shared>();
    repo::Chunker chunker(repo_.gear(), repo_.config().chunker, read);
    auto next_fixed = [&](Bytes& out) -> core::Result<bool> {
      out.resize(fixed_chunk);
      size_t got = 0;
      while (got < fixed_chunk) {
        ASSIGN_OR_RETURN(size_t n, read(out.data() + got, fixed_chunk - got));
        if (n == 0) break;
        got += n;
      }
      out.resize(got);
      return got > 0;
    };
    core::Status status;
    for (;;) {
      if (failed_) break;
      auto chunk = std::make_shared<Bytes>();
      auto more = fixed_chunk ? next_fixed(*chunk) : chunker.next(*chunk);
      if (!more.ok()) {
        status = more.status();
        break;
      }
      if (!*more) break;
      bytes += chunk->size();
      uint64_t size = chunk->size();
      budget_.acquire(size);
      Id* slot;
      {
        std::lock_guard lock(shared->mu);
        shared->ids.emplace_back();
        slot = &shared->ids.back();  // deque: stable address
        shared->outstanding++;
      }
      cpu_.submit([this, shared, chunk, slot, size] {
        auto id = store_chunk(*chunk);
        chunk->clear();
        chunk->shrink_to_fit();
        budget_.release(size);
        progress_->bytes_done += size;
        std::lock_guard lock(shared->mu);
        if (id.ok()) {
          *slot = *id;
        } else if (shared->error.ok()) {
          shared->error = id.status();
        }
        if (--shared->outstanding == 0) shared->cv.notify_all();
      });
    }
    std::unique_lock lock(shared->mu);
    shared->cv.wait(lock, [&] { return shared->outstanding == 0; });
    if (!shared->error.ok()) {
      fail(shared->error);
      return shared->error;
    }
    ids.insert(ids.end(), shared->ids.begin(), shared->ids.end());
    return status;
  }

  // Ids for a run of zero bytes (sparse holes) without reading or hashing them
  // more than once per length.
  core::Status store_zeros(uint64_t length, std::vector<Id>& ids) {
    const uint64_t max = repo_.config().chunker.max_size;
    while (length > 0) {
      size_t n = static_cast<size_t>(std::min(length, max));
      Id id;
      {
        std::lock_guard lock(mu_);
        auto it = zero_ids_.find(n);
        if (it != zero_ids_.end()) id = it->second;
      }
      if (id.is_zero()) {
        // calloc'd memory maps the shared zero page: reading it costs no RSS.
        std::call_once(zeros_once_, [&] { zeros_.reset(static_cast<uint8_t*>(calloc(max, 1))); });
        ASSIGN_OR_RETURN(id, store_chunk(ByteView(zeros_.get(), n)));
        std::lock_guard lock(mu_);
        zero_ids_[n] = id;
      }
      ids.push_back(id);
      progress_->bytes_done += n;
      length -= n;
    }
    return {};
  }

  std::atomic<uint64_t> files_new{0}, files_changed{0}, files_unmodified{0}, dirs{0};
  std::atomic<uint64_t> total_files{0}, total_bytes{0};

 private:
  repo::Repository& repo_;
  const BackupOptions& opt_;
  BackupProgress own_progress_;
  BackupProgress* progress_;
  core::ThreadPool cpu_;
  core::Budget budget_;
  std::mutex mu_;
  std::atomic<bool> failed_{false};
  core::Status error_;
  std::vector<std::string> warnings_, notices_;
  std::map<size_t, Id> zero_ids_;
  struct FreeDeleter {
    void operator()(uint8_t* p) const { free(p); }
  };
  std::once_flag zeros_once_;
  std::unique_ptr<uint8_t, FreeDeleter> zeros_;
};

// A directory's listing, read ahead of the walker by the scanner pool: the
// walker is a single thread, and cold lstat()s and parent-tree decoding are
// what it would otherwise wait on.
struct Scan {
  std::vector<Node> nodes;  // sorted by name, excludes applied
  std::vector<std::string> warnings;
  std::optional<Tree> old_tree;
  std::optional<Id> old_id;
};

// Directories listed ahead of the walker (per directory being walked).
constexpr size_t kScanWindow = 8;

class Walker {
 public:
  Walker(Pipeline& pipe, const BackupOptions& opt)
      : pipe_(pipe),
        opt_(opt),
        readers_(std::max<size_t>(1, opt.read_concurrency), 256),
        scanners_(std::max<size_t>(2, opt.read_concurrency / 2), 1024) {}

  // Walks `paths`, returns the root tree id once every file is stored.
  core::Result<Id> run(const std::vector<std::string>& paths);
  // Walks `paths` but leaves the root directory unsaved: its nodes, for a
  // caller that adds entries of its own (backup_paths_then_entries).
  core::Result<Tree> run_open_root(const std::vector<std::string>& paths);

 private:
  struct VDir {
    std::map<std::string, VDir> children;
    bool target = false;
  };

  void walk_virtual(const VDir& v, DirJob* d, const Tree* old_tree);
  void walk_dir(DirJob* d, Scan scan);
  Scan scan_dir(const std::string& path, const Node* old) const;
  std::future<Scan> scan_async(const std::string& path, const Node* old);
  void dispatch(DirJob* d, size_t i, const Node* old, const VDir* virtual_child,
                std::future<Scan>* scan = nullptr);
  void process_file(DirJob* d, size_t i, bool had_parent);
  core::Status read_file_content(int fd, uint64_t size, bool sparse, size_t fixed_chunk,
                                 std::vector<Id>& ids, uint64_t& bytes);
  void finish_one(DirJob* d);
  void finalize(DirJob* d);
  std::optional<Tree> load_old_subtree(const Node* old) const;
  std::string child_path(const DirJob* d, const std::string& name) const {
    return d->path == "/" ? "/" + name : d->path + "/" + name;
  }
  std::string fs(const std::string& path) const { return read_path(opt_, path); }
  // A warning, unless it says the thing vanished and options allow that.
  void problem(const core::Status& st) {
    if (!(opt_.vanished_ok && st.code() == core::Code::kNotFound)) pipe_.warn(st.message());
  }

  Pipeline& pipe_;
  const BackupOptions& opt_;
  core::ThreadPool readers_;
  core::ThreadPool scanners_;
  core::Budget large_files_{kLargeFilesInFlight};
  NameCache names_;
  std::mutex root_mu_;
  std::condition_variable root_cv_;
  bool root_done_ = false;
  bool keep_root_ = false;
  Id root_id_;
  Tree root_tree_;
  std::map<std::string, dev_t> root_devs_;
  dev_t current_dev_ = 0;
};

std::optional<Tree> Walker::load_old_subtree(const Node* old) const {
  if (!old || old->type != NodeType::kDir || !old->subtree) return std::nullopt;
  auto t = pipe_.repo().load_tree(*old->subtree);
  if (!t.ok()) return std::nullopt;  // parent unreadable: just read everything
  return std::move(*t);
}

static std::map<std::string, const Node*> by_name(const Tree* t) {
  std::map<std::string, const Node*> m;
  if (t)
    for (const auto& n : t->nodes) m[n.name] = &n;
  return m;
}

core::Result<Id> Walker::run(const std::vector<std::string>& paths) {
  VDir root;
  for (const auto& p : paths) {
    std::filesystem::path abs = std::filesystem::absolute(p).lexically_normal();
    std::string s = abs.string();
    while (s.size() > 1 && s.back() == '/') s.pop_back();
    VDir* v = &root;
    bool covered = false;
    for (const auto& comp : std::filesystem::path(s).relative_path()) {
      v = &v->children[comp.string()];
      if (v->target) covered = true;  // a parent path is already backed up whole
    }
    if (!covered) {
      v->target = true;
      v->children.clear();
    }
  }
  auto* job = new DirJob;
  job->path = "/";
  std::optional<Tree> old_root;
  if (opt_.parent) {
    auto t = pipe_.repo().load_tree(opt_.parent->snapshot.tree);
    if (t.ok()) old_root = std::move(*t);
  }
  if (root.target) {
    // Backing up "/" itself.
    struct stat st;
    if (lstat(fs("/").c_str(), &st) == 0) current_dev_ = st.st_dev;
    Scan scan = scan_dir("/", nullptr);
    scan.old_tree = std::move(old_root);
    walk_dir(job, std::move(scan));
  } else {
    walk_virtual(root, job, old_root ? &*old_root : nullptr);
  }
  readers_.wait_idle();
  std::unique_lock lock(root_mu_);
  root_cv_.wait(lock, [&] { return root_done_; });
  if (pipe_.failed()) return pipe_.error();
  return root_id_;
}

core::Result<Tree> Walker::run_open_root(const std::vector<std::string>& paths) {
  keep_root_ = true;
  TRY(run(paths).status());
  return std::move(root_tree_);
}

void Walker::walk_virtual(const VDir& v, DirJob* d, const Tree* old_tree) {
  auto old = by_name(old_tree);
  std::vector<const VDir*> kids;
  for (const auto& [name, child] : v.children) {
    std::string full = child_path(d, name);
    struct stat st;
    if (lstat(fs(full).c_str(), &st) != 0) {
      pipe_.warn(core::errno_status(errno, full).message());
      continue;
    }
    if (!child.target && !S_ISDIR(st.st_mode)) {
      pipe_.warn(full + ": not a directory");
      continue;
    }
    d->nodes.push_back(node_from_stat(name, st));
    kids.push_back(&child);
  }
  d->drop.assign(d->nodes.size(), 0);
  for (size_t i = 0; i < d->nodes.size(); ++i) {
    auto it = old.find(d->nodes[i].name);
    const Node* o = it == old.end() ? nullptr : it->second;
    if (kids[i]->target) {
      struct stat st;
      if (lstat(fs(child_path(d, d->nodes[i].name)).c_str(), &st) == 0) current_dev_ = st.st_dev;
      dispatch(d, i, o, nullptr);
    } else {
      dispatch(d, i, o, kids[i]);
    }
  }
  finish_one(d);
}

Scan Walker::scan_dir(const std::string& path, const Node* old) const {
  Scan scan;
  std::vector<std::string> names;
  int dfd = open(fs(path).c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  DIR* dir = dfd >= 0 ? fdopendir(dfd) : nullptr;
  if (!dir) {
    if (!(opt_.vanished_ok && errno == ENOENT))
      scan.warnings.push_back(core::errno_status(errno, path).message());
    if (dfd >= 0) close(dfd);
    return scan;
  }
  while (struct dirent* e = readdir(dir)) {
    std::string name = e->d_name;
    if (name != "." && name != "..") names.push_back(std::move(name));
  }
  std::sort(names.begin(), names.end());
  std::string prefix = path == "/" ? "/" : path + "/";
  for (const auto& name : names) {
    std::string full = prefix + name;
    if (matches_any(opt_.excludes, full)) continue;
    struct stat st;
    // Relative to the open directory: no path walk per entry.
    if (fstatat(dirfd(dir), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno != ENOENT) scan.warnings.push_back(core::errno_status(errno, full).message());
      continue;  // vanished since readdir: not an error
    }
    scan.nodes.push_back(node_from_stat(name, st));
  }
  closedir(dir);
  scan.old_tree = load_old_subtree(old);
  if (scan.old_tree) scan.old_id = old->subtree;
  return scan;
}

std::future<Scan> Walker::scan_async(const std::string& path, const Node* old) {
  // `old` points into the parent's old tree, which outlives the scan: the
  // walker keeps it until the directory's children are dispatched.
  auto task = std::make_shared<std::packaged_task<Scan()>>([this, path, old] { return scan_dir(path, old); });
  std::future<Scan> f = task->get_future();
  scanners_.submit([task] { (*task)(); });
  return f;
}

void Walker::walk_dir(DirJob* d, Scan scan) {
  if (pipe_.failed()) return finish_one(d);
  for (const auto& w : scan.warnings) pipe_.warn(w);
  d->nodes = std::move(scan.nodes);
  d->old_id = scan.old_id;
  d->drop.assign(d->nodes.size(), 0);
  auto old = by_name(scan.old_tree ? &*scan.old_tree : nullptr);
  auto old_of = [&](size_t i) -> const Node* {
    auto it = old.find(d->nodes[i].name);
    return it == old.end() ? nullptr : it->second;
  };
  // List the next few subdirectories in the background while this one is walked.
  std::vector<size_t> subdirs;
  for (size_t i = 0; i < d->nodes.size(); ++i) {
    const Node& n = d->nodes[i];
    if (n.type == NodeType::kDir && !(opt_.one_file_system && n.device_id != current_dev_))
      subdirs.push_back(i);
  }
  std::map<size_t, std::future<Scan>> ahead;
  size_t next = 0, done = 0;
  for (size_t i = 0; i < d->nodes.size(); ++i) {
    while (next < subdirs.size() && next < done + kScanWindow) {
      size_t k = subdirs[next++];
      ahead[k] = scan_async(child_path(d, d->nodes[k].name), old_of(k));
    }
    auto it = ahead.find(i);
    if (it != ahead.end()) {
      ++done;
      dispatch(d, i, old_of(i), nullptr, &it->second);
      ahead.erase(it);
    } else {
      dispatch(d, i, old_of(i), nullptr);
    }
  }
  if (scan.old_tree && d->old_id) d->old_nodes = std::move(scan.old_tree->nodes);
  finish_one(d);
}

void Walker::dispatch(DirJob* d, size_t i, const Node* old, const VDir* virtual_child,
                      std::future<Scan>* scan) {
  Node& n = d->nodes[i];
  std::string full = child_path(d, n.name);
  n.user = names_.user(n.uid);
  n.group = names_.group(n.gid);
  auto& prog = pipe_.progress();
  if (n.type == NodeType::kFile) {
    pipe_.total_files++;
    pipe_.total_bytes += n.size;
    bool unchanged = !opt_.force && old && old->type == NodeType::kFile && old->size == n.size &&
                     old->mtime_ns == n.mtime_ns && old->ctime_ns == n.ctime_ns &&
                     old->inode == n.inode;
    if (unchanged) {
      n.content = old->content;
      n.xattrs = old->xattrs;  // an xattr change would have changed ctime
      pipe_.files_unmodified++;
      prog.files_done++;
      prog.bytes_done += n.size;
      if (opt_.on_file) opt_.on_file(full, n);
      return;
    }
    if (auto st = read_xattrs(fs(full), n.xattrs); !st.ok()) problem(st);
    d->pending++;
    bool had_parent = old != nullptr;
    readers_.submit([this, d, i, had_parent] { process_file(d, i, had_parent); });
    return;
  }
  if (n.type == NodeType::kSymlink) {
    std::string target(4096, '\0');
    ssize_t len = readlink(fs(full).c_str(), target.data(), target.size());
    if (len < 0) {
      problem(core::errno_status(errno, full));
      d->drop[i] = 1;
      return;
    }
    target.resize(static_cast<size_t>(len));
    n.link_target = std::move(target);
  }
  if (auto st = read_xattrs(fs(full), n.xattrs); !st.ok()) problem(st);
  if (n.type != NodeType::kDir) return;
  pipe_.dirs++;
  prog.dirs_done++;
  auto* child = new DirJob;
  child->path = full;
  child->parent = d;
  child->index_in_parent = i;
  d->pending++;
  if (virtual_child) {
    std::optional<Tree> old_tree = load_old_subtree(old);
    return walk_virtual(*virtual_child, child, old_tree ? &*old_tree : nullptr);
  }
  if (opt_.one_file_system && n.device_id != current_dev_) {
    child->drop.clear();
    return finish_one(child);  // mount point: kept as an empty directory
  }
  walk_dir(child, scan ? scan->get() : scan_dir(full, old));
}

core::Status Walker::read_file_content(int fd, uint64_t size, bool sparse, size_t fixed_chunk,
                                       std::vector<Id>& ids, uint64_t& bytes) {
  const auto& params = pipe_.repo().config().chunker;
  if (!sparse && !fixed_chunk && size < params.min_size) {
    // Small file: one chunk, read and stored in this thread.
    thread_local Bytes buf;
    buf.resize(params.min_size + 1);
    size_t got = 0;
    for (;;) {
      ssize_t r = read(fd, buf.data() + got, buf.size() - got);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return core::errno_status(errno, "read");
      if (r == 0) break;
      got += static_cast<size_t>(r);
      if (got == buf.size()) break;  // grew past the small-file limit: stream it
    }
    if (got <= params.min_size) {
      bytes = got;
      if (got == 0) return {};
      ASSIGN_OR_RETURN(Id id, pipe_.store_chunk(ByteView(buf.data(), got)));
      ids.push_back(id);
      pipe_.progress().bytes_done += got;
      return {};
    }
    if (lseek(fd, 0, SEEK_SET) != 0) return core::errno_status(errno, "seek");
  }
  uint64_t pos = 0;
  auto stream_range = [&](uint64_t start, uint64_t end) -> core::Status {
    uint64_t off = start;
    auto read_fn = [&](uint8_t* out, size_t cap) -> core::Result<size_t> {
      size_t want = cap;
      if (end != UINT64_MAX) want = static_cast<size_t>(std::min<uint64_t>(cap, end - off));
      if (want == 0) return size_t{0};
      for (;;) {
        ssize_t r = pread(fd, out, want, static_cast<off_t>(off));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return core::errno_status(errno, "read");
        off += static_cast<uint64_t>(r);
        return static_cast<size_t>(r);
      }
    };
    uint64_t got = 0;
    TRY(pipe_.store_stream(read_fn, ids, got, fixed_chunk));
    bytes += got;
    return {};
  };
  if (!sparse) return stream_range(0, UINT64_MAX);
  // Sparse file: holes become runs of zero chunks without being read.
  while (pos < size) {
    off_t data = lseek(fd, static_cast<off_t>(pos), SEEK_DATA);
    uint64_t data_start = data < 0 ? size : static_cast<uint64_t>(data);
    if (data_start > pos) {
      TRY(pipe_.store_zeros(data_start - pos, ids));
      bytes += data_start - pos;
      pos = data_start;
    }
    if (pos >= size) break;
    off_t hole = lseek(fd, static_cast<off_t>(pos), SEEK_HOLE);
    uint64_t data_end = hole < 0 ? size : std::min<uint64_t>(static_cast<uint64_t>(hole), size);
    TRY(stream_range(pos, data_end));
    pos = data_end;
  }
  return {};
}

void Walker::process_file(DirJob* d, size_t i, bool had_parent) {
  Node& n = d->nodes[i];
  std::string full = child_path(d, n.name);
  auto finish = [&] {
    pipe_.progress().files_done++;
    finish_one(d);
  };
  if (pipe_.failed()) return finish();
  auto fd = core::open_file(fs(full), O_RDONLY | O_NOFOLLOW | O_NOATIME);
  if (!fd.ok() && fd.status().code() == core::Code::kPermissionDenied)
    fd = core::open_file(fs(full), O_RDONLY | O_NOFOLLOW);  // O_NOATIME needs ownership
  if (!fd.ok()) {
    problem(fd.status());
    d->drop[i] = 1;
    pipe_.total_files--;
    pipe_.total_bytes -= n.size;
    return finish();
  }
  struct stat before;
  fstat(fd->get(), &before);
  size_t fixed_chunk = opt_.fixed_chunk ? opt_.fixed_chunk(full) : 0;
  // Fixed chunks read holes as zeros: their ids must not depend on the layout on disk.
  bool sparse = !fixed_chunk && before.st_size > 0 &&
                static_cast<uint64_t>(before.st_blocks) * 512 < static_cast<uint64_t>(before.st_size);
  std::vector<Id> ids;
  uint64_t bytes = 0;
  bool large = sparse || static_cast<uint64_t>(before.st_size) >= pipe_.repo().config().chunker.min_size;
  if (large) large_files_.acquire(1);
  core::Status st =
      read_file_content(fd->get(), static_cast<uint64_t>(before.st_size), sparse, fixed_chunk, ids, bytes);
  if (large) large_files_.release(1);
  if (!st.ok()) {
    if (!pipe_.failed()) {
      pipe_.warn(full + ": " + st.message());
      pipe_.total_files--;
      pipe_.total_bytes -= n.size;
    }
    d->drop[i] = 1;
    return finish();
  }
  struct stat after;
  fstat(fd->get(), &after);
  if (after.st_mtim.tv_sec != before.st_mtim.tv_sec || after.st_mtim.tv_nsec != before.st_mtim.tv_nsec ||
      after.st_size != before.st_size || bytes != static_cast<uint64_t>(before.st_size)) {
    pipe_.notice(full + ": changed while it was read (the snapshot holds what was read)");
  }
  pipe_.total_bytes += bytes - n.size;
  n.size = bytes;
  n.content = std::move(ids);
  (had_parent ? pipe_.files_changed : pipe_.files_new)++;
  if (opt_.on_file) opt_.on_file(full, n);
  finish();
}

void Walker::finish_one(DirJob* d) {
  if (d->pending.fetch_sub(1) == 1) finalize(d);
}

void Walker::finalize(DirJob* d) {
  Tree t;
  for (size_t i = 0; i < d->nodes.size(); ++i)
    if (!d->drop[i]) t.nodes.push_back(std::move(d->nodes[i]));
  if (!d->parent && keep_root_) {
    delete d;
    std::lock_guard lock(root_mu_);
    root_tree_ = std::move(t);
    root_done_ = true;
    root_cv_.notify_all();
    return;
  }
  core::Result<Id> id = core::invalid_argument("unset");
  if (d->old_id && t.nodes == d->old_nodes && pipe_.repo().index().has_usable(*d->old_id)) {
    id = *d->old_id;  // unchanged directory
  } else {
    id = pipe_.repo().save_tree(t);
  }
  if (!id.ok()) pipe_.fail(id.status().with_context("storing tree of " + d->path));
  DirJob* parent = d->parent;
  if (parent) {
    if (id.ok()) {
      parent->nodes[d->index_in_parent].subtree = *id;
    } else {
      parent->drop[d->index_in_parent] = 1;
    }
    delete d;
    finish_one(parent);
    return;
  }
  delete d;
  std::lock_guard lock(root_mu_);
  if (id.ok()) root_id_ = *id;
  root_done_ = true;
  root_cv_.notify_all();
}

core::Result<BackupResult> finish_snapshot(repo::Repository& repo, Pipeline& pipe, const Id& root,
                                           std::vector<std::string> paths, const BackupOptions& opt,
                                           const repo::WriteStats& before,
                                           std::chrono::steady_clock::time_point start) {
  TRY(repo.flush());
  repo::Snapshot s;
  s.time = opt.time ? *opt.time : repo::now_time();
  s.hostname = opt.host.empty() ? local_hostname() : opt.host;
  NameCache names;
  s.uid = getuid();
  s.gid = getgid();
  s.username = names.user(s.uid);
  s.service = opt.service;
  s.tags = opt.tags;
  s.paths = std::move(paths);
  s.excludes = opt.excludes;
  s.tree = root;
  if (opt.parent) s.parent = Id::from_hex(opt.parent->id);
  s.engine = opt.engine;
  s.program_version = "cairn 0.1.0";
  repo::WriteStats after = repo.write_stats();
  auto& m = s.summary;
  m.files_new = pipe.files_new;
  m.files_changed = pipe.files_changed;
  m.files_unmodified = pipe.files_unmodified;
  m.dirs = pipe.dirs;
  m.errors = pipe.progress().errors;
  m.data_blobs = after.data_blobs - before.data_blobs;
  m.tree_blobs = after.tree_blobs - before.tree_blobs;
  m.data_added = after.stored_bytes - before.stored_bytes;
  m.data_added_raw = after.raw_bytes - before.raw_bytes;
  m.total_files = pipe.total_files;
  m.total_bytes = pipe.total_bytes;
  m.duration_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSIGN_OR_RETURN(std::string id, repo.save_snapshot(s));
  return BackupResult{id, std::move(s), pipe.warnings(), pipe.notices()};
}

}  // namespace

std::optional<repo::SnapshotRef> find_parent(repo::Repository& repo, const std::string& host,
                                             const std::string& service,
                                             const std::vector<std::string>& paths) {
  auto all = repo.list_snapshots();
  if (!all.ok()) return std::nullopt;
  for (auto it = all->rbegin(); it != all->rend(); ++it) {
    const auto& s = it->snapshot;
    if (s.hostname == host && s.service == service && s.paths == paths) return *it;
  }
  return std::nullopt;
}

namespace {

core::Result<Id> merge_entries(repo::Repository& repo, Pipeline& pipe, Tree walked, EntrySource& extra);

// backup_paths() and backup_paths_then_entries(): the walk, then (with
// `extra`) the late entries merged into the root, then the snapshot.
core::Result<BackupResult> walk_and_snapshot(repo::Repository& repo, const std::vector<std::string>& paths,
                                             EntrySource* extra, const BackupOptions& options,
                                             BackupProgress* progress) {
  auto start = std::chrono::steady_clock::now();
  if (paths.empty()) return core::invalid_argument("nothing to back up: no paths given");
  std::vector<std::string> abs_paths;
  for (const auto& p : paths) {
    std::string s = std::filesystem::absolute(p).lexically_normal().string();
    while (s.size() > 1 && s.back() == '/') s.pop_back();
    abs_paths.push_back(s);
  }
  repo::WriteStats before = repo.write_stats();
  Pipeline pipe(repo, options, progress);
  Id root;
  {
    Walker walker(pipe, options);
    if (extra) {
      ASSIGN_OR_RETURN(Tree walked, walker.run_open_root(paths));
      ASSIGN_OR_RETURN(root, merge_entries(repo, pipe, std::move(walked), *extra));
    } else {
      ASSIGN_OR_RETURN(root, walker.run(paths));
    }
  }
  if (pipe.failed()) return pipe.error();
  // Every source path unreadable: nothing was backed up; that is a failure.
  if (pipe.total_files == 0 && pipe.dirs == 0) {
    bool any = false;
    for (const auto& p : abs_paths) {
      struct stat st;
      if (lstat(read_path(options, p).c_str(), &st) == 0) any = true;
    }
    if (!any) return core::not_found("none of the given paths exist: " + abs_paths.front());
  }
  BackupOptions opt = options;
  if (extra && extra->engine) opt.engine.update(extra->engine());
  return finish_snapshot(repo, pipe, root, abs_paths, opt, before, start);
}

}  // namespace

core::Result<BackupResult> backup_paths(repo::Repository& repo, const std::vector<std::string>& paths,
                                        const BackupOptions& options, BackupProgress* progress) {
  return walk_and_snapshot(repo, paths, nullptr, options, progress);
}

core::Result<BackupResult> backup_paths_then_entries(repo::Repository& repo,
                                                     const std::vector<std::string>& paths,
                                                     EntrySource extra, const BackupOptions& options,
                                                     BackupProgress* progress) {
  return walk_and_snapshot(repo, paths, &extra, options, progress);
}

core::Result<BackupResult> backup_stream(repo::Repository& repo, StreamSource source,
                                         const BackupOptions& options, BackupProgress* progress) {
  if (!repo::is_safe_name(source.filename))
    return core::invalid_argument("invalid stream file name '" + source.filename + "'");
  auto done = std::make_shared<bool>(false);
  EntrySource entries;
  entries.next = [done, name = source.filename,
                  read = std::move(source.read)]() -> core::Result<std::optional<StreamEntry>> {
    if (*done) return std::optional<StreamEntry>();
    *done = true;
    StreamEntry e;
    e.path = name;
    e.read = read;
    return std::optional<StreamEntry>(std::move(e));
  };
  entries.finish = std::move(source.finish);
  return backup_entries(repo, std::move(entries), options, progress);
}

namespace {

// The directory tree of a backup_entries() snapshot while it is built: small
// (names and blob ids only), serialised bottom-up at the end.
struct DirBuild {
  Node node;  // the directory's own metadata (name, mode, times)
  std::map<std::string, std::unique_ptr<DirBuild>> dirs;
  std::map<std::string, Node> others;  // files and symlinks
};

Node entry_node(const StreamEntry& e, const std::string& name) {
  Node n;
  n.name = name;
  n.type = e.type;
  n.mode = e.mode & 07777;
  n.uid = e.uid.value_or(getuid());
  n.gid = e.gid.value_or(getgid());
  n.mtime_ns = n.ctime_ns = e.mtime_ns ? e.mtime_ns : repo::now_time().unix_ns;
  n.links = 1;
  n.link_target = e.link_target;
  return n;
}

// Finds (creating as needed) the directory that holds `parts[0..n-1]`.
core::Result<DirBuild*> parent_dir(DirBuild& root, const std::vector<std::string>& parts,
                                   const StreamEntry& e) {
  DirBuild* d = &root;
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    auto& slot = d->dirs[parts[i]];
    if (!slot) {
      if (d->others.count(parts[i]))
        return core::invalid_argument("stream entry '" + e.path + "' is inside a file");
      slot = std::make_unique<DirBuild>();
      StreamEntry implied;  // a directory the stream names only as a parent
      implied.type = NodeType::kDir;
      implied.mode = 0700;
      slot->node = entry_node(implied, parts[i]);
    }
    d = slot.get();
  }
  return d;
}

// Saves `d` bottom-up as a tree holding its entries, added to `t`'s nodes.
core::Result<Id> save_dir(repo::Repository& repo, DirBuild& d, Pipeline& pipe, Tree t = {}) {
  for (auto& [name, sub] : d.dirs) {
    ASSIGN_OR_RETURN(Id id, save_dir(repo, *sub, pipe));
    Node n = sub->node;
    n.subtree = id;
    t.nodes.push_back(std::move(n));
    pipe.dirs++;
  }
  for (auto& [name, n] : d.others) t.nodes.push_back(std::move(n));
  return repo.save_tree(t);
}

// Places an entry in the tree under construction, checking its path.
// Returns the node whose content the caller fills in (files), else nullptr.
// Nodes live in std::map slots, so the pointer stays valid while other
// entries are added.
core::Result<Node*> place_entry(DirBuild& root, std::vector<std::string>& top,
                                const StreamEntry& e) {
  std::vector<std::string> parts;
  std::stringstream ss(e.path);
  for (std::string part; std::getline(ss, part, '/');)
    if (!part.empty() && part != ".") parts.push_back(part);
  if (parts.empty()) return nullptr;  // the root itself ("./" in tar streams)
  for (const auto& p : parts)
    if (!repo::is_safe_name(p))
      return core::invalid_argument("unsafe stream entry path '" + e.path + "'");
  ASSIGN_OR_RETURN(DirBuild * dir, parent_dir(root, parts, e));
  const std::string& name = parts.back();
  if (std::find(top.begin(), top.end(), parts[0]) == top.end()) top.push_back(parts[0]);
  if (e.type == NodeType::kDir) {
    if (dir->others.count(name))
      return core::invalid_argument("stream entry '" + e.path + "' is repeated");
    auto& slot = dir->dirs[name];
    if (!slot) slot = std::make_unique<DirBuild>();
    slot->node = entry_node(e, name);
    return nullptr;
  }
  if (dir->dirs.count(name) || dir->others.count(name))
    return core::invalid_argument("stream entry '" + e.path + "' is repeated");
  if (e.type == NodeType::kFile && !e.read)
    return core::invalid_argument("stream entry '" + e.path + "' has no data");
  if (e.type != NodeType::kFile && e.type != NodeType::kSymlink)
    return core::invalid_argument("stream entry '" + e.path + "' has an unsupported type");
  Node& n = dir->others.emplace(name, entry_node(e, name)).first->second;
  return e.type == NodeType::kFile ? &n : nullptr;
}

// Reads every entry of `source` into `root` (file contents stored through
// `pipe`), then calls source.finish; `top` gets the top-level names in order.
// With source.concurrency > 1, that many threads each take the next entry
// and read it to its end, so several streams flow at once.
core::Status collect_entries(Pipeline& pipe, EntrySource& source, DirBuild& root,
                             std::vector<std::string>& top) {
  std::mutex mu;  // guards source.next(), the tree and `st`
  core::Status st;
  auto record = [&](const core::Status& s) {
    std::lock_guard lock(mu);
    if (st.ok()) st = s;
  };
  auto worker = [&] {
    for (;;) {
      StreamEntry e;
      Node* node = nullptr;
      {
        std::lock_guard lock(mu);
        if (!st.ok()) return;
        auto next = source.next();
        if (!next.ok()) {
          st = next.status();
          return;
        }
        if (!*next) return;
        e = std::move(**next);
        auto placed = place_entry(root, top, e);
        if (!placed.ok()) {
          st = placed.status();
          return;
        }
        node = *placed;
      }
      if (!node) continue;
      uint64_t bytes = 0;
      std::vector<Id> content;
      core::Status stored = pipe.store_stream(e.read, content, bytes, e.fixed_chunk);
      if (!stored.ok()) {
        record(stored);
        pipe.fail(stored);  // the other streams stop at their next chunk
        return;
      }
      node->content = std::move(content);
      node->size = bytes;
      pipe.files_new++;
      pipe.total_files++;
      pipe.total_bytes += bytes;
      pipe.progress().files_done++;
    }
  };
  size_t threads = std::max<size_t>(1, source.concurrency);
  std::vector<std::thread> helpers;
  for (size_t i = 1; i < threads; ++i) helpers.emplace_back(worker);
  worker();
  for (auto& t : helpers) t.join();
  if (source.finish) {
    core::Status fin = source.finish();
    if (st.ok()) st = fin;
  }
  return st;
}

// The walked root directory plus the entries of `extra`: a top-level entry
// replaces the walked node of the same name. Returns the root tree's id.
core::Result<Id> merge_entries(repo::Repository& repo, Pipeline& pipe, Tree walked, EntrySource& extra) {
  DirBuild added;
  std::vector<std::string> top;
  TRY(collect_entries(pipe, extra, added, top));
  Tree root;
  for (auto& n : walked.nodes)
    if (!added.dirs.count(n.name) && !added.others.count(n.name)) root.nodes.push_back(std::move(n));
  return save_dir(repo, added, pipe, std::move(root));
}

}  // namespace

core::Result<BackupResult> backup_entries(repo::Repository& repo, EntrySource source,
                                          const BackupOptions& options, BackupProgress* progress) {
  auto start = std::chrono::steady_clock::now();
  repo::WriteStats before = repo.write_stats();
  Pipeline pipe(repo, options, progress);
  DirBuild root;
  std::vector<std::string> top;
  TRY(collect_entries(pipe, source, root, top));
  ASSIGN_OR_RETURN(Id root_id, save_dir(repo, root, pipe));
  std::vector<std::string> paths;
  for (const auto& t : top) paths.push_back("/" + t);
  BackupOptions opt = options;
  if (source.engine) opt.engine.update(source.engine());
  return finish_snapshot(repo, pipe, root_id, paths, opt, before, start);
}

}  // namespace cairn::archive
