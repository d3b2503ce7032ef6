#include "repo/checker.h"

#include "repo/log_archive.h"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <cmath>
#include <map>
#include <random>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "core/thread_pool.h"

namespace cairn::repo {

using storage::FileType;

core::Status parse_subset(const std::string& s, CheckOptions& o) {
  try {
    if (!s.empty() && s.back() == '%') {
      double p = std::stod(s.substr(0, s.size() - 1));
      if (p <= 0 || p > 100) return core::invalid_argument("--read-data-subset percentage must be in (0, 100]");
      o.subset_percent = p;
      return {};
    }
    auto slash = s.find('/');
    if (slash != std::string::npos) {
      int n = std::stoi(s.substr(0, slash)), m = std::stoi(s.substr(slash + 1));
      if (m < 1 || n < 1 || n > m) return core::invalid_argument("--read-data-subset n/m needs 1 <= n <= m");
      o.subset_n = static_cast<uint32_t>(n);
      o.subset_m = static_cast<uint32_t>(m);
      return {};
    }
  } catch (const std::exception&) {
  }
  return core::invalid_argument("--read-data-subset must look like 10% or 2/5, not '" + s + "'");
}

namespace {

constexpr size_t kReadWorkers = 3;

class Checker {
 public:
  Checker(Repository& repo, const CheckOptions& opt, const std::function<void(const std::string&)>& progress)
      : repo_(repo), opt_(opt), progress_(progress) {}

  core::Result<CheckReport> run() {
    // Snapshots first, then the index: a backup running concurrently writes
    // its index before its snapshot, so every listed snapshot's blobs are in
    // an index file that exists by the time the index is read.
    note("listing snapshots");
    std::vector<std::string> snap_problems;
    auto snaps = repo_.list_snapshots(&snap_problems);
    if (!snaps.ok()) return snaps.status();
    // Archived log files (WAL) are roots too, listed before the index for the
    // same reason as snapshots.
    std::vector<std::string> log_problems;
    ASSIGN_OR_RETURN(auto logs, list_all_log_entries(repo_, &log_problems));
    note("loading index");
    std::vector<std::string> problems;
    TRY(repo_.load_index(&problems));
    for (auto& p : problems) report_.errors.push_back(p);

    note("checking packs");
    std::unordered_map<std::string, uint64_t> stored;
    TRY(repo_.backend().list(FileType::kPack, [&](const storage::FileInfo& fi) { stored[fi.name] = fi.size; }));
    std::map<std::string, std::vector<PackEntry>> indexed;
    repo_.index().for_each_pack([&](const PackContents& pc) { indexed[pc.pack.hex()] = pc.blobs; });
    // Packs whose blobs all have their preferred copy elsewhere are named too.
    for (const auto& id : repo_.index().pack_ids()) indexed.try_emplace(id.hex());
    report_.packs = indexed.size();
    report_.blobs = repo_.index().blob_count();
    for (const auto& [name, size] : stored) {
      if (!indexed.count(name))
        report_.warnings.push_back("pack " + name + " is in no index (left by an interrupted backup; harmless)");
    }
    for (const auto& [name, blobs] : indexed) {
      auto it = stored.find(name);
      if (it == stored.end()) {
        // A pack a prune marker names may be deleted by a concurrent prune
        // sweep: no snapshot needs it (docs/retention.md).
        auto id = Id::from_hex(name);
        if (id && repo_.index().is_excluded(*id)) {
          report_.warnings.push_back("pack " + name +
                                     " was marked by prune and has been deleted meanwhile");
          continue;
        }
        damage(name, "pack " + name + " is missing (named by the index)");
        continue;
      }
      check_header(name, it->second, blobs);
    }

    note("checking snapshots");
    for (auto& p : snap_problems) report_.errors.push_back(p);
    snapshots_ = std::move(*snaps);
    report_.snapshots = snapshots_.size();
    std::unordered_set<Id, IdHash> seen_trees;
    for (const auto& s : snapshots_) check_tree(s.id, s.snapshot.tree, seen_trees);
    report_.trees = seen_trees.size();

    note("checking archived log files");
    for (auto& p : log_problems) report_.errors.push_back(p + " (an archived WAL/log file is unreadable)");
    for (const auto& e : logs) {
      for (const auto& b : e.blobs) {
        if (repo_.index().has(b.id)) continue;
        report_.errors.push_back("archived log file " + e.service + "/" + e.name + ": blob " + b.id.hex() +
                                 " is in no index");
        bad_blobs_.insert(b.id);
      }
    }

    if (opt_.read_data) read_data(indexed);
    if (!report_.damaged_packs.empty() || !bad_blobs_.empty()) find_affected();
    return std::move(report_);
  }

