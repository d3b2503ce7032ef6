// TreePrefetch: loads a snapshot's trees on a thread of its own, depth-first
// and ahead of a single-threaded walk in the same order (the restorer's, which
// must create folders in order). On two cores this takes tree reads,
// decryption and decoding off the walk.
//
// take(slot) returns a folder's tree and one slot per subfolder to take next,
// waiting if the tree is being loaded, or loading it on the caller's thread
// if the prefetcher has not reached it (the walk never waits for the queue).
// The prefetcher stops while kMaxAhead loaded trees wait to be taken, so
// memory stays bounded. root() and take() are for one thread (the walk).
#pragma once

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "repo/repository.h"

namespace cairn::archive {

class TreePrefetch {
 public:
  struct Slot;
  using SlotPtr = std::shared_ptr<Slot>;
  // Whether the folder at this snapshot path is worth loading (not excluded).
  // Called from both threads, possibly at once.
  using Wanted = std::function<bool(const std::string& path, const repo::Node& n)>;
  struct Taken {
    core::Result<repo::Tree> tree;
    std::vector<SlotPtr> subfolders;  // one per node of tree; null: not a wanted folder
  };
  static constexpr size_t kMaxAhead = 128;

  TreePrefetch(repo::Repository& repo, Wanted wanted);
  ~TreePrefetch();  // stops the thread; whatever is queued is dropped
  TreePrefetch(const TreePrefetch&) = delete;
  TreePrefetch& operator=(const TreePrefetch&) = delete;

  // Queues the walk's first folder, with its snapshot path ("" for "/").
  SlotPtr root(const repo::Id& tree, std::string path);
  Taken take(const SlotPtr& slot);

 private:
  // Makes and queues the subfolder slots of a loaded tree.
  std::vector<SlotPtr> expand(const Slot& parent, const repo::Tree& tree);
  void push(const std::vector<SlotPtr>& slots);
  void run();

  repo::Repository& repo_;
  Wanted wanted_;
  std::mutex mu_;
  std::condition_variable work_, done_;
  std::vector<SlotPtr> stack_;
  size_t ahead_ = 0;  // loaded by the prefetcher, not yet taken
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace cairn::archive
