#include "repo/pruner.h"

#include <fmt/format.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>

#include "repo/lock.h"
#include "repo/log_archive.h"

namespace cairn::repo {

using storage::FileType;

namespace {


using Note = std::function<void(const std::string&)>;

// Test hook: CAIRN_TEST_PRUNE_KILL_AFTER=N makes prune SIGKILL itself right
// after its Nth change to the repository (a stored file, a removal), so the
// kill tests stop it between any two steps deterministically
// (tests/e2e/test_prune.sh). Unset in production: no effect.
void changed() {
  static const long limit = [] {
    const char* v = std::getenv("CAIRN_TEST_PRUNE_KILL_AFTER");
    return v ? std::atol(v) : 0L;
  }();
  static std::atomic<long> count{0};
  if (limit > 0 && ++count >= limit) raise(SIGKILL);
}

// Runs fn(i, worker) for i in [0, n) on up to `threads` threads (worker is
// the thread's number, below `threads`); returns the first error and starts
// nothing after it. The repack copy is CPU-bound (verifying blobs, faulting
// in fresh buffers) and removals wait on the filesystem or the network: both
// gain from overlap. fn must be thread-safe.
core::Status parallel_each(size_t n, size_t threads, const std::function<core::Status(size_t, size_t)>& fn) {
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex mu;
  core::Status first;
  auto work = [&](size_t worker) {
    for (size_t i; !failed && (i = next++) < n;) {
      core::Status st = fn(i, worker);
      if (st.ok()) continue;
      std::lock_guard lock(mu);
      if (first.ok()) first = std::move(st);
      failed = true;
    }
  };
  std::vector<std::thread> helpers;
  for (size_t k = 1; k < std::min(n, threads); ++k) helpers.emplace_back(work, k);
  work(0);
  for (auto& t : helpers) t.join();
  return first;
}

// One copy thread per core (up to four): each holds one loaded pack range.
size_t copy_threads() { return std::clamp<size_t>(std::thread::hardware_concurrency(), 1, 4); }

core::Status removed(Repository& repo, FileType type, const std::string& name) {
  TRY(repo.backend().remove({type, name}));
  changed();
  return {};
}

core::Status remove_all(Repository& repo, FileType type, const std::vector<std::string>& names) {
  // As many as the backend has uploads in flight: on object stores a removal
  // is a round trip; locally (two) unlinks overlap the freeing of page cache,
  // while eight measured slower.
  const size_t threads = std::max(1, repo.backend().preferred_upload_concurrency());
  return parallel_each(names.size(), threads, [&](size_t i, size_t) { return removed(repo, type, names[i]); });
}

core::Status mark_tree(Repository& repo, const Id& tree, std::unordered_set<Id, IdHash>& used) {
  if (!used.insert(tree).second) return {};
  auto t = repo.load_tree(tree);
  if (!t.ok()) return t.status().with_context("prune refuses: a snapshot's tree is unreadable (run check)");
  for (const auto& n : t->nodes) {
    for (const auto& id : n.content) used.insert(id);
    if (n.subtree) TRY(mark_tree(repo, *n.subtree, used));
  }
  return {};
}

// Every blob the snapshots reference. Snapshots are listed before the index
// is (re)read: a concurrent backup writes its index before its snapshot, so
// every listed snapshot's blobs are in an index file read here.
core::Result<std::unordered_set<Id, IdHash>> used_blobs(Repository& repo, const Note& note) {
  note("listing snapshots");
  std::vector<std::string> snap_problems;
  ASSIGN_OR_RETURN(auto snaps, repo.list_snapshots(&snap_problems));
  if (!snap_problems.empty()) return core::corruption("prune refuses: " + snap_problems.front());
  std::vector<std::string> log_problems;
  ASSIGN_OR_RETURN(auto logs, list_all_log_entries(repo, &log_problems));
  if (!log_problems.empty()) return core::corruption("prune refuses: " + log_problems.front());
  note("loading index");
  repo.reset_index();
  std::vector<std::string> problems;
  TRY(repo.load_index(&problems));
  if (!problems.empty())
    return core::corruption("prune refuses: unreadable index file: " + problems.front() +
                            " (run 'cairn check', then 'cairn repair index')");
  note("finding used data");
  std::unordered_set<Id, IdHash> used;
  for (const auto& s : snaps) {
    auto st = mark_tree(repo, s.snapshot.tree, used);
    if (!st.ok()) return st.with_context("snapshot " + s.id.substr(0, 8));
  }
  // Archived WAL/log files are roots as well: their data stays until the
  // entries themselves are expired.
  for (const auto& e : logs)
    for (const auto& b : e.blobs) used.insert(b.id);
  for (const auto& id : used)
    if (!repo.index().has(id))
      return core::corruption("prune refuses: blob " + id.hex() +
                              " is used but in no index (run 'cairn check', then 'cairn repair index')");
  return used;
}

core::Result<std::vector<std::string>> write_index_files(Repository& repo, std::vector<PackContents> packs) {
  return repo.save_index_files(std::move(packs), changed);
}

core::Status remove_marker(Repository& repo, const std::string& id) {
  if (id.empty()) return {};
  return removed(repo, FileType::kMaintenance, id);
}

core::Status store_marker(Repository& repo, Marker& m) {
  TRY(save_marker(repo, m).status());
  changed();
  return {};
}

// Records who may still depend on the marked packs: every live lock holder
// now, after the marker is stored. A backup that takes its lock later reads
// the marker before it reads the index, so it never dedups against them.
core::Status complete_pending(Repository& repo, Marker& m, const PruneOptions& opt) {
  ASSIGN_OR_RETURN(auto locks, list_locks(repo));
  Marker done = m;
  done.state = MarkerState::kMarked;
  done.supersedes = m.id;
  done.waits_for.clear();
  std::set<std::string> holders;
  for (const auto& l : locks)
    if (!l.stale && l.holder != opt.own_holder) holders.insert(l.holder);
  done.waits_for.assign(holders.begin(), holders.end());
  TRY(store_marker(repo, done));
  TRY(remove_marker(repo, m.id));
  m = std::move(done);
  return {};
}

// Packs named by index files other than `obsolete`: a backup that stored a
// pack while it was being marked indexes it in a file the marker does not
// list. Such a pack is kept (rescued) even when its blobs have copies
// elsewhere, so no index file ever names a deleted pack.
core::Result<std::unordered_set<Id, IdHash>> packs_named_outside(Repository& repo,
                                                                 const std::vector<std::string>& obsolete) {
  std::set<std::string> skip(obsolete.begin(), obsolete.end());
  std::vector<std::string> names;
  TRY(repo.backend().list(FileType::kIndex, [&](const storage::FileInfo& fi) { names.push_back(fi.name); }));
  std::unordered_set<Id, IdHash> packs;
  for (const auto& name : names) {
    if (skip.count(name)) continue;
    auto plain = repo.load_file(FileType::kIndex, name);
    if (!plain.ok() && plain.status().code() == core::Code::kNotFound) continue;  // replaced meanwhile
    if (!plain.ok()) return plain.status();
    ASSIGN_OR_RETURN(auto contents, decode_index(*plain));
    for (const auto& pc : contents) packs.insert(pc.pack);
  }
  return packs;
}

// Carries out a decided sweep; every step may be repeated after a kill.
core::Status execute_sweep(Repository& repo, const Marker& s, PruneReport& r, const Note& note) {
  note("sweeping marked packs");
  // Rescued packs are indexed before the obsolete index files (which name
  // them) go.
  if (!s.rescued.empty()) TRY(write_index_files(repo, s.rescued).status());
  TRY(remove_marker(repo, s.supersedes));
  TRY(remove_all(repo, FileType::kIndex, s.obsolete_index));
  std::map<std::string, uint64_t> stored;
  TRY(repo.backend().list(FileType::kPack, [&](const storage::FileInfo& fi) { stored[fi.name] = fi.size; }));
  std::vector<std::string> packs;
  for (const auto& pc : s.packs) {
    std::string name = pc.pack.hex();
    auto it = stored.find(name);
    if (it == stored.end()) continue;  // removed before a kill
    packs.push_back(std::move(name));
    r.bytes_swept += it->second;
    r.packs_swept++;
  }
  TRY(remove_all(repo, FileType::kPack, packs));
  r.packs_rescued += s.rescued.size();
  r.index_files_replaced += s.obsolete_index.size();
  r.swept = true;
  return remove_marker(repo, s.id);
}

// Finishes what earlier runs left. Returns true when a marker still waits.
core::Result<bool> process_markers(Repository& repo, const PruneOptions& opt, PruneReport& r, const Note& note) {
  note("reading maintenance markers");
  ASSIGN_OR_RETURN(auto markers, list_markers(repo));
  std::set<std::string> superseded;
  for (const auto& m : markers)
    if (!m.supersedes.empty()) superseded.insert(m.supersedes);
  // A successor exists for these (kill between writing it and removing them).
  std::vector<Marker> live;
  for (auto& m : markers) {
    if (superseded.count(m.id)) {
      TRY(remove_marker(repo, m.id));
    } else {
      live.push_back(std::move(m));
    }
  }
  // A decided sweep is finished first, without deciding again.
  for (const auto& m : live)
    if (m.state == MarkerState::kSweeping) TRY(execute_sweep(repo, m, r, note));
  bool waiting = false;
  for (auto& m : live) {
    if (m.state == MarkerState::kSweeping) continue;
    if (m.state == MarkerState::kPending) TRY(complete_pending(repo, m, opt));
    ASSIGN_OR_RETURN(auto locks, list_locks(repo));
    std::set<std::string> wanted(m.waits_for.begin(), m.waits_for.end());
    std::vector<std::string> still;
    for (const auto& l : locks)
      if (!l.stale && wanted.count(l.holder)) still.push_back(l.describe());
    if (!still.empty()) {
      r.waiting_for.insert(r.waiting_for.end(), still.begin(), still.end());
      waiting = true;
      continue;
    }
    // Every backup that could have come to depend on a marked pack has
    // ended: what the snapshots reference now is final for these packs.
    ASSIGN_OR_RETURN(auto used, used_blobs(repo, note));
    note("deciding sweep");
    ASSIGN_OR_RETURN(auto d, decide_sweep(m.packs, used, [&](const Id& id) { return repo.index().lookup(id); }));
    ASSIGN_OR_RETURN(auto named, packs_named_outside(repo, m.obsolete_index));
    std::vector<PackContents> doomed;
    for (auto& pc : d.deleted) (named.count(pc.pack) ? d.rescued : doomed).push_back(std::move(pc));
    d.deleted = std::move(doomed);
    Marker s = m;
    s.state = MarkerState::kSweeping;
    s.packs = std::move(d.deleted);
    s.rescued = std::move(d.rescued);
    s.supersedes = m.id;
    TRY(store_marker(repo, s));
    TRY(execute_sweep(repo, s, r, note));
  }
  return waiting;
}

// Copies the used blobs of a pack that is being repacked into new packs, as
// they are stored (see Repository::copy_stored_blob), reading the pack once
// from its first to its last used blob (one request on object stores).
// `buffers` are the calling thread's, reused from pack to pack.
struct CopyBuffers {
  core::Bytes read;
  BlobScratch blob;
};
core::Status copy_used_blobs(Repository& repo, const PackContents& pc,
                             const std::unordered_set<Id, IdHash>& used, CopyBuffers& buffers) {
  std::vector<const PackEntry*> wanted;
  uint64_t start = UINT64_MAX, end = 0;
  for (const auto& b : pc.blobs) {
    if (!used.count(b.id)) continue;
    wanted.push_back(&b);
    start = std::min<uint64_t>(start, b.offset);
    end = std::max<uint64_t>(end, uint64_t{b.offset} + b.length);
  }
  if (wanted.empty()) return {};
  const std::string name = pc.pack.hex();
  TRY(repo.backend().load_into({FileType::kPack, name}, start, end - start, buffers.read));
  for (const PackEntry* b : wanted) {
    core::ByteView stored = core::ByteView(buffers.read).subspan(b->offset - start, b->length);
    TRY(repo.copy_stored_blob(*b, stored, buffers.blob).with_context("repacking pack " + name));
  }
  return {};
}

core::Status mark_phase(Repository& repo, const PruneOptions& opt, PruneReport& r, const Note& note) {
  ASSIGN_OR_RETURN(auto used, used_blobs(repo, note));
  const std::vector<std::string> index_files = repo.loaded_index_files();

  note("planning");
  std::map<std::string, uint64_t> stored;
  TRY(repo.backend().list(FileType::kPack, [&](const storage::FileInfo& fi) { stored[fi.name] = fi.size; }));
  for (const auto& [name, size] : stored) r.bytes_before += size;
  std::vector<PackContents> keep, repack, drop, partly;
  std::vector<PackUsage> usage;
  std::set<std::string> indexed;
  std::vector<std::string> missing;
  repo.index().for_each_pack([&](const PackContents& pc) {
    std::string name = pc.pack.hex();
    indexed.insert(name);
    r.packs_total++;
    PackUsage u;
    for (const auto& b : pc.blobs) {
      if (used.count(b.id)) {
        u.used += b.length;
        r.blobs_used++;
      } else {
        u.unused += b.length;
        r.blobs_unused++;
      }
    }
    if (u.used == 0) {
      drop.push_back(pc);
      r.packs_deleted++;
    } else {
      partly.push_back(pc);
      usage.push_back(u);
    }
  });
  {
    std::vector<bool> chosen(partly.size());
    for (size_t i : select_repacks(usage, opt.max_unused, opt.max_repack_bytes)) chosen[i] = true;
    for (size_t i = 0; i < partly.size(); ++i) (chosen[i] ? repack : keep).push_back(std::move(partly[i]));
    r.packs_repacked = repack.size();
  }
  for (const auto& id : repo.index().pack_ids()) {
    std::string name = id.hex();
    if (!stored.count(name)) {
      missing.push_back(name);
    } else if (indexed.insert(name).second) {
      // Named by an index, but every blob's preferred copy is elsewhere.
      drop.push_back(PackContents{id, {}});
      r.packs_total++;
      r.packs_deleted++;
    }
  }
  if (!missing.empty()) {
    std::string names;
    for (size_t i = 0; i < missing.size() && i < 10; ++i) names += (i ? ", " : "") + missing[i];
    if (missing.size() > 10) names += fmt::format(" and {} more", missing.size() - 10);
    return core::corruption(fmt::format(
        "prune refuses: {} pack(s) named by the index are missing from storage ({}), so the "
        "snapshots that "
        "need them are damaged; run 'cairn check' to see which, then 'cairn repair index'",
        missing.size(), names));
  }
  std::vector<PackContents> unindexed;
  for (const auto& [name, size] : stored) {
    auto id = Id::from_hex(name);
    if (!indexed.count(name) && id) {
      unindexed.push_back(PackContents{*id, {}});
      r.packs_unindexed++;
    }
  }
  auto freed = [&](const std::vector<PackContents>& v) {
    for (const auto& pc : v)
      if (auto it = stored.find(pc.pack.hex()); it != stored.end()) r.bytes_freed += it->second;
  };
  freed(drop);
  freed(repack);
  freed(unindexed);
  for (const auto& pc : repack)
    for (const auto& b : pc.blobs)
      if (used.count(b.id)) r.bytes_repacked += b.length;
  bool nothing = drop.empty() && repack.empty() && unindexed.empty();
  if (opt.dry_run || (nothing && index_files.size() <= 1)) return {};

  // Copy what repacked packs still need, then flush (new packs + an index
  // naming them), so nothing used is ever only in a pack about to go.
  note("repacking");
  repo.reuse_pack_buffers();
  {
    // Buffers per copy thread, reused for every pack it copies.
    std::vector<CopyBuffers> buffers(copy_threads());
    TRY(parallel_each(repack.size(), buffers.size(), [&](size_t i, size_t worker) {
      return copy_used_blobs(repo, repack[i], used, buffers[worker]);
    }));
  }
  TRY(repo.flush());
  changed();

  // One complete index: kept packs + new packs. Written before anything is
  // marked or deleted.
  note("writing index");
  std::vector<PackContents> final_packs = keep;
  for (auto& pc : repo.written_packs()) final_packs.push_back(std::move(pc));
  ASSIGN_OR_RETURN(auto new_index_files, write_index_files(repo, std::move(final_packs)));
  r.marked = true;

  if (opt.exclusive) {
    // Nothing else runs: the old index files and the packs go now.
    note("deleting");
    std::set<std::string> fresh(new_index_files.begin(), new_index_files.end());
    std::vector<std::string> old_index, packs;
    TRY(repo.backend().list(FileType::kIndex, [&](const storage::FileInfo& fi) {
      if (!fresh.count(fi.name)) old_index.push_back(fi.name);
    }));
    // Index files first: a kill in between leaves unindexed packs (the next
    // prune removes them), never an index naming a deleted pack.
    TRY(remove_all(repo, FileType::kIndex, old_index));
    r.index_files_replaced += old_index.size();
    for (const auto* v : {&drop, &repack, &unindexed})
      for (const auto& pc : *v) packs.push_back(pc.pack.hex());
    return remove_all(repo, FileType::kPack, packs);
  }

  note("writing marker");
  Marker m;
  m.state = MarkerState::kPending;
  m.time = now_time();
  for (const auto* v : {&drop, &repack, &unindexed})
    for (const auto& pc : *v) m.packs.push_back(pc);
  std::set<std::string> fresh(new_index_files.begin(), new_index_files.end());
  for (const auto& name : index_files)
    if (!fresh.count(name)) m.obsolete_index.push_back(name);
  TRY(store_marker(repo, m));
  TRY(complete_pending(repo, m, opt));
  r.marker = m.id;
  return {};
}

}  // namespace

std::vector<size_t> select_repacks(const std::vector<PackUsage>& packs, double max_unused,
                                   uint64_t max_repack_bytes) {
  uint64_t used = 0, unused = 0;
  std::vector<size_t> order;
  for (size_t i = 0; i < packs.size(); ++i) {
    used += packs[i].used;
    unused += packs[i].unused;
    if (packs[i].unused > 0) order.push_back(i);
  }
  // unused / (used + unused) <= max_unused  <=>  unused <= max_unused / (1 - max_unused) * used
  const double allowed = max_unused >= 1 ? INFINITY : max_unused / (1 - max_unused) * double(used);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    // a.unused / a.total > b.unused / b.total, without division.
    const long double lhs = (long double)packs[a].unused * (packs[b].used + packs[b].unused);
    const long double rhs = (long double)packs[b].unused * (packs[a].used + packs[a].unused);
    if (lhs != rhs) return lhs > rhs;
    if (packs[a].unused != packs[b].unused) return packs[a].unused > packs[b].unused;
    return a < b;
  });
  std::vector<size_t> chosen;
  uint64_t copied = 0;
  for (size_t i : order) {
    if (double(unused) <= allowed) break;
    if (packs[i].used > max_repack_bytes - copied) continue;  // over the copy budget
    chosen.push_back(i);
    copied += packs[i].used;
    unused -= packs[i].unused;
  }
  return chosen;
}