 private:
  void note(const std::string& s) {
    std::lock_guard lock(note_mu_);
    if (progress_) progress_(s);
  }

  void damage(const std::string& pack, const std::string& msg) {
    std::lock_guard lock(mu_);
    damage_locked(pack, msg);
  }

  void damage_locked(const std::string& pack, const std::string& msg) {
    report_.errors.push_back(msg);
    if (std::find(report_.damaged_packs.begin(), report_.damaged_packs.end(), pack) ==
        report_.damaged_packs.end())
      report_.damaged_packs.push_back(pack);
  }

  void check_header(const std::string& name, uint64_t size, const std::vector<PackEntry>& blobs) {
    size_t want = std::min<uint64_t>(size, 64 * 1024);
    for (int attempt = 0; attempt < 2; ++attempt) {
      auto tail = repo_.backend().load({FileType::kPack, name}, size - want, want);
      if (!tail.ok() && tail.status().code() == core::Code::kNotFound) {
        auto id = Id::from_hex(name);
        if (id && repo_.index().is_excluded(*id)) return;  // swept by a concurrent prune
      }
      if (!tail.ok()) return damage(name, "pack " + name + ": " + tail.status().message());
      auto hdr = repo_.decode_pack_header(*tail, size);
      if (!hdr.ok()) return damage(name, "pack " + name + ": " + hdr.status().message());
      if (hdr->needed > 0) {
        want = hdr->needed;
        continue;
      }
      std::unordered_map<Id, PackEntry, IdHash> in_header;
      for (const auto& e : hdr->entries) in_header[e.id] = e;
      for (const auto& b : blobs) {
        auto it = in_header.find(b.id);
        if (it == in_header.end() || it->second.offset != b.offset || it->second.length != b.length)
          return damage(name, "pack " + name + ": header disagrees with the index about blob " + b.id.hex());
      }
      return;
    }
    damage(name, "pack " + name + ": header could not be read");
  }

  void check_tree(const std::string& snap, const Id& tree, std::unordered_set<Id, IdHash>& seen) {
    if (!seen.insert(tree).second) return;
    auto t = repo_.load_tree(tree);
    if (!t.ok()) {
      report_.errors.push_back("snapshot " + snap.substr(0, 8) + ": tree " + tree.hex() + ": " +
                               t.status().message());
      bad_blobs_.insert(tree);
      return;
    }
    for (const auto& n : t->nodes) {
      for (const auto& id : n.content) {
        if (!repo_.index().has(id) && missing_.insert(id).second) {
          report_.errors.push_back("snapshot " + snap.substr(0, 8) + ": data blob " + id.hex() +
                                   " (file '" + printable_name(n.name) + "') is not in the index");
          bad_blobs_.insert(id);
        }
      }
      if (n.subtree) check_tree(snap, *n.subtree, seen);
    }
  }

