#include "storage/prefetch_backend.h"

#include <algorithm>

namespace cairn::storage {

PrefetchBackend::PrefetchBackend(std::shared_ptr<Backend> inner, std::vector<FileType> types,
                                 uint64_t max_bytes, int readers)
    : inner_(std::move(inner)) {
  for (FileType t : types) prefetched_[static_cast<size_t>(t)] = true;
  if (readers <= 0) readers = std::max(1, inner_->preferred_upload_concurrency());
  thread_ = std::thread(
      [this, types = std::move(types), max_bytes, readers] { run(types, max_bytes, readers); });
}

PrefetchBackend::~PrefetchBackend() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  changed_.notify_all();
  thread_.join();
}

void PrefetchBackend::cancel() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    for (auto& [key, e] : entries_) {
      e.state = State::kGone;  // bytes in flight are dropped on arrival
      e.bytes = {};
    }
  }
  changed_.notify_all();
}

uint64_t PrefetchBackend::served() const {
  std::lock_guard lock(mu_);
  return served_;
}

void PrefetchBackend::run(std::vector<FileType> types, uint64_t max_bytes, int readers) {
  uint64_t total = 0;
  for (FileType t : types) {
    std::vector<FileInfo> found;
    // A failed listing only means nothing of this type is prefetched; the
    // caller's own list() will meet (and report) the same problem.
    if (!inner_->list(t, [&](const FileInfo& fi) { found.push_back(fi); }).ok()) continue;
    std::lock_guard lock(mu_);
    for (const FileInfo& fi : found) {
      if (stopping_ || total + fi.size > max_bytes) break;
      Key key{t, fi.name};
      if (!entries_.try_emplace(key).second) continue;  // already asked for by the caller
      queue_.push_back(std::move(key));
      total += fi.size;
    }
  }
  {
    std::lock_guard lock(mu_);
    listed_ = true;
    readers = static_cast<int>(std::min<size_t>(static_cast<size_t>(readers), queue_.size()));
  }
  std::vector<std::thread> pool;
  for (int i = 1; i < readers; ++i) pool.emplace_back([this] { read_queued(); });
  read_queued();
  for (auto& t : pool) t.join();
}

void PrefetchBackend::read_queued() {
  std::unique_lock lock(mu_);
  while (!stopping_ && next_ < queue_.size()) {
    const Key key = queue_[next_++];
    Entry& e = entries_[key];  // std::map: stays valid while unlocked
    if (e.state != State::kQueued) continue;
    e.state = State::kLoading;
    lock.unlock();
    auto bytes = inner_->load({key.first, key.second});
    lock.lock();
    if (e.state == State::kLoading && bytes.ok()) {
      e.bytes = std::move(*bytes);
      e.state = State::kReady;
    } else {
      e.state = State::kGone;
      e.bytes = {};
    }
    changed_.notify_all();
  }
}

std::optional<core::Bytes> PrefetchBackend::take(const Handle& h) {
  if (!prefetched_[static_cast<size_t>(h.type)]) return std::nullopt;
  std::unique_lock lock(mu_);
  auto it = entries_.find({h.type, h.name});
  if (it == entries_.end()) {
    // Not listed (yet): keep a later listing from loading it for nothing.
    if (!listed_) entries_[{h.type, h.name}].state = State::kGone;
    return std::nullopt;
  }
  Entry& e = it->second;
  changed_.wait(lock, [&] { return e.state != State::kLoading; });
  if (e.state != State::kReady) {
    e.state = State::kGone;  // a queued one is now the caller's to load
    return std::nullopt;
  }
  e.state = State::kGone;
  ++served_;
  return std::move(e.bytes);
}

core::Result<core::Bytes> PrefetchBackend::load(const Handle& h, uint64_t offset, uint64_t length) {
  if (offset == 0 && length == 0)
    if (auto held = take(h)) return std::move(*held);
  return inner_->load(h, offset, length);
}

core::Status PrefetchBackend::load_into(const Handle& h, uint64_t offset, uint64_t length,
                                        core::Bytes& out) {
  if (offset == 0 && length == 0) {
    if (auto held = take(h)) {
      out = std::move(*held);
      return core::ok_status();
    }
  }
  return inner_->load_into(h, offset, length, out);
}

core::Status PrefetchBackend::remove(const Handle& h) {
  if (prefetched_[static_cast<size_t>(h.type)]) {
    // Never served after this; bytes still in flight are dropped on arrival.
    std::lock_guard lock(mu_);
    auto it = entries_.find({h.type, h.name});
    if (it != entries_.end()) {
      it->second.state = State::kGone;
      it->second.bytes = {};
      changed_.notify_all();
    }
  }
  return inner_->remove(h);
}

}  // namespace cairn::storage
