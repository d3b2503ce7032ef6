#include "server/rate_limiter.h"

namespace cairn::server {

void FailureLimiter::expire(std::deque<Clock::time_point>& q, Clock::time_point now) const {
  while (!q.empty() && now - q.front() >= window_) q.pop_front();
}

int64_t FailureLimiter::blocked_for(const std::string& source, Clock::time_point now) {
  std::lock_guard lock(mu_);
  auto it = failures_.find(source);
  if (it == failures_.end()) return 0;
  expire(it->second, now);
  if (it->second.empty()) {
    failures_.erase(it);
    return 0;
  }
  if (static_cast<int>(it->second.size()) < max_) return 0;
  // Free again when enough failures have left the window to drop below the limit.
  auto until = it->second[it->second.size() - static_cast<size_t>(max_)] + window_;
  return std::max<int64_t>(1, std::chrono::ceil<std::chrono::seconds>(until - now).count());
}

void FailureLimiter::record_failure(const std::string& source, Clock::time_point now) {
  std::lock_guard lock(mu_);
  auto& q = failures_[source];
  expire(q, now);
  q.push_back(now);
  // Bound memory against a flood of distinct sources: drop the idlest.
  if (failures_.size() > 100000) failures_.erase(failures_.begin());
}

}  // namespace cairn::server
