// A fixed-size thread pool with a bounded task queue. submit() blocks when the
// queue is full, which is how pipeline stages apply back-pressure and keep
// memory flat. Thread-safe. Tasks must not throw.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace cairn::core {

class ThreadPool {
 public:
  ThreadPool(size_t threads, size_t max_queued);
  ~ThreadPool();  // drains the queue, then joins
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  void submit(std::function<void()> task);
  // Blocks until every submitted task has finished.
  void wait_idle();
  size_t size() const { return threads_.size(); }

 private:
  void run();

  std::mutex mu_;
  std::condition_variable has_work_, has_room_, idle_;
  std::deque<std::function<void()>> queue_;
  size_t max_queued_;
  size_t running_ = 0;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

// Counts units (bytes in flight) with a ceiling; acquire blocks until room.
// A single request larger than the ceiling is admitted when nothing else is held.
class Budget {
 public:
  explicit Budget(uint64_t limit) : limit_(limit) {}
  void acquire(uint64_t n);
  void release(uint64_t n);

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t limit_, used_ = 0;
};

}  // namespace cairn::core
