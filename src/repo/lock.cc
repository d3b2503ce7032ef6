#include "repo/lock.h"

#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "core/bytes.h"

namespace cairn::repo {

using storage::FileType;

namespace {

std::string hostname() {
  char buf[256] = {};
  gethostname(buf, sizeof buf - 1);
  return buf;
}

core::Result<std::string> write_lock(Repository& repo, LockMode mode, const std::string& holder) {
  // "exclusive": false for maintenance locks, so an older cairn (which does not
  // know "maintenance") lets backups run beside it and still refuses to
  // start its own exclusive prune or forget.
  nlohmann::json j = {{"time", format_time(now_time())},
                      {"exclusive", mode == LockMode::kExclusive},
                      {"maintenance", mode == LockMode::kMaintenance},
                      {"holder", holder},
                      {"hostname", hostname()},
                      {"username", std::to_string(getuid())},
                      {"pid", static_cast<int64_t>(getpid())}};
  if (const char* user = getenv("USER")) j["username"] = user;
  std::string text = j.dump();
  // No fsync: a lock matters only while its holder lives, and a crash that
  // loses the file ended the holder too (docs/retention.md, "Locks").
  storage::SaveOptions volatile_save;
  volatile_save.no_sync = true;
  return repo.save_file(FileType::kLock, core::as_bytes(text), volatile_save);
}

bool process_alive(int64_t pid) { return pid > 0 && (kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM); }

}  // namespace

std::string LockInfo::describe() const {
  int64_t age_s = (now_time().unix_ns - time.unix_ns) / 1000000000;
  return fmt::format("{} lock {} by {}@{} (pid {}), taken {} ago{}",
                     exclusive ? "exclusive" : (maintenance ? "maintenance" : "shared"),
                     id.substr(0, 8), username, hostname, pid, core::format_duration(static_cast<double>(age_s)),
                     stale ? " (stale)" : "");
}

core::Result<std::vector<LockInfo>> list_locks(Repository& repo) {
  std::vector<std::string> names;
  TRY(repo.backend().list(FileType::kLock, [&](const storage::FileInfo& fi) { names.push_back(fi.name); }));
  std::vector<LockInfo> out;
  const std::string me = hostname();
  for (const auto& name : names) {
    LockInfo info;
    info.id = name;
    info.holder = name;
    if (repo.is_agent()) {  // cannot read locks: none blocks it (docs/security.md)
      info.stale = true;
      out.push_back(info);
      continue;
    }
    auto plain = repo.load_file(FileType::kLock, name);
    if (!plain.ok()) {
      if (plain.status().code() == core::Code::kNotFound) continue;  // released meanwhile
      info.stale = true;  // unreadable: cannot block anyone
      out.push_back(info);
      continue;
    }
    auto j = nlohmann::json::parse(plain->begin(), plain->end(), nullptr, false);
    auto t = j.is_object() ? parse_time(j.value("time", "")) : std::nullopt;
    if (!t) {
      info.stale = true;
      out.push_back(info);
      continue;
    }
    info.time = *t;
    info.exclusive = j.value("exclusive", false);
    info.maintenance = j.value("maintenance", false);
    info.holder = j.value("holder", name);
    info.hostname = j.value("hostname", "");
    info.username = j.value("username", "");
    info.pid = j.value("pid", int64_t{0});
    auto age = std::chrono::nanoseconds(now_time().unix_ns - info.time.unix_ns);
    info.stale = age > kStaleAfter || (info.hostname == me && !process_alive(info.pid));
    out.push_back(info);
  }
  return out;
}

core::Result<size_t> remove_locks(Repository& repo, bool all) {
  // An agent cannot tell live locks from stale ones: it removes none.
  if (repo.is_agent())
    return core::Status(core::Code::kPermissionDenied,
                        "a write-only agent key cannot remove locks (it cannot read them)");
  ASSIGN_OR_RETURN(auto locks, list_locks(repo));
  size_t removed = 0;
  for (const auto& l : locks) {
    if (!all && !l.stale) continue;
    TRY(repo.backend().remove({FileType::kLock, l.id}));
    ++removed;
  }
  return removed;
}

core::Result<std::unique_ptr<Lock>> Lock::acquire(Repository& repo, bool exclusive) {
  return acquire(repo, exclusive ? LockMode::kExclusive : LockMode::kShared);
}

core::Result<std::unique_ptr<Lock>> Lock::acquire(Repository& repo, LockMode mode) {
  // Write first, then look: two racing lockers both see each other and at
  // least one backs off (never both proceed with a conflict).
  std::string holder = core::hex_encode(crypto::random_bytes(16));
  ASSIGN_OR_RETURN(std::string id, write_lock(repo, mode, holder));
  auto locks = list_locks(repo);
  if (!locks.ok()) {
    (void)repo.backend().remove({FileType::kLock, id});
    return locks.status();
  }
  for (const auto& l : *locks) {
    if (l.id == id || l.stale) continue;
    bool conflict = mode == LockMode::kExclusive || l.exclusive ||
                    (mode == LockMode::kMaintenance && l.maintenance);
    if (conflict) {
      (void)repo.backend().remove({FileType::kLock, id});
      return core::Status(core::Code::kLocked,
                          "repository is locked: " + l.describe() +
                              " (if that process is gone, run 'cairn unlock')");
    }
  }
  return std::unique_ptr<Lock>(new Lock(repo, mode, std::move(holder), id));
}

Lock::Lock(Repository& repo, LockMode mode, std::string holder, std::string id)
    : repo_(repo), mode_(mode), holder_(std::move(holder)), id_(std::move(id)) {
  refresher_ = std::thread([this] { refresh_loop(); });
}

Lock::~Lock() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  refresher_.join();
  std::lock_guard lock(mu_);
  (void)repo_.backend().remove({FileType::kLock, id_});
}

void Lock::refresh_loop() {
  std::unique_lock lock(mu_);
  while (!cv_.wait_for(lock, kRefreshInterval, [&] { return stop_; })) {
    auto fresh = write_lock(repo_, mode_, holder_);
    if (!fresh.ok()) continue;  // try again next interval; the old lock still stands
    (void)repo_.backend().remove({FileType::kLock, id_});
    id_ = *fresh;
  }
}

}  // namespace cairn::repo
