#include "archive/tree_prefetch.h"

#include <optional>

namespace cairn::archive {

struct TreePrefetch::Slot {
  repo::Id id;
  std::string path;
  bool started = false;                          // claimed by the prefetcher or by take()
  std::optional<core::Result<repo::Tree>> tree;  // set by the prefetcher when loaded
  std::vector<SlotPtr> subfolders;
};

TreePrefetch::TreePrefetch(repo::Repository& repo, Wanted wanted)
    : repo_(repo), wanted_(std::move(wanted)), thread_([this] { run(); }) {}

TreePrefetch::~TreePrefetch() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  work_.notify_all();
  thread_.join();
}

TreePrefetch::SlotPtr TreePrefetch::root(const repo::Id& tree, std::string path) {
  auto slot = std::make_shared<Slot>();
  slot->id = tree;
  slot->path = std::move(path);
  push({slot});
  return slot;
}

std::vector<TreePrefetch::SlotPtr> TreePrefetch::expand(const Slot& parent,
                                                        const repo::Tree& tree) {
  std::vector<SlotPtr> subfolders(tree.nodes.size());
  for (size_t i = 0; i < tree.nodes.size(); ++i) {
    const auto& n = tree.nodes[i];
    if (n.type != repo::NodeType::kDir || !n.subtree || !repo::is_safe_name(n.name)) continue;
    std::string path = parent.path + "/" + n.name;
    if (!wanted_(path, n)) continue;
    auto slot = std::make_shared<Slot>();
    slot->id = *n.subtree;
    slot->path = std::move(path);
    subfolders[i] = std::move(slot);
  }
  push(subfolders);
  return subfolders;
}

void TreePrefetch::push(const std::vector<SlotPtr>& slots) {
  {
    std::lock_guard lock(mu_);
    // Reversed, so the first subfolder is on top: the walk needs it first.
    for (auto it = slots.rbegin(); it != slots.rend(); ++it)
      if (*it) stack_.push_back(*it);
  }
  work_.notify_one();
}

TreePrefetch::Taken TreePrefetch::take(const SlotPtr& slot) {
  std::unique_lock lock(mu_);
  if (!slot->started) {
    slot->started = true;  // the prefetcher will skip it
    lock.unlock();
    Taken t{repo_.load_tree(slot->id), {}};
    if (t.tree.ok()) t.subfolders = expand(*slot, *t.tree);
    return t;
  }
  done_.wait(lock, [&] { return slot->tree.has_value(); });
  --ahead_;
  work_.notify_one();
  return {std::move(*slot->tree), std::move(slot->subfolders)};
}

void TreePrefetch::run() {
  std::unique_lock lock(mu_);
  for (;;) {
    work_.wait(lock, [&] { return stopping_ || (!stack_.empty() && ahead_ < kMaxAhead); });
    if (stopping_) return;
    SlotPtr slot = std::move(stack_.back());
    stack_.pop_back();
    if (slot->started) continue;
    slot->started = true;
    ++ahead_;
    lock.unlock();
    auto tree = repo_.load_tree(slot->id);
    std::vector<SlotPtr> subfolders;
    if (tree.ok()) subfolders = expand(*slot, *tree);
    lock.lock();
    slot->tree = std::move(tree);
    slot->subfolders = std::move(subfolders);
    done_.notify_all();
  }
}

}  // namespace cairn::archive
