// Failed-authentication limiter: a source (client address) with
// `max_failures` failed authentications within the last `window` is refused
// (429) until the oldest of them leaves the window, whatever it presents:
// tokens cannot be guessed at more than max_failures per window.
//
// Thread-safe.
#pragma once

#include <chrono>
#include <deque>
#include <map>
#include <mutex>
#include <string>

namespace cairn::server {

class FailureLimiter {
 public:
  using Clock = std::chrono::steady_clock;
  FailureLimiter(int max_failures, std::chrono::seconds window) : max_(max_failures), window_(window) {}

  // Seconds until `source` may try again; 0 when it is not blocked.
  int64_t blocked_for(const std::string& source, Clock::time_point now = Clock::now());
  void record_failure(const std::string& source, Clock::time_point now = Clock::now());

 private:
  void expire(std::deque<Clock::time_point>& q, Clock::time_point now) const;
  int max_;
  std::chrono::seconds window_;
  std::mutex mu_;
  std::map<std::string, std::deque<Clock::time_point>> failures_;
};

}  // namespace cairn::server