  void read_data(const std::map<std::string, std::vector<PackEntry>>& indexed) {
    std::vector<std::string> names;
    for (const auto& [name, blobs] : indexed) names.push_back(name);
    if (opt_.subset_m > 0) {
      std::vector<std::string> keep;
      for (const auto& n : names) {
        uint32_t group = static_cast<uint32_t>(std::stoul(n.substr(0, 8), nullptr, 16) % opt_.subset_m);
        if (group == opt_.subset_n - 1) keep.push_back(n);
      }
      names = std::move(keep);
    } else if (opt_.subset_percent < 100) {
      std::mt19937_64 rng(std::random_device{}());
      std::shuffle(names.begin(), names.end(), rng);
      size_t n = static_cast<size_t>(std::ceil(names.size() * opt_.subset_percent / 100.0));
      names.resize(std::min(names.size(), std::max<size_t>(n, 1)));
    }
    // Packs are independent: read and verify several at once (I/O and CPU overlap).
    std::atomic<size_t> done{0};
    core::ThreadPool pool(kReadWorkers, kReadWorkers);
    for (const auto& name : names) {
      pool.submit([this, &name, &done, total = names.size()] {
        note("reading pack " + std::to_string(++done) + "/" + std::to_string(total));
        verify_pack(name);
      });
    }
    pool.wait_idle();
  }

  // Reads one whole pack: hash == name, header readable, every blob opens and
  // matches its id. Thread-safe (results go through mu_).
  void verify_pack(const std::string& name) {
    auto data = repo_.backend().load({FileType::kPack, name});
    if (!data.ok() && data.status().code() == core::Code::kNotFound) {
      auto id = Id::from_hex(name);
      if (id && repo_.index().is_excluded(*id)) return;  // swept by a concurrent prune
    }
    if (!data.ok()) return damage(name, "pack " + name + ": " + data.status().message());
    bool hash_ok = core::hex_encode(crypto::sha256(*data)) == name;
    auto hdr = repo_.decode_pack_header(*data, data->size());
    std::vector<std::pair<Id, std::string>> bad;
    if (hdr.ok() && hdr->needed == 0) {
      for (const auto& e : hdr->entries) {
        auto plain = repo_.open_blob(e, core::ByteView(data->data() + e.offset, e.length));
        if (!plain.ok()) bad.emplace_back(e.id, plain.status().message());
      }
    }
    std::lock_guard lock(mu_);
    report_.packs_read++;
    report_.bytes_read += data->size();
    if (!hash_ok) damage_locked(name, "pack " + name + ": content does not match its name (damaged on storage)");
    if (!hdr.ok() || hdr->needed > 0) damage_locked(name, "pack " + name + ": unreadable header");
    for (const auto& [id, why] : bad) {
      damage_locked(name, "pack " + name + ": blob " + id.hex() + ": " + why);
      bad_blobs_.insert(id);
    }
  }

  // Names the snapshots that reference any blob in a damaged pack.
  void find_affected() {
    std::unordered_set<Id, IdHash> bad = bad_blobs_;
    std::set<std::string> damaged(report_.damaged_packs.begin(), report_.damaged_packs.end());
    repo_.index().for_each_pack([&](const PackContents& pc) {
      if (damaged.count(pc.pack.hex()))
        for (const auto& b : pc.blobs) bad.insert(b.id);
    });
    for (const auto& s : snapshots_) {
      std::unordered_set<Id, IdHash> seen;
      if (references_any(s.snapshot.tree, bad, seen)) report_.affected_snapshots.push_back(s.id);
    }
  }

  bool references_any(const Id& tree, const std::unordered_set<Id, IdHash>& bad,
                      std::unordered_set<Id, IdHash>& seen) {
    if (bad.count(tree)) return true;
    if (!seen.insert(tree).second) return false;
    auto t = repo_.load_tree(tree);
    if (!t.ok()) return true;
    for (const auto& n : t->nodes) {
      for (const auto& id : n.content)
        if (bad.count(id)) return true;
      if (n.subtree && references_any(*n.subtree, bad, seen)) return true;
    }
    return false;
  }

  Repository& repo_;
  const CheckOptions& opt_;
  const std::function<void(const std::string&)>& progress_;
  std::mutex mu_, note_mu_;  // report_ and bad_blobs_ while packs are read in parallel
  CheckReport report_;
  std::vector<SnapshotRef> snapshots_;
  std::unordered_set<Id, IdHash> bad_blobs_, missing_;
};

}  // namespace

core::Result<CheckReport> check(Repository& repo, const CheckOptions& options,
                                const std::function<void(const std::string&)>& progress) {
  Checker c(repo, options, progress);
  return c.run();
}

}  // namespace cairn::repo
