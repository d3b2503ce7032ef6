// Repository locks (locks/<id>): shared for backup, restore and check,
// exclusive for forget and `prune --exclusive`, maintenance for the
// two-phase prune (excludes other maintenance and exclusive locks, but not
// shared ones, so backups keep running). A lock file is an encrypted JSON
// record {time, exclusive, maintenance, holder, hostname, username, pid}; it
// is refreshed by writing a new file and removing the old one (objects stay
// immutable), every kRefreshInterval while held. `holder` is a random id
// that stays the same across refreshes: prune's markers name the holders
// they wait for (the file id changes on every refresh). A lock older than kStaleAfter, or one from
// this host whose process is gone, is stale: it blocks nobody and
// `cairn unlock` removes it. Lock files are saved without fsync
// (SaveOptions::no_sync): a crash that loses one ended its holder as well;
// one it left empty is unreadable, hence stale. Thread-safe; the refresher
// runs on its own thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/status.h"
#include "repo/repository.h"

namespace cairn::repo {

constexpr std::chrono::seconds kRefreshInterval{5 * 60};
constexpr std::chrono::seconds kStaleAfter{30 * 60};

enum class LockMode { kShared, kExclusive, kMaintenance };

struct LockInfo {
  std::string id;
  std::string holder;  // stable across refreshes; the file id for locks without one
  Time time;
  bool exclusive = false;
  bool maintenance = false;
  std::string hostname, username;
  int64_t pid = 0;
  bool stale = false;
  std::string describe() const;  // "exclusive lock by root@db-1 (pid 123), 2m ago"
};

class Lock {
 public:
  // Takes a lock. kLocked (exit code 11) names the conflicting holder.
  static core::Result<std::unique_ptr<Lock>> acquire(Repository& repo, bool exclusive);
  static core::Result<std::unique_ptr<Lock>> acquire(Repository& repo, LockMode mode);
  ~Lock();
  const std::string& holder() const { return holder_; }  // stops refreshing and removes the lock file
  Lock(const Lock&) = delete;
  Lock& operator=(const Lock&) = delete;

 private:
  Lock(Repository& repo, LockMode mode, std::string holder, std::string id);
  void refresh_loop();

  Repository& repo_;
  LockMode mode_;
  std::string holder_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::string id_;  // guarded by mu_
  std::thread refresher_;
};

// Every lock in the repository (unreadable ones are reported as stale).
core::Result<std::vector<LockInfo>> list_locks(Repository& repo);
// Removes stale locks, or all locks with `all`; returns how many.
core::Result<size_t> remove_locks(Repository& repo, bool all);

}  // namespace cairn::repo