core::Result<SweepDecision> decide_sweep(const std::vector<PackContents>& marked,
                                         const std::unordered_set<Id, IdHash>& used,
                                         const std::function<std::optional<BlobLocation>(const Id&)>& locate) {
  std::unordered_map<Id, size_t, IdHash> by_pack;
  for (size_t i = 0; i < marked.size(); ++i) by_pack.emplace(marked[i].pack, i);
  std::vector<std::vector<PackEntry>> needed(marked.size());
  std::vector<bool> rescue(marked.size(), false);
  for (const auto& id : used) {
    auto loc = locate(id);
    if (!loc) return core::corruption("prune refuses: blob " + id.hex() + " is used but in no index (run check)");
    // The index prefers a copy outside marked packs: landing in a marked
    // pack means no other copy exists.
    auto it = by_pack.find(loc->pack);
    if (it == by_pack.end()) continue;
    rescue[it->second] = true;
    needed[it->second].push_back(loc->entry);
  }
  SweepDecision d;
  for (size_t i = 0; i < marked.size(); ++i) {
    if (!rescue[i]) {
      d.deleted.push_back(marked[i]);
      continue;
    }
    // Index the pack with what the marker recorded plus every needed blob
    // (the marker lists only the blobs whose preferred copy it held).
    PackContents pc = marked[i];
    std::unordered_set<Id, IdHash> have;
    for (const auto& e : pc.blobs) have.insert(e.id);
    for (const auto& e : needed[i])
      if (have.insert(e.id).second) pc.blobs.push_back(e);
    d.rescued.push_back(std::move(pc));
  }
  return d;
}

core::Result<PruneReport> prune(Repository& repo, const PruneOptions& opt, const Note& progress) {
  auto note = [&](const std::string& s) {
    if (progress) progress(s);
  };
  PruneReport r;
  if (!opt.dry_run) {
    ASSIGN_OR_RETURN(bool waiting, process_markers(repo, opt, r, note));
    // One marker at a time: marking again while one waits would let index
    // files of the waiting marker's packs be replaced before it is decided.
    if (waiting) return r;
  }
  TRY(mark_phase(repo, opt, r, note));
  return r;
}

}  // namespace cairn::repo
