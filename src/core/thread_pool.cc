#include "core/thread_pool.h"

namespace cairn::core {

ThreadPool::ThreadPool(size_t threads, size_t max_queued) : max_queued_(max_queued) {
  if (threads == 0) threads = 1;
  for (size_t i = 0; i < threads; ++i) threads_.emplace_back([this] { run(); });
}

ThreadPool::~ThreadPool() {
  {
    std::unique_lock lock(mu_);
    stopping_ = true;
  }
  has_work_.notify_all();
  for (auto& t : threads_) t.join();
}

void ThreadPool::submit(std::function<void()> task) {
  std::unique_lock lock(mu_);
  has_room_.wait(lock, [&] { return queue_.size() < max_queued_; });
  queue_.push_back(std::move(task));
  has_work_.notify_one();
}

void ThreadPool::wait_idle() {
  std::unique_lock lock(mu_);
  idle_.wait(lock, [&] { return queue_.empty() && running_ == 0; });
}

void ThreadPool::run() {
  for (;;) {
    std::function<void()> task;
    {
      std::unique_lock lock(mu_);
      has_work_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping and drained
      task = std::move(queue_.front());
      queue_.pop_front();
      ++running_;
      has_room_.notify_one();
    }
    task();
    {
      std::unique_lock lock(mu_);
      --running_;
      if (queue_.empty() && running_ == 0) idle_.notify_all();
    }
  }
}

void Budget::acquire(uint64_t n) {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return used_ == 0 || used_ + n <= limit_; });
  used_ += n;
}

void Budget::release(uint64_t n) {
  {
    std::unique_lock lock(mu_);
    used_ -= n;
  }
  cv_.notify_all();
}

}  // namespace cairn::core
