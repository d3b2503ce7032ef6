// PrefetchBackend: a decorator that, as soon as it is made, lists the objects
// of some types and loads them on background threads, so that their round
// trips overlap with what the caller does first. (Opening a repository spends
// ~0.5 s in argon2id on one core before it can read a single index file; on
// an object store every index and snapshot file is a request.)
//
// A whole-object load() of a prefetched object is answered from memory once,
// and the bytes are dropped; a load() of an object still in flight waits for
// it. Everything else - ranges, other types, objects not (or no longer)
// held - goes to the wrapped backend, and so does every error: a failed
// prefetch is forgotten, and the caller's own load() reports the failure.
//
// Only for types whose objects never change once saved (index, snapshots;
// Backend's contract refuses overwrites). Callers still list the wrapped
// backend themselves, so they never ask for an object removed meanwhile, and
// an object they ask for has the bytes it had when it was read. Holds at most
// max_bytes; objects beyond that are not prefetched. Thread-safe.
#pragma once

#include <array>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "storage/backend.h"

namespace cairn::storage {

class PrefetchBackend : public Backend {
 public:
  // `readers` objects are loaded at once (0: the inner backend's preferred
  // upload concurrency, which reflects what its requests cost).
  PrefetchBackend(std::shared_ptr<Backend> inner, std::vector<FileType> types,
                  uint64_t max_bytes = 32ull << 20, int readers = 0);
  ~PrefetchBackend() override;  // stops prefetching; waits for loads in flight
  PrefetchBackend(const PrefetchBackend&) = delete;
  PrefetchBackend& operator=(const PrefetchBackend&) = delete;

  // Stops reading ahead and drops whatever is held, for a caller that will
  // not read these files after all (an agent session cannot decrypt them).
  void cancel();
  // Objects answered from memory so far (for tests and logs).
  uint64_t served() const;

  core::Status save(const Handle& h, core::ByteView data) override { return inner_->save(h, data); }
  core::Status save_with(const Handle& h, core::ByteView data,
                         const SaveOptions& options) override {
    return inner_->save_with(h, data, options);
  }
  core::Result<core::Bytes> load(const Handle& h, uint64_t offset = 0,
                                 uint64_t length = 0) override;
  core::Status load_into(const Handle& h, uint64_t offset, uint64_t length,
                         core::Bytes& out) override;
  core::Status load_stream(const Handle& h, uint64_t offset, uint64_t length,
                           const ByteSink& sink) override {
    return inner_->load_stream(h, offset, length, sink);
  }
  core::Result<FileInfo> stat(const Handle& h) override { return inner_->stat(h); }
  core::Status list(FileType t, const std::function<void(const FileInfo&)>& fn) override {
    return inner_->list(t, fn);
  }
  core::Status remove(const Handle& h) override;
  core::Result<bool> exists() override { return inner_->exists(); }
  core::Status create() override { return inner_->create(); }
  std::string location() const override { return inner_->location(); }
  core::Status create_container() override { return inner_->create_container(); }
  int preferred_upload_concurrency() const override {
    return inner_->preferred_upload_concurrency();
  }
  bool prefers_whole_reads() const override { return inner_->prefers_whole_reads(); }

 private:
  enum class State { kQueued, kLoading, kReady, kGone };
  struct Entry {
    State state = State::kQueued;
    core::Bytes bytes;
  };
  using Key = std::pair<FileType, std::string>;

  // Lists, then loads with `readers` threads of its own (joined before it ends).
  void run(std::vector<FileType> types, uint64_t max_bytes, int readers);
  void read_queued();
  // The object's bytes if they are (or are about to be) held, once; nullopt
  // otherwise, after which the prefetcher leaves the object alone.
  std::optional<core::Bytes> take(const Handle& h);

  std::shared_ptr<Backend> inner_;
  std::array<bool, kFileTypeCount> prefetched_{};  // by FileType
  mutable std::mutex mu_;
  std::condition_variable changed_;
  std::map<Key, Entry> entries_;
  std::vector<Key> queue_;  // in listed order, taken from the front
  size_t next_ = 0;
  bool listed_ = false, stopping_ = false;
  uint64_t served_ = 0;
  std::thread thread_;
};

}  // namespace cairn::storage
